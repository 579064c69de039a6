//! The ID token's claims over plain HTTP (OIDC Core §2, §3.1.3.6, §12.2): the nonce echoed
//! exactly, `at_hash`, `sid` = the refresh family, `aud`/`azp` = the client, `auth_time`, `amr`;
//! no ID token without `openid`, nor from a refresh whose narrowed scope drops it.

use lineage::tokens::keys::KeyAlgorithm;
use serde_json::Value;

use super::{OIDC_SCOPE, expected_at_hash, oidc_client, oidc_tokens, verify_id_token};
use crate::helpers::{
    APP_REDIRECT, Backend, PASSWORD, TestApp, Tokens, app_client, code_request, create_user,
    exchange, expect_tokens, jwt_claims, pkce, refresh, spawn_app, token_request,
};

both_backends!(
    the_id_token_echoes_the_nonce_and_names_the_sign_in,
    no_id_token_without_openid,
    openid_alone_gives_no_profile_claims,
    a_refresh_gives_a_fresh_id_token_unless_openid_is_dropped,
);

async fn the_id_token_echoes_the_nonce_and_names_the_sign_in(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = oidc_client(&app, KeyAlgorithm::RS256).await;
    let alice = create_user(&app, "alice").await;
    let browser = app.browser();
    let signed_in_at = app.now();
    browser.sign_in("alice", PASSWORD).await;
    // Any characters, exactly as sent (it is the client's value, not ours).
    let nonce = "n-0S6_WzA2Mj ünïcode+/=";
    app.clock.advance(5);
    let tokens = oidc_tokens(&app, &browser, &client, "alice", &[("nonce", nonce)]).await;
    let id_token = tokens.body["id_token"].as_str().expect("id_token");
    let (header, claims) = verify_id_token(id_token, &app.jwks().await).expect("verifies");
    assert_eq!(header["alg"], "RS256", "RS256 by default");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(claims["nonce"], nonce);
    assert_eq!(claims["iss"], app.issuer);
    assert_eq!(claims["sub"], alice.id);
    assert_eq!(claims["aud"], client.id);
    assert_eq!(claims["azp"], client.id);
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    assert_eq!(claims["preferred_username"], "alice");
    let access = jwt_claims(&tokens.access_token);
    assert_eq!(claims["sid"], access["sid"], "sid is the refresh family");
    assert_eq!(claims["sid"].as_str(), Some(tokens.sid().as_str()));
    assert_eq!(
        claims["exp"], access["exp"],
        "lives as long as its access token"
    );
    assert_eq!(claims["iat"].as_i64(), Some(app.now()));
    // The password was entered 5 seconds before the code was issued.
    let auth_time = claims["auth_time"].as_i64().expect("auth_time");
    assert_eq!(
        auth_time, signed_in_at,
        "auth_time is when the password was entered"
    );
    assert_eq!(
        claims["at_hash"].as_str(),
        Some(expected_at_hash("RS256", &tokens.access_token).as_str())
    );
    // The access token itself stays EdDSA.
    assert_eq!(
        crate::helpers::decode_segment(tokens.access_token.split('.').next().unwrap_or(""))["alg"],
        "EdDSA"
    );

    // Without a nonce in the request, none in the token; at_hash of an EdDSA client is the left
    // half of SHA-512.
    let ed = oidc_client(&app, KeyAlgorithm::EdDSA).await;
    let tokens = oidc_tokens(&app, &browser, &ed, "alice", &[]).await;
    let id_token = tokens.body["id_token"].as_str().expect("id_token");
    let (header, claims) = verify_id_token(id_token, &app.jwks().await).expect("verifies");
    assert_eq!(header["alg"], "EdDSA");
    assert!(claims.get("nonce").is_none(), "{claims}");
    assert_eq!(
        claims["at_hash"].as_str(),
        Some(expected_at_hash("EdDSA", &tokens.access_token).as_str())
    );
    assert_eq!(
        claims["auth_time"].as_i64(),
        Some(auth_time),
        "the same sign-in"
    );

    // A nonce longer than lineage keeps is refused before any page.
    let long = "n".repeat(513);
    let p = pkce();
    let path = format!(
        "{}&nonce={long}",
        code_request(&client.id, APP_REDIRECT, OIDC_SCOPE, &p)
    );
    let page = browser.get(&path).await;
    crate::helpers::assert_error_redirect(
        &page,
        APP_REDIRECT,
        "invalid_request",
        Some("xyz-state"),
        &app.issuer,
    );
}

