//! OpenID Connect ID tokens (OIDC Core §2): issued with the token response whenever `openid` is
//! granted, from the code exchange (§3.1.3.3) and from a refresh (§12.2: same `sub`, fresh user
//! claims, no `nonce`), signed with the client's `id_token_signed_response_alg` (RS256 unless the
//! client asked for EdDSA).
//!
//! An ID token lives exactly as long as the access token it comes with: the JWKS keeps a retired
//! key published for the access-token lifetime, so every ID token stays verifiable for all of its
//! life, and `id_token_hint` (whose expiry is ignored) is checked only against keys still
//! published.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Header;
use serde::{Deserialize, Serialize};

use super::keys::{KeyAlgorithm, KeySet};
use crate::clients::Client;
use crate::db::models::users::UserRow;
use crate::domain::Scope;
use crate::profile::Profile;

/// The scope that asks for an ID token (OIDC Core §3.1.2.1).
pub const OPENID_SCOPE: &str = "openid";

/// The `typ` header of an ID token (OIDC Core §2 leaves it open; `JWT` per RFC 7519 §5.1), which
/// also tells it apart from an access token (`at+jwt`).
pub const ID_TOKEN_TYP: &str = "JWT";

/// The claims of a lineage ID token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IdTokenClaims {
    pub iss: String,
    /// The user id, as in the access token.
    pub sub: String,
    /// The client id (one audience).
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    /// When the user entered the password (kept across the refreshes of a family).
    pub auth_time: i64,
    /// The authorization request's `nonce`, exactly; never in a refreshed ID token.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nonce: Option<String>,
    /// OIDC Core §3.1.3.6: the left half of the hash of the access token it comes with.
    pub at_hash: String,
    /// The client id (OIDC Core §2: the party the token was issued to).
    pub azp: String,
    /// The refresh family: one sign-in of one user on one device for one app.
    pub sid: String,
    /// Authentication methods (RFC 8176): the password.
    pub amr: Vec<String>,
    /// The user's claims for the granted scope, read fresh at every issue.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// What an ID token is issued for. No `Debug`: it holds the access token.
pub struct IdTokenSpec<'a> {
    pub issuer: &'a str,
    pub client: &'a Client,
    pub user: &'a UserRow,
    pub scope: &'a Scope,
    /// The refresh family (`sid`).
    pub family_id: &'a str,
    pub auth_time: i64,
    /// Only from the code exchange.
    pub nonce: Option<&'a str>,
    /// The access token issued with it (for `at_hash`) and its expiry.
    pub access_token: &'a str,
    pub expires_at: i64,
    pub now: i64,
}

/// Whether `scope` asks for an ID token.
pub fn wanted(scope: &Scope) -> bool {
    scope.contains(OPENID_SCOPE)
}

/// The user claims an ID token carries: the standard claims the scope grants (OIDC Core §5.4),
/// the same `/userinfo` answers.
pub fn user_claims(user: &UserRow, scope: &Scope) -> serde_json::Map<String, serde_json::Value> {
    Profile::from(user).claims(scope)
}

/// OIDC Core §3.1.3.6: the left-most half of the hash of the access token's ASCII octets, with the
/// hash of the JWS algorithm — SHA-256 for RS256; for EdDSA over Ed25519 SHA-512, the hash
/// Ed25519 uses internally (OpenID Connect Core errata, and what the `openidconnect` crate
/// checks).
pub fn at_hash(alg: KeyAlgorithm, access_token: &str) -> String {
    let digest = match alg {
        KeyAlgorithm::RS256 => ring::digest::digest(&ring::digest::SHA256, access_token.as_bytes()),
        KeyAlgorithm::EdDSA => ring::digest::digest(&ring::digest::SHA512, access_token.as_bytes()),
    };
    let bytes = digest.as_ref();
    URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() / 2])
}

