//! `serve --demo`: `demo::prepare` creates the demo client and user once, and the /demo pages walk
//! through sign-in, consent, the code exchange, a rotation and a replay, then a second sign-in
//! (a one-click confirmation: the demo app is public) and removing the app's access.

use lineage::clients;
use reqwest::StatusCode;

use crate::helpers::{
    Backend, Page, TestApp, assert_html_security_headers, create_user, expect_invalid_grant,
    parse_redirect, refresh, set_password, spawn_app, spawn_demo_app,
};

both_backends!(
    demo_pages_exist_only_with_demo_on,
    prepare_creates_the_demo_client_and_user_once,
    demo_walks_through_sign_in_refresh_and_replay,
    demo_callback_refuses_a_foreign_state,
);

const DEMO_PASSWORD: &str = "demo password for tests";

async fn demo_pages_exist_only_with_demo_on(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let b = app.browser();
    for path in ["/demo", "/demo/start", "/demo/callback"] {
        let page = b.get(path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path} without --demo");
    }
}

async fn prepare_creates_the_demo_client_and_user_once(backend: Backend) {
    let Some(app) = spawn_demo_app(backend).await else {
        return;
    };
    let client = app
        .db
        .read(|c| clients::find(c, "demo-app"))
        .await
        .expect("lookup")
        .expect("demo-app exists");
    assert!(client.is_public, "the demo app is a public client");
    let redirects: Vec<&str> = client.redirect_uris.iter().map(|r| r.as_str()).collect();
    assert_eq!(
        redirects,
        [format!("{}/demo/callback", app.issuer).as_str()]
    );
    // The demo user exists: creating it again conflicts.
    let pw = lineage::domain::Password::new("another password".into()).expect("pw");
    let hash = lineage::users::hash_password(&pw).expect("hash");
    let again = app
        .db
        .write(move |c| {
            let name = lineage::domain::Username::parse("demo").expect("name");
            lineage::users::create(c, &name, &hash, 0)
        })
        .await;
    assert!(
        matches!(again, Err(lineage::clients::RegistryError::Conflict(_))),
        "the demo user already exists: {again:?}"
    );
}

/// Submit a demo page's form posting to `action`, with all its hidden fields.
async fn submit(app: &TestApp, b: &crate::helpers::Browser, page: &Page, action: &str) -> Page {
    let form = page
        .form(action)
        .unwrap_or_else(|| panic!("a form posting to {action}: {}", page.describe()));
    let fields: Vec<(String, String)> = form
        .inputs()
        .iter()
        .filter_map(|t| {
            Some((
                t.attr("name")?.to_string(),
                t.attr("value").unwrap_or("").to_string(),
            ))
        })
        .collect();
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let resp = b.post(&app.url(action), &pairs).await;
    assert_eq!(resp.status, 200, "{action}: {}", resp.describe());
    assert_html_security_headers(&resp);
    resp
}

