//! The issuer's signing keys: discovered from RFC 8414 metadata, fetched from the JWKS, parsed
//! once into `DecodingKey`s and cached as long as `Cache-Control: max-age` allows. An unknown
//! `kid` triggers a refetch, at most one per `min_refetch` seconds whatever the traffic, so a
//! flood of forged key ids costs the authorization server one request per interval.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, ETAG, HeaderMap, IF_NONE_MATCH};
use serde::Deserialize;

/// The keys known at one moment. Replaced whole, never mutated, so readers need no lock while
/// they verify.
pub(crate) struct KeySnapshot {
    keys: HashMap<String, DecodingKey>,
    /// Clock seconds after which the set should be re-read (`i64::MAX` for static keys).
    expires_at: i64,
    etag: Option<String>,
}

impl KeySnapshot {
    pub fn get(&self, kid: &str) -> Option<&DecodingKey> {
        self.keys.get(kid)
    }

    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }
}

/// Where keys come from when they are not fixed.
pub(crate) struct JwksSource {
    pub uri: String,
    pub http: reqwest::Client,
    pub policy: CachePolicy,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct CachePolicy {
    /// Minimum seconds between two fetches (unknown-kid refetches and expiry refreshes alike).
    pub min_refetch: i64,
    /// Used when the response has no `Cache-Control: max-age`.
    pub default_ttl: i64,
    /// Upper bound on any `max-age`, so a rotated-out key cannot stay trusted for days.
    pub max_ttl: i64,
}

impl CachePolicy {
    fn ttl(&self, headers: &HeaderMap) -> i64 {
        let ttl = headers
            .get(CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age)
            .unwrap_or(self.default_ttl);
        ttl.min(self.max_ttl).max(self.min_refetch)
    }
}

/// `max-age` from a `Cache-Control` value; `no-cache`/`no-store` mean zero.
pub(crate) fn max_age(cache_control: &str) -> Option<i64> {
    let mut found = None;
    for directive in cache_control.split(',').map(str::trim) {
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "no-cache" | "no-store" => return Some(0),
            "max-age" => {
                found = value
                    .trim()
                    .trim_matches('"')
                    .parse::<i64>()
                    .ok()
                    .map(|v| v.max(0))
            }
            _ => {}
        }
    }
    found
}

pub(crate) struct KeyStore {
    current: RwLock<Arc<KeySnapshot>>,
    source: Option<JwksSource>,
    /// Clock seconds of the last fetch attempt (successful or not).
    last_attempt: AtomicI64,
    /// One fetch at a time; late arrivals re-check instead of fetching again.
    fetching: tokio::sync::Mutex<()>,
}

/// Why a fetch failed; logged, never shown to API clients.
#[derive(Debug)]
pub(crate) struct FetchError(pub String);

impl KeyStore {
    pub fn fixed(keys: HashMap<String, DecodingKey>) -> Self {
        Self::with(
            KeySnapshot {
                keys,
                expires_at: i64::MAX,
                etag: None,
            },
            None,
            i64::MIN,
        )
    }

    /// Fetch once now; fails if the JWKS cannot be read (the validator would accept nothing).
    pub async fn load(source: JwksSource, now: i64) -> Result<Self, FetchError> {
        let first = fetch(&source, None, now).await?;
        let snapshot = match first {
            Fetched::New(s) => s,
            Fetched::NotModified { .. } => {
                return Err(FetchError("304 Not Modified without a cached copy".into()));
            }
        };
        Ok(Self::with(snapshot, Some(source), now))
    }

