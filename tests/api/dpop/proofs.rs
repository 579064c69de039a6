//! The proof checks at `/token` (RFC 9449 §4.3): what discovery says a proof may be signed with,
//! each way a proof can be wrong, the `iat` window on the manual clock, and single use. A refused
//! proof is refused before the grant: the refresh token it came with is not spent.

use serde_json::{Value, json};

use super::BoundFamily;
use crate::helpers::{
    Backend, ProofSpec, assert_oauth_error, audit_events_of_kind, ed25519_key, es256_key,
    expect_bound_tokens, family, spawn_app, token_proof, token_rows,
};

both_backends!(
    discovery_lists_the_proof_algorithms,
    each_bad_proof_is_invalid_dpop_proof_and_spends_nothing,
    the_iat_window_is_sixty_seconds_back_and_ten_ahead,
    a_proof_is_accepted_once,
);

async fn discovery_lists_the_proof_algorithms(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let (status, _, body) = app.get_json(path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(
            body["dpop_signing_alg_values_supported"],
            json!(["ES256", "EdDSA"]),
            "{path}: {body}"
        );
    }
}

async fn each_bad_proof_is_invalid_dpop_proof_and_spends_nothing(backend: Backend) {
    let Some(fx) = BoundFamily::new(backend, |_| {}).await else {
        return;
    };
    let (app, key) = (&fx.app, &fx.key);
    let now = app.now();
    let good = || ProofSpec::token(app);
    // Proofs made with `sign_parts`: a good header and payload, with one thing changed.
    let header = || json!({ "typ": "dpop+jwt", "alg": key.alg(), "jwk": key.jwk() });
    let payload = || {
        let spec = good();
        json!({ "jti": spec.jti, "htm": "POST", "htu": spec.htu, "iat": now })
    };
    let signed = |header: Value, payload: Value| key.sign_parts(&header, &payload).expect("sign");
    let with_header = |name: &str, value: Value| {
        let mut h = header();
        h[name] = value;
        signed(h, payload())
    };
    let mut private_jwk = key.jwk();
    private_jwk["d"] = json!("c2VjcmV0LWtleS1tYXRlcmlhbC1uZXZlci1zZW50LWhlcmU");
    let mut no_jti = payload();
    no_jti.as_object_mut().expect("object").remove("jti");

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "htu of another endpoint",
            ProofSpec {
                htu: format!("{}/userinfo", app.issuer),
                ..good()
            }
            .sign(key),
            "htu",
        ),
        (
            "htu with another scheme",
            ProofSpec {
                htu: format!("{}/token", app.issuer.replacen("http://", "https://", 1)),
                ..good()
            }
            .sign(key),
            "htu",
        ),
        (
            "htm GET",
            ProofSpec {
                htm: "GET".into(),
                ..good()
            }
            .sign(key),
            "htm",
        ),
        (
            "iat 61 s ago",
            ProofSpec {
                iat: now - 61,
                ..good()
            }
            .sign(key),
            "iat",
        ),
        (
            "iat 11 s ahead",
            ProofSpec {
                iat: now + 11,
                ..good()
            }
            .sign(key),
            "iat",
        ),
        ("typ JWT", with_header("typ", json!("JWT")), "typ"),
        ("alg HS256", with_header("alg", json!("HS256")), "alg"),
        (
            "a private key in jwk",
            with_header("jwk", private_jwk),
            "jwk",
        ),
        (
            "another key's jwk",
            with_header("jwk", es256_key().jwk()),
            "signature",
        ),
        (
            "an Ed25519 jwk for ES256",
            with_header("jwk", ed25519_key().jwk()),
            "jwk",
        ),
        ("no jwk", with_header("jwk", Value::Null), "jwk"),
        (
            "the signature of another proof",
            {
                let this = good().sign(key);
                let other = good().sign(key);
                let (signing_input, _) = this.rsplit_once('.').expect("a JWS");
                let (_, signature) = other.rsplit_once('.').expect("a JWS");
                format!("{signing_input}.{signature}")
            },
            "signature",
        ),
        ("no jti", signed(header(), no_jti), "jti"),
        ("not a JWT", "not-a-proof".into(), "malformed"),
        (
            "a header that is not JSON",
            "bm90IGpzb24.e30.c2ln".into(),
            "malformed",
        ),
    ];
    for (what, proof, reason) in &cases {
        let resp = fx.refresh_with(&fx.token, &[proof]).await;
        let body = assert_oauth_error(resp, 400, "invalid_dpop_proof").await;
        let description = body["error_description"].as_str().unwrap_or_default();
        assert!(
            description.contains(reason),
            "{what}: {reason:?} not in {description:?}"
        );
    }

    // Two proofs, even good ones, are one too many (§4.3 item 1).
    let (one, two) = (token_proof(app, key), token_proof(app, key));
    let resp = fx.refresh_with(&fx.token, &[&one, &two]).await;
    let body = assert_oauth_error(resp, 400, "invalid_dpop_proof").await;
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("more than one")),
        "{body}"
    );

    // Nothing was spent or recorded; a good proof refreshes.
    let row = family(app, &fx.sid).await;
    assert_eq!((row.rotation_count, row.revoked_at), (0, None));
    let rows = token_rows(app, &fx.sid).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].used_at, None);
    assert!(
        audit_events_of_kind(app, "refresh_token_wrong_key")
            .await
            .is_empty()
    );
    let resp = fx.refresh_with(&fx.token, &[&token_proof(app, key)]).await;
    expect_bound_tokens(app, resp, key).await;
}

