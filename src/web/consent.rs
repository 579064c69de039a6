//! `POST /consent`: the user's answer on the consent page or the confirmation page, handed to
//! `oauth::approval`, which owns what it means.

use actix_web::web::{Data, Payload};
use actix_web::{HttpRequest, HttpResponse};

use super::PageError;
use super::forms::signed_in_form;
use crate::oauth::approval;
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
            let device = form.get("device_name");
            approval::approve(&state, &signed_in, pending, device, &Origin::of(&req)).await
        }
        Some("deny") => Ok(approval::deny(&state, &pending)),
        _ => Err(PageError::bad_request(
            "Invalid request",
            "Choose Allow or Deny.",
        )),
    }
}
