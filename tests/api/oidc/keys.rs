//! RSA signing keys beside the Ed25519 ones: both published in the JWKS with `alg` and `use`,
//! the RSA kid the RFC 7638 thumbprint of `e`, `kty`, `n`; RSA keys rotate on their own with the
//! same lead and retire rules; `lineage keys rotate` rotates both (or `--alg`), `keys list` names
//! the algorithm; `lineage client create --id-token-alg` and `client show`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lineage::domain::Seconds;
use lineage::tokens::keys::KeyAlgorithm;

use super::{oidc_client, oidc_tokens};
use crate::helpers::{
    Backend, CliDir, cli_json, create_user, jwt_kid, lineage_cli, rfc7638_thumbprint, spawn_app,
};

both_backends!(
    jwks_publishes_both_algorithms,
    rsa_keys_rotate_with_lead_and_retire,
    the_cli_rotates_and_lists_both_algorithms,
);

fn rsa_thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        canonical.as_bytes(),
    ))
}

async fn jwks_publishes_both_algorithms(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let jwks = app.jwks().await;
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 2, "one key per algorithm: {jwks}");
    let rsa = keys.iter().find(|k| k["kty"] == "RSA").expect("an RSA key");
    let mut members: Vec<&str> = rsa
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    members.sort_unstable();
    assert_eq!(members, ["alg", "e", "kid", "kty", "n", "use"], "{rsa}");
    assert_eq!(rsa["alg"], "RS256");
    assert_eq!(rsa["use"], "sig");
    let (n, e) = (rsa["n"].as_str().expect("n"), rsa["e"].as_str().expect("e"));
    assert_eq!(e, "AQAB");
    let modulus = URL_SAFE_NO_PAD.decode(n).expect("n is base64url");
    assert_eq!(modulus.len(), 256, "a 2048-bit modulus");
    assert_ne!(modulus[0], 0, "no leading zero octet (RFC 7518 §6.3.1.1)");
    assert_eq!(
        rsa["kid"],
        rsa_thumbprint(n, e),
        "kid is the RFC 7638 thumbprint"
    );
    let okp = keys
        .iter()
        .find(|k| k["kty"] == "OKP")
        .expect("an Ed25519 key");
    assert_eq!(okp["alg"], "EdDSA");
    assert_eq!(okp["use"], "sig");
    assert_eq!(
        okp["kid"],
        rfc7638_thumbprint(okp["x"].as_str().expect("x"))
    );
    assert!(
        keys.iter()
            .all(|k| k.get("d").is_none() && k.get("p").is_none())
    );
}

async fn rsa_keys_rotate_with_lead_and_retire(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = oidc_client(&app, KeyAlgorithm::RS256).await;
    create_user(&app, "alice").await;
    let browser = app.browser();
    let first = oidc_tokens(&app, &browser, &client, "alice", &[]).await;
    let old_rsa = jwt_kid(first.body["id_token"].as_str().expect("id_token"));
    let access_kid = jwt_kid(&first.access_token);
    assert_eq!(app.jwks_kids_of("RS256").await, vec![old_rsa.clone()]);

    // Published at once, signing after the lead.
    let new_rsa = app
        .rotate_keys_of(KeyAlgorithm::RS256, Seconds::new(600))
        .await;
    app.advance_past_key_reload();
    let kids = app.jwks_kids_of("RS256").await;
    assert!(
        kids.contains(&old_rsa) && kids.contains(&new_rsa),
        "{kids:?}"
    );
    let t = oidc_tokens(&app, &browser, &client, "alice", &[]).await;
    assert_eq!(
        jwt_kid(t.body["id_token"].as_str().expect("id_token")),
        old_rsa
    );

    // After the lead: the new key signs ID tokens; access tokens keep their own key.
    app.clock.advance(600);
    app.advance_past_key_reload();
    let t = oidc_tokens(&app, &browser, &client, "alice", &[]).await;
    assert_eq!(
        jwt_kid(t.body["id_token"].as_str().expect("id_token")),
        new_rsa
    );
    assert_eq!(
        jwt_kid(&t.access_token),
        access_kid,
        "the Ed25519 key did not rotate"
    );
    // The retired key stays published while its tokens may live, then goes.
    assert!(app.jwks_kids_of("RS256").await.contains(&old_rsa));
    app.clock.advance(app.settings.access_token_ttl.get() + 61);
    app.advance_past_key_reload();
    assert_eq!(app.jwks_kids_of("RS256").await, vec![new_rsa]);
    assert_eq!(app.jwks_kids_of("EdDSA").await, vec![access_kid]);
}

async fn the_cli_rotates_and_lists_both_algorithms(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let dir = CliDir::new();
    let both = cli_json(&app, &dir, &["keys", "rotate", "--lead", "0", "--json"]);
    let both = both.as_array().expect("one object per algorithm");
    let mut algs: Vec<&str> = both
        .iter()
        .map(|k| k["algorithm"].as_str().expect("alg"))
        .collect();
    algs.sort_unstable();
    assert_eq!(algs, ["EdDSA", "RS256"]);
    let rsa_only = cli_json(&app, &dir, &["keys", "rotate", "--alg", "RS256", "--json"]);
    assert_eq!(rsa_only["algorithm"], "RS256");
    assert_eq!(rsa_only["state"], "pending");
    let list = cli_json(&app, &dir, &["keys", "list", "--json"]);
    let list = list.as_array().expect("array");
    // Start-up's two, then two, then one.
    assert_eq!(list.len(), 5, "{list:?}");
    let count = |alg: &str, state: &str| {
        list.iter()
            .filter(|k| k["algorithm"] == alg && k["state"] == state)
            .count()
    };
    assert_eq!(count("RS256", "active"), 1);
    assert_eq!(count("RS256", "pending"), 1);
    assert_eq!(count("EdDSA", "active"), 1);
    let text = lineage_cli(&app, &dir, &["keys", "list"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("RS256") && text.contains("EdDSA"), "{text}");
    let bad = lineage_cli(&app, &dir, &["keys", "rotate", "--alg", "HS256"]);
    assert!(!bad.status.success());

    // A client's ID-token algorithm: RS256 unless asked for.
    let base = [
        "client",
        "create",
        "--name",
        "oidc app",
        "--grant",
        "authorization_code",
        "--redirect-uri",
        "https://app.example/cb",
        "--scope",
        "openid",
        "--json",
    ];
    let default = cli_json(&app, &dir, &base);
    assert_eq!(default["id_token_signed_response_alg"], "RS256");
    let mut ed = base.to_vec();
    ed.extend(["--id-token-alg", "EdDSA"]);
    let ed = cli_json(&app, &dir, &ed);
    assert_eq!(ed["id_token_signed_response_alg"], "EdDSA");
    let id = ed["client_id"].as_str().expect("client_id");
    let shown = cli_json(&app, &dir, &["client", "show", id, "--json"]);
    assert_eq!(shown["id_token_signed_response_alg"], "EdDSA");
    let mut bad = base.to_vec();
    bad.extend(["--id-token-alg", "none"]);
    assert!(!lineage_cli(&app, &dir, &bad).status.success());
}
