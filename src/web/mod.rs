//! The server-rendered pages: sign-in, consent, account, sign-out, errors, and the demo client.

pub mod account;
pub mod consent;
pub mod csrf;
pub mod demo;
pub mod demo_device;
pub mod demo_logout;
pub mod end_session;
pub mod forms;
pub mod health;
pub mod login;
pub mod pages;
pub mod session;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use crate::db::StoreError;

/// The content security policy of every HTML page: no script at all, no framing, and forms that
/// post only to this server. `form-action` comes last so a page can extend it.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
                   base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// Security headers on every HTML response: no inline script (none is needed), no framing, no
/// referrer leaks of codes or states, no caching of personal pages. A header the handler set
/// (see `allow_form_redirect_to`) is kept.
pub fn html_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, CSP))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::CACHE_CONTROL, "no-store"))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
}

/// For a page whose form ends in a redirect to the client: Chromium applies `form-action` to the
/// redirects that follow a form submission (CSP Level 3 `form-action`), so the page's own policy
/// also allows the origin of that redirect URI (the scheme, for a native app's
/// `com.example.app:/cb`).
pub fn allow_form_redirect_to(resp: &mut HttpResponse, redirect_uri: &str) {
    let Some(source) = form_action_source(redirect_uri) else {
        return;
    };
    if let Ok(value) = header::HeaderValue::from_str(&format!("{CSP} {source}")) {
        resp.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
}

/// The CSP source expression matching a redirect URI: its origin (`https://app.example:8443`) or,
/// for a URI without one (a custom scheme), its scheme (`com.example.app:`). `None` for anything
/// a source expression cannot carry safely (an IPv6 literal, a `;`, a quote).
fn form_action_source(redirect_uri: &str) -> Option<String> {
    let url = url::Url::parse(redirect_uri).ok()?;
    let source = match url.origin() {
        origin @ url::Origin::Tuple(..) => origin.ascii_serialization(),
        url::Origin::Opaque(_) => format!("{}:", url.scheme()),
    };
    source
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | ':' | '/'))
        .then_some(source)
}

/// Render a page, or a logged generic 500 page if the template fails.
pub fn render(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            PageError::internal().error_response()
        }
    }
}

/// An error shown to a person as an HTML page.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{title}: {message}")]
pub struct PageError {
    pub status: StatusCode,
    pub title: String,
    pub message: String,
    /// Seconds for a `Retry-After` header (429, 503).
    pub retry_after: Option<u64>,
}

impl PageError {
    pub fn new(status: StatusCode, title: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            title: title.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn bad_request(title: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, title, message)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The server could not complete this request. Please try again.",
        )
    }

    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Temporarily unavailable",
            "The service is briefly unavailable. Please try again in a moment.",
        )
    }

    pub fn csrf() -> Self {
        Self::bad_request(
            "This form has expired",
            "Go back, reload the page and submit it again.",
        )
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "database unavailable");
            PageError::unavailable()
        } else {
            tracing::error!(error = %e, "storage error");
            PageError::internal()
        }
    }
}

/// Every password-hashing place is taken: 503, try again shortly.
impl From<crate::hashing::HashingError> for PageError {
    fn from(e: crate::hashing::HashingError) -> Self {
        match e {
            crate::hashing::HashingError::Busy => PageError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is busy",
                "Too many sign-ins are being checked right now. Please try again in a moment.",
            )
            .with_retry_after(crate::hashing::BUSY_RETRY_AFTER),
            crate::hashing::HashingError::Failed => PageError::internal(),
        }
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let page = pages::ErrorPage {
            status: self.status.as_u16(),
            title: &self.title,
            message: &self.message,
        };
        let mut resp = match page.render() {
            Ok(body) => HttpResponse::build(self.status)
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .content_type("text/html; charset=utf-8")
                .body(body),
            Err(_) => HttpResponse::build(self.status).body(self.message.clone()),
        };
        if let Some(seconds) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        }
        resp
    }
}

/// `2026-11-23 12:03 UTC` from unix seconds (proleptic Gregorian; Howard Hinnant's
/// civil_from_days).
pub fn format_time(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}

/// A local path to return to after sign-in: `/…`, never `//host` or a backslash trick.
pub fn safe_return_to(raw: Option<&str>) -> String {
    match raw {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && !p.chars().any(char::is_control) =>
        {
            p.to_string()
        }
        _ => "/account".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format() {
        assert_eq!(format_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_time(1_795_423_523), "2026-11-23 08:45 UTC");
    }

    #[test]
    fn form_action_source_of_a_redirect_uri() {
        let source = |u: &str| form_action_source(u);
        assert_eq!(
            source("https://app.example/cb?x=1").as_deref(),
            Some("https://app.example")
        );
        assert_eq!(
            source("http://127.0.0.1:9876/callback").as_deref(),
            Some("http://127.0.0.1:9876")
        );
        assert_eq!(
            source("com.example.app:/oauth2redirect").as_deref(),
            Some("com.example.app:")
        );
        assert_eq!(source("http://[::1]:8080/cb"), None);
        assert_eq!(source("https://a;b.example/cb"), None);
        assert_eq!(source("not a url"), None);
    }

    #[test]
    fn return_to_is_local_only() {
        assert_eq!(safe_return_to(Some("/authorize?x=1")), "/authorize?x=1");
        assert_eq!(safe_return_to(Some("//evil.example")), "/account");
        assert_eq!(safe_return_to(Some("https://evil.example")), "/account");
        assert_eq!(safe_return_to(Some("/\\evil.example")), "/account");
        assert_eq!(safe_return_to(None), "/account");
    }
}
