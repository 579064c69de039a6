//! Access tokens: JWTs in the RFC 9068 profile, signed with Ed25519.

use jsonwebtoken::{Algorithm, Header};
use serde::{Deserialize, Serialize};

use super::keys::SigningKey;

/// RFC 9068 `typ` header value.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// The claims of a lineage access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AccessClaims {
    pub iss: String,
    /// User id, or the client id for client_credentials.
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub client_id: String,
    /// Space-separated.
    pub scope: String,
    /// The refresh family this token came from, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sid: Option<String>,
    /// Current user claims (e.g. `preferred_username`), read fresh at every issue.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

pub fn mint(
    key: &SigningKey,
    claims: &AccessClaims,
) -> Result<String, jsonwebtoken::errors::Error> {
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some(ACCESS_TOKEN_TYP.to_string());
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding)
}
