//! `Validator`: checks lineage access tokens locally — signature by a key from the issuer's JWKS,
//! then header and claims (RFC 9068 §4) — and, optionally, against the revocation feed. A token
//! bound to a DPoP key (RFC 9449) is accepted only with a proof signed by that key.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use lineage_jwt::dpop::{self, ReplayCache};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::claims::{AccessClaims, RawClaims};
use crate::clock::{Clock, SharedClock, SystemClock};
use crate::error::{
    AuthError, AuthErrorKind, BuildError, DpopError, FeedError, ProofError, Scheme, TokenError,
};
use crate::jwks::{CachePolicy, JwksSource, KeySnapshot, KeyStore, Metadata, parse_jwks};
use crate::revocation::{
    ClientCredentials, FeedOptions, PollOutcome, RevocationStatus, Revocations,
};

/// RFC 8414 §3: where the metadata lives, relative to the issuer.
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
/// lineage's revocation feed, relative to the issuer.
pub const REVOCATIONS_PATH: &str = "/revocations";

/// Validates lineage access tokens. Cheap to clone (one `Arc`); share one per process.
#[derive(Clone)]
pub struct Validator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator")
            .field("issuer", &self.inner.issuer)
            .field("audiences", &self.inner.audiences)
            .finish_non_exhaustive()
    }
}

struct Inner {
    issuer: String,
    audiences: Vec<String>,
    leeway: i64,
    realm: Option<Arc<str>>,
    /// How old a DPoP proof's `iat` may be, in seconds.
    dpop_max_age: i64,
    /// The `jti`s of the DPoP proofs accepted within the `iat` window.
    replay: ReplayCache,
    /// The API's URL as clients see it, without a trailing `/`: the base of a proof's `htu`.
    public_url: Option<String>,
    clock: SharedClock,
    keys: KeyStore,
    revocations: Option<Arc<Revocations>>,
    poller: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(poller) = &self.poller {
            poller.abort();
        }
    }
}

/// Configures a [`Validator`]; see [`Validator::builder`].
pub struct ValidatorBuilder {
    issuer: String,
    audiences: Vec<String>,
    leeway: Duration,
    realm: Option<String>,
    clock: SharedClock,
    dpop_max_age: Duration,
    dpop_replay_capacity: usize,
    public_url: Option<String>,
    jwks_uri: Option<String>,
    static_jwks: Option<String>,
    jwks_refetch_interval: Duration,
    jwks_default_ttl: Duration,
    jwks_max_ttl: Duration,
    revocation_poll: Option<Duration>,
    revocations_uri: Option<String>,
    revocation_page_limit: u32,
    credentials: Option<ClientCredentials>,
    http: Option<reqwest::Client>,
    http_timeout: Duration,
}

impl Validator {
    /// Start configuring a validator for tokens issued by `issuer` (e.g.
    /// `http://127.0.0.1:8080`; a trailing `/` is ignored).
    ///
    /// Defaults: leeway 10 s; JWKS refetched at most every 10 s, cached for its `max-age`
    /// (300 s without one, at most 1 h); revocation feed polled every 5 s, 1,000 entries per
    /// page, entries kept as long as the feed says (the server's access-token lifetime plus
    /// skew); HTTP timeout 5 s; DPoP proofs accepted up to 60 s old, their `jti`s remembered in
    /// a cache of 100,000. The feed needs `.client_credentials(..)` unless the server serves it
    /// publicly.
    pub fn builder(issuer: impl Into<String>) -> ValidatorBuilder {
        let issuer: String = issuer.into();
        ValidatorBuilder {
            issuer: issuer.trim_end_matches('/').to_string(),
            audiences: Vec::new(),
            leeway: Duration::from_secs(10),
            realm: None,
            clock: Arc::new(SystemClock),
            dpop_max_age: Duration::from_secs(60),
            dpop_replay_capacity: 100_000,
            public_url: None,
            jwks_uri: None,
            static_jwks: None,
            jwks_refetch_interval: Duration::from_secs(10),
            jwks_default_ttl: Duration::from_secs(300),
            jwks_max_ttl: Duration::from_secs(3600),
            revocation_poll: Some(Duration::from_secs(5)),
            revocations_uri: None,
            revocation_page_limit: 1000,
            credentials: None,
            http: None,
            http_timeout: Duration::from_secs(5),
        }
    }
}

