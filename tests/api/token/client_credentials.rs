//! `grant_type=client_credentials`: the response, and the access token checked independently of
//! lineage's code against the served JWKS.

use serde_json::Value;

use crate::helpers::{Backend, assert_no_store, assert_oauth_error, spawn_app, verify_jwt};

both_backends!(
    issues_a_jwt_that_verifies_against_the_jwks,
    default_scope_is_everything_allowed,
    narrower_scope_is_granted_as_asked,
    client_secret_post_works,
    deleted_client_can_no_longer_get_tokens,
    a_client_id_can_never_be_a_user_id,
);

async fn issues_a_jwt_that_verifies_against_the_jwks(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.create_client("invoices:read invoices:write").await;
    let resp = app
        .token_basic(
            &client,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "invoices:read"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_no_store(resp.headers());
    let body: Value = resp.json().await.expect("JSON");
    let obj = body.as_object().expect("object");
    let mut members: Vec<&str> = obj.keys().map(String::as_str).collect();
    members.sort_unstable();
    assert_eq!(
        members,
        ["access_token", "expires_in", "scope", "token_type"],
        "no refresh token for client_credentials: {body}"
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], app.settings.access_token_ttl.get());
    assert_eq!(body["scope"], "invoices:read");

    let token = body["access_token"].as_str().expect("access_token");
    let jwks = app.jwks().await;
    let jwt = verify_jwt(token, &jwks).unwrap_or_else(|e| panic!("token does not verify: {e}"));
    assert_eq!(jwt.header["alg"], "EdDSA");
    assert_eq!(jwt.header["typ"], "at+jwt");

    let now = app.now();
    let c = &jwt.claims;
    assert_eq!(c["iss"], app.issuer);
    assert_eq!(
        c["sub"], client.id,
        "sub is the client for client_credentials"
    );
    assert_eq!(c["client_id"], client.id);
    assert_eq!(c["aud"], "https://api.example");
    assert_eq!(c["scope"], "invoices:read");
    assert_eq!(c["iat"], now);
    assert_eq!(c["nbf"], now);
    assert_eq!(c["exp"], now + app.settings.access_token_ttl);
    let jti = c["jti"].as_str().expect("jti");
    assert!(uuid::Uuid::parse_str(jti).is_ok(), "jti is a UUID: {jti}");
    assert!(c.get("sid").is_none(), "no refresh family, no sid");

    // A tampered payload no longer verifies.
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let mut claims = c.clone();
    claims["scope"] = "invoices:read invoices:write".into();
    use base64::Engine;
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&claims).expect("claims"));
    assert!(verify_jwt(&parts.join("."), &jwks).is_err());

    // Each token has its own jti.
    let second = app.client_credentials_token(&client).await;
    let second = verify_jwt(&second, &jwks).expect("second token verifies");
    assert_ne!(second.claims["jti"], c["jti"]);
}

async fn default_scope_is_everything_allowed(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.create_client("b:write a:read").await;
    for params in [
        vec![("grant_type", "client_credentials")],
        // An empty scope parameter counts as absent (RFC 6749 §3.1).
        vec![("grant_type", "client_credentials"), ("scope", "")],
    ] {
        let resp = app.token_basic(&client, &params).await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.expect("JSON");
        assert_eq!(body["scope"], "a:read b:write");
        let jwt = verify_jwt(
            body["access_token"].as_str().expect("token"),
            &app.jwks().await,
        )
        .expect("verifies");
        assert_eq!(jwt.claims["scope"], "a:read b:write");
    }
}

async fn narrower_scope_is_granted_as_asked(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.create_client("a b c").await;
    let resp = app
        .token_basic(
            &client,
            &[("grant_type", "client_credentials"), ("scope", "c a")],
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("JSON");
    let granted: Vec<&str> = body["scope"].as_str().expect("scope").split(' ').collect();
    let mut granted = granted;
    granted.sort_unstable();
    assert_eq!(granted, ["a", "c"]);
}

async fn client_secret_post_works(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.create_client("x").await;
    let resp = app
        .token_post(&client, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(resp.status(), 200);
    assert_no_store(resp.headers());
    let body: Value = resp.json().await.expect("JSON");
    let jwt = verify_jwt(
        body["access_token"].as_str().expect("token"),
        &app.jwks().await,
    )
    .expect("verifies");
    assert_eq!(jwt.claims["client_id"], client.id);
}

async fn deleted_client_can_no_longer_get_tokens(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.create_client("x").await;
    app.client_credentials_token(&client).await;
    app.delete_client(&client.id).await;
    let resp = app
        .token_basic(&client, &[("grant_type", "client_credentials")])
        .await;
    assert_oauth_error(resp, 401, "invalid_client").await;
    let resp = app
        .token_post(&client, &[("grant_type", "client_credentials")])
        .await;
    assert_oauth_error(resp, 401, "invalid_client").await;
}

/// A client_credentials token's `sub` is its client id: a client may not take a user's id, or its
/// tokens would look like that user's.
async fn a_client_id_can_never_be_a_user_id(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let user = crate::helpers::create_user(&app, "alice").await;
    let now = app.now();
    let spec = lineage::clients::NewClient {
        client_id: Some(user.id.clone()),
        ..crate::helpers::service_client("x")
    };
    let refused = app
        .db
        .write(move |c| lineage::clients::create(c, spec, now))
        .await;
    match refused {
        Err(lineage::clients::RegistryError::Conflict(why)) => {
            assert!(why.contains("user"), "{why}")
        }
        other => panic!("a client took a user's id: {other:?}"),
    }
    // A service token and a user's token are told apart by `sub` alone.
    let client = app.create_client("x").await;
    let token = app.client_credentials_token(&client).await;
    let claims = verify_jwt(&token, &app.jwks().await)
        .expect("verifies")
        .claims;
    assert_eq!(claims["sub"], client.id);
    assert_ne!(claims["sub"], user.id);
    assert!(claims.get("sid").is_none(), "{claims}");
}
