//! `/demo` (only with `serve --demo`): a tiny public client living inside the server that walks a
//! person through the authorization-code flow with PKCE, shows the tokens, rotates the refresh
//! token, and replays an old one to show reuse detection. It calls the same grant code as
//! `POST /token`. It is an OpenID Connect app too: it asks for `openid profile email` with a
//! `nonce`, shows the ID token next to the access token, and lists the back-channel logouts
//! lineage sent it (`demo_logout.rs`). Its tokens are bound to a DPoP key of the browser session
//! (`demo_device.rs`); "Steal the refresh token" shows a copy of the refresh token refused
//! without that key, and the security event it leaves.

use actix_web::http::{StatusCode, header};
use actix_web::web::{Data, Payload};
use actix_web::{HttpRequest, HttpResponse};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lineage_jwt::dpop::DeviceKey;
use serde_json::Value;

use super::demo_device::{self, COOKIE, DemoState, request_tokens};
use super::demo_logout::DemoLogouts;
use super::forms::read_form;
use super::pages::{DemoJwt, DemoLogout, DemoOutcome, DemoPage, DemoTokens, EventLine};
use super::{PageError, account, render};
use crate::clients::{self, Client};
use crate::db::StoreError;
use crate::db::models::audit_events;
use crate::demo::{DEMO_APP_CLIENT, DEMO_APP_SCOPE, DEMO_USER, demo_backchannel_uri};
use crate::domain::Seconds;
use crate::oauth::error::OAuthError;
use crate::oauth::form::Form;
use crate::oauth::issue::TokenResponse;
use crate::oauth::token_request::TokenRequest;
use crate::state::AppState;
use crate::tokens;
use crate::tokens::secret::PlainToken;

fn redirect_uri(state: &AppState) -> String {
    format!("{}/demo/callback", state.issuer)
}

async fn demo_client(state: &AppState) -> Result<Client, PageError> {
    state
        .db
        .read(|c| clients::find(c, DEMO_APP_CLIENT))
        .await?
        .ok_or_else(|| {
            PageError::new(
                StatusCode::NOT_FOUND,
                "Demo not set up",
                "Start the server with --demo.",
            )
        })
}

fn page(state: &AppState, client: &Client, binding: &str) -> DemoPage {
    // The demo registers its logout URI when it can (`demo::prepare`); say why when it could not.
    let backchannel_note = match (
        &client.backchannel_logout_uri,
        demo_backchannel_uri(&state.issuer),
    ) {
        (Some(_), _) => None,
        (None, None) => Some(format!(
            "The issuer {} is http on an address other than loopback, so the demo app has no \
             back-channel logout URI: lineage sends logout tokens only over https, or over http \
             to a loopback address. Ended sessions are not announced to this app.",
            state.issuer
        )),
        (None, Some(_)) => Some(
            "The demo app has no back-channel logout URI (an operator removed it); \
             restart with --demo to register it again."
                .into(),
        ),
    };
    DemoPage {
        heading: "Try the sign-in flow".into(),
        lead: "This page plays a third-party app that signs you in with lineage \
               using the authorization-code flow with PKCE."
            .into(),
        demo_user: DEMO_USER.into(),
        csrf_token: state.form_signer.csrf_token(binding),
        tokens: None,
        device_jkt: None,
        outcomes: Vec::new(),
        events: Vec::new(),
        logouts: Vec::new(),
        backchannel_note,
        notice: None,
        error: None,
    }
}

fn binding(req: &HttpRequest) -> Option<String> {
    req.cookie(COOKIE)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty())
}

/// The page with the logouts received so far, the one of the session shown marked.
fn with_logouts(mut view: DemoPage, logouts: &DemoLogouts) -> DemoPage {
    let current = view.tokens.as_ref().map(|t| t.sid.clone());
    view.logouts = logouts
        .list()
        .into_iter()
        .map(|l| DemoLogout {
            current: current.as_deref() == Some(l.sid.as_str()),
            sid: l.sid,
            reason: l.reason,
            alg: l.alg,
        })
        .collect();
    view
}

pub async fn index(
    state: Data<AppState>,
    logouts: Data<DemoLogouts>,
    req: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let client = demo_client(&state).await?;
    let view = page(&state, &client, &binding(&req).unwrap_or_default());
    Ok(render(StatusCode::OK, &with_logouts(view, &logouts)))
}

