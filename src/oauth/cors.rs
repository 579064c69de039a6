//! Cross-origin requests from browser apps (the Fetch standard's CORS protocol).
//!
//! `/token` and `/revoke` answer a page only on an origin of the client the request names: the
//! origin of one of that client's registered redirect URIs. `/userinfo` does the same for the
//! client its bearer token was issued to: the token, not a cookie, is the credential, and a page
//! of another app has no business reading a user's claims. The metadata and the JWKS are public
//! documents, open to every origin. Never with credentials: a browser app proves itself with its
//! `client_id` and PKCE, not cookies, so `Access-Control-Allow-Credentials` is never sent and the
//! browser never attaches the session cookie of the sign-in pages to a cross-origin call.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::Data;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError};

use super::client_auth;
use super::error::OAuthError;
use super::form::Form;
use crate::db::models::clients as client_rows;
use crate::state::AppState;

/// How long a browser may reuse a preflight answer (Chromium caps it at two hours).
const PREFLIGHT_MAX_AGE: &str = "600";
/// What a browser app sends to `/token`, `/revoke` and `/userinfo` beyond the CORS-safelisted
/// headers (`DPoP`: RFC 9449 proofs).
const CLIENT_HEADERS: &str = "Content-Type, Authorization, DPoP";
/// Response headers a browser app may read beyond the safelisted ones: the DPoP nonce for its next
/// proof and the challenge that says why a token was refused.
const EXPOSED_HEADERS: &str = "DPoP-Nonce, WWW-Authenticate";

/// The client a request names (HTTP Basic or `client_id` in the body). The body is read by the
/// handler, after this middleware has passed the request on, so the handler notes it here.
#[derive(Clone)]
struct NamedClient(String);

/// Note the client a cross-origin `/token` or `/revoke` request names, for the per-client origin
/// check. A request without `Origin` (every non-browser client) needs no note.
pub fn name_client(req: &HttpRequest, form: &Form) {
    if !req.headers().contains_key(header::ORIGIN) {
        return;
    }
    if let Ok(presented) = client_auth::presented(req, form) {
        req.extensions_mut()
            .insert(NamedClient(presented.client_id().to_string()));
    }
}

/// Note the client an access token presented to `/userinfo` was issued to: the answer is shown
/// to a page on one of that client's origins, as `/token`'s is (see `per_client`).
pub fn name_token_client(req: &HttpRequest, client_id: &str) {
    if req.headers().contains_key(header::ORIGIN) {
        req.extensions_mut()
            .insert(NamedClient(client_id.to_string()));
    }
}

/// The origin a page on `uri` has: scheme, host and port (the default port left out), as a
/// browser serializes it in `Origin`. `None` for a URI without one (a native app's
/// `com.example.app:/cb`): its opaque origin serializes as `null`, which any sandboxed page sends.
fn origin_of(uri: &str) -> Option<String> {
    match url::Url::parse(uri).ok()?.origin() {
        origin @ url::Origin::Tuple(..) => Some(origin.ascii_serialization()),
        url::Origin::Opaque(_) => None,
    }
}

fn request_origin(req: &HttpRequest) -> Option<String> {
    let origin = req.headers().get(header::ORIGIN)?.to_str().ok()?;
    Some(origin.to_string())
}

/// A CORS preflight (Fetch §3.2.2): `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
fn is_preflight(req: &ServiceRequest) -> bool {
    req.method() == Method::OPTIONS
        && req.headers().contains_key(header::ORIGIN)
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The answer depends on `Origin`: caches must keep one per origin.
fn vary_origin(headers: &mut HeaderMap) {
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// Middleware of `/token`, `/revoke` and `/userinfo`. A preflight carries no body, so it cannot
/// name its client: it is answered for any origin some registered client redirects to. The request
/// that follows is answered with CORS headers only when its origin is one of the named client's,
/// so a page on another app's origin cannot read the answer.
pub async fn per_client(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(state) = req.app_data::<Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let origin = request_origin(req.request());
    if let Some(origin) = origin.filter(|_| is_preflight(&req)) {
        let answer = preflight_for_clients(&state, origin).await;
        return Ok(req.into_response(answer).map_into_right_body());
    }
    let mut resp = next.call(req).await?;
    if let Some(origin) = request_origin(resp.request()) {
        let named = resp.request().extensions().get::<NamedClient>().cloned();
        if let Some(NamedClient(client_id)) = named
            && client_has_origin(&state, &client_id, &origin).await
            && let Ok(value) = HeaderValue::from_str(&origin)
        {
            resp.headers_mut()
                .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
            resp.headers_mut().insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSED_HEADERS),
            );
        }
    }
    vary_origin(resp.headers_mut());
    Ok(resp.map_into_left_body())
}

/// `204` with the CORS headers when `origin` is the origin of a registered redirect URI;
/// otherwise `403` without them, and the browser does not send the request.
async fn preflight_for_clients(state: &AppState, origin: String) -> HttpResponse {
    let checked = origin.clone();
    let registered = state
        .db
        .read(move |c| {
            let uris = client_rows::all_redirect_uris(c)?;
            let found = uris
                .iter()
                .flat_map(|uris| uris.split_whitespace())
                .any(|uri| origin_of(uri).as_deref() == Some(checked.as_str()));
            Ok::<_, OAuthError>(found)
        })
        .await;
    let mut answer = match registered {
        Ok(true) => match HeaderValue::from_str(&origin) {
            Ok(value) => HttpResponse::NoContent()
                .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, value))
                .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "POST"))
                .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, CLIENT_HEADERS))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE))
                .finish(),
            Err(_) => HttpResponse::Forbidden().finish(),
        },
        Ok(false) => HttpResponse::Forbidden().finish(),
        Err(e) => e.error_response(),
    };
    vary_origin(answer.headers_mut());
    answer
}

/// Whether `origin` is the origin of one of `client_id`'s registered redirect URIs. A storage
/// failure answers no: the browser then withholds a response it would otherwise have shown.
async fn client_has_origin(state: &AppState, client_id: &str, origin: &str) -> bool {
    match client_auth::registered(state, client_id).await {
        Ok(Some(client)) => client
            .redirect_uris
            .iter()
            .any(|uri| origin_of(uri.as_str()).as_deref() == Some(origin)),
        Ok(None) => false,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the client for a cross-origin request");
            false
        }
    }
}

/// Middleware of the metadata and the JWKS: public documents every origin may read.
pub async fn open(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if is_preflight(&req) {
        let answer = HttpResponse::build(StatusCode::NO_CONTENT)
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET"))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE))
            .finish();
        return Ok(req.into_response(answer).map_into_right_body());
    }
    let mut resp = next.call(req).await?;
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    Ok(resp.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::origin_of;

    #[test]
    fn origins_of_redirect_uris() {
        let of = |u| origin_of(u);
        assert_eq!(
            of("https://App.Example:443/cb?x=1").as_deref(),
            Some("https://app.example")
        );
        assert_eq!(
            of("http://localhost:8080/cb").as_deref(),
            Some("http://localhost:8080")
        );
        assert_eq!(
            of("http://[::1]:9000/cb").as_deref(),
            Some("http://[::1]:9000")
        );
        assert_eq!(of("com.example.app:/oauth2redirect"), None);
    }
}
