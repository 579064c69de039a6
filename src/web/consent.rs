//! `POST /consent`: the user's answer on the consent page or the confirmation page.

use actix_web::web::{Data, Payload};
use actix_web::{HttpRequest, HttpResponse};

use super::PageError;
use super::login::signed_in_form;
use crate::oauth::approval::{self, PendingKind};
use crate::oauth::authorize::redirect_to_client;
use crate::state::AppState;
use crate::tokens::refresh::Origin;

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
    let pending = approval::open(&state, &signed_in, form.get("request"))?;
    match form.get("decision") {
        Some("allow") => {
            // Only the consent page asks for a device name; the confirmation names it from the
            // browser, as a request that needs no page does.
            let device = form
                .get("device_name")
                .filter(|_| pending.kind == PendingKind::Consent)
                .map(|d| d.trim().chars().take(80).collect::<String>())
                .filter(|d| !d.is_empty());
            approval::approve(&state, &signed_in, pending, device, &Origin::of(&req)).await
        }
        Some("deny") => Ok(redirect_to_client(
            &state,
            &pending.request.redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "the user denied the request"),
            ],
            pending.request.state.as_deref(),
        )),
        _ => Err(PageError::bad_request(
            "Invalid request",
            "Choose Allow or Deny.",
        )),
    }
}
