//! Ending families. Every revocation records why, writes an audit event the user can see, and is
//! published to the revocation feed in the same transaction as its last statement (publishing
//! holds the feed's head row until the commit): a family can never end without resource servers
//! hearing of it. In the same transaction, a family whose client registered a back-channel
//! logout URI gets a logout token queued for it (`logout_deliveries::queue`, sent by
//! `backchannel`): every early end passes through `revoke_one` or `Ended::publish`, so none is
//! missed. Natural expiry (idle, absolute) is not a revocation and queues nothing.

use diesel::Connection;

use crate::db::models::audit_events::{self, AuditEventRow};
use crate::db::models::logout_deliveries;
use crate::db::models::refresh_families::{self, FamilyRow};
use crate::db::models::revocation_feed::{self, Revocation};
use crate::db::models::users;
use crate::db::{DbConnection, StoreError};
use crate::domain::Origin;

/// Why a family was revoked: stored with it, counted in the metrics, and told to its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationReason {
    /// A used refresh token came back.
    ReuseDetected,
    /// The authorization code that started it was presented again.
    CodeReplayed,
    RevokedByUser,
    RevokedByAdmin,
    /// The client revoked one of its tokens (RFC 7009).
    RevokedByClient,
    SignedOut,
    SignedOutEverywhere,
    PasswordChanged,
    UserDisabled,
    ClientDeleted,
    ConsentWithdrawn,
}

impl RevocationReason {
    pub const ALL: [RevocationReason; 11] = [
        Self::ReuseDetected,
        Self::CodeReplayed,
        Self::RevokedByUser,
        Self::RevokedByAdmin,
        Self::RevokedByClient,
        Self::SignedOut,
        Self::SignedOutEverywhere,
        Self::PasswordChanged,
        Self::UserDisabled,
        Self::ClientDeleted,
        Self::ConsentWithdrawn,
    ];

    /// The stored code (`refresh_families.revoked_reason`, the metrics label).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReuseDetected => "reuse_detected",
            Self::CodeReplayed => "code_replayed",
            Self::RevokedByUser => "revoked_by_user",
            Self::RevokedByAdmin => "revoked_by_admin",
            Self::RevokedByClient => "revoked_by_client",
            Self::SignedOut => "signed_out",
            Self::SignedOutEverywhere => "signed_out_everywhere",
            Self::PasswordChanged => "password_changed",
            Self::UserDisabled => "user_disabled",
            Self::ClientDeleted => "client_deleted",
            Self::ConsentWithdrawn => "consent_withdrawn",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == code)
    }

    /// How it ended, in words for people ("signed out …").
    pub fn in_words(self) -> &'static str {
        match self {
            Self::ReuseDetected => "because a used refresh token came back (it had been copied)",
            Self::CodeReplayed => "because its authorization code was used twice",
            Self::RevokedByUser => "from the account page",
            Self::RevokedByAdmin => "by an administrator",
            Self::RevokedByClient => "by the app",
            Self::SignedOut => "when the browser signed out",
            Self::SignedOutEverywhere => "by sign out everywhere",
            Self::PasswordChanged => "because the password changed",
            Self::UserDisabled => "because the account was disabled",
            Self::ClientDeleted => "because the app was removed",
            Self::ConsentWithdrawn => "because the user removed the app's access",
        }
    }
}

impl std::fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// "Alice's phone", or "an unnamed device".
pub(super) fn device_of(family: &FamilyRow) -> &str {
    family.device_name.as_deref().unwrap_or("an unnamed device")
}

/// Revoke one family (and with it every token it has). Returns whether it was live.
pub fn revoke_family(
    conn: &mut DbConnection,
    family_id: &str,
    reason: RevocationReason,
    origin: &Origin,
    now: i64,
) -> Result<bool, StoreError> {
    conn.transaction(|c| {
        let Some(family) = refresh_families::find(c, family_id)? else {
            return Ok(false);
        };
        let detail = format!(
            "{} was signed out {}",
            device_of(&family),
            reason.in_words()
        );
        let event = AuditEventRow::new(now, "family_revoked", detail)
            .for_family(&family)
            .from_origin(origin);
        revoke_one(c, &family, reason, &event, now)
    })
}

/// Revoke `family` if it is live, record `event` and publish the revocation. Returns whether it
/// was live (nothing is recorded otherwise).
pub(super) fn revoke_one(
    c: &mut DbConnection,
    family: &FamilyRow,
    reason: RevocationReason,
    event: &AuditEventRow,
    now: i64,
) -> Result<bool, StoreError> {
    if !refresh_families::revoke(c, &family.id, reason.as_str(), now)? {
        return Ok(false);
    }
    audit_events::insert(c, event)?;
    logout_deliveries::queue(c, std::slice::from_ref(&family.id), now)?;
    revocation_feed::publish(c, &[Revocation::family(&family.id, now)])?;
    Ok(true)
}

/// Which live families to end at once: a user's, a client's, or one user's of one client.
#[derive(Debug, Clone, Copy)]
pub struct FamiliesOf<'a> {
    pub user: Option<&'a str>,
    pub client: Option<&'a str>,
}

/// Families ended in this transaction whose revocations are not in the feed yet: the caller
/// records its audit event (which counts them), then `publish`es as the last statement.
#[must_use = "revoked families must be published to the revocation feed"]
pub struct Ended {
    ids: Vec<String>,
    now: i64,
}

impl Ended {
    pub fn count(&self) -> usize {
        self.ids.len()
    }

    /// Publish the families, and `also` (a user's not-before, a deleted client) with them.
    /// Returns the ids revoked.
    pub fn publish(
        self,
        c: &mut DbConnection,
        also: Vec<Revocation>,
    ) -> Result<Vec<String>, StoreError> {
        let mut revoked: Vec<Revocation> = self
            .ids
            .iter()
            .map(|sid| Revocation::family(sid, self.now))
            .collect();
        revoked.extend(also);
        // Before the feed: publishing holds the feed's head row until the commit.
        logout_deliveries::queue(c, &self.ids, self.now)?;
        revocation_feed::publish(c, &revoked)?;
        Ok(self.ids)
    }
}

/// End every live family `of`, to be published by the caller (see `Ended`).
pub fn revoke_families(
    c: &mut DbConnection,
    of: FamiliesOf<'_>,
    reason: RevocationReason,
    now: i64,
) -> Result<Ended, StoreError> {
    let ids = refresh_families::revoke_all_where(c, of.user, of.client, reason.as_str(), now)?;
    Ok(Ended { ids, now })
}

/// End every family of a user and set the user's not-before, so resource servers reading the
/// revocation feed drop access tokens issued before now.
pub fn revoke_all_for_user(
    conn: &mut DbConnection,
    user_id: &str,
    reason: RevocationReason,
    now: i64,
) -> Result<Vec<String>, StoreError> {
    conn.transaction(|c| {
        // The user row first (the not-before): the lock order every session-ending path keeps.
        users::set_not_before(c, user_id, now)?;
        let of = FamiliesOf {
            user: Some(user_id),
            client: None,
        };
        let ended = revoke_families(c, of, reason, now)?;
        let detail = format!(
            "every device was signed out ({} in all) {}",
            ended.count(),
            reason.in_words()
        );
        audit_events::insert(
            c,
            &AuditEventRow::new(now, "all_sessions_revoked", detail).for_user(user_id),
        )?;
        ended.publish(c, vec![Revocation::user_not_before(user_id, now)])
    })
}
