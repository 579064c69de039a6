//! OpenID Connect RP-Initiated Logout 1.0: `GET/POST /logout/end-session` (the
//! `end_session_endpoint`) and `POST /logout/end-session/confirm`.
//!
//! An app sends the browser here to sign the user out. Anyone can make a browser open this link,
//! so nothing ends before the user confirms on a page of ours (§2, and §6 on third-party
//! logout). The browser goes back only to a `post_logout_redirect_uri` registered for the client
//! the request names (§3): an unregistered one gets an error page, never a redirect.

use actix_web::http::{Method, StatusCode, header};
use actix_web::web::{Data, Payload};
use actix_web::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::forms::{check_csrf, read_form};
use super::login::{AlsoEnd, sign_out};
use super::pages::{EndSessionPage, SignedOutPage};
use super::session::{self, SignedIn};
use super::{PageError, allow_form_redirect_to, render};
use crate::clients::{self, Client};
use crate::db::StoreError;
use crate::db::models::refresh_families;
use crate::oauth::form::Form;
use crate::state::AppState;
use crate::tokens::id_token::{self, HintedSession};
use crate::tokens::refresh::{self, Origin};

/// The purpose the confirmation form's request handle is sealed for.
const SEAL_PURPOSE: &str = "end_session";

/// A checked logout request, carried through the confirmation form sealed, so the user's
/// answer applies to exactly what the app asked for.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct LogoutRequest {
    client_id: Option<String>,
    client_name: Option<String>,
    /// A `post_logout_redirect_uri` registered for the client.
    redirect_uri: Option<String>,
    /// The app's `state`, returned with the redirect (§3).
    state: Option<String>,
    /// The hint's `sid` when it is a live family of the signed-in user and the client: the app
    /// sign-in the user may end too.
    family_id: Option<String>,
}

impl LogoutRequest {
    /// Where the browser goes when this request is done: the app's URI with `state`, if any.
    fn return_uri(&self) -> Option<String> {
        let uri = self.redirect_uri.as_deref()?;
        let mut url = url::Url::parse(uri).ok()?;
        if let Some(s) = &self.state {
            url.query_pairs_mut().append_pair("state", s);
        }
        Some(url.to_string())
    }
}

fn invalid(message: impl Into<String>) -> PageError {
    PageError::bad_request("This sign-out link is not valid", message)
}

/// `GET/POST /logout/end-session` (RP-Initiated Logout 1.0 §2): check the request, then ask the
/// signed-in user to confirm; with no browser session there is nothing to end, so the browser
/// goes straight on.
pub async fn start(
    state: Data<AppState>,
    req: HttpRequest,
    payload: Payload,
) -> Result<HttpResponse, PageError> {
    let params = if req.method() == Method::POST {
        read_form(&req, payload).await?
    } else {
        Form::parse(req.query_string().as_bytes())
            .map_err(|e| invalid(e.description.unwrap_or_default()))?
    };
    let (mut request, hinted) = check(&state, &params).await?;
    let Some(signed_in) = session::current(&state, &req).await? else {
        return Ok(finish(&request));
    };
    // The hint names someone else: the page says so; nothing of theirs is offered to end.
    let other_account = hinted.as_ref().is_some_and(|h| h.sub != signed_in.user.id);
    if let Some(h) = hinted.filter(|h| h.sub == signed_in.user.id) {
        request.family_id = live_family(&state, &signed_in, h).await?;
    }
    let handle = serde_json::to_vec(&request).map_err(|_| PageError::internal())?;
    let page = EndSessionPage {
        username: signed_in.user.username.clone(),
        app_name: request.client_name.clone(),
        other_account,
        can_end_app: request.family_id.is_some(),
        csrf_token: state.form_signer.csrf_token(&signed_in.cookie_value),
        request_handle: state.form_signer.seal(SEAL_PURPOSE, &handle),
        return_host: request
            .redirect_uri
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| u.host_str().map(str::to_string)),
    };
    let mut resp = render(StatusCode::OK, &page);
    if let Some(uri) = &request.redirect_uri {
        allow_form_redirect_to(&mut resp, uri);
    }
    Ok(resp)
}

