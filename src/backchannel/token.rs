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
