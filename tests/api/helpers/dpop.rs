//! DPoP (RFC 9449) as an app does it: a key kept on the device, proofs signed at the server's
//! clock, token requests that carry them, and the checks of a token response bound to a key.

pub use lineage_jwt::dpop::DeviceKey;
use lineage_jwt::dpop::ProofClaims;
use serde_json::{Value, json};

use super::accounts::TestClient;
use super::app::TestApp;
use super::browser::Browser;
use super::flow::{APP_UA, Tokens, code_request, expect_tokens, pkce};
use super::jwt::verify_jwt;
use super::requests::{form_body, post_as_with};

/// A new P-256 device key (ES256).
pub fn es256_key() -> DeviceKey {
    DeviceKey::generate_es256().expect("a P-256 key")
}

/// A new Ed25519 device key (EdDSA).
pub fn ed25519_key() -> DeviceKey {
    DeviceKey::generate_ed25519().expect("an Ed25519 key")
}

/// What one proof says. `ProofSpec::token(&app)` is a good proof for `/token` now; tests change
/// one field to make a bad one.
#[derive(Debug, Clone)]
pub struct ProofSpec {
    pub htm: String,
    pub htu: String,
    pub iat: i64,
    pub jti: String,
    /// Sets `ath` to this token's hash.
    pub access_token: Option<String>,
    pub nonce: Option<String>,
}

impl ProofSpec {
    /// `htm` to `{issuer}{path}` at the server's clock, with a fresh `jti`.
    pub fn to(app: &TestApp, htm: &str, path: &str) -> Self {
        Self {
            htm: htm.to_string(),
            htu: format!("{}{path}", app.issuer),
            iat: app.now(),
            jti: uuid::Uuid::new_v4().to_string(),
            access_token: None,
            nonce: None,
        }
    }

    /// `POST {issuer}/token` now.
    pub fn token(app: &TestApp) -> Self {
        Self::to(app, "POST", "/token")
    }

    pub fn sign(&self, key: &DeviceKey) -> String {
        key.proof(&ProofClaims {
            htm: &self.htm,
            htu: &self.htu,
            iat: self.iat,
            jti: &self.jti,
            access_token: self.access_token.as_deref(),
            nonce: self.nonce.as_deref(),
        })
        .expect("signing a proof")
    }
}

/// A fresh proof by `key` for `POST /token` now.
pub fn token_proof(app: &TestApp, key: &DeviceKey) -> String {
    ProofSpec::token(app).sign(key)
}

/// POST /token as `client` (see `post_as`) from the app (`APP_UA`), with one `DPoP` header per
/// proof.
pub async fn token_with_proofs(
    app: &TestApp,
    client: &TestClient,
    params: &[(&str, &str)],
    proofs: &[&str],
) -> reqwest::Response {
    let mut headers = vec![("User-Agent", APP_UA)];
    headers.extend(proofs.iter().map(|p| ("DPoP", *p)));
    post_as_with(app, "/token", client, params, &headers).await
}

/// POST /token as `client` with a fresh proof by `key`, or with none.
pub async fn token_with_key(
    app: &TestApp,
    client: &TestClient,
    params: &[(&str, &str)],
    key: Option<&DeviceKey>,
) -> reqwest::Response {
    let proof = key.map(|k| token_proof(app, k));
    token_with_proofs(app, client, params, proof.as_deref().as_slice()).await
}

/// `grant_type=refresh_token` as `client`, with a fresh proof by `key` or none.
pub async fn refresh_with_key(
    app: &TestApp,
    client: &TestClient,
    refresh_token: &str,
    key: Option<&DeviceKey>,
) -> reqwest::Response {
    let proof = key.map(|k| token_proof(app, k));
    refresh_with_proofs(app, client, refresh_token, proof.as_deref().as_slice()).await
}

/// `grant_type=refresh_token` as `client`, with one `DPoP` header per proof.
pub async fn refresh_with_proofs(
    app: &TestApp,
    client: &TestClient,
    refresh_token: &str,
    proofs: &[&str],
) -> reqwest::Response {
    let params = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    token_with_proofs(app, client, &params, proofs).await
}

