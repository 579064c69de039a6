//! Refresh families and access tokens bound to a key: a code exchanged with a proof binds the
//! family, which then rotates only with proofs by that key; a copy of its refresh token without
//! the key is refused without spending it, and the user is told. An unbound family refreshed with
//! a proof gets a bound access token; a public client's family becomes bound with it, a
//! confidential client's stays unbound.

use std::collections::HashSet;

use serde_json::json;

use super::SCOPE;
use crate::helpers::{
    APP_REDIRECT, Backend, DeviceKey, WEB_REDIRECT, app_client, assert_oauth_error, assert_unbound,
    audit_events_of_kind, authorized_code, bound_sign_in, create_user, ed25519_key, es256_key,
    exchange_with_key, expect_bound_tokens, expect_tokens, family, introspect, refresh_with_key,
    resource_server, spawn_app, token_rows, web_app_client,
};

both_backends!(
    a_code_exchanged_with_an_es256_proof_binds_the_family,
    a_code_exchanged_with_an_eddsa_proof_binds_the_family,
    a_bound_refresh_token_without_its_key_is_refused_unspent_and_reported,
    a_public_clients_unbound_family_refreshed_with_a_proof_becomes_bound,
    an_unbound_family_refreshed_with_a_proof_binds_only_the_access_token,
);

/// Audit kind of a bound refresh token presented without its key.
const WRONG_KEY: &str = "refresh_token_wrong_key";

async fn a_code_exchanged_with_an_es256_proof_binds_the_family(backend: Backend) {
    binds_the_family_to(backend, es256_key()).await;
}

async fn a_code_exchanged_with_an_eddsa_proof_binds_the_family(backend: Backend) {
    binds_the_family_to(backend, ed25519_key()).await;
}

/// The exchange, several rotations and a retry within the grace, all proven by `key`: every
/// access token is bound to it, and so is the family (introspection shows `cnf`).
async fn binds_the_family_to(backend: Backend, key: DeviceKey) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    create_user(&app, "alice").await;
    // A confidential client, so that it may introspect its own refresh tokens.
    let client = web_app_client(&app, SCOPE).await;
    let rs = resource_server(&app).await;
    let cnf = json!({ "jkt": key.jkt() });
    let (_, tokens) = bound_sign_in(
        &app,
        &client,
        WEB_REDIRECT,
        SCOPE,
        ("alice", "work laptop"),
        &key,
    )
    .await;
    let sid = tokens.sid();
    assert_eq!(family(&app, &sid).await.dpop_jkt, Some(key.jkt()));
    let refresh_token = introspect(&app, &client, &tokens.refresh_token).await;
    assert_eq!(refresh_token["active"], true, "{refresh_token}");
    assert_eq!(refresh_token["token_type"], "refresh_token");
    assert_eq!(refresh_token["cnf"], cnf, "{refresh_token}");
    let access_token = introspect(&app, &rs, &tokens.access_token).await;
    assert_eq!(access_token["active"], true, "{access_token}");
    assert_eq!(access_token["token_type"], "DPoP", "{access_token}");
    assert_eq!(access_token["cnf"], cnf, "{access_token}");

    let mut current = tokens.refresh_token;
    let mut seen = HashSet::from([current.clone()]);
    for rotation in 1..=3 {
        app.clock.advance(60);
        let resp = refresh_with_key(&app, &client, &current, Some(&key)).await;
        let next = expect_bound_tokens(&app, resp, &key).await;
        assert_eq!(next.sid(), sid, "rotation {rotation} stays in the family");
        assert!(
            seen.insert(next.refresh_token.clone()),
            "rotation {rotation} hands out a new refresh token"
        );
        let shown = introspect(&app, &client, &next.refresh_token).await;
        assert_eq!(shown["cnf"], cnf, "rotation {rotation}: {shown}");
        current = next.refresh_token;
    }

    // A lost response: the same token again within the grace, with a fresh proof by the key,
    // gets the same successor and another access token bound to the key.
    app.clock.advance(60);
    let resp = refresh_with_key(&app, &client, &current, Some(&key)).await;
    let rotated = expect_bound_tokens(&app, resp, &key).await;
    app.clock.advance(2);
    let resp = refresh_with_key(&app, &client, &current, Some(&key)).await;
    let retried = expect_bound_tokens(&app, resp, &key).await;
    assert_eq!(retried.refresh_token, rotated.refresh_token);
    assert_ne!(retried.access_token, rotated.access_token);
    let resp = refresh_with_key(&app, &client, &rotated.refresh_token, Some(&key)).await;
    expect_bound_tokens(&app, resp, &key).await;

    let row = family(&app, &sid).await;
    assert_eq!(row.rotation_count, 5, "the retry is not a rotation");
    assert_eq!(row.revoked_at, None);
    assert_eq!(row.dpop_jkt, Some(key.jkt()));
    assert!(audit_events_of_kind(&app, WRONG_KEY).await.is_empty());
}

