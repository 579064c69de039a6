//! One `Settings` type, layered: defaults < `lineage.toml` < `LINEAGE_*` environment < flags.
//! Clap reads the environment and the flags (flags win); the file sits underneath both.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;

use crate::db::DatabaseUrl;
use crate::limits::settings::{LimitSettings, RawLimits};
pub use crate::telemetry::LogFormat;

/// A configuration mistake: printed as one line, exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// The secret that encrypts signing keys at rest and keys the refresh-token successor HMAC.
#[derive(Clone, PartialEq, Eq)]
pub struct KeySecret(String);

impl KeySecret {
    pub fn new(value: String) -> Self {
        Self(value)
    }
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeySecret([redacted])")
    }
}

/// A setting as typed (flag, environment or file) that may hold a secret: the key secret, or a
/// database URL with a password. `Debug` never shows the secret.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SensitiveSetting(String);

impl SensitiveSetting {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    fn into_inner(self) -> String {
        self.0
    }
}

impl std::str::FromStr for SensitiveSetting {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_string()))
    }
}

impl fmt::Debug for SensitiveSetting {
    // A database URL shows with its password masked; anything else not at all.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match DatabaseUrl::parse(&self.0) {
            Ok(url @ DatabaseUrl::Postgres { .. }) => f.write_str(&url.redacted()),
            _ => f.write_str("[redacted]"),
        }
    }
}

/// Where the key secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySecretSource {
    Configured(KeySecret),
    /// Not configured: read or create this 0600 file.
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    /// None = `http://` + the bound address (known only after binding, e.g. port 0 in tests).
    pub issuer: Option<String>,
    pub database_url: DatabaseUrl,
    pub access_token_ttl: i64,
    pub refresh_idle_ttl: i64,
    pub refresh_absolute_ttl: i64,
    pub refresh_grace: i64,
    pub refresh_max_rotations: Option<i64>,
    pub key_secret: KeySecretSource,
    /// How long a new signing key is published before it signs anything.
    pub key_publish_lead: i64,
    /// `Cache-Control: max-age` of the JWKS.
    pub jwks_max_age: i64,
    pub db_pool_size: u32,
    pub workers: Option<usize>,
    /// Seconds between housekeeping passes; 0 turns the background collector off.
    pub gc_interval: i64,
    /// SQLite: write jobs that may wait for the single writer before requests get 503.
    pub writer_queue: usize,
    /// Serve a plain-http issuer on a non-loopback address (only behind something that adds TLS).
    pub insecure_http: bool,
    /// Where `/metrics` is served; `None` = nowhere. Never on the public listener.
    pub metrics_bind: Option<SocketAddr>,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    pub shutdown_timeout: i64,
    /// Seconds an authenticated client's row is reused on this node; 0 reads it every time.
    pub client_cache_ttl: i64,
    /// `serve --demo`: demo clients, a demo user and the /demo walk-through.
    pub demo: bool,
    /// Serve `/revocations` without client authentication (it lists user ids and revocation times).
    pub revocations_public: bool,
    /// How log lines are written to stderr.
    pub log_format: LogFormat,
    /// Abuse limits, trusted proxies and the password-hashing pool.
    pub limits: LimitSettings,
}

