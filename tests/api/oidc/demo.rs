//! `serve --demo` and OpenID Connect: the demo app may ask for the OpenID scopes, the demo user
//! has a profile, and the demo app has its back-channel logout URI, also on a database prepared
//! before these existed. The demo page shows the ID token after sign-in and after a refresh, and
//! a logout token arriving when the device is revoked on /account.

use std::time::Duration;

use lineage::clients;
use lineage::db::models::{refresh_families, users};
use reqwest::StatusCode;

use crate::helpers::{
    Backend, PASSWORD, Page, TestApp, decode_segment, set_password, spawn_demo_app,
};

both_backends!(
    the_demo_app_and_user_are_ready_for_openid_connect,
    the_demo_shows_the_id_token_and_a_back_channel_logout,
    the_demo_logout_endpoint_refuses_what_is_not_its_logout_token,
);

/// The demo app's back-channel logout URI on a test server.
fn demo_logout_uri(app: &TestApp) -> String {
    format!("{}/demo/backchannel-logout", app.issuer)
}

/// The demo app's client and the demo user as stored.
async fn demo_state(app: &TestApp) -> (lineage::clients::Client, users::UserRow) {
    app.db
        .read(|c| {
            let client = clients::find(c, "demo-app")?.expect("demo-app exists");
            let user = users::find_by_username(c, "demo")?.expect("the demo user exists");
            Ok::<_, lineage::db::StoreError>((client, user))
        })
        .await
        .expect("read the demo client and user")
}

async fn the_demo_app_and_user_are_ready_for_openid_connect(backend: Backend) {
    let Some(app) = spawn_demo_app(backend).await else {
        return;
    };
    let (client, user) = demo_state(&app).await;
    for s in ["openid", "profile", "email", "notes:read", "notes:write"] {
        assert!(client.scopes.contains(s), "{s} in {:?}", client.scopes);
    }
    let uri = client.backchannel_logout_uri.map(|u| u.to_string());
    assert_eq!(uri, Some(demo_logout_uri(&app)));
    assert_eq!(user.display_name.as_deref(), Some("Demo User"));
    assert_eq!(user.email.as_deref(), Some("demo@example.com"));
    assert!(user.email_verified);

    // A database prepared by an earlier version: the demo app without the OpenID scopes (plus
    // one an operator added), the demo user without a profile. Preparing again fixes both and
    // keeps the operator's scope.
    let now = app.now();
    app.db
        .write(move |c| {
            lineage::db::models::clients::set_scopes(c, "demo-app", "notes:read notes:write x")?;
            users::set_profile(c, &user.id, None, None, false, now)?;
            clients::set_backchannel_logout_uri(c, "demo-app", None, now)
                .map_err(|e| lineage::db::StoreError::from(anyhow::anyhow!("{e}")))?;
            Ok::<_, lineage::db::StoreError>(())
        })
        .await
        .expect("roll back to an old demo");
    lineage::demo::prepare(&app.state).await.expect("prepare");
    let (client, user) = demo_state(&app).await;
    for s in [
        "openid",
        "profile",
        "email",
        "notes:read",
        "notes:write",
        "x",
    ] {
        assert!(client.scopes.contains(s), "{s} in {:?}", client.scopes);
    }
    assert_eq!(user.display_name.as_deref(), Some("Demo User"));
    let uri = client.backchannel_logout_uri.map(|u| u.to_string());
    assert_eq!(
        uri,
        Some(demo_logout_uri(&app)),
        "an old demo gets the logout URI"
    );
}

/// The decoded JSON shown in the page's ID-token card: (header, claims).
fn shown_id_token(page: &Page) -> (serde_json::Value, serde_json::Value) {
    let text = page.text();
    let card = text
        .split("ID token")
        .nth(1)
        .unwrap_or_else(|| panic!("an ID token card: {text}"));
    let mut jsons = card
        .split("Header")
        .nth(1)
        .expect("a header")
        .split('{')
        .skip(1);
    let mut next_json = || {
        let body = jsons.next().expect("a JSON object");
        let end = body.find('}').expect("a closing brace");
        serde_json::from_str::<serde_json::Value>(&format!("{{{}}}", &body[..end]))
            .unwrap_or_else(|e| panic!("shown JSON parses ({e}): {body}"))
    };
    (next_json(), next_json())
}

/// Sign in to the demo app as `demo`: the page the callback shows, and the request's `nonce`.
async fn demo_sign_in(app: &TestApp, b: &crate::helpers::Browser) -> (Page, String) {
    let start = b.get("/demo/start").await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.describe());
    let location = start.location().expect("Location").to_string();
    let authorize = url::Url::parse(&app.url(&location)).expect("URL");
    let q: std::collections::BTreeMap<String, String> =
        authorize.query_pairs().into_owned().collect();
    assert_eq!(q["scope"], "openid profile email notes:read notes:write");
    let nonce = q.get("nonce").expect("the demo sends a nonce").clone();
    let login = b.follow(start).await;
    let consent = b
        .follow(b.submit_login(&login, "demo", PASSWORD).await)
        .await;
    let back = b.decide(&consent, "allow", Some("Demo laptop")).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.describe());
    let page = b.get(back.location().expect("Location")).await;
    assert_eq!(page.status, 200, "{}", page.describe());
    (page, nonce)
}

