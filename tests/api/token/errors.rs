//! RFC 6749 §5.2 errors of `/token`, each as JSON with `Cache-Control: no-store`.

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{
    Backend, TestApp, assert_no_store, assert_oauth_error, basic_auth, form_body, spawn_app,
    web_client,
};

both_backends!(
    missing_grant_type_is_invalid_request,
    repeated_parameter_is_invalid_request,
    wrong_content_type_is_invalid_request,
    form_content_type_with_charset_is_accepted,
    unknown_grant_type_is_unsupported_grant_type,
    client_without_the_grant_is_unauthorized_client,
    scope_wider_than_allowed_is_invalid_scope,
    body_over_16_kib_is_413_json,
    chunked_body_over_16_kib_is_413_json,
    body_of_exactly_16_kib_is_accepted,
    other_methods_on_token_are_not_cached,
    error_descriptions_keep_to_the_rfc_6749_character_set,
);

const CC: (&str, &str) = ("grant_type", "client_credentials");

/// RFC 6749 §5.2: `error_description` is `%x20-21 / %x23-5B / %x5D-7E` only, so request bytes
/// (quotes, backslashes, controls, non-ASCII) never come back verbatim.
async fn error_descriptions_keep_to_the_rfc_6749_character_set(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.create_client("x").await;
    let hostile = "x\"<b>\\\u{e9}\u{1}";
    let bodies = [
        form_body(&[("grant_type", hostile)]),
        form_body(&[CC, ("scope", hostile)]),
        format!(
            "{}&{}",
            form_body(&[(hostile, "1")]),
            form_body(&[(hostile, "2")])
        ),
    ];
    for body in bodies {
        let resp = app
            .post_token_raw(
                body.clone(),
                Some("application/x-www-form-urlencoded"),
                Some(&basic_auth(&client.id, &client.secret)),
            )
            .await;
        assert_eq!(resp.status(), 400, "{body}");
        let json: Value = resp.json().await.expect("JSON");
        let d = json["error_description"].as_str().expect("a description");
        assert!(
            d.chars()
                .all(|c| matches!(c, ' ' | '!' | '#'..='[' | ']'..='~')),
            "{d:?} for {body}"
        );
    }
}

async fn missing_grant_type_is_invalid_request(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.create_client("x").await;
    let body =
        assert_oauth_error(app.token_basic(&client, &[]).await, 400, "invalid_request").await;
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("grant_type")),
        "the description names the parameter: {body}"
    );
    // An empty value is the same as absent (RFC 6749 §3.1).
    let resp = app.token_basic(&client, &[("grant_type", "")]).await;
    assert_oauth_error(resp, 400, "invalid_request").await;
    let resp = app.token_post(&client, &[]).await;
    assert_oauth_error(resp, 400, "invalid_request").await;
}

async fn repeated_parameter_is_invalid_request(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.create_client("x y").await;
    let auth = basic_auth(&client.id, &client.secret);
    for params in [
        vec![CC, CC],
        vec![CC, ("scope", "x"), ("scope", "y")],
        // Repeated even when one of the values is empty.
        vec![CC, ("scope", ""), ("scope", "x")],
    ] {
        let resp = app.post_token(&params, Some(&auth)).await;
        assert_oauth_error(resp, 400, "invalid_request").await;
    }
    let resp = app
        .post_token(
            &[
                CC,
                ("client_id", &client.id),
                ("client_id", &client.id),
                ("client_secret", &client.secret),
            ],
            None,
        )
        .await;
    assert_oauth_error(resp, 400, "invalid_request").await;
}

