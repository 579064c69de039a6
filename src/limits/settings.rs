//! The settings of the abuse limits, as they come out of the layered configuration
//! (defaults < `lineage.toml` < `LINEAGE_*` < flags; see `configuration.rs`).

use super::RateLimit;
use super::client_ip::{ForwardedHeader, TrustedProxies};
use crate::configuration::parse_duration;

/// Defaults, chosen in the README's "Abuse limits" section.
pub mod defaults {
    pub const SIGN_IN_FREE_FAILURES: i64 = 5;
    pub const SIGN_IN_BACKOFF: i64 = 30;
    pub const SIGN_IN_BACKOFF_MAX: i64 = 300;
    pub const SIGN_IN_IP_FAILURES: &str = "20/2h";
    pub const CLIENT_AUTH_FAILURES: &str = "20/1m";
    pub const CLIENT_AUTH_IP_FAILURES: &str = "60/1m";
    pub const OAUTH_IP_REQUESTS: &str = "50000/1s";
    pub const RATE_LIMIT_MAX_KEYS: usize = 100_000;
    pub const PASSWORD_HASH_QUEUE: usize = 16;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSettings {
    /// Proxies whose forwarding header names the client's address (none by default).
    pub trusted_proxies: TrustedProxies,
    /// Failed sign-ins of one username before the back-off starts.
    pub sign_in_free_failures: i64,
    /// The first back-off in seconds; doubles with each further failure. 0 = no back-off.
    pub sign_in_backoff: i64,
    pub sign_in_backoff_max: i64,
    /// Failed sign-ins per client address (in memory, per node). `None` = off.
    pub sign_in_ip_failures: Option<RateLimit>,
    /// Failed client authentications per client id and address (per node).
    pub client_auth_failures: Option<RateLimit>,
    /// Failed client authentications per address, whatever the client id (per node).
    pub client_auth_ip_failures: Option<RateLimit>,
    /// Requests to /token, /revoke and /introspect per address (per node).
    pub oauth_ip_requests: Option<RateLimit>,
    /// Keys each in-memory limiter tracks at most.
    pub rate_limit_max_keys: usize,
    /// Password hashes computed at once.
    pub password_hash_workers: usize,
    /// Password hashes waiting for a worker; one more gets 503.
    pub password_hash_queue: usize,
}

fn rate(name: &str, raw: &str) -> Option<RateLimit> {
    RateLimit::parse(name, raw).ok().flatten()
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            trusted_proxies: TrustedProxies::default(),
            sign_in_free_failures: defaults::SIGN_IN_FREE_FAILURES,
            sign_in_backoff: defaults::SIGN_IN_BACKOFF,
            sign_in_backoff_max: defaults::SIGN_IN_BACKOFF_MAX,
            sign_in_ip_failures: rate("", defaults::SIGN_IN_IP_FAILURES),
            client_auth_failures: rate("", defaults::CLIENT_AUTH_FAILURES),
            client_auth_ip_failures: rate("", defaults::CLIENT_AUTH_IP_FAILURES),
            oauth_ip_requests: rate("", defaults::OAUTH_IP_REQUESTS),
            rate_limit_max_keys: defaults::RATE_LIMIT_MAX_KEYS,
            password_hash_workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            password_hash_queue: defaults::PASSWORD_HASH_QUEUE,
        }
    }
}

/// Each setting as given by a flag, the environment or the file (`None` = the default).
#[derive(Debug, Default)]
pub struct RawLimits {
    pub trusted_proxies: Option<String>,
    pub forwarded_header: Option<String>,
    pub sign_in_free_failures: Option<String>,
    pub sign_in_backoff: Option<String>,
    pub sign_in_backoff_max: Option<String>,
    pub sign_in_ip_failures: Option<String>,
    pub client_auth_failures: Option<String>,
    pub client_auth_ip_failures: Option<String>,
    pub oauth_ip_requests: Option<String>,
    pub rate_limit_max_keys: Option<String>,
    pub password_hash_workers: Option<String>,
    pub password_hash_queue: Option<String>,
}

