//! Access tokens: JWTs in the RFC 9068 profile, signed with Ed25519.

use std::net::SocketAddr;

use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};

use super::keys::{KeySet, SigningKey};
use crate::clients::Client;
use crate::db::models::users::UserRow;
use crate::domain::{Scope, Seconds};
use crate::profile::Profile;

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
    /// RFC 9449 §6.1: the DPoP key the token is bound to; only a request signed by that key may
    /// use it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cnf: Option<Confirmation>,
    /// Current user claims (e.g. `preferred_username`), read fresh at every issue.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// `cnf` (RFC 7800) with the SHA-256 thumbprint of a DPoP key (RFC 9449 §6.1).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Confirmation {
    pub jkt: String,
}

/// What an access token is issued for. [`AccessClaims::issue`] is the one place that turns it into
/// claims, for the token endpoint and `lineage token mint` alike.
#[derive(Debug)]
pub struct AccessTokenSpec<'a> {
    /// See [`issuer`].
    pub issuer: &'a str,
    pub client: &'a Client,
    /// User id, or the client id for client_credentials.
    pub subject: &'a str,
    pub scope: &'a Scope,
    /// The refresh family the token comes from, if any.
    pub sid: Option<String>,
    /// The thumbprint of the DPoP key the token is bound to, if any.
    pub jkt: Option<String>,
    /// The user's current claims ([`user_claims`]); empty when no user is involved.
    pub user_claims: serde_json::Map<String, serde_json::Value>,
    pub now: i64,
    /// Seconds the token lives (`access_token_ttl`), unless `expires_no_later` ends it sooner.
    pub ttl: Seconds,
    /// The refresh family's absolute expiry: a token never outlives its family.
    pub expires_no_later: Option<i64>,
}

impl AccessClaims {
    /// The claims of a new access token, with a fresh `jti`.
    pub fn issue(spec: AccessTokenSpec<'_>) -> Self {
        let AccessTokenSpec {
            issuer,
            client,
            subject,
            scope,
            sid,
            jkt,
            user_claims,
            now,
            ttl,
            expires_no_later,
        } = spec;
        let exp = match expires_no_later {
            Some(limit) => (now + ttl).min(limit),
            None => now + ttl,
        };
        Self {
            iss: issuer.to_string(),
            sub: subject.to_string(),
            aud: client.audience.clone(),
            exp,
            iat: now,
            nbf: now,
            jti: uuid::Uuid::new_v4().to_string(),
            client_id: client.client_id.to_string(),
            scope: scope.to_string(),
            sid,
            cnf: jkt.map(|jkt| Confirmation { jkt }),
            extra: user_claims,
        }
    }
}

/// The issuer (`iss`, and the base of every URL the server publishes): the configured one, else
/// plain http on the address the server listens on. The server passes the address it bound; the
/// CLI, which binds nothing, the configured `bind`.
pub fn issuer(configured: Option<&str>, listening: SocketAddr) -> String {
    match configured {
        Some(issuer) => issuer.to_string(),
        None => format!("http://{listening}"),
    }
}

/// The user claims an access token carries, read from the user row at the moment of issue: the
/// profile claims the scope grants (`Profile::claims`), and `preferred_username` always, as access
/// tokens have carried it from the start and resource servers read it.
pub fn user_claims(user: &UserRow, scope: &Scope) -> serde_json::Map<String, serde_json::Value> {
    let profile = Profile::from(user);
    let mut claims = profile.claims(scope);
    claims.insert("preferred_username".into(), profile.username.into());
    claims
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
    let claims = verify_signed(keys, token, issuer)?;
    claims.check_time(now)?;
    Ok(claims)
}

/// The claims of a token this server signed (`alg`, `typ`, key, signature, `iss`), whatever its
/// times say: who it was issued to is known even when it has expired.
pub fn verify_signed(
    keys: &KeySet,
    token: &str,
    issuer: &str,
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
    Ok(claims)
}

impl AccessClaims {
    /// `exp` and `nbf` against `now`.
    pub fn check_time(&self, now: i64) -> Result<(), VerifyError> {
        if now >= self.exp {
            return Err(VerifyError::Expired);
        }
        if now < self.nbf {
            return Err(VerifyError::NotYetValid);
        }
        Ok(())
    }
}
