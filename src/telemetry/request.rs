//! Every request gets a request id (echoed in `X-Request-Id`), a `request` span that the
//! handler's own events happen in, one log line when it is answered, and its count and latency in
//! the metrics.
//!
//! The log line and the labels name the route *pattern* (`/account/families/{family_id}/revoke`),
//! never the path or the query string: `/authorize?…` carries states and codes, and paths carry
//! ids. Nothing here looks at bodies, cookies or the `Authorization` header.

use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::hash::BuildHasher;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use actix_web::HttpRequest;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::web::Data;
use tracing::Instrument;

use crate::state::AppState;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// An incoming `X-Request-Id` longer than this is replaced.
const MAX_INCOMING_ID: usize = 64;

/// The route pattern of a resource, attached to it as app data when the routes are registered,
/// so naming the route of a request allocates nothing. (A resource without it is still named by
/// its pattern; requests no resource matched, 404s, are `other`.)
#[derive(Debug, Clone, Copy)]
pub struct RoutePattern(pub &'static str);

/// Where request lines are logged (`RUST_LOG=lineage::http=warn` silences them).
pub const LOG_TARGET: &str = "lineage::http";

/// Observe one request: the middleware `run` in `startup.rs` wraps the whole app in this.
pub fn observe<S, B>(
    state: &Data<AppState>,
    req: ServiceRequest,
    srv: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let started = Instant::now();
    let id = RequestId::of(req.headers());
    let method = method_label(req.method());
    let span = tracing::info_span!(
        target: "lineage::request",
        "request",
        request_id = %id,
        client_id = tracing::field::Empty,
    );
    let answer = span.in_scope(|| srv.call(req));
    let state = state.clone();
    async move {
        let result = answer.instrument(span.clone()).await;
        let took = started.elapsed();
        let (status, route) = match &result {
            Ok(res) => (res.status().as_u16(), route_of(res.request())),
            // Only a handler that panicked ends here (see `run`); its request is gone.
            Err(e) => (e.as_response_error().status_code().as_u16(), "other"),
        };
        state.metrics.request(method, route, status, took);
        span.in_scope(|| {
            tracing::info!(
                target: LOG_TARGET,
                method,
                route,
                status,
                latency_ms = took.as_micros() as f64 / 1000.0,
                "request"
            );
        });
        result.map(|mut res| {
            res.headers_mut().insert(X_REQUEST_ID, id.0);
            res
        })
    }
}

/// Name the authenticated client on the current request's span, so its log line (and every
/// event after this one) shows it. Only ever call it with an id that passed authentication.
pub fn record_client(client_id: &str) {
    tracing::Span::current().record("client_id", client_id);
}

/// The pattern of the resource that answered, or `other` when none matched.
fn route_of(req: &HttpRequest) -> &'static str {
    if let Some(route) = req.app_data::<RoutePattern>() {
        return route.0;
    }
    // A resource registered without `RoutePattern`: its pattern, allocated once. Patterns come
    // from the route table, never from the request, so there are only ever a few.
    match req.match_pattern() {
        Some(pattern) => intern(pattern),
        None => "other",
    }
}

fn intern(pattern: String) -> &'static str {
    static KNOWN: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut known = match KNOWN.get_or_init(Default::default).lock() {
        Ok(known) => known,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(&known) = known.get(pattern.as_str()) {
        return known;
    }
    let pattern: &'static str = Box::leak(pattern.into_boxed_str());
    known.insert(pattern);
    pattern
}

/// A bounded label for the method: anything unusual is `other`, so clients cannot add series.
fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "HEAD" => "HEAD",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// The request id: the caller's `X-Request-Id` when it is a short token of visible ASCII (so it
/// can neither flood nor forge a log line), else 16 random hex digits.
struct RequestId(HeaderValue);

impl RequestId {
    fn of(headers: &HeaderMap) -> Self {
        match headers.get(X_REQUEST_ID) {
            Some(given) if is_sane(given.as_bytes()) => Self(given.clone()),
            _ => Self::generate(),
        }
    }

    fn generate() -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = next_random();
        let mut digits = [0u8; 16];
        for (i, d) in digits.iter_mut().enumerate() {
            *d = HEX[((n >> (60 - 4 * i)) & 0xf) as usize];
        }
        Self(HeaderValue::from_bytes(&digits).unwrap_or(HeaderValue::from_static("0")))
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.to_str().unwrap_or("-"))
    }
}

fn is_sane(id: &[u8]) -> bool {
    (1..=MAX_INCOMING_ID).contains(&id.len()) && id.iter().all(|b| (0x21..=0x7e).contains(b))
}

thread_local! {
    /// SplitMix64 state, seeded per thread from the standard library's random hash keys: ids
    /// that do not reveal how many requests a node serves, without a system call per request.
    static STATE: Cell<u64> = Cell::new(std::hash::RandomState::new().hash_one(0u8));
}

fn next_random() -> u64 {
    STATE.with(|state| {
        let x = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        state.set(x);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incoming_ids_must_be_short_visible_ascii() {
        assert!(is_sane(b"4bf92f3577b34da6a3ce929d0e0e4736"));
        assert!(is_sane(b"Root=1-5759e988-bd862e3fe1be46a994272793"));
        assert!(!is_sane(b""));
        assert!(!is_sane(b"has space"));
        assert!(!is_sane("caf\u{e9}".as_bytes()));
        assert!(!is_sane(&[b'a'; MAX_INCOMING_ID + 1]));
        assert!(is_sane(&[b'a'; MAX_INCOMING_ID]));
    }

    #[actix_web::test]
    async fn routes_are_named_by_pattern_with_or_without_route_pattern() {
        use actix_web::{App, HttpResponse, test, web};
        let app = test::init_service(
            App::new()
                .wrap_fn(|req, srv| {
                    let answer = srv.call(req);
                    async move {
                        let mut res = answer.await?;
                        let route = HeaderValue::from_static(route_of(res.request()));
                        res.headers_mut().insert(X_REQUEST_ID, route);
                        Ok(res)
                    }
                })
                .service(
                    web::resource("/labelled/{id}")
                        .app_data(RoutePattern("/labelled/{id}"))
                        .to(HttpResponse::Ok),
                )
                .service(web::resource("/plain/{id}/edit").to(HttpResponse::Ok)),
        )
        .await;
        for (path, route) in [
            ("/labelled/42", "/labelled/{id}"),
            ("/plain/42/edit", "/plain/{id}/edit"),
            ("/plain/43/edit", "/plain/{id}/edit"),
            ("/nowhere/42", "other"),
        ] {
            let res =
                test::call_service(&app, test::TestRequest::get().uri(path).to_request()).await;
            assert_eq!(
                res.headers()
                    .get(X_REQUEST_ID)
                    .and_then(|v| v.to_str().ok()),
                Some(route)
            );
        }
    }

    #[test]
    fn generated_ids_are_sixteen_hex_digits_and_differ() {
        let a = RequestId::generate().to_string();
        let b = RequestId::generate().to_string();
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b);
    }
}