/// The parameters of §2, checked: the hint is an ID token of ours (expiry ignored), its client
/// agrees with `client_id`, and a `post_logout_redirect_uri` is registered for that client.
async fn check(
    state: &AppState,
    params: &Form,
) -> Result<(LogoutRequest, Option<HintedSession>), PageError> {
    let given = |name: &str| params.get(name).filter(|v| !v.is_empty());
    let hinted = match given("id_token_hint") {
        Some(hint) => {
            let keys = state.keys.for_token(&state.db, hint, state.now()).await?;
            let hinted = id_token::hinted_session(&keys, hint, &state.issuer)
                .map_err(|e| invalid(format!("The {e}.")))?;
            Some(hinted)
        }
        None => None,
    };
    let client_id = match (given("client_id"), &hinted) {
        (Some(id), Some(h)) if id != h.client_id => {
            return Err(invalid(
                "The id_token_hint was issued to another app than the client_id names.",
            ));
        }
        (Some(id), _) => Some(id.to_string()),
        (None, Some(h)) => Some(h.client_id.clone()),
        (None, None) => None,
    };
    let client = match client_id {
        Some(id) => Some(find_client(state, id).await?),
        None => None,
    };
    let redirect_uri = match (given("post_logout_redirect_uri"), &client) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(invalid(
                "A post_logout_redirect_uri needs a client_id or an id_token_hint naming the app.",
            ));
        }
        (Some(uri), Some(c)) => Some(
            c.post_logout_redirect_uri(uri)
                .ok_or_else(|| {
                    invalid(format!(
                        "{} did not register that address to return to after signing out.",
                        c.name
                    ))
                })?
                .to_string(),
        ),
    };
    let request = LogoutRequest {
        client_id: client.as_ref().map(|c| c.client_id.to_string()),
        client_name: client.map(|c| c.name),
        state: redirect_uri
            .as_ref()
            .and(given("state"))
            .map(str::to_string),
        redirect_uri,
        family_id: None,
    };
    Ok((request, hinted))
}

async fn find_client(state: &AppState, client_id: String) -> Result<Client, PageError> {
    state
        .db
        .read(move |c| clients::find(c, &client_id))
        .await?
        .ok_or_else(|| invalid("The app that sent you here is not registered with lineage."))
}

/// The hint's family (`sid`), if it is live and belongs to the signed-in user and the hint's
/// client: the app's sign-in on this device.
async fn live_family(
    state: &AppState,
    signed_in: &SignedIn,
    hinted: HintedSession,
) -> Result<Option<String>, StoreError> {
    let (user, policy, now) = (signed_in.user.clone(), state.refresh_policy, state.now());
    state
        .db
        .read(move |c| {
            Ok(refresh_families::find(c, &hinted.sid)?
                .filter(|f| f.user_id == user.id && f.client_id == hinted.client_id)
                .filter(|f| refresh::end_reason(f, Some(&user), &policy, now).is_none())
                .map(|f| f.id))
        })
        .await
}

/// `POST /logout/end-session/confirm`: the user's answer. "Sign out" ends the browser session
/// (and, if ticked, the app's family), "Cancel" goes back to the app signed in.
pub async fn confirm(
    state: Data<AppState>,
    req: HttpRequest,
    payload: Payload,
) -> Result<HttpResponse, PageError> {
    let form = read_form(&req, payload).await?;
    let request = form
        .get("request")
        .and_then(|h| state.form_signer.open(SEAL_PURPOSE, h))
        .and_then(|raw| serde_json::from_slice::<LogoutRequest>(&raw).ok())
        .ok_or_else(|| {
            PageError::bad_request(
                "This sign-out form is not valid",
                "Go back to the app and sign out again.",
            )
        })?;
    let Some(signed_in) = session::current(&state, &req).await? else {
        // Signed out meanwhile (another tab): nothing is left to end.
        return Ok(finish(&request));
    };
    check_csrf(&state, &signed_in, &form)?;
    if form.get("decision") == Some("cancel") {
        let back = request.return_uri().unwrap_or_else(|| "/account".into());
        return Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, back))
            .finish());
    }
    let also = match (&request.family_id, &request.client_id) {
        (Some(id), Some(client_id)) if form.get("end_app") == Some("on") => AlsoEnd::Family {
            id: id.clone(),
            client_id: client_id.clone(),
        },
        _ => AlsoEnd::Nothing,
    };
    sign_out(&state, &signed_in, also, Origin::of(&req)).await?;
    let mut resp = finish(&request);
    let _ = resp.add_removal_cookie(&state.cookies.removal(state.cookies.session));
    Ok(resp)
}

/// Back to the app's registered URI with its `state` (§3), or our own "signed out" page.
fn finish(request: &LogoutRequest) -> HttpResponse {
    match request.return_uri() {
        Some(uri) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, uri))
            .finish(),
        None => render(
            StatusCode::OK,
            &SignedOutPage {
                app_name: request.client_name.clone(),
            },
        ),
    }
}