async fn wrong_content_type_is_invalid_request(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.create_client("x").await;
    let auth = basic_auth(&client.id, &client.secret);
    let json = r#"{"grant_type":"client_credentials"}"#;
    for content_type in [
        Some("application/json"),
        Some("text/plain"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let resp = app.post_token_raw(json, content_type, Some(&auth)).await;
        assert_oauth_error(resp, 400, "invalid_request").await;
    }
    // A form body under the wrong label is still refused.
    let resp = app
        .post_token_raw(
            "grant_type=client_credentials",
            Some("text/plain"),
            Some(&auth),
        )
        .await;
    assert_oauth_error(resp, 400, "invalid_request").await;
}

async fn form_content_type_with_charset_is_accepted(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.create_client("x").await;
    let auth = basic_auth(&client.id, &client.secret);
    let resp = app
        .post_token_raw(
            "grant_type=client_credentials",
            Some("application/x-www-form-urlencoded; charset=UTF-8"),
            Some(&auth),
        )
        .await;
    assert_eq!(resp.status(), 200);
}

async fn unknown_grant_type_is_unsupported_grant_type(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.create_client("x").await;
    for grant in [
        "password",
        "implicit",
        "urn:ietf:params:oauth:grant-type:device_code",
        "CLIENT_CREDENTIALS",
    ] {
        let resp = app.token_basic(&client, &[("grant_type", grant)]).await;
        assert_oauth_error(resp, 400, "unsupported_grant_type").await;
    }
}

async fn client_without_the_grant_is_unauthorized_client(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.create_client_with(web_client("profile")).await;
    assert!(!client.secret.is_empty(), "a confidential client");
    let resp = app.token_basic(&client, &[CC]).await;
    assert_oauth_error(resp, 400, "unauthorized_client").await;
    let resp = app.token_post(&client, &[CC]).await;
    assert_oauth_error(resp, 400, "unauthorized_client").await;
}

async fn scope_wider_than_allowed_is_invalid_scope(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.create_client("a b").await;
    for scope in ["c", "a c", "a b c", "A"] {
        let resp = app.token_basic(&client, &[CC, ("scope", scope)]).await;
        assert_oauth_error(resp, 400, "invalid_scope").await;
    }
    // Not a scope token at all (RFC 6749 §3.3 forbids `"` and `\`).
    let resp = app.token_basic(&client, &[CC, ("scope", "a\"b")]).await;
    assert_oauth_error(resp, 400, "invalid_scope").await;
}

fn padded_body(total: usize) -> String {
    let prefix = "grant_type=client_credentials&pad=";
    format!("{prefix}{}", "a".repeat(total - prefix.len()))
}

async fn body_over_16_kib_is_413_json(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.create_client("x").await;
    let auth = basic_auth(&client.id, &client.secret);
    for size in [16 * 1024 + 1, 64 * 1024, 1024 * 1024] {
        let resp = app
            .post_token_raw(
                padded_body(size),
                Some("application/x-www-form-urlencoded"),
                Some(&auth),
            )
            .await;
        let status = resp.status();
        assert_no_store(resp.headers());
        let body: Value = resp.json().await.expect("413 body is JSON");
        assert_eq!(status, 413, "{size} bytes: {body}");
        assert!(body["error"].is_string(), "{body}");
    }
}

/// Send a request over a raw connection and return the status line, headers and body.
async fn raw_request(app: &TestApp, request: &[u8]) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    // The server may answer and close before the whole body is written; that is fine.
    let _ = stream.write_all(request).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

async fn chunked_body_over_16_kib_is_413_json(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.create_client("x").await;
    let auth = basic_auth(&client.id, &client.secret);
    // No Content-Length: the limit must hold while the body streams in.
    let mut request = format!(
        "POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n"
    )
    .into_bytes();
    let body = padded_body(20 * 1024);
    for chunk in body.as_bytes().chunks(4096) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let (status, head, body) = raw_request(&app, &request).await;
    assert_eq!(status, 413, "{head}\n{body}");
    assert!(head.contains("cache-control: no-store"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(body.contains("\"error\""), "{body}");
}

async fn body_of_exactly_16_kib_is_accepted(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.create_client("x").await;
    let auth = basic_auth(&client.id, &client.secret);
    let resp = app
        .post_token_raw(
            padded_body(16 * 1024),
            Some("application/x-www-form-urlencoded"),
            Some(&auth),
        )
        .await;
    assert_eq!(resp.status(), 200);
}

async fn other_methods_on_token_are_not_cached(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let resp = app
        .api
        .get(app.url("/token?grant_type=client_credentials"))
        .send()
        .await
        .expect("GET /token");
    assert!(resp.status().is_client_error(), "{}", resp.status());
    assert_no_store(resp.headers());
}
