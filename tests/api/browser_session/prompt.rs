//! `prompt` on `/authorize` (OpenID Connect Core §3.1.2.1): `consent` always shows the consent
//! page, `login` asks for the password again (once), `none` never shows a page and answers
//! `login_required` / `consent_required` / `interaction_required` instead; `none` with anything
//! else, or an unknown value, is `invalid_request`.

use lineage::clients::NewClient;
use reqwest::StatusCode;

use crate::helpers::{
    APP_REDIRECT, Backend, Browser, PASSWORD, Page, TestApp, TestClient, app_client, app_spec,
    assert_error_redirect, authorize_path, create_user, parse_redirect, pkce, register, spawn_app,
    web_app_client,
};

both_backends!(
    prompt_consent_always_shows_the_consent_page,
    prompt_login_asks_for_the_password_again_once,
    prompt_none_never_shows_a_page,
    prompt_none_with_another_value_or_an_unknown_value_is_invalid_request,
);

const WEB_REDIRECT: &str = "https://web.example/cb";

/// A code request with `prompt` (and state `xyz-state`).
fn with_prompt(client_id: &str, redirect_uri: &str, prompt: &str) -> String {
    let p = pkce();
    authorize_path(&[
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("scope", "notes:read"),
        ("state", "xyz-state"),
        ("code_challenge", &p.challenge),
        ("code_challenge_method", "S256"),
        ("prompt", prompt),
    ])
}

async fn signed_in(app: &TestApp, user: &str) -> Browser {
    let b = app.browser();
    b.sign_in(user, PASSWORD).await;
    b
}

/// Allow the consent page for `client` once in `b`.
async fn consent_once(b: &Browser, client: &TestClient, redirect_uri: &str) {
    let page = b.get(&with_prompt(&client.id, redirect_uri, "")).await;
    assert!(page.input("device_name").is_some(), "{}", page.describe());
    let resp = b.decide(&page, "allow", None).await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.describe());
}

fn assert_consent_page(page: &Page) {
    assert_eq!(page.status, 200, "{}", page.describe());
    assert!(
        page.input("device_name").is_some() && page.form("/consent").is_some(),
        "the consent page: {}",
        page.describe()
    );
}

fn assert_code(page: &Page, redirect_uri: &str) {
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.describe());
    let r = parse_redirect(page.location().expect("Location"));
    assert_eq!(r.target, redirect_uri);
    assert!(r.get("code").is_some(), "{:?}", r.params);
    assert_eq!(r.get("state"), Some("xyz-state"));
}

async fn prompt_consent_always_shows_the_consent_page(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let web = web_app_client(&app, "notes:read").await;
    let native = app_client(&app, "notes:read").await;
    let first_party = register(
        &app,
        NewClient {
            name: "Our own app".into(),
            first_party: true,
            public: false,
            ..app_spec("notes:read")
        },
    )
    .await;
    create_user(&app, "alice").await;
    let b = signed_in(&app, "alice").await;
    consent_once(&b, &web, WEB_REDIRECT).await;
    consent_once(&b, &native, APP_REDIRECT).await;
    // Without prompt these would go straight back, or to the confirmation page.
    assert_code(
        &b.get(&with_prompt(&web.id, WEB_REDIRECT, "")).await,
        WEB_REDIRECT,
    );
    assert_code(
        &b.get(&with_prompt(&first_party.id, APP_REDIRECT, "")).await,
        APP_REDIRECT,
    );
    for (client, redirect) in [
        (&web, WEB_REDIRECT),
        (&native, APP_REDIRECT),
        (&first_party, APP_REDIRECT),
    ] {
        let page = b.get(&with_prompt(&client.id, redirect, "consent")).await;
        assert_consent_page(&page);
        assert_code(&b.decide(&page, "allow", None).await, redirect);
    }
}

