//! How a setting's text becomes its value. Every reader takes the setting's name (as its flag is
//! spelled, `access-token-ttl`) and the text, and names the setting in its one-line error.

use std::net::SocketAddr;
use std::ops::RangeInclusive;

use super::{ConfigError, KeySecret, LogFormat};
use crate::db::DatabaseUrl;
use crate::domain::Seconds;

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// No lifetime or interval may exceed this: `now + ttl` then always fits, with room to spare.
pub const MAX_DURATION: Seconds = Seconds::new(10 * 365 * 86_400);

/// Parse `600`, `600s`, `10m`, `2h`, `7d` into seconds.
pub fn parse_duration(name: &str, raw: &str) -> Result<Seconds, ConfigError> {
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
        .map(Seconds::new)
        .filter(|secs| *secs <= MAX_DURATION)
        .ok_or_else(|| invalid(format!("{name}: `{raw}` is longer than 10 years")))
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

/// A setting that may stay unset: when given, read by `read`.
pub(super) fn optional<T>(
    read: impl Fn(&str, &str) -> Result<T, ConfigError>,
) -> impl Fn(&str, &str) -> Result<Option<T>, ConfigError> {
    move |name, raw| read(name, raw).map(Some)
}

pub(super) fn duration(name: &str, raw: &str) -> Result<Seconds, ConfigError> {
    parse_duration(name, raw)
}

pub(super) fn positive_duration(name: &str, raw: &str) -> Result<Seconds, ConfigError> {
    match parse_duration(name, raw)? {
        secs if secs <= Seconds::ZERO => Err(invalid(format!("{name} must be greater than zero"))),
        secs => Ok(secs),
    }
}

/// A duration of at most `max`, which the message spells as `max_words`.
pub(super) fn duration_at_most(
    max: Seconds,
    max_words: &'static str,
) -> impl Fn(&str, &str) -> Result<Seconds, ConfigError> {
    move |name, raw| match parse_duration(name, raw)? {
        secs if secs > max => Err(invalid(format!("{name} must be at most {max_words}"))),
        secs => Ok(secs),
    }
}

/// A duration above zero and at most `max`.
pub(super) fn positive_at_most(
    max: Seconds,
    max_words: &'static str,
) -> impl Fn(&str, &str) -> Result<Seconds, ConfigError> {
    let at_most = duration_at_most(max, max_words);
    move |name, raw| {
        positive_duration(name, raw)?;
        at_most(name, raw)
    }
}

fn whole_number(name: &str, raw: &str) -> Result<i64, ConfigError> {
    raw.trim()
        .parse::<i64>()
        .map_err(|_| invalid(format!("{name}: `{raw}` is not a whole number")))
}

/// A whole number within `range` (which fits `T`).
pub(super) fn count<T: TryFrom<i64>>(
    range: RangeInclusive<i64>,
) -> impl Fn(&str, &str) -> Result<T, ConfigError> {
    move |name, raw| {
        let n = whole_number(name, raw)?;
        let out_of_range = || {
            invalid(format!(
                "{name} must be between {} and {}",
                range.start(),
                range.end()
            ))
        };
        if !range.contains(&n) {
            return Err(out_of_range());
        }
        T::try_from(n).map_err(|_| out_of_range())
    }
}

pub(super) fn at_least(min: i64) -> impl Fn(&str, &str) -> Result<i64, ConfigError> {
    move |name, raw| match whole_number(name, raw)? {
        n if n < min => Err(invalid(format!("{name} must be at least {min}"))),
        n => Ok(n),
    }
}

pub(super) fn boolean(name: &str, raw: &str) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(format!("{name}: `{raw}` is not true or false"))),
    }
}

/// A socket address; the message shows `example`.
pub(super) fn address(
    example: &'static str,
) -> impl Fn(&str, &str) -> Result<SocketAddr, ConfigError> {
    move |name, raw| {
        raw.parse()
            .map_err(|_| invalid(format!("{name}: `{raw}` is not an address like {example}")))
    }
}

pub(super) fn issuer(_name: &str, raw: &str) -> Result<String, ConfigError> {
    parse_issuer(raw)
}

pub(super) fn database_url(name: &str, raw: &str) -> Result<DatabaseUrl, ConfigError> {
    DatabaseUrl::parse(raw).map_err(|e| invalid(format!("{name}: {e}")))
}

pub(super) fn key_secret(name: &str, raw: &str) -> Result<KeySecret, ConfigError> {
    if raw.len() < 16 {
        return Err(invalid(format!("{name} must be at least 16 characters")));
    }
    Ok(KeySecret::new(raw.to_string()))
}

pub(super) fn log_format(_name: &str, raw: &str) -> Result<LogFormat, ConfigError> {
    LogFormat::parse(raw)
}
