//! lineage's revocation feed (`GET {issuer}/revocations`), polled in the background so a revoked
//! device, a password change, a revoked access token or a deleted client reaches this API within
//! one poll interval, without a call to the authorization server per request.
//!
//! Each poll pages on from the cursor of the last page it read until the feed says nothing more
//! is waiting. The server numbers entries in commit order, so the cursor never skips a revocation
//! that committed late. The feed states how long it keeps entries (the server's access-token
//! lifetime plus skew); entries are remembered here exactly that long.
//!
//! Availability over freshness: when the feed cannot be read, tokens keep validating on signature
//! and expiry alone and a warning is logged; revocations already received keep applying. The
//! window in which a revoked token still works is then bounded by the token's own lifetime.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, ETAG, HeaderValue, IF_NONE_MATCH};
use serde::Deserialize;

use crate::claims::AccessClaims;
use crate::clock::SharedClock;
use crate::error::{FeedError, TokenError};

/// How long entries are kept until the server has said: lineage's defaults (600 s + 60 s).
const DEFAULT_RETENTION: i64 = 600 + 60;

#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default)]
    families: Vec<RevokedFamily>,
    #[serde(default)]
    users: Vec<UserNotBefore>,
    #[serde(default)]
    access_tokens: Vec<RevokedAccessToken>,
    #[serde(default)]
    clients: Vec<DeletedClient>,
    cursor: String,
    #[serde(default)]
    has_more: bool,
    /// Seconds the server keeps each entry.
    retention: Option<i64>,
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

#[derive(Debug, Deserialize)]
struct RevokedAccessToken {
    jti: String,
    expires_at: i64,
}

#[derive(Debug, Deserialize)]
struct DeletedClient {
    client_id: String,
    deleted_at: i64,
}

/// What one poll brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollOutcome {
    /// Entries were read (duplicates of known ones included), over `pages` requests.
    Updated {
        families: usize,
        users: usize,
        access_tokens: usize,
        clients: usize,
        pages: usize,
    },
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
    pub revoked_access_tokens: usize,
    pub deleted_clients: usize,
    /// Seconds an entry is remembered, as the server stated it (`None` before it has).
    pub retention: Option<i64>,
}

#[derive(Default)]
struct Lists {
    /// sid → revoked_at
    families: HashMap<String, i64>,
    /// sub → not_before
    users: HashMap<String, i64>,
    /// jti → the token's exp
    access_tokens: HashMap<String, i64>,
    /// client_id → deleted_at
    clients: HashMap<String, i64>,
}

#[derive(Default)]
struct Cursor {
    after: Option<String>,
    etag: Option<String>,
}

/// This API's own client at the authorization server, which holds the `revocations` permission.
pub(crate) struct ClientCredentials {
    pub id: String,
    pub secret: String,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("id", &self.id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

impl ClientCredentials {
    /// `Authorization: Basic …`, each part form-urlencoded first (RFC 6749 §2.3.1).
    fn header(&self) -> Option<HeaderValue> {
        let pair = format!(
            "{}:{}",
            form_urlencode(&self.id),
            form_urlencode(&self.secret)
        );
        let mut value = HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(pair))).ok()?;
        value.set_sensitive(true);
        Some(value)
    }
}

/// `application/x-www-form-urlencoded` serialisation of one value.
fn form_urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

pub(crate) struct FeedOptions {
    pub uri: String,
    pub credentials: Option<ClientCredentials>,
    /// Entries asked for per request.
    pub page_limit: u32,
    /// The validator's leeway on `exp`: a revoked `jti` is remembered until its token expires.
    pub leeway: i64,
}

pub(crate) struct Revocations {
    uri: String,
    http: reqwest::Client,
    clock: SharedClock,
    authorization: Option<HeaderValue>,
    page_limit: String,
    leeway: i64,
    /// Seconds an entry is kept, as the feed last stated (`NEVER` until it has).
    retention: AtomicI64,
    lists: RwLock<Lists>,
    cursor: tokio::sync::Mutex<Cursor>,
    last_success: AtomicI64,
    failures: AtomicU32,
}

const NEVER: i64 = i64::MIN;

impl Revocations {
    pub fn new(options: FeedOptions, http: reqwest::Client, clock: SharedClock) -> Self {
        Self {
            uri: options.uri,
            http,
            clock,
            authorization: options
                .credentials
                .as_ref()
                .and_then(ClientCredentials::header),
            page_limit: options.page_limit.max(1).to_string(),
            leeway: options.leeway,
            retention: AtomicI64::new(NEVER),
            lists: RwLock::new(Lists::default()),
            cursor: tokio::sync::Mutex::new(Cursor::default()),
            last_success: AtomicI64::new(NEVER),
            failures: AtomicU32::new(0),
        }
    }

