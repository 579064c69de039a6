//! Whether a signed-in user's authorization request needs a page, and the two pages it may need:
//! the consent page and the one-click confirmation for public clients. `GET /authorize` and
//! `POST /consent` both decide here.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::authorize::{AuthorizationRequest, issue_code, redirect_to_client};
use super::prompt::Prompt;
use crate::clients::{self, Client};
use crate::db::models::consents;
use crate::domain::Scope;
use crate::state::AppState;
use crate::tokens::refresh::Origin;
use crate::web::pages::{
    ConfirmPage, ConsentPage, ScopeLine, describe_scope, device_name_from_user_agent,
};
use crate::web::session::SignedIn;
use crate::web::{PageError, allow_form_redirect_to, render};

/// The consent page's request handle is good for this long.
pub const CONSENT_TTL: i64 = 600;

/// What a signed-in user's request needs before a code is issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    /// Nothing: send the browser back with a code.
    Issue,
    /// The user allowed this before (or the client is first-party), but the client is public:
    /// any app can claim its redirect URI (RFC 8252 §8.6), so the user confirms with one click.
    Confirm,
    /// The consent page.
    Consent,
}

/// The one rule: consent is needed unless remembered or first-party, or the client asks for it
/// (`prompt=consent`); public clients never get a code without the user seeing a page.
pub fn decide(client: &Client, consent_covers: bool, prompt: &Prompt) -> Approval {
    if prompt.consent || !(client.first_party || consent_covers) {
        Approval::Consent
    } else if client.is_public {
        Approval::Confirm
    } else {
        Approval::Issue
    }
}

/// Whether the user's remembered consent for this client covers the requested scope.
pub async fn consent_covers(
    state: &AppState,
    user_id: &str,
    areq: &AuthorizationRequest,
) -> Result<bool, PageError> {
    let (user, client) = (user_id.to_string(), areq.client_id.clone());
    let granted = state
        .db
        .read(move |c| consents::find_scope(c, &user, &client))
        .await?;
    let requested = Scope::parse(&areq.scope).unwrap_or_default();
    Ok(granted
        .and_then(|g| Scope::parse(&g).ok())
        .is_some_and(|g| requested.is_subset_of(&g)))
}

/// Which page a sealed request handle was shown on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PendingKind {
    #[default]
    Consent,
    Confirm,
}

/// The sealed form of a pending request, bound to the browser session that saw the page.
#[derive(Serialize, Deserialize)]
pub struct PendingConsent {
    pub request: AuthorizationRequest,
    pub session: String,
    pub expires_at: i64,
    #[serde(default)]
    pub kind: PendingKind,
}

fn seal(
    state: &AppState,
    signed_in: &SignedIn,
    areq: &AuthorizationRequest,
    kind: PendingKind,
) -> Result<String, PageError> {
    let pending = PendingConsent {
        request: areq.clone(),
        session: signed_in.id_hash.clone(),
        expires_at: state.now() + CONSENT_TTL,
        kind,
    };
    let payload = serde_json::to_vec(&pending).map_err(|_| PageError::internal())?;
    Ok(state.form_signer.seal("consent", &payload))
}

/// The pending request of a posted handle, if it is genuine, this browser's, and not expired.
pub fn open(
    state: &AppState,
    signed_in: &SignedIn,
    handle: Option<&str>,
) -> Result<PendingConsent, PageError> {
    let pending: PendingConsent = handle
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
    Ok(pending)
}

fn scope_lines(scope: &str) -> Vec<ScopeLine> {
    Scope::parse(scope)
        .unwrap_or_default()
        .iter()
        .map(|s| ScopeLine {
            name: s.to_string(),
            title: describe_scope(s),
        })
        .collect()
}

fn redirect_host(redirect_uri: &str) -> String {
    url::Url::parse(redirect_uri)
        .ok()
        .map(|u| match u.origin() {
            url::Origin::Tuple(..) => u.origin().ascii_serialization(),
            url::Origin::Opaque(_) => format!("{}:", u.scheme()),
        })
        .unwrap_or_else(|| redirect_uri.to_string())
}