/// The settings every command accepts, as flags and `LINEAGE_*` variables.
#[derive(Debug, Clone, Default, Args)]
pub struct SettingsArgs {
    /// Configuration file (TOML, the same keys as the flags with `_` for `-`).
    #[arg(long, env = "LINEAGE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "LINEAGE_BIND", global = true)]
    pub bind: Option<String>,
    /// Public base URL of the server (the `iss` of every token), no trailing slash.
    #[arg(long, env = "LINEAGE_ISSUER", global = true)]
    pub issuer: Option<String>,
    /// `sqlite://PATH` (default `sqlite://lineage.db`) or `postgres://…`.
    #[arg(
        long,
        env = "LINEAGE_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Option<SensitiveSetting>,
    /// Access-token lifetime: seconds, or with a unit (`10m`).
    #[arg(long, env = "LINEAGE_ACCESS_TOKEN_TTL", global = true)]
    pub access_token_ttl: Option<String>,
    /// How long a node reuses an authenticated client's row (`5s`; `0` = read it every time):
    /// how long a deleted client or a replaced secret may still be accepted by a node.
    #[arg(long, env = "LINEAGE_CLIENT_CACHE_TTL", global = true)]
    pub client_cache_ttl: Option<String>,
    /// Refresh-family idle timeout (`7d`).
    #[arg(long, env = "LINEAGE_REFRESH_IDLE_TTL", global = true)]
    pub refresh_idle_ttl: Option<String>,
    /// Refresh-family absolute lifetime (`30d`), never extended by rotation.
    #[arg(long, env = "LINEAGE_REFRESH_ABSOLUTE_TTL", global = true)]
    pub refresh_absolute_ttl: Option<String>,
    /// Retry grace for a just-rotated refresh token (`5s`; `0` disables).
    #[arg(long, env = "LINEAGE_REFRESH_GRACE", global = true)]
    pub refresh_grace: Option<String>,
    /// Maximum rotations of one family (unset = unlimited).
    #[arg(long, env = "LINEAGE_REFRESH_MAX_ROTATIONS", global = true)]
    pub refresh_max_rotations: Option<String>,
    /// Secret that encrypts signing keys at rest (default: generated into a 0600 file beside the database).
    #[arg(
        long,
        env = "LINEAGE_KEY_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub key_secret: Option<SensitiveSetting>,
    /// How long a rotated-in signing key is published before it signs (`10m`).
    #[arg(long, env = "LINEAGE_KEY_PUBLISH_LEAD", global = true)]
    pub key_publish_lead: Option<String>,
    /// `Cache-Control: max-age` of /jwks.json (`5m`).
    #[arg(long, env = "LINEAGE_JWKS_MAX_AGE", global = true)]
    pub jwks_max_age: Option<String>,
    /// Database connections in the pool.
    #[arg(long, env = "LINEAGE_DB_POOL_SIZE", global = true)]
    pub db_pool_size: Option<String>,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "LINEAGE_WORKERS", global = true)]
    pub workers: Option<String>,
    /// Interval of the background housekeeping (`60s`; `0` turns it off).
    #[arg(long, env = "LINEAGE_GC_INTERVAL", global = true)]
    pub gc_interval: Option<String>,
    /// SQLite: writes that may queue for the writer thread before requests get 503.
    #[arg(long, env = "LINEAGE_WRITER_QUEUE", global = true)]
    pub writer_queue: Option<String>,
    /// Allow an http:// issuer on a non-loopback address (tokens and cookies then cross the
    /// network in clear unless something in front adds TLS).
    #[arg(long, env = "LINEAGE_INSECURE_HTTP", global = true, num_args = 0..=1, default_missing_value = "true")]
    pub insecure_http: Option<String>,
    /// Address of a separate listener for Prometheus `/metrics` (off by default; never the public port).
    #[arg(long, env = "LINEAGE_METRICS_BIND", global = true)]
    pub metrics_bind: Option<String>,
    /// On SIGTERM/SIGINT: how long in-flight requests may take to finish (`30s`).
    #[arg(long, env = "LINEAGE_SHUTDOWN_TIMEOUT", global = true)]
    pub shutdown_timeout: Option<String>,
    /// Serve the revocation feed to anyone (default false: a client with the `revocations` permission).
    #[arg(long, env = "LINEAGE_REVOCATIONS_PUBLIC", global = true, num_args = 0..=1, default_missing_value = "true")]
    pub revocations_public: Option<String>,
    /// Log lines as `json` or `text` (default: text on a terminal, JSON otherwise).
    #[arg(long, env = "LINEAGE_LOG_FORMAT", global = true)]
    pub log_format: Option<String>,
    /// Reverse proxies whose forwarding header is believed: addresses or CIDR ranges, comma-separated.
    #[arg(long, env = "LINEAGE_TRUSTED_PROXIES", global = true)]
    pub trusted_proxies: Option<String>,
    /// The header trusted proxies append the client's address to: `x-forwarded-for` or `forwarded`.
    #[arg(long, env = "LINEAGE_FORWARDED_HEADER", global = true)]
    pub forwarded_header: Option<String>,
    /// Failed sign-ins of one username before the back-off starts (5).
    #[arg(long, env = "LINEAGE_SIGN_IN_FREE_FAILURES", global = true)]
    pub sign_in_free_failures: Option<String>,
    /// First sign-in back-off, doubling with each further failure (`30s`; `0` = none).
    #[arg(long, env = "LINEAGE_SIGN_IN_BACKOFF", global = true)]
    pub sign_in_backoff: Option<String>,
    /// Longest sign-in back-off (`5m`).
    #[arg(long, env = "LINEAGE_SIGN_IN_BACKOFF_MAX", global = true)]
    pub sign_in_backoff_max: Option<String>,
    /// Failed sign-ins per client address (`20/2h`; `off`).
    #[arg(long, env = "LINEAGE_SIGN_IN_IP_FAILURES", global = true)]
    pub sign_in_ip_failures: Option<String>,
    /// Failed client authentications per client id and address (`20/1m`; `off`).
    #[arg(long, env = "LINEAGE_CLIENT_AUTH_FAILURES", global = true)]
    pub client_auth_failures: Option<String>,
    /// Failed client authentications per address, any client id (`60/1m`; `off`).
    #[arg(long, env = "LINEAGE_CLIENT_AUTH_IP_FAILURES", global = true)]
    pub client_auth_ip_failures: Option<String>,
    /// Requests to /token, /revoke and /introspect per address (`50000/1s`; `off`).
    #[arg(long, env = "LINEAGE_OAUTH_IP_REQUESTS", global = true)]
    pub oauth_ip_requests: Option<String>,
    /// Keys each in-memory rate limiter tracks at most (100000).
    #[arg(long, env = "LINEAGE_RATE_LIMIT_MAX_KEYS", global = true)]
    pub rate_limit_max_keys: Option<String>,
    /// Password hashes computed at once (default: one per core).
    #[arg(long, env = "LINEAGE_PASSWORD_HASH_WORKERS", global = true)]
    pub password_hash_workers: Option<String>,
    /// Password hashes that may wait for a worker before sign-ins get 503 (16).
    #[arg(long, env = "LINEAGE_PASSWORD_HASH_QUEUE", global = true)]
    pub password_hash_queue: Option<String>,
}

