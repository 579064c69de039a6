//! Client authentication at `/token`: HTTP Basic with form-urlencoded credentials
//! (RFC 6749 §2.3.1), `client_secret_post`, never both, and `invalid_client` failures.

use lineage::clients::NewClient;

use crate::helpers::{
    Backend, TestClient, assert_oauth_error, basic_auth, basic_auth_raw, service_client, spawn_app,
};

both_backends!(
    basic_credentials_are_form_urldecoded,
    both_methods_at_once_is_invalid_request,
    wrong_secret_is_invalid_client,
    unknown_client_is_invalid_client,
    missing_client_authentication_is_invalid_client,
    malformed_basic_header_is_invalid_client,
    client_id_in_body_must_match_basic,
);

const CC: (&str, &str) = ("grant_type", "client_credentials");

async fn basic_credentials_are_form_urldecoded(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app
        .create_client_with(NewClient {
            client_id: Some("my.client~1".into()),
            ..service_client("x")
        })
        .await;
    // Percent-encoded characters that did not need encoding still decode to the same id.
    let encoded_id = "my%2Eclient%7E1";
    let resp = app
        .post_token(&[CC], Some(&basic_auth_raw(encoded_id, &client.secret)))
        .await;
    assert_eq!(
        resp.status(),
        200,
        "{}",
        resp.text().await.unwrap_or_default()
    );

    // The form-urlencoding helper (which encodes `~`) works too, as does the plain id.
    let resp = app
        .post_token(&[CC], Some(&basic_auth(&client.id, &client.secret)))
        .await;
    assert_eq!(resp.status(), 200);
    let resp = app
        .post_token(&[CC], Some(&basic_auth_raw(&client.id, &client.secret)))
        .await;
    assert_eq!(resp.status(), 200);

    // The secret is decoded too: an encoded secret character matches the stored secret.
    let mut secret_chars = client.secret.chars();
    let first = secret_chars.next().expect("non-empty secret");
    let encoded_secret = format!("%{:02X}{}", first as u32, secret_chars.as_str());
    let resp = app
        .post_token(&[CC], Some(&basic_auth_raw(&client.id, &encoded_secret)))
        .await;
    assert_eq!(resp.status(), 200);

    // The scheme name is case-insensitive (RFC 9110 §11.1).
    let lower = basic_auth(&client.id, &client.secret).replacen("Basic", "basic", 1);
    let resp = app.post_token(&[CC], Some(&lower)).await;
    assert_eq!(resp.status(), 200);
}

async fn both_methods_at_once_is_invalid_request(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.create_client("x").await;
    let resp = app
        .post_token(
            &[
                CC,
                ("client_id", &client.id),
                ("client_secret", &client.secret),
            ],
            Some(&basic_auth(&client.id, &client.secret)),
        )
        .await;
    assert_oauth_error(resp, 400, "invalid_request").await;
}

async fn assert_invalid_client(resp: reqwest::Response) {
    let www = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        www.to_ascii_lowercase().starts_with("basic"),
        "401 invalid_client carries WWW-Authenticate: Basic, got {www:?}"
    );
    assert_oauth_error(resp, 401, "invalid_client").await;
}

async fn wrong_secret_is_invalid_client(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.create_client("x").await;
    let other = app.create_client("x").await;
    let wrong = TestClient {
        id: client.id.clone(),
        secret: other.secret.clone(),
    };
    assert_invalid_client(app.token_basic(&wrong, &[CC]).await).await;
    assert_invalid_client(app.token_post(&wrong, &[CC]).await).await;
    let truncated = TestClient {
        id: client.id.clone(),
        secret: client.secret[..client.secret.len() - 1].to_string(),
    };
    assert_invalid_client(app.token_basic(&truncated, &[CC]).await).await;
    // An empty secret in Basic is not a public-client login.
    assert_invalid_client(
        app.post_token(&[CC], Some(&basic_auth_raw(&client.id, "")))
            .await,
    )
    .await;
}

async fn unknown_client_is_invalid_client(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.create_client("x").await;
    let unknown = TestClient {
        id: "no-such-client".into(),
        secret: client.secret.clone(),
    };
    assert_invalid_client(app.token_basic(&unknown, &[CC]).await).await;
    assert_invalid_client(app.token_post(&unknown, &[CC]).await).await;
}

async fn missing_client_authentication_is_invalid_client(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.create_client("x").await;
    assert_invalid_client(app.post_token(&[CC], None).await).await;
    // A confidential client naming itself without a secret is not authenticated either.
    assert_invalid_client(app.post_token(&[CC, ("client_id", &client.id)], None).await).await;
}

async fn malformed_basic_header_is_invalid_client(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_client("x").await;
    use base64::Engine;
    let no_colon = base64::engine::general_purpose::STANDARD.encode("no-colon");
    for header in [
        "Basic !!!not-base64!!!".to_string(),
        format!("Basic {no_colon}"),
        "Bearer abc".to_string(),
    ] {
        assert_invalid_client(app.post_token(&[CC], Some(&header)).await).await;
    }
}

async fn client_id_in_body_must_match_basic(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.create_client("x").await;
    let auth = basic_auth(&client.id, &client.secret);
    // The same id in the body is allowed.
    let resp = app
        .post_token(&[CC, ("client_id", &client.id)], Some(&auth))
        .await;
    assert_eq!(resp.status(), 200);
    let resp = app
        .post_token(&[CC, ("client_id", "someone-else")], Some(&auth))
        .await;
    assert_oauth_error(resp, 400, "invalid_request").await;
}