/// Make a PKCE verifier, a state, a nonce and the device key, keep them in the (encrypted) cookie,
/// and send the browser to /authorize.
pub async fn start(state: Data<AppState>) -> Result<HttpResponse, PageError> {
    demo_client(&state).await?;
    let verifier = PlainToken::generate()
        .map_err(|_| PageError::internal())?
        .expose()
        .to_string();
    let client_state = PlainToken::generate()
        .map_err(|_| PageError::internal())?
        .expose()[..16]
        .to_string();
    let nonce = PlainToken::generate()
        .map_err(|_| PageError::internal())?
        .expose()[..22]
        .to_string();
    let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ));
    let saved = DemoState::new(verifier, client_state.clone(), nonce.clone())?;
    let jkt = saved.device_key().ok_or_else(PageError::internal)?.jkt();
    let sealed = saved.seal(&state)?;
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", DEMO_APP_CLIENT)
        .append_pair("redirect_uri", &redirect_uri(&state))
        .append_pair("scope", DEMO_APP_SCOPE)
        .append_pair("state", &client_state)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("nonce", &nonce)
        // RFC 9449 §10: the code can only be redeemed with a proof by this key.
        .append_pair("dpop_jkt", &jkt)
        .finish();
    let cookie = state
        .cookies
        .cookie(COOKIE, sealed, Some(Seconds::new(600)));
    let mut resp = HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/authorize?{query}")))
        .finish();
    let _ = resp.add_cookie(&cookie);
    Ok(resp)
}

fn decode_part(jwt: &str, index: usize) -> String {
    jwt.split('.')
        .nth(index)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_default()
}

/// A JWT's payload, read without checking the signature: the demo received the token straight
/// from the token endpoint's code, which OIDC Core §3.1.3.7 (6) lets a client trust.
fn payload(jwt: &str) -> Option<Value> {
    jwt.split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
}

/// A string claim of a JWT's payload.
fn claim(jwt: &str, name: &str) -> Option<String> {
    payload(jwt).and_then(|v| v.get(name).and_then(Value::as_str).map(str::to_string))
}

fn tokens_view(t: &TokenResponse, previous: Option<String>, generation: u32) -> DemoTokens {
    DemoTokens {
        header: decode_part(&t.access_token, 0),
        claims: decode_part(&t.access_token, 1),
        id_token: t.id_token.as_deref().map(|id| DemoJwt {
            header: decode_part(id, 0),
            claims: decode_part(id, 1),
        }),
        sid: claim(&t.access_token, "sid").unwrap_or_default(),
        token_type: t.token_type.to_string(),
        cnf_jkt: payload(&t.access_token).and_then(|v| {
            v.pointer("/cnf/jkt")
                .and_then(Value::as_str)
                .map(str::to_string)
        }),
        expires_in: t.expires_in,
        refresh_token: t.refresh_token.clone().unwrap_or_default(),
        previous_refresh_token: previous,
        generation,
    }
}

fn outcome(what: &str, result: &Result<TokenResponse, OAuthError>) -> DemoOutcome {
    match result {
        Ok(t) => DemoOutcome {
            what: what.into(),
            answer: format!(
                "200 OK — new refresh token {}",
                t.refresh_token.as_deref().unwrap_or("")
            ),
            ok: true,
        },
        Err(e) => DemoOutcome {
            what: what.into(),
            answer: format!("{} — {}", e, e.description.as_deref().unwrap_or("")),
            ok: false,
        },
    }
}

pub async fn callback(
    state: Data<AppState>,
    logouts: Data<DemoLogouts>,
    req: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let client = demo_client(&state).await?;
    let query = Form::parse(req.query_string().as_bytes()).unwrap_or_default();
    let bind = binding(&req).unwrap_or_default();
    let mut view = page(&state, &client, &bind);
    let saved = demo_device::saved(&state, &req);
    let Some((saved, key)) = saved
        .filter(|s| query.get("state") == Some(s.state.as_str()))
        .and_then(|s| s.device_key().map(|k| (s, k)))
    else {
        view.error = Some(
            "The state does not match the one this app sent \
             (or the demo cookie expired). Start again."
                .into(),
        );
        return Ok(render(StatusCode::BAD_REQUEST, &view));
    };
    if query.get("iss") != Some(state.issuer.as_str()) {
        view.error =
            Some("The response's iss does not name this server (RFC 9207); refusing it.".into());
        return Ok(render(StatusCode::BAD_REQUEST, &view));
    }
    if let Some(error) = query.get("error") {
        view.heading = "The request was not approved".into();
        view.error = Some(format!(
            "{error}: {}",
            query.get("error_description").unwrap_or("")
        ));
        return Ok(render(StatusCode::OK, &view));
    }
    let request = TokenRequest::AuthorizationCode {
        code: PlainToken::new(query.get("code").unwrap_or("")),
        redirect_uri: Some(redirect_uri(&state)),
        code_verifier: Some(saved.verifier),
    };
    view.device_jkt = Some(key.jkt());
    let result = request_tokens(&state, &client, &req, request, Some(&key)).await;
    view.outcomes
        .push(outcome("grant_type=authorization_code", &result));
    match result {
        // OIDC Core §3.1.3.7 (11): the ID token must echo the nonce this sign-in sent.
        Ok(t)
            if t.id_token
                .as_deref()
                .is_some_and(|id| claim(id, "nonce").as_deref() != Some(saved.nonce.as_str())) =>
        {
            view.heading = "The ID token does not belong to this sign-in".into();
            view.error = Some("Its nonce is not the one this app sent; refusing it.".into());
        }
        Ok(t) => {
            view.heading = "Signed in: the app has its tokens".into();
            view.lead = "The code was exchanged with its PKCE verifier and a DPoP proof by \
                         this app's key. A new refresh-token family started for this device, \
                         bound to the key."
                .into();
            view.tokens = Some(tokens_view(&t, None, 0));
        }
        Err(_) => view.heading = "The code exchange failed".into(),
    }
    Ok(render(StatusCode::OK, &with_logouts(view, &logouts)))
}