/// A confidential app allowed `openid notes:read`: alice signs in and the app asks for `scope`.
async fn signed_in_with(app: &TestApp, scope: &str) -> Tokens {
    let client = app_client(app, "openid notes:read").await;
    create_user(app, "alice").await;
    let browser = app.browser();
    let p = pkce();
    let code = browser
        .code(
            &code_request(&client.id, APP_REDIRECT, scope, &p),
            "alice",
            Some("laptop"),
        )
        .await;
    expect_tokens(exchange(app, &client.id, &code, APP_REDIRECT, Some(&p.verifier)).await).await
}

async fn no_id_token_without_openid(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let tokens = signed_in_with(&app, "notes:read").await;
    assert!(tokens.body.get("id_token").is_none(), "{}", tokens.body);

    // client_credentials never gets one, even with openid among its scopes.
    let service = app.create_client("openid feed").await;
    let resp = token_request(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &service.id),
            ("client_secret", &service.secret),
        ],
    )
    .await;
    let body: Value = resp.json().await.expect("JSON");
    assert!(body["access_token"].is_string(), "{body}");
    assert!(body.get("id_token").is_none(), "{body}");
}

/// OIDC Core §5.4: profile claims only with the `profile` scope; `openid` alone names the user by
/// `sub` only.
async fn openid_alone_gives_no_profile_claims(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let tokens = signed_in_with(&app, "openid").await;
    let id_token = tokens.body["id_token"].as_str().expect("an ID token");
    let (_, claims) = verify_id_token(id_token, &app.jwks().await).expect("verifies");
    for absent in [
        "preferred_username",
        "name",
        "email",
        "email_verified",
        "updated_at",
    ] {
        assert!(claims.get(absent).is_none(), "{absent} in {claims}");
    }
    assert!(claims["sub"].is_string());
}

async fn a_refresh_gives_a_fresh_id_token_unless_openid_is_dropped(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = oidc_client(&app, KeyAlgorithm::RS256).await;
    create_user(&app, "alice").await;
    let browser = app.browser();
    let first = oidc_tokens(&app, &browser, &client, "alice", &[("nonce", "abc")]).await;
    let first_claims = jwt_claims(first.body["id_token"].as_str().expect("id_token"));

    app.clock.advance(60);
    let second = expect_tokens(refresh(&app, &client.id, &first.refresh_token).await).await;
    let id_token = second.body["id_token"]
        .as_str()
        .expect("a refreshed id_token");
    let (_, claims) = verify_id_token(id_token, &app.jwks().await).expect("verifies");
    assert_eq!(claims["sub"], first_claims["sub"]);
    assert_eq!(claims["sid"], first_claims["sid"]);
    assert_eq!(claims["auth_time"], first_claims["auth_time"]);
    assert!(
        claims.get("nonce").is_none(),
        "no nonce on a refresh: {claims}"
    );
    assert_eq!(claims["iat"].as_i64(), Some(app.now()));
    assert_eq!(
        claims["at_hash"].as_str(),
        Some(expected_at_hash("RS256", &second.access_token).as_str())
    );

    // A narrowed scope without openid: tokens, but no ID token.
    let narrowed = expect_tokens(
        token_request(
            &app,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &client.id),
                ("refresh_token", &second.refresh_token),
                ("scope", "notes:read"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(narrowed.body["scope"], "notes:read");
    assert!(narrowed.body.get("id_token").is_none(), "{}", narrowed.body);
}
