//! Garbage collection: ended refresh families (and their tokens), expired denylist entries,
//! revocation-feed entries past their retention, old audit events and finished back-channel
//! logout deliveries are deleted in bounded batches, so tables stay proportional to live sessions.

use diesel::Connection;
use serde::Serialize;

use crate::db::models::{
    audit_events, auth_codes, browser_sessions, logout_deliveries, refresh_families,
    refresh_tokens, revocation_feed, revoked_access_tokens, sign_in_throttles,
};
use crate::db::{Database, DbConnection, StoreError};
use crate::domain::Seconds;
use crate::tokens::keys::RETIRED_KEY_SKEW;

/// Rows deleted per statement: keeps each transaction short next to live traffic.
pub const BATCH: i64 = 1000;
/// Security events are kept this long for the account page and investigations.
pub const AUDIT_RETENTION: Seconds = Seconds::new(90 * 86_400);
/// Used and expired authorization codes are kept this long, so a replayed code still revokes the
/// family it started.
pub const CODE_RETENTION: Seconds = Seconds::new(86_400);
/// Delivered and given-up back-channel logout tokens are kept this long, so `lineage client show`
/// counts a week of them and the last error stays readable.
pub const LOGOUT_DELIVERY_RETENTION: Seconds = Seconds::new(7 * 86_400);

#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct GcReport {
    pub families: usize,
    pub refresh_tokens: usize,
    pub revoked_access_tokens: usize,
    pub audit_events: usize,
    pub browser_sessions: usize,
    pub auth_codes: usize,
    pub revocation_feed_entries: usize,
    /// Per-username sign-in failure counts nobody added to for a day.
    pub sign_in_throttles: usize,
    /// Back-channel logout tokens delivered or given up longer ago than their retention.
    pub logout_deliveries: usize,
}

impl GcReport {
    fn total(&self) -> usize {
        self.families
            + self.refresh_tokens
            + self.revoked_access_tokens
            + self.audit_events
            + self.browser_sessions
            + self.auth_codes
            + self.revocation_feed_entries
            + self.sign_in_throttles
            + self.logout_deliveries
    }
    fn add(&mut self, o: GcReport) {
        self.families += o.families;
        self.refresh_tokens += o.refresh_tokens;
        self.revoked_access_tokens += o.revoked_access_tokens;
        self.audit_events += o.audit_events;
        self.browser_sessions += o.browser_sessions;
        self.auth_codes += o.auth_codes;
        self.revocation_feed_entries += o.revocation_feed_entries;
        self.sign_in_throttles += o.sign_in_throttles;
        self.logout_deliveries += o.logout_deliveries;
    }
}

/// One bounded batch. A family is kept until no access token it issued can still be alive
/// (it ended more than the access-token lifetime ago), so the revocation feed can still name it.
pub fn collect_batch(
    conn: &mut DbConnection,
    now: i64,
    access_token_ttl: Seconds,
) -> Result<GcReport, StoreError> {
    let before = now - access_token_ttl - RETIRED_KEY_SKEW;
    conn.transaction(|c| {
        let ids = refresh_families::ended_before(c, before, BATCH)?;
        let refresh_tokens = refresh_tokens::delete_of_families(c, &ids)?;
        let families = refresh_families::delete_many(c, &ids)?;
        let revoked_access_tokens = revoked_access_tokens::delete_expired(c, now, BATCH)?;
        let sessions = browser_sessions::delete_expired(c, now, BATCH)?;
        let codes = auth_codes::delete_expired(c, now - CODE_RETENTION, BATCH)?;
        let audit = audit_events::delete_older_than(c, now - AUDIT_RETENTION, BATCH)?;
        // Same horizon as families: no token a feed entry covers can still be alive.
        let feed = revocation_feed::delete_older_than(c, before, BATCH)?;
        let throttles = sign_in_throttles::delete_older_than(
            c,
            now - crate::limits::sign_in::FORGET_AFTER,
            BATCH,
        )?;
        let logouts =
            logout_deliveries::delete_finished_before(c, now - LOGOUT_DELIVERY_RETENTION, BATCH)?;
        Ok(GcReport {
            families,
            refresh_tokens,
            revoked_access_tokens,
            audit_events: audit,
            browser_sessions: sessions,
            auth_codes: codes,
            revocation_feed_entries: feed,
            sign_in_throttles: throttles,
            logout_deliveries: logouts,
        })
    })
}

/// Batches until nothing is left to collect.
pub fn collect_all(
    conn: &mut DbConnection,
    now: i64,
    access_token_ttl: Seconds,
) -> Result<GcReport, StoreError> {
    let mut total = GcReport::default();
    loop {
        let batch = collect_batch(conn, now, access_token_ttl)?;
        total.add(batch);
        if batch.total() == 0 {
            return Ok(total);
        }
    }
}

/// The server's background collector: one pass per interval, each batch its own transaction.
pub async fn run_periodically(
    db: Database,
    clock: crate::clock::SharedClock,
    access_token_ttl: Seconds,
    interval: std::time::Duration,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = clock.now();
        loop {
            match db
                .write(move |c| collect_batch(c, now, access_token_ttl))
                .await
            {
                Ok(r) if r.total() == 0 => break,
                Ok(r) => tracing::debug!(?r, "housekeeping batch"),
                Err(e) => {
                    tracing::warn!(error = %e, "housekeeping failed; will retry");
                    break;
                }
            }
        }
    }
}
