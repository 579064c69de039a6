//! The HTML forms every page posts: read with the same limits and strictness as the OAuth
//! endpoints, and for a signed-in browser, its session and CSRF token checked first.

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use actix_web::web::Payload;

use super::PageError;
use super::session::{self, SignedIn};
use crate::oauth::form::Form;
use crate::state::AppState;

/// Read an HTML form body (same limits and strictness as the OAuth endpoints).
pub async fn read_form(req: &HttpRequest, payload: Payload) -> Result<Form, PageError> {
    Form::read(req, payload).await.map_err(|e| {
        PageError::new(
            e.status.unwrap_or(StatusCode::BAD_REQUEST),
            "Invalid form",
            e.description.unwrap_or_default(),
        )
    })
}

/// The CSRF check of a signed-in browser's form.
pub fn check_csrf(state: &AppState, signed_in: &SignedIn, form: &Form) -> Result<(), PageError> {
    match form.get("csrf_token") {
        Some(t) if state.form_signer.csrf_ok(&signed_in.cookie_value, t) => Ok(()),
        _ => Err(PageError::csrf()),
    }
}

/// A signed-in browser's form post: the form, with its session and CSRF token checked.
/// `None` when the browser is not signed in (the caller decides where to send it).
pub async fn signed_in_form(
    state: &AppState,
    req: &HttpRequest,
    payload: Payload,
) -> Result<Option<(SignedIn, Form)>, PageError> {
    let form = read_form(req, payload).await?;
    let Some(signed_in) = session::current(state, req).await? else {
        return Ok(None);
    };
    check_csrf(state, &signed_in, &form)?;
    Ok(Some((signed_in, form)))
}