fn secs(d: Duration) -> i64 {
    // Round up so a sub-second setting never becomes "no limit".
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i64::try_from(s).unwrap_or(i64::MAX)
}

impl ValidatorBuilder {
    /// An audience this API accepts (the `aud` of the clients allowed to call it). Required;
    /// call again to accept several.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Allowed clock skew for `exp`, `nbf` and `iat`, and how far in the future a DPoP proof's
    /// `iat` may be. Keep it small.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The `realm` named in `WWW-Authenticate` challenges. Default: the first audience.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// Where "now" comes from, in unix seconds; any `Fn() -> i64` works.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How old a DPoP proof may be (its `iat`, RFC 9449 §11.1), default 60 s. Proofs are made
    /// per request, so this only needs to cover the client's clock skew and the request's
    /// time in flight.
    pub fn dpop_proof_max_age(mut self, max_age: Duration) -> Self {
        self.dpop_max_age = max_age;
        self
    }

    /// How many DPoP proof `jti`s are remembered to refuse replays (default 100,000: a few
    /// MB). A proof's `jti` is kept while its `iat` is inside the accepted window. When the
    /// cache is full the oldest entry is dropped and proofs no newer than it are refused, so a
    /// flood shrinks the window but never lets a replay through.
    pub fn dpop_replay_capacity(mut self, capacity: usize) -> Self {
        self.dpop_replay_capacity = capacity.max(1);
        self
    }

    /// The URL clients call this API at, e.g. `https://api.example.com` behind a proxy: the
    /// scheme, host and port of a DPoP proof's `htu`, and a path prefix if the proxy strips one
    /// (`https://example.com/api` + request path `/notes` = `https://example.com/api/notes`).
    /// Without it the actix extractor takes them from the request's connection info, which
    /// trusts `Forwarded` and `X-Forwarded-*` headers: set this in production.
    pub fn public_url(mut self, url: impl Into<String>) -> Self {
        self.public_url = Some(url.into());
        self
    }

