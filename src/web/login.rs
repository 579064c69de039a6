//! `GET/POST /login` and `POST /logout`, and the sign-out every way out of a browser session takes.

use actix_web::http::{StatusCode, header};
use actix_web::web::{Data, Payload};
use actix_web::{HttpRequest, HttpResponse};
use diesel::Connection;

use std::net::IpAddr;

use super::forms::{read_form, signed_in_form};
use super::pages::LoginPage;
use super::session::{self, SignedIn};
use super::{PageError, allow_form_redirect_to, render, safe_return_to};
use crate::db::StoreError;
use crate::db::models::users::UserRow;
use crate::db::models::{auth_codes, browser_sessions, refresh_families, sign_in_throttles, users};
use crate::domain::Password;
use crate::limits::sign_in;
use crate::limits::{LimitKind, client_ip, in_words};
use crate::oauth::authorize;
use crate::oauth::form::Form;
use crate::state::AppState;
use crate::tokens::refresh::{self, Origin};

/// A username is at most 64 characters; a longer hint is cut, not refused.
const MAX_LOGIN_HINT_CHARS: usize = 64;

async fn login_form(
    state: &AppState,
    req: &HttpRequest,
    status: StatusCode,
    return_to: String,
    username: String,
    error: Option<String>,
) -> HttpResponse {
    let (binding, cookie) = session::pre_session(state, req);
    // "Sign in to continue to <app>" when an authorization request sent the browser here.
    let app = authorize::sign_in_for(state, &return_to).await;
    let page = LoginPage {
        csrf_token: state.form_signer.csrf_token(&binding),
        app_name: app.as_ref().map(|a| a.app_name.clone()),
        return_to,
        username,
        error,
    };
    let mut resp = render(status, &page);
    if let Some(redirect_uri) = app.and_then(|a| a.straight_to) {
        allow_form_redirect_to(&mut resp, &redirect_uri);
    }
    if let Some(c) = cookie {
        let _ = resp.add_cookie(&c);
    }
    resp
}

pub async fn login_page(
    state: Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let query = Form::parse(req.query_string().as_bytes()).unwrap_or_default();
    let return_to = safe_return_to(query.get("return_to"));
    // `prompt=login` from /authorize: ask for the password even though the browser is signed in.
    let again = query.get("prompt") == Some("login");
    if !again && session::current(&state, &req).await?.is_some() {
        return Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, return_to))
            .finish());
    }
    let username = login_hint(&return_to);
    Ok(login_form(&state, &req, StatusCode::OK, return_to, username, None).await)
}

/// OIDC Core §3.1.2.1 `login_hint` of the authorization request the page returns to: the
/// username to prefill (the user may change it; it grants nothing).
fn login_hint(return_to: &str) -> String {
    let Some(query) = return_to.strip_prefix("/authorize?") else {
        return String::new();
    };
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "login_hint")
        .map(|(_, v)| v.trim().chars().take(MAX_LOGIN_HINT_CHARS).collect())
        .unwrap_or_default()
}

pub async fn login(
    state: Data<AppState>,
    req: HttpRequest,
    payload: Payload,
) -> Result<HttpResponse, PageError> {
    let form = read_form(&req, payload).await?;
    let return_to = safe_return_to(form.get("return_to"));
    let binding = req
        .cookie(state.cookies.pre_session)
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    if binding.is_empty()
        || !form
            .get("csrf_token")
            .is_some_and(|t| state.form_signer.csrf_ok(&binding, t))
    {
        return Ok(login_form(
            &state,
            &req,
            StatusCode::BAD_REQUEST,
            return_to,
            form.get("username").unwrap_or("").to_string(),
            Some("Your sign-in form expired. Please try again.".into()),
        )
        .await);
    }
    let username = form.get("username").unwrap_or("").trim().to_string();
    let password = Password::attempt(form.get("password").unwrap_or("").to_string());
    let attempt = Attempt {
        username_key: state.username_keys.key(&username),
        address: client_ip::of(&req),
        origin: Origin::of(&req),
        username,
        return_to,
    };
    let user = match check(&state, &req, &attempt, password).await? {
        Outcome::Refused(resp) => return Ok(resp),
        Outcome::Rejected(user) => {
            state.metrics.sign_in(false);
            record_failure(&state, &attempt, user).await?;
            let message = "The username or password is incorrect.".to_string();
            let Attempt {
                return_to,
                username,
                ..
            } = attempt;
            return Ok(login_form(
                &state,
                &req,
                StatusCode::UNAUTHORIZED,
                return_to,
                username,
                Some(message),
            )
            .await);
        }
        Outcome::Accepted { user, had_failures } => {
            state.metrics.sign_in(true);
            if had_failures {
                let key = attempt.username_key.clone();
                state
                    .db
                    .write(move |c| sign_in_throttles::reset(c, &key))
                    .await?;
            }
            user
        }
    };
    let previous = session::presented_session_hash(&state, &req);
    let cookie = session::start(&state, &user, previous, attempt.origin).await?;
    let mut resp = HttpResponse::SeeOther()
        .insert_header((header::LOCATION, attempt.return_to))
        .finish();
    let _ = resp.add_cookie(&cookie);
    let _ = resp.add_removal_cookie(&state.cookies.removal(state.cookies.pre_session));
    Ok(resp)
}