fn check(state: &AppState, req: &HttpRequest, form: &Form) -> Result<String, PageError> {
    let bind = binding(req).ok_or_else(PageError::csrf)?;
    match form.get("csrf_token") {
        Some(t) if state.form_signer.csrf_ok(&bind, t) => Ok(bind),
        _ => Err(PageError::csrf()),
    }
}

/// A refresh as the demo app sends it, with a proof by `key` (none: without a proof).
async fn rotate(
    state: &AppState,
    client: &Client,
    req: &HttpRequest,
    token: &str,
    key: Option<&DeviceKey>,
) -> Result<TokenResponse, OAuthError> {
    let request = TokenRequest::refresh(token, None)?;
    request_tokens(state, client, req, request, key).await
}

/// A post from one of the demo's own pages: its form, the browser binding its CSRF token was
/// checked against, the demo app, and the app's key in this browser.
struct DemoPost {
    form: Form,
    bind: String,
    client: Client,
    key: DeviceKey,
}

impl DemoPost {
    /// The page this post answers with, showing the device key.
    fn page(&self, state: &AppState) -> DemoPage {
        let mut view = page(state, &self.client, &self.bind);
        view.device_jkt = Some(self.key.jkt());
        view
    }
}

async fn demo_post(
    state: &AppState,
    req: &HttpRequest,
    payload: Payload,
) -> Result<DemoPost, PageError> {
    let form = read_form(req, payload).await?;
    let bind = check(state, req, &form)?;
    let client = demo_client(state).await?;
    let key = demo_device::saved(state, req)
        .and_then(|s| s.device_key())
        .ok_or_else(|| {
            PageError::bad_request(
                "The demo's sign-in has ended",
                "This browser no longer holds the demo app's key. Start the sign-in again.",
            )
        })?;
    Ok(DemoPost {
        form,
        bind,
        client,
        key,
    })
}

/// The generation a form's tokens are at.
fn generation(form: &Form) -> u32 {
    form.get("generation")
        .and_then(|g| g.parse::<u32>().ok())
        .unwrap_or(0)
}

pub async fn refresh(
    state: Data<AppState>,
    logouts: Data<DemoLogouts>,
    req: HttpRequest,
    payload: Payload,
) -> Result<HttpResponse, PageError> {
    let post = demo_post(&state, &req, payload).await?;
    let mut view = post.page(&state);
    let DemoPost {
        form, client, key, ..
    } = post;
    let current = form.get("refresh_token").unwrap_or("").to_string();
    let result = rotate(&state, &client, &req, &current, Some(&key)).await;
    view.outcomes
        .push(outcome("grant_type=refresh_token", &result));
    match result {
        Ok(t) => {
            view.heading = "Rotated".into();
            view.lead = "The old refresh token is now used up; the new one replaces it. \
                         Try replaying the old one."
                .into();
            view.tokens = Some(tokens_view(&t, Some(current), generation(&form) + 1));
        }
        Err(_) => {
            view.heading = "The refresh failed".into();
            view.lead = "This session has ended. Sign in again to start a new one.".into();
        }
    }
    Ok(render(StatusCode::OK, &with_logouts(view, &logouts)))
}

