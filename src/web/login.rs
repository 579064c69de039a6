//! `GET/POST /login` and `POST /logout`.

use actix_web::http::{StatusCode, header};
use actix_web::web::{Data, Payload};
use actix_web::{HttpRequest, HttpResponse};
use diesel::Connection;

use super::pages::LoginPage;
use super::session::{self, SignedIn};
use super::{PageError, allow_form_redirect_to, render, safe_return_to};
use crate::db::models::audit_events::{self, AuditEventRow};
use crate::db::models::{auth_codes, browser_sessions, users};
use crate::domain::Password;
use crate::oauth::authorize;
use crate::oauth::form::Form;
use crate::state::AppState;
use crate::tokens::refresh::{self, Origin};

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
    Ok(login_form(&state, &req, StatusCode::OK, return_to, String::new(), None).await)
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
    let lookup = username.clone();
    let user = state
        .db
        .run(move |c| users::find_by_username(c, &lookup))
        .await?;
    // An unknown user is checked against a dummy hash: the same time as a wrong password.
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let ok =
        actix_web::web::block(move || crate::users::verify_password(hash.as_deref(), &password))
            .await
            .map_err(|_| PageError::internal())?;
    let origin = Origin::of(&req);
    state
        .metrics
        .sign_in(ok && user.as_ref().is_some_and(|u| !u.disabled));
    let user = match user {
        Some(u) if ok && !u.disabled => u,
        other => {
            if let Some(u) = other {
                let mut event = AuditEventRow::new(
                    state.now(),
                    "sign_in_failed",
                    "a sign-in with a wrong password was refused",
                );
                event.user_id = Some(u.id);
                event.ip = origin.ip.clone();
                event.user_agent = origin.user_agent.clone();
                state
                    .db
                    .write(move |c| audit_events::insert(c, &event))
                    .await?;
            }
            let message = "The username or password is incorrect.".to_string();
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
    };
    let previous = session::presented_session_hash(&state, &req);
    let cookie = session::start(&state, &user, previous, origin).await?;
    let mut resp = HttpResponse::SeeOther()
        .insert_header((header::LOCATION, return_to))
        .finish();
    let _ = resp.add_cookie(&cookie);
    let _ = resp.add_removal_cookie(&state.cookies.removal(state.cookies.pre_session));
    Ok(resp)
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
    let end_families = matches!(form.get("end_sessions"), Some("on" | "1" | "true" | "yes"));
    let (id_hash, now, origin) = (signed_in.id_hash.clone(), state.now(), Origin::of(&req));
    let user_id = signed_in.user.id.clone();
    state
        .db
        .write(move |c| {
            c.transaction(|c| {
                users::lock(c, &user_id)?;
                browser_sessions::delete(c, &id_hash)?;
                if end_families {
                    for family in auth_codes::families_of_session(c, &id_hash)? {
                        refresh::revoke_family(c, &family, "signed_out", &origin, now)?;
                    }
                }
                Ok::<_, crate::db::StoreError>(())
            })
        })
        .await?;
    let _ = resp.add_removal_cookie(&state.cookies.removal(state.cookies.session));
    Ok(resp)
}