    fn read_lists(&self) -> std::sync::RwLockReadGuard<'_, Lists> {
        match self.lists.read() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn write_lists(&self) -> std::sync::RwLockWriteGuard<'_, Lists> {
        match self.lists.write() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Reject a token whose family, or itself, was revoked, that predates its user's
    /// not-before, or whose client was deleted after issuing it.
    pub fn check(&self, claims: &AccessClaims) -> Result<(), TokenError> {
        let lists = self.read_lists();
        if let Some(sid) = &claims.sid
            && lists.families.contains_key(sid)
        {
            return Err(TokenError::Revoked);
        }
        if lists.access_tokens.contains_key(&claims.jti) {
            return Err(TokenError::AccessTokenRevoked);
        }
        // Same rule as the server's introspection: valid when iat >= not_before.
        if let Some(&not_before) = lists.users.get(&claims.sub)
            && claims.iat < not_before
        {
            return Err(TokenError::IssuedBeforeUserRevocation);
        }
        // A client id may be registered again later; only tokens from before the deletion go.
        if let Some(&deleted_at) = lists.clients.get(&claims.client_id)
            && claims.iat <= deleted_at
        {
            return Err(TokenError::ClientDeleted);
        }
        Ok(())
    }

    pub fn status(&self) -> RevocationStatus {
        let lists = self.read_lists();
        let last = self.last_success.load(Ordering::Acquire);
        let retention = self.retention.load(Ordering::Acquire);
        RevocationStatus {
            last_success: (last != NEVER).then_some(last),
            revoked_families: lists.families.len(),
            users_with_not_before: lists.users.len(),
            revoked_access_tokens: lists.access_tokens.len(),
            deleted_clients: lists.clients.len(),
            retention: (retention != NEVER).then_some(retention),
        }
    }

    /// One poll: page on from the last cursor until the feed has nothing more. Concurrent calls
    /// are serialised (they share the cursor). Pages read before a failure stay applied.
    pub async fn poll(&self) -> Result<PollOutcome, FeedError> {
        let mut cursor = self.cursor.lock().await;
        let mut counts = [0usize; 4];
        let mut pages = 0;
        loop {
            let resp = self.request(&cursor, pages == 0).await?;
            let now = self.clock.now();
            match resp.status() {
                StatusCode::NOT_MODIFIED if pages == 0 => {
                    self.prune(now);
                    self.last_success.store(now, Ordering::Release);
                    return Ok(PollOutcome::NotModified);
                }
                s if s.is_success() => {}
                s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                    return Err(FeedError::Refused {
                        url: self.uri.clone(),
                        status: s.as_u16(),
                    });
                }
                s => {
                    return Err(FeedError::Status {
                        url: self.uri.clone(),
                        status: s.as_u16(),
                    });
                }
            }
            let etag = resp
                .headers()
                .get(ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = resp.bytes().await.map_err(|e| self.unreachable(&e))?;
            let page: Page = serde_json::from_slice(&body).map_err(|e| self.malformed(e))?;
            pages += 1;
            for (n, len) in counts.iter_mut().zip([
                page.families.len(),
                page.users.len(),
                page.access_tokens.len(),
                page.clients.len(),
            ]) {
                *n += len;
            }
            let moved = cursor.after.as_deref() != Some(page.cursor.as_str());
            let more = page.has_more;
            cursor.after = Some(page.cursor.clone());
            cursor.etag = etag;
            self.apply(page, now);
            if !more {
                self.last_success.store(now, Ordering::Release);
                let [families, users, access_tokens, clients] = counts;
                return Ok(PollOutcome::Updated {
                    families,
                    users,
                    access_tokens,
                    clients,
                    pages,
                });
            }
            if !moved {
                return Err(self.malformed("more entries are waiting but the cursor did not move"));
            }
        }
    }

