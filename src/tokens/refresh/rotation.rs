//! Using a refresh token, step by step as DESIGN.md states the rule: the request that marks the
//! presented token used issues its successor; a token already used is a retry within the grace
//! (answered with the same successor) or reuse (the family is revoked).

use diesel::Connection;

use super::lifetime::{EndReason, end_reason};
use super::revocation::{RevocationReason, device_of, revoke_one};
use super::{Presentation, RefreshPolicy};
use crate::db::models::audit_events::{self, AuditEventRow};
use crate::db::models::refresh_families::{self, FamilyRow};
use crate::db::models::refresh_tokens::{self, RefreshTokenRow};
use crate::db::models::users::UserRow;
use crate::db::{DbConnection, StoreError};
use crate::domain::{ClientId, Origin, Scope};
use crate::tokens::secret::PlainToken;

#[derive(Debug)]
pub struct RotateRequest {
    pub client_id: ClientId,
    /// A narrower scope for the new access token; the family keeps its own.
    pub scope: Option<Scope>,
    pub origin: Origin,
    /// The thumbprint of the DPoP key that signed the request's proof, if it carried one.
    pub dpop_jkt: Option<String>,
    /// The client requires DPoP: an unbound family of it rotates only with a proof too.
    pub proof_required: bool,
    /// A public client: an unbound family refreshed with a proof becomes bound to its key (RFC
    /// 9449 §5: a public client's refresh token issued on a proof is bound to that key).
    pub bind_on_proof: bool,
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

/// What a presented refresh token gets.
#[derive(Debug)]
pub enum Rotation {
    Issued(Box<Rotated>),
    Refused(Refusal),
}

/// Why a refresh was refused: `invalid_scope` on the wire for a widened scope, otherwise
/// `invalid_grant`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    InvalidGrant(String),
    /// A used token came back: the family was revoked.
    #[error("the refresh token was already used; the session has been revoked")]
    ReuseDetected,
    #[error("{0}")]
    InvalidScope(String),
    /// The family is bound to a DPoP key and the request was not signed by it. The token is not
    /// spent and the family not revoked (a copy of the token alone cannot end the session); the
    /// attempt is recorded for the user to see.
    #[error("{}", if *proof_given {
        "the refresh token is bound to another DPoP key"
    } else {
        "the refresh token is bound to a DPoP key: the request needs a DPoP proof by that key"
    })]
    WrongDpopKey { proof_given: bool },
    /// The client requires DPoP and the request carried no proof (the family is not bound: it
    /// was started before the client required DPoP). Not spent.
    #[error("{PROOF_REQUIRED}")]
    ProofRequired,
}

/// Why a client that requires DPoP is refused a request without a proof.
pub const PROOF_REQUIRED: &str =
    "this client's tokens must be bound to a key: send a DPoP proof (RFC 9449)";

/// Ends the rotation's transaction early and rolls it back: the presented token stays unspent.
pub(super) enum Abort {
    Refused(Refusal),
    Store(StoreError),
}

impl From<Refusal> for Abort {
    fn from(r: Refusal) -> Self {
        Abort::Refused(r)
    }
}

impl From<StoreError> for Abort {
    fn from(e: StoreError) -> Self {
        Abort::Store(e)
    }
}

impl From<diesel::result::Error> for Abort {
    fn from(e: diesel::result::Error) -> Self {
        Abort::Store(e.into())
    }
}

pub(super) fn unknown() -> Refusal {
    Refusal::InvalidGrant("the refresh token is invalid".into())
}

/// The presented token as found, with everything the steps decide on.
pub(super) struct Presented<'a> {
    /// Its hash, and its successor (HMAC(presented): the only one this token can ever have).
    pub(super) presented: &'a Presentation,
    pub(super) token: RefreshTokenRow,
    pub(super) family: FamilyRow,
    pub(super) user: Option<UserRow>,
    pub(super) req: &'a RotateRequest,
    pub(super) policy: &'a RefreshPolicy,
    pub(super) now: i64,
}

