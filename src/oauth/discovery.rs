//! RFC 8414 authorization-server metadata, served at both well-known paths. It lists only what
//! this server really supports.

use actix_web::web::Data;
use actix_web::{HttpResponse, http::header};
use serde_json::json;

use super::error::OAuthError;
use super::token_request::SUPPORTED_GRANTS;
use crate::clients;
use crate::state::AppState;

/// How clients authenticate (`client_auth`); introspection takes the first two only.
const CLIENT_AUTH_METHODS: [&str; 3] = ["client_secret_basic", "client_secret_post", "none"];

pub async fn metadata(state: Data<AppState>) -> Result<HttpResponse, OAuthError> {
    let scopes = state.db.read(clients::all_scopes).await?;
    let issuer = &state.issuer;
    let grants: Vec<&str> = SUPPORTED_GRANTS.iter().map(|g| g.as_str()).collect();
    let doc = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks.json"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "grant_types_supported": grants,
        "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "revocation_endpoint": format!("{issuer}/revoke"),
        "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "introspection_endpoint": format!("{issuer}/introspect"),
        "introspection_endpoint_auth_methods_supported": &CLIENT_AUTH_METHODS[..2],
        "scopes_supported": scopes,
        // Not an RFC 8414 name: lineage's revocation feed for resource servers (README).
        "lineage_revocation_feed_endpoint": format!("{issuer}/revocations"),
        "service_documentation": format!("{issuer}/"),
    });
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
        .json(doc))
}