async fn a_bound_refresh_token_without_its_key_is_refused_unspent_and_reported(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let alice = create_user(&app, "alice").await;
    let client = app_client(&app, SCOPE).await;
    let key = es256_key();
    let (browser, tokens) = bound_sign_in(
        &app,
        &client,
        APP_REDIRECT,
        SCOPE,
        ("alice", "Pixel 8"),
        &key,
    )
    .await;
    let sid = tokens.sid();

    // A copy of the refresh token without a proof, then signed by another key.
    let resp = refresh_with_key(&app, &client, &tokens.refresh_token, None).await;
    assert_oauth_error(resp, 400, "invalid_dpop_proof").await;
    let thief = ed25519_key();
    let resp = refresh_with_key(&app, &client, &tokens.refresh_token, Some(&thief)).await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
    // Tried again and again within a minute: refused each time, recorded once a minute.
    assert_eq!(audit_events_of_kind(&app, WRONG_KEY).await.len(), 1);
    app.clock.advance(61);
    let resp = refresh_with_key(&app, &client, &tokens.refresh_token, Some(&thief)).await;
    assert_oauth_error(resp, 400, "invalid_grant").await;

    // Neither spent the token nor ended the family; both were recorded for alice.
    let row = family(&app, &sid).await;
    assert_eq!(row.revoked_at, None);
    assert_eq!(row.rotation_count, 0);
    let rows = token_rows(&app, &sid).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].used_at, None, "the token is not spent");
    let events = audit_events_of_kind(&app, WRONG_KEY).await;
    assert_eq!(events.len(), 2);
    for e in &events {
        assert_eq!(e.user_id.as_deref(), Some(alice.id.as_str()));
        assert_eq!(e.family_id.as_deref(), Some(sid.as_str()));
        assert_eq!(e.client_id.as_deref(), Some(client.id.as_str()));
    }

    // Alice sees both on her account page, flagged, and the device still signed in.
    let page = browser.get("/account").await;
    assert_eq!(page.status, 200, "{}", page.describe());
    let text = page.text();
    assert_eq!(
        text.matches("tried to use the refresh token of Pixel 8")
            .count(),
        2,
        "{text}"
    );
    assert!(text.contains("without proof of the key"), "{text}");
    assert!(text.contains("signed with another key"), "{text}");
    assert!(page.body.contains("class=\"alarm\""), "flagged as alarming");
    assert!(
        page.form(&format!("/account/families/{sid}/revoke"))
            .is_some(),
        "the device is still listed"
    );

    // The device, with its key, refreshes as before.
    app.clock.advance(30);
    let resp = refresh_with_key(&app, &client, &tokens.refresh_token, Some(&key)).await;
    let next = expect_bound_tokens(&app, resp, &key).await;
    assert_eq!(next.sid(), sid);

    // The spent token presented again by the thief, past the grace: still a wrong key, not
    // reuse, so the copy cannot end alice's session.
    app.clock.advance(60);
    let resp = refresh_with_key(&app, &client, &tokens.refresh_token, Some(&thief)).await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
    assert_eq!(family(&app, &sid).await.revoked_at, None);
    assert!(
        audit_events_of_kind(&app, "refresh_token_reuse")
            .await
            .is_empty()
    );
    assert_eq!(audit_events_of_kind(&app, WRONG_KEY).await.len(), 3);
    let resp = refresh_with_key(&app, &client, &next.refresh_token, Some(&key)).await;
    expect_bound_tokens(&app, resp, &key).await;
}