async fn the_iat_window_is_sixty_seconds_back_and_ten_ahead(backend: Backend) {
    let Some(fx) = BoundFamily::new(backend, |_| {}).await else {
        return;
    };
    let (app, key) = (&fx.app, &fx.key);

    // A proof signed now is good for a minute …
    let proof = token_proof(app, key);
    app.clock.advance(60);
    let resp = fx.refresh_with(&fx.token, &[&proof]).await;
    let next = expect_bound_tokens(app, resp, key).await;

    // … and not a second longer.
    let proof = token_proof(app, key);
    app.clock.advance(61);
    let resp = fx.refresh_with(&next.refresh_token, &[&proof]).await;
    let body = assert_oauth_error(resp, 400, "invalid_dpop_proof").await;
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("iat"))
    );

    // A device clock 10 s ahead is tolerated; 11 s is not.
    let ahead = |by: i64| {
        ProofSpec {
            iat: app.now() + by,
            ..ProofSpec::token(app)
        }
        .sign(key)
    };
    let resp = fx.refresh_with(&next.refresh_token, &[&ahead(11)]).await;
    assert_oauth_error(resp, 400, "invalid_dpop_proof").await;
    let resp = fx.refresh_with(&next.refresh_token, &[&ahead(10)]).await;
    expect_bound_tokens(app, resp, key).await;
    assert_eq!(family(app, &fx.sid).await.rotation_count, 2);
}

async fn a_proof_is_accepted_once(backend: Backend) {
    let Some(fx) = BoundFamily::new(backend, |_| {}).await else {
        return;
    };
    let (app, key) = (&fx.app, &fx.key);
    let proof = token_proof(app, key);
    let resp = fx.refresh_with(&fx.token, &[&proof]).await;
    let next = expect_bound_tokens(app, resp, key).await;

    // The same proof again, well within its window, with the successor.
    app.clock.advance(1);
    let resp = fx.refresh_with(&next.refresh_token, &[&proof]).await;
    let body = assert_oauth_error(resp, 400, "invalid_dpop_proof").await;
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("used before")),
        "{body}"
    );
    // The replay spent nothing: the successor rotates with a fresh proof.
    let resp = fx
        .refresh_with(&next.refresh_token, &[&token_proof(app, key)])
        .await;
    expect_bound_tokens(app, resp, key).await;
    assert_eq!(family(app, &fx.sid).await.rotation_count, 2);
}
