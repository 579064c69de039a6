//! `POST /consent`: the user's answer on the consent page.

use actix_web::web::{Data, Payload};
use actix_web::{HttpRequest, HttpResponse};

use super::PageError;
use super::login::signed_in_form;
use crate::oauth::authorize::{self, PendingConsent, issue_code, redirect_to_client};
use crate::state::AppState;

pub async fn decide(
    state: Data<AppState>,
    req: HttpRequest,
    payload: Payload,
) -> Result<HttpResponse, PageError> {
    let Some((signed_in, form)) = signed_in_form(&state, &req, payload).await? else {
        return Err(PageError::bad_request(
            "You were signed out",
            "Go back to the app and start again.",
        ));
    };
    let pending: PendingConsent = form
        .get("request")
        .and_then(|h| state.form_signer.open("consent", h))
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .ok_or_else(|| {
            PageError::bad_request(
                "Invalid request",
                "This consent form is not valid. Go back to the app and start again.",
            )
        })?;
    if pending.session != signed_in.id_hash || state.now() >= pending.expires_at {
        return Err(PageError::bad_request(
            "This request has expired",
            "Go back to the app and start again.",
        ));
    }
    let areq = pending.request;
    match form.get("decision") {
        Some("allow") => {
            authorize::remember_consent(&state, &signed_in.user.id, &areq).await?;
            let device = form
                .get("device_name")
                .map(|d| d.trim().chars().take(80).collect::<String>())
                .filter(|d| !d.is_empty());
            issue_code(&state, &signed_in, &areq, device).await
        }
        Some("deny") => Ok(redirect_to_client(
            &state,
            &areq.redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "the user denied the request"),
            ],
            areq.state.as_deref(),
        )),
        _ => Err(PageError::bad_request(
            "Invalid request",
            "Choose Allow or Deny.",
        )),
    }
}