    /// Use this JWKS URL instead of discovering it from the issuer's metadata.
    pub fn jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(uri.into());
        self
    }

    /// Trust exactly the keys of this JWKS document and never fetch any (tests, air-gapped
    /// deployments). Combine with `.revocation_poll(None)` to make no network calls at all.
    pub fn static_jwks(mut self, jwks_json: impl Into<String>) -> Self {
        self.static_jwks = Some(jwks_json.into());
        self
    }

    /// Minimum time between two JWKS fetches, whether for an unknown `kid` or an expired cache.
    pub fn jwks_refetch_interval(mut self, interval: Duration) -> Self {
        self.jwks_refetch_interval = interval;
        self
    }

    /// How long the JWKS is cached when the response carries no `Cache-Control: max-age`.
    pub fn jwks_default_ttl(mut self, ttl: Duration) -> Self {
        self.jwks_default_ttl = ttl;
        self
    }

    /// Upper bound on how long a JWKS is cached, whatever its `max-age` says.
    pub fn jwks_max_ttl(mut self, ttl: Duration) -> Self {
        self.jwks_max_ttl = ttl;
        self
    }

    /// Poll the revocation feed this often; `None` turns revocation checks off.
    pub fn revocation_poll(mut self, every: Option<Duration>) -> Self {
        self.revocation_poll = every;
        self
    }

    /// Use this URL for the revocation feed instead of the one the metadata names
    /// (`lineage_revocation_feed_endpoint`, else `{issuer}/revocations`).
    pub fn revocations_uri(mut self, uri: impl Into<String>) -> Self {
        self.revocations_uri = Some(uri.into());
        self
    }

    /// This API's own client at lineage, registered with `--permission revocations`: the feed
    /// is read with it (HTTP Basic). The secret never appears in `Debug` output or logs.
    pub fn client_credentials(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        self.credentials = Some(ClientCredentials {
            id: client_id.into(),
            secret: client_secret.into(),
        });
        self
    }

    /// Entries asked for per request to the feed (default 1,000, the server's maximum); a poll
    /// follows the pages until none is left.
    pub fn revocation_page_limit(mut self, limit: u32) -> Self {
        self.revocation_page_limit = limit.max(1);
        self
    }

    /// Use this HTTP client (proxies, TLS roots, …). Its own timeouts apply.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Timeout of each request to the authorization server (default 5 s; ignored with
    /// `http_client`).
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.http_timeout = timeout;
        self
    }

    /// Discover the JWKS, load it, and (if enabled) read the revocation feed once and start
    /// polling it in the background (needs a Tokio runtime, which actix-web provides).
    ///
    /// Fails if the metadata or the JWKS cannot be read: without keys nothing would validate.
    /// A revocation feed that cannot be read only logs a warning.
    pub async fn build(self) -> Result<Validator, BuildError> {
        lineage_jwt::crypto::install();
        if self.audiences.is_empty() {
            return Err(BuildError::NoAudience);
        }
        if !(self.issuer.starts_with("http://") || self.issuer.starts_with("https://")) {
            return Err(BuildError::InvalidIssuer(self.issuer));
        }
        let public_url = self.public_url.map(public_base).transpose()?;
        let now = self.clock.now();
        let http = match self.http {
            Some(c) => c,
            None => reqwest::Client::builder()
                .timeout(self.http_timeout)
                .build()
                .map_err(|e| BuildError::HttpClient(e.to_string()))?,
        };
        let mut feed_from_metadata = None;
        let keys = match self.static_jwks {
            Some(json) => {
                KeyStore::fixed(parse_jwks(json.as_bytes()).map_err(|e| BuildError::Jwks {
                    url: "(static)".into(),
                    reason: e.0,
                })?)
            }
            None => {
                let uri = match self.jwks_uri {
                    Some(uri) => uri,
                    None => {
                        let meta = discover(&http, &self.issuer).await?;
                        feed_from_metadata = meta.lineage_revocation_feed_endpoint;
                        meta.jwks_uri
                    }
                };
                let source = JwksSource {
                    uri: uri.clone(),
                    http: http.clone(),
                    policy: CachePolicy {
                        min_refetch: secs(self.jwks_refetch_interval),
                        default_ttl: secs(self.jwks_default_ttl),
                        max_ttl: secs(self.jwks_max_ttl),
                    },
                };
                KeyStore::load(source, now)
                    .await
                    .map_err(|e| BuildError::Jwks {
                        url: uri,
                        reason: e.0,
                    })?
            }
        };
        let (revocations, poller) = match self.revocation_poll {
            None => (None, None),
            Some(every) => {
                let uri = self
                    .revocations_uri
                    .or(feed_from_metadata)
                    .unwrap_or_else(|| format!("{}{REVOCATIONS_PATH}", self.issuer));
                let options = FeedOptions {
                    uri,
                    credentials: self.credentials,
                    page_limit: self.revocation_page_limit,
                    leeway: secs(self.leeway),
                };
                let rev = Arc::new(Revocations::new(options, http, Arc::clone(&self.clock)));
                let task = start_polling(&rev, every).await;
                (Some(rev), task)
            }
        };
        let realm = self
            .realm
            .or_else(|| self.audiences.first().cloned())
            .map(Arc::from);
        let (leeway, dpop_max_age) = (secs(self.leeway), secs(self.dpop_max_age));
        Ok(Validator {
            inner: Arc::new(Inner {
                issuer: self.issuer,
                audiences: self.audiences,
                leeway,
                realm,
                dpop_max_age,
                // The whole window a proof's iat may be in: as old as allowed, plus the skew.
                replay: ReplayCache::new(
                    self.dpop_replay_capacity,
                    dpop_max_age.saturating_add(leeway),
                ),
                public_url,
                clock: self.clock,
                keys,
                revocations,
                poller,
            }),
        })
    }
}

