//! Access tokens: JWTs in the RFC 9068 profile, signed with Ed25519.

use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};

use super::keys::{KeySet, SigningKey};
use crate::clients::Client;
use crate::db::models::users::UserRow;
use crate::domain::Scope;

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

impl AccessClaims {
    /// Claims for a token issued to `client` for `subject` at `now`, living `ttl` seconds.
    pub fn new(
        issuer: &str,
        client: &Client,
        subject: &str,
        scope: &Scope,
        now: i64,
        ttl: i64,
    ) -> Self {
        Self {
            iss: issuer.to_string(),
            sub: subject.to_string(),
            aud: client.audience.clone(),
            exp: now + ttl,
            iat: now,
            nbf: now,
            jti: uuid::Uuid::new_v4().to_string(),
            client_id: client.client_id.clone(),
            scope: scope.to_string(),
            sid: None,
            extra: serde_json::Map::new(),
        }
    }

    /// The refresh family the token comes from.
    pub fn in_family(mut self, sid: Option<String>) -> Self {
        self.sid = sid;
        self
    }

    pub fn with_claims(mut self, extra: serde_json::Map<String, serde_json::Value>) -> Self {
        self.extra = extra;
        self
    }

    /// Never outlive `limit` (the family's absolute expiry).
    pub fn capped_at(mut self, limit: Option<i64>) -> Self {
        if let Some(limit) = limit {
            self.exp = self.exp.min(limit);
        }
        self
    }
}

/// The user claims an access token carries, read from the user row at the moment of issue.
pub fn user_claims(user: &UserRow) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("preferred_username".into(), user.username.clone().into());
    m
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

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("not a lineage access token")]
    Malformed,
    #[error("signed by an unknown key")]
    UnknownKey,
    #[error("bad signature")]
    BadSignature,
    #[error("expired")]
    Expired,
    #[error("not yet valid")]
    NotYetValid,
    #[error("issued by another server")]
    WrongIssuer,
}

/// The key id of a token, if it looks like a JWT at all.
pub fn kid_of(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token).ok()?.kid
}

/// Verify a lineage access token: EdDSA signature by a published key, `typ`, `iss`, `exp`, `nbf`
/// (against the injected clock, not the system clock).
pub fn verify(
    keys: &KeySet,
    token: &str,
    issuer: &str,
    now: i64,
) -> Result<AccessClaims, VerifyError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
    if header.alg != Algorithm::EdDSA || header.typ.as_deref() != Some(ACCESS_TOKEN_TYP) {
        return Err(VerifyError::Malformed);
    }
    let kid = header.kid.ok_or(VerifyError::Malformed)?;
    let key = keys.get(&kid).ok_or(VerifyError::UnknownKey)?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation).map_err(
        |e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => VerifyError::BadSignature,
            _ => VerifyError::Malformed,
        },
    )?;
    let claims = data.claims;
    if claims.iss != issuer {
        return Err(VerifyError::WrongIssuer);
    }
    if now >= claims.exp {
        return Err(VerifyError::Expired);
    }
    if now < claims.nbf {
        return Err(VerifyError::NotYetValid);
    }
    Ok(claims)
}
