//! The consent page: what it shows, allow and deny, remembered consent (and asking again for
//! more), first-party clients, and the form's CSRF token and request handle.

use lineage::clients::NewClient;
use reqwest::StatusCode;

use crate::helpers::{
    APP_NAME, APP_REDIRECT, Backend, PASSWORD, app_client, app_spec, assert_html_security_headers,
    code_request, create_user, exchange, expect_tokens, family, parse_redirect, pkce, register,
    spawn_app, token_request,
};

both_backends!(
    consent_page_shows_the_app_the_scopes_and_the_form,
    deny_sends_access_denied_back,
    allow_sends_a_code_with_state_and_iss,
    consent_is_remembered_and_asked_again_for_more,
    consent_is_per_user,
    first_party_client_skips_consent,
    consent_without_a_valid_csrf_token_is_refused,
    consent_request_handle_is_bound_to_the_session_and_expires,
);

/// Sign `user` in on a new browser and open the consent page for `scope`.
async fn consent_page(
    app: &crate::helpers::TestApp,
    client_id: &str,
    scope: &str,
    user: &str,
) -> (
    crate::helpers::Browser,
    crate::helpers::Pkce,
    crate::helpers::Page,
) {
    let b = app.browser();
    b.sign_in(user, PASSWORD).await;
    let p = pkce();
    let page = b
        .get(&code_request(client_id, APP_REDIRECT, scope, &p))
        .await;
    assert_eq!(page.status, 200, "a consent page: {}", page.describe());
    (b, p, page)
}

async fn consent_page_shows_the_app_the_scopes_and_the_form(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read notes:write profile").await;
    create_user(&app, "alice").await;
    let (_, _, page) = consent_page(&app, &client.id, "notes:read notes:write", "alice").await;
    assert_html_security_headers(&page);
    let text = page.text();
    assert!(text.contains(APP_NAME), "app name: {text}");
    assert!(text.contains("alice"), "who is signed in: {text}");
    for words in ["Read your notes", "Create and change your notes"] {
        assert!(text.contains(words), "scope in words {words:?}: {text}");
    }
    assert!(
        text.contains("notes:read") && text.contains("notes:write"),
        "{text}"
    );
    assert!(
        !text.contains("profile"),
        "only the requested scopes: {text}"
    );
    assert!(
        text.contains("127.0.0.1"),
        "where the user will be sent: {text}"
    );

    let form = page.form("/consent").expect("a form posting to /consent");
    assert_eq!(
        form.tag
            .attr("method")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("post")
    );
    let input = |name: &str| {
        form.inputs()
            .into_iter()
            .find(|t| t.attr("name") == Some(name))
            .unwrap_or_else(|| panic!("input {name} on the consent form"))
    };
    assert_eq!(input("csrf_token").attr("type"), Some("hidden"));
    assert_eq!(input("request").attr("type"), Some("hidden"));
    assert!(!input("request").attr("value").unwrap_or("").is_empty());
    assert_eq!(input("device_name").attr("type"), Some("text"));
    assert_eq!(
        input("device_name").attr("value"),
        Some("Chrome on Linux"),
        "device name prefilled from the user agent"
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
    assert!(!page.body.to_ascii_lowercase().contains("<script"));
}

async fn deny_sends_access_denied_back(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    let (b, _, page) = consent_page(&app, &client.id, "notes:read", "alice").await;
    let resp = b.decide(&page, "deny", Some("my laptop")).await;
    crate::helpers::assert_error_redirect(
        &resp,
        APP_REDIRECT,
        "access_denied",
        Some("xyz-state"),
        &app.issuer,
    );
    // Denying is not remembered as consent: the next request asks again.
    let p = pkce();
    let again = b
        .get(&code_request(&client.id, APP_REDIRECT, "notes:read", &p))
        .await;
    assert_eq!(again.status, 200, "asked again: {}", again.describe());
    assert!(again.input("request").is_some());
    // Anything but allow or deny is refused.
    let resp = b.decide(&again, "maybe", None).await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{}", resp.describe());
}

async fn allow_sends_a_code_with_state_and_iss(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    let (b, p, page) = consent_page(&app, &client.id, "notes:read", "alice").await;
    let resp = b.decide(&page, "allow", Some("  Alice's laptop  ")).await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.describe());
    let r = parse_redirect(resp.location().expect("Location"));
    assert_eq!(r.target, APP_REDIRECT);
    let code = r.get("code").expect("code").to_string();
    assert!(code.len() >= 32, "a long random code: {code}");
    assert_eq!(r.get("state"), Some("xyz-state"));
    assert_eq!(r.get("iss"), Some(app.issuer.as_str()));
    assert!(r.get("error").is_none());
    // The device name typed on the page (trimmed) names the family the code starts.
    let tokens =
        expect_tokens(exchange(&app, &client.id, &code, APP_REDIRECT, Some(&p.verifier)).await)
            .await;
    let f = family(&app, &tokens.sid()).await;
    assert_eq!(f.device_name.as_deref(), Some("Alice's laptop"));
}

