//! The OAuth 2.0 endpoints lineage owns.

pub mod approval;
pub mod authorize;
pub mod bearer;
pub mod client_auth;
pub mod cors;
pub mod discovery;
pub mod dpop;
pub mod error;
pub mod form;
pub mod grants;
pub mod introspect;
pub mod issue;
pub mod jwks;
pub mod pkce;
pub mod prompt;
#[cfg(test)]
mod properties;
pub mod revocations;
pub mod revoke;
pub mod token;
pub mod token_request;
pub mod userinfo;

/// A strong ETag for a response body (the first 128 bits of its SHA-256).
pub(crate) fn etag_of(body: &[u8]) -> String {
    format!(
        "\"{}\"",
        &crate::tokens::secret::HashedToken::of(body).as_str()[..32]
    )
}

/// Whether the request's `If-None-Match` names `etag` (RFC 9110 §13.1.2), for a 304.
pub(crate) fn not_modified(req: &actix_web::HttpRequest, etag: &str) -> bool {
    req.headers()
        .get(actix_web::http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
}
