//! The account page: the user's devices (refresh families) with a revoke form each, sign out
//! everywhere, change password, and the security events.

use lineage::domain::Seconds;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{
    APP_NAME, Backend, PASSWORD, app_client, assert_html_security_headers, audit_events_of_kind,
    create_user, expect_invalid_grant, expect_tokens, family, is_signed_in, refresh,
    signed_in_tokens, spawn_app, spawn_app_with,
};

both_backends!(
    account_page_needs_a_signed_in_browser,
    account_page_lists_devices_with_revoke_forms,
    revoking_a_device_makes_its_refresh_token_fail,
    a_user_cannot_revoke_someone_elses_device,
    sign_out_everywhere_ends_every_family_and_browser_session,
    change_password_ends_everything_else_and_keeps_this_browser,
    change_password_with_a_wrong_current_password_is_refused,
    refresh_token_reuse_shows_up_as_a_security_event,
    a_retry_within_the_grace_from_elsewhere_is_flagged,
    device_and_app_names_are_escaped,
);

async fn account_page_needs_a_signed_in_browser(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let b = app.browser();
    let page = b.get("/account").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.describe());
    let location = page.location().expect("Location");
    assert!(location.starts_with("/login?"), "{location}");
    assert!(
        location.contains("return_to=%2Faccount"),
        "comes back after sign-in: {location}"
    );
    // The account page's forms refuse an anonymous browser too.
    for path in [
        "/account/sign-out-everywhere",
        "/account/password",
        "/account/families/00000000-0000-4000-8000-000000000000/revoke",
    ] {
        let resp = b.post(path, &[("csrf_token", "x")]).await;
        assert_eq!(
            resp.status,
            StatusCode::SEE_OTHER,
            "{path}: {}",
            resp.describe()
        );
        assert!(
            resp.location().unwrap_or("").starts_with("/login"),
            "{path}"
        );
    }
}

async fn account_page_lists_devices_with_revoke_forms(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    let (b, laptop) =
        signed_in_tokens(&app, &client, "notes:read", "alice", "Alice's laptop").await;
    // Consent is remembered, so the second browser is not asked for a device name: it gets
    // one from its user agent.
    let (_, phone) = signed_in_tokens(&app, &client, "notes:read", "alice", "Pixel phone").await;
    let page = b.get("/account").await;
    assert_eq!(page.status, 200, "{}", page.describe());
    assert_html_security_headers(&page);
    let text = page.text();
    for expected in [
        "Alice's laptop",
        "Chrome on Linux",
        APP_NAME,
        "127.0.0.1",
        "notes-app/2.1",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} on the account page: {text}"
        );
    }
    for tokens in [&laptop, &phone] {
        let action = format!("/account/families/{}/revoke", tokens.sid());
        let form = page
            .form(&action)
            .unwrap_or_else(|| panic!("a revoke form posting to {action}"));
        assert_eq!(
            form.tag
                .attr("method")
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("post")
        );
        assert!(form.value("csrf_token").is_some_and(|t| !t.is_empty()));
        assert!(!form.buttons().is_empty(), "a Revoke button");
    }
    assert!(page.form("/account/sign-out-everywhere").is_some());
    let password = page
        .form("/account/password")
        .expect("change-password form");
    let names: Vec<String> = password
        .inputs()
        .iter()
        .filter_map(|t| t.attr("name").map(str::to_string))
        .collect();
    for name in ["csrf_token", "current_password", "new_password"] {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }
    // Other users' devices are not listed.
    create_user(&app, "bob").await;
    let (_, bobs) = signed_in_tokens(&app, &client, "notes:read", "bob", "Bob's desktop").await;
    let page = b.get("/account").await;
    assert!(!page.text().contains("Bob's desktop"));
    assert!(!page.body.contains(&bobs.sid()));
}