pub fn consent_page(
    state: &AppState,
    signed_in: &SignedIn,
    areq: &AuthorizationRequest,
    client: &Client,
    origin: &Origin,
) -> Result<HttpResponse, PageError> {
    let page = ConsentPage {
        username: signed_in.user.username.clone(),
        client_name: client.name.clone(),
        scopes: scope_lines(&areq.scope),
        csrf_token: state.form_signer.csrf_token(&signed_in.cookie_value),
        request_handle: seal(state, signed_in, areq, PendingKind::Consent)?,
        device_name: device_name_from_user_agent(origin.user_agent.as_deref()),
        redirect_host: redirect_host(&areq.redirect_uri),
    };
    let mut resp = render(StatusCode::OK, &page);
    allow_form_redirect_to(&mut resp, &areq.redirect_uri);
    Ok(resp)
}

pub fn confirmation_page(
    state: &AppState,
    signed_in: &SignedIn,
    areq: &AuthorizationRequest,
    client: &Client,
) -> Result<HttpResponse, PageError> {
    let page = ConfirmPage {
        username: signed_in.user.username.clone(),
        client_name: client.name.clone(),
        scopes: scope_lines(&areq.scope),
        csrf_token: state.form_signer.csrf_token(&signed_in.cookie_value),
        request_handle: seal(state, signed_in, areq, PendingKind::Confirm)?,
        redirect_host: redirect_host(&areq.redirect_uri),
    };
    let mut resp = render(StatusCode::OK, &page);
    allow_form_redirect_to(&mut resp, &areq.redirect_uri);
    Ok(resp)
}

/// "Allow" on the consent page, or "Continue" on the confirmation page. A confirmation is checked
/// again: if the user removed the app's access meanwhile, the consent page is shown instead.
pub async fn approve(
    state: &AppState,
    signed_in: &SignedIn,
    pending: PendingConsent,
    device_name: Option<&str>,
    origin: &Origin,
) -> Result<HttpResponse, PageError> {
    let areq = pending.request;
    if pending.kind == PendingKind::Consent {
        // Only the consent page asks for a device name; the confirmation names it from the
        // browser, as a request that needs no page does.
        let device_name = device_name
            .map(|d| d.trim().chars().take(80).collect::<String>())
            .filter(|d| !d.is_empty());
        remember_consent(state, &signed_in.user.id, &areq).await?;
        return issue_code(state, signed_in, &areq, device_name).await;
    }
    let lookup = areq.client_id.clone();
    let client = state
        .db
        .read(move |c| clients::find(c, &lookup))
        .await?
        .ok_or_else(|| {
            PageError::bad_request(
                "Unknown app",
                "The app that sent you here is no longer registered with this server.",
            )
        })?;
    let covers = consent_covers(state, &signed_in.user.id, &areq).await?;
    match decide(&client, covers, &Prompt::default()) {
        Approval::Consent => consent_page(state, signed_in, &areq, &client, origin),
        Approval::Confirm | Approval::Issue => {
            let device = device_name_from_user_agent(origin.user_agent.as_deref());
            issue_code(state, signed_in, &areq, Some(device)).await
        }
    }
}

/// "Deny": the client hears `access_denied` (RFC 6749 §4.1.2.1).
pub fn deny(state: &AppState, pending: &PendingConsent) -> HttpResponse {
    redirect_to_client(
        state,
        &pending.request.redirect_uri,
        &[
            ("error", "access_denied"),
            ("error_description", "the user denied the request"),
        ],
        pending.request.state.as_deref(),
    )
}

/// Remember that the user allowed these scopes for this client (union with earlier consent).
async fn remember_consent(
    state: &AppState,
    user_id: &str,
    areq: &AuthorizationRequest,
) -> Result<(), PageError> {
    let (user, client, scope, now) = (
        user_id.to_string(),
        areq.client_id.clone(),
        areq.scope.clone(),
        state.now(),
    );
    state
        .db
        .write(move |c| {
            let mut all = Scope::parse(&scope).unwrap_or_default();
            if let Some(previous) =
                consents::find_scope(c, &user, &client)?.and_then(|p| Scope::parse(&p).ok())
            {
                all = Scope::parse(&format!("{previous} {all}")).unwrap_or(all);
            }
            consents::upsert(c, &user, &client, &all.to_string(), now)
        })
        .await?;
    Ok(())
}
