//! The signing keys a node serves with: loaded at start-up, re-read from the database now and
//! then so a key rotated in on any node reaches every node.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use super::keys::{KeyEncryption, KeySet};
use crate::db::{Database, StoreError};
use crate::domain::Seconds;

/// How often a node re-reads the signing keys (to pick up `lineage keys rotate` from any node).
pub const KEY_RELOAD_SECONDS: i64 = 30;

/// The signing keys this node knows, re-read from the database every `KEY_RELOAD_SECONDS`.
pub struct KeyRing {
    set: RwLock<Arc<KeySet>>,
    loaded_at: AtomicI64,
    reloading: tokio::sync::Mutex<()>,
    forced: std::sync::Mutex<Option<std::time::Instant>>,
    enc: Arc<KeyEncryption>,
    max_token_ttl: Seconds,
}

impl KeyRing {
    pub fn new(
        set: KeySet,
        loaded_at: i64,
        enc: Arc<KeyEncryption>,
        max_token_ttl: Seconds,
    ) -> Self {
        Self {
            set: RwLock::new(Arc::new(set)),
            loaded_at: AtomicI64::new(loaded_at),
            reloading: tokio::sync::Mutex::new(()),
            forced: std::sync::Mutex::new(None),
            enc,
            max_token_ttl,
        }
    }

    fn snapshot(&self) -> Arc<KeySet> {
        match self.set.read() {
            Ok(s) => Arc::clone(&s),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The current key set, re-read first when it is older than the reload interval. If the
    /// database cannot be read, the keys already known keep serving.
    pub async fn current(&self, db: &Database, now: i64) -> Arc<KeySet> {
        if now - self.loaded_at.load(Ordering::Acquire) < KEY_RELOAD_SECONDS {
            return self.snapshot();
        }
        let _guard = self.reloading.lock().await;
        if now - self.loaded_at.load(Ordering::Acquire) < KEY_RELOAD_SECONDS {
            return self.snapshot();
        }
        match self.reload(db, now).await {
            Ok(set) => set,
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "could not re-read signing keys; serving the ones already loaded"
                );
                self.snapshot()
            }
        }
    }

    /// The key set that can check `token`: re-read at once when the token names a key this node
    /// has not loaded yet (rotated in by another node).
    pub async fn for_token(
        &self,
        db: &Database,
        token: &str,
        now: i64,
    ) -> Result<Arc<KeySet>, StoreError> {
        let keys = self.current(db, now).await;
        match super::jwt::kid_of(token) {
            Some(kid) if keys.get(&kid).is_none() && self.may_force_reload() => {
                self.reload(db, now).await
            }
            _ => Ok(keys),
        }
    }

    /// Forced re-reads happen at most once a second (real time), so tokens with made-up key ids
    /// cannot turn every request into a database read.
    fn may_force_reload(&self) -> bool {
        let Ok(mut last) = self.forced.lock() else {
            return false;
        };
        let due = last.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(1));
        if due {
            *last = Some(std::time::Instant::now());
        }
        due
    }

    pub async fn reload(&self, db: &Database, now: i64) -> Result<Arc<KeySet>, StoreError> {
        let previous = self.snapshot();
        let enc = Arc::clone(&self.enc);
        let ttl = self.max_token_ttl;
        let set = db
            .read(move |c| KeySet::load(c, &enc, Some(&previous), now, ttl))
            .await?;
        let set = Arc::new(set);
        match self.set.write() {
            Ok(mut s) => *s = Arc::clone(&set),
            Err(poisoned) => *poisoned.into_inner() = Arc::clone(&set),
        }
        self.loaded_at.store(now, Ordering::Release);
        Ok(set)
    }
}
