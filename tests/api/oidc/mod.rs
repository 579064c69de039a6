//! OpenID Connect: ID tokens (an OIDC library signs in with RS256 and EdDSA, refreshes; the claims
//! checked one by one over HTTP), the OIDC authorization-request parameters, and the RSA keys.

mod authorize_params;
mod claims;
mod id_token;
mod keys;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lineage::tokens::keys::KeyAlgorithm;
use serde_json::Value;

use crate::helpers::{
    APP_REDIRECT, Browser, TestApp, TestClient, Tokens, app_spec, code_request, decode_segment,
    exchange, expect_tokens, pkce, register,
};

/// The scope the OIDC tests ask for.
pub const OIDC_SCOPE: &str = "openid notes:read";

/// A public native app allowed `openid notes:read`, its ID tokens signed with `alg`.
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
    let parts: Vec<&str> = token.split('.').collect();
    let [h, p, s] = parts[..] else {
        return Err(format!("a JWS has three segments, got {}", parts.len()));
    };
    let header = decode_segment(h);
    if header["typ"] != "JWT" {
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
