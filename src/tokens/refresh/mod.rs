//! Refresh-token families: start, rotate with reuse detection and a retry grace, revoke.
//!
//! A refresh token is a random UUID v4; only its SHA-256 is stored. Each use marks the token used
//! with one conditional UPDATE — the atomic primitive on both backends — and only the request that
//! wins it issues the successor. The successor is HMAC(parent) under a server secret, so a retry of
//! the same parent within the grace gets that same successor back and the family never branches.
//!
//! `rotation` holds the rule of one use (`rotation_pg` runs it as one statement on PostgreSQL),
//! `revocation` the ways a family ends early (each published to the revocation feed in the
//! revoking transaction), `lifetime` when a family has ended.

mod lifetime;
mod revocation;
mod rotation;
mod rotation_pg;

use std::fmt;

use diesel::Connection;
use ring::hmac;

pub use self::lifetime::{EndReason, end_reason};
pub use self::revocation::{
    Ended, FamiliesOf, RevocationReason, revoke_all_for_user, revoke_families, revoke_family,
};
pub use self::rotation::{
    DPOP_KEY_MISMATCH, PROOF_REQUIRED, RETRY, RETRY_ELSEWHERE, Refusal, RotateRequest, Rotated,
    Rotation, rotate,
};
use crate::configuration::{KeySecret, Settings};
use crate::db::models::refresh_families::{self, FamilyRow};
use crate::db::models::refresh_tokens::{self, RefreshTokenRow};
use crate::db::models::users;
use crate::db::{DbConnection, StoreError};
pub use crate::domain::Origin;
use crate::domain::{Scope, Seconds};
use crate::tokens::keys::derive_key;
use crate::tokens::secret::{HashedToken, PlainToken};

/// The lifetime rules, from the settings.
#[derive(Debug, Clone, Copy)]
pub struct RefreshPolicy {
    pub idle_ttl: Seconds,
    pub absolute_ttl: Seconds,
    pub grace: Seconds,
    pub max_rotations: Option<i64>,
}

impl RefreshPolicy {
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            idle_ttl: s.refresh_idle_ttl,
            absolute_ttl: s.refresh_absolute_ttl,
            grace: s.refresh_grace,
            max_rotations: s.refresh_max_rotations,
        }
    }
}

/// The HMAC key that derives a token's successor.
#[derive(Clone)]
pub struct SuccessorKey(hmac::Key);

impl fmt::Debug for SuccessorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SuccessorKey([redacted])")
    }
}

impl SuccessorKey {
    pub fn new(secret: &KeySecret) -> Self {
        Self(hmac::Key::new(
            hmac::HMAC_SHA256,
            &derive_key(secret, b"refresh successor"),
        ))
    }

    /// HMAC-SHA256(parent), formatted as a UUID v4 like every other refresh token.
    pub fn successor(&self, parent: &PlainToken) -> PlainToken {
        let tag = hmac::sign(&self.0, parent.expose().as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&tag.as_ref()[..16]);
        PlainToken::new(
            uuid::Builder::from_random_bytes(bytes)
                .into_uuid()
                .to_string(),
        )
    }
}

/// A presented refresh token as its rotation uses it: the hash it is stored under, its successor
/// and the hash the successor will be stored under. Made before the rotation is queued, so the
/// hashing and the HMAC run on the HTTP worker that received the request rather than on SQLite's
/// one writer thread, which every rotation waits for.
#[derive(Debug)]
pub struct Presentation {
    pub(crate) hash: HashedToken,
    pub(crate) successor: PlainToken,
    pub(crate) successor_hash: HashedToken,
}

impl Presentation {
    pub fn new(key: &SuccessorKey, presented: &PlainToken) -> Self {
        let successor = key.successor(presented);
        Self {
            hash: presented.hash(),
            successor_hash: successor.hash(),
            successor,
        }
    }
}

/// A fresh, random first token of a family.
pub fn new_refresh_token() -> PlainToken {
    PlainToken::new(uuid::Uuid::new_v4().to_string())
}