    async fn request(&self, cursor: &Cursor, first: bool) -> Result<reqwest::Response, FeedError> {
        let mut req = self
            .http
            .get(&self.uri)
            .query(&[("limit", self.page_limit.as_str())]);
        if let Some(after) = &cursor.after {
            req = req.query(&[("after", after)]);
        }
        // Only the first page can be unchanged: later ones are new by definition.
        if first && let Some(etag) = &cursor.etag {
            req = req.header(IF_NONE_MATCH, etag);
        }
        if let Some(auth) = &self.authorization {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        req.send().await.map_err(|e| self.unreachable(&e))
    }

    fn unreachable(&self, e: &reqwest::Error) -> FeedError {
        FeedError::Unreachable {
            url: self.uri.clone(),
            reason: crate::describe(e),
        }
    }

    fn malformed(&self, reason: impl std::fmt::Display) -> FeedError {
        FeedError::Malformed {
            url: self.uri.clone(),
            reason: reason.to_string(),
        }
    }

    fn apply(&self, page: Page, now: i64) {
        if let Some(retention) = page.retention.filter(|r| *r > 0) {
            self.retention.store(retention, Ordering::Release);
        }
        let mut lists = self.write_lists();
        let latest = |map: &mut HashMap<String, i64>, key: String, at: i64| {
            let kept = map.entry(key).or_insert(at);
            *kept = (*kept).max(at);
        };
        for f in page.families {
            latest(&mut lists.families, f.sid, f.revoked_at);
        }
        for u in page.users {
            latest(&mut lists.users, u.sub, u.not_before);
        }
        for t in page.access_tokens {
            latest(&mut lists.access_tokens, t.jti, t.expires_at);
        }
        for c in page.clients {
            latest(&mut lists.clients, c.client_id, c.deleted_at);
        }
        self.prune_lists(&mut lists, now);
    }

    fn prune(&self, now: i64) {
        let mut lists = self.write_lists();
        self.prune_lists(&mut lists, now);
    }

    /// Drop entries no live token can match: what a revocation covers was issued before it, so
    /// after the retention (the server's access-token lifetime plus skew) those tokens have
    /// expired — plus the validator's leeway, for as long as it still accepts them; a revoked
    /// `jti` goes once its own token has, leeway included.
    fn prune_lists(&self, lists: &mut Lists, now: i64) {
        let retention = match self.retention.load(Ordering::Acquire) {
            NEVER => DEFAULT_RETENTION,
            r => r,
        };
        let keep_after = now.saturating_sub(retention).saturating_sub(self.leeway);
        lists.families.retain(|_, at| *at > keep_after);
        lists.users.retain(|_, at| *at > keep_after);
        lists.clients.retain(|_, at| *at > keep_after);
        let expired_by = now.saturating_sub(self.leeway);
        lists.access_tokens.retain(|_, exp| *exp > expired_by);
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
                    tracing::info!(
                        uri = %self.uri,
                        failed_polls = failed,
                        "revocation feed reachable again"
                    );
                }
            }
            Err(e) => {
                let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
                // Warn at once, then about once a minute at the default interval.
                if n == 1 || n.is_multiple_of(12) {
                    tracing::warn!(
                        error = %e,
                        consecutive_failures = n,
                        "cannot read the revocation feed; tokens are still checked for signature \
                         and expiry, but revocations made meanwhile are not seen"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::claims::Scopes;

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
            cnf: None,
            extra: Default::default(),
        }
    }

    fn revocations() -> Revocations {
        let clock: SharedClock = Arc::new(|| 1_000);
        let options = FeedOptions {
            uri: "http://unused".into(),
            credentials: None,
            page_limit: 1000,
            leeway: 10,
        };
        Revocations::new(options, reqwest::Client::new(), clock)
    }

    fn page(json: &str) -> Page {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn every_kind_of_entry_applies_then_expires_with_the_stated_retention() {
        let rev = revocations();
        rev.apply(
            page(
                r#"{"families":[{"sid":"f1","revoked_at":990}],
                "users":[{"sub":"u2","not_before":995}],
                "access_tokens":[{"jti":"j9","revoked_at":990,"expires_at":1400}],
                "clients":[{"client_id":"gone","deleted_at":996}],
                "cursor":"4","has_more":false,"retention":300}"#,
            ),
            1_000,
        );
        assert_eq!(rev.status().retention, Some(300));

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
        let by_jti = AccessClaims {
            jti: "j9".into(),
            ..claims(None, "u1", 980)
        };
        assert_eq!(rev.check(&by_jti), Err(TokenError::AccessTokenRevoked));
        let of_client = |iat| AccessClaims {
            client_id: "gone".into(),
            ..claims(None, "gone", iat)
        };
        assert_eq!(rev.check(&of_client(996)), Err(TokenError::ClientDeleted));
        // The same client id registered again afterwards issues valid tokens.
        assert_eq!(rev.check(&of_client(997)), Ok(()));

        // Memory stays bounded: entries go after the retention the server stated (not 660 s)
        // and the leeway (10 s) during which an expired token still validates…
        rev.prune(990 + 300 + 10 - 1);
        assert_eq!(
            rev.status().revoked_families,
            1,
            "kept while the leeway runs"
        );
        rev.prune(990 + 300 + 10);
        let s = rev.status();
        assert_eq!((s.revoked_families, s.users_with_not_before), (0, 1));
        assert_eq!((s.deleted_clients, s.revoked_access_tokens), (1, 1));
        rev.prune(996 + 300 + 10);
        let s = rev.status();
        assert_eq!((s.users_with_not_before, s.deleted_clients), (0, 0));
        // …and a revoked jti once its token has expired, leeway included.
        rev.prune(1400 + 10 - 1);
        assert_eq!(rev.status().revoked_access_tokens, 1);
        rev.prune(1400 + 10);
        assert_eq!(rev.status().revoked_access_tokens, 0);
        assert_eq!(rev.status().last_success, None);
    }

    #[test]
    fn credentials_are_form_urlencoded_then_base64_and_never_printed() {
        let creds = ClientCredentials {
            id: "api 1".into(),
            secret: "s+/:é".into(),
        };
        let header = creds.header().unwrap();
        assert!(header.is_sensitive());
        let encoded = header.to_str().unwrap().strip_prefix("Basic ").unwrap();
        let decoded = String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap();
        assert_eq!(decoded, "api+1:s%2B%2F%3A%C3%A9");
        assert!(!format!("{creds:?}").contains("s+/"), "{creds:?}");
    }
}