pub async fn replay(
    state: Data<AppState>,
    logouts: Data<DemoLogouts>,
    req: HttpRequest,
    payload: Payload,
) -> Result<HttpResponse, PageError> {
    let post = demo_post(&state, &req, payload).await?;
    let mut view = post.page(&state);
    let DemoPost {
        form, client, key, ..
    } = post;
    let old = form.get("old_refresh_token").unwrap_or("").to_string();
    let current = form.get("refresh_token").unwrap_or("").to_string();
    // With this device's key: a used token proven by the right key is reuse. Without the key it
    // would be refused before that question is asked (see `steal`).
    let replayed = rotate(&state, &client, &req, &old, Some(&key)).await;
    view.outcomes
        .push(outcome("replay of the old refresh token", &replayed));
    let after = rotate(&state, &client, &req, &current, Some(&key)).await;
    view.outcomes
        .push(outcome("the newest refresh token, right after", &after));
    view.heading = "Reuse detected: the whole family was revoked".into();
    view.lead = "A used refresh token came back, signed by this device's key, which means \
                 the token and the key were copied. lineage revoked every token of this \
                 device's session — the newest one too — and recorded a security event on the \
                 account page."
        .into();
    if replayed.is_ok() {
        view.heading = "The old token was accepted within the retry grace".into();
        view.lead = "Within a few seconds of a rotation, the same parent gets the same \
                     successor back (a retry after a lost response). \
                     Wait a few seconds and replay again."
            .into();
    }
    Ok(render(StatusCode::OK, &with_logouts(view, &logouts)))
}

/// "Steal the refresh token": what someone holding a copy of the current refresh token gets
/// without this device's key — first with a proof by a key of their own, then with no proof —
/// and the security event it leaves. Then the device refreshes with its key, which still works:
/// the refused copy spent nothing (RFC 9449 §1, §5).
pub async fn steal(
    state: Data<AppState>,
    logouts: Data<DemoLogouts>,
    req: HttpRequest,
    payload: Payload,
) -> Result<HttpResponse, PageError> {
    let post = demo_post(&state, &req, payload).await?;
    let mut view = post.page(&state);
    let DemoPost {
        form, client, key, ..
    } = post;
    let current = form.get("refresh_token").unwrap_or("").to_string();
    let started = state.now();
    let thief = DeviceKey::generate_es256().map_err(|_| PageError::internal())?;
    let other_key = rotate(&state, &client, &req, &current, Some(&thief)).await;
    view.outcomes.push(outcome(
        &format!(
            "the copied refresh token, signed by another key ({})",
            thief.jkt()
        ),
        &other_key,
    ));
    let no_proof = rotate(&state, &client, &req, &current, None).await;
    view.outcomes.push(outcome(
        "the copied refresh token, without a proof",
        &no_proof,
    ));
    let device = rotate(&state, &client, &req, &current, Some(&key)).await;
    view.outcomes.push(outcome(
        "this device's refresh with the same token, signed by its key",
        &device,
    ));
    view.events = events_since(&state, &current, started).await?;
    match (other_key.is_err() && no_proof.is_err(), device) {
        (true, Ok(t)) => {
            view.heading = "The stolen refresh token was refused".into();
            view.lead = "A copy of the refresh token is not enough: the tokens are bound to this \
                         app's key, and lineage refused the copy signed by another key and the \
                         copy without a proof. The token was not spent and the session was not \
                         revoked — this device refreshed with it right after — and the attempt \
                         is a security event on your account page, where you can sign the device \
                         out if it was not you. The token endpoint's answers and the event are \
                         below."
                .into();
            view.tokens = Some(tokens_view(&t, Some(current), generation(&form) + 1));
        }
        (false, Ok(t)) => {
            view.heading = "The copied refresh token was accepted".into();
            view.lead = "These tokens are not bound to a key, so a copy works anywhere.".into();
            view.tokens = Some(tokens_view(&t, Some(current), generation(&form) + 1));
        }
        (_, Err(_)) => {
            view.heading = "The refresh failed".into();
            view.lead = "This session has ended. Sign in again to start a new one.".into();
        }
    }
    Ok(render(StatusCode::OK, &with_logouts(view, &logouts)))
}

/// The security events recorded since `since` about the session `refresh_token` belongs to, as
/// its user sees them on /account. Only a session of the demo app, whose token this browser holds.
async fn events_since(
    state: &AppState,
    refresh_token: &str,
    since: i64,
) -> Result<Vec<EventLine>, PageError> {
    let presented = PlainToken::new(refresh_token);
    let rows = state
        .db
        .read(move |c| {
            let Some(family) = tokens::refresh::family_of(c, &presented)?
                .filter(|f| f.client_id == DEMO_APP_CLIENT)
            else {
                return Ok(Vec::new());
            };
            let events = audit_events::recent_for_user(c, &family.user_id, 15)?;
            Ok::<_, StoreError>(
                events
                    .into_iter()
                    .filter(|e| e.family_id.as_deref() == Some(family.id.as_str()) && e.at >= since)
                    .collect::<Vec<_>>(),
            )
        })
        .await?;
    Ok(rows.iter().map(account::event_line).collect())
}
