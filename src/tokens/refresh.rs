//! Refresh-token families: start, rotate with reuse detection and a retry grace, revoke.
//!
//! A refresh token is a random UUID v4; only its SHA-256 is stored. Each use marks the token used
//! with one conditional UPDATE — the atomic primitive on both backends — and only the request that
//! wins it issues the successor. The successor is HMAC(parent) under a server secret, so a retry of
//! the same parent within the grace gets that same successor back and the family never branches.
//!
//! Every revocation here is published to the revocation feed (`revocation_feed::publish`) in the
//! revoking transaction, as its last statement.

use std::fmt;

use diesel::Connection;
use ring::hmac;

use crate::configuration::{KeySecret, Settings};
use crate::db::models::audit_events::{self, AuditEventRow};
use crate::db::models::refresh_families::{self as families, FamilyRow};
use crate::db::models::refresh_tokens::{self as tokens, RefreshTokenRow};
use crate::db::models::revocation_feed::{self, Revocation};
use crate::db::models::users::{self, UserRow};
use crate::db::{DbConnection, StoreError};
use crate::domain::Scope;
use crate::tokens::keys::derive_key;
use crate::tokens::secret::PlainToken;

/// The lifetime rules, from the settings.
#[derive(Debug, Clone, Copy)]
pub struct RefreshPolicy {
    pub idle_ttl: i64,
    pub absolute_ttl: i64,
    pub grace: i64,
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

/// A fresh, random first token of a family.
pub fn new_refresh_token() -> PlainToken {
    PlainToken::new(uuid::Uuid::new_v4().to_string())
}

/// Only well-formed tokens reach the database: a lowercase hyphenated UUID.
pub fn parse_presented(raw: &str) -> Option<PlainToken> {
    let id = uuid::Uuid::try_parse(raw).ok()?;
    (id.to_string() == raw).then(|| PlainToken::new(raw))
}

/// A revocation reason code (stored in `refresh_families.revoked_reason`) in words for people.
pub fn reason_in_words(reason: &str) -> &'static str {
    match reason {
        "reuse_detected" => "because a used refresh token came back (it had been copied)",
        "code_replayed" => "because its authorization code was used twice",
        "revoked_by_user" => "from the account page",
        "revoked_by_admin" => "by an administrator",
        "revoked_by_client" => "by the app",
        "signed_out" => "when the browser signed out",
        "signed_out_everywhere" => "by sign out everywhere",
        "password_changed" => "because the password changed",
        "user_disabled" => "because the account was disabled",
        "client_deleted" => "because the app was removed",
        "consent_withdrawn" => "because the user removed the app's access",
        _ => "by a revocation",
    }
}

/// Why a family no longer issues tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    Revoked(String),
    IdleTimeout,
    AbsoluteLifetime,
    MaxRotations,
    UserDisabled,
    UserDeleted,
}

impl EndReason {
    pub fn description(&self) -> String {
        match self {
            EndReason::Revoked(reason) => {
                format!("the session was signed out {}", reason_in_words(reason))
            }
            EndReason::IdleTimeout => {
                "the session expired: it was idle longer than the idle timeout".into()
            }
            EndReason::AbsoluteLifetime => {
                "the session expired: it reached its absolute lifetime".into()
            }
            EndReason::MaxRotations => {
                "the session expired: it reached the maximum number of refreshes".into()
            }
            EndReason::UserDisabled => "the user is disabled".into(),
            EndReason::UserDeleted => "the user no longer exists".into(),
        }
    }
}

pub fn end_reason(
    family: &FamilyRow,
    user: Option<&UserRow>,
    policy: &RefreshPolicy,
    now: i64,
) -> Option<EndReason> {
    if let Some(reason) = &family.revoked_reason {
        return Some(EndReason::Revoked(reason.clone()));
    }
    if family.revoked_at.is_some() {
        return Some(EndReason::Revoked("revoked".into()));
    }
    if now >= family.absolute_expires_at {
        return Some(EndReason::AbsoluteLifetime);
    }
    if now >= family.idle_expires_at {
        return Some(EndReason::IdleTimeout);
    }
    if policy
        .max_rotations
        .is_some_and(|max| family.rotation_count >= max)
    {
        return Some(EndReason::MaxRotations);
    }
    match user {
        None => Some(EndReason::UserDeleted),
        Some(u) if u.disabled => Some(EndReason::UserDisabled),
        Some(_) => None,
    }
}

