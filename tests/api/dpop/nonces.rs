//! Server nonces (RFC 9449 §8), on with `dpop_nonce = true`: a proof without the current nonce is
//! `use_dpop_nonce` with the nonce to use in `DPoP-Nonce`; every token response carries one; a
//! nonce is good for five to ten minutes.

use super::BoundFamily;
use crate::helpers::{
    Backend, ProofSpec, assert_oauth_error, expect_bound_tokens, family, token_proof, token_rows,
};

both_backends!(
    proofs_must_carry_a_nonce_the_server_issued,
    without_nonces_none_is_asked_for_or_sent,
);

fn nonce_header(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get("dpop-nonce")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn proofs_must_carry_a_nonce_the_server_issued(backend: Backend) {
    let Some(fx) = BoundFamily::new(backend, |s| s.dpop.nonce = true).await else {
        return;
    };
    let (app, key) = (&fx.app, &fx.key);
    let with_nonce = |nonce: &str| {
        ProofSpec {
            nonce: Some(nonce.to_string()),
            ..ProofSpec::token(app)
        }
        .sign(key)
    };

    let resp = fx.refresh_with(&fx.token, &[&token_proof(app, key)]).await;
    let nonce = nonce_header(&resp).expect("use_dpop_nonce comes with a DPoP-Nonce");
    assert_oauth_error(resp, 400, "use_dpop_nonce").await;
    let resp = fx.refresh_with(&fx.token, &[&with_nonce("made-up")]).await;
    assert_eq!(nonce_header(&resp).as_deref(), Some(nonce.as_str()));
    assert_oauth_error(resp, 400, "use_dpop_nonce").await;
    assert_eq!(token_rows(app, &fx.sid).await[0].used_at, None, "not spent");

    // Retried with the nonce: tokens, and the nonce for the next proof.
    let resp = fx.refresh_with(&fx.token, &[&with_nonce(&nonce)]).await;
    assert_eq!(nonce_header(&resp).as_deref(), Some(nonce.as_str()));
    let next = expect_bound_tokens(app, resp, key).await;

    // Ten minutes on, that nonce has expired: refused, with a new one that works.
    app.clock.advance(600);
    let resp = fx
        .refresh_with(&next.refresh_token, &[&with_nonce(&nonce)])
        .await;
    let fresh = nonce_header(&resp).expect("a new nonce");
    assert_ne!(fresh, nonce);
    assert_oauth_error(resp, 400, "use_dpop_nonce").await;
    let resp = fx
        .refresh_with(&next.refresh_token, &[&with_nonce(&fresh)])
        .await;
    expect_bound_tokens(app, resp, key).await;
    assert_eq!(family(app, &fx.sid).await.rotation_count, 2);
}

async fn without_nonces_none_is_asked_for_or_sent(backend: Backend) {
    let Some(fx) = BoundFamily::new(backend, |_| {}).await else {
        return;
    };
    let (app, key) = (&fx.app, &fx.key);
    let resp = fx.refresh_with(&fx.token, &["not-a-proof"]).await;
    assert_eq!(nonce_header(&resp), None);
    assert_oauth_error(resp, 400, "invalid_dpop_proof").await;
    let resp = fx.refresh_with(&fx.token, &[&token_proof(app, key)]).await;
    assert_eq!(nonce_header(&resp), None);
    expect_bound_tokens(app, resp, key).await;
}