/// Only well-formed tokens reach the database: a lowercase hyphenated UUID.
pub fn parse_presented(raw: &str) -> Option<PlainToken> {
    let id = uuid::Uuid::try_parse(raw).ok()?;
    (id.to_string() == raw).then(|| PlainToken::new(raw))
}

#[derive(Debug, Clone)]
pub struct NewFamily {
    pub user_id: String,
    pub client_id: String,
    pub scope: Scope,
    pub device_name: Option<String>,
    pub origin: Origin,
    /// The DPoP key the family is bound to, if it was started with a proof.
    pub dpop_jkt: Option<String>,
}

/// Start a family (of a sign-in now, as `lineage token mint` does) and return it with its first
/// refresh token.
pub fn start_family(
    conn: &mut DbConnection,
    spec: NewFamily,
    policy: &RefreshPolicy,
    now: i64,
) -> Result<(FamilyRow, PlainToken), StoreError> {
    start_family_signed_in_at(conn, spec, now, policy, now)
}

/// Start a family whose user entered the password at `auth_time`.
pub fn start_family_signed_in_at(
    conn: &mut DbConnection,
    spec: NewFamily,
    auth_time: i64,
    policy: &RefreshPolicy,
    now: i64,
) -> Result<(FamilyRow, PlainToken), StoreError> {
    let absolute = now + policy.absolute_ttl;
    let family = FamilyRow {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: spec.user_id,
        client_id: spec.client_id,
        scope: spec.scope.to_string(),
        device_name: spec.device_name,
        user_agent: spec.origin.user_agent,
        ip: spec.origin.ip,
        created_at: now,
        last_used_at: now,
        idle_expires_at: (now + policy.idle_ttl).min(absolute),
        absolute_expires_at: absolute,
        rotation_count: 0,
        revoked_at: None,
        revoked_reason: None,
        auth_time,
        dpop_jkt: spec.dpop_jkt,
    };
    let token = new_refresh_token();
    let row = RefreshTokenRow {
        token_hash: token.hash().into_string(),
        family_id: family.id.clone(),
        generation: 0,
        parent_hash: None,
        created_at: now,
        used_at: None,
    };
    conn.transaction(|c| {
        refresh_families::insert(c, &family)?;
        refresh_tokens::insert(c, &row)
    })?;
    Ok((family, token))
}

/// Introspection of a refresh token: the family and token while the token is the family's current
/// one and the family is live.
pub fn inspect(
    conn: &mut DbConnection,
    presented: &PlainToken,
    policy: &RefreshPolicy,
    now: i64,
) -> Result<Option<(FamilyRow, RefreshTokenRow)>, StoreError> {
    let Some(token) = refresh_tokens::find(conn, presented.hash().as_str())? else {
        return Ok(None);
    };
    if token.used_at.is_some() {
        return Ok(None);
    }
    let Some(family) = refresh_families::find(conn, &token.family_id)? else {
        return Ok(None);
    };
    let user = users::find(conn, &family.user_id)?;
    if end_reason(&family, user.as_ref(), policy, now).is_some() {
        return Ok(None);
    }
    Ok(Some((family, token)))
}

/// The family a presented token belongs to, whatever its state.
pub fn family_of(
    conn: &mut DbConnection,
    presented: &PlainToken,
) -> Result<Option<FamilyRow>, StoreError> {
    let Some(token) = refresh_tokens::find(conn, presented.hash().as_str())? else {
        return Ok(None);
    };
    refresh_families::find(conn, &token.family_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_presentation_holds_the_hashes_and_successor_the_rotation_would_derive_and_shows_none() {
        let key = SuccessorKey::new(&KeySecret::new("0123456789abcdef0123".into()));
        let presented = new_refresh_token();
        let p = Presentation::new(&key, &presented);
        let successor = key.successor(&presented);
        assert_eq!(p.successor, successor);
        assert!(p.hash.matches(&presented.hash()));
        assert!(p.successor_hash.matches(&successor.hash()));
        let shown = format!("{p:?}");
        for secret in [
            presented.expose(),
            successor.expose(),
            p.hash.as_str(),
            p.successor_hash.as_str(),
        ] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
