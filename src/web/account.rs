//! `/account`: the user's devices (refresh families) with a revoke button each, sign out
//! everywhere, change password, and recent security events.

use actix_web::http::{StatusCode, header};
use actix_web::web::{Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse};

use super::login::signed_in_form;
use super::pages::{AccountPage, EventLine, FamilyLine};
use super::session::{self, SignedIn};
use super::{PageError, format_time, render};
use crate::clients;
use crate::db::models::{audit_events, browser_sessions, refresh_families};
use crate::domain::Password;
use crate::oauth::form::Form;
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
    let (user, policy, now) = (signed_in.user.clone(), state.refresh_policy, state.now());
    let (families, events) = state
        .db
        .run(move |c| {
            let mut lines = Vec::new();
            for f in refresh_families::list_for_user(c, &user.id)? {
                if refresh::end_reason(&f, Some(&user), &policy, now).is_some() {
                    continue;
                }
                let client_name = clients::find(c, &f.client_id)?
                    .map(|cl| cl.name)
                    .unwrap_or_else(|| f.client_id.clone());
                lines.push(FamilyLine {
                    client_name,
                    device_name: f
                        .device_name
                        .clone()
                        .unwrap_or_else(|| "Unnamed device".into()),
                    user_agent: f.user_agent.clone().unwrap_or_default(),
                    created: format_time(f.created_at),
                    last_used: format_time(f.last_used_at),
                    ip: f.ip.clone().unwrap_or_else(|| "—".into()),
                    expires: format_time(f.idle_expires_at.min(f.absolute_expires_at)),
                    id: f.id,
                });
            }
            let events = audit_events::recent_for_user(c, &user.id, 15)?
                .into_iter()
                .map(|e| EventLine {
                    at: format_time(e.at),
                    alarming: matches!(
                        e.kind.as_str(),
                        "refresh_token_reuse" | "code_replayed" | "sign_in_failed"
                    ),
                    text: match &e.ip {
                        Some(ip) => format!("{} (from {ip})", capital(&e.detail)),
                        None => capital(&e.detail),
                    },
                })
                .collect::<Vec<_>>();
            Ok((lines, events))
        })
        .await?;
    let page = AccountPage {
        username: signed_in.user.username.clone(),
        csrf_token: state.form_signer.csrf_token(&signed_in.cookie_value),
        families,
        events,
        notice,
        error,
    };
    Ok(render(status, &page))
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

pub async fn revoke_family(
    state: Data<AppState>,
    req: HttpRequest,
    path: Path<String>,
    payload: Payload,
) -> Result<HttpResponse, PageError> {
    let Some((signed_in, _form)) = signed_in_form(&state, &req, payload).await? else {
        return Ok(to_login());
    };
    let (family_id, user_id, origin, now) = (
        path.into_inner(),
        signed_in.user.id.clone(),
        Origin::of(&req),
        state.now(),
    );
    let owned = state
        .db
        .write(move |c| match refresh_families::find(c, &family_id)? {
            Some(f) if f.user_id == user_id => {
                refresh::revoke_family(c, &f.id, "revoked_by_user", &origin, now)?;
                Ok(true)
            }
            _ => Ok(false),
        })
        .await?;
    if !owned {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            "Device not found",
            "That device is not signed in to your account.",
        ));
    }
    Ok(back("revoked"))
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
            refresh::revoke_all_for_user(c, &user_id, "signed_out_everywhere", now)?;
            browser_sessions::delete_for_user(c, &user_id, None)
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