/// `lineage.toml`: every key optional; durations as numbers (seconds) or strings (`"10m"`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    bind: Option<String>,
    issuer: Option<String>,
    database_url: Option<SensitiveSetting>,
    access_token_ttl: Option<toml::Value>,
    refresh_idle_ttl: Option<toml::Value>,
    refresh_absolute_ttl: Option<toml::Value>,
    refresh_grace: Option<toml::Value>,
    refresh_max_rotations: Option<toml::Value>,
    key_secret: Option<SensitiveSetting>,
    key_publish_lead: Option<toml::Value>,
    jwks_max_age: Option<toml::Value>,
    db_pool_size: Option<toml::Value>,
    workers: Option<toml::Value>,
    gc_interval: Option<toml::Value>,
    writer_queue: Option<toml::Value>,
    insecure_http: Option<toml::Value>,
    metrics_bind: Option<String>,
    shutdown_timeout: Option<toml::Value>,
    client_cache_ttl: Option<toml::Value>,
    revocations_public: Option<toml::Value>,
    log_format: Option<String>,
    trusted_proxies: Option<toml::Value>,
    forwarded_header: Option<String>,
    sign_in_free_failures: Option<toml::Value>,
    sign_in_backoff: Option<toml::Value>,
    sign_in_backoff_max: Option<toml::Value>,
    sign_in_ip_failures: Option<toml::Value>,
    client_auth_failures: Option<toml::Value>,
    client_auth_ip_failures: Option<toml::Value>,
    oauth_ip_requests: Option<toml::Value>,
    rate_limit_max_keys: Option<toml::Value>,
    password_hash_workers: Option<toml::Value>,
    password_hash_queue: Option<toml::Value>,
}

fn value_to_string(v: toml::Value) -> String {
    match v {
        toml::Value::String(s) => s,
        // `trusted_proxies = ["10.0.0.0/8", "127.0.0.1"]` reads like the comma-separated form.
        toml::Value::Array(items) => items
            .into_iter()
            .map(value_to_string)
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// Parse `600`, `600s`, `10m`, `2h`, `7d` into seconds.
pub fn parse_duration(name: &str, raw: &str) -> Result<i64, ConfigError> {
    let s = raw.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    let n: i64 = digits.parse().map_err(|_| {
        invalid(format!(
            "{name}: `{raw}` is not a duration (e.g. 600, 10m, 7d)"
        ))
    })?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(invalid(format!(
                "{name}: unknown unit in `{raw}` (use s, m, h or d)"
            )));
        }
    };
    n.checked_mul(factor)
        .filter(|secs| *secs <= MAX_DURATION)
        .ok_or_else(|| invalid(format!("{name}: `{raw}` is longer than 10 years")))
}

