//! RFC 6749 §5.2 error responses. `Display` is the wire code.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::db::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    UnsupportedTokenType,
    ServerError,
    TemporarilyUnavailable,
    /// RFC 9449 §5: the DPoP proof is missing where required, or invalid.
    InvalidDpopProof,
    /// RFC 9449 §8: the proof must carry the nonce in the response's `DPoP-Nonce` header.
    UseDpopNonce,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::InvalidDpopProof => "invalid_dpop_proof",
            ErrorCode::UseDpopNonce => "use_dpop_nonce",
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", code.as_str())]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: Option<String>,
    /// Overrides the status the code implies (413 for an oversized body).
    pub status: Option<StatusCode>,
    /// A fresh DPoP nonce for the client's next proof (`DPoP-Nonce`, RFC 9449 §8).
    pub dpop_nonce: Option<String>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_description: Option<&'a str>,
}

/// `error_description` may only carry `%x20-21 / %x23-5B / %x5D-7E` (RFC 6749 §5.2, §4.1.2.1):
/// any other character — a quote, a backslash, a control or non-ASCII character, which could only
/// come from request bytes echoed into a message — becomes `?`. Long messages are cut.
pub fn description_chars(text: &str) -> String {
    const MAX_CHARS: usize = 300;
    text.chars()
        .take(MAX_CHARS)
        .map(|c| match c {
            ' ' | '!' | '#'..='[' | ']'..='~' => c,
            _ => '?',
        })
        .collect()
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: Some(description_chars(&description.into())),
            status: None,
            dpop_nonce: None,
        }
    }

    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, d)
    }
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidClient, d)
    }
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidGrant, d)
    }
    pub fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidScope, d)
    }
    pub fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::UnauthorizedClient, d)
    }

    /// An error the client did not cause: the detail goes to the log, the client gets a bare code.
    pub fn server_error(context: &str, detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "{context}");
        Self {
            code: ErrorCode::ServerError,
            description: None,
            status: None,
            dpop_nonce: None,
        }
    }

    pub fn unavailable() -> Self {
        Self {
            code: ErrorCode::TemporarilyUnavailable,
            description: None,
            status: None,
            dpop_nonce: None,
        }
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    pub fn invalid_dpop_proof(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidDpopProof, d)
    }

    /// Tell the client which DPoP nonce to put in its next proof.
    pub fn with_dpop_nonce(mut self, nonce: Option<String>) -> Self {
        self.dpop_nonce = nonce;
        self
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "database unavailable");
            OAuthError::unavailable()
        } else {
            OAuthError::server_error("storage error", &e)
        }
    }
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        if let Some(s) = self.status {
            return s;
        }
        match self.code {
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status_code());
        resp.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
            .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
        if self.code == ErrorCode::InvalidClient {
            resp.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"lineage\", charset=\"UTF-8\""),
            ));
        }
        if self.code == ErrorCode::TemporarilyUnavailable {
            resp.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
        }
        if let Some(nonce) = &self.dpop_nonce
            && let Ok(value) = HeaderValue::from_str(nonce)
        {
            resp.insert_header((super::dpop::NONCE_HEADER, value));
        }
        resp.json(Body {
            error: self.code.as_str(),
            error_description: self.description.as_deref(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_keep_to_the_rfc_6749_character_set() {
        let e = OAuthError::invalid_request("bad `x\"y\\z` \u{e9}\n\u{7f} ok");
        assert_eq!(e.description.as_deref(), Some("bad `x?y?z` ??? ok"));
        let long = OAuthError::invalid_request("a".repeat(5000));
        assert_eq!(long.description.map(|d| d.len()), Some(300));
    }
}
