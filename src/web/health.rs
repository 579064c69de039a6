use actix_web::HttpResponse;
use actix_web::web::Data;
use serde_json::json;

use crate::state::AppState;

/// Liveness that includes the database: 200 when a query answers, 503 otherwise.
pub async fn healthz(state: Data<AppState>) -> HttpResponse {
    match state.db.ping().await {
        Ok(()) => HttpResponse::Ok()
            .insert_header(("Cache-Control", "no-store"))
            .json(json!({"status": "ok"})),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unavailable");
            HttpResponse::ServiceUnavailable()
                .insert_header(("Cache-Control", "no-store"))
                .json(json!({"status": "unavailable", "database": "unreachable"}))
        }
    }
}

/// The server's home page: where to go next.
pub async fn index(state: Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "service": "lineage",
        "issuer": state.issuer,
        "metadata": format!("{}/.well-known/oauth-authorization-server", state.issuer),
    }))
}
