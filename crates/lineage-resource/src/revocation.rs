//! lineage's revocation feed (`GET {issuer}/revocations?since=T`), polled in the background so
//! a revoked device or a password change reaches this API within one poll interval, without a
//! call to the authorization server per request.
//!
//! Availability over freshness: when the feed cannot be read, tokens keep validating on signature
//! and expiry alone and a warning is logged; revocations already received keep applying. The
//! window in which a revoked token still works is then bounded by the token's own lifetime.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ETAG, IF_NONE_MATCH};
use serde::Deserialize;

use crate::claims::AccessClaims;
use crate::clock::SharedClock;
use crate::error::{FeedError, TokenError};

#[derive(Debug, Deserialize)]
struct Feed {
    #[serde(default)]
    families: Vec<RevokedFamily>,
    #[serde(default)]
    users: Vec<UserNotBefore>,
    now: i64,
}

#[derive(Debug, Deserialize)]
struct RevokedFamily {
    sid: String,
    revoked_at: i64,
}

#[derive(Debug, Deserialize)]
struct UserNotBefore {
    sub: String,
    not_before: i64,
}

/// What one poll brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollOutcome {
    /// New entries were read (duplicates of known ones included).
    Updated { families: usize, users: usize },
    /// 304: nothing new since the last poll.
    NotModified,
}

/// What the validator currently knows from the feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevocationStatus {
    /// Clock seconds of the last successful poll, `None` if none has succeeded yet.
    pub last_success: Option<i64>,
    pub revoked_families: usize,
    pub users_with_not_before: usize,
}

#[derive(Default)]
struct Lists {
    /// sid → revoked_at
    families: HashMap<String, i64>,
    /// sub → not_before
    users: HashMap<String, i64>,
}

struct Cursor {
    since: Option<i64>,
    etag: Option<String>,
}

pub(crate) struct Revocations {
    uri: String,
    http: reqwest::Client,
    clock: SharedClock,
    /// Seconds an entry is kept: the longest an access token issued before it can live.
    retention: i64,
    /// Seconds subtracted from the feed's `now` for the next `since`, covering commits that
    /// landed while the previous answer was being built.
    overlap: i64,
    lists: RwLock<Lists>,
    cursor: tokio::sync::Mutex<Cursor>,
    last_success: AtomicI64,
    failures: AtomicU32,
}

const NEVER: i64 = i64::MIN;

impl Revocations {
    pub fn new(
        uri: String,
        http: reqwest::Client,
        clock: SharedClock,
        retention: i64,
        overlap: i64,
    ) -> Self {
        Self {
            uri,
            http,
            clock,
            retention,
            overlap,
            lists: RwLock::new(Lists::default()),
            cursor: tokio::sync::Mutex::new(Cursor {
                since: None,
                etag: None,
            }),
            last_success: AtomicI64::new(NEVER),
            failures: AtomicU32::new(0),
        }
    }

    /// Reject a token whose family was revoked or that predates its user's not-before.
    pub fn check(&self, claims: &AccessClaims) -> Result<(), TokenError> {
        let lists = match self.lists.read() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(sid) = &claims.sid
            && lists.families.contains_key(sid)
        {
            return Err(TokenError::Revoked);
        }
        // Same rule as the server's introspection: valid when iat >= not_before.
        if let Some(&not_before) = lists.users.get(&claims.sub)
            && claims.iat < not_before
        {
            return Err(TokenError::IssuedBeforeUserRevocation);
        }
        Ok(())
    }

    pub fn status(&self) -> RevocationStatus {
        let (families, users) = match self.lists.read() {
            Ok(l) => (l.families.len(), l.users.len()),
            Err(p) => {
                let l = p.into_inner();
                (l.families.len(), l.users.len())
            }
        };
        let last = self.last_success.load(Ordering::Acquire);
        RevocationStatus {
            last_success: (last != NEVER).then_some(last),
            revoked_families: families,
            users_with_not_before: users,
        }
    }

