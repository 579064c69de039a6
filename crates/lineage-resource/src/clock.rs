//! Time as a dependency: every expiry rule reads `now` from a [`Clock`], so tests can move time
//! instead of sleeping.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of unix seconds.
///
/// Any `Fn() -> i64 + Send + Sync` is a clock, so a test can share its own manual clock with
/// `builder.clock(move || manual.now())`.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}

impl<F> Clock for F
where
    F: Fn() -> i64 + Send + Sync + 'static,
{
    fn now(&self) -> i64 {
        self()
    }
}

pub(crate) type SharedClock = Arc<dyn Clock>;
