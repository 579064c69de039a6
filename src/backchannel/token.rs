//! The logout token (Back-Channel Logout 1.0 §2.4): a JWT naming the session that ended.

use serde::{Deserialize, Serialize};

use crate::tokens::id_token::{self, SignError};
use crate::tokens::keys::{KeyAlgorithm, KeySet};

/// The `typ` header a logout token carries (§2.4), so it cannot pass for another kind of JWT.
pub const LOGOUT_TOKEN_TYP: &str = "logout+jwt";
/// The one member of `events` (§2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Seconds a logout token is valid: it is signed when it is sent, so this only has to cover the
/// trip and clock skew (§2.4 recommends a short lifetime).
pub const LOGOUT_TOKEN_TTL: i64 = 120;

/// The claims of a logout token. There is never a `nonce` (§2.4 forbids it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogoutClaims {
    pub iss: String,
    /// The client id.
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// The user id, as `sub` of the client's tokens.
    pub sub: String,
    /// The refresh family that ended, as `sid` of the client's access tokens.
    pub sid: String,
    pub events: serde_json::Value,
}

impl LogoutClaims {
    /// The claims for the family `sid` of `sub` at `client_id`, issued `now` with a fresh `jti`.
    pub fn new(issuer: &str, client_id: &str, sub: &str, sid: &str, now: i64) -> Self {
        Self {
            iss: issuer.to_string(),
            aud: client_id.to_string(),
            iat: now,
            exp: now + LOGOUT_TOKEN_TTL,
            jti: uuid::Uuid::new_v4().to_string(),
            sub: sub.to_string(),
            sid: sid.to_string(),
            events: serde_json::json!({ BACKCHANNEL_LOGOUT_EVENT: {} }),
        }
    }
}

/// Sign a logout token: the one place that does. A client's logout tokens are signed like its ID
/// tokens (`id_token_signed_response_alg`, RS256 unless it asked for EdDSA), so the key it already
/// verifies ID tokens with verifies them too; `kid` names the key as in the JWKS.
pub fn sign_logout_token(
    keys: &KeySet,
    alg: KeyAlgorithm,
    claims: &LogoutClaims,
    now: i64,
) -> Result<String, SignError> {
    id_token::sign_with(keys, alg, LOGOUT_TOKEN_TYP, claims, now)
}

/// Why a logout token was refused by [`verify_logout_token`] (Back-Channel Logout 1.0 §2.6).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LogoutTokenError {
    #[error("not a logout token signed by this server")]
    NotOurs,
    #[error("the logout token was issued to another client")]
    OtherClient,
    #[error("the logout token has expired or is not yet valid")]
    Expired,
    #[error("the logout token does not name the back-channel logout event")]
    NoEvent,
    #[error("a logout token never carries a nonce")]
    Nonce,
}

/// Validate a logout token as a receiving app must (Back-Channel Logout 1.0 §2.6): `typ`, the
/// algorithm of the key `kid` names (never the header's word for it, RFC 8725 §3.1), the
/// signature, `iss`, `aud`, `iat`/`exp` against `now` (with a minute of skew), `events`, a `sid`,
/// and no `nonce`. The demo app uses it to check what this server sends it.
pub fn verify_logout_token(
    keys: &KeySet,
    token: &str,
    issuer: &str,
    client_id: &str,
    now: i64,
) -> Result<LogoutClaims, LogoutTokenError> {
    const SKEW: i64 = 60;
    let raw: serde_json::Value = keys
        .decode(token, LOGOUT_TOKEN_TYP)
        .ok_or(LogoutTokenError::NotOurs)?;
    if raw.get("nonce").is_some() {
        return Err(LogoutTokenError::Nonce);
    }
    let claims: LogoutClaims =
        serde_json::from_value(raw).map_err(|_| LogoutTokenError::NotOurs)?;
    if claims.iss != issuer {
        return Err(LogoutTokenError::NotOurs);
    }
    if claims.aud != client_id {
        return Err(LogoutTokenError::OtherClient);
    }
    if now >= claims.exp + SKEW || claims.iat > now + SKEW {
        return Err(LogoutTokenError::Expired);
    }
    if claims
        .events
        .get(BACKCHANNEL_LOGOUT_EVENT)
        .is_none_or(|e| !e.is_object())
    {
        return Err(LogoutTokenError::NoEvent);
    }
    if claims.sid.is_empty() {
        return Err(LogoutTokenError::NotOurs);
    }
    Ok(claims)
}