async fn consent_is_remembered_and_asked_again_for_more(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read notes:write").await;
    create_user(&app, "alice").await;
    let (b, _, page) = consent_page(&app, &client.id, "notes:read", "alice").await;
    let resp = b.decide(&page, "allow", Some("laptop")).await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER);

    // The same scope again: no consent page, but the app is public, so the user confirms with
    // one click (RFC 8252 §8.6) and the code comes back from that.
    let p = pkce();
    let confirm = b
        .get(&code_request(&client.id, APP_REDIRECT, "notes:read", &p))
        .await;
    assert_eq!(confirm.status, 200, "remembered: {}", confirm.describe());
    assert!(
        confirm.text().contains("Continue to"),
        "the confirmation page: {}",
        confirm.text()
    );
    assert!(
        confirm.input("device_name").is_none(),
        "not the consent page"
    );
    let resp = b.decide(&confirm, "allow", None).await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.describe());
    let r = parse_redirect(resp.location().expect("Location"));
    assert!(r.get("code").is_some(), "{:?}", r.params);
    assert_eq!(r.get("state"), Some("xyz-state"));
    // The code works and its family gets a default device name from the browser.
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
    assert_eq!(
        family(&app, &tokens.sid()).await.device_name.as_deref(),
        Some("Chrome on Linux")
    );

    // A wider scope asks again, naming only what is requested.
    let wider = b
        .get(&code_request(
            &client.id,
            APP_REDIRECT,
            "notes:read notes:write",
            &p,
        ))
        .await;
    assert_eq!(
        wider.status,
        200,
        "wider scope asks again: {}",
        wider.describe()
    );
    assert!(wider.text().contains("Create and change your notes"));
    let resp = b.decide(&wider, "allow", None).await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER);

    // Now both, either, and the other order are remembered: the confirmation, not consent.
    for scope in [
        "notes:read notes:write",
        "notes:write",
        "notes:write notes:read",
        "notes:read",
    ] {
        let page = b
            .get(&code_request(&client.id, APP_REDIRECT, scope, &p))
            .await;
        assert_eq!(page.status, 200, "{scope}: {}", page.describe());
        assert!(
            page.text().contains("Continue to"),
            "{scope}: {}",
            page.text()
        );
        assert!(page.input("device_name").is_none(), "{scope}: not consent");
    }
}

async fn consent_is_per_user(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    create_user(&app, "bob").await;
    let (a, _, page) = consent_page(&app, &client.id, "notes:read", "alice").await;
    a.decide(&page, "allow", None).await;
    // Bob has not agreed to anything.
    consent_page(&app, &client.id, "notes:read", "bob").await;
    // Nor does Alice's consent for one app cover another.
    let other = register(
        &app,
        NewClient {
            name: "Other notes app".into(),
            ..app_spec("notes:read")
        },
    )
    .await;
    let p = pkce();
    let page = a
        .get(&code_request(&other.id, APP_REDIRECT, "notes:read", &p))
        .await;
    assert_eq!(page.status, 200, "{}", page.describe());
    assert!(page.text().contains("Other notes app"));
}