async fn revoking_a_device_makes_its_refresh_token_fail(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    let (b, laptop) = signed_in_tokens(&app, &client, "notes:read", "alice", "Old laptop").await;
    let (_, phone) = signed_in_tokens(&app, &client, "notes:read", "alice", "Phone").await;
    let page = b.get("/account").await;
    let action = format!("/account/families/{}/revoke", laptop.sid());
    let csrf = page
        .form(&action)
        .and_then(|f| f.value("csrf_token"))
        .expect("revoke form");

    // Without the CSRF token: refused, nothing revoked.
    let resp = b.post(&action, &[]).await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{}", resp.describe());
    assert!(family(&app, &laptop.sid()).await.revoked_at.is_none());

    let resp = b.post(&action, &[("csrf_token", &csrf)]).await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.describe());
    let page = b.follow(resp).await;
    assert_eq!(page.status, 200);
    assert!(
        page.text().contains("signed out"),
        "a notice: {}",
        page.text()
    );
    assert!(
        page.form(&action).is_none(),
        "the revoked device is no longer listed"
    );
    assert!(
        page.form(&format!("/account/families/{}/revoke", phone.sid()))
            .is_some(),
        "the other device is still listed"
    );

    expect_invalid_grant(
        refresh(&app, &client.id, &laptop.refresh_token).await,
        "refresh of a device revoked on the account page",
    )
    .await;
    let f = family(&app, &laptop.sid()).await;
    assert!(f.revoked_at.is_some());
    assert_eq!(f.revoked_reason.as_deref(), Some("revoked_by_user"));
    // The other device keeps working; the browser stays signed in.
    expect_tokens(refresh(&app, &client.id, &phone.refresh_token).await).await;
    assert!(is_signed_in(&b).await);
    // The revocation feed lists the family for resource servers.
    let feed = crate::helpers::feed_json(&app).await;
    assert!(
        feed["families"]
            .as_array()
            .expect("families")
            .iter()
            .any(|f| f["sid"] == laptop.sid()),
        "{feed}"
    );
}

async fn a_user_cannot_revoke_someone_elses_device(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    create_user(&app, "mallory").await;
    let (_, alices) = signed_in_tokens(&app, &client, "notes:read", "alice", "laptop").await;
    let m = app.browser();
    m.sign_in("mallory", PASSWORD).await;
    let csrf = m.account_csrf().await;
    let resp = m
        .post(
            &format!("/account/families/{}/revoke", alices.sid()),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND, "{}", resp.describe());
    expect_tokens(refresh(&app, &client.id, &alices.refresh_token).await).await;
}

async fn sign_out_everywhere_ends_every_family_and_browser_session(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    let alice = create_user(&app, "alice").await.id;
    create_user(&app, "bob").await;
    let (a, one) = signed_in_tokens(&app, &client, "notes:read", "alice", "laptop").await;
    let (other_browser, two) =
        signed_in_tokens(&app, &client, "notes:read", "alice", "phone").await;
    let (bob_browser, bobs) = signed_in_tokens(&app, &client, "notes:read", "bob", "desk").await;
    let at = app.now();

    let csrf = a.account_csrf().await;
    // CSRF first.
    let resp = a.post("/account/sign-out-everywhere", &[]).await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    assert!(is_signed_in(&other_browser).await);

    let resp = a
        .post("/account/sign-out-everywhere", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.describe());
    assert!(resp.location().unwrap_or("").starts_with("/login"));
    assert!(!is_signed_in(&a).await, "this browser is signed out");
    assert!(
        !is_signed_in(&other_browser).await,
        "every other browser too"
    );
    for t in [&one, &two] {
        expect_invalid_grant(
            refresh(&app, &client.id, &t.refresh_token).await,
            "every family ends",
        )
        .await;
    }
    // Bob is untouched.
    assert!(is_signed_in(&bob_browser).await);
    expect_tokens(refresh(&app, &client.id, &bobs.refresh_token).await).await;

    // Resource servers learn the user's not-before from the feed.
    let feed = crate::helpers::feed_json(&app).await;
    let users = feed["users"].as_array().expect("users");
    let entry = users
        .iter()
        .find(|u| u["sub"] == alice.as_str())
        .unwrap_or_else(|| panic!("alice's not_before in {feed}"));
    assert!(
        entry["not_before"].as_i64().expect("not_before") >= at,
        "{feed}"
    );
    assert!(!users.iter().any(|u| u["sub"] != alice.as_str()), "{feed}");
    let sids: Vec<&Value> = feed["families"]
        .as_array()
        .expect("families")
        .iter()
        .map(|f| &f["sid"])
        .collect();
    assert!(sids.contains(&&Value::from(one.sid())) && sids.contains(&&Value::from(two.sid())));

    // Signing in again works and shows an empty device list.
    a.sign_in("alice", PASSWORD).await;
    let page = a.get("/account").await;
    assert!(
        page.form(&format!("/account/families/{}/revoke", one.sid()))
            .is_none()
    );
}

