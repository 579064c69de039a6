//! One `Settings` type, layered: defaults < `lineage.toml` < `LINEAGE_*` environment < flags.
//! Each setting is declared once, in `declared.rs`: clap reads the environment and the flags
//! (flags win) into one layer, serde reads the file into another of the same type, and the
//! layers are merged before any value is read.

#[macro_use]
mod declare;
mod declared;
mod parse;
mod secrets;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::db::DatabaseUrl;
use crate::domain::Seconds;
use crate::limits::client_ip::TrustedProxies;
use crate::limits::settings::LimitSettings;
use declared::Values;

pub use crate::telemetry::LogFormat;
pub use declared::{RawSetting, SettingsArgs};
pub use parse::{MAX_DURATION, parse_duration, parse_issuer};
pub use secrets::{KeySecret, KeySecretSource, SensitiveSetting};

/// A configuration mistake: printed as one line, exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The settings, read and checked: what the server and the commands run with. Where each comes
/// from (flag, variable, file key, default): `declared.rs`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    /// None = `http://` + the bound address (known only after binding, e.g. port 0 in tests).
    pub issuer: Option<String>,
    pub database_url: DatabaseUrl,
    pub access_token_ttl: Seconds,
    pub refresh_idle_ttl: Seconds,
    pub refresh_absolute_ttl: Seconds,
    pub refresh_grace: Seconds,
    pub refresh_max_rotations: Option<i64>,
    pub key_secret: KeySecretSource,
    /// How long a new signing key is published before it signs anything.
    pub key_publish_lead: Seconds,
    /// `Cache-Control: max-age` of the JWKS.
    pub jwks_max_age: Seconds,
    pub db_pool_size: u32,
    pub workers: Option<usize>,
    /// Seconds between housekeeping passes; 0 turns the background collector off.
    pub gc_interval: Seconds,
    /// SQLite: write jobs that may wait for the single writer before requests get 503.
    pub writer_queue: usize,
    /// Serve a plain-http issuer on a non-loopback address (only behind something that adds TLS).
    pub insecure_http: bool,
    /// Where `/metrics` is served; `None` = nowhere. Never on the public listener.
    pub metrics_bind: Option<SocketAddr>,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    pub shutdown_timeout: Seconds,
    /// Seconds an authenticated client's row is reused on this node; 0 reads it every time.
    pub client_cache_ttl: Seconds,
    /// `serve --demo`: demo clients, a demo user and the /demo walk-through.
    pub demo: bool,
    /// Serve `/revocations` without client authentication (it lists user ids and revocation times).
    pub revocations_public: bool,
    /// How log lines are written to stderr.
    pub log_format: LogFormat,
    /// Back-channel logout delivery (`backchannel`).
    pub backchannel: BackchannelSettings,
    /// DPoP proofs at the token endpoint.
    pub dpop: DpopSettings,
    /// Abuse limits, trusted proxies and the password-hashing pool.
    pub limits: LimitSettings,
}

/// How DPoP proofs are checked (RFC 9449), from the `dpop_*` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DpopSettings {
    /// How old a proof's `iat` may be.
    pub proof_max_age: Seconds,
    /// Proofs must carry a nonce this server issued.
    pub nonce: bool,
    /// `jti`s remembered per node.
    pub replay_capacity: usize,
}

/// How logout tokens are delivered (Back-Channel Logout 1.0), from the `backchannel_logout_*`
/// settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackchannelSettings {
    /// One POST may take this long; then it failed.
    pub timeout: Seconds,
    /// POSTs one node has in flight at most.
    pub concurrency: usize,
    /// Attempts before a logout token is given up.
    pub max_attempts: i64,
    /// How often the outbox is read besides after a revocation this node committed.
    pub interval: Seconds,
}

impl SettingsArgs {
    /// These flags and variables over `lineage.toml` (or `--config`) over the defaults, checked.
    pub fn resolve(&self) -> Result<Settings, ConfigError> {
        let file = read_file(self.config.as_deref())?;
        self.clone().over(file).settings()
    }