/// A public URL checked and reduced to what prefixes a request path: `scheme://host[:port]` and
/// the path without its trailing `/`.
fn public_base(url: String) -> Result<String, BuildError> {
    let invalid = || BuildError::InvalidPublicUrl(url.clone());
    let parsed = reqwest::Url::parse(&url).map_err(|_| invalid())?;
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.host_str().is_none()
        || parsed.query().is_some()
        || parsed.fragment().is_some()
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err(invalid());
    }
    Ok(parsed.as_str().trim_end_matches('/').to_string())
}

async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Metadata, BuildError> {
    let url = format!("{issuer}{METADATA_PATH}");
    let fail = |reason: String| BuildError::Discovery {
        url: url.clone(),
        reason,
    };
    let resp = http
        .get(&url)
        .send()
        .await
        .map_err(|e| fail(crate::describe(&e)))?;
    if !resp.status().is_success() {
        return Err(fail(format!("HTTP {}", resp.status())));
    }
    let meta: Metadata = resp.json().await.map_err(|e| fail(crate::describe(&e)))?;
    // RFC 8414 §3.3: the metadata must name the issuer it was fetched for.
    if meta.issuer.trim_end_matches('/') != issuer {
        return Err(BuildError::IssuerMismatch {
            url,
            found: meta.issuer,
            expected: issuer.to_string(),
        });
    }
    Ok(meta)
}

/// The JOSE header fields that matter; others (`jku`, `jwk`, `x5u`, …) are ignored — keys come
/// only from the issuer's JWKS, never from the token.
#[derive(Deserialize)]
struct Header {
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
    crit: Option<IgnoredAny>,
}

/// A compact JWS split into its parts, header checked.
struct Parts<'t> {
    kid: String,
    signing_input: &'t str,
    payload: &'t str,
    signature: &'t str,
}

fn split(token: &str) -> Result<Parts<'_>, TokenError> {
    let (signing_input, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let (header, payload) = signing_input.split_once('.').ok_or(TokenError::Malformed)?;
    if header.is_empty() || payload.is_empty() || payload.contains('.') {
        return Err(TokenError::Malformed);
    }
    let header = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| TokenError::MalformedHeader)?;
    let header: Header =
        serde_json::from_slice(&header).map_err(|_| TokenError::MalformedHeader)?;
    // RFC 8725 §3.1: the algorithm is fixed by the verifier, never taken from the token.
    if header.alg != "EdDSA" {
        return Err(TokenError::unsupported_alg(&header.alg));
    }
    // RFC 9068 §4: typ must be at+jwt (media types compare case-insensitively).
    let typ_ok = header.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
    });
    if !typ_ok {
        return Err(TokenError::WrongType);
    }
    // RFC 7515 §4.1.11: we understand no extensions, so any `crit` means reject.
    if header.crit.is_some() {
        return Err(TokenError::CriticalHeader);
    }
    let kid = header.kid.ok_or(TokenError::MissingKeyId)?;
    if signature.is_empty() {
        return Err(TokenError::BadSignature);
    }
    Ok(Parts {
        kid,
        signing_input,
        payload,
        signature,
    })
}

impl Validator {
    /// Validate a bearer token: signature, header, claims and (if enabled) revocation. May fetch
    /// the JWKS once (stale cache, or an unknown `kid` within the rate limit). A token bound to
    /// a DPoP key is refused ([`TokenError::BoundToDpopKey`], RFC 9449 §7.2): it needs
    /// [`validate_dpop`](Self::validate_dpop).
    pub async fn validate(&self, token: &str) -> Result<AccessClaims, AuthError> {
        let now = self.inner.clock.now();
        let parts = split(token).map_err(|e| self.reject(e))?;
        let keys = self.inner.keys.keys_for(&parts.kid, now).await;
        self.finish(&parts, &keys, now)
            .and_then(unbound)
            .map_err(|e| self.reject(e))
    }

