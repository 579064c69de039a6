//! The limits of `/token`, `/revoke`, `/introspect` and `/userinfo`: a ceiling of requests per
//! client address (checked here, before the body is read), and the answer when a limit refuses a
//! request: `429 Too Many Requests`, `Retry-After`, and an RFC 6749 §5.2 body with
//! `temporarily_unavailable` — a code every OAuth client treats as "try again later", unlike
//! `invalid_client`, which would tell a client with good credentials that they are wrong.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web::Data;
use actix_web::{HttpMessage, HttpRequest, ResponseError};

use super::LimitKind;
use super::keyed::RetryAfter;
use crate::oauth::error::{ErrorCode, OAuthError};
use crate::state::AppState;

/// The refusal of a request by `kind`; the middleware below adds its `Retry-After`.
pub fn too_many_requests(
    state: &AppState,
    req: &HttpRequest,
    kind: LimitKind,
    wait: RetryAfter,
) -> OAuthError {
    state.metrics.rate_limited(endpoint_label(req.path()), kind);
    req.extensions_mut().insert(wait);
    let why = match kind {
        LimitKind::ClientAuthFailures | LimitKind::ClientAuthAddressFailures => {
            "too many failed client authentications"
        }
        _ => "too many requests from this address",
    };
    OAuthError::new(
        ErrorCode::TemporarilyUnavailable,
        format!("{why}; try again in {} seconds", wait.0),
    )
    .with_status(StatusCode::TOO_MANY_REQUESTS)
}

/// A metric label: the endpoint's name, never a request path.
fn endpoint_label(path: &str) -> &'static str {
    match path {
        "/token" => "token",
        "/revoke" => "revoke",
        "/introspect" => "introspect",
        "/revocations" => "revocations",
        "/userinfo" => "userinfo",
        _ => "other",
    }
}

/// Middleware of the OAuth endpoints: the per-address ceiling, and `Retry-After` on every 429 a
/// limit produced further in.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(state) = req.app_data::<Data<AppState>>().cloned() {
        let address = super::client_ip::of(req.request());
        if let Err(wait) = state.limits.request_allowed(address) {
            let error = too_many_requests(&state, req.request(), LimitKind::AddressRequests, wait);
            let mut resp = req.into_response(error.error_response());
            set_retry_after(&mut resp, wait);
            return Ok(resp.map_into_right_body());
        }
    }
    let mut resp = next.call(req).await?;
    let wait = resp.request().extensions().get::<RetryAfter>().copied();
    if let Some(wait) = wait
        && resp.status() == StatusCode::TOO_MANY_REQUESTS
    {
        set_retry_after(&mut resp, wait);
    }
    Ok(resp.map_into_left_body())
}

fn set_retry_after<B>(resp: &mut ServiceResponse<B>, wait: RetryAfter) {
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(wait.0));
}
