//! Abuse limits: in-memory rate limits per client address and per client (this node only), the
//! per-username sign-in back-off kept in the database (shared by every node), and the client
//! address behind trusted proxies that all of them key on.

pub mod client_ip;
pub mod endpoint;
pub mod keyed;
pub mod settings;
pub mod sign_in;

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::Quota;

use crate::configuration::{Settings, parse_duration};
use crate::domain::Seconds;
use keyed::{KeyedLimiter, RetryAfter};

/// A configured limit: at most `count` events in a burst, and `count` more every `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub per: Duration,
}

impl RateLimit {
    /// `20/1m` (20 per minute), `10/1h`, `50000/1s`; `off` turns the limit off (`None`).
    pub fn parse(name: &str, raw: &str) -> Result<Option<Self>, String> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let bad = || format!("{name}: `{raw}` is not a rate like 20/1m or 10/1h (or off)");
        let (count, per) = raw.split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let per = parse_duration(name, per).map_err(|e| e.0)?;
        if count == 0 || per <= Seconds::ZERO {
            return Err(format!(
                "{name}: `{raw}` must allow at least 1 per a positive duration (or use off)"
            ));
        }
        if per > Seconds::new(86_400) {
            return Err(format!("{name}: `{raw}`: the period must be at most 1d"));
        }
        Ok(Some(Self {
            count,
            per: per.to_std(),
        }))
    }

    /// governor's quota: a burst of `count`, one event back every `per / count`.
    fn quota(self) -> Quota {
        let count = NonZeroU32::new(self.count).unwrap_or(NonZeroU32::MIN);
        Quota::with_period(self.per / count.get())
            .unwrap_or_else(|| Quota::per_second(count))
            .allow_burst(count)
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}s", self.count, self.per.as_secs())
    }
}

/// What a per-address limit keys on: an IPv4 address, or the /64 prefix of an IPv6 address (one
/// subscriber usually holds a whole /64, so single IPv6 addresses cost an attacker nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKey {
    V4(u32),
    V6(u64),
}

impl From<IpAddr> for AddressKey {
    fn from(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::V4(u32::from(v4)),
            IpAddr::V6(v6) => Self::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

/// Which limit refused a request (the `limit` label of the metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    SignInBackoff,
    SignInAddressFailures,
    ClientAuthFailures,
    ClientAuthAddressFailures,
    AddressRequests,
}

impl LimitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignInBackoff => "sign_in_backoff",
            Self::SignInAddressFailures => "sign_in_ip_failures",
            Self::ClientAuthFailures => "client_auth_failures",
            Self::ClientAuthAddressFailures => "client_auth_ip_failures",
            Self::AddressRequests => "oauth_ip_requests",
        }
    }
}

/// This node's in-memory limiters (`None` = that limit is off).
pub struct Limits {
    sign_in_address_failures: Option<KeyedLimiter<AddressKey>>,
    client_auth_failures: Option<KeyedLimiter<(u64, AddressKey)>>,
    client_auth_address_failures: Option<KeyedLimiter<AddressKey>>,
    address_requests: Option<KeyedLimiter<AddressKey>>,
    /// Client ids are attacker-chosen strings: the limiter keeps a keyed hash of them instead.
    client_id_hasher: RandomState,
}

impl fmt::Debug for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Limits")
    }
}

/// One key of an address (or of a client at an address) that failed, to charge afterwards.
#[derive(Debug, Clone, Copy)]
pub struct ClientAttempt {
    client: u64,
    address: Option<AddressKey>,
}

impl Limits {
    pub fn from_settings(settings: &Settings) -> Self {
        let s = &settings.limits;
        fn make<K: std::hash::Hash + Eq + Clone>(
            limit: Option<RateLimit>,
            max_keys: usize,
        ) -> Option<KeyedLimiter<K>> {
            limit.map(|l| KeyedLimiter::new(l.quota(), max_keys))
        }
        let max = s.rate_limit_max_keys;
        Self {
            sign_in_address_failures: make(s.sign_in_ip_failures, max),
            client_auth_failures: make(s.client_auth_failures, max),
            client_auth_address_failures: make(s.client_auth_ip_failures, max),
            address_requests: make(s.oauth_ip_requests, max),
            client_id_hasher: RandomState::new(),
        }
    }

    /// Whether this address may try to sign in (it has not failed too often).
    pub fn sign_in_allowed(&self, address: Option<IpAddr>) -> Result<(), RetryAfter> {
        peek(
            &self.sign_in_address_failures,
            address.map(AddressKey::from),
        )
    }

    /// A failed sign-in from this address.
    pub fn sign_in_failed(&self, address: Option<IpAddr>) {
        charge(
            &self.sign_in_address_failures,
            address.map(AddressKey::from),
        );
    }