async fn first_party_client_skips_consent(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    // A confidential first-party app: no page at all. (A public one gets the one-click
    // confirmation; see `confirmation.rs`.)
    let client = register(
        &app,
        NewClient {
            name: "Our own app".into(),
            first_party: true,
            public: false,
            ..app_spec("notes:read notes:write")
        },
    )
    .await;
    create_user(&app, "alice").await;
    let b = app.browser();
    b.sign_in("alice", PASSWORD).await;
    let p = pkce();
    let resp = b
        .get(&code_request(
            &client.id,
            APP_REDIRECT,
            "notes:read notes:write",
            &p,
        ))
        .await;
    assert_eq!(
        resp.status,
        StatusCode::SEE_OTHER,
        "no consent page: {}",
        resp.describe()
    );
    let r = parse_redirect(resp.location().expect("Location"));
    assert_eq!(r.get("state"), Some("xyz-state"));
    assert_eq!(r.get("iss"), Some(app.issuer.as_str()));
    let tokens = expect_tokens(
        token_request(
            &app,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", &client.id),
                ("client_secret", &client.secret),
                ("code", r.get("code").expect("code")),
                ("redirect_uri", APP_REDIRECT),
                ("code_verifier", &p.verifier),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(tokens.body["scope"], "notes:read notes:write");
    assert_eq!(
        family(&app, &tokens.sid()).await.device_name.as_deref(),
        Some("Chrome on Linux"),
        "device named from the browser"
    );
}

async fn consent_without_a_valid_csrf_token_is_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    let (b, p, page) = consent_page(&app, &client.id, "notes:read", "alice").await;
    let request = page.value("request").expect("request");
    for fields in [
        vec![("request", request.as_str()), ("decision", "allow")],
        vec![
            ("csrf_token", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            ("request", request.as_str()),
            ("decision", "allow"),
        ],
    ] {
        let resp = b.post("/consent", &fields).await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{}", resp.describe());
        assert!(resp.location().is_none(), "no code without the CSRF token");
        assert_html_security_headers(&resp);
    }
    // Not remembered either: the page is shown again, and its form still works.
    let again = b
        .get(&code_request(&client.id, APP_REDIRECT, "notes:read", &p))
        .await;
    assert_eq!(again.status, 200);
    let resp = b.decide(&page, "allow", None).await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.describe());
    // A tampered request handle is refused.
    create_user(&app, "bob").await;
    let (b2, _, page2) = consent_page(&app, &client.id, "notes:read", "bob").await;
    let csrf = page2.value("csrf_token").expect("csrf");
    let handle = page2.value("request").expect("request");
    let (payload, tag) = handle.split_once('.').expect("payload.tag");
    let forged = format!("{payload}A.{tag}");
    let resp = b2
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
}

async fn consent_request_handle_is_bound_to_the_session_and_expires(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    create_user(&app, "mallory").await;
    let (_, _, alice_page) = consent_page(&app, &client.id, "notes:read", "alice").await;
    // Mallory cannot approve Alice's pending request with her own session and CSRF token.
    let (m, _, mallory_page) = consent_page(&app, &client.id, "notes:read", "mallory").await;
    let resp = m
        .post(
            "/consent",
            &[
                (
                    "csrf_token",
                    &mallory_page.value("csrf_token").expect("csrf"),
                ),
                ("request", &alice_page.value("request").expect("request")),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{}", resp.describe());

    // Signed out, the form is refused.
    let (b, _, page) = consent_page(&app, &client.id, "notes:read", "alice").await;
    let csrf = b.account_csrf().await;
    b.post("/logout", &[("csrf_token", &csrf)]).await;
    let resp = b.decide(&page, "allow", None).await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{}", resp.describe());

    // A consent page left open for more than ten minutes has expired.
    let (b, _, page) = consent_page(&app, &client.id, "notes:read", "alice").await;
    app.clock.advance(601);
    let resp = b.decide(&page, "allow", None).await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{}", resp.describe());
    assert!(resp.location().is_none());
}
