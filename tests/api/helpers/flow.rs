//! The authorization-code flow from both ends: PKCE pairs and authorization requests, the redirect
//! back to the client, and the app's token requests (its own user agent, not the browser's).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::Value;

use super::accounts::TestClient;
use super::app::TestApp;
use super::browser::{Browser, Page};
use super::jwt::jwt_claims;

/// The user agent of the app exchanging codes and refreshing (not the browser).
pub const APP_UA: &str = "notes-app/2.1 (test)";

/// The registered redirect URI of `app_client` (a native app's loopback URI).
pub const APP_REDIRECT: &str = "http://127.0.0.1:9876/callback";

pub const APP_NAME: &str = "Notes for Linux";

pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

/// A fresh S256 pair (64-character verifier).
pub fn pkce() -> Pkce {
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    Pkce {
        challenge: s256(&verifier),
        verifier,
    }
}

pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

/// `/authorize?…` with exactly these parameters.
pub fn authorize_path(params: &[(&str, &str)]) -> String {
    format!(
        "/authorize?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish()
    )
}

/// A well-formed request: response_type=code, S256 challenge, state `xyz-state`.
pub fn code_request(client_id: &str, redirect_uri: &str, scope: &str, pkce: &Pkce) -> String {
    authorize_path(&[
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("scope", scope),
        ("state", "xyz-state"),
        ("code_challenge", &pkce.challenge),
        ("code_challenge_method", "S256"),
    ])
}

/// The parameters of a redirect back to a client, and the URI without its query.
pub struct ClientRedirect {
    pub target: String,
    pub params: BTreeMap<String, String>,
}

impl ClientRedirect {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

pub fn parse_redirect(location: &str) -> ClientRedirect {
    let url = url::Url::parse(location)
        .unwrap_or_else(|e| panic!("Location {location:?} is not an absolute URL: {e}"));
    let params = url.query_pairs().into_owned().collect();
    let mut target = url.clone();
    target.set_query(None);
    ClientRedirect {
        target: target.to_string(),
        params,
    }
}

/// Assert a 303 back to `redirect_uri` carrying `error` (with a description, the state and iss).
pub fn assert_error_redirect(
    page: &Page,
    redirect_uri: &str,
    error: &str,
    state: Option<&str>,
    issuer: &str,
) -> ClientRedirect {
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.describe());
    let r = parse_redirect(page.location().expect("Location"));
    assert_eq!(r.target, redirect_uri, "redirected to the client's URI");
    assert_eq!(r.get("error"), Some(error), "error in {:?}", r.params);
    assert!(
        r.get("error_description").is_some_and(|d| !d.is_empty()),
        "error_description in {:?}",
        r.params
    );
    assert_eq!(
        r.get("state"),
        state,
        "state passed through: {:?}",
        r.params
    );
    assert_eq!(r.get("iss"), Some(issuer), "RFC 9207 iss: {:?}", r.params);
    assert!(r.get("code").is_none(), "no code with an error");
    r
}

pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    pub body: Value,
}

impl Tokens {
    /// The `sid` (family id) of the access token (unverified decode).
    pub fn sid(&self) -> String {
        jwt_claims(&self.access_token)["sid"]
            .as_str()
            .expect("sid claim")
            .to_string()
    }
}

/// POST /token as the app (user agent `APP_UA`) with these form fields.
pub async fn token_request(app: &TestApp, params: &[(&str, &str)]) -> reqwest::Response {
    reqwest::Client::builder()
        .user_agent(APP_UA)
        .build()
        .expect("client")
        .post(app.url("/token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(params)
                .finish(),
        )
        .send()
        .await
        .expect("POST /token")
}

/// Exchange a public client's code.
pub async fn exchange(
    app: &TestApp,
    client_id: &str,
    code: &str,
    redirect_uri: &str,
    verifier: Option<&str>,
) -> reqwest::Response {
    let mut params = vec![
        ("grant_type", "authorization_code"),
        ("client_id", client_id),
        ("code", code),
        ("redirect_uri", redirect_uri),
    ];
    if let Some(v) = verifier {
        params.push(("code_verifier", v));
    }
    token_request(app, &params).await
}

pub async fn expect_tokens(resp: reqwest::Response) -> Tokens {
    let status = resp.status();
    let body: Value = resp.json().await.expect("token response is JSON");
    assert_eq!(status, 200, "token request failed: {body}");
    Tokens {
        access_token: body["access_token"].as_str().expect("access_token").into(),
        refresh_token: body["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .into(),
        body,
    }
}

/// Assert `invalid_grant` (400, JSON).
pub async fn expect_invalid_grant(resp: reqwest::Response, why: &str) {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 400, "{why}: {body}");
    assert_eq!(body["error"], "invalid_grant", "{why}: {body}");
}

/// Rotate a public client's refresh token as the app (`APP_UA`), by client id; `refresh_as`
/// does the same for any `TestClient`.
pub async fn refresh(app: &TestApp, client_id: &str, refresh_token: &str) -> reqwest::Response {
    token_request(
        app,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", client_id),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// Sign `user` in on a new browser, authorize `client` (allowing consent, naming the device) and
/// exchange the code: the browser and the tokens of a new family.
pub async fn signed_in_tokens(
    app: &TestApp,
    client: &TestClient,
    scope: &str,
    user: &str,
    device: &str,
) -> (Browser, Tokens) {
    let browser = app.browser();
    let tokens = tokens_in(app, &browser, client, scope, user, device).await;
    (browser, tokens)
}

/// The same in an existing browser.
pub async fn tokens_in(
    app: &TestApp,
    browser: &Browser,
    client: &TestClient,
    scope: &str,
    user: &str,
    device: &str,
) -> Tokens {
    let p = pkce();
    let code = browser
        .code(
            &code_request(&client.id, APP_REDIRECT, scope, &p),
            user,
            Some(device),
        )
        .await;
    expect_tokens(exchange(app, &client.id, &code, APP_REDIRECT, Some(&p.verifier)).await).await
}

/// Is the browser signed in (does /account show the page rather than send it to /login)?
pub async fn is_signed_in(browser: &Browser) -> bool {
    let page = browser.get("/account").await;
    match page.status.as_u16() {
        200 => true,
        303 => {
            assert!(
                page.location().is_some_and(|l| l.starts_with("/login")),
                "{}",
                page.describe()
            );
            false
        }
        _ => panic!("unexpected /account response: {}", page.describe()),
    }
}
