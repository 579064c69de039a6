//! A length of time in whole seconds, kept apart from the unix timestamps (`i64` seconds) it is
//! added to: a call that swaps `now` and a lifetime no longer compiles.

use std::fmt;
use std::ops::{Add, Sub};

/// A duration in whole seconds: a lifetime, an interval, a grace period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Seconds(i64);

impl Seconds {
    pub const ZERO: Seconds = Seconds(0);

    pub const fn new(seconds: i64) -> Self {
        Self(seconds)
    }

    pub const fn get(self) -> i64 {
        self.0
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// For timers and `Duration`-taking APIs; a negative length counts as none.
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::try_from(self.0).unwrap_or(0))
    }
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0)
    }
}

impl From<Seconds> for i64 {
    fn from(s: Seconds) -> i64 {
        s.0
    }
}

impl Add for Seconds {
    type Output = Seconds;
    fn add(self, rhs: Seconds) -> Seconds {
        Seconds(self.0 + rhs.0)
    }
}

/// A timestamp plus a duration is a timestamp.
impl Add<Seconds> for i64 {
    type Output = i64;
    fn add(self, rhs: Seconds) -> i64 {
        self + rhs.0
    }
}

/// A timestamp less a duration is a timestamp.
impl Sub<Seconds> for i64 {
    type Output = i64;
    fn sub(self, rhs: Seconds) -> i64 {
        self - rhs.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timestamp_moves_by_a_duration() {
        let ttl = Seconds::new(600);
        assert_eq!(1_000 + ttl, 1_600);
        assert_eq!(1_000 - ttl, 400);
        assert_eq!(ttl.to_string(), "600s");
        assert_eq!(ttl.get(), 600);
        assert!(Seconds::ZERO < ttl);
        assert_eq!(Seconds::new(-1).to_std(), std::time::Duration::ZERO);
    }
}