    /// The same without any I/O: an unknown `kid` is rejected instead of refetched. For
    /// synchronous contexts; `validate` is the one to use in request handlers.
    pub fn validate_cached(&self, token: &str) -> Result<AccessClaims, AuthError> {
        let now = self.inner.clock.now();
        let parts = split(token).map_err(|e| self.reject(e))?;
        let keys = self.inner.keys.snapshot();
        self.finish(&parts, &keys, now)
            .and_then(unbound)
            .map_err(|e| self.reject(e))
    }

    /// Validate a DPoP-bound token sent as `Authorization: DPoP <token>` with its proof, the
    /// `DPoP` header (RFC 9449 §7.1). The token is checked as [`validate`](Self::validate)
    /// does, then: it must be bound (`cnf.jkt`); the proof must verify (§4.3) with `htm` =
    /// `method`, `htu` = `htu` (the URI the client called, query and fragment ignored), `iat`
    /// no older than `dpop_proof_max_age` nor further ahead than the leeway, and `ath` = the
    /// token's hash; its key must be the one the token is bound to; and its `jti` must not have
    /// been seen before. The `jti` is recorded only when everything else passed, so a refused
    /// request does not use up its proof.
    ///
    /// Refusals answer with the `DPoP` scheme: `invalid_token` for the token,
    /// `invalid_dpop_proof` for the proof.
    pub async fn validate_dpop(
        &self,
        token: &str,
        proof: &str,
        method: &str,
        htu: &str,
    ) -> Result<AccessClaims, AuthError> {
        let now = self.inner.clock.now();
        let reject = |e: AuthError| {
            e.with_realm(self.inner.realm.clone())
                .with_scheme(Scheme::Dpop)
        };
        let parts = split(token).map_err(|e| reject(e.into()))?;
        let keys = self.inner.keys.keys_for(&parts.kid, now).await;
        let claims = self
            .finish(&parts, &keys, now)
            .map_err(|e| reject(e.into()))?;
        self.check_proof(&claims, token, proof, method, htu, now)
            .map_err(reject)?;
        Ok(claims)
    }

    /// RFC 9449 §7.1 for an already valid token.
    fn check_proof(
        &self,
        claims: &AccessClaims,
        token: &str,
        proof: &str,
        method: &str,
        htu: &str,
        now: i64,
    ) -> Result<(), AuthError> {
        let Some(jkt) = claims.dpop_jkt() else {
            return Err(TokenError::NotDpopBound.into());
        };
        let expect = dpop::Expect {
            htm: method,
            htu,
            now,
            max_age: self.inner.dpop_max_age,
            max_skew: self.inner.leeway,
            access_token: Some(token),
        };
        let proof = dpop::verify(proof, &expect).map_err(DpopError::Proof)?;
        if proof.jkt != jkt {
            return Err(DpopError::KeyMismatch.into());
        }
        if !self.inner.replay.first_use(&proof, now) {
            return Err(DpopError::Proof(ProofError::Replayed).into());
        }
        Ok(())
    }

    /// The `htu` a DPoP proof for a request to `path` must carry: the [public
    /// URL](ValidatorBuilder::public_url) and `path` when one is configured, else
    /// `{scheme}://{host}{path}` with the scheme and host (with port) the request arrived with.
    pub fn expected_htu(&self, scheme: &str, host: &str, path: &str) -> String {
        match &self.inner.public_url {
            Some(base) => format!("{base}{path}"),
            None => format!("{scheme}://{host}{path}"),
        }
    }

