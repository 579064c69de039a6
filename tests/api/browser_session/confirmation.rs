//! Public clients (native apps, SPAs) are never approved without the user seeing a page
//! (RFC 8252 §8.6): with remembered consent, or as first-party apps, they get a one-click
//! "Continue to APP as USER" page. Confidential clients with remembered consent, and first-party
//! confidential clients, still go straight back with a code.

use lineage::clients::NewClient;
use reqwest::StatusCode;

use crate::helpers::{
    APP_NAME, APP_REDIRECT, Backend, Browser, PASSWORD, Page, TestApp, app_client, app_spec,
    assert_error_redirect, assert_html_security_headers, code_request, create_user, exchange,
    expect_tokens, family, parse_redirect, pkce, register, spawn_app, web_app_client,
};

both_backends!(
    public_client_with_remembered_consent_shows_a_confirmation_page,
    cancel_on_the_confirmation_page_sends_access_denied,
    first_party_public_client_is_confirmed_too,
    confidential_client_with_remembered_consent_goes_straight_back,
    confirmation_is_bound_to_the_session_the_csrf_token_and_time,
    confirming_after_access_was_removed_asks_for_consent_again,
);

/// A signed-in browser for `user`.
async fn signed_in(app: &TestApp, user: &str) -> Browser {
    let b = app.browser();
    b.sign_in(user, PASSWORD).await;
    b
}

/// Open `/authorize` for the app's loopback redirect URI in `b`; returns the response.
async fn open(b: &Browser, client_id: &str, scope: &str) -> Page {
    b.get(&code_request(client_id, APP_REDIRECT, scope, &pkce()))
        .await
}

/// Allow the consent page once, so consent is remembered.
async fn consent_once(b: &Browser, client_id: &str, scope: &str) {
    let page = open(b, client_id, scope).await;
    assert_eq!(page.status, 200, "{}", page.describe());
    assert!(page.input("device_name").is_some(), "the consent page");
    let resp = b.decide(&page, "allow", Some("first device")).await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.describe());
}

/// Assert the confirmation page for `APP_NAME` and `user`.
fn assert_confirmation(page: &Page, user: &str) {
    assert_eq!(page.status, 200, "a page, not a code: {}", page.describe());
    let text = page.text();
    assert!(
        text.contains(&format!("Continue to {APP_NAME} as {user}")),
        "{text}"
    );
    let form = page.form("/consent").expect("a form posting to /consent");
    assert!(form.value("csrf_token").is_some_and(|v| !v.is_empty()));
    assert!(form.value("request").is_some_and(|v| !v.is_empty()));
    assert!(
        form.inputs()
            .iter()
            .all(|t| t.attr("name") != Some("device_name")),
        "one click: no device name to fill in"
    );
    let buttons = form.buttons();
    for decision in ["allow", "deny"] {
        assert!(
            buttons
                .iter()
                .any(|t| t.attr("name") == Some("decision") && t.attr("value") == Some(decision)),
            "a decision={decision} button"
        );
    }
    assert!(text.contains("Not you?"), "{text}");
}

async fn public_client_with_remembered_consent_shows_a_confirmation_page(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    let b = signed_in(&app, "alice").await;
    consent_once(&b, &client.id, "notes:read").await;

    let p = pkce();
    let page = b
        .get(&code_request(&client.id, APP_REDIRECT, "notes:read", &p))
        .await;
    assert_confirmation(&page, "alice");
    assert_html_security_headers(&page);
    assert!(page.text().contains("Read your notes"), "{}", page.text());

    let resp = b.decide(&page, "allow", None).await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.describe());
    let r = parse_redirect(resp.location().expect("Location"));
    assert_eq!(r.target, APP_REDIRECT);
    assert_eq!(r.get("state"), Some("xyz-state"));
    assert_eq!(r.get("iss"), Some(app.issuer.as_str()));
    let tokens = expect_tokens(
        exchange(
            &app,
            &client.id,
            r.get("code").expect("code"),
            APP_REDIRECT,
            Some(&p.verifier),
        )
        .await,
    )
    .await;
    assert_eq!(tokens.body["scope"], "notes:read");
    assert_eq!(
        family(&app, &tokens.sid()).await.device_name.as_deref(),
        Some("Chrome on Linux"),
        "named from the browser, as without a page"
    );
    // Confirming is not consent to more: a wider request still shows the consent page.
    let wider = register(
        &app,
        NewClient {
            name: "Wide app".into(),
            ..app_spec("notes:read notes:write")
        },
    )
    .await;
    consent_once(&b, &wider.id, "notes:read").await;
    let page = open(&b, &wider.id, "notes:read notes:write").await;
    assert!(page.input("device_name").is_some(), "{}", page.describe());
}

