//! DPoP-bound tokens at the example API: a token signed with the server's real key and carrying
//! `cnf.jkt` works with the DPoP scheme and a proof by the bound key, and not as a bearer token.
//! The tokens are minted here, not at /token, so only the resource side is under test.

use lineage::tokens::jwt::Confirmation;
use lineage_jwt::dpop::{DeviceKey, ProofClaims};

use super::*;

/// A token for `user-1` bound to `key`, signed by lineage's active key.
async fn bound_token(lineage: &Lineage, key: &DeviceKey) -> String {
    let mut claims = lineage.claims("user-1");
    claims.cnf = Some(Confirmation { jkt: key.jkt() });
    lineage.mint(&claims).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_api_accepts_a_dpop_bound_token_with_a_proof() {
    let lineage = spawn_lineage().await;
    let api = spawn_api(lineage.validator(None).await).await;
    let key = DeviceKey::generate_es256().unwrap();
    let token = bound_token(&lineage, &key).await;
    let url = format!("{}/notes", api.base);
    let proof = |htm: &str, jti: &str| {
        key.proof(&ProofClaims {
            htm,
            htu: &url,
            iat: lineage.now(),
            jti,
            access_token: Some(&token),
            nonce: None,
        })
        .unwrap()
    };

    let post = api.http.post(&url).json(&json!({ "text": "buy milk" }));
    let created = api.send_dpop(post, &token, &proof("POST", "p1")).await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.body["author"], "user-1");
    let get_proof = proof("GET", "g1");
    let listed = api.send_dpop(api.http.get(&url), &token, &get_proof).await;
    assert_eq!(listed.status, 200, "{listed:?}");
    assert_eq!(listed.body[0]["text"], "buy milk");

    // The same proof a second time, and a request without one.
    let replayed = api.send_dpop(api.http.get(&url), &token, &get_proof).await;
    assert_eq!(replayed.status, 401, "{replayed:?}");
    assert!(
        replayed.challenge.starts_with(
            r#"DPoP realm="notes-api", error="invalid_dpop_proof", error_description="the DPoP proof was used before"#
        ),
        "{replayed:?}"
    );
    assert!(
        replayed.challenge.ends_with(r#"algs="ES256 EdDSA""#),
        "{replayed:?}"
    );
    assert_eq!(replayed.body["error"], "invalid_dpop_proof");
    let unproven = api
        .send(
            api.http
                .get(&url)
                .header("Authorization", format!("DPoP {token}")),
            None,
        )
        .await;
    assert_eq!(unproven.status, 401, "{unproven:?}");
    assert_eq!(unproven.body["error"], "invalid_dpop_proof");

    // A proof for another URL of the same API.
    let elsewhere = key
        .proof(&ProofClaims {
            htm: "GET",
            htu: &format!("{}/healthz", api.base),
            iat: lineage.now(),
            jti: "g2",
            access_token: Some(&token),
            nonce: None,
        })
        .unwrap();
    let refused = api.send_dpop(api.http.get(&url), &token, &elsewhere).await;
    assert_eq!(refused.status, 401, "{refused:?}");
    assert!(
        refused.challenge.contains("htu is not this request's URI"),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_bound_token_is_refused_as_a_bearer_token() {
    let lineage = spawn_lineage().await;
    let api = spawn_api(lineage.validator(None).await).await;
    let key = DeviceKey::generate_ed25519().unwrap();
    let token = bound_token(&lineage, &key).await;

    api.list(&token)
        .await
        .assert_invalid_token("the access token is bound to a DPoP key");
    let created = api.create(Some(&token), "buy milk").await;
    created.assert_invalid_token("send it with the DPoP scheme and a DPoP proof");

    // The same claims without cnf: a bearer token like any other.
    let unbound = lineage.mint(&lineage.claims("user-1")).await;
    assert_eq!(api.list(&unbound).await.status, 200);
}