/// Where a request came from, recorded on the family and in audit events.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewFamily {
    pub user_id: String,
    pub client_id: String,
    pub scope: Scope,
    pub device_name: Option<String>,
    pub origin: Origin,
}

/// Start a family and return it with its first refresh token.
pub fn start_family(
    conn: &mut DbConnection,
    spec: NewFamily,
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
        families::insert(c, &family)?;
        tokens::insert(c, &row)
    })?;
    Ok((family, token))
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("{0}")]
    InvalidGrant(String),
    /// A used token came back: the family was revoked (an `invalid_grant` on the wire).
    #[error("the refresh token was already used; the session has been revoked")]
    ReuseDetected,
    #[error("{0}")]
    InvalidScope(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for RefreshError {
    fn from(e: diesel::result::Error) -> Self {
        RefreshError::Store(e.into())
    }
}

#[derive(Debug)]
pub struct RotateRequest {
    pub client_id: String,
    /// A narrower scope for the new access token; the family keeps its own.
    pub scope: Option<Scope>,
    pub origin: Origin,
}

/// A successful rotation: the family as it is now, its user, the token to hand out and the scope
/// of the access token to mint.
#[derive(Debug)]
pub struct Rotated {
    pub family: FamilyRow,
    pub user: UserRow,
    /// `None` for the rotation that reaches `max_rotations`: the family ends with it.
    pub refresh_token: Option<PlainToken>,
    pub scope: Scope,
    /// True when this answered a retry within the grace (the same successor as before).
    pub retried: bool,
    /// A retry from another IP or user agent than the rotation it repeats.
    pub retried_elsewhere: bool,
}

enum Outcome {
    Issued(Box<Rotated>),
    ReuseDetected,
}

fn unknown() -> RefreshError {
    RefreshError::InvalidGrant("the refresh token is invalid".into())
}

fn granted_scope(family: &FamilyRow, requested: Option<&Scope>) -> Result<Scope, RefreshError> {
    let family_scope = Scope::parse(&family.scope).map_err(|_| unknown())?;
    match requested {
        Some(s) if !s.is_empty() => {
            if s.is_subset_of(&family_scope) {
                Ok(s.clone())
            } else {
                Err(RefreshError::InvalidScope(
                    "a refresh may narrow the scope, never widen it".into(),
                ))
            }
        }
        _ => Ok(family_scope),
    }
}

/// Use a refresh token: rotate it, answer a retry within the grace, or detect reuse.
pub fn rotate(
    conn: &mut DbConnection,
    key: &SuccessorKey,
    presented: &PlainToken,
    req: &RotateRequest,
    policy: &RefreshPolicy,
    now: i64,
) -> Result<Rotated, RefreshError> {
    let hash = presented.hash();
    let outcome = conn.transaction(|c| -> Result<Outcome, RefreshError> {
        let won = tokens::mark_used(c, hash.as_str(), now)?;
        let (token, family, user) = tokens::find_with_family(c, hash.as_str())?.ok_or_else(unknown)?;
        if family.client_id != req.client_id {
            // Rolls back the mark: another client cannot spend or revoke this family's token.
            return Err(RefreshError::InvalidGrant("the refresh token was issued to another client".into()));
        }
        let successor = key.successor(presented);
        if won {
            if let Some(end) = end_reason(&family, user.as_ref(), policy, now) {
                return Err(RefreshError::InvalidGrant(end.description()));
            }
            let scope = granted_scope(&family, req.scope.as_ref())?;
            // The rotation that reaches the cap hands out no successor: it would be dead on arrival.
            let last = policy.max_rotations.is_some_and(|max| family.rotation_count + 1 >= max);
            if !last {
                tokens::insert(
                    c,
                    &RefreshTokenRow {
                        token_hash: successor.hash().into_string(),
                        family_id: family.id.clone(),
                        generation: token.generation + 1,
                        parent_hash: Some(hash.as_str().to_string()),
                        created_at: now,
                        used_at: None,
                    },
                )?;
            }
            let idle = (now + policy.idle_ttl).min(family.absolute_expires_at);
            let (ip, ua) = (req.origin.ip.as_deref(), req.origin.user_agent.as_deref());
            families::touch(c, &family.id, now, idle, ip, ua)?;
            // The family as `touch` left it, without reading it back.
            let family = FamilyRow {
                last_used_at: now,
                idle_expires_at: idle,
                rotation_count: family.rotation_count + 1,
                ip: req.origin.ip.clone(),
                user_agent: req.origin.user_agent.clone(),
                ..family
            };
            let user = user.ok_or_else(unknown)?;
            let refresh_token = (!last).then_some(successor);
            return Ok(Outcome::Issued(Box::new(Rotated { family, user, refresh_token, scope, retried: false, retried_elsewhere: false })));
        }

        // Already used. A family that has ended for another reason (expiry, rotation cap) just says
        // so: a late retry there is no sign of theft.
        let ended = end_reason(&family, user.as_ref(), policy, now);
        let used_at = token.used_at.unwrap_or(now);
        let within_grace = policy.grace > 0 && now - used_at <= policy.grace;
        if let Some(end) = &ended
            && !matches!(end, EndReason::Revoked(_))
        {
            // A retry of the rotation that reached the cap gets the same answer: no successor.
            let repeats_last = end == &EndReason::MaxRotations
                && token.generation + 1 == family.rotation_count;
            if let Some(user) = user.clone().filter(|u| !u.disabled)
                && repeats_last
                && within_grace
            {
                let scope = granted_scope(&family, req.scope.as_ref())?;
                let elsewhere = record_retry(c, &family, &req.origin, now)?;
                return Ok(Outcome::Issued(Box::new(Rotated { family, user, refresh_token: None, scope, retried: true, retried_elsewhere: elsewhere })));
            }
            return Err(RefreshError::InvalidGrant(end.description()));
        }
        // Within the grace, and while its successor is unused, this is a retry after a lost
        // response: hand back the same successor. Otherwise it is reuse.
        if within_grace && ended.is_none() {
            let next = tokens::find(c, successor.hash().as_str())?;
            if let (Some(next), Some(user)) = (next, user.clone())
                && next.used_at.is_none()
            {
                let scope = granted_scope(&family, req.scope.as_ref())?;
                let elsewhere = record_retry(c, &family, &req.origin, now)?;
                return Ok(Outcome::Issued(Box::new(Rotated { family, user, refresh_token: Some(successor), scope, retried: true, retried_elsewhere: elsewhere })));
            }
        }
        if families::revoke(c, &family.id, "reuse_detected", now)? {
            let device = family.device_name.clone().unwrap_or_else(|| "an unnamed device".into());
            let mut event = AuditEventRow::new(
                now,
                "refresh_token_reuse",
                format!(
                    "a refresh token of {device} was used a second time (generation {}); every token of that session was revoked",
                    token.generation
                ),
            );
            event.user_id = Some(family.user_id.clone());
            event.client_id = Some(family.client_id.clone());
            event.family_id = Some(family.id.clone());
            event.ip = req.origin.ip.clone();
            event.user_agent = req.origin.user_agent.clone();
            audit_events::insert(c, &event)?;
            revocation_feed::publish(c, &[Revocation::family(&family.id, now)])?;
            tracing::warn!(family = %family.id, user = %family.user_id, client = %family.client_id, "refresh token reuse detected; family revoked");
        }
        Ok(Outcome::ReuseDetected)
    })?;
    match outcome {
        Outcome::Issued(r) => Ok(*r),
        Outcome::ReuseDetected => Err(RefreshError::ReuseDetected),
    }
}

/// A retry within the grace is normal after a lost response, but it is also what a thief replaying
/// a just-rotated token looks like. Record it; one that comes from another IP or user agent than
/// the rotation it repeats (the family's last use) is flagged for the user. Returns whether it did.
fn record_retry(
    c: &mut DbConnection,
    family: &FamilyRow,
    origin: &Origin,
    now: i64,
) -> Result<bool, StoreError> {
    let elsewhere = origin.ip != family.ip || origin.user_agent != family.user_agent;
    let device = family
        .device_name
        .clone()
        .unwrap_or_else(|| "an unnamed device".into());
    let (kind, detail) = if elsewhere {
        (
            RETRY_ELSEWHERE,
            format!(
                "a just-used refresh token of {device} was presented again within the retry grace \
                 from another network or app than the refresh it repeats (that one came from {}); \
                 if that was not you, sign the device out",
                family.ip.as_deref().unwrap_or("an unknown address")
            ),
        )
    } else {
        (
            RETRY,
            format!("{device} repeated a refresh within the retry grace and got the same answer"),
        )
    };
    let mut event = AuditEventRow::new(now, kind, detail);
    event.user_id = Some(family.user_id.clone());
    event.client_id = Some(family.client_id.clone());
    event.family_id = Some(family.id.clone());
    event.ip = origin.ip.clone();
    event.user_agent = origin.user_agent.clone();
    audit_events::insert(c, &event)?;
    Ok(elsewhere)
}

/// Audit kinds of a refresh answered within the retry grace: from the same origin as the rotation
/// it repeats, or from another one.
pub const RETRY: &str = audit_events::REFRESH_RETRY;
pub const RETRY_ELSEWHERE: &str = "refresh_retry_elsewhere";

/// Revoke one family (and with it every token it has). Returns whether it was live.
pub fn revoke_family(
    conn: &mut DbConnection,
    family_id: &str,
    reason: &str,
    origin: &Origin,
    now: i64,
) -> Result<bool, StoreError> {
    conn.transaction(|c| {
        let Some(family) = families::find(c, family_id)? else {
            return Ok(false);
        };
        if !families::revoke(c, family_id, reason, now)? {
            return Ok(false);
        }
        let device = family
            .device_name
            .clone()
            .unwrap_or_else(|| "an unnamed device".into());
        let mut event = AuditEventRow::new(
            now,
            "family_revoked",
            format!("{device} was signed out {}", reason_in_words(reason)),
        );
        event.user_id = Some(family.user_id);
        event.client_id = Some(family.client_id);
        event.family_id = Some(family.id);
        event.ip = origin.ip.clone();
        event.user_agent = origin.user_agent.clone();
        audit_events::insert(c, &event)?;
        revocation_feed::publish(c, &[Revocation::family(family_id, now)])?;
        Ok(true)
    })
}

/// End every family of a user and set the user's not-before, so resource servers reading the
/// revocation feed drop access tokens issued before now.
pub fn revoke_all_for_user(
    conn: &mut DbConnection,
    user_id: &str,
    reason: &str,
    now: i64,
) -> Result<Vec<String>, StoreError> {
    conn.transaction(|c| {
        // The user row first (the not-before): the lock order every session-ending path keeps.
        users::set_not_before(c, user_id, now)?;
        let ids = families::revoke_all_where(c, Some(user_id), None, reason, now)?;
        let mut event = AuditEventRow::new(
            now,
            "all_sessions_revoked",
            format!(
                "every device was signed out ({} in all) {}",
                ids.len(),
                reason_in_words(reason)
            ),
        );
        event.user_id = Some(user_id.to_string());
        audit_events::insert(c, &event)?;
        let mut revoked: Vec<Revocation> =
            ids.iter().map(|sid| Revocation::family(sid, now)).collect();
        revoked.push(Revocation::user_not_before(user_id, now));
        revocation_feed::publish(c, &revoked)?;
        Ok(ids)
    })
}

/// Introspection of a refresh token: the family and token while the token is the family's current
/// one and the family is live.
pub fn inspect(
    conn: &mut DbConnection,
    presented: &PlainToken,
    policy: &RefreshPolicy,
    now: i64,
) -> Result<Option<(FamilyRow, RefreshTokenRow)>, StoreError> {
    let Some(token) = tokens::find(conn, presented.hash().as_str())? else {
        return Ok(None);
    };
    if token.used_at.is_some() {
        return Ok(None);
    }
    let Some(family) = families::find(conn, &token.family_id)? else {
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
    let Some(token) = tokens::find(conn, presented.hash().as_str())? else {
        return Ok(None);
    };
    families::find(conn, &token.family_id)
}