async fn a_public_clients_unbound_family_refreshed_with_a_proof_becomes_bound(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    create_user(&app, "alice").await;
    let client = app_client(&app, SCOPE).await;
    let browser = app.browser();
    let code = authorized_code(
        &browser,
        &client,
        APP_REDIRECT,
        SCOPE,
        ("alice", "phone"),
        &[],
    )
    .await;
    let tokens = expect_tokens(exchange_with_key(&app, &client, &code, None).await).await;
    let sid = tokens.sid();
    assert_eq!(family(&app, &sid).await.dpop_jkt, None);

    // RFC 9449 §5: a public client's refresh token issued on a proof is bound to that key.
    let key = es256_key();
    let resp = refresh_with_key(&app, &client, &tokens.refresh_token, Some(&key)).await;
    let bound = expect_bound_tokens(&app, resp, &key).await;
    assert_eq!(family(&app, &sid).await.dpop_jkt, Some(key.jkt()));

    // From now on only that key rotates it; a grace retry of the binding rotation too.
    let resp = refresh_with_key(&app, &client, &bound.refresh_token, None).await;
    assert_oauth_error(resp, 400, "invalid_dpop_proof").await;
    let resp = refresh_with_key(&app, &client, &tokens.refresh_token, Some(&key)).await;
    let retried = expect_bound_tokens(&app, resp, &key).await;
    assert_eq!(retried.refresh_token, bound.refresh_token);
    let resp = refresh_with_key(&app, &client, &bound.refresh_token, Some(&key)).await;
    expect_bound_tokens(&app, resp, &key).await;
}

async fn an_unbound_family_refreshed_with_a_proof_binds_only_the_access_token(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    create_user(&app, "alice").await;
    let client = web_app_client(&app, SCOPE).await;
    let browser = app.browser();
    let code = authorized_code(
        &browser,
        &client,
        WEB_REDIRECT,
        SCOPE,
        ("alice", "laptop"),
        &[],
    )
    .await;
    let tokens = expect_tokens(exchange_with_key(&app, &client, &code, None).await).await;
    assert_unbound(&app, &tokens.body).await;
    let sid = tokens.sid();
    assert_eq!(family(&app, &sid).await.dpop_jkt, None);

    let key = es256_key();
    let resp = refresh_with_key(&app, &client, &tokens.refresh_token, Some(&key)).await;
    let bound = expect_bound_tokens(&app, resp, &key).await;
    assert_eq!(bound.sid(), sid);

    // The family stays unbound: its refresh token has no `cnf` and rotates without a proof …
    assert_eq!(family(&app, &sid).await.dpop_jkt, None);
    let shown = introspect(&app, &client, &bound.refresh_token).await;
    assert_eq!(shown["active"], true, "{shown}");
    assert!(shown.get("cnf").is_none(), "{shown}");
    let resp = refresh_with_key(&app, &client, &bound.refresh_token, None).await;
    let plain = expect_tokens(resp).await;
    assert_unbound(&app, &plain.body).await;

    // … or with a proof by any key, which that access token is then bound to.
    let other = ed25519_key();
    let resp = refresh_with_key(&app, &client, &plain.refresh_token, Some(&other)).await;
    expect_bound_tokens(&app, resp, &other).await;
    assert_eq!(family(&app, &sid).await.rotation_count, 3);
    assert!(audit_events_of_kind(&app, WRONG_KEY).await.is_empty());
}