/// Use a refresh token: rotate it, answer a retry within the grace, or detect reuse.
/// PostgreSQL runs the same rule as one statement in autocommit (`rotation_pg.rs`).
pub fn rotate(
    conn: &mut DbConnection,
    presented: &Presentation,
    req: &RotateRequest,
    policy: &RefreshPolicy,
    now: i64,
) -> Result<Rotation, StoreError> {
    if let DbConnection::Postgresql(_) = conn {
        return super::rotation_pg::rotate(conn, presented, req, policy, now);
    }
    let hash = &presented.hash;
    let mut unproven = None;
    let result = conn.transaction(|c| {
        let won = refresh_tokens::mark_used(c, hash.as_str(), now)?;
        let (token, family, user) =
            refresh_tokens::find_with_family(c, hash.as_str())?.ok_or_else(unknown)?;
        if family.client_id != req.client_id {
            // Rolls back the mark: another client cannot spend or revoke this family's token.
            let other = "the refresh token was issued to another client";
            return Err(Refusal::InvalidGrant(other.into()).into());
        }
        if let Err(refusal) = key_matches(&family, req) {
            // Rolls back the mark; a bound family's is recorded once the transaction is gone.
            if family.dpop_jkt.is_some() {
                unproven = Some(family);
            }
            return Err(refusal.into());
        }
        let found = Presented {
            presented,
            token,
            family,
            user,
            req,
            policy,
            now,
        };
        if won {
            issue_successor(c, found)
        } else {
            answer_used(c, found)
        }
    });
    if let Some(family) = unproven {
        record_unproven_use(conn, &family, req, now)?;
    }
    settle(result)
}

/// A family bound to a DPoP key rotates only with a proof by that key. This is checked before
/// anything about the token is decided: a copy of a bound token without the key neither rotates,
/// nor counts as a retry, nor revokes the family as reuse.
pub(super) fn key_matches(family: &FamilyRow, req: &RotateRequest) -> Result<(), Refusal> {
    match (&family.dpop_jkt, &req.dpop_jkt) {
        (None, None) if req.proof_required => Err(Refusal::ProofRequired),
        (None, _) => Ok(()),
        (Some(bound), Some(given)) if bound == given => Ok(()),
        (Some(_), given) => Err(Refusal::WrongDpopKey {
            proof_given: given.is_some(),
        }),
    }
}

/// Record for the user that a bound family's token was presented without its key: someone else
/// holds a copy of it. The family keeps working (its device still holds the key); signing the
/// device out is the user's call, made from this event.
pub(super) fn record_unproven_use(
    conn: &mut DbConnection,
    family: &FamilyRow,
    req: &RotateRequest,
    now: i64,
) -> Result<(), StoreError> {
    tracing::warn!(family = %family.id, user = %family.user_id, client = %family.client_id,
        "a DPoP-bound refresh token was presented without its key; refused");
    // One event per family a minute: whoever holds a copy cannot flood the user's list of
    // security events (and push a reuse alert out of it) by trying again and again.
    if audit_events::recorded_since(conn, DPOP_KEY_MISMATCH, &family.id, now - 60)? {
        return Ok(());
    }
    let how = if req.dpop_jkt.is_some() {
        "signed with another key than the one that device holds"
    } else {
        "without proof of the key that device holds"
    };
    let after = if family.revoked_at.is_some() {
        "it was refused (that device was already signed out)"
    } else {
        "it was refused and the device stays signed in. If that was not you, a copy of the token \
         exists: sign the device out"
    };
    let detail = format!(
        "someone tried to use the refresh token of {} from another device ({how}); {after}",
        device_of(family)
    );
    let event = AuditEventRow::new(now, DPOP_KEY_MISMATCH, detail)
        .for_family(family)
        .from_origin(&req.origin);
    audit_events::insert(conn, &event)
}

/// Audit kind of a bound refresh token presented without its DPoP key.
pub const DPOP_KEY_MISMATCH: &str = "refresh_token_wrong_key";

/// A refusal is an answer, not an error: only storage failures stay errors.
pub(super) fn settle(result: Result<Rotation, Abort>) -> Result<Rotation, StoreError> {
    match result {
        Ok(rotation) => Ok(rotation),
        Err(Abort::Refused(refusal)) => Ok(Rotation::Refused(refusal)),
        Err(Abort::Store(e)) => Err(e),
    }
}

