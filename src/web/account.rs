//! `/account`: the user's devices (refresh families) with a revoke button each, the apps the user
//! allowed with a "Remove access" button each, sign out everywhere, change password, and recent
//! security events.

use actix_web::http::{StatusCode, header};
use actix_web::web::{Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse};
use diesel::Connection;

use super::forms::signed_in_form;
use super::pages::{AccountPage, AppLine, EventLine, FamilyLine, ScopeLine, describe_scope};
use super::session::{self, SignedIn};
use super::{PageError, format_time, render};
use crate::clients;
use crate::clients::RegistryError;
use crate::db::models::audit_events::AuditEventRow;
use crate::db::models::refresh_families::FamilyRow;
use crate::db::models::{audit_events, browser_sessions, consents, refresh_families, users};
use crate::db::{DbConnection, StoreError};
use crate::domain::{DisplayName, Password, Scope};
use crate::oauth::form::Form;
use crate::profile::ProfileChange;
use crate::state::AppState;
use crate::tokens::refresh::{self, Origin};

fn to_login() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/login?return_to=%2Faccount"))
        .finish()
}

fn back(done: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/account?done={done}")))
        .finish()
}

pub async fn page(state: Data<AppState>, req: HttpRequest) -> Result<HttpResponse, PageError> {
    let Some(signed_in) = session::current(&state, &req).await? else {
        return Ok(to_login());
    };
    let query = Form::parse(req.query_string().as_bytes()).unwrap_or_default();
    let notice = match query.get("done") {
        Some("revoked") => {
            Some("That device was signed out. Its refresh token no longer works.".to_string())
        }
        Some("password") => Some(
            "Your password was changed. Every other device and app was signed out.".to_string(),
        ),
        Some("profile") => Some(
            "Your profile was saved. Apps see the change the next time they refresh their \
             tokens."
                .to_string(),
        ),
        Some("app_removed") => Some(
            "The app's access was removed and its devices were signed out. \
             It has to ask you again before it can use your account."
                .to_string(),
        ),
        _ => None,
    };
    render_account(&state, &signed_in, StatusCode::OK, notice, None).await
}

