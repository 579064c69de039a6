//! The per-username sign-in back-off, kept in the database so every node sharing it sees the same
//! state. A few failures are free; after that each failure blocks the username for a doubling
//! time (capped), during which attempts are refused without a password check and without being
//! recorded, so they cannot extend the block. A successful sign-in starts the count over. The
//! count is kept for every username tried, known or not, in the same database job; for a known
//! user the same job also keeps one aggregated `sign_in_failed` security event per run of failures.

use diesel::Connection;
use ring::hmac;

use crate::configuration::{KeySecret, Settings};
use crate::db::models::audit_events::{self, AuditEventRow};
use crate::db::models::sign_in_throttles::{self, ThrottleRow};
use crate::db::models::users::UserRow;
use crate::db::{DbConnection, StoreError};
use crate::domain::Seconds;
use crate::tokens::keys::derive_key;
use crate::tokens::refresh::Origin;
use crate::tokens::secret::hex;

/// Failures older than this no longer count (and housekeeping deletes the row).
pub const FORGET_AFTER: Seconds = Seconds::new(86_400);
/// A failure this long after the previous one starts a new security event.
const EVENT_QUIET: Seconds = Seconds::new(15 * 60);
/// One security event covers at most this long a run of failures.
const EVENT_SPAN: Seconds = Seconds::new(86_400);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInPolicy {
    pub free_failures: i64,
    /// The first block; each further failure doubles it. 0 turns the back-off off.
    pub backoff: Seconds,
    pub backoff_max: Seconds,
}

impl SignInPolicy {
    pub fn from_settings(settings: &Settings) -> Self {
        let s = &settings.limits;
        Self {
            free_failures: s.sign_in_free_failures,
            backoff: s.sign_in_backoff,
            backoff_max: s.sign_in_backoff_max,
        }
    }

    /// Until when a username with `failures` failures, the last at `last_failure_at`, is blocked.
    pub fn blocked_until(&self, failures: i64, last_failure_at: i64) -> i64 {
        if failures < self.free_failures || self.backoff.is_zero() {
            return 0;
        }
        let doublings = (failures - self.free_failures).min(40) as u32;
        let wait = self
            .backoff
            .get()
            .saturating_mul(1_i64 << doublings)
            .min(self.backoff_max.get());
        last_failure_at.saturating_add(wait)
    }
}

/// The key of a username in `sign_in_throttles`: an HMAC under the key secret, so the table holds
/// no usernames (nor the passwords people type into the username field).
pub struct UsernameKeys(hmac::Key);

impl UsernameKeys {
    pub fn new(secret: &KeySecret) -> Self {
        Self(hmac::Key::new(
            hmac::HMAC_SHA256,
            &derive_key(secret, b"sign-in throttle username"),
        ))
    }

    pub fn key(&self, username: &str) -> String {
        hex(hmac::sign(&self.0, username.as_bytes()).as_ref())
    }
}

impl std::fmt::Debug for UsernameKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UsernameKeys([redacted])")
    }
}

/// Record a failed sign-in for `username_key` (and, for a known user, its security event) in one
/// transaction. Returns until when the username is now blocked.
pub fn record_failure(
    conn: &mut DbConnection,
    username_key: &str,
    user: Option<&UserRow>,
    origin: &Origin,
    now: i64,
    policy: &SignInPolicy,
) -> Result<i64, StoreError> {
    conn.transaction(|c| {
        let mut row = sign_in_throttles::count_failure(c, username_key, now)?;
        let previous_failure_at = row.last_failure_at;
        if previous_failure_at < now - FORGET_AFTER {
            row.failures = 1;
        }
        row.last_failure_at = now;
        row.blocked_until = policy.blocked_until(row.failures, now);
        if let Some(user) = user {
            record_event(c, &mut row, previous_failure_at, user, origin, now)?;
        }
        sign_in_throttles::save(c, &row)?;
        Ok(row.blocked_until)
    })
}

/// Add this failure to the run's event, or start a new event when the run went quiet, is a day
/// old, or its event is gone.
fn record_event(
    conn: &mut DbConnection,
    row: &mut ThrottleRow,
    previous_failure_at: i64,
    user: &UserRow,
    origin: &Origin,
    now: i64,
) -> Result<(), StoreError> {
    let goes_on = row.event_id.is_some()
        && row.event_failures > 0
        && previous_failure_at >= now - EVENT_QUIET
        && row.event_started_at >= now - EVENT_SPAN;
    if goes_on {
        row.event_failures += 1;
        row.event_ips_vary |= row.event_ip != origin.ip;
    } else {
        row.event_started_at = now;
        row.event_failures = 1;
        row.event_ips_vary = false;
    }
    row.event_ip = origin.ip.clone();
    let mut event = AuditEventRow::new(now, "sign_in_failed", event_detail(row))
        .for_user(&user.id)
        .from_origin(origin);
    if goes_on && let Some(id) = &row.event_id {
        event.id = id.clone();
        if audit_events::update_in_place(conn, &event)? {
            return Ok(());
        }
    }
    audit_events::insert(conn, &event)?;
    row.event_id = Some(event.id);
    Ok(())
}

/// "3 failed sign-ins with a wrong password since 2026-12-02 12:03 UTC"; the account page adds
/// "(from <latest address>)".
fn event_detail(row: &ThrottleRow) -> String {
    let count = match row.event_failures {
        1 => "1 failed sign-in".to_string(),
        n => format!("{n} failed sign-ins"),
    };
    let since = crate::web::format_time(row.event_started_at);
    if row.event_ips_vary {
        format!(
            "{count} with a wrong password since {since}, from more than one address; the latest"
        )
    } else {
        format!("{count} with a wrong password since {since}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_after_the_free_failures_and_is_capped() {
        let p = SignInPolicy {
            free_failures: 5,
            backoff: Seconds::new(30),
            backoff_max: Seconds::new(300),
        };
        let waits: Vec<i64> = (1..=10).map(|n| p.blocked_until(n, 1000) - 1000).collect();
        assert_eq!(
            waits,
            [-1000, -1000, -1000, -1000, 30, 60, 120, 240, 300, 300]
        );
        assert_eq!(p.blocked_until(i64::MAX, 0), 300, "no overflow");
        let off = SignInPolicy {
            backoff: Seconds::ZERO,
            ..p
        };
        assert_eq!(off.blocked_until(100, 1000), 0);
    }
}