async fn demo_walks_through_sign_in_refresh_and_replay(backend: Backend) {
    let Some(app) = spawn_demo_app(backend).await else {
        return;
    };
    set_password(&app, "demo", DEMO_PASSWORD).await;
    let b = app.browser();
    let index = b.get("/demo").await;
    assert_eq!(index.status, 200, "{}", index.describe());
    assert_html_security_headers(&index);
    assert!(index.text().contains("Start sign-in"));

    // /demo/start: PKCE and state in a cookie, then /authorize for demo-app.
    let start = b.get("/demo/start").await;
    assert_eq!(start.status, StatusCode::SEE_OTHER);
    let location = start.location().expect("Location").to_string();
    let authorize = url::Url::parse(&app.url(&location)).expect("URL");
    assert_eq!(authorize.path(), "/authorize");
    let q: std::collections::BTreeMap<String, String> =
        authorize.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], "demo-app");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["redirect_uri"], format!("{}/demo/callback", app.issuer));
    assert!(b.cookie("lineage_demo").is_some());

    // Sign in (the page names the demo app), consent with a device name.
    let login = b.follow(start).await;
    assert_eq!(login.status, 200, "{}", login.describe());
    assert!(login.text().contains("Demo notes app"), "{}", login.text());
    let consent = b
        .follow(b.submit_login(&login, "demo", DEMO_PASSWORD).await)
        .await;
    assert_eq!(consent.status, 200, "{}", consent.describe());
    assert!(consent.text().contains("Demo notes app"));
    let back = b.decide(&consent, "allow", Some("Demo laptop")).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER);
    let r = parse_redirect(back.location().expect("Location"));
    assert_eq!(r.target, format!("{}/demo/callback", app.issuer));

    // The callback exchanges the code and shows the tokens.
    let tokens = b.get(back.location().expect("Location")).await;
    assert_eq!(tokens.status, 200, "{}", tokens.describe());
    let text = tokens.text();
    assert!(text.contains("Signed in: the app has its tokens"), "{text}");
    assert!(
        text.contains("EdDSA") && text.contains("at+jwt"),
        "decoded header: {text}"
    );
    assert!(text.contains("\"sid\""), "decoded claims: {text}");
    let first = tokens
        .form("/demo/refresh")
        .and_then(|f| f.value("refresh_token"))
        .expect("refresh form with the refresh token");
    assert!(text.contains(&first));

    // Refresh: the token rotates.
    let rotated = submit(&app, &b, &tokens, "/demo/refresh").await;
    assert!(rotated.text().contains("Rotated"), "{}", rotated.text());
    let second = rotated
        .form("/demo/refresh")
        .and_then(|f| f.value("refresh_token"))
        .expect("the new refresh token");
    assert_ne!(second, first);
    assert_eq!(
        rotated
            .form("/demo/replay")
            .and_then(|f| f.value("old_refresh_token"))
            .as_deref(),
        Some(first.as_str()),
        "the replay form carries the used token"
    );

    // Replay after the retry grace: reuse detected, the family is revoked.
    app.clock.advance(30);
    let replayed = submit(&app, &b, &rotated, "/demo/replay").await;
    let text = replayed.text();
    assert!(text.contains("Reuse detected"), "{text}");
    assert!(text.contains("invalid_grant"), "{text}");
    expect_invalid_grant(
        refresh(&app, "demo-app", &second).await,
        "the newest token after the demo's replay",
    )
    .await;
    // The account page tells the story.
    let account = b.get("/account").await;
    assert!(
        account.text().contains("used a second time"),
        "{}",
        account.text()
    );

    // A form without the demo's CSRF token is refused.
    let resp = b
        .post(&app.url("/demo/refresh"), &[("refresh_token", &second)])
        .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);

    // Sign in again: the demo app is public, so a one-click confirmation, not a silent code.
    let confirm = b.follow(b.get("/demo/start").await).await;
    assert_eq!(confirm.status, 200, "{}", confirm.describe());
    assert!(
        confirm
            .text()
            .contains("Continue to Demo notes app as demo"),
        "{}",
        confirm.text()
    );
    let back = b.decide(&confirm, "allow", None).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.describe());
    let tokens = b.get(back.location().expect("Location")).await;
    assert!(
        tokens.text().contains("Signed in: the app has its tokens"),
        "{}",
        tokens.text()
    );
    // "Not you? Cancel" comes back to the demo as access_denied.
    let confirm = b.follow(b.get("/demo/start").await).await;
    let back = b.decide(&confirm, "deny", None).await;
    let denied = b.get(back.location().expect("Location")).await;
    assert!(denied.text().contains("access_denied"), "{}", denied.text());

    // Remove the demo app's access on the account page: the next sign-in asks for consent.
    let account = b.get("/account").await;
    let remove = account
        .form("/account/apps/demo-app/remove")
        .expect("the demo app under Apps with access");
    let resp = b
        .post(
            "/account/apps/demo-app/remove",
            &[("csrf_token", &remove.value("csrf_token").expect("csrf"))],
        )
        .await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.describe());
    let consent = b.follow(b.get("/demo/start").await).await;
    assert_eq!(consent.status, 200, "{}", consent.describe());
    assert!(
        consent.input("device_name").is_some(),
        "{}",
        consent.describe()
    );
}

async fn demo_callback_refuses_a_foreign_state(backend: Backend) {
    let Some(app) = spawn_demo_app(backend).await else {
        return;
    };
    create_user(&app, "someone").await;
    let b = app.browser();
    b.get("/demo/start").await;
    let page = b
        .get(&format!(
            "/demo/callback?code=abc&state=not-mine&iss={}",
            app.issuer
        ))
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.describe());
    assert!(page.text().contains("state"), "{}", page.text());
    // No demo cookie at all.
    let fresh = app.browser();
    let page = fresh.get("/demo/callback?code=abc&state=x").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
}