    /// The attempt of `client_id` from `address` to authenticate: refused (with the longer wait)
    /// when the pair or the address has failed too often.
    pub fn client_auth_allowed(
        &self,
        client_id: &str,
        address: Option<IpAddr>,
    ) -> Result<ClientAttempt, (LimitKind, RetryAfter)> {
        let attempt = ClientAttempt {
            client: self.client_id_hasher.hash_one(client_id),
            address: address.map(AddressKey::from),
        };
        let pair = attempt.address.map(|a| (attempt.client, a));
        let by_pair = peek(&self.client_auth_failures, pair)
            .err()
            .map(|w| (LimitKind::ClientAuthFailures, w));
        let by_address = peek(&self.client_auth_address_failures, attempt.address)
            .err()
            .map(|w| (LimitKind::ClientAuthAddressFailures, w));
        match by_pair
            .into_iter()
            .chain(by_address)
            .max_by_key(|(_, w)| *w)
        {
            Some(refused) => Err(refused),
            None => Ok(attempt),
        }
    }

    /// The attempt failed to authenticate.
    pub fn client_auth_failed(&self, attempt: ClientAttempt) {
        let pair = attempt.address.map(|a| (attempt.client, a));
        charge(&self.client_auth_failures, pair);
        charge(&self.client_auth_address_failures, attempt.address);
    }

    /// One request to an OAuth endpoint from this address.
    pub fn request_allowed(&self, address: Option<IpAddr>) -> Result<(), RetryAfter> {
        match (&self.address_requests, address) {
            (Some(l), Some(a)) => l.charge(&AddressKey::from(a)),
            _ => Ok(()),
        }
    }

    /// Keys held by each limiter (a gauge on /metrics).
    pub fn tracked_keys(&self) -> Vec<(LimitKind, usize)> {
        let mut out = Vec::new();
        if let Some(l) = &self.sign_in_address_failures {
            out.push((LimitKind::SignInAddressFailures, l.tracked_keys()));
        }
        if let Some(l) = &self.client_auth_failures {
            out.push((LimitKind::ClientAuthFailures, l.tracked_keys()));
        }
        if let Some(l) = &self.client_auth_address_failures {
            out.push((LimitKind::ClientAuthAddressFailures, l.tracked_keys()));
        }
        if let Some(l) = &self.address_requests {
            out.push((LimitKind::AddressRequests, l.tracked_keys()));
        }
        out
    }
}

fn peek<K: std::hash::Hash + Eq + Clone>(
    limiter: &Option<KeyedLimiter<K>>,
    key: Option<K>,
) -> Result<(), RetryAfter> {
    match (limiter, key) {
        (Some(l), Some(k)) => l.peek(&k),
        _ => Ok(()),
    }
}

fn charge<K: std::hash::Hash + Eq + Clone>(limiter: &Option<KeyedLimiter<K>>, key: Option<K>) {
    if let (Some(l), Some(k)) = (limiter, key) {
        // Going over the limit here refuses the next attempt; this one has already been answered.
        let _ = l.charge(&k);
    }
}

/// "30 seconds", "1 minute", "6 minutes", "2 hours": when to try again, in words.
pub fn in_words(seconds: u64) -> String {
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match seconds {
        0..=59 => plural(seconds.max(1), "second"),
        60..=3599 => plural(seconds.div_ceil(60), "minute"),
        _ => plural(seconds.div_ceil(3600), "hour"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!(
            RateLimit::parse("x", "20/1m"),
            Ok(Some(RateLimit {
                count: 20,
                per: Duration::from_secs(60)
            }))
        );
        assert_eq!(RateLimit::parse("x", "OFF"), Ok(None));
        for bad in ["20", "0/1m", "20/0", "x/1m", "20/1w", "5/2d", ""] {
            assert!(RateLimit::parse("x", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ipv6_addresses_share_their_64() {
        let a = AddressKey::from(
            "2001:db8:1:2::1"
                .parse::<IpAddr>()
                .unwrap_or(IpAddr::from([0; 4])),
        );
        let b = AddressKey::from(
            "2001:db8:1:2:ffff::9"
                .parse::<IpAddr>()
                .unwrap_or(IpAddr::from([0; 4])),
        );
        let c = AddressKey::from(
            "2001:db8:1:3::1"
                .parse::<IpAddr>()
                .unwrap_or(IpAddr::from([0; 4])),
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn waits_in_words() {
        assert_eq!(in_words(1), "1 second");
        assert_eq!(in_words(30), "30 seconds");
        assert_eq!(in_words(60), "1 minute");
        assert_eq!(in_words(61), "2 minutes");
        assert_eq!(in_words(3600), "1 hour");
    }
}