fn count(name: &str, raw: &str, range: std::ops::RangeInclusive<i64>) -> Result<i64, String> {
    let n: i64 = raw
        .trim()
        .parse()
        .map_err(|_| format!("{name}: `{raw}` is not a whole number"))?;
    if !range.contains(&n) {
        return Err(format!(
            "{name} must be between {} and {}",
            range.start(),
            range.end()
        ));
    }
    Ok(n)
}

impl LimitSettings {
    /// Parse and check; the message names the setting.
    pub fn resolve(raw: RawLimits) -> Result<Self, String> {
        let mut s = Self::default();
        let duration = |name: &str, v: &str| parse_duration(name, v).map_err(|e| e.0);
        if let Some(v) = &raw.trusted_proxies {
            s.trusted_proxies.networks =
                TrustedProxies::parse_networks(v).map_err(|e| format!("trusted-proxies: {e}"))?;
        }
        if let Some(v) = &raw.forwarded_header {
            s.trusted_proxies.header =
                ForwardedHeader::parse(v).map_err(|e| format!("forwarded-header: {e}"))?;
        }
        if let Some(v) = &raw.sign_in_free_failures {
            s.sign_in_free_failures = count("sign-in-free-failures", v, 0..=1000)?;
        }
        if let Some(v) = &raw.sign_in_backoff {
            s.sign_in_backoff = duration("sign-in-backoff", v)?;
        }
        if let Some(v) = &raw.sign_in_backoff_max {
            s.sign_in_backoff_max = duration("sign-in-backoff-max", v)?;
        }
        for (name, value, slot) in [
            (
                "sign-in-ip-failures",
                &raw.sign_in_ip_failures,
                &mut s.sign_in_ip_failures,
            ),
            (
                "client-auth-failures",
                &raw.client_auth_failures,
                &mut s.client_auth_failures,
            ),
            (
                "client-auth-ip-failures",
                &raw.client_auth_ip_failures,
                &mut s.client_auth_ip_failures,
            ),
            (
                "oauth-ip-requests",
                &raw.oauth_ip_requests,
                &mut s.oauth_ip_requests,
            ),
        ] {
            if let Some(v) = value {
                *slot = RateLimit::parse(name, v)?;
            }
        }
        if let Some(v) = &raw.rate_limit_max_keys {
            s.rate_limit_max_keys = count("rate-limit-max-keys", v, 1..=100_000_000)? as usize;
        }
        if let Some(v) = &raw.password_hash_workers {
            s.password_hash_workers = count("password-hash-workers", v, 1..=256)? as usize;
        }
        if let Some(v) = &raw.password_hash_queue {
            s.password_hash_queue = count("password-hash-queue", v, 0..=100_000)? as usize;
        }
        s.check()?;
        Ok(s)
    }