/// This request spent the token: if the family is live, store the successor and touch the family.
fn issue_successor(c: &mut DbConnection, p: Presented<'_>) -> Result<Rotation, Abort> {
    let (scope, last) = admit(&p)?;
    if !last {
        let row = RefreshTokenRow {
            token_hash: p.presented.successor_hash.as_str().to_string(),
            family_id: p.family.id.clone(),
            generation: p.token.generation + 1,
            parent_hash: Some(p.presented.hash.as_str().to_string()),
            created_at: p.now,
            used_at: None,
        };
        refresh_tokens::insert(c, &row)?;
    }
    let origin = &p.req.origin;
    let (ip, ua) = (origin.ip.as_deref(), origin.user_agent.as_deref());
    refresh_families::touch(c, &p.family.id, p.now, idle_expiry(&p), ip, ua)?;
    if let Some(jkt) = binds(&p) {
        refresh_families::bind_key(c, &p.family.id, jkt)?;
    }
    Ok(rotated(p, scope, last)?)
}

/// Whether the presented, unused token may rotate: its family has not ended and the scope is not
/// widened. Returns the access token's scope and whether this is the rotation that reaches the
/// cap, which hands out no successor (it would be dead on arrival).
pub(super) fn admit(p: &Presented<'_>) -> Result<(Scope, bool), Refusal> {
    if let Some(end) = end_reason(&p.family, p.user.as_ref(), p.policy, p.now) {
        return Err(Refusal::InvalidGrant(end.description()));
    }
    let scope = granted_scope(&p.family, p.req.scope.as_ref())?;
    let last = p
        .policy
        .max_rotations
        .is_some_and(|max| p.family.rotation_count + 1 >= max);
    Ok((scope, last))
}

/// The key an unbound family becomes bound to with this rotation, if it does.
pub(super) fn binds<'p>(p: &'p Presented<'_>) -> Option<&'p str> {
    match (&p.family.dpop_jkt, &p.req.dpop_jkt) {
        (None, Some(jkt)) if p.req.bind_on_proof => Some(jkt),
        _ => None,
    }
}

/// The family's idle expiry after this rotation: extended, never past the absolute one.
pub(super) fn idle_expiry(p: &Presented<'_>) -> i64 {
    (p.now + p.policy.idle_ttl).min(p.family.absolute_expires_at)
}

/// The answer of the rotation that spent `p`, with the family as the touch left it (without
/// reading it back).
pub(super) fn rotated(p: Presented<'_>, scope: Scope, last: bool) -> Result<Rotation, Refusal> {
    let idle = idle_expiry(&p);
    let dpop_jkt = p.family.dpop_jkt.clone().or(binds(&p).map(str::to_string));
    let user = p.user.ok_or_else(unknown)?;
    let origin = &p.req.origin;
    let family = FamilyRow {
        dpop_jkt,
        last_used_at: p.now,
        idle_expires_at: idle,
        rotation_count: p.family.rotation_count + 1,
        ip: origin.ip.clone(),
        user_agent: origin.user_agent.clone(),
        ..p.family
    };
    Ok(Rotation::Issued(Box::new(Rotated {
        family,
        user,
        refresh_token: (!last).then(|| p.presented.successor.clone()),
        scope,
        retried: false,
        retried_elsewhere: false,
    })))
}

/// The token was already used: a retry within the grace, a late word on an ended family, or reuse.
fn answer_used(c: &mut DbConnection, p: Presented<'_>) -> Result<Rotation, Abort> {
    match judge_used(&p, || successor_unused(c, &p))? {
        UsedAnswer::Retry { with_successor } => answer_retry(c, p, with_successor),
        UsedAnswer::Ended(end) => Err(Refusal::InvalidGrant(end.description()).into()),
        UsedAnswer::Reuse => revoke_for_reuse(c, p),
    }
}

/// What a used token gets.
pub(super) enum UsedAnswer {
    /// The answer of the rotation it repeats, again (with its successor, unless that rotation
    /// reached the cap).
    Retry {
        with_successor: bool,
    },
    Ended(EndReason),
    Reuse,
}