/// One sign-in attempt as submitted (the password travels separately).
struct Attempt {
    username: String,
    /// The username's key in `sign_in_throttles`.
    username_key: String,
    return_to: String,
    address: Option<IpAddr>,
    origin: Origin,
}

enum Outcome {
    Accepted {
        user: UserRow,
        had_failures: bool,
    },
    /// Wrong password, unknown user or disabled user: all look the same from outside.
    Rejected(Option<UserRow>),
    /// Not checked at all: a limit or a full hashing queue answered already.
    Refused(HttpResponse),
}

/// The limits first (an address that failed too often, a username in its back-off: refused
/// without a password check), then the password. An unknown user is checked against a dummy hash,
/// the same time as a wrong password.
async fn check(
    state: &AppState,
    req: &HttpRequest,
    attempt: &Attempt,
    password: Password,
) -> Result<Outcome, PageError> {
    if let Err(wait) = state.limits.sign_in_allowed(attempt.address) {
        let kind = LimitKind::SignInAddressFailures;
        return Ok(Outcome::Refused(
            refused(state, req, attempt, kind, wait.0).await,
        ));
    }
    // A place for the password check first: when the pool is full, nothing else is spent.
    let place = match state.hashing.reserve() {
        Ok(place) => place,
        Err(_) => return Ok(Outcome::Refused(busy(state, req, attempt).await)),
    };
    let (lookup, key) = (attempt.username.clone(), attempt.username_key.clone());
    let (user, throttle) = state
        .db
        .read(move |c| {
            let user = users::find_by_username(c, &lookup)?;
            Ok::<_, StoreError>((user, sign_in_throttles::find(c, &key)?))
        })
        .await?;
    let now = state.now();
    if let Some(t) = &throttle
        && t.blocked_until > now
    {
        let (kind, wait) = (LimitKind::SignInBackoff, (t.blocked_until - now) as u64);
        return Ok(Outcome::Refused(
            refused(state, req, attempt, kind, wait).await,
        ));
    }
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let ok = state
        .hashing
        .run_in(place, move || {
            crate::users::verify_password(hash.as_deref(), &password)
        })
        .await?;
    let had_failures = throttle.is_some_and(|t| t.failures > 0);
    Ok(match user {
        Some(user) if ok && !user.disabled => Outcome::Accepted { user, had_failures },
        other => Outcome::Rejected(other),
    })
}

/// Count the failure for the address (this node) and the username (the database, with the known
/// user's security event in the same job: known and unknown usernames cost the same).
async fn record_failure(
    state: &AppState,
    attempt: &Attempt,
    user: Option<UserRow>,
) -> Result<(), PageError> {
    state.limits.sign_in_failed(attempt.address);
    let (key, origin, now, policy) = (
        attempt.username_key.clone(),
        attempt.origin.clone(),
        state.now(),
        state.sign_in_policy,
    );
    state
        .db
        .write(move |c| sign_in::record_failure(c, &key, user.as_ref(), &origin, now, &policy))
        .await?;
    Ok(())
}

