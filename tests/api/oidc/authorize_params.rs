//! The OpenID Connect parameters of `/authorize` (OIDC Core §3.1.2.1): `max_age` against the
//! session's `auth_time` (with the injected clock), `login_hint` on the sign-in page,
//! `id_token_hint` with `prompt=none`, and the three `prompt=none` errors.

use lineage::tokens::keys::KeyAlgorithm;
use reqwest::StatusCode;

use super::{OIDC_SCOPE, oidc_client, oidc_tokens};
use crate::helpers::{
    APP_REDIRECT, Backend, Browser, PASSWORD, TestApp, TestClient, assert_error_redirect,
    authorize_path, create_user, jwt_claims, parse_redirect, pkce, spawn_app, web_app_client,
};

both_backends!(
    prompt_none_answers_login_consent_or_interaction_required,
    max_age_asks_for_the_password_when_the_sign_in_is_older,
    login_hint_prefills_the_username,
    id_token_hint_must_name_the_signed_in_user,
);

/// A code request of `client` with these extra parameters (state `xyz-state`).
fn request(client: &TestClient, redirect: &str, extra: &[(&str, &str)]) -> String {
    let p = pkce();
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client.id.as_str()),
        ("redirect_uri", redirect),
        ("scope", OIDC_SCOPE),
        ("state", "xyz-state"),
        ("code_challenge", p.challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    params.extend_from_slice(extra);
    authorize_path(&params)
}

fn assert_error(app: &TestApp, page: &crate::helpers::Page, redirect: &str, error: &str) {
    assert_error_redirect(page, redirect, error, Some("xyz-state"), &app.issuer);
}

/// A code straight back to the client, no page in between.
fn assert_code(page: &crate::helpers::Page, redirect: &str) {
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.describe());
    let r = parse_redirect(page.location().expect("Location"));
    assert_eq!(r.target, redirect);
    assert!(r.get("code").is_some(), "a code: {:?}", r.params);
}

/// A redirect to the sign-in page that asks for the password again.
fn assert_sign_in_again(page: &crate::helpers::Page) {
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.describe());
    let to = page.location().expect("Location");
    assert!(to.starts_with("/login?"), "to the sign-in page: {to}");
    assert!(to.contains("prompt=login"), "for the password again: {to}");
}

async fn signed_in(app: &TestApp, user: &str) -> Browser {
    let b = app.browser();
    b.sign_in(user, PASSWORD).await;
    b
}

async fn prompt_none_answers_login_consent_or_interaction_required(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let native = oidc_client(&app, KeyAlgorithm::RS256).await;
    create_user(&app, "alice").await;
    let none = [("prompt", "none")];
    // No session: login_required.
    let page = app
        .browser()
        .get(&request(&native, APP_REDIRECT, &none))
        .await;
    assert_error(&app, &page, APP_REDIRECT, "login_required");
    // Signed in, never consented: consent_required.
    let b = signed_in(&app, "alice").await;
    let page = b.get(&request(&native, APP_REDIRECT, &none)).await;
    assert_error(&app, &page, APP_REDIRECT, "consent_required");
    // Consented: a public client still needs its one-click confirmation page, which is not
    // consent: interaction_required.
    oidc_tokens(&app, &b, &native, "alice", &[]).await;
    let page = b.get(&request(&native, APP_REDIRECT, &none)).await;
    assert_error(&app, &page, APP_REDIRECT, "interaction_required");
}

async fn max_age_asks_for_the_password_when_the_sign_in_is_older(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let web = web_app_client(&app, OIDC_SCOPE).await;
    let web_redirect = "https://web.example/cb";
    create_user(&app, "alice").await;
    let b = signed_in(&app, "alice").await;
    let signed_in_at = app.now();
    // Consent once, so that afterwards the confidential client gets codes without a page.
    let r = b
        .authorize(&request(&web, web_redirect, &[]), "alice", None)
        .await;
    assert!(r.get("code").is_some(), "{:?}", r.params);

    app.clock.advance(120);
    // Younger than max_age: straight back with a code.
    let page = b
        .get(&request(&web, web_redirect, &[("max_age", "300")]))
        .await;
    assert_code(&page, web_redirect);
    // Older: the sign-in page; with prompt=none, login_required.
    let page = b
        .get(&request(&web, web_redirect, &[("max_age", "60")]))
        .await;
    assert_sign_in_again(&page);
    let older = [("max_age", "60"), ("prompt", "none")];
    let page = b.get(&request(&web, web_redirect, &older)).await;
    assert_error(&app, &page, web_redirect, "login_required");
    // max_age=0 is prompt=login.
    let page = b
        .get(&request(&web, web_redirect, &[("max_age", "0")]))
        .await;
    assert_sign_in_again(&page);
    // Not a non-negative integer: invalid_request.
    for bad in ["-1", "soon", "1.5"] {
        let page = b
            .get(&request(&web, web_redirect, &[("max_age", bad)]))
            .await;
        assert_error(&app, &page, web_redirect, "invalid_request");
    }

    // Signing in again through the page answers the request, and the ID token's auth_time is
    // the new sign-in.
    let login = b
        .follow(
            b.get(&request(&web, web_redirect, &[("max_age", "60")]))
                .await,
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.describe());
    let back = b
        .follow(b.submit_login(&login, "alice", PASSWORD).await)
        .await;
    assert_code(&back, web_redirect);
    // The ID token of the next code names the new sign-in (a confidential client without
    // PKCE, to exchange the code here).
    let p = [
        ("response_type", "code"),
        ("client_id", web.id.as_str()),
        ("redirect_uri", web_redirect),
        ("scope", OIDC_SCOPE),
        ("state", "xyz-state"),
        ("max_age", "60"),
    ];
    let page = b.get(&authorize_path(&p)).await;
    assert_code(&page, web_redirect);
    let code = parse_redirect(page.location().expect("Location"))
        .get("code")
        .expect("code")
        .to_string();
    let tokens = crate::helpers::expect_tokens(
        crate::helpers::token_request(
            &app,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", web_redirect),
                ("client_id", &web.id),
                ("client_secret", &web.secret),
            ],
        )
        .await,
    )
    .await;
    let claims = jwt_claims(tokens.body["id_token"].as_str().expect("id_token"));
    assert_eq!(claims["auth_time"].as_i64(), Some(signed_in_at + 120));
}

