//! When a family stops issuing tokens: revoked, idle too long, too old, out of rotations, or its
//! user gone or disabled.

use super::RefreshPolicy;
use super::revocation::RevocationReason;
use crate::db::models::refresh_families::FamilyRow;
use crate::db::models::users::UserRow;

/// Why a family no longer issues tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// With the reason recorded, when it is one this version knows.
    Revoked(Option<RevocationReason>),
    IdleTimeout,
    AbsoluteLifetime,
    MaxRotations,
    UserDisabled,
    UserDeleted,
}

impl EndReason {
    pub fn description(&self) -> String {
        match self {
            EndReason::Revoked(reason) => format!(
                "the session was signed out {}",
                reason.map_or("by a revocation", RevocationReason::in_words)
            ),
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

/// Why `family` has ended at `now`, or `None` while it is live.
pub fn end_reason(
    family: &FamilyRow,
    user: Option<&UserRow>,
    policy: &RefreshPolicy,
    now: i64,
) -> Option<EndReason> {
    if family.revoked_at.is_some() || family.revoked_reason.is_some() {
        let reason = family
            .revoked_reason
            .as_deref()
            .and_then(RevocationReason::parse);
        return Some(EndReason::Revoked(reason));
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
