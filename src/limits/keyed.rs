//! A keyed GCRA rate limiter (governor) with two additions the abuse limits need:
//!
//! * it can be *consulted* without being charged (`peek`), so a limit on failures is checked
//!   before an attempt and charged only when the attempt fails;
//! * it tracks at most `max_keys` keys, so made-up client ids or random addresses cannot grow
//!   memory without bound. When the table is full and nothing in it is stale, a new key is charged
//!   to one shared overflow state instead of getting its own.
//!
//! Both live in a governor `StateStore` (governor's extension point); the rate decisions and wait
//! times are governor's.

use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use governor::clock::{Clock, MonotonicClock};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{NotUntil, Quota, RateLimiter};

/// A key as the store sees it: with `charge: false` the store reports governor's decision
/// without storing the new state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Probe<K> {
    key: K,
    charge: bool,
}

/// One GCRA state per key (at most `max_keys`), plus the overflow state.
pub struct CappedStore<K: Hash + Eq> {
    states: DashMap<K, InMemoryState>,
    overflow: InMemoryState,
    max_keys: usize,
}

/// The theoretical arrival time of a state, read by a measurement that always declines.
fn arrival_of(state: &InMemoryState) -> Option<Nanos> {
    state
        .measure_and_replace(&NotKeyed::NonKey, Err::<((), Nanos), _>)
        .err()
        .flatten()
}

impl<K: Hash + Eq + Clone> StateStore for CappedStore<K> {
    type Key = Probe<K>;

    fn measure_and_replace<T, F, E>(&self, probe: &Probe<K>, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if !probe.charge {
            // An untracked key (never charged, or charged to the overflow) is as good as fresh.
            let arrival = self.states.get(&probe.key).and_then(|s| arrival_of(&s));
            return f(arrival).map(|(decision, _)| decision);
        }
        if let Some(state) = self.states.get(&probe.key) {
            return state.measure_and_replace(&NotKeyed::NonKey, f);
        }
        if self.states.len() >= self.max_keys {
            return self.overflow.measure_and_replace(&NotKeyed::NonKey, f);
        }
        let state = self.states.entry(probe.key.clone()).or_default();
        state.measure_and_replace(&NotKeyed::NonKey, f)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<Probe<K>> for CappedStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        self.states
            .retain(|_, s| arrival_of(s).is_some_and(|tat| tat > drop_below));
    }

    fn shrink_to_fit(&self) {
        self.states.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.states.len()
    }

    fn is_empty(&self) -> bool {
        self.states.is_empty()
    }
}

/// How long to wait before the limited thing may happen again, in whole seconds (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RetryAfter(pub u64);

impl RetryAfter {
    pub fn from_duration(d: Duration) -> Self {
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        Self(secs.max(1))
    }
}

/// Stale keys are swept at most this often when the table is full.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

type Limiter<K> = RateLimiter<Probe<K>, CappedStore<K>, MonotonicClock, NoOpMiddleware<Instant>>;

pub struct KeyedLimiter<K: Hash + Eq + Clone> {
    limiter: Limiter<K>,
    max_keys: usize,
    last_sweep: Mutex<Option<Instant>>,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    pub fn new(quota: Quota, max_keys: usize) -> Self {
        let store = CappedStore {
            states: DashMap::new(),
            overflow: InMemoryState::default(),
            max_keys,
        };
        Self {
            limiter: RateLimiter::new(quota, store, MonotonicClock),
            max_keys,
            last_sweep: Mutex::new(None),
        }
    }

    /// Whether one more event for `key` would be within the limit now. Records nothing.
    pub fn peek(&self, key: &K) -> Result<(), RetryAfter> {
        let probe = Probe {
            key: key.clone(),
            charge: false,
        };
        self.limiter
            .check_key(&probe)
            .map_err(|n| self.retry_after(&n))
    }

    /// Record one event for `key`; `Err` when it went over the limit.
    pub fn charge(&self, key: &K) -> Result<(), RetryAfter> {
        if self.limiter.len() >= self.max_keys {
            self.sweep();
        }
        let probe = Probe {
            key: key.clone(),
            charge: true,
        };
        self.limiter
            .check_key(&probe)
            .map_err(|n| self.retry_after(&n))
    }

    /// How many keys have their own state (never more than the cap).
    pub fn tracked_keys(&self) -> usize {
        self.limiter.len()
    }

    /// Drop the keys whose state is no different from a fresh one, at most once a second.
    fn sweep(&self) {
        let Ok(mut last) = self.last_sweep.lock() else {
            return;
        };
        if last.is_some_and(|t| t.elapsed() < SWEEP_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    fn retry_after(&self, not_until: &NotUntil<Instant>) -> RetryAfter {
        RetryAfter::from_duration(not_until.wait_time_from(self.limiter.clock().now()))
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    fn quota(n: u32, per: Duration) -> Quota {
        let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        Quota::with_period(per / n.get())
            .unwrap_or_else(|| Quota::per_second(n))
            .allow_burst(n)
    }

    #[test]
    fn peeking_does_not_charge() {
        let l = KeyedLimiter::new(quota(2, Duration::from_secs(3600)), 100);
        for _ in 0..10 {
            assert!(l.peek(&"a").is_ok());
        }
        assert_eq!(l.tracked_keys(), 0, "a peek stores nothing");
        assert!(l.charge(&"a").is_ok());
        assert!(l.charge(&"a").is_ok());
        let wait = l.peek(&"a").err();
        assert!(wait.is_some_and(|w| w.0 > 1000), "{wait:?}");
        assert!(l.charge(&"a").is_err());
        assert!(l.peek(&"b").is_ok(), "keys are independent");
    }

    #[test]
    fn the_table_never_holds_more_than_the_cap() {
        let l = KeyedLimiter::new(quota(5, Duration::from_secs(3600)), 50);
        for i in 0..5_000 {
            let _ = l.charge(&i);
        }
        assert!(l.tracked_keys() <= 50, "{}", l.tracked_keys());
        // New keys beyond the cap share the overflow state: its budget runs out too.
        assert!(l.charge(&10_000).is_err());
        // Tracked keys keep their own state.
        assert!(l.peek(&0).is_ok());
    }
}
