//! OpenID Connect: profile claims, userinfo and discovery; ID tokens (an OIDC library signs in
//! with RS256 and EdDSA, refreshes; the claims checked one by one over HTTP), the OIDC
//! authorization-request parameters, the RSA keys; back-channel and RP-initiated logout.
mod account;
mod authorize_params;
mod backchannel;
mod claims;
mod cli;
mod demo;
mod discovery;
mod end_session;
mod id_token;
mod keys;
mod profile_claims;
mod userinfo;

use crate::helpers::{
    APP_REDIRECT, Browser, TestApp, TestClient, TestUser, Tokens, app_spec, code_request,
    create_user, decode_segment, exchange, expect_tokens, pkce, refresh_client, register,
    start_family,
};
use lineage::domain::{DisplayName, Email};
use lineage::profile::ProfileChange;

/// Every scope the OpenID tests' client may ask for.
pub const OIDC_CLIENT_SCOPES: &str = "openid profile email notes:read";

/// A server, a user and a confidential client allowed the OpenID scopes and refresh tokens.
pub struct Oidc {
    pub app: TestApp,
    pub user: TestUser,
    pub client: TestClient,
}

impl Oidc {
    pub async fn new(app: TestApp) -> Self {
        let user = create_user(&app, "alice").await;
        let client = refresh_client(&app, OIDC_CLIENT_SCOPES).await;
        Self { app, user, client }
    }

    /// A family of the user granted `scope`: (family id, refresh token).
    pub async fn family(&self, scope: &str) -> (String, String) {
        start_family(&self.app, &self.user.id, &self.client.id, scope).await
    }

    /// A fresh access token for the user granted `scope` (a family started, then rotated).
    pub async fn access_token(&self, scope: &str) -> String {
        let (_, refresh_token) = self.family(scope).await;
        crate::helpers::refresh_ok(&self.app, &self.client, &refresh_token)
            .await
            .access_token
    }

    /// `lineage user update` as the library call behind it.
    pub async fn update_profile(&self, change: ProfileChange) {
        let (name, now) = (self.user.username.clone(), self.app.now());
        self.app
            .db
            .write(move |c| lineage::users::update_profile(c, &name, &change, now))
            .await
            .expect("profile update");
    }

    /// Give the user a display name and a verified address.
    pub async fn set_full_profile(&self) {
        self.update_profile(ProfileChange {
            display_name: Some(Some(DisplayName::parse("Alice Liddell").unwrap())),
            email: Some(Some(Email::parse("alice@example.com").unwrap())),
            email_verified: Some(true),
        })
        .await;
    }
}

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lineage::tokens::keys::KeyAlgorithm;
use serde_json::Value;

/// The scope the OIDC tests ask for.
pub const OIDC_SCOPE: &str = "openid profile notes:read";

/// A public native app allowed `openid profile notes:read`, its ID tokens signed with `alg`.
pub async fn oidc_client(app: &TestApp, alg: KeyAlgorithm) -> TestClient {
    let client = register(app, app_spec(OIDC_SCOPE)).await;
    let id = client.id.clone();
    app.db
        .write(move |c| lineage::clients::set_id_token_alg(c, &id, alg))
        .await
        .expect("set the ID-token algorithm");
    client
}

/// Sign `user` in on `browser` through a code request with these extra parameters (e.g. a
/// `nonce`), allow, exchange: the tokens.
pub async fn oidc_tokens(
    app: &TestApp,
    browser: &Browser,
    client: &TestClient,
    user: &str,
    extra: &[(&str, &str)],
) -> Tokens {
    let p = pkce();
    let mut path = code_request(&client.id, APP_REDIRECT, OIDC_SCOPE, &p);
    for (k, v) in extra {
        path.push('&');
        path.push_str(
            &url::form_urlencoded::Serializer::new(String::new())
                .append_pair(k, v)
                .finish(),
        );
    }
    let code = browser.code(&path, user, Some("laptop")).await;
    expect_tokens(exchange(app, &client.id, &code, APP_REDIRECT, Some(&p.verifier)).await).await
}

/// An ID token checked by this file's own code against `jwks`: `typ` JWT, the `alg` of the JWK
/// with its `kid`, and the signature (RS256 over the JWK's `n`/`e`, or Ed25519 over its `x`,
/// with ring). Returns the header and the claims.
pub fn verify_id_token(token: &str, jwks: &Value) -> Result<(Value, Value), String> {
    verify_jws(token, jwks, "JWT")
}

/// Verify a JWS of type `typ` signed by a key of `jwks` (RS256 or EdDSA, the key's own `alg`):
/// its header and claims.
pub fn verify_jws(token: &str, jwks: &Value, typ: &str) -> Result<(Value, Value), String> {
    let parts: Vec<&str> = token.split('.').collect();
    let [h, p, s] = parts[..] else {
        return Err(format!("a JWS has three segments, got {}", parts.len()));
    };
    let header = decode_segment(h);
    if header["typ"] != typ {
        return Err(format!("typ is {}", header["typ"]));
    }
    let kid = header["kid"].as_str().ok_or("no kid")?;
    let jwk = jwks["keys"]
        .as_array()
        .ok_or("no keys")?
        .iter()
        .find(|k| k["kid"] == kid)
        .ok_or_else(|| format!("kid {kid} is not in the JWKS"))?;
    if header["alg"] != jwk["alg"] {
        return Err(format!(
            "alg {} but the key is {}",
            header["alg"], jwk["alg"]
        ));
    }
    let b64 = |v: &Value| URL_SAFE_NO_PAD.decode(v.as_str().unwrap_or_default());
    let sig = URL_SAFE_NO_PAD.decode(s).map_err(|e| e.to_string())?;
    let input = format!("{h}.{p}");
    let checked = match header["alg"].as_str() {
        Some("RS256") => {
            let (n, e) = (b64(&jwk["n"]), b64(&jwk["e"]));
            let (n, e) = (n.map_err(|e| e.to_string())?, e.map_err(|e| e.to_string())?);
            ring::signature::RsaPublicKeyComponents { n, e }.verify(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                input.as_bytes(),
                &sig,
            )
        }
        Some("EdDSA") => {
            let x = b64(&jwk["x"]).map_err(|e| e.to_string())?;
            ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, x)
                .verify(input.as_bytes(), &sig)
        }
        other => return Err(format!("unexpected alg {other:?}")),
    };
    checked.map_err(|_| format!("the signature does not verify with key {kid}"))?;
    Ok((header, decode_segment(p)))
}

/// OIDC Core §3.1.3.6, computed here: the left half of SHA-256 (RS256) or SHA-512 (EdDSA) of
/// the access token.
pub fn expected_at_hash(alg: &str, access_token: &str) -> String {
    let d = match alg {
        "RS256" => ring::digest::digest(&ring::digest::SHA256, access_token.as_bytes()),
        _ => ring::digest::digest(&ring::digest::SHA512, access_token.as_bytes()),
    };
    URL_SAFE_NO_PAD.encode(&d.as_ref()[..d.as_ref().len() / 2])
}
