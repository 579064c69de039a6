//! `GET /healthz`: liveness that includes a database round trip.

use crate::helpers::{Backend, spawn_app};

both_backends!(healthz_reports_ok);

async fn healthz_reports_ok(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (status, headers, body) = app.get_json("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::json!({"status": "ok"}));
    assert_eq!(
        headers.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store"),
        "a health answer must not be cached"
    );
}