/// No lifetime or interval may exceed this: `now + ttl` then always fits, with room to spare.
pub const MAX_DURATION: i64 = 10 * 365 * 86_400;

fn parse_bool(name: &str, raw: &str) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(format!("{name}: `{raw}` is not true or false"))),
    }
}

fn parse_count(name: &str, raw: &str) -> Result<i64, ConfigError> {
    raw.trim()
        .parse::<i64>()
        .map_err(|_| invalid(format!("{name}: `{raw}` is not a whole number")))
}

/// Validate a public base URL: absolute http(s), no query or fragment, no trailing slash.
pub fn parse_issuer(raw: &str) -> Result<String, ConfigError> {
    let u =
        url::Url::parse(raw).map_err(|e| invalid(format!("issuer: `{raw}` is not a URL: {e}")))?;
    if u.scheme() != "https" && u.scheme() != "http" {
        return Err(invalid(format!(
            "issuer: `{raw}` must be an http or https URL"
        )));
    }
    if u.host_str().is_none()
        || u.query().is_some()
        || u.fragment().is_some()
        || !u.username().is_empty()
        || u.password().is_some()
    {
        return Err(invalid(format!(
            "issuer: `{raw}` must have a host and no credentials, query or fragment"
        )));
    }
    // The normalised form (lowercase scheme and host): every check of the scheme — Secure
    // cookies, the plain-http refusal — and every `iss` then agree on one spelling.
    Ok(u.as_str().trim_end_matches('/').to_string())
}