    /// Validate the token of an `Authorization` header value (RFC 6750 §2.1). `None`, or another
    /// scheme (including `DPoP`, which needs the proof: see
    /// [`validate_dpop`](Self::validate_dpop)), is [`AuthErrorKind::MissingToken`].
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
    ) -> Result<AccessClaims, AuthError> {
        let token =
            bearer_token(authorization).map_err(|e| e.with_realm(self.inner.realm.clone()))?;
        self.validate(token).await
    }

    fn reject(&self, e: TokenError) -> AuthError {
        AuthError::from(e).with_realm(self.inner.realm.clone())
    }

    /// An error for this API (its realm in the challenge).
    pub fn error(&self, kind: AuthErrorKind) -> AuthError {
        AuthError::from(kind).with_realm(self.inner.realm.clone())
    }

    fn finish(
        &self,
        parts: &Parts<'_>,
        keys: &KeySnapshot,
        now: i64,
    ) -> Result<AccessClaims, TokenError> {
        let key = keys.get(&parts.kid).ok_or(TokenError::UnknownKey)?;
        let valid = jsonwebtoken::crypto::verify(
            parts.signature,
            parts.signing_input.as_bytes(),
            key,
            Algorithm::EdDSA,
        )
        .map_err(|_| TokenError::BadSignature)?;
        if !valid {
            return Err(TokenError::BadSignature);
        }
        let payload = URL_SAFE_NO_PAD
            .decode(parts.payload)
            .map_err(|_| TokenError::MalformedClaims)?;
        let claims = RawClaims::parse(&payload)?.into_claims()?;
        self.check_claims(&claims, now)?;
        if let Some(rev) = &self.inner.revocations {
            rev.check(&claims)?;
        }
        Ok(claims)
    }

    fn check_claims(&self, c: &AccessClaims, now: i64) -> Result<(), TokenError> {
        let inner = &self.inner;
        if c.iss != inner.issuer {
            return Err(TokenError::WrongIssuer);
        }
        if !c
            .aud
            .iter()
            .any(|a| inner.audiences.iter().any(|ours| ours == a))
        {
            return Err(TokenError::WrongAudience);
        }
        let leeway = inner.leeway;
        if now.saturating_sub(leeway) >= c.exp {
            return Err(TokenError::Expired);
        }
        let not_before = c.nbf.unwrap_or(c.iat).max(c.iat);
        if now.saturating_add(leeway) < not_before {
            return Err(TokenError::NotYetValid);
        }
        Ok(())
    }

    /// Poll the revocation feed now (tests, or after an admin action) instead of waiting for
    /// the next background poll.
    pub async fn poll_revocations(&self) -> Result<PollOutcome, FeedError> {
        match &self.inner.revocations {
            Some(rev) => rev.poll().await,
            None => Err(FeedError::Disabled),
        }
    }

    /// What the validator knows from the revocation feed, `None` when polling is off.
    pub fn revocation_status(&self) -> Option<RevocationStatus> {
        self.inner.revocations.as_ref().map(|r| r.status())
    }

    /// The key ids currently trusted.
    pub fn key_ids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self
            .inner
            .keys
            .snapshot()
            .kids()
            .map(str::to_owned)
            .collect();
        kids.sort();
        kids
    }

    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    pub fn audiences(&self) -> &[String] {
        &self.inner.audiences
    }

    pub fn realm(&self) -> Option<&str> {
        self.inner.realm.as_deref()
    }

    /// The configured [public URL](ValidatorBuilder::public_url), without a trailing `/`.
    pub fn public_url(&self) -> Option<&str> {
        self.inner.public_url.as_deref()
    }

    #[cfg_attr(not(feature = "actix"), allow(dead_code))]
    pub(crate) fn realm_arc(&self) -> Option<Arc<str>> {
        self.inner.realm.clone()
    }
}

/// Bearer tokens are not bound: one carrying `cnf` needs its proof (RFC 9449 §7.2).
fn unbound(claims: AccessClaims) -> Result<AccessClaims, TokenError> {
    match claims.cnf {
        Some(_) => Err(TokenError::BoundToDpopKey),
        None => Ok(claims),
    }
}