    /// One poll of the feed. Concurrent calls are serialised (they share the cursor).
    pub async fn poll(&self) -> Result<PollOutcome, FeedError> {
        let mut cursor = self.cursor.lock().await;
        let mut req = self.http.get(&self.uri);
        if let Some(since) = cursor.since {
            req = req.query(&[("since", since)]);
        }
        if let Some(etag) = &cursor.etag {
            req = req.header(IF_NONE_MATCH, etag);
        }
        let unreachable = |e: reqwest::Error| FeedError::Unreachable {
            url: self.uri.clone(),
            reason: crate::describe(&e),
        };
        let resp = req.send().await.map_err(unreachable)?;
        let now = self.clock.now();
        match resp.status() {
            StatusCode::NOT_MODIFIED => {
                self.prune(now);
                self.last_success.store(now, Ordering::Release);
                Ok(PollOutcome::NotModified)
            }
            s if s.is_success() => {
                let etag = resp
                    .headers()
                    .get(ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let body = resp.bytes().await.map_err(unreachable)?;
                let feed: Feed =
                    serde_json::from_slice(&body).map_err(|e| FeedError::Malformed {
                        url: self.uri.clone(),
                        reason: e.to_string(),
                    })?;
                let outcome = PollOutcome::Updated {
                    families: feed.families.len(),
                    users: feed.users.len(),
                };
                cursor.since = Some(feed.now.saturating_sub(self.overlap));
                cursor.etag = etag;
                self.apply(feed, now);
                self.last_success.store(now, Ordering::Release);
                Ok(outcome)
            }
            s => Err(FeedError::Status {
                url: self.uri.clone(),
                status: s.as_u16(),
            }),
        }
    }

    fn apply(&self, feed: Feed, now: i64) {
        let mut lists = match self.lists.write() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        for f in feed.families {
            let at = lists.families.entry(f.sid).or_insert(f.revoked_at);
            *at = (*at).max(f.revoked_at);
        }
        for u in feed.users {
            let nb = lists.users.entry(u.sub).or_insert(u.not_before);
            *nb = (*nb).max(u.not_before);
        }
        prune_lists(&mut lists, now, self.retention);
    }

    fn prune(&self, now: i64) {
        let mut lists = match self.lists.write() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        prune_lists(&mut lists, now, self.retention);
    }

    /// Poll every `every` until the task is aborted (when the last `Validator` clone drops).
    pub async fn run(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate; `build` has just polled.
        tick.tick().await;
        loop {
            tick.tick().await;
            self.poll_and_log().await;
        }
    }

    pub async fn poll_and_log(&self) {
        match self.poll().await {
            Ok(_) => {
                let failed = self.failures.swap(0, Ordering::AcqRel);
                if failed > 0 {
                    tracing::info!(uri = %self.uri, failed_polls = failed, "revocation feed reachable again");
                }
            }
            Err(e) => {
                let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
                // Warn at once, then about once a minute at the default interval.
                if n == 1 || n.is_multiple_of(12) {
                    tracing::warn!(
                        error = %e,
                        consecutive_failures = n,
                        "cannot read the revocation feed; tokens are still checked for signature and expiry, \
                         but revocations made meanwhile are not seen"
                    );
                }
            }
        }
    }
}

/// Drop entries no live token can match: everything a revocation covers was issued before it,
/// so after `retention` (the longest access-token lifetime plus skew) those tokens have expired.
fn prune_lists(lists: &mut Lists, now: i64, retention: i64) {
    let keep_after = now.saturating_sub(retention);
    lists.families.retain(|_, at| *at > keep_after);
    lists.users.retain(|_, at| *at > keep_after);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::claims::Scopes;
    use std::sync::atomic::AtomicI64;

    fn claims(sid: Option<&str>, sub: &str, iat: i64) -> AccessClaims {
        AccessClaims {
            iss: "i".into(),
            sub: sub.into(),
            aud: vec!["a".into()],
            client_id: "c".into(),
            scopes: Scopes::default(),
            sid: sid.map(str::to_owned),
            jti: "j".into(),
            exp: iat + 600,
            iat,
            nbf: Some(iat),
            extra: Default::default(),
        }
    }

    #[test]
    fn revoked_families_and_user_not_before_apply_then_expire() {
        let time = Arc::new(AtomicI64::new(1_000));
        let t = Arc::clone(&time);
        let clock: SharedClock = Arc::new(move || t.load(Ordering::SeqCst));
        let rev = Revocations::new(
            "http://unused".into(),
            reqwest::Client::new(),
            clock,
            660,
            5,
        );
        let feed: Feed = serde_json::from_str(
            r#"{"families":[{"sid":"f1","revoked_at":990}],"users":[{"sub":"u2","not_before":995}],"now":1000}"#,
        )
        .unwrap();
        rev.apply(feed, 1_000);

        assert_eq!(
            rev.check(&claims(Some("f1"), "u1", 980)),
            Err(TokenError::Revoked)
        );
        assert_eq!(rev.check(&claims(Some("f2"), "u1", 980)), Ok(()));
        assert_eq!(
            rev.check(&claims(None, "u2", 994)),
            Err(TokenError::IssuedBeforeUserRevocation)
        );
        assert_eq!(rev.check(&claims(None, "u2", 995)), Ok(()));
        assert_eq!(rev.status().revoked_families, 1);

        // Memory stays bounded: once every token they could match has expired, entries go.
        rev.prune(990 + 660);
        assert_eq!(rev.status().revoked_families, 0);
        assert_eq!(rev.status().users_with_not_before, 1);
        rev.prune(995 + 660);
        assert_eq!(rev.status().users_with_not_before, 0);
        assert_eq!(rev.status().last_success, None);
    }
}