impl SettingsArgs {
    /// Layer defaults < file < environment/flags and validate the result.
    pub fn resolve(&self) -> Result<Settings, ConfigError> {
        let mut file = self.read_file()?;
        let limit_values = self.limit_values(&mut file);
        let pick = |flag: &Option<String>, file: Option<String>| flag.clone().or(file);
        let pick_v = |flag: &Option<String>, file: Option<toml::Value>| {
            flag.clone().or(file.map(value_to_string))
        };

        let bind_raw = pick(&self.bind, file.bind).unwrap_or_else(|| "127.0.0.1:8080".into());
        let bind: SocketAddr = bind_raw.parse().map_err(|_| {
            invalid(format!(
                "bind: `{bind_raw}` is not an address like 127.0.0.1:8080"
            ))
        })?;
        let issuer = pick(&self.issuer, file.issuer)
            .map(|s| parse_issuer(&s))
            .transpose()?;
        let db_raw = self
            .database_url
            .clone()
            .or(file.database_url)
            .map(SensitiveSetting::into_inner)
            .unwrap_or_else(|| "sqlite://lineage.db".into());
        let database_url =
            DatabaseUrl::parse(&db_raw).map_err(|e| invalid(format!("database-url: {e}")))?;

        let duration =
            |name: &str, flag: &Option<String>, f: Option<toml::Value>, default: &str| {
                parse_duration(
                    name,
                    &pick_v(flag, f).unwrap_or_else(|| default.to_string()),
                )
            };
        let access_token_ttl = duration(
            "access-token-ttl",
            &self.access_token_ttl,
            file.access_token_ttl,
            "600",
        )?;
        let refresh_idle_ttl = duration(
            "refresh-idle-ttl",
            &self.refresh_idle_ttl,
            file.refresh_idle_ttl,
            "7d",
        )?;
        let refresh_absolute_ttl = duration(
            "refresh-absolute-ttl",
            &self.refresh_absolute_ttl,
            file.refresh_absolute_ttl,
            "30d",
        )?;
        let refresh_grace = duration(
            "refresh-grace",
            &self.refresh_grace,
            file.refresh_grace,
            "5s",
        )?;
        let key_publish_lead = duration(
            "key-publish-lead",
            &self.key_publish_lead,
            file.key_publish_lead,
            "10m",
        )?;
        let gc_interval = duration("gc-interval", &self.gc_interval, file.gc_interval, "60s")?;
        let jwks_max_age = duration("jwks-max-age", &self.jwks_max_age, file.jwks_max_age, "5m")?;
        let shutdown_timeout = duration(
            "shutdown-timeout",
            &self.shutdown_timeout,
            file.shutdown_timeout,
            "30s",
        )?;
        let client_cache_ttl = duration(
            "client-cache-ttl",
            &self.client_cache_ttl,
            file.client_cache_ttl,
            "5s",
        )?;
        let refresh_max_rotations = pick_v(&self.refresh_max_rotations, file.refresh_max_rotations)
            .map(|s| parse_count("refresh-max-rotations", &s))
            .transpose()?;
        let db_pool_size = pick_v(&self.db_pool_size, file.db_pool_size)
            .map(|s| parse_count("db-pool-size", &s))
            .transpose()?
            .unwrap_or(8);
        let workers = pick_v(&self.workers, file.workers)
            .map(|s| parse_count("workers", &s))
            .transpose()?;
        let writer_queue = pick_v(&self.writer_queue, file.writer_queue)
            .map(|s| parse_count("writer-queue", &s))
            .transpose()?
            .unwrap_or(crate::db::DEFAULT_WRITER_QUEUE as i64);
        let revocations_public = pick_v(&self.revocations_public, file.revocations_public)
            .map(|s| parse_bool("revocations-public", &s))
            .transpose()?
            .unwrap_or(false);

        for (name, v) in [
            ("access-token-ttl", access_token_ttl),
            ("refresh-idle-ttl", refresh_idle_ttl),
            ("refresh-absolute-ttl", refresh_absolute_ttl),
            ("jwks-max-age", jwks_max_age),
        ] {
            if v <= 0 {
                return Err(invalid(format!("{name} must be greater than zero")));
            }
        }
        if refresh_idle_ttl > refresh_absolute_ttl {
            return Err(invalid(format!(
                "refresh-idle-ttl ({refresh_idle_ttl}s) must not exceed refresh-absolute-ttl ({refresh_absolute_ttl}s)"
            )));
        }
        if refresh_grace > 300 {
            return Err(invalid("refresh-grace must be at most 5 minutes"));
        }
        if matches!(refresh_max_rotations, Some(n) if n < 1) {
            return Err(invalid("refresh-max-rotations must be at least 1"));
        }
        if !(1..=256).contains(&db_pool_size) {
            return Err(invalid("db-pool-size must be between 1 and 256"));
        }
        if matches!(workers, Some(n) if !(1..=256).contains(&n)) {
            return Err(invalid("workers must be between 1 and 256"));
        }
        let insecure_http = pick_v(&self.insecure_http, file.insecure_http)
            .map(|s| parse_bool("insecure-http", &s))
            .transpose()?
            .unwrap_or(false);
        let metrics_bind = pick(&self.metrics_bind, file.metrics_bind)
            .map(|raw| {
                raw.parse::<SocketAddr>().map_err(|_| {
                    invalid(format!(
                        "metrics-bind: `{raw}` is not an address like 127.0.0.1:9090"
                    ))
                })
            })
            .transpose()?;
        if metrics_bind.is_some_and(|m| m == bind && m.port() != 0) {
            return Err(invalid(
                "metrics-bind must differ from bind: metrics are not served on the public listener",
            ));
        }
        if !(1..=1_000_000).contains(&writer_queue) {
            return Err(invalid("writer-queue must be between 1 and 1000000"));
        }

        let log_format = pick(&self.log_format, file.log_format)
            .map(|s| LogFormat::parse(&s))
            .transpose()?
            .unwrap_or_else(LogFormat::for_stderr);
        let limits = LimitSettings::resolve(limit_values).map_err(ConfigError)?;

        let key_secret = match self
            .key_secret
            .clone()
            .or(file.key_secret)
            .map(SensitiveSetting::into_inner)
        {
            Some(s) if s.len() < 16 => {
                return Err(invalid("key-secret must be at least 16 characters"));
            }
            Some(s) => KeySecretSource::Configured(KeySecret::new(s)),
            None => KeySecretSource::File(default_key_secret_path(&database_url)),
        };

        Ok(Settings {
            bind,
            issuer,
            database_url,
            access_token_ttl,
            refresh_idle_ttl,
            refresh_absolute_ttl,
            refresh_grace,
            refresh_max_rotations,
            key_secret,
            key_publish_lead,
            jwks_max_age,
            db_pool_size: db_pool_size as u32,
            workers: workers.map(|n| n as usize),
            gc_interval,
            writer_queue: writer_queue as usize,
            insecure_http,
            metrics_bind,
            shutdown_timeout,
            client_cache_ttl,
            demo: false,
            revocations_public,
            log_format,
            limits,
        })
    }