async fn render_account(
    state: &AppState,
    signed_in: &SignedIn,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Result<HttpResponse, PageError> {
    let typed = signed_in.user.display_name.clone().unwrap_or_default();
    render_account_with(state, signed_in, status, notice, error, typed).await
}

/// The account page with `display_name` in the profile form.
async fn render_account_with(
    state: &AppState,
    signed_in: &SignedIn,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
    display_name: String,
) -> Result<HttpResponse, PageError> {
    let (user, policy, now) = (signed_in.user.clone(), state.refresh_policy, state.now());
    let (families, apps, events) = state
        .db
        .read(move |c| {
            let live: Vec<FamilyRow> = refresh_families::list_for_user(c, &user.id)?
                .into_iter()
                .filter(|f| refresh::end_reason(f, Some(&user), &policy, now).is_none())
                .collect();
            let apps = app_lines(c, &user.id, &live)?;
            let mut lines = Vec::new();
            for f in live {
                let client_name = clients::find(c, &f.client_id)?
                    .map(|cl| cl.name)
                    .unwrap_or_else(|| f.client_id.clone());
                lines.push(FamilyLine {
                    client_name,
                    device_name: device_name(&f),
                    user_agent: f.user_agent.clone().unwrap_or_default(),
                    created: format_time(f.created_at),
                    last_used: format_time(f.last_used_at),
                    ip: f.ip.clone().unwrap_or_else(|| "—".into()),
                    expires: format_time(f.idle_expires_at.min(f.absolute_expires_at)),
                    id: f.id,
                });
            }
            let events = audit_events::recent_for_user(c, &user.id, 15)?
                .iter()
                .map(event_line)
                .collect::<Vec<_>>();
            Ok::<_, StoreError>((lines, apps, events))
        })
        .await?;
    let page = AccountPage {
        username: signed_in.user.username.clone(),
        csrf_token: state.form_signer.csrf_token(&signed_in.cookie_value),
        display_name,
        email: signed_in.user.email.clone(),
        email_verified: signed_in.user.email_verified,
        apps,
        families,
        events,
        notice,
        error,
    };
    Ok(render(status, &page))
}

/// A security event as the account page lists it (the demo page shows some the same way).
pub fn event_line(e: &AuditEventRow) -> EventLine {
    EventLine {
        at: format_time(e.at),
        alarming: matches!(
            e.kind.as_str(),
            "refresh_token_reuse"
                | "code_replayed"
                | "sign_in_failed"
                | refresh::RETRY_ELSEWHERE
                | refresh::DPOP_KEY_MISMATCH
        ),
        text: match &e.ip {
            Some(ip) => format!("{} (from {ip})", capital(&e.detail)),
            None => capital(&e.detail),
        },
    }
}

fn device_name(f: &FamilyRow) -> String {
    f.device_name
        .clone()
        .unwrap_or_else(|| "Unnamed device".into())
}

/// "Apps with access": each consent with the app's name, the scope in words, when it was given,
/// and the user's live devices of that app.
fn app_lines(
    c: &mut DbConnection,
    user_id: &str,
    live: &[FamilyRow],
) -> Result<Vec<AppLine>, StoreError> {
    let mut apps = Vec::new();
    for consent in consents::list_for_user(c, user_id)? {
        let name = clients::find(c, &consent.client_id)?
            .map(|cl| cl.name)
            .unwrap_or_else(|| consent.client_id.clone());
        apps.push(AppLine {
            name,
            scopes: Scope::parse(&consent.scope)
                .unwrap_or_default()
                .iter()
                .map(|s| ScopeLine {
                    name: s.to_string(),
                    title: describe_scope(s),
                })
                .collect(),
            allowed: format_time(consent.created_at),
            devices: live
                .iter()
                .filter(|f| f.client_id == consent.client_id)
                .map(device_name)
                .collect(),
            client_id: consent.client_id,
        });
    }
    Ok(apps)
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// A signed-in user's button about one of their devices or apps (the path names it).
struct Action {
    user_id: String,
    target: String,
    origin: Origin,
    now: i64,
}

/// What a button on the account page does: its write job (`false` when the target is not the
/// user's), the page shown when it is not, and the notice shown after it.
struct Button {
    job: fn(&mut DbConnection, Action) -> Result<bool, StoreError>,
    missing: (&'static str, &'static str),
    notice: &'static str,
}

/// Run `button` for the target the path names, once the session and CSRF token are checked.
async fn press(
    state: &AppState,
    req: &HttpRequest,
    path: Path<String>,
    payload: Payload,
    button: Button,
) -> Result<HttpResponse, PageError> {
    let Some((signed_in, _form)) = signed_in_form(state, req, payload).await? else {
        return Ok(to_login());
    };
    let action = Action {
        user_id: signed_in.user.id.clone(),
        target: path.into_inner(),
        origin: Origin::of(req),
        now: state.now(),
    };
    let job = button.job;
    if !state.db.write(move |c| job(c, action)).await? {
        let (title, text) = button.missing;
        return Err(PageError::new(StatusCode::NOT_FOUND, title, text));
    }
    Ok(back(button.notice))
}

pub async fn revoke_family(
    state: Data<AppState>,
    req: HttpRequest,
    path: Path<String>,
    payload: Payload,
) -> Result<HttpResponse, PageError> {
    let button = Button {
        job: |c, a| match refresh_families::find(c, &a.target)? {
            Some(f) if f.user_id == a.user_id => {
                let reason = refresh::RevocationReason::RevokedByUser;
                refresh::revoke_family(c, &f.id, reason, &a.origin, a.now)?;
                Ok(true)
            }
            _ => Ok(false),
        },
        missing: (
            "Device not found",
            "That device is not signed in to your account.",
        ),
        notice: "revoked",
    };
    press(&state, &req, path, payload, button).await
}

/// "Remove access": withdraw the user's consent for an app and sign out its devices.
pub async fn remove_app(
    state: Data<AppState>,
    req: HttpRequest,
    path: Path<String>,
    payload: Payload,
) -> Result<HttpResponse, PageError> {
    let button = Button {
        job: |c, a| {
            let withdrawn = crate::consents::withdraw(c, &a.user_id, &a.target, &a.origin, a.now)?;
            Ok(withdrawn.is_some())
        },
        missing: (
            "App not found",
            "That app does not have access to your account.",
        ),
        notice: "app_removed",
    };
    press(&state, &req, path, payload, button).await
}

pub async fn sign_out_everywhere(
    state: Data<AppState>,
    req: HttpRequest,
    payload: Payload,
) -> Result<HttpResponse, PageError> {
    let Some((signed_in, _form)) = signed_in_form(&state, &req, payload).await? else {
        return Ok(to_login());
    };
    let (user_id, now) = (signed_in.user.id.clone(), state.now());
    state
        .db
        .write(move |c| {
            c.transaction(|c| {
                users::lock(c, &user_id)?;
                browser_sessions::delete_for_user(c, &user_id, None)?;
                refresh::revoke_all_for_user(
                    c,
                    &user_id,
                    refresh::RevocationReason::SignedOutEverywhere,
                    now,
                )
            })
        })
        .await?;
    let mut resp = HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/login"))
        .finish();
    let _ = resp.add_removal_cookie(&state.cookies.removal(state.cookies.session));
    Ok(resp)
}

pub async fn change_password(
    state: Data<AppState>,
    req: HttpRequest,
    payload: Payload,
) -> Result<HttpResponse, PageError> {
    let Some((signed_in, form)) = signed_in_form(&state, &req, payload).await? else {
        return Ok(to_login());
    };
    let current = Password::attempt(form.get("current_password").unwrap_or("").to_string());
    let new = match Password::new(form.get("new_password").unwrap_or("").to_string()) {
        Ok(p) => p,
        Err(why) => {
            return render_account(
                &state,
                &signed_in,
                StatusCode::BAD_REQUEST,
                None,
                Some(capital(&why)),
            )
            .await;
        }
    };
    let stored = signed_in.user.password_hash.clone();
    let hashed = state
        .hashing
        .run(move || {
            if crate::users::verify_password(Some(&stored), &current) {
                crate::users::hash_password(&new).map(Some)
            } else {
                Ok(None)
            }
        })
        .await?
        .map_err(|_| PageError::internal())?;
    let Some(new_hash) = hashed else {
        return render_account(
            &state,
            &signed_in,
            StatusCode::BAD_REQUEST,
            None,
            Some("Your current password is not correct.".into()),
        )
        .await;
    };
    let (user_id, keep, now) = (
        signed_in.user.id.clone(),
        signed_in.id_hash.clone(),
        state.now(),
    );
    state
        .db
        .write(move |c| crate::users::change_own_password(c, &user_id, &new_hash, &keep, now))
        .await?;
    Ok(back("password"))
}

/// The user sets or clears their display name (an empty field clears it). The email address is
/// not changed here: until lineage can verify an address, only an operator sets it.
pub async fn update_profile(
    state: Data<AppState>,
    req: HttpRequest,
    payload: Payload,
) -> Result<HttpResponse, PageError> {
    let Some((signed_in, form)) = signed_in_form(&state, &req, payload).await? else {
        return Ok(to_login());
    };
    let typed = form.get("display_name").unwrap_or("").to_string();
    let display_name = if typed.trim().is_empty() {
        None
    } else {
        match DisplayName::parse(&typed) {
            Ok(name) => Some(name),
            Err(why) => {
                let status = StatusCode::BAD_REQUEST;
                let error = Some(capital(&why));
                return render_account_with(&state, &signed_in, status, None, error, typed).await;
            }
        }
    };
    let change = ProfileChange {
        display_name: Some(display_name),
        ..ProfileChange::default()
    };
    let (username, now) = (signed_in.user.username.clone(), state.now());
    state
        .db
        .write(move |c| crate::users::update_profile(c, &username, &change, now))
        .await
        .map_err(|e| match e {
            RegistryError::Store(e) => PageError::from(e),
            _ => PageError::internal(),
        })?;
    Ok(back("profile"))
}
