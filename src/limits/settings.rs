//! The settings of the abuse limits, as they come out of the layered configuration
//! (defaults < `lineage.toml` < `LINEAGE_*` < flags; each declared in `configuration/declared.rs`),
//! and the readers of their values.

use ipnet::IpNet;

use super::RateLimit;
use super::client_ip::{ForwardedHeader, TrustedProxies};
use crate::configuration::ConfigError;
use crate::domain::Seconds;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSettings {
    /// Proxies whose forwarding header names the client's address (none by default).
    pub trusted_proxies: TrustedProxies,
    /// Failed sign-ins of one username before the back-off starts.
    pub sign_in_free_failures: i64,
    /// The first back-off; doubles with each further failure. 0 = no back-off.
    pub sign_in_backoff: Seconds,
    pub sign_in_backoff_max: Seconds,
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

impl LimitSettings {
    /// The rules between settings; each value on its own was checked as it was read.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        const DAY: Seconds = Seconds::new(86_400);
        if !(Seconds::ZERO..=DAY).contains(&self.sign_in_backoff) {
            return Err(ConfigError(
                "sign-in-backoff must be between 0 and 1d".into(),
            ));
        }
        if self.sign_in_backoff_max > DAY || self.sign_in_backoff_max < self.sign_in_backoff {
            return Err(ConfigError(format!(
                "sign-in-backoff-max ({}) must be at least sign-in-backoff ({}) and at most 1d",
                self.sign_in_backoff_max, self.sign_in_backoff
            )));
        }
        Ok(())
    }
}

/// A default limit: a burst of `count`, `count` more every `per`.
pub(crate) fn rate(count: u32, per: Seconds) -> Option<RateLimit> {
    Some(RateLimit {
        count,
        per: per.to_std(),
    })
}

/// The default number of password-hashing threads.
pub(crate) fn one_per_core() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// `20/1m`, or `off` (`None`).
pub(crate) fn rate_limit(name: &str, raw: &str) -> Result<Option<RateLimit>, ConfigError> {
    RateLimit::parse(name, raw).map_err(ConfigError)
}

pub(crate) fn trusted_proxies(name: &str, raw: &str) -> Result<Vec<IpNet>, ConfigError> {
    TrustedProxies::parse_networks(raw).map_err(|e| ConfigError(format!("{name}: {e}")))
}

pub(crate) fn forwarded_header(name: &str, raw: &str) -> Result<ForwardedHeader, ConfigError> {
    ForwardedHeader::parse(raw).map_err(|e| ConfigError(format!("{name}: {e}")))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::configuration::SettingsArgs;

    /// The limits from these flags alone (no file).
    fn limits(args: SettingsArgs) -> Result<LimitSettings, String> {
        args.settings().map(|s| s.limits).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_on() {
        let s = limits(SettingsArgs::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.sign_in_free_failures, 5);
        assert_eq!(
            (s.sign_in_backoff.get(), s.sign_in_backoff_max.get()),
            (30, 300)
        );
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
        let s = limits(SettingsArgs {
            trusted_proxies: Some("10.0.0.0/8,127.0.0.1/32".into()),
            forwarded_header: Some("Forwarded".into()),
            sign_in_backoff: Some("1m".into()),
            sign_in_backoff_max: Some("1h".into()),
            sign_in_ip_failures: Some("off".into()),
            oauth_ip_requests: Some("100/1s".into()),
            password_hash_queue: Some("0".into()),
            ..SettingsArgs::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.trusted_proxies.networks.len(), 2);
        assert_eq!(s.trusted_proxies.header, ForwardedHeader::Forwarded);
        assert_eq!(
            (s.sign_in_backoff.get(), s.sign_in_backoff_max.get()),
            (60, 3600)
        );
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
        let cases: Vec<(SettingsArgs, &str)> = vec![
            (
                SettingsArgs {
                    trusted_proxies: Some("10.0.0.0/33".into()),
                    ..Default::default()
                },
                "trusted-proxies",
            ),
            (
                SettingsArgs {
                    forwarded_header: Some("x-real-ip".into()),
                    ..Default::default()
                },
                "forwarded-header",
            ),
            (
                SettingsArgs {
                    client_auth_failures: Some("lots".into()),
                    ..Default::default()
                },
                "client-auth-failures",
            ),
            (
                SettingsArgs {
                    sign_in_backoff: Some("10m".into()),
                    sign_in_backoff_max: Some("1m".into()),
                    ..Default::default()
                },
                "sign-in-backoff-max",
            ),
            (
                SettingsArgs {
                    password_hash_workers: Some("0".into()),
                    ..Default::default()
                },
                "password-hash-workers",
            ),
            (
                SettingsArgs {
                    sign_in_free_failures: Some("-1".into()),
                    ..Default::default()
                },
                "sign-in-free-failures",
            ),
        ];
        for (raw, name) in cases {
            let err = limits(raw).err().unwrap_or_default();
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
        let args = SettingsArgs {
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
        assert_eq!(limits.sign_in_backoff, Seconds::new(60));
        assert_eq!(
            limits.sign_in_ip_failures.map(|r| r.count),
            Some(7),
            "the flag wins"
        );
        assert_eq!(limits.oauth_ip_requests, None);
        assert_eq!(limits.password_hash_queue, 4);

        let args = SettingsArgs {
            config: Some(std::path::PathBuf::from("/nonexistent/lineage.toml")),
            ..Default::default()
        };
        assert!(args.resolve().is_err());
        let args = SettingsArgs {
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
