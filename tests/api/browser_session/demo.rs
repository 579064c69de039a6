//! `serve --demo`: `demo::prepare` creates the demo client and user once, and the /demo pages walk
//! through sign-in, consent, the code exchange, a rotation and a replay, then a second sign-in
//! (a one-click confirmation: the demo app is public) and removing the app's access. The demo
//! app's tokens are DPoP-bound to a key of the browser session; "Steal the refresh token" shows a
//! copy refused without that key, the security event, and the device refreshing afterwards.

use std::collections::BTreeMap;

use lineage::clients;
use lineage::db::models::refresh_families;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{
    Backend, Page, TestApp, assert_html_security_headers, create_user, parse_redirect, refresh,
    set_password, spawn_app, spawn_demo_app,
};

both_backends!(
    demo_pages_exist_only_with_demo_on,
    prepare_creates_the_demo_client_and_user_once,
    demo_walks_through_sign_in_refresh_and_replay,
    demo_tokens_are_bound_to_the_browser_sessions_key,
    demo_steal_is_refused_recorded_and_the_device_refreshes_after,
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
    assert!(client.require_dpop, "the demo app's tokens are DPoP-bound");
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

    // A demo app registered before it used DPoP gets the requirement at the next start.
    let now = app.now();
    app.db
        .write(move |c| clients::set_require_dpop(c, "demo-app", false, now))
        .await
        .expect("an old demo app");
    lineage::demo::prepare(&app.state).await.expect("prepare");
    let client = app
        .db
        .read(|c| clients::find(c, "demo-app"))
        .await
        .expect("lookup")
        .expect("demo-app exists");
    assert!(client.require_dpop, "prepare requires DPoP again");
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

/// Sign in to the demo app as `demo` on `b`, allowing it as "Demo laptop": the authorization
/// request's parameters and the page the callback shows.
async fn demo_sign_in(
    app: &TestApp,
    b: &crate::helpers::Browser,
) -> (BTreeMap<String, String>, Page) {
    // /demo/start: PKCE, state and the device key in a cookie, then /authorize for demo-app.
    let start = b.get("/demo/start").await;
    assert_eq!(start.status, StatusCode::SEE_OTHER);
    let location = start.location().expect("Location").to_string();
    let authorize = url::Url::parse(&app.url(&location)).expect("URL");
    assert_eq!(authorize.path(), "/authorize");
    let q: BTreeMap<String, String> = authorize.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], "demo-app");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["redirect_uri"], format!("{}/demo/callback", app.issuer));
    assert!(
        lineage_jwt::dpop::is_thumbprint(&q["dpop_jkt"]),
        "the code is bound to the app's key: {q:?}"
    );
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
    (q, tokens)
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

    let (_, tokens) = demo_sign_in(&app, &b).await;
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

    // Replay after the retry grace, with the device's key: reuse detected, the family is
    // revoked, and the newest token is refused to the device too.
    app.clock.advance(30);
    let replayed = submit(&app, &b, &rotated, "/demo/replay").await;
    let text = replayed.text();
    assert!(text.contains("Reuse detected"), "{text}");
    assert!(text.contains("invalid_grant"), "{text}");
    let csrf = rotated.value("csrf_token").expect("csrf");
    let after = b
        .post(
            &app.url("/demo/refresh"),
            &[
                ("csrf_token", csrf.as_str()),
                ("refresh_token", second.as_str()),
            ],
        )
        .await;
    let text = after.text();
    assert!(text.contains("The refresh failed"), "{text}");
    assert!(text.contains("invalid_grant"), "{text}");
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

/// The text of the `pre` blocks in the element `#id` of a page.
fn shown(page: &Page, id: &str) -> Vec<String> {
    let document = scraper::Html::parse_document(&page.body);
    let selector = scraper::Selector::parse(&format!("#{id} pre")).expect("selector");
    document
        .select(&selector)
        .map(|pre| pre.text().collect::<String>().trim().to_string())
        .collect()
}

