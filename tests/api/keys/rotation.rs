//! Signing-key rotation, driven by the injected clock: a new key is published before it signs,
//! tokens signed by the old key keep verifying, and a retired key leaves the JWKS only once every
//! token it signed has expired (`retired_at + access_token_ttl + 60 s`).

use std::process::Command;

use lineage::domain::Seconds;
use lineage::tokens::keys::RETIRED_KEY_SKEW;

use crate::helpers::{Backend, KEY_SECRET, jwt_kid, spawn_app, verify_jwt};

both_backends!(
    new_key_is_published_before_it_signs,
    rotation_without_lead_signs_with_the_new_key_after_reload,
    retired_key_leaves_the_jwks_after_its_tokens_expired,
    rotation_by_the_cli_reaches_a_running_server,
);

async fn new_key_is_published_before_it_signs(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.create_client("x").await;
    let start = app.now();
    let lead = Seconds::new(600);
    let old_kid = app.jwks_kids().await.pop().expect("one key");
    let old_token = app.client_credentials_token(&client).await;
    assert_eq!(jwt_kid(&old_token), old_kid);

    let new_kid = app.rotate_keys(lead).await;
    assert_ne!(new_kid, old_kid);

    // After the next key reload the new key is published, but the old one still signs.
    app.advance_past_key_reload();
    let kids = app.jwks_kids().await;
    assert!(
        kids.contains(&old_kid) && kids.contains(&new_kid),
        "{kids:?}"
    );
    let during_lead = app.client_credentials_token(&client).await;
    assert_eq!(
        jwt_kid(&during_lead),
        old_kid,
        "the new key must not sign before its lead time"
    );

    // One second before the lead ends: still the old key.
    app.clock.set(start + lead - 1);
    let just_before = app.client_credentials_token(&client).await;
    assert_eq!(jwt_kid(&just_before), old_kid);

    // From the end of the lead on, the new key signs.
    app.clock.set(start + lead);
    let after = app.client_credentials_token(&client).await;
    assert_eq!(jwt_kid(&after), new_kid);
    app.advance_past_key_reload();
    let after_reload = app.client_credentials_token(&client).await;
    assert_eq!(jwt_kid(&after_reload), new_kid);

    // Every token, old and new, verifies against the JWKS served now.
    let jwks = app.jwks().await;
    for token in [
        &old_token,
        &during_lead,
        &just_before,
        &after,
        &after_reload,
    ] {
        verify_jwt(token, &jwks).unwrap_or_else(|e| panic!("{e}"));
    }
}

async fn rotation_without_lead_signs_with_the_new_key_after_reload(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.create_client("x").await;
    let old_token = app.client_credentials_token(&client).await;
    let old_kid = jwt_kid(&old_token);
    let new_kid = app.rotate_keys(Seconds::ZERO).await;

    app.advance_past_key_reload();
    let new_token = app.client_credentials_token(&client).await;
    assert_eq!(jwt_kid(&new_token), new_kid);

    let jwks = app.jwks().await;
    let kids = app.jwks_kids().await;
    assert!(
        kids.contains(&old_kid),
        "the old key stays published: {kids:?}"
    );
    verify_jwt(&old_token, &jwks).expect("a token signed before the rotation still verifies");
    verify_jwt(&new_token, &jwks).expect("a token signed after the rotation verifies");
}

async fn retired_key_leaves_the_jwks_after_its_tokens_expired(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.create_client("x").await;
    let ttl = app.settings.access_token_ttl;
    let old_kid = app.jwks_kids().await.pop().expect("one key");
    let retired_at = app.now();
    let new_kid = app.rotate_keys(Seconds::ZERO).await;
    app.advance_past_key_reload();

    // The last token the old key could have signed was issued just before `retired_at`.
    let published_until = retired_at + ttl + RETIRED_KEY_SKEW;
    app.clock.set(published_until - 1);
    let kids = app.jwks_kids().await;
    assert!(
        kids.contains(&old_kid),
        "still published one second before: {kids:?}"
    );
    assert!(kids.contains(&new_kid));

    app.clock.set(published_until);
    let kids = app.jwks_kids().await;
    assert_eq!(kids, vec![new_kid.clone()], "the retired key is gone");

    // ... and stays gone after the next reload from the database.
    app.advance_past_key_reload();
    assert_eq!(app.jwks_kids().await, vec![new_kid.clone()]);
    let token = app.client_credentials_token(&client).await;
    assert_eq!(jwt_kid(&token), new_kid);
}

async fn rotation_by_the_cli_reaches_a_running_server(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.create_client("x").await;
    let old_kid = jwt_kid(&app.client_credentials_token(&client).await);
    let url = app.database.url_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_lineage"))
            .args(["--database-url", &url, "--key-secret", KEY_SECRET])
            .args(["keys", "rotate", "--alg", "EdDSA", "--lead", "0", "--json"])
            .env_remove("LINEAGE_CONFIG")
            .output()
    })
    .await
    .expect("join")
    .expect("run lineage keys rotate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rotated: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let new_kid = rotated["kid"].as_str().expect("kid").to_string();
    assert_ne!(new_kid, old_kid);

    // The CLI used the real clock; move the server's clock past the reload interval and at least
    // as far as the new key's activation.
    let activates_at = rotated["activates_at"].as_i64().expect("activates_at");
    app.clock.set(app.now().max(activates_at) + 1);
    app.advance_past_key_reload();
    let token = app.client_credentials_token(&client).await;
    assert_eq!(jwt_kid(&token), new_kid);
    let kids = app.jwks_kids().await;
    assert!(
        kids.contains(&old_kid) && kids.contains(&new_kid),
        "{kids:?}"
    );
}