async fn the_demo_shows_the_id_token_and_a_back_channel_logout(backend: Backend) {
    let Some(app) = spawn_demo_app(backend).await else {
        return;
    };
    set_password(&app, "demo", PASSWORD).await;
    let b = app.browser();
    let index = b.get("/demo").await;
    assert!(
        index
            .text()
            .contains("No session of this app has ended early yet"),
        "{}",
        index.text()
    );

    // After sign-in: the ID token, decoded, next to the access token.
    let (tokens, nonce) = demo_sign_in(&app, &b).await;
    let text = tokens.text();
    assert!(text.contains("Signed in: the app has its tokens"), "{text}");
    assert!(text.contains("Access token"), "{text}");
    let (header, claims) = shown_id_token(&tokens);
    assert_eq!(header["alg"], "RS256", "{header}");
    assert_eq!(header["typ"], "JWT", "{header}");
    assert_eq!(claims["iss"], app.issuer.as_str());
    assert_eq!(claims["aud"], "demo-app");
    assert_eq!(claims["nonce"], nonce.as_str(), "the nonce is echoed");
    assert_eq!(claims["name"], "Demo User");
    assert_eq!(claims["email"], "demo@example.com");
    let sid = claims["sid"].as_str().expect("sid").to_string();

    // After a refresh: a new ID token, same user and session, no nonce (OIDC Core §12.2).
    app.clock.advance(5);
    let form = tokens.form("/demo/refresh").expect("the refresh form");
    let fields: Vec<(String, String)> = ["csrf_token", "refresh_token", "generation"]
        .iter()
        .map(|k| (k.to_string(), form.value(k).unwrap_or_default()))
        .collect();
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let rotated = b.post(&app.url("/demo/refresh"), &pairs).await;
    assert!(rotated.text().contains("Rotated"), "{}", rotated.text());
    let (_, refreshed) = shown_id_token(&rotated);
    assert_eq!(refreshed["sub"], claims["sub"]);
    assert_eq!(refreshed["sid"], sid.as_str());
    assert!(refreshed.get("nonce").is_none(), "{refreshed}");
    assert!(refreshed["iat"].as_i64() > claims["iat"].as_i64());

    // The user revokes the device on /account: lineage tells the demo app, which checks the
    // logout token and shows it.
    b.revoke_device(&sid).await;
    let expected =
        format!("lineage told this app that session {sid} ended (from the account page)");
    let started = std::time::Instant::now();
    let shown = loop {
        let page = b.get("/demo").await;
        if page.text().contains(&expected) {
            break page;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the demo page shows the logout: {}",
            page.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(shown.text().contains("RS256"), "{}", shown.text());
    let sid_for_read = sid.clone();
    let family = app
        .db
        .read(move |c| refresh_families::find(c, &sid_for_read))
        .await
        .expect("read the family")
        .expect("the family");
    assert_eq!(family.revoked_reason.as_deref(), Some("revoked_by_user"));
}

async fn the_demo_logout_endpoint_refuses_what_is_not_its_logout_token(backend: Backend) {
    let Some(app) = spawn_demo_app(backend).await else {
        return;
    };
    let post = |token: String| {
        let (api, url) = (app.api.clone(), demo_logout_uri(&app));
        async move {
            api.post(url)
                .form(&[("logout_token", token)])
                .send()
                .await
                .expect("POST the logout endpoint")
        }
    };
    let now = app.now();
    let keys = app.state.keys.current(&app.db, now).await;
    let sign = |aud: &str, sid: &str| {
        let claims = lineage::backchannel::LogoutClaims::new(&app.issuer, aud, "u", sid, now);
        lineage::backchannel::sign_logout_token(
            &keys,
            lineage::tokens::keys::KeyAlgorithm::RS256,
            &claims,
            now,
        )
        .expect("sign")
    };
    // A logout token of this server for another client, one that has expired, and a JWT of
    // another type (an ID token's `typ`, the same claims): refused with 400 (§2.8), not shown.
    let other = sign("another-app", "sid-other");
    let mut expired = lineage::backchannel::LogoutClaims::new(
        &app.issuer,
        "demo-app",
        "u",
        "sid-expired",
        now - 600,
    );
    expired.exp = now - 300;
    let expired = lineage::backchannel::sign_logout_token(
        &keys,
        lineage::tokens::keys::KeyAlgorithm::RS256,
        &expired,
        now,
    )
    .expect("sign");
    let good = sign("demo-app", "sid-good");
    let parts: Vec<&str> = good.split('.').collect();
    let mut header = decode_segment(parts[0]);
    header["typ"] = "JWT".into();
    let retyped = format!(
        "{}.{}.{}",
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            header.to_string()
        ),
        parts[1],
        parts[2]
    );
    for (what, token) in [
        ("other client", other),
        ("expired", expired),
        ("typ", retyped),
    ] {
        let resp = post(token).await;
        assert_eq!(resp.status(), 400, "{what}");
        let body: serde_json::Value = resp.json().await.expect("an error body");
        assert_eq!(body["error"], "invalid_request", "{what}: {body}");
    }
    let resp = app
        .api
        .post(demo_logout_uri(&app))
        .form(&[("other", "x")])
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 400, "no logout_token");

    // The genuine one is accepted (200) and shown; none of the others are.
    assert_eq!(post(good).await.status(), 200);
    let text = app.browser().get("/demo").await.text();
    assert!(text.contains("session sid-good ended"), "{text}");
    for sid in ["sid-other", "sid-expired"] {
        assert!(!text.contains(sid), "{sid}: {text}");
    }
}
