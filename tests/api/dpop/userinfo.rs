//! `/userinfo` with a bound access token (RFC 9449 §7): `Authorization: DPoP <token>` and a proof
//! by the token's key for this request with `ath` the token's hash; a bound token is no bearer
//! token; refusals are `WWW-Authenticate: DPoP` challenges.

use reqwest::header::{HeaderMap, WWW_AUTHENTICATE};
use serde_json::Value;

use super::SCOPE;
use crate::helpers::{
    APP_REDIRECT, Backend, DeviceKey, ProofSpec, TestApp, app_client, bound_sign_in, create_user,
    ed25519_key, es256_key, expect_bound_tokens, expect_tokens, refresh_with_key, spawn_app,
    start_family,
};

both_backends!(
    a_bound_token_needs_the_dpop_scheme_and_a_proof_of_its_key,
    a_request_without_a_token_gets_both_challenges,
);

/// The challenge of a DPoP refusal, up to its error.
const DPOP_CHALLENGE: &str = "DPoP algs=\"ES256 EdDSA\"";

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn challenges(&self) -> Vec<&str> {
        self.headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .map(|v| v.to_str().expect("an ASCII challenge"))
            .collect()
    }
}

/// `GET /userinfo` with this `Authorization` header (if any) and `DPoP` proof (if any).
async fn userinfo(app: &TestApp, authorization: Option<&str>, proof: Option<&str>) -> Answer {
    let mut req = app.api.get(app.url("/userinfo"));
    if let Some(value) = authorization {
        req = req.header("Authorization", value);
    }
    if let Some(proof) = proof {
        req = req.header("DPoP", proof);
    }
    let resp = req.send().await.expect("GET /userinfo");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

/// A proof by `key` for `GET /userinfo` now, with `ath` the hash of `access_token`.
fn userinfo_proof(app: &TestApp, key: &DeviceKey, access_token: &str) -> String {
    ProofSpec {
        access_token: Some(access_token.to_string()),
        ..ProofSpec::to(app, "GET", "/userinfo")
    }
    .sign(key)
}

/// Assert a 401 with one `DPoP` challenge carrying `error`, and the same error in the body.
fn assert_dpop_refusal(answer: &Answer, error: &str, why: &str) {
    assert_eq!(answer.status, 401, "{why}: {}", answer.body);
    let challenges = answer.challenges();
    assert_eq!(challenges.len(), 1, "{why}: {challenges:?}");
    assert!(
        challenges[0].starts_with(DPOP_CHALLENGE),
        "{why}: {challenges:?}"
    );
    assert!(
        challenges[0].contains(&format!("error=\"{error}\"")),
        "{why}: {challenges:?}"
    );
    assert_eq!(answer.body["error"], error, "{why}");
}

async fn a_bound_token_needs_the_dpop_scheme_and_a_proof_of_its_key(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let alice = create_user(&app, "alice").await;
    let client = app_client(&app, SCOPE).await;
    let key = ed25519_key();
    let (_, tokens) =
        bound_sign_in(&app, &client, APP_REDIRECT, SCOPE, ("alice", "phone"), &key).await;
    let token = tokens.access_token.as_str();
    let scheme = format!("DPoP {token}");

    let used = userinfo_proof(&app, &key, token);
    let answer = userinfo(&app, Some(&scheme), Some(&used)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["sub"], alice.id.as_str());

    // The same token as a bearer token, even with a good proof.
    let bearer = format!("Bearer {token}");
    let proof = userinfo_proof(&app, &key, token);
    let answer = userinfo(&app, Some(&bearer), Some(&proof)).await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    let challenges = answer.challenges();
    assert_eq!(challenges.len(), 1, "{challenges:?}");
    assert!(
        challenges[0].starts_with("Bearer realm=\"lineage\", error=\"invalid_token\""),
        "{challenges:?}"
    );
    assert_eq!(answer.body["error"], "invalid_token");

    // Another access token of the same key, for an `ath` that is not this token's.
    let resp = refresh_with_key(&app, &client, &tokens.refresh_token, Some(&key)).await;
    let other_token = expect_bound_tokens(&app, resp, &key).await.access_token;
    let bad_proofs = [
        (
            "the proof replayed",
            userinfo(&app, Some(&scheme), Some(&used)).await,
        ),
        ("no proof", userinfo(&app, Some(&scheme), None).await),
        (
            "no ath",
            userinfo(
                &app,
                Some(&scheme),
                Some(&ProofSpec::to(&app, "GET", "/userinfo").sign(&key)),
            )
            .await,
        ),
        (
            "another token's ath",
            userinfo(
                &app,
                Some(&scheme),
                Some(&userinfo_proof(&app, &key, &other_token)),
            )
            .await,
        ),
        (
            "a proof by another key",
            userinfo(
                &app,
                Some(&scheme),
                Some(&userinfo_proof(&app, &es256_key(), token)),
            )
            .await,
        ),
        (
            "a proof for POST",
            userinfo(
                &app,
                Some(&scheme),
                Some(
                    &ProofSpec {
                        htm: "POST".into(),
                        access_token: Some(token.to_string()),
                        ..ProofSpec::to(&app, "GET", "/userinfo")
                    }
                    .sign(&key),
                ),
            )
            .await,
        ),
        (
            "a proof for /token",
            userinfo(
                &app,
                Some(&scheme),
                Some(
                    &ProofSpec {
                        access_token: Some(token.to_string()),
                        ..ProofSpec::token(&app)
                    }
                    .sign(&key),
                ),
            )
            .await,
        ),
    ];
    for (why, answer) in &bad_proofs {
        assert_dpop_refusal(answer, "invalid_dpop_proof", why);
    }

    // Each token with its own proof still works.
    for t in [token, other_token.as_str()] {
        let answer = userinfo(
            &app,
            Some(&format!("DPoP {t}")),
            Some(&userinfo_proof(&app, &key, t)),
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }

    // An unbound token is a bearer token: with the DPoP scheme it is refused.
    let (_, unbound) = start_family(&app, &alice.id, &client.id, SCOPE).await;
    let unbound = expect_tokens(refresh_with_key(&app, &client, &unbound, None).await)
        .await
        .access_token;
    let answer = userinfo(
        &app,
        Some(&format!("DPoP {unbound}")),
        Some(&userinfo_proof(&app, &key, &unbound)),
    )
    .await;
    assert_dpop_refusal(
        &answer,
        "invalid_token",
        "an unbound token with the DPoP scheme",
    );
    let answer = userinfo(&app, Some(&format!("Bearer {unbound}")), None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

async fn a_request_without_a_token_gets_both_challenges(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let answer = userinfo(&app, None, None).await;
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.challenges(),
        vec!["Bearer realm=\"lineage\"", DPOP_CHALLENGE],
        "either scheme will do, so both are offered without an error"
    );
}