/// An authorization code as the client receives it, with what its exchange needs.
#[derive(Debug, Clone)]
pub struct Code {
    pub code: String,
    pub redirect_uri: String,
    pub verifier: String,
}

/// Authorize `client` in `browser` (signing `user` in and allowing consent for `device` as
/// needed), the request to `redirect_uri` for `scope` with `extra` parameters (e.g. `dpop_jkt`).
pub async fn authorized_code(
    browser: &Browser,
    client: &TestClient,
    redirect_uri: &str,
    scope: &str,
    (user, device): (&str, &str),
    extra: &[(&str, &str)],
) -> Code {
    let p = pkce();
    let mut path = code_request(&client.id, redirect_uri, scope, &p);
    if !extra.is_empty() {
        path.push('&');
        path.push_str(&form_body(extra));
    }
    Code {
        code: browser.code(&path, user, Some(device)).await,
        redirect_uri: redirect_uri.to_string(),
        verifier: p.verifier,
    }
}

/// Exchange `code` as `client`, with a fresh proof by `key` or none.
pub async fn exchange_with_key(
    app: &TestApp,
    client: &TestClient,
    code: &Code,
    key: Option<&DeviceKey>,
) -> reqwest::Response {
    let params = [
        ("grant_type", "authorization_code"),
        ("code", code.code.as_str()),
        ("redirect_uri", code.redirect_uri.as_str()),
        ("code_verifier", code.verifier.as_str()),
    ];
    token_with_key(app, client, &params, key).await
}

/// Sign `user` in on a new browser, authorize `client` for `device` and exchange the code with a
/// proof by `key`: the browser and the tokens (asserted bound to `key`).
pub async fn bound_sign_in(
    app: &TestApp,
    client: &TestClient,
    redirect_uri: &str,
    scope: &str,
    (user, device): (&str, &str),
    key: &DeviceKey,
) -> (Browser, Tokens) {
    let browser = app.browser();
    let code = authorized_code(&browser, client, redirect_uri, scope, (user, device), &[]).await;
    let tokens = expect_bound_tokens(
        app,
        exchange_with_key(app, client, &code, Some(key)).await,
        key,
    )
    .await;
    (browser, tokens)
}

/// A 200 token response with a refresh token whose access token is bound to `key`.
pub async fn expect_bound_tokens(
    app: &TestApp,
    resp: reqwest::Response,
    key: &DeviceKey,
) -> Tokens {
    let tokens = expect_tokens(resp).await;
    assert_bound(app, &tokens.body, key).await;
    tokens
}

/// Assert that a token response's access token is bound to `key` (RFC 9449 §5, §6.1):
/// `token_type` DPoP and, in the signature-checked claims, `cnf.jkt` the key's thumbprint.
/// Returns those claims.
pub async fn assert_bound(app: &TestApp, body: &Value, key: &DeviceKey) -> Value {
    assert_eq!(body["token_type"], "DPoP", "{body}");
    let claims = access_claims(app, body).await;
    assert_eq!(claims["cnf"], json!({ "jkt": key.jkt() }), "{claims}");
    claims
}

/// Assert that a token response's access token is a bearer token: `token_type` Bearer, no `cnf`.
/// Returns its claims.
pub async fn assert_unbound(app: &TestApp, body: &Value) -> Value {
    assert_eq!(body["token_type"], "Bearer", "{body}");
    let claims = access_claims(app, body).await;
    assert!(claims.get("cnf").is_none(), "{claims}");
    claims
}

/// The claims of a token response's access token, its signature checked against the JWKS.
async fn access_claims(app: &TestApp, body: &Value) -> Value {
    let token = body["access_token"].as_str().expect("access_token");
    verify_jwt(token, &app.jwks().await)
        .unwrap_or_else(|e| panic!("the access token does not verify: {e}"))
        .claims
}