    fn with(snapshot: KeySnapshot, source: Option<JwksSource>, last_attempt: i64) -> Self {
        Self {
            current: RwLock::new(Arc::new(snapshot)),
            source,
            last_attempt: AtomicI64::new(last_attempt),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    pub fn snapshot(&self) -> Arc<KeySnapshot> {
        match self.current.read() {
            Ok(s) => Arc::clone(&s),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn replace(&self, snapshot: KeySnapshot) {
        let snapshot = Arc::new(snapshot);
        match self.current.write() {
            Ok(mut s) => *s = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
    }

    /// The keys to verify a token naming `kid` with, refreshed first when they are stale or
    /// `kid` is unknown and the rate limit allows a fetch.
    pub async fn keys_for(&self, kid: &str, now: i64) -> Arc<KeySnapshot> {
        let snapshot = self.snapshot();
        let Some(source) = &self.source else {
            return snapshot;
        };
        let known = snapshot.get(kid).is_some();
        if known && now < snapshot.expires_at {
            return snapshot;
        }
        if known {
            // Stale but usable: one request refreshes, the others go on with what is cached.
            let Ok(_guard) = self.fetching.try_lock() else {
                return snapshot;
            };
            if now < self.snapshot().expires_at || !self.may_fetch(source, now) {
                return self.snapshot();
            }
            self.refresh(source, now).await;
            return self.snapshot();
        }
        if !self.may_fetch(source, now) {
            return snapshot;
        }
        let _guard = self.fetching.lock().await;
        // Whoever held the lock may have just fetched: look again before fetching.
        let latest = self.snapshot();
        if latest.get(kid).is_some() || !self.may_fetch(source, now) {
            return latest;
        }
        self.refresh(source, now).await;
        self.snapshot()
    }

    fn may_fetch(&self, source: &JwksSource, now: i64) -> bool {
        now.saturating_sub(self.last_attempt.load(Ordering::Acquire)) >= source.policy.min_refetch
    }

    async fn refresh(&self, source: &JwksSource, now: i64) {
        self.last_attempt.store(now, Ordering::Release);
        let previous = self.snapshot();
        match fetch(source, previous.etag.as_deref(), now).await {
            Ok(Fetched::New(snapshot)) => {
                tracing::debug!(keys = snapshot.keys.len(), uri = %source.uri, "JWKS refreshed");
                self.replace(snapshot);
            }
            Ok(Fetched::NotModified { expires_at }) => self.replace(KeySnapshot {
                keys: previous.keys.clone(),
                expires_at,
                etag: previous.etag.clone(),
            }),
            Err(e) => {
                // Keep trusting the keys we have; try again after the minimum interval.
                tracing::warn!(
                    error = %e.0,
                    uri = %source.uri,
                    "could not refresh the JWKS; keeping the cached keys"
                );
                self.replace(KeySnapshot {
                    keys: previous.keys.clone(),
                    expires_at: now.saturating_add(source.policy.min_refetch),
                    etag: previous.etag.clone(),
                });
            }
        }
    }
}

enum Fetched {
    New(KeySnapshot),
    NotModified { expires_at: i64 },
}

async fn fetch(source: &JwksSource, etag: Option<&str>, now: i64) -> Result<Fetched, FetchError> {
    let mut req = source.http.get(&source.uri);
    if let Some(etag) = etag {
        req = req.header(IF_NONE_MATCH, etag);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| FetchError(crate::describe(&e)))?;
    let expires_at = now.saturating_add(source.policy.ttl(resp.headers()));
    if resp.status() == StatusCode::NOT_MODIFIED && etag.is_some() {
        return Ok(Fetched::NotModified { expires_at });
    }
    if !resp.status().is_success() {
        return Err(FetchError(format!("HTTP {}", resp.status())));
    }
    let etag = resp
        .headers()
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp
        .bytes()
        .await
        .map_err(|e| FetchError(crate::describe(&e)))?;
    let keys = parse_jwks(&body)?;
    Ok(Fetched::New(KeySnapshot {
        keys,
        expires_at,
        etag,
    }))
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct OkpJwk {
    kty: String,
    crv: Option<String>,
    x: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
}

/// The Ed25519 signing keys of a JWKS (RFC 7517, RFC 8037), by `kid`. Keys of other types, for
/// other uses, or without a `kid` are skipped: tokens must name their key.
pub(crate) fn parse_jwks(body: &[u8]) -> Result<HashMap<String, DecodingKey>, FetchError> {
    let set: JwkSet =
        serde_json::from_slice(body).map_err(|e| FetchError(format!("not a JWK set: {e}")))?;
    let mut keys = HashMap::with_capacity(set.keys.len());
    for value in set.keys {
        let Ok(jwk) = serde_json::from_value::<OkpJwk>(value) else {
            continue;
        };
        let usable = jwk.kty == "OKP"
            && jwk.crv.as_deref() == Some("Ed25519")
            && jwk.alg.as_deref().is_none_or(|a| a == "EdDSA")
            && jwk.use_.as_deref().is_none_or(|u| u == "sig");
        let (Some(kid), Some(x)) = (jwk.kid, jwk.x) else {
            continue;
        };
        if !usable {
            tracing::debug!(%kid, "skipping a JWKS entry that is not an Ed25519 signing key");
            continue;
        }
        match URL_SAFE_NO_PAD.decode(x.as_bytes()) {
            Ok(raw) if raw.len() == 32 => {
                keys.insert(kid, DecodingKey::from_ed_der(&raw));
            }
            _ => tracing::warn!(%kid, "skipping a JWKS entry whose x is not a 32-byte Ed25519 key"),
        }
    }
    Ok(keys)
}

/// RFC 8414 metadata, only the fields used here.
#[derive(Deserialize)]
pub(crate) struct Metadata {
    pub issuer: String,
    pub jwks_uri: String,
    /// lineage's own addition to RFC 8414: where its revocation feed is.
    #[serde(default)]
    pub lineage_revocation_feed_endpoint: Option<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn cache_control() {
        assert_eq!(max_age("public, max-age=300"), Some(300));
        assert_eq!(max_age("Max-Age=\"60\""), Some(60));
        assert_eq!(max_age("no-store"), Some(0));
        assert_eq!(max_age("public"), None);
        let policy = CachePolicy {
            min_refetch: 10,
            default_ttl: 300,
            max_ttl: 3600,
        };
        let mut h = HeaderMap::new();
        assert_eq!(policy.ttl(&h), 300);
        h.insert(CACHE_CONTROL, "max-age=1".parse().unwrap());
        assert_eq!(policy.ttl(&h), 10);
        h.insert(CACHE_CONTROL, "max-age=999999".parse().unwrap());
        assert_eq!(policy.ttl(&h), 3600);
    }

    #[test]
    fn jwks_keeps_only_ed25519_signing_keys() {
        let x = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let body = serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "good", "use": "sig", "alg": "EdDSA"},
            {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "bare"},
            {"kty": "OKP", "crv": "Ed25519", "x": x},
            {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "enc", "use": "enc"},
            {"kty": "OKP", "crv": "X25519", "x": x, "kid": "x25519"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "rsa"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "OKP", "crv": "Ed25519", "x": "AAAA", "kid": "short"},
            "not even an object"
        ]});
        let keys = parse_jwks(body.to_string().as_bytes()).unwrap();
        let mut kids: Vec<_> = keys.keys().cloned().collect();
        kids.sort();
        assert_eq!(kids, vec!["bare", "good"]);
        assert!(parse_jwks(b"{}").is_err());
    }
}