async fn cancel_on_the_confirmation_page_sends_access_denied(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    let b = signed_in(&app, "alice").await;
    consent_once(&b, &client.id, "notes:read").await;
    let page = open(&b, &client.id, "notes:read").await;
    assert_confirmation(&page, "alice");
    let resp = b.decide(&page, "deny", None).await;
    assert_error_redirect(
        &resp,
        APP_REDIRECT,
        "access_denied",
        Some("xyz-state"),
        &app.issuer,
    );
    // Cancelling does not withdraw the consent: the next request confirms again.
    assert_confirmation(&open(&b, &client.id, "notes:read").await, "alice");
}

async fn first_party_public_client_is_confirmed_too(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = register(
        &app,
        NewClient {
            first_party: true,
            ..app_spec("notes:read")
        },
    )
    .await;
    create_user(&app, "alice").await;
    let b = signed_in(&app, "alice").await;
    // No consent page for a first-party app, but not silence either.
    let page = open(&b, &client.id, "notes:read").await;
    assert_confirmation(&page, "alice");
    let resp = b.decide(&page, "allow", None).await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.describe());
    assert!(
        parse_redirect(resp.location().expect("Location"))
            .get("code")
            .is_some()
    );
    // Continuing does not store a consent: first-party apps are not listed as allowed apps.
    let account = b.get("/account").await;
    assert!(
        account.forms().iter().all(|f| !f
            .tag
            .attr("action")
            .unwrap_or("")
            .starts_with("/account/apps/")),
        "{}",
        account.describe()
    );
}

async fn confidential_client_with_remembered_consent_goes_straight_back(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = web_app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    let b = signed_in(&app, "alice").await;
    let request = code_request(&client.id, "https://web.example/cb", "notes:read", &pkce());
    let page = b.get(&request).await;
    assert_eq!(page.status, 200, "{}", page.describe());
    assert!(
        page.input("device_name").is_some(),
        "the consent page first"
    );
    b.decide(&page, "allow", None).await;
    let resp = b.get(&request).await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.describe());
    let r = parse_redirect(resp.location().expect("Location"));
    assert_eq!(r.target, "https://web.example/cb");
    assert!(r.get("code").is_some(), "{:?}", r.params);
}

async fn confirmation_is_bound_to_the_session_the_csrf_token_and_time(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    create_user(&app, "mallory").await;
    let alice = signed_in(&app, "alice").await;
    consent_once(&alice, &client.id, "notes:read").await;
    let page = open(&alice, &client.id, "notes:read").await;
    assert_confirmation(&page, "alice");
    let handle = page.value("request").expect("request");

    // Without the CSRF token, or with a tampered handle: refused, no code.
    let resp = alice
        .post("/consent", &[("request", &handle), ("decision", "allow")])
        .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{}", resp.describe());
    let csrf = page.value("csrf_token").expect("csrf");
    let (payload, tag) = handle.split_once('.').expect("payload.tag");
    let forged = format!("{payload}A.{tag}");
    let resp = alice
        .post(
            "/consent",
            &[
                ("csrf_token", &csrf),
                ("request", &forged),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{}", resp.describe());

    // Mallory cannot continue Alice's request with her own session and CSRF token.
    let mallory = signed_in(&app, "mallory").await;
    let mallory_csrf = mallory.account_csrf().await;
    let resp = mallory
        .post(
            "/consent",
            &[
                ("csrf_token", &mallory_csrf),
                ("request", &handle),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{}", resp.describe());
    assert!(resp.location().is_none());

    // After ten minutes the page has expired.
    app.clock.advance(601);
    let resp = alice.decide(&page, "allow", None).await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{}", resp.describe());
    assert!(resp.location().is_none());
}

async fn confirming_after_access_was_removed_asks_for_consent_again(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    let b = signed_in(&app, "alice").await;
    consent_once(&b, &client.id, "notes:read").await;
    let page = open(&b, &client.id, "notes:read").await;
    assert_confirmation(&page, "alice");
    // Meanwhile, in another tab, the user removes the app's access.
    let csrf = b.account_csrf().await;
    let removed = b
        .post(
            &format!("/account/apps/{}/remove", client.id),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(
        removed.status,
        StatusCode::SEE_OTHER,
        "{}",
        removed.describe()
    );
    // The open confirmation page no longer gives a code: the consent page comes instead.
    let resp = b.decide(&page, "allow", None).await;
    assert_eq!(resp.status, 200, "{}", resp.describe());
    assert!(resp.input("device_name").is_some(), "{}", resp.describe());
    assert!(resp.location().is_none());
    let allowed = b.decide(&resp, "allow", Some("again")).await;
    assert_eq!(
        allowed.status,
        StatusCode::SEE_OTHER,
        "{}",
        allowed.describe()
    );
    assert!(
        parse_redirect(allowed.location().expect("Location"))
            .get("code")
            .is_some()
    );
}