/// The access token of an `Authorization` header and the scheme it came with.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Credentials<'a> {
    /// `Authorization: Bearer <token>` (RFC 6750 §2.1).
    Bearer(&'a str),
    /// `Authorization: DPoP <token>` (RFC 9449 §7.1); the proof is in the `DPoP` header.
    Dpop(&'a str),
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}([redacted])", self.scheme().as_str())
    }
}

impl<'a> Credentials<'a> {
    /// Parse an `Authorization` header value; schemes are case-insensitive. `None`, or a scheme
    /// other than `Bearer` and `DPoP`, is [`AuthErrorKind::MissingToken`] (RFC 6750 §3.1).
    pub fn parse(authorization: Option<&'a str>) -> Result<Self, AuthError> {
        let (scheme, token) = split_scheme(authorization)?;
        if scheme.eq_ignore_ascii_case("bearer") {
            token68(token, Scheme::Bearer).map(Credentials::Bearer)
        } else if scheme.eq_ignore_ascii_case("dpop") {
            token68(token, Scheme::Dpop).map(Credentials::Dpop)
        } else {
            Err(AuthError::missing_token())
        }
    }

    pub fn token(&self) -> &'a str {
        match self {
            Credentials::Bearer(t) | Credentials::Dpop(t) => t,
        }
    }

    pub fn scheme(&self) -> Scheme {
        match self {
            Credentials::Bearer(_) => Scheme::Bearer,
            Credentials::Dpop(_) => Scheme::Dpop,
        }
    }
}

/// The token of `Authorization: Bearer <token>` (RFC 6750 §2.1; the scheme is case-insensitive).
/// Any other scheme, `DPoP` included, is [`AuthErrorKind::MissingToken`].
pub fn bearer_token(authorization: Option<&str>) -> Result<&str, AuthError> {
    let (scheme, token) = split_scheme(authorization)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        // Another scheme: as if no credentials were sent (RFC 6750 §3.1).
        return Err(AuthError::missing_token());
    }
    token68(token, Scheme::Bearer)
}

/// The scheme and the credentials after it.
fn split_scheme(authorization: Option<&str>) -> Result<(&str, &str), AuthError> {
    let Some(value) = authorization else {
        return Err(AuthError::missing_token());
    };
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    Ok((scheme, rest.trim_start_matches(' ')))
}

/// The credentials must be one token of the b64token / token68 syntax (RFC 6750 §2.1,
/// RFC 9449 §7.1).
fn token68(token: &str, scheme: Scheme) -> Result<&str, AuthError> {
    let refuse = |why| AuthError::from(AuthErrorKind::InvalidRequest(why)).with_scheme(scheme);
    if token.is_empty() {
        return Err(refuse(match scheme {
            Scheme::Bearer => "the Bearer credentials are empty",
            Scheme::Dpop => "the DPoP credentials are empty",
        }));
    }
    // b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    let body = token.trim_end_matches('=');
    if body.is_empty()
        || !body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
    {
        return Err(refuse(match scheme {
            Scheme::Bearer => "the Bearer credentials are not a b64token",
            Scheme::Dpop => "the DPoP credentials are not a token68",
        }));
    }
    Ok(token)
}

/// Read the feed once now, then every `every` on the current Tokio runtime (without one, only
/// `poll_revocations()` reads it).
async fn start_polling(
    rev: &Arc<Revocations>,
    every: Duration,
) -> Option<tokio::task::JoinHandle<()>> {
    rev.poll_and_log().await;
    let every = every.max(Duration::from_millis(100));
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => Some(runtime.spawn(Arc::clone(rev).run(every))),
        Err(_) => {
            tracing::warn!(
                "no Tokio runtime: the revocation feed is read only by poll_revocations()"
            );
            None
        }
    }
}