/// The family (session) of the demo's tokens, as stored.
async fn stored_family(app: &TestApp, page: &Page) -> refresh_families::FamilyRow {
    let text = page.text();
    let sid = text
        .split("\"sid\": \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("a sid in the decoded claims: {text}"))
        .to_string();
    app.db
        .read(move |c| refresh_families::find(c, &sid))
        .await
        .expect("lookup")
        .expect("the family exists")
}

async fn demo_tokens_are_bound_to_the_browser_sessions_key(backend: Backend) {
    let Some(app) = spawn_demo_app(backend).await else {
        return;
    };
    set_password(&app, "demo", DEMO_PASSWORD).await;
    let b = app.browser();
    let (q, tokens) = demo_sign_in(&app, &b).await;
    let text = tokens.text();
    assert!(text.contains("Signed in: the app has its tokens"), "{text}");

    // The page shows the key's thumbprint (the one the authorization request named), the token
    // type, and the access token's cnf.jkt: the same key.
    let jkt = q["dpop_jkt"].clone();
    let dpop = shown(&tokens, "dpop");
    assert_eq!(dpop, [jkt.clone(), jkt.clone()], "jkt and cnf.jkt: {text}");
    assert!(text.contains("token_type DPoP"), "{text}");
    assert!(text.contains("cnf.jkt — the same key"), "{text}");
    assert!(
        text.contains("they only work with this key"),
        "the page says what binding means: {text}"
    );
    let claims: Value = serde_json::from_str(&shown(&tokens, "access-token")[1]).expect("claims");
    assert_eq!(claims["cnf"]["jkt"], jkt.as_str(), "{claims}");
    let family = stored_family(&app, &tokens).await;
    assert_eq!(family.dpop_jkt.as_deref(), Some(jkt.as_str()));

    // A rotation keeps the binding.
    let rotated = submit(&app, &b, &tokens, "/demo/refresh").await;
    assert!(rotated.text().contains("Rotated"), "{}", rotated.text());
    assert_eq!(shown(&rotated, "dpop"), [jkt.clone(), jkt]);

    // Outside the demo, the token without the key is refused before it is even looked at: the
    // demo app must prove its key.
    let current = rotated
        .form("/demo/refresh")
        .and_then(|f| f.value("refresh_token"))
        .expect("the current refresh token");
    let resp = refresh(&app, "demo-app", &current).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("JSON");
    assert_eq!(body["error"], "invalid_dpop_proof", "{body}");
}

async fn demo_steal_is_refused_recorded_and_the_device_refreshes_after(backend: Backend) {
    let Some(app) = spawn_demo_app(backend).await else {
        return;
    };
    set_password(&app, "demo", DEMO_PASSWORD).await;
    let b = app.browser();
    let (q, tokens) = demo_sign_in(&app, &b).await;
    let stolen = tokens
        .form("/demo/steal")
        .and_then(|f| f.value("refresh_token"))
        .expect("the steal form carries the current refresh token");

    app.clock.advance(5);
    let page = submit(&app, &b, &tokens, "/demo/steal").await;
    let text = page.text();
    assert!(
        text.contains("The stolen refresh token was refused"),
        "{text}"
    );
    // The server's answers: another key's proof is invalid_grant, no proof is invalid_dpop_proof.
    assert!(
        text.contains("invalid_grant — the refresh token is bound to another DPoP key"),
        "{text}"
    );
    assert!(
        text.contains("invalid_dpop_proof — the refresh token is bound to a DPoP key"),
        "{text}"
    );
    // The security event, as the account page shows it: the first attempt's (the second, a
    // moment later, is refused as well but not recorded again: one event a minute per device).
    let event = "from another device (signed with another key than the one that device holds); \
                 it was refused and the device stays signed in";
    let document = scraper::Html::parse_document(&page.body);
    let alarms: Vec<String> = document
        .select(&scraper::Selector::parse("#security-events li.alarm").expect("selector"))
        .map(|li| li.text().collect::<String>())
        .collect();
    assert_eq!(alarms.len(), 1, "one event: {alarms:?}");
    assert!(alarms[0].contains(event), "{alarms:?}");
    assert!(alarms[0].contains("Demo laptop"), "{alarms:?}");
    let account = b.get("/account").await;
    assert!(account.text().contains(event), "{}", account.text());

    // The copy spent nothing: the device refreshed with the same token right after, the session
    // is still bound to its key, and its next refresh works too.
    assert!(
        text.contains("this device's refresh with the same token, signed by its key 200 OK"),
        "{text}"
    );
    let after_steal = page
        .form("/demo/refresh")
        .and_then(|f| f.value("refresh_token"))
        .expect("the device's new refresh token");
    assert_ne!(after_steal, stolen);
    assert_eq!(
        page.form("/demo/replay")
            .and_then(|f| f.value("old_refresh_token"))
            .as_deref(),
        Some(stolen.as_str()),
        "the token the copy was made of is now the used one"
    );
    let family = stored_family(&app, &page).await;
    assert!(family.revoked_at.is_none(), "{family:?}");
    assert_eq!(family.dpop_jkt.as_deref(), Some(q["dpop_jkt"].as_str()));
    app.clock.advance(5);
    let next = submit(&app, &b, &page, "/demo/refresh").await;
    assert!(next.text().contains("Rotated"), "{}", next.text());

    // Reuse detection still works with the key: replaying the used token revokes the family.
    app.clock.advance(30);
    let replayed = submit(&app, &b, &next, "/demo/replay").await;
    assert!(
        replayed.text().contains("Reuse detected"),
        "{}",
        replayed.text()
    );
    let family = stored_family(&app, &page).await;
    assert!(family.revoked_at.is_some(), "{family:?}");
}