async fn prompt_login_asks_for_the_password_again_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let web = web_app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    let b = signed_in(&app, "alice").await;
    consent_once(&b, &web, WEB_REDIRECT).await;
    let before = b.cookie("lineage_session").expect("signed in");

    // Signed in, and yet the sign-in page.
    let resp = b.get(&with_prompt(&web.id, WEB_REDIRECT, "login")).await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.describe());
    let login = b.follow(resp).await;
    assert_eq!(login.status, 200, "the sign-in form: {}", login.describe());
    assert!(login.url.contains("/login"), "{}", login.url);
    let return_to = login.value("return_to").expect("return_to");
    assert!(return_to.starts_with("/authorize?"), "{return_to}");
    assert!(
        !return_to.contains("prompt"),
        "login is dropped: {return_to}"
    );

    // After signing in, straight back to the app: no second sign-in page, a new session.
    let after = b.submit_login(&login, "alice", PASSWORD).await;
    let back = b.follow(after).await;
    assert_code(&back, WEB_REDIRECT);
    assert_ne!(b.cookie("lineage_session"), Some(before), "a fresh sign-in");

    // `login consent`: sign in, then the consent page.
    let login = b
        .follow(
            b.get(&with_prompt(&web.id, WEB_REDIRECT, "login consent"))
                .await,
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.describe());
    assert!(login.input("password").is_some(), "{}", login.describe());
    let consent = b
        .follow(b.submit_login(&login, "alice", PASSWORD).await)
        .await;
    assert_consent_page(&consent);

    // A wrong password does not get through.
    let login = b
        .follow(b.get(&with_prompt(&web.id, WEB_REDIRECT, "login")).await)
        .await;
    let wrong = b
        .post(
            "/login",
            &[
                ("csrf_token", &login.value("csrf_token").expect("csrf")),
                ("return_to", &login.value("return_to").expect("return_to")),
                ("username", "alice"),
                ("password", "not the password"),
            ],
        )
        .await;
    assert_eq!(
        wrong.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        wrong.describe()
    );

    // Not signed in, prompt=login is an ordinary sign-in.
    let fresh = app.browser();
    let login = fresh
        .follow(
            fresh
                .get(&with_prompt(&web.id, WEB_REDIRECT, "login"))
                .await,
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.describe());
    let back = fresh
        .follow(fresh.submit_login(&login, "alice", PASSWORD).await)
        .await;
    assert_code(&back, WEB_REDIRECT);
}

async fn prompt_none_never_shows_a_page(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let web = web_app_client(&app, "notes:read").await;
    let native = app_client(&app, "notes:read").await;
    let first_party = register(
        &app,
        NewClient {
            name: "Our own app".into(),
            first_party: true,
            public: false,
            ..app_spec("notes:read")
        },
    )
    .await;
    create_user(&app, "alice").await;
    // Not signed in.
    let anonymous = app.browser();
    let resp = anonymous
        .get(&with_prompt(&web.id, WEB_REDIRECT, "none"))
        .await;
    assert_error_redirect(
        &resp,
        WEB_REDIRECT,
        "login_required",
        Some("xyz-state"),
        &app.issuer,
    );
    // Signed in, no consent yet.
    let b = signed_in(&app, "alice").await;
    for (client, redirect) in [(&web, WEB_REDIRECT), (&native, APP_REDIRECT)] {
        let resp = b.get(&with_prompt(&client.id, redirect, "none")).await;
        assert_error_redirect(
            &resp,
            redirect,
            "consent_required",
            Some("xyz-state"),
            &app.issuer,
        );
    }
    // With consent: the confidential app gets its code, the public one would need the
    // confirmation page, a page that is not consent: interaction_required (OIDC Core §3.1.2.6).
    consent_once(&b, &web, WEB_REDIRECT).await;
    consent_once(&b, &native, APP_REDIRECT).await;
    assert_code(
        &b.get(&with_prompt(&web.id, WEB_REDIRECT, "none")).await,
        WEB_REDIRECT,
    );
    assert_code(
        &b.get(&with_prompt(&first_party.id, APP_REDIRECT, "none"))
            .await,
        APP_REDIRECT,
    );
    let resp = b.get(&with_prompt(&native.id, APP_REDIRECT, "none")).await;
    assert_error_redirect(
        &resp,
        APP_REDIRECT,
        "interaction_required",
        Some("xyz-state"),
        &app.issuer,
    );
}

async fn prompt_none_with_another_value_or_an_unknown_value_is_invalid_request(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let web = web_app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    let b = signed_in(&app, "alice").await;
    for prompt in [
        "none login",
        "consent none",
        "none select_account",
        "always",
        "none bogus",
    ] {
        let resp = b.get(&with_prompt(&web.id, WEB_REDIRECT, prompt)).await;
        let r = assert_error_redirect(
            &resp,
            WEB_REDIRECT,
            "invalid_request",
            Some("xyz-state"),
            &app.issuer,
        );
        assert!(
            r.get("error_description").unwrap_or("").contains("prompt"),
            "{prompt}: {:?}",
            r.params
        );
    }
    // The same before sign-in: the request is checked first.
    let anonymous = app.browser();
    let resp = anonymous
        .get(&with_prompt(&web.id, WEB_REDIRECT, "none login"))
        .await;
    assert_error_redirect(
        &resp,
        WEB_REDIRECT,
        "invalid_request",
        Some("xyz-state"),
        &app.issuer,
    );
}