    fn check(&self) -> Result<(), String> {
        if !(0..=86_400).contains(&self.sign_in_backoff) {
            return Err("sign-in-backoff must be between 0 and 1d".into());
        }
        if self.sign_in_backoff_max > 86_400 || self.sign_in_backoff_max < self.sign_in_backoff {
            return Err(format!(
                "sign-in-backoff-max ({}s) must be at least sign-in-backoff ({}s) and at most 1d",
                self.sign_in_backoff_max, self.sign_in_backoff
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn defaults_are_on() {
        let s = LimitSettings::resolve(RawLimits::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.sign_in_free_failures, 5);
        assert_eq!((s.sign_in_backoff, s.sign_in_backoff_max), (30, 300));
        assert!(s.trusted_proxies.networks.is_empty());
        assert_eq!(s.trusted_proxies.header, ForwardedHeader::XForwardedFor);
        for limit in [
            s.sign_in_ip_failures,
            s.client_auth_failures,
            s.client_auth_ip_failures,
            s.oauth_ip_requests,
        ] {
            assert!(limit.is_some());
        }
        assert!(s.password_hash_workers >= 1);
    }

    #[test]
    fn values_parse() {
        let s = LimitSettings::resolve(RawLimits {
            trusted_proxies: Some("10.0.0.0/8,127.0.0.1/32".into()),
            forwarded_header: Some("Forwarded".into()),
            sign_in_backoff: Some("1m".into()),
            sign_in_backoff_max: Some("1h".into()),
            sign_in_ip_failures: Some("off".into()),
            oauth_ip_requests: Some("100/1s".into()),
            password_hash_queue: Some("0".into()),
            ..RawLimits::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.trusted_proxies.networks.len(), 2);
        assert_eq!(s.trusted_proxies.header, ForwardedHeader::Forwarded);
        assert_eq!((s.sign_in_backoff, s.sign_in_backoff_max), (60, 3600));
        assert_eq!(s.sign_in_ip_failures, None);
        assert_eq!(
            s.oauth_ip_requests,
            Some(RateLimit {
                count: 100,
                per: Duration::from_secs(1)
            })
        );
        assert_eq!(s.password_hash_queue, 0);
    }

    #[test]
    fn mistakes_name_the_setting() {
        let cases: Vec<(RawLimits, &str)> = vec![
            (
                RawLimits {
                    trusted_proxies: Some("10.0.0.0/33".into()),
                    ..Default::default()
                },
                "trusted-proxies",
            ),
            (
                RawLimits {
                    forwarded_header: Some("x-real-ip".into()),
                    ..Default::default()
                },
                "forwarded-header",
            ),
            (
                RawLimits {
                    client_auth_failures: Some("lots".into()),
                    ..Default::default()
                },
                "client-auth-failures",
            ),
            (
                RawLimits {
                    sign_in_backoff: Some("10m".into()),
                    sign_in_backoff_max: Some("1m".into()),
                    ..Default::default()
                },
                "sign-in-backoff-max",
            ),
            (
                RawLimits {
                    password_hash_workers: Some("0".into()),
                    ..Default::default()
                },
                "password-hash-workers",
            ),
            (
                RawLimits {
                    sign_in_free_failures: Some("-1".into()),
                    ..Default::default()
                },
                "sign-in-free-failures",
            ),
        ];
        for (raw, name) in cases {
            let err = LimitSettings::resolve(raw).err().unwrap_or_default();
            assert!(err.contains(name), "{name}: {err}");
        }
    }

    #[test]
    fn abuse_limits_come_from_the_file_and_flags_override_them() {
        let dir = std::env::temp_dir().join(format!("lineage-conf-{}", uuid::Uuid::new_v4()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("lineage.toml");
        let written = std::fs::write(
            &path,
            "trusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1\"]\n\
             forwarded_header = \"forwarded\"\n\
             sign_in_backoff = \"1m\"\n\
             sign_in_ip_failures = \"5/1h\"\n\
             oauth_ip_requests = \"off\"\n\
             password_hash_queue = 4\n",
        );
        assert!(written.is_ok());
        let args = crate::configuration::SettingsArgs {
            config: Some(path.clone()),
            sign_in_ip_failures: Some("7/1h".into()),
            ..Default::default()
        };
        let limits = args.resolve().map(|s| s.limits);
        let _ = std::fs::remove_dir_all(&dir);
        let Ok(limits) = limits else {
            panic!("{:?}", limits.err());
        };
        assert_eq!(limits.trusted_proxies.networks.len(), 2);
        assert_eq!(
            limits.trusted_proxies.header,
            crate::limits::client_ip::ForwardedHeader::Forwarded
        );
        assert_eq!(limits.sign_in_backoff, 60);
        assert_eq!(
            limits.sign_in_ip_failures.map(|r| r.count),
            Some(7),
            "the flag wins"
        );
        assert_eq!(limits.oauth_ip_requests, None);
        assert_eq!(limits.password_hash_queue, 4);

        let args = crate::configuration::SettingsArgs {
            config: Some(std::path::PathBuf::from("/nonexistent/lineage.toml")),
            ..Default::default()
        };
        assert!(args.resolve().is_err());
        let args = crate::configuration::SettingsArgs {
            trusted_proxies: Some("10.0.0.0/8,not-an-address".into()),
            ..Default::default()
        };
        let err = args
            .resolve()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("trusted-proxies") && err.contains("not-an-address"),
            "{err}"
        );
    }
}