async fn login_hint_prefills_the_username(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let native = oidc_client(&app, KeyAlgorithm::RS256).await;
    create_user(&app, "alice").await;
    let b = app.browser();
    let login = b
        .follow(
            b.get(&request(&native, APP_REDIRECT, &[("login_hint", "alice")]))
                .await,
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.describe());
    assert_eq!(login.value("username").as_deref(), Some("alice"));
    // It survives the round trip: the page returns to the request with its hint (and nonce).
    let return_to = login.value("return_to").expect("return_to");
    assert!(return_to.contains("login_hint=alice"), "{return_to}");
    // Without a hint the field is empty.
    let login = b
        .follow(b.get(&request(&native, APP_REDIRECT, &[])).await)
        .await;
    assert_eq!(login.value("username").as_deref(), Some(""));
}

async fn id_token_hint_must_name_the_signed_in_user(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let web = web_app_client(&app, OIDC_SCOPE).await;
    let other = web_app_client(&app, OIDC_SCOPE).await;
    let web_redirect = "https://web.example/cb";
    create_user(&app, "alice").await;
    create_user(&app, "bob").await;
    let alice = signed_in(&app, "alice").await;
    let bob = signed_in(&app, "bob").await;
    // Each allows the app once; alice's ID token is the hint.
    let no_pkce = |extra: &[(&str, &str)]| {
        let mut p = vec![
            ("response_type", "code"),
            ("client_id", web.id.as_str()),
            ("redirect_uri", web_redirect),
            ("scope", OIDC_SCOPE),
            ("state", "xyz-state"),
        ];
        p.extend_from_slice(extra);
        authorize_path(&p)
    };
    let code = alice.authorize(&no_pkce(&[]), "alice", None).await;
    bob.authorize(&no_pkce(&[]), "bob", None).await;
    let tokens = crate::helpers::expect_tokens(
        crate::helpers::token_request(
            &app,
            &[
                ("grant_type", "authorization_code"),
                ("code", code.get("code").expect("code")),
                ("redirect_uri", web_redirect),
                ("client_id", &web.id),
                ("client_secret", &web.secret),
            ],
        )
        .await,
    )
    .await;
    let hint = tokens.body["id_token"]
        .as_str()
        .expect("id_token")
        .to_string();

    // Expired long ago: still a hint (its expiry is ignored).
    app.clock.advance(7200);
    let with_hint = [("prompt", "none"), ("id_token_hint", hint.as_str())];
    assert_code(&alice.get(&no_pkce(&with_hint)).await, web_redirect);
    let page = bob.get(&no_pkce(&with_hint)).await;
    assert_error(&app, &page, web_redirect, "login_required");
    // Without prompt=none, another user's hint asks for the password.
    let page = bob.get(&no_pkce(&[("id_token_hint", hint.as_str())])).await;
    assert_sign_in_again(&page);
    // Not an ID token of ours, or one issued to another client: invalid_request.
    let access = tokens.access_token.clone();
    let mut tampered = hint.clone();
    tampered.push('x');
    for bad in [access.as_str(), tampered.as_str(), "not-a-jwt"] {
        let page = alice
            .get(&no_pkce(&[("prompt", "none"), ("id_token_hint", bad)]))
            .await;
        assert_error(&app, &page, web_redirect, "invalid_request");
    }
    let mut p = vec![
        ("response_type", "code"),
        ("client_id", other.id.as_str()),
        ("redirect_uri", web_redirect),
        ("scope", OIDC_SCOPE),
        ("state", "xyz-state"),
        ("prompt", "none"),
    ];
    p.push(("id_token_hint", hint.as_str()));
    let page = alice.get(&authorize_path(&p)).await;
    assert_error(&app, &page, web_redirect, "invalid_request");
}
