//! Requests to the server's JSON endpoints as a client sends them (HTTP Basic, form bodies) and
//! the assertions every RFC 6749 answer must pass.

use base64::Engine;
use reqwest::header::{CACHE_CONTROL, HeaderMap};
use serde_json::Value;

use super::accounts::TestClient;
use super::app::TestApp;

/// The HTTP client a client library (the `oauth2` and `openidconnect` crates) is given: it never
/// follows redirects (RFC 6749 §3.2 answers are not redirects, and `/authorize` must be seen).
pub fn library_http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

/// RFC 6749 §2.3.1: client id and secret are form-urlencoded before they are Base64-encoded.
pub fn basic_auth(id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    basic_auth_raw(&enc(id), &enc(secret))
}

/// Basic credentials exactly as given (no form-urlencoding).
pub fn basic_auth_raw(id: &str, secret: &str) -> String {
    let pair = format!("{id}:{secret}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

pub fn form_body(params: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

impl TestApp {
    /// POST /token with a raw body, content type and optional Authorization header.
    pub async fn post_token_raw(
        &self,
        body: impl Into<reqwest::Body>,
        content_type: Option<&str>,
        authorization: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self.api.post(self.url("/token")).body(body);
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        if let Some(auth) = authorization {
            req = req.header("Authorization", auth);
        }
        req.send().await.expect("POST /token")
    }

    /// POST /token as a form, with an optional Authorization header.
    pub async fn post_token(
        &self,
        params: &[(&str, &str)],
        authorization: Option<&str>,
    ) -> reqwest::Response {
        self.post_token_raw(
            form_body(params),
            Some("application/x-www-form-urlencoded"),
            authorization,
        )
        .await
    }

    /// POST /token authenticating with HTTP Basic.
    pub async fn token_basic(
        &self,
        client: &TestClient,
        params: &[(&str, &str)],
    ) -> reqwest::Response {
        self.post_token(params, Some(&basic_auth(&client.id, &client.secret)))
            .await
    }

    /// POST /token authenticating with `client_secret_post`.
    pub async fn token_post(
        &self,
        client: &TestClient,
        params: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut all = params.to_vec();
        all.push(("client_id", &client.id));
        all.push(("client_secret", &client.secret));
        self.post_token(&all, None).await
    }

    /// A client_credentials access token (asserting success).
    pub async fn client_credentials_token(&self, client: &TestClient) -> String {
        let resp = self
            .token_basic(client, &[("grant_type", "client_credentials")])
            .await;
        let status = resp.status();
        let body: Value = resp.json().await.expect("token response is JSON");
        assert_eq!(status, 200, "token request failed: {body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    pub async fn get_json(&self, path: &str) -> (reqwest::StatusCode, HeaderMap, Value) {
        let resp = self
            .api
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.json().await.unwrap_or(Value::Null);
        (status, headers, body)
    }

    /// The Prometheus text of the metrics listener (the app must have `metrics_bind` set).
    pub async fn metrics_text(&self) -> String {
        let base = self
            .metrics_address
            .as_deref()
            .expect("start the app with a metrics_bind to read its metrics");
        self.api
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }
}

/// A form POST authenticated as `client`: HTTP Basic for a confidential client, `client_id` in
/// the body for a public one.
pub async fn post_as(
    app: &TestApp,
    path: &str,
    client: &TestClient,
    params: &[(&str, &str)],
    user_agent: Option<&str>,
) -> reqwest::Response {
    let user_agent = user_agent.map(|ua| ("User-Agent", ua));
    post_as_with(app, path, client, params, user_agent.as_slice()).await
}

/// `post_as` with these headers; a name given twice is sent twice.
pub async fn post_as_with(
    app: &TestApp,
    path: &str,
    client: &TestClient,
    params: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut all = params.to_vec();
    let mut req = app
        .api
        .post(app.url(path))
        .header("Content-Type", "application/x-www-form-urlencoded");
    if client.secret.is_empty() {
        all.push(("client_id", &client.id));
    } else {
        req = req.header("Authorization", basic_auth(&client.id, &client.secret));
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.body(form_body(&all))
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

/// Assert an RFC 6749 §5.2 error response and return its body.
pub async fn assert_oauth_error(resp: reqwest::Response, status: u16, error: &str) -> Value {
    let got = resp.status().as_u16();
    assert_no_store(resp.headers());
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = resp.text().await.expect("error body");
    assert_eq!(got, status, "status (body: {text})");
    assert!(
        content_type.starts_with("application/json"),
        "content type {content_type:?}"
    );
    let body: Value = serde_json::from_str(&text).expect("error body is JSON");
    assert_eq!(body["error"], error, "error code in {body}");
    if let Some(d) = body.get("error_description") {
        assert!(d.is_string(), "error_description must be a string: {body}");
    }
    body
}

pub fn assert_no_store(headers: &HeaderMap) {
    let cache = headers
        .get(CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert_eq!(
        cache, "no-store",
        "every /token response has Cache-Control: no-store"
    );
}