    /// The abuse-limit settings, flag (or environment) over file, still unparsed.
    fn limit_values(&self, file: &mut FileSettings) -> RawLimits {
        fn pick(flag: &Option<String>, file: &mut Option<toml::Value>) -> Option<String> {
            flag.clone().or(file.take().map(value_to_string))
        }
        RawLimits {
            trusted_proxies: pick(&self.trusted_proxies, &mut file.trusted_proxies),
            forwarded_header: self
                .forwarded_header
                .clone()
                .or(file.forwarded_header.take()),
            sign_in_free_failures: pick(
                &self.sign_in_free_failures,
                &mut file.sign_in_free_failures,
            ),
            sign_in_backoff: pick(&self.sign_in_backoff, &mut file.sign_in_backoff),
            sign_in_backoff_max: pick(&self.sign_in_backoff_max, &mut file.sign_in_backoff_max),
            sign_in_ip_failures: pick(&self.sign_in_ip_failures, &mut file.sign_in_ip_failures),
            client_auth_failures: pick(&self.client_auth_failures, &mut file.client_auth_failures),
            client_auth_ip_failures: pick(
                &self.client_auth_ip_failures,
                &mut file.client_auth_ip_failures,
            ),
            oauth_ip_requests: pick(&self.oauth_ip_requests, &mut file.oauth_ip_requests),
            rate_limit_max_keys: pick(&self.rate_limit_max_keys, &mut file.rate_limit_max_keys),
            password_hash_workers: pick(
                &self.password_hash_workers,
                &mut file.password_hash_workers,
            ),
            password_hash_queue: pick(&self.password_hash_queue, &mut file.password_hash_queue),
        }
    }

    fn read_file(&self) -> Result<FileSettings, ConfigError> {
        let (path, required) = match &self.config {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from("lineage.toml"), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(FileSettings::default());
            }
            Err(e) => return Err(invalid(format!("cannot read {}: {e}", path.display()))),
        };
        toml::from_str(&text).map_err(|e| {
            let msg = e.message().replace('\n', " ");
            invalid(format!("{}: {msg}", path.display()))
        })
    }
}

/// `lineage.db` → `lineage.db.key`; for PostgreSQL, `lineage.key` in the working directory.
fn default_key_secret_path(url: &DatabaseUrl) -> PathBuf {
    match url {
        DatabaseUrl::Sqlite { path } => {
            let p = Path::new(path);
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            p.with_file_name(format!("{name}.key"))
        }
        DatabaseUrl::Postgres { .. } => PathBuf::from("lineage.key"),
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
            return Err(invalid(format!(
                "refusing to serve an http:// issuer on {}: set --issuer https://… (TLS in front), \
                 bind a loopback address, or pass --insecure-http",
                self.bind
            )));
        }
        Ok(())
    }

    /// Settings for tests and embedding: defaults with the given database.
    pub fn for_database(database_url: DatabaseUrl, key_secret: KeySecret) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            issuer: None,
            database_url,
            access_token_ttl: 600,
            refresh_idle_ttl: 7 * 86_400,
            refresh_absolute_ttl: 30 * 86_400,
            refresh_grace: 5,
            refresh_max_rotations: None,
            key_secret: KeySecretSource::Configured(key_secret),
            key_publish_lead: 600,
            jwks_max_age: 300,
            db_pool_size: 8,
            workers: Some(2),
            gc_interval: 0,
            writer_queue: crate::db::DEFAULT_WRITER_QUEUE,
            insecure_http: false,
            metrics_bind: None,
            shutdown_timeout: 30,
            // Tests change clients between requests and expect the next request to see it.
            client_cache_ttl: 0,
            demo: false,
            revocations_public: false,
            log_format: LogFormat::Text,
            limits: LimitSettings {
                password_hash_workers: 2,
                ..LimitSettings::default()
            },
        }
    }
}