    /// The settings from this layer alone over the defaults (no file is read), checked.
    pub(crate) fn settings(&self) -> Result<Settings, ConfigError> {
        let settings = self.values()?.into_settings();
        settings.check()?;
        Ok(settings)
    }
}

/// The file layer: `--config PATH` must exist; `lineage.toml` in the working directory may not.
fn read_file(config: Option<&Path>) -> Result<SettingsArgs, ConfigError> {
    let (path, required) = match config {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from("lineage.toml"), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(SettingsArgs::default());
        }
        Err(e) => {
            return Err(ConfigError(format!("cannot read {}: {e}", path.display())));
        }
    };
    toml::from_str(&text).map_err(|e| {
        let msg = e.message().replace('\n', " ");
        ConfigError(format!("{}: {msg}", path.display()))
    })
}

impl Values {
    fn into_settings(self) -> Settings {
        Settings {
            bind: self.bind,
            issuer: self.issuer,
            key_secret: KeySecretSource::new(self.key_secret, &self.database_url),
            database_url: self.database_url,
            access_token_ttl: self.access_token_ttl,
            refresh_idle_ttl: self.refresh_idle_ttl,
            refresh_absolute_ttl: self.refresh_absolute_ttl,
            refresh_grace: self.refresh_grace,
            refresh_max_rotations: self.refresh_max_rotations,
            key_publish_lead: self.key_publish_lead,
            jwks_max_age: self.jwks_max_age,
            db_pool_size: self.db_pool_size,
            workers: self.workers,
            gc_interval: self.gc_interval,
            writer_queue: self.writer_queue,
            insecure_http: self.insecure_http,
            metrics_bind: self.metrics_bind,
            shutdown_timeout: self.shutdown_timeout,
            client_cache_ttl: self.client_cache_ttl,
            demo: false,
            revocations_public: self.revocations_public,
            log_format: self.log_format,
            backchannel: BackchannelSettings {
                timeout: self.backchannel_logout_timeout,
                concurrency: self.backchannel_logout_concurrency,
                max_attempts: self.backchannel_logout_attempts,
                interval: self.backchannel_logout_interval,
            },
            dpop: DpopSettings {
                proof_max_age: self.dpop_proof_max_age,
                nonce: self.dpop_nonce,
                replay_capacity: self.dpop_replay_capacity,
            },
            limits: LimitSettings {
                trusted_proxies: TrustedProxies {
                    networks: self.trusted_proxies,
                    header: self.forwarded_header,
                },
                sign_in_free_failures: self.sign_in_free_failures,
                sign_in_backoff: self.sign_in_backoff,
                sign_in_backoff_max: self.sign_in_backoff_max,
                sign_in_ip_failures: self.sign_in_ip_failures,
                client_auth_failures: self.client_auth_failures,
                client_auth_ip_failures: self.client_auth_ip_failures,
                oauth_ip_requests: self.oauth_ip_requests,
                rate_limit_max_keys: self.rate_limit_max_keys,
                password_hash_workers: self.password_hash_workers,
                password_hash_queue: self.password_hash_queue,
            },
        }
    }
}

impl Settings {
    /// `serve` on a non-loopback address with a plain-http issuer would hand out tokens, codes
    /// and session cookies in clear over the network: refused unless `insecure_http` says that
    /// something in front adds TLS. (Loopback is for development and local proxies.)
    pub fn check_transport(&self) -> Result<(), ConfigError> {
        let plain_http = self
            .issuer
            .as_deref()
            .is_none_or(|i| i.starts_with("http://"));
        if plain_http && !self.bind.ip().is_loopback() && !self.insecure_http {
            return Err(ConfigError(format!(
                "refusing to serve an http:// issuer on {}: set --issuer https://… (TLS in front), \
                 bind a loopback address, or pass --insecure-http",
                self.bind
            )));
        }
        Ok(())
    }

    /// The rules between settings; each value on its own was checked as it was read.
    fn check(&self) -> Result<(), ConfigError> {
        let (idle, absolute) = (self.refresh_idle_ttl, self.refresh_absolute_ttl);
        if idle > absolute {
            return Err(ConfigError(format!(
                "refresh-idle-ttl ({idle}) must not exceed refresh-absolute-ttl ({absolute})"
            )));
        }
        if self
            .metrics_bind
            .is_some_and(|m| m == self.bind && m.port() != 0)
        {
            return Err(ConfigError(
                "metrics-bind must differ from bind: metrics are not served on the public listener"
                    .into(),
            ));
        }
        self.limits.check()
    }

