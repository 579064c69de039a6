//! Every setting, declared once. A row gives the setting's name (the key in `lineage.toml`; with
//! `-` for `_`, the flag), its `LINEAGE_*` variable, its `--help` text (the doc comment), its type
//! and default, and the reader that parses and checks it (`parse.rs`). `secret` marks a setting
//! whose text `Debug` must never show.
//!
//! Settings that constrain each other (idle within absolute lifetime, back-off below its maximum,
//! metrics off the public listener) are checked once all are read: `Settings::check`.

use std::net::SocketAddr;

use ipnet::IpNet;

use super::parse::{
    address, at_least, boolean, count, database_url, duration, duration_at_most, issuer,
    key_secret, log_format, optional, positive_at_most, positive_duration,
};
use super::{ConfigError, KeySecret, LogFormat};
use crate::db::{DEFAULT_WRITER_QUEUE, DatabaseUrl};
use crate::domain::Seconds;
use crate::limits::RateLimit;
use crate::limits::client_ip::ForwardedHeader;
use crate::limits::settings::{forwarded_header, one_per_core, rate, rate_limit, trusted_proxies};

const MINUTE: i64 = 60;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

declare_settings! {
    /// Address to listen on.
    bind: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8080)),
        env "LINEAGE_BIND", parse address("127.0.0.1:8080");
    /// Public base URL of the server (the `iss` of every token), no trailing slash.
    issuer: Option<String> = None,
        env "LINEAGE_ISSUER", parse optional(issuer);
    /// `sqlite://PATH` (default `sqlite://lineage.db`) or `postgres://…`.
    #[arg(hide_env_values = true)]
    database_url: DatabaseUrl = DatabaseUrl::Sqlite { path: "lineage.db".into() },
        env "LINEAGE_DATABASE_URL", parse database_url, secret;
    /// Access-token lifetime: seconds, or with a unit (`10m`).
    access_token_ttl: Seconds = Seconds::new(10 * MINUTE),
        env "LINEAGE_ACCESS_TOKEN_TTL", parse positive_duration;
    /// Refresh-family idle timeout (`7d`).
    refresh_idle_ttl: Seconds = Seconds::new(7 * DAY),
        env "LINEAGE_REFRESH_IDLE_TTL", parse positive_duration;
    /// Refresh-family absolute lifetime (`30d`), never extended by rotation.
    refresh_absolute_ttl: Seconds = Seconds::new(30 * DAY),
        env "LINEAGE_REFRESH_ABSOLUTE_TTL", parse positive_duration;
    /// Retry grace for a just-rotated refresh token (`5s`; `0` disables).
    refresh_grace: Seconds = Seconds::new(5),
        env "LINEAGE_REFRESH_GRACE", parse duration_at_most(Seconds::new(5 * MINUTE), "5 minutes");
    /// Maximum rotations of one family (unset = unlimited).
    refresh_max_rotations: Option<i64> = None,
        env "LINEAGE_REFRESH_MAX_ROTATIONS", parse optional(at_least(1));
    /// Secret that encrypts signing keys at rest (default: generated into a 0600 file beside the
    /// database).
    #[arg(hide_env_values = true)]
    key_secret: Option<KeySecret> = None,
        env "LINEAGE_KEY_SECRET", parse optional(key_secret), secret;
    /// How long a rotated-in signing key is published before it signs (`10m`).
    key_publish_lead: Seconds = Seconds::new(10 * MINUTE),
        env "LINEAGE_KEY_PUBLISH_LEAD", parse duration;
    /// `Cache-Control: max-age` of /jwks.json (`5m`).
    jwks_max_age: Seconds = Seconds::new(5 * MINUTE),
        env "LINEAGE_JWKS_MAX_AGE", parse positive_duration;
    /// Database connections in the pool.
    db_pool_size: u32 = 8,
        env "LINEAGE_DB_POOL_SIZE", parse count(1..=256);
    /// HTTP worker threads (default: one per core).
    workers: Option<usize> = None,
        env "LINEAGE_WORKERS", parse optional(count(1..=256));
    /// Interval of the background housekeeping (`60s`; `0` turns it off).
    gc_interval: Seconds = Seconds::new(MINUTE),
        env "LINEAGE_GC_INTERVAL", parse duration;
    /// SQLite: writes that may queue for the writer thread before requests get 503.
    writer_queue: usize = DEFAULT_WRITER_QUEUE,
        env "LINEAGE_WRITER_QUEUE", parse count(1..=1_000_000);
    /// Allow an http:// issuer on a non-loopback address (tokens and cookies then cross the
    /// network in clear unless something in front adds TLS).
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    insecure_http: bool = false,
        env "LINEAGE_INSECURE_HTTP", parse boolean;
    /// Address of a separate listener for Prometheus `/metrics` (off by default; never the public
    /// port).
    metrics_bind: Option<SocketAddr> = None,
        env "LINEAGE_METRICS_BIND", parse optional(address("127.0.0.1:9090"));
    /// On SIGTERM/SIGINT: how long in-flight requests may take to finish (`30s`).
    shutdown_timeout: Seconds = Seconds::new(30),
        env "LINEAGE_SHUTDOWN_TIMEOUT", parse duration;
    /// How long a node reuses an authenticated client's row (`5s`; `0` = read it every time):
    /// how long a deleted client or a replaced secret may still be accepted by a node.
    client_cache_ttl: Seconds = Seconds::new(5),
        env "LINEAGE_CLIENT_CACHE_TTL", parse duration_at_most(Seconds::new(HOUR), "an hour");
    /// Serve the revocation feed to anyone (default false: a client with the `revocations`
    /// permission).
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    revocations_public: bool = false,
        env "LINEAGE_REVOCATIONS_PUBLIC", parse boolean;
    /// Back-channel logout: how long one delivery may take before it counts as failed (`5s`).
    backchannel_logout_timeout: Seconds = Seconds::new(5),
        env "LINEAGE_BACKCHANNEL_LOGOUT_TIMEOUT",
        parse positive_at_most(Seconds::new(MINUTE), "a minute");
    /// Back-channel logout tokens one node sends at once (16).
    backchannel_logout_concurrency: usize = 16,
        env "LINEAGE_BACKCHANNEL_LOGOUT_CONCURRENCY", parse count(1..=1024);
    /// Attempts at one back-channel logout token before it is given up (12).
    backchannel_logout_attempts: i64 = 12,
        env "LINEAGE_BACKCHANNEL_LOGOUT_ATTEMPTS", parse count(1..=100);
    /// How often a node looks for due back-channel logout tokens, besides right after each
    /// revocation it commits (`10s`).
    backchannel_logout_interval: Seconds = Seconds::new(10),
        env "LINEAGE_BACKCHANNEL_LOGOUT_INTERVAL",
        parse positive_at_most(Seconds::new(HOUR), "an hour");
    /// DPoP: how old a proof's `iat` may be (`60s`); a proof up to 10 s in the future is also
    /// accepted (clock skew).
    dpop_proof_max_age: Seconds = Seconds::new(MINUTE),
        env "LINEAGE_DPOP_PROOF_MAX_AGE", parse positive_at_most(Seconds::new(10 * MINUTE), "10 minutes");
    /// DPoP: require a server nonce in every proof at /token (RFC 9449 §8; default false).
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    dpop_nonce: bool = false,
        env "LINEAGE_DPOP_NONCE", parse boolean;
    /// DPoP: proof ids (`jti`) one node remembers at most (1000000, about 100 MB when full);
    /// when full, the proof window shrinks rather than let a replay through.
    dpop_replay_capacity: usize = 1_000_000,
        env "LINEAGE_DPOP_REPLAY_CAPACITY", parse count(1000..=100_000_000);
    /// Log lines as `json` or `text` (default: text on a terminal, JSON otherwise).
    log_format: LogFormat = LogFormat::for_stderr(),
        env "LINEAGE_LOG_FORMAT", parse log_format;

    // Abuse limits: the README's "Abuse limits" section explains the defaults.

    /// Reverse proxies whose forwarding header is believed: addresses or CIDR ranges,
    /// comma-separated.
    trusted_proxies: Vec<IpNet> = Vec::new(),
        env "LINEAGE_TRUSTED_PROXIES", parse trusted_proxies;
    /// The header trusted proxies append the client's address to: `x-forwarded-for` or `forwarded`.
    forwarded_header: ForwardedHeader = ForwardedHeader::XForwardedFor,
        env "LINEAGE_FORWARDED_HEADER", parse forwarded_header;
    /// Failed sign-ins of one username before the back-off starts (5).
    sign_in_free_failures: i64 = 5,
        env "LINEAGE_SIGN_IN_FREE_FAILURES", parse count(0..=1000);
    /// First sign-in back-off, doubling with each further failure (`30s`; `0` = none).
    sign_in_backoff: Seconds = Seconds::new(30),
        env "LINEAGE_SIGN_IN_BACKOFF", parse duration;
    /// Longest sign-in back-off (`5m`).
    sign_in_backoff_max: Seconds = Seconds::new(5 * MINUTE),
        env "LINEAGE_SIGN_IN_BACKOFF_MAX", parse duration;
    /// Failed sign-ins per client address (`20/2h`; `off`).
    sign_in_ip_failures: Option<RateLimit> = rate(20, Seconds::new(2 * HOUR)),
        env "LINEAGE_SIGN_IN_IP_FAILURES", parse rate_limit;
    /// Failed client authentications per client id and address (`20/1m`; `off`).
    client_auth_failures: Option<RateLimit> = rate(20, Seconds::new(MINUTE)),
        env "LINEAGE_CLIENT_AUTH_FAILURES", parse rate_limit;
    /// Failed client authentications per address, any client id (`60/1m`; `off`).
    client_auth_ip_failures: Option<RateLimit> = rate(60, Seconds::new(MINUTE)),
        env "LINEAGE_CLIENT_AUTH_IP_FAILURES", parse rate_limit;
    /// Requests to /token, /revoke and /introspect per address (`50000/1s`; `off`).
    oauth_ip_requests: Option<RateLimit> = rate(50_000, Seconds::new(1)),
        env "LINEAGE_OAUTH_IP_REQUESTS", parse rate_limit;
    /// Keys each in-memory rate limiter tracks at most (100000).
    rate_limit_max_keys: usize = 100_000,
        env "LINEAGE_RATE_LIMIT_MAX_KEYS", parse count(1..=100_000_000);
    /// Password hashes computed at once (default: one per core).
    password_hash_workers: usize = one_per_core(),
        env "LINEAGE_PASSWORD_HASH_WORKERS", parse count(1..=256);
    /// Password hashes that may wait for a worker before sign-ins get 503 (16).
    password_hash_queue: usize = 16,
        env "LINEAGE_PASSWORD_HASH_QUEUE", parse count(0..=100_000);
}

/// A setting's text as a flag, a variable or a file value. The file may give a number, a boolean
/// or an array (`trusted_proxies = ["10.0.0.0/8", "127.0.0.1"]`): each is read as the text a flag
/// would carry (the array comma-separated).
#[derive(Clone, PartialEq, Eq)]
pub struct RawSetting(String);

impl RawSetting {
    fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for RawSetting {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

impl std::str::FromStr for RawSetting {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(s.into())
    }
}

impl std::fmt::Debug for RawSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> serde::Deserialize<'de> for RawSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        fn text(v: toml::Value) -> String {
            match v {
                toml::Value::String(s) => s,
                toml::Value::Array(items) => {
                    items.into_iter().map(text).collect::<Vec<_>>().join(",")
                }
                other => other.to_string(),
            }
        }
        toml::Value::deserialize(d).map(|v| Self(text(v)))
    }
}
