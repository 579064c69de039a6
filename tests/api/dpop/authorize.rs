//! `dpop_jkt` on `/authorize` (RFC 9449 §10): the code is bound to the key it names, and only a
//! proof by that key redeems it; a parameter that is no thumbprint is an error sent back to the
//! client.

use crate::helpers::{
    APP_REDIRECT, Backend, app_client, assert_error_redirect, authorized_code, code_request,
    create_user, ed25519_key, es256_key, exchange_with_key, expect_bound_tokens,
    expect_invalid_grant, family, form_body, pkce, spawn_app,
};

use super::SCOPE;

both_backends!(
    a_code_bound_by_dpop_jkt_is_redeemed_only_with_that_key,
    a_malformed_dpop_jkt_is_invalid_request,
);

async fn a_code_bound_by_dpop_jkt_is_redeemed_only_with_that_key(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    create_user(&app, "alice").await;
    let client = app_client(&app, SCOPE).await;
    let (key, other) = (ed25519_key(), es256_key());
    let jkt = key.jkt();
    let browser = app.browser();
    let named = [("dpop_jkt", jkt.as_str())];
    let bound_code = || {
        authorized_code(
            &browser,
            &client,
            APP_REDIRECT,
            SCOPE,
            ("alice", "tablet"),
            &named,
        )
    };

    // Proven by the named key: tokens and a family bound to it.
    let code = bound_code().await;
    let resp = exchange_with_key(&app, &client, &code, Some(&key)).await;
    let tokens = expect_bound_tokens(&app, resp, &key).await;
    assert_eq!(
        family(&app, &tokens.sid()).await.dpop_jkt,
        Some(jkt.clone())
    );

    // Proven by another key, or not at all: invalid_grant. The failed attempt spends the code,
    // as a wrong PKCE verifier does, so the right key comes too late.
    let code = bound_code().await;
    let resp = exchange_with_key(&app, &client, &code, Some(&other)).await;
    expect_invalid_grant(resp, "a code bound to another key").await;
    let resp = exchange_with_key(&app, &client, &code, Some(&key)).await;
    expect_invalid_grant(resp, "the code was spent by the failed attempt").await;

    let code = bound_code().await;
    let resp = exchange_with_key(&app, &client, &code, None).await;
    expect_invalid_grant(resp, "a bound code without a proof").await;
}

async fn a_malformed_dpop_jkt_is_invalid_request(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, SCOPE).await;
    let jkt = es256_key().jkt();
    let browser = app.browser();
    // (An empty `dpop_jkt` is no parameter at all, RFC 6749 §3.1.)
    for bad in [
        jkt[..42].to_string(),
        format!("{jkt}A"),
        format!("{}=", &jkt[..42]),
        format!("{}+", &jkt[..42]),
        "a".repeat(64),
    ] {
        let mut path = code_request(&client.id, APP_REDIRECT, SCOPE, &pkce());
        path.push('&');
        path.push_str(&form_body(&[("dpop_jkt", &bad)]));
        let page = browser.get(&path).await;
        assert_error_redirect(
            &page,
            APP_REDIRECT,
            "invalid_request",
            Some("xyz-state"),
            &app.issuer,
        );
    }
}