async fn change_password_ends_everything_else_and_keeps_this_browser(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    let (a, here) = signed_in_tokens(&app, &client, "notes:read", "alice", "this laptop").await;
    let (elsewhere, there) =
        signed_in_tokens(&app, &client, "notes:read", "alice", "old phone").await;

    let csrf = a.account_csrf().await;
    let new_password = "a much better passphrase";
    let resp = a
        .post(
            "/account/password",
            &[
                ("csrf_token", &csrf),
                ("current_password", PASSWORD),
                ("new_password", new_password),
            ],
        )
        .await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.describe());
    let page = a.follow(resp).await;
    assert_eq!(
        page.status,
        200,
        "this browser stays signed in: {}",
        page.describe()
    );
    assert!(
        page.text().contains("password was changed"),
        "{}",
        page.text()
    );
    assert!(is_signed_in(&a).await);
    assert!(
        !is_signed_in(&elsewhere).await,
        "other browsers are signed out"
    );
    for t in [&here, &there] {
        expect_invalid_grant(
            refresh(&app, &client.id, &t.refresh_token).await,
            "families end at a password change",
        )
        .await;
    }
    // The forms of this browser still work (its CSRF binding survived).
    let csrf = a.account_csrf().await;
    let resp = a.post("/logout", &[("csrf_token", &csrf)]).await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER);

    // The new password signs in, the old one does not.
    let b = app.browser();
    let form = b.get("/login").await;
    let resp = b
        .post(
            "/login",
            &[
                ("csrf_token", &form.value("csrf_token").expect("csrf")),
                ("return_to", "/account"),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    b.submit_login(&resp, "alice", new_password).await;
    assert!(is_signed_in(&b).await);
}

async fn change_password_with_a_wrong_current_password_is_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    let (a, tokens) = signed_in_tokens(&app, &client, "notes:read", "alice", "laptop").await;
    let elsewhere = app.browser();
    elsewhere.sign_in("alice", PASSWORD).await;
    let csrf = a.account_csrf().await;

    let resp = a
        .post(
            "/account/password",
            &[
                ("csrf_token", &csrf),
                ("current_password", "not my password"),
                ("new_password", "whatever I like"),
            ],
        )
        .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{}", resp.describe());
    assert_html_security_headers(&resp);
    assert!(
        resp.text().contains("current password is not correct"),
        "{}",
        resp.text()
    );
    // A too-short new password is refused with the current one right.
    let resp = a
        .post(
            "/account/password",
            &[
                ("csrf_token", &csrf),
                ("current_password", PASSWORD),
                ("new_password", "short"),
            ],
        )
        .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{}", resp.describe());
    // Without the CSRF token: refused.
    let resp = a
        .post(
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "long enough now"),
            ],
        )
        .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);

    // Nothing changed.
    assert!(is_signed_in(&a).await && is_signed_in(&elsewhere).await);
    expect_tokens(refresh(&app, &client.id, &tokens.refresh_token).await).await;
    let b = app.browser();
    b.sign_in("alice", PASSWORD).await;
}

