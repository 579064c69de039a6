//! `GET /jwks.json`: Ed25519 public keys (the access-token keys), RFC 7638 kids, cacheable with
//! validators.

use lineage::domain::Seconds;

use crate::helpers::{Backend, rfc7638_thumbprint, spawn_app, spawn_app_with};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

both_backends!(
    jwks_lists_ed25519_keys_with_thumbprint_kids,
    jwks_is_cacheable_with_configured_max_age,
    jwks_answers_304_to_a_matching_etag,
);

async fn jwks_lists_ed25519_keys_with_thumbprint_kids(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let resp = app
        .api
        .get(app.url("/jwks.json"))
        .send()
        .await
        .expect("GET /jwks.json");
    assert_eq!(resp.status(), 200);
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let jwks: serde_json::Value = resp.json().await.expect("JSON");
    // The RSA key beside it (ID tokens) is checked in tests/api/oidc/keys.rs.
    let keys: Vec<_> = jwks["keys"]
        .as_array()
        .expect("keys array")
        .iter()
        .filter(|k| k["kty"] == "OKP")
        .collect();
    assert_eq!(
        keys.len(),
        1,
        "a fresh server publishes one Ed25519 key: {jwks}"
    );
    for key in keys {
        let obj = key.as_object().expect("JWK object");
        let mut members: Vec<&str> = obj.keys().map(String::as_str).collect();
        members.sort_unstable();
        assert_eq!(members, ["alg", "crv", "kid", "kty", "use", "x"], "{key}");
        assert_eq!(key["kty"], "OKP");
        assert_eq!(key["crv"], "Ed25519");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["alg"], "EdDSA");
        let x = key["x"].as_str().expect("x");
        let raw = URL_SAFE_NO_PAD
            .decode(x)
            .expect("x is base64url without padding");
        assert_eq!(raw.len(), 32, "an Ed25519 public key is 32 bytes");
        assert_eq!(
            key["kid"],
            rfc7638_thumbprint(x),
            "kid is the RFC 7638 thumbprint"
        );
        // No private key material.
        assert!(key.get("d").is_none());
    }
}

async fn jwks_is_cacheable_with_configured_max_age(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| s.jwks_max_age = Seconds::new(123)).await else {
        return;
    };
    let resp = app
        .api
        .get(app.url("/jwks.json"))
        .send()
        .await
        .expect("GET /jwks.json");
    assert_eq!(resp.status(), 200);
    let cache = resp
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let directives: Vec<&str> = cache.split(',').map(str::trim).collect();
    assert!(directives.contains(&"public"), "{cache}");
    assert!(directives.contains(&"max-age=123"), "{cache}");
    assert!(resp.headers().get("etag").is_some(), "JWKS has an ETag");
}

async fn jwks_answers_304_to_a_matching_etag(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let first = app
        .api
        .get(app.url("/jwks.json"))
        .send()
        .await
        .expect("GET /jwks.json");
    let etag = first
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .expect("ETag")
        .to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong ETag is quoted: {etag}"
    );

    let again = app
        .api
        .get(app.url("/jwks.json"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("conditional GET");
    assert_eq!(again.status(), 304);
    assert_eq!(
        again.headers().get("etag").and_then(|v| v.to_str().ok()),
        Some(etag.as_str())
    );
    assert!(again.headers().get("cache-control").is_some());
    assert!(again.bytes().await.expect("body").is_empty());

    // One of several candidates matching also counts (RFC 9110 §13.1.2).
    let listed = app
        .api
        .get(app.url("/jwks.json"))
        .header("If-None-Match", format!("\"nope\", {etag}"))
        .send()
        .await
        .expect("conditional GET");
    assert_eq!(listed.status(), 304);

    let stale = app
        .api
        .get(app.url("/jwks.json"))
        .header("If-None-Match", "\"something-else\"")
        .send()
        .await
        .expect("conditional GET");
    assert_eq!(stale.status(), 200);

    // A rotation changes the set, so the old validator no longer matches.
    app.rotate_keys(Seconds::new(600)).await;
    app.advance_past_key_reload();
    let after = app
        .api
        .get(app.url("/jwks.json"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("conditional GET");
    assert_eq!(after.status(), 200);
    assert_ne!(
        after.headers().get("etag").and_then(|v| v.to_str().ok()),
        Some(etag.as_str())
    );
}
