//! Signing keys and JWTs as a resource server sees them: the JWKS, and tokens checked with ring
//! directly, independently of lineage's own signing code.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lineage::domain::Seconds;
use lineage::state::KEY_RELOAD_SECONDS;
use lineage::tokens::keys::{self, KeyAlgorithm, KeyEncryption};
use serde_json::Value;

use super::app::TestApp;

impl TestApp {
    pub async fn jwks(&self) -> Value {
        let resp = self
            .api
            .get(self.url("/jwks.json"))
            .send()
            .await
            .expect("GET /jwks.json");
        assert_eq!(resp.status(), 200);
        resp.json().await.expect("JWKS is JSON")
    }

    /// The kids of the published Ed25519 keys (the access-token keys).
    pub async fn jwks_kids(&self) -> Vec<String> {
        self.jwks_kids_of("EdDSA").await
    }

    /// The kids of the published keys of one algorithm (`alg` of the JWK).
    pub async fn jwks_kids_of(&self, alg: &str) -> Vec<String> {
        self.jwks().await["keys"]
            .as_array()
            .expect("keys array")
            .iter()
            .filter(|k| k["alg"] == alg)
            .map(|k| k["kid"].as_str().expect("kid").to_string())
            .collect()
    }

    /// Add an Ed25519 (access-token) signing key that signs after `lead` (as `lineage keys
    /// rotate --alg EdDSA` does); returns its kid.
    pub async fn rotate_keys(&self, lead: Seconds) -> String {
        self.rotate_keys_of(KeyAlgorithm::EdDSA, lead).await
    }

    /// Add a signing key of `alg` that signs after `lead`; returns its kid.
    pub async fn rotate_keys_of(&self, alg: KeyAlgorithm, lead: Seconds) -> String {
        let enc = KeyEncryption::new(&self.key_secret);
        let now = self.now();
        self.db
            .read(move |c| keys::rotate(c, &enc, alg, now, lead))
            .await
            .expect("key rotation")
            .kid
    }

    /// Move the clock far enough that the server re-reads its signing keys at the next request.
    pub fn advance_past_key_reload(&self) {
        self.clock.advance(KEY_RELOAD_SECONDS + 1);
    }
}

/// A JWT checked against a JWKS by this file's own code: header, Ed25519 signature (ring), claims.
#[derive(Debug)]
pub struct VerifiedJwt {
    pub header: Value,
    pub claims: Value,
}

pub fn decode_segment(segment: &str) -> Value {
    let bytes = URL_SAFE_NO_PAD.decode(segment).expect("base64url segment");
    serde_json::from_slice(&bytes).expect("JSON segment")
}

/// The `kid` of a JWT's header, without verifying anything.
pub fn jwt_kid(token: &str) -> String {
    let header = token.split('.').next().expect("header segment");
    decode_segment(header)["kid"]
        .as_str()
        .expect("kid in header")
        .to_string()
}

/// The claims of a JWT, unverified.
pub fn jwt_claims(token: &str) -> Value {
    decode_segment(token.split('.').nth(1).expect("payload segment"))
}

/// Verify `token` against `jwks`: `alg` EdDSA, `typ` at+jwt, `kid` in the set, and the Ed25519
/// signature over `header.payload` with the JWK's `x`. Errors describe what failed.
pub fn verify_jwt(token: &str, jwks: &Value) -> Result<VerifiedJwt, String> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header_b64, payload_b64, signature_b64] = parts[..] else {
        return Err(format!("a JWS has three segments, got {}", parts.len()));
    };
    let header = decode_segment(header_b64);
    if header["alg"] != "EdDSA" {
        return Err(format!("alg is {}", header["alg"]));
    }
    if header["typ"] != "at+jwt" {
        return Err(format!("typ is {}", header["typ"]));
    }
    let kid = header["kid"].as_str().ok_or("no kid in the header")?;
    let jwk = jwks["keys"]
        .as_array()
        .ok_or("JWKS has no keys array")?
        .iter()
        .find(|k| k["kid"] == kid)
        .ok_or_else(|| format!("kid {kid} is not in the JWKS"))?;
    let x = URL_SAFE_NO_PAD
        .decode(jwk["x"].as_str().ok_or("JWK without x")?)
        .map_err(|e| format!("x is not base64url: {e}"))?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|e| format!("signature is not base64url: {e}"))?;
    let signing_input = format!("{header_b64}.{payload_b64}");
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &x)
        .verify(signing_input.as_bytes(), &signature)
        .map_err(|_| format!("the Ed25519 signature does not verify with key {kid}"))?;
    Ok(VerifiedJwt {
        header,
        claims: decode_segment(payload_b64),
    })
}

/// RFC 7638 thumbprint of an Ed25519 JWK, computed here from its `x`.
pub fn rfc7638_thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        canonical.as_bytes(),
    ))
}