impl KeySecretSource {
    /// The configured secret, or the one in the key file — created (0600) on first use.
    pub fn load(&self) -> anyhow::Result<KeySecret> {
        use anyhow::Context;
        let path = match self {
            KeySecretSource::Configured(s) => return Ok(s.clone()),
            KeySecretSource::File(p) => p,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let secret = text.trim().to_string();
                if secret.len() < 16 {
                    anyhow::bail!("the key secret in {} is too short", path.display());
                }
                warn_if_readable_by_others(path);
                return Ok(KeySecret::new(secret));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read the key secret {}", path.display()));
            }
        }
        let mut bytes = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| anyhow::anyhow!("no randomness available"))?;
        use base64::Engine;
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        write_private_file(path, &secret)
            .with_context(|| format!("cannot create the key secret file {}", path.display()))?;
        tracing::warn!(
            path = %path.display(),
            "no key secret configured: generated one into this file (mode 0600). Back it up with the \
             database, or set LINEAGE_KEY_SECRET; without it the signing keys cannot be decrypted"
        );
        Ok(KeySecret::new(secret))
    }
}

#[cfg(unix)]
fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, format!("{contents}\n"))
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "the key secret file is readable by other users; chmod 600 it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("x", "600").ok(), Some(600));
        assert_eq!(parse_duration("x", "10m").ok(), Some(600));
        assert_eq!(parse_duration("x", "7d").ok(), Some(604_800));
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
            config: Some(PathBuf::from("/nonexistent/lineage.toml")),
            ..Default::default()
        };
        let file: FileSettings = toml::from_str(&format!(
            "key_secret = \"{KEY}\"\ndatabase_url = \"{url}\"\n"
        ))
        .unwrap_or_default();
        assert_eq!(file.key_secret, Some(SensitiveSetting::new(KEY)));
        let settings = SettingsArgs {
            config: None,
            ..args.clone()
        }
        .resolve()
        .map_err(|e| e.to_string());
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
                config: Some(PathBuf::from("/nonexistent/lineage.toml")),
                ..Default::default()
            };
            assert!(args.resolve().is_err(), "{raw}");
        }
        let err = parse_duration("refresh-absolute-ttl", "9223372036854775807")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("refresh-absolute-ttl"), "{err}");
        assert_eq!(parse_duration("x", "3650d").ok(), Some(MAX_DURATION));
    }

    #[test]
    fn revocations_public_is_false_unless_set() {
        let resolve = |v: Option<&str>| {
            SettingsArgs {
                revocations_public: v.map(str::to_string),
                config: Some(PathBuf::from("/dev/null")),
                ..Default::default()
            }
            .resolve()
            .map(|s| s.revocations_public)
        };
        assert_eq!(resolve(None).ok(), Some(false));
        assert_eq!(resolve(Some("true")).ok(), Some(true));
        assert_eq!(resolve(Some("0")).ok(), Some(false));
        assert!(resolve(Some("maybe")).is_err());
        let file = std::env::temp_dir().join(format!("lineage-{}.toml", std::process::id()));
        let written = std::fs::write(&file, "revocations_public = true\n");
        let from_file = SettingsArgs {
            config: Some(file.clone()),
            ..Default::default()
        }
        .resolve()
        .map(|s| s.revocations_public);
        let _ = std::fs::remove_file(&file);
        assert!(written.is_ok());
        assert_eq!(from_file.ok(), Some(true));
    }

    #[test]
    fn log_format_from_flag_or_file() {
        let dir = std::env::temp_dir().join(format!("lineage-conf-{}", uuid::Uuid::new_v4()));
        assert!(std::fs::create_dir_all(&dir).is_ok());
        let file = dir.join("lineage.toml");
        assert!(std::fs::write(&file, "log_format = \"json\"\n").is_ok());
        let from_file = SettingsArgs {
            config: Some(file.clone()),
            ..Default::default()
        };
        assert_eq!(
            from_file.resolve().ok().map(|s| s.log_format),
            Some(LogFormat::Json)
        );
        let flag_wins = SettingsArgs {
            log_format: Some("TEXT".into()),
            ..from_file.clone()
        };
        assert_eq!(
            flag_wins.resolve().ok().map(|s| s.log_format),
            Some(LogFormat::Text)
        );
        let wrong = SettingsArgs {
            log_format: Some("yaml".into()),
            ..from_file
        };
        let err = wrong
            .resolve()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("log-format"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn idle_longer_than_absolute_is_rejected() {
        let args = SettingsArgs {
            refresh_idle_ttl: Some("31d".into()),
            config: Some(PathBuf::from("/nonexistent/lineage.toml")),
            ..Default::default()
        };
        assert!(args.resolve().is_err());
        let args = SettingsArgs {
            refresh_idle_ttl: Some("31d".into()),
            ..Default::default()
        };
        let err = args
            .resolve()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("refresh-idle-ttl"), "{err}");
    }
}