/// The rule for a used token. `successor_unused` is asked only when the answer depends on it.
pub(super) fn judge_used(
    p: &Presented<'_>,
    successor_unused: impl FnOnce() -> Result<bool, StoreError>,
) -> Result<UsedAnswer, StoreError> {
    let ended = end_reason(&p.family, p.user.as_ref(), p.policy, p.now);
    let used_at = p.token.used_at.unwrap_or(p.now);
    let within_grace = !p.policy.grace.is_zero() && used_at >= p.now - p.policy.grace;
    Ok(match ended {
        // A family that has ended for another reason (expiry, rotation cap) just says so: a late
        // retry there is no sign of theft.
        Some(end) if !matches!(end, EndReason::Revoked(_)) => {
            // A retry of the rotation that reached the cap gets the same answer: no successor.
            let repeats_last =
                end == EndReason::MaxRotations && p.token.generation + 1 == p.family.rotation_count;
            let user_active = p.user.as_ref().is_some_and(|u| !u.disabled);
            if repeats_last && within_grace && user_active {
                UsedAnswer::Retry {
                    with_successor: false,
                }
            } else {
                UsedAnswer::Ended(end)
            }
        }
        // Within the grace, and while its successor is unused, this is a retry after a lost
        // response: hand back the same successor.
        None if within_grace && successor_unused()? => UsedAnswer::Retry {
            with_successor: true,
        },
        _ => UsedAnswer::Reuse,
    })
}

pub(super) fn successor_unused(
    c: &mut DbConnection,
    p: &Presented<'_>,
) -> Result<bool, StoreError> {
    let next = refresh_tokens::find(c, p.presented.successor_hash.as_str())?;
    Ok(next.is_some_and(|n| n.used_at.is_none()))
}

/// Repeat the answer of the rotation this retry repeats, and record that it happened.
pub(super) fn answer_retry(
    c: &mut DbConnection,
    p: Presented<'_>,
    with_successor: bool,
) -> Result<Rotation, Abort> {
    let scope = granted_scope(&p.family, p.req.scope.as_ref())?;
    let user = p.user.ok_or_else(unknown)?;
    let elsewhere = record_retry(c, &p.family, &p.req.origin, p.now)?;
    Ok(Rotation::Issued(Box::new(Rotated {
        family: p.family,
        user,
        refresh_token: with_successor.then(|| p.presented.successor.clone()),
        scope,
        retried: true,
        retried_elsewhere: elsewhere,
    })))
}

/// A used token came back outside the grace: it was copied. End the family, tell the user.
fn revoke_for_reuse(c: &mut DbConnection, p: Presented<'_>) -> Result<Rotation, Abort> {
    let event = reuse_event(&p);
    if revoke_one(c, &p.family, RevocationReason::ReuseDetected, &event, p.now)? {
        log_reuse(&p.family);
    }
    Ok(Rotation::Refused(Refusal::ReuseDetected))
}

/// The audit event of a detected reuse: what the user sees on the account page.
pub(super) fn reuse_event(p: &Presented<'_>) -> AuditEventRow {
    let detail = format!(
        "a refresh token of {} was used a second time (generation {}); every token of that \
         session was revoked",
        device_of(&p.family),
        p.token.generation
    );
    AuditEventRow::new(p.now, "refresh_token_reuse", detail)
        .for_family(&p.family)
        .from_origin(&p.req.origin)
}

pub(super) fn log_reuse(f: &FamilyRow) {
    tracing::warn!(family = %f.id, user = %f.user_id, client = %f.client_id,
        "refresh token reuse detected; family revoked");
}

pub(super) fn granted_scope(
    family: &FamilyRow,
    requested: Option<&Scope>,
) -> Result<Scope, Refusal> {
    let family_scope = Scope::parse(&family.scope).map_err(|_| unknown())?;
    match requested {
        Some(s) if !s.is_empty() => {
            if s.is_subset_of(&family_scope) {
                Ok(s.clone())
            } else {
                Err(Refusal::InvalidScope(
                    "a refresh may narrow the scope, never widen it".into(),
                ))
            }
        }
        _ => Ok(family_scope),
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
    let device = device_of(family);
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
    let event = AuditEventRow::new(now, kind, detail)
        .for_family(family)
        .from_origin(origin);
    audit_events::insert(c, &event)?;
    Ok(elsewhere)
}

/// Audit kinds of a refresh answered within the retry grace: from the same origin as the rotation
/// it repeats, or from another one.
pub const RETRY: &str = audit_events::REFRESH_RETRY;
pub const RETRY_ELSEWHERE: &str = "refresh_retry_elsewhere";