async fn refresh_token_reuse_shows_up_as_a_security_event(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| s.refresh_grace = Seconds::ZERO).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    let (b, tokens) = signed_in_tokens(&app, &client, "notes:read", "alice", "stolen laptop").await;
    let next = expect_tokens(refresh(&app, &client.id, &tokens.refresh_token).await).await;
    // The old token comes back: reuse.
    expect_invalid_grant(
        refresh(&app, &client.id, &tokens.refresh_token).await,
        "reuse of a rotated token",
    )
    .await;
    expect_invalid_grant(
        refresh(&app, &client.id, &next.refresh_token).await,
        "the newest token of a family revoked for reuse",
    )
    .await;
    let page = b.get("/account").await;
    let text = page.text();
    assert!(
        text.contains("stolen laptop") && text.contains("used a second time"),
        "the reuse event names the device: {text}"
    );
    assert!(text.contains("127.0.0.1"), "and where it came from: {text}");
    assert!(
        page.body.contains("alarm"),
        "the event is highlighted as alarming"
    );
    assert!(
        page.form(&format!("/account/families/{}/revoke", tokens.sid()))
            .is_none(),
        "the revoked device is gone from the list"
    );
}

async fn a_retry_within_the_grace_from_elsewhere_is_flagged(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| s.refresh_grace = Seconds::new(5)).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    let (b, tokens) = signed_in_tokens(&app, &client, "notes:read", "alice", "phone").await;
    let next = expect_tokens(refresh(&app, &client.id, &tokens.refresh_token).await).await;

    // The app retries after a lost response: the same successor, recorded, not shown to the user.
    let again = expect_tokens(refresh(&app, &client.id, &tokens.refresh_token).await).await;
    assert_eq!(again.refresh_token, next.refresh_token);
    assert_eq!(audit_events_of_kind(&app, "refresh_retry").await.len(), 1);
    let page = b.get("/account").await;
    assert!(!page.text().contains("retry grace"), "{}", page.text());

    // The same token from another program within the grace: answered, and flagged.
    let from_elsewhere = reqwest::Client::builder()
        .user_agent("curl/8.5.0")
        .build()
        .expect("client")
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", client.id.as_str()),
            ("refresh_token", tokens.refresh_token.as_str()),
        ])
        .send()
        .await
        .expect("POST /token");
    let same = expect_tokens(from_elsewhere).await;
    assert_eq!(same.refresh_token, next.refresh_token);
    let flagged = audit_events_of_kind(&app, "refresh_retry_elsewhere").await;
    assert_eq!(flagged.len(), 1);
    assert_eq!(flagged[0].user_agent.as_deref(), Some("curl/8.5.0"));
    assert_eq!(flagged[0].ip.as_deref(), Some("127.0.0.1"));
    let page = b.get("/account").await;
    let text = page.text();
    assert!(
        text.contains("phone") && text.contains("retry grace"),
        "the event names the device: {text}"
    );
    assert!(page.body.contains("alarm"), "and is highlighted");
}

async fn device_and_app_names_are_escaped(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = crate::helpers::register(
        &app,
        lineage::clients::NewClient {
            name: "Evil <b>app</b>".into(),
            ..crate::helpers::app_spec("notes:read")
        },
    )
    .await;
    create_user(&app, "alice").await;
    let b = app.browser();
    b.sign_in("alice", PASSWORD).await;
    let p = crate::helpers::pkce();
    let consent = b
        .get(&crate::helpers::code_request(
            &client.id,
            crate::helpers::APP_REDIRECT,
            "notes:read",
            &p,
        ))
        .await;
    assert_eq!(consent.status, 200);
    assert!(!consent.body.contains("<b>app</b>"), "{}", consent.body);
    assert!(consent.text().contains("Evil <b>app</b>"));
    let device = "<script>alert('device')</script>";
    let back = b.decide(&consent, "allow", Some(device)).await;
    let code = crate::helpers::parse_redirect(back.location().expect("Location"))
        .get("code")
        .expect("code")
        .to_string();
    expect_tokens(
        crate::helpers::exchange(
            &app,
            &client.id,
            &code,
            crate::helpers::APP_REDIRECT,
            Some(&p.verifier),
        )
        .await,
    )
    .await;
    let page = b.get("/account").await;
    assert!(!page.body.contains("<script>"), "{}", page.body);
    assert!(!page.body.contains("<b>app</b>"));
    let text = page.text();
    assert!(
        text.contains(device) && text.contains("Evil <b>app</b>"),
        "{text}"
    );
}