    /// Settings for tests and embedding: the declared defaults with the given database, on a
    /// port of the system's choosing, without background housekeeping.
    pub fn for_database(database_url: DatabaseUrl, key_secret: KeySecret) -> Self {
        Values {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url,
            key_secret: Some(key_secret),
            workers: Some(2),
            gc_interval: Seconds::ZERO,
            // Tests change clients between requests and expect the next request to see it.
            client_cache_ttl: Seconds::ZERO,
            log_format: LogFormat::Text,
            password_hash_workers: 2,
            ..Values::default()
        }
        .into_settings()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `lineage.toml` in a fresh directory, removed when dropped.
    struct TomlFile(PathBuf);

    impl TomlFile {
        fn new(text: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("lineage-conf-{}", uuid::Uuid::new_v4()));
            assert!(std::fs::create_dir_all(&dir).is_ok());
            let path = dir.join("lineage.toml");
            assert!(std::fs::write(&path, text).is_ok());
            Self(path)
        }

        fn args(&self) -> SettingsArgs {
            SettingsArgs {
                config: Some(self.0.clone()),
                ..Default::default()
            }
        }
    }

    impl Drop for TomlFile {
        fn drop(&mut self) {
            if let Some(dir) = self.0.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    fn message(result: Result<Settings, ConfigError>) -> String {
        match result {
            Ok(s) => panic!("expected a configuration error, got {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn durations() {
        let secs = |raw| parse_duration("x", raw).ok().map(Seconds::get);
        assert_eq!(secs("600"), Some(600));
        assert_eq!(secs("10m"), Some(600));
        assert_eq!(secs("7d"), Some(604_800));
        assert!(parse_duration("x", "10 minutes").is_err());
        assert!(parse_duration("x", "").is_err());
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        const KEY: &str = "super-secret-key-value";
        const PASSWORD: &str = "hunter2pass";
        let url = format!("postgres://lineage:{PASSWORD}@db.internal/lineage");
        let args = SettingsArgs {
            key_secret: Some(SensitiveSetting::new(KEY)),
            database_url: Some(SensitiveSetting::new(url.clone())),
            ..Default::default()
        };
        let file: Result<SettingsArgs, _> = toml::from_str(&format!(
            "key_secret = \"{KEY}\"\ndatabase_url = \"{url}\"\n"
        ));
        let file = file.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(file.key_secret, Some(SensitiveSetting::new(KEY)));
        let settings = args.settings().map_err(|e| e.to_string());
        assert!(settings.is_ok(), "{settings:?}");
        for shown in [
            format!("{args:?}"),
            format!("{file:?}"),
            format!("{settings:?}"),
        ] {
            assert!(!shown.contains(KEY), "{shown}");
            assert!(!shown.contains(PASSWORD), "{shown}");
            assert!(
                shown.contains("db.internal"),
                "the safe part stays: {shown}"
            );
        }
    }

    #[test]
    fn issuers_are_normalised() {
        assert_eq!(
            parse_issuer("HTTPS://Auth.Example.COM/").ok().as_deref(),
            Some("https://auth.example.com")
        );
        assert_eq!(
            parse_issuer("https://auth.example.com/tenant/")
                .ok()
                .as_deref(),
            Some("https://auth.example.com/tenant")
        );
        assert!(parse_issuer("https://user:pw@auth.example.com").is_err());
    }

    #[test]
    fn lifetimes_that_would_overflow_are_rejected() {
        for raw in ["9223372036854775807", "106751991167300d", "3650d1"] {
            let args = SettingsArgs {
                refresh_absolute_ttl: Some(raw.into()),
                ..Default::default()
            };
            let err = message(args.settings());
            assert!(err.contains("refresh-absolute-ttl"), "{raw}: {err}");
        }
        assert_eq!(parse_duration("x", "3650d").ok(), Some(MAX_DURATION));
    }

    #[test]
    fn revocations_public_is_false_unless_set() {
        let resolve = |v: Option<&str>| {
            SettingsArgs {
                revocations_public: v.map(RawSetting::from),
                ..Default::default()
            }
            .settings()
            .map(|s| s.revocations_public)
        };
        assert_eq!(resolve(None).ok(), Some(false));
        assert_eq!(resolve(Some("true")).ok(), Some(true));
        assert_eq!(resolve(Some("0")).ok(), Some(false));
        assert!(resolve(Some("maybe")).is_err());
        let file = TomlFile::new("revocations_public = true\n");
        let from_file = file.args().resolve().map(|s| s.revocations_public);
        assert_eq!(from_file.ok(), Some(true));
    }

    #[test]
    fn log_format_from_flag_or_file() {
        let file = TomlFile::new("log_format = \"json\"\n");
        assert_eq!(
            file.args().resolve().ok().map(|s| s.log_format),
            Some(LogFormat::Json)
        );
        let flag_wins = SettingsArgs {
            log_format: Some("TEXT".into()),
            ..file.args()
        };
        assert_eq!(
            flag_wins.resolve().ok().map(|s| s.log_format),
            Some(LogFormat::Text)
        );
        let wrong = SettingsArgs {
            log_format: Some("yaml".into()),
            ..file.args()
        };
        assert!(message(wrong.resolve()).contains("log-format"));
    }

    #[test]
    fn idle_longer_than_absolute_is_rejected() {
        let idle = |raw: &str| SettingsArgs {
            refresh_idle_ttl: Some(raw.into()),
            ..Default::default()
        };
        // Against the default absolute lifetime (30d): equal is fine, a day more is not.
        assert_eq!(
            idle("30d")
                .settings()
                .ok()
                .map(|s| s.refresh_idle_ttl.get()),
            Some(30 * 86_400)
        );
        let err = message(idle("31d").settings());
        assert!(
            err.contains("refresh-idle-ttl") && err.contains("refresh-absolute-ttl"),
            "{err}"
        );
        // The rule holds across layers: idle from the file, absolute from a flag.
        let file = TomlFile::new("refresh_idle_ttl = \"2d\"\n");
        let shorter = SettingsArgs {
            refresh_absolute_ttl: Some("1d".into()),
            ..file.args()
        };
        assert!(message(shorter.resolve()).contains("refresh-idle-ttl"));
        let longer = SettingsArgs {
            refresh_absolute_ttl: Some("2d".into()),
            ..file.args()
        };
        assert_eq!(
            longer
                .resolve()
                .ok()
                .map(|s| (s.refresh_idle_ttl.get(), s.refresh_absolute_ttl.get())),
            Some((2 * 86_400, 2 * 86_400))
        );
    }

    #[test]
    fn defaults_then_file_then_flags() {
        let file = TomlFile::new("access_token_ttl = 120\nrefresh_grace = \"10s\"\n");
        let args = SettingsArgs {
            refresh_grace: Some("0".into()),
            ..file.args()
        };
        let s = args.resolve().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.access_token_ttl.get(), 120, "the file over the default");
        assert_eq!(s.refresh_grace, Seconds::ZERO, "the flag over the file");
        assert_eq!(s.jwks_max_age.get(), 300, "the default when neither says");
        let unknown = TomlFile::new("colour = \"blue\"\n");
        assert!(message(unknown.args().resolve()).contains("colour"));
        let missing = SettingsArgs {
            config: Some(PathBuf::from("/nonexistent/lineage.toml")),
            ..Default::default()
        };
        assert!(message(missing.resolve()).contains("/nonexistent/lineage.toml"));
    }

    #[test]
    fn for_database_keeps_the_declared_defaults() {
        let url = DatabaseUrl::Sqlite {
            path: "x.db".into(),
        };
        let key = KeySecret::new("0123456789abcdef".into());
        let embedded = Settings::for_database(url.clone(), key.clone());
        let declared = SettingsArgs::default()
            .settings()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(embedded.key_secret, KeySecretSource::Configured(key));
        assert_eq!(embedded.database_url, url);
        assert_eq!(embedded.bind.port(), 0);
        assert_eq!(
            (embedded.access_token_ttl, embedded.refresh_absolute_ttl),
            (declared.access_token_ttl, declared.refresh_absolute_ttl)
        );
        assert_eq!(
            embedded.limits.sign_in_ip_failures,
            declared.limits.sign_in_ip_failures
        );
    }

    /// The cells of the README's configuration table in the row of `--flag`.
    fn readme_row(flag: &str) -> Option<Vec<&'static str>> {
        include_str!("../../README.md")
            .lines()
            .find(|l| l.starts_with(&format!("| `--{flag}` |")))
            .map(|l| l.split('|').map(str::trim).collect())
    }

    /// A sample `lineage.toml` that sets every setting the README gives a value for, to that
    /// value, reads through the real parser to the same settings as no file at all.
    #[test]
    fn a_sample_file_of_the_readme_defaults_reads_as_the_defaults() {
        let mut sample = String::new();
        for (key, _) in declared::DECLARED {
            let cells = readme_row(&key.replace('_', "-")).unwrap_or_default();
            let Some(value) = cells
                .get(3)
                .and_then(|c| c.strip_prefix('`')?.strip_suffix('`'))
            else {
                continue;
            };
            if !value.contains('`') {
                sample.push_str(&format!("{key} = {value:?}\n"));
            }
        }
        let file = TomlFile::new(&sample);
        let from_file = file
            .args()
            .resolve()
            .unwrap_or_else(|e| panic!("{e}\n{sample}"));
        let defaults = SettingsArgs::default()
            .settings()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(sample.lines().count() >= 20, "{sample}");
        assert_eq!(
            format!(
                "{:?}",
                Settings {
                    log_format: defaults.log_format,
                    ..from_file
                }
            ),
            format!("{defaults:?}")
        );
    }

    /// `lineage.example.toml` names every setting, reads through the real parser as the
    /// defaults, and every value it shows commented out is valid too.
    #[test]
    fn the_example_file_names_every_setting_and_reads_as_the_defaults() {
        let sample = include_str!("../../lineage.example.toml");
        let setting = |line: &str| {
            declared::DECLARED
                .iter()
                .any(|(key, _)| line.starts_with(&format!("{key} = ")))
        };
        for (key, _) in declared::DECLARED {
            let named = sample
                .lines()
                .any(|l| setting(l.trim_start_matches("# ")) && l.contains(&format!("{key} = ")));
            assert!(named, "lineage.example.toml does not name `{key}`");
        }
        let defaults = SettingsArgs::default()
            .settings()
            .unwrap_or_else(|e| panic!("{e}"));
        let as_written = TomlFile::new(sample)
            .args()
            .resolve()
            .unwrap_or_else(|e| panic!("lineage.example.toml: {e}"));
        let as_written = Settings {
            log_format: defaults.log_format,
            ..as_written
        };
        assert_eq!(format!("{as_written:?}"), format!("{defaults:?}"));
        let all_on: Vec<&str> = sample
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if setting(rest) => rest,
                _ => l,
            })
            .collect();
        let all_on = all_on.join("\n");
        if let Err(e) = TomlFile::new(&all_on).args().resolve() {
            panic!("lineage.example.toml, commented settings switched on: {e}");
        }
    }

    /// The README's table lists every setting with its flag, variable and default.
    #[test]
    fn the_readme_documents_every_setting() {
        for (key, env) in declared::DECLARED {
            let flag = key.replace('_', "-");
            let Some(cells) = readme_row(&flag) else {
                panic!("README: no row for --{flag}");
            };
            assert_eq!(cells.get(2).copied(), Some(format!("`{env}`").as_str()));
        }
        // A default written as one code span (`7d`) is a value; anything else ("one per core")
        // is prose.
        let (stated, unlike) = declared::defaults_unlike(|flag| {
            let cells = readme_row(flag)?;
            let value = cells.get(3)?.strip_prefix('`')?.strip_suffix('`')?;
            (!value.contains('`')).then(|| value.to_string())
        });
        assert!(stated >= 20, "only {stated} README defaults are values");
        assert!(unlike.is_empty(), "README defaults differ: {unlike:?}");
    }
}