impl IdTokenClaims {
    pub fn issue(spec: IdTokenSpec<'_>) -> Self {
        let client_id = spec.client.client_id.to_string();
        Self {
            iss: spec.issuer.to_string(),
            sub: spec.user.id.clone(),
            aud: client_id.clone(),
            exp: spec.expires_at,
            iat: spec.now,
            auth_time: spec.auth_time,
            nonce: spec.nonce.map(str::to_string),
            at_hash: at_hash(spec.client.id_token_alg, spec.access_token),
            azp: client_id,
            sid: spec.family_id.to_string(),
            amr: vec!["pwd".into()],
            extra: user_claims(spec.user, spec.scope),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("no active {0} signing key")]
    NoActiveKey(KeyAlgorithm),
    #[error("signing failed: {0}")]
    Signing(#[from] jsonwebtoken::errors::Error),
}

/// Sign any claims as a JWT for `client` with the client's ID-token algorithm and the active key
/// of that algorithm (header `alg`, `kid`, and `typ`). ID tokens use it with `typ: JWT`; other
/// tokens a client verifies like its ID tokens (a back-channel logout token, `logout+jwt`) too.
pub fn sign_for_client<T: Serialize>(
    keys: &KeySet,
    client: &Client,
    typ: &str,
    claims: &T,
    now: i64,
) -> Result<String, SignError> {
    sign_with(keys, client.id_token_alg, typ, claims, now)
}

/// Sign `claims` as a JWT of type `typ` with the active key of `alg`.
pub fn sign_with<T: Serialize>(
    keys: &KeySet,
    alg: KeyAlgorithm,
    typ: &str,
    claims: &T,
    now: i64,
) -> Result<String, SignError> {
    let key = keys
        .active_for(alg, now)
        .ok_or(SignError::NoActiveKey(alg))?;
    let mut header = Header::new(alg.jwt());
    header.typ = Some(typ.to_string());
    header.kid = Some(key.kid.clone());
    Ok(jsonwebtoken::encode(&header, claims, &key.encoding)?)
}

/// Sign the ID token of `spec` for its client.
pub fn sign(keys: &KeySet, spec: IdTokenSpec<'_>) -> Result<String, SignError> {
    let (client, now) = (spec.client, spec.now);
    let claims = IdTokenClaims::issue(spec);
    sign_for_client(keys, client, ID_TOKEN_TYP, &claims, now)
}

/// Why an `id_token_hint` was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HintError {
    #[error("id_token_hint is not an ID token issued by this server")]
    NotOurs,
    #[error("id_token_hint was issued to another client")]
    OtherClient,
}

/// The `sub` of an `id_token_hint` (OIDC Core §3.1.2.1): an ID token this server signed (with a key
/// still published) for `client_id`. Its expiry is ignored: the hint names a user, it grants
/// nothing.
pub fn hinted_subject(
    keys: &KeySet,
    hint: &str,
    issuer: &str,
    client_id: &str,
) -> Result<String, HintError> {
    let hinted = hinted_session(keys, hint, issuer)?;
    if hinted.client_id != client_id {
        return Err(HintError::OtherClient);
    }
    Ok(hinted.sub)
}

/// Who and what an `id_token_hint` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HintedSession {
    pub sub: String,
    /// Its `aud`: the client it was issued to.
    pub client_id: String,
    /// Its `sid`: the refresh family it came with.
    pub sid: String,
}

/// The user, client and family of an `id_token_hint` (OIDC Core §3.1.2.1, RP-Initiated Logout
/// 1.0 §2): an ID token this server signed with a key still published and issued by `issuer`.
/// Its expiry is ignored (a logout hint is usually expired); the caller checks the client.
pub fn hinted_session(keys: &KeySet, hint: &str, issuer: &str) -> Result<HintedSession, HintError> {
    let claims: IdTokenClaims = keys.decode(hint, ID_TOKEN_TYP).ok_or(HintError::NotOurs)?;
    if claims.iss != issuer {
        return Err(HintError::NotOurs);
    }
    Ok(HintedSession {
        sub: claims.sub,
        client_id: claims.aud,
        sid: claims.sid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_follows_oidc_core_for_each_algorithm() {
        // OIDC Core Appendix A.3 (RS256): the access token and its at_hash.
        assert_eq!(
            at_hash(
                KeyAlgorithm::RS256,
                "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
            ),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        // Ed25519: the left half of SHA-512, 32 bytes.
        let h = at_hash(KeyAlgorithm::EdDSA, "token");
        assert_eq!(URL_SAFE_NO_PAD.decode(&h).map(|b| b.len()), Ok(32));
    }
}