/// 429: the sign-in page, saying when to try again, with the username kept.
async fn refused(
    state: &AppState,
    req: &HttpRequest,
    attempt: &Attempt,
    kind: LimitKind,
    wait: u64,
) -> HttpResponse {
    state.metrics.rate_limited("login", kind);
    let message = match kind {
        LimitKind::SignInBackoff => format!(
            "Too many failed sign-ins for this username. To protect the account, signing in is \
             paused: please try again in {}.",
            in_words(wait)
        ),
        _ => format!(
            "Too many failed sign-ins from your network. Please try again in {}.",
            in_words(wait)
        ),
    };
    let status = StatusCode::TOO_MANY_REQUESTS;
    with_retry_after(page_again(state, req, attempt, status, message).await, wait)
}

/// 503: every password-hashing place is taken.
async fn busy(state: &AppState, req: &HttpRequest, attempt: &Attempt) -> HttpResponse {
    let message = "The server is busy checking other sign-ins. Please try again in a moment.";
    let status = StatusCode::SERVICE_UNAVAILABLE;
    let resp = page_again(state, req, attempt, status, message.into()).await;
    with_retry_after(resp, crate::hashing::BUSY_RETRY_AFTER)
}

async fn page_again(
    state: &AppState,
    req: &HttpRequest,
    attempt: &Attempt,
    status: StatusCode,
    message: String,
) -> HttpResponse {
    let (return_to, username) = (attempt.return_to.clone(), attempt.username.clone());
    login_form(state, req, status, return_to, username, Some(message)).await
}

fn with_retry_after(mut resp: HttpResponse, seconds: u64) -> HttpResponse {
    resp.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
    resp
}

/// End this browser's session; with `end_sessions=on`, also revoke the families it started.
pub async fn logout(
    state: Data<AppState>,
    req: HttpRequest,
    payload: Payload,
) -> Result<HttpResponse, PageError> {
    let mut resp = HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/login"))
        .finish();
    let Some((signed_in, form)) = signed_in_form(&state, &req, payload).await? else {
        return Ok(resp);
    };
    let also = if matches!(form.get("end_sessions"), Some("on" | "1" | "true" | "yes")) {
        AlsoEnd::FamiliesOfSession
    } else {
        AlsoEnd::Nothing
    };
    sign_out(&state, &signed_in, also, Origin::of(&req)).await?;
    let _ = resp.add_removal_cookie(&state.cookies.removal(state.cookies.session));
    Ok(resp)
}

/// What ends with a browser session besides the session itself.
#[derive(Debug, Clone)]
pub enum AlsoEnd {
    Nothing,
    /// Every family this browser session started (its sign-ins to apps).
    FamiliesOfSession,
    /// One family, if it is the signed-in user's and of `client_id` (RP-initiated logout's
    /// "also sign this app out").
    Family {
        id: String,
        client_id: String,
    },
}

/// Sign `signed_in`'s browser out (the session row goes; the caller removes the cookie) and
/// revoke what `also` names, through the revocation functions, so the feed and back-channel
/// logout hear of it like of every early end.
pub async fn sign_out(
    state: &AppState,
    signed_in: &SignedIn,
    also: AlsoEnd,
    origin: Origin,
) -> Result<(), StoreError> {
    let (id_hash, now) = (signed_in.id_hash.clone(), state.now());
    let user_id = signed_in.user.id.clone();
    state
        .db
        .write(move |c| {
            c.transaction(|c| {
                users::lock(c, &user_id)?;
                browser_sessions::delete(c, &id_hash)?;
                let families = match also {
                    AlsoEnd::Nothing => Vec::new(),
                    AlsoEnd::FamiliesOfSession => auth_codes::families_of_session(c, &id_hash)?,
                    AlsoEnd::Family { id, client_id } => refresh_families::find(c, &id)?
                        .filter(|f| f.user_id == user_id && f.client_id == client_id)
                        .map(|f| vec![f.id])
                        .unwrap_or_default(),
                };
                for family in families {
                    let reason = refresh::RevocationReason::SignedOut;
                    refresh::revoke_family(c, &family, reason, &origin, now)?;
                }
                Ok::<_, StoreError>(())
            })
        })
        .await
}
