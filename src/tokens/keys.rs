//! Signing keys (Ed25519 and RSA, `key_material.rs`): encrypted at rest, published in the JWKS
//! before they sign (lead time) and after they stop signing (until every token they signed has
//! expired). Each algorithm has its own active key and rotates on its own.
//!
//! Every node derives the active key of an algorithm from the same rows and the clock — the key
//! with the latest `activates_at` that has been reached — so nodes sharing one PostgreSQL agree
//! without talking.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use diesel::prelude::*;
use jsonwebtoken::{DecodingKey, EncodingKey};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;

use super::key_material::{self, Material};
pub use super::key_material::{KeyAlgorithm, PublicJwk};

use crate::configuration::KeySecret;
use crate::db::models::signing_keys::{self as key_rows, SigningKeyRow};
use crate::db::{DbConnection, StoreError};
use crate::domain::Seconds;

/// Extra time a retired key stays published beyond the longest token lifetime (clock skew).
pub const RETIRED_KEY_SKEW: Seconds = Seconds::new(60);

/// The AEAD key that protects private signing keys at rest, derived from the key secret.
pub struct KeyEncryption(LessSafeKey);

impl fmt::Debug for KeyEncryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyEncryption([redacted])")
    }
}

struct Len(usize);
impl ring::hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-SHA256 of the key secret with a purpose label: independent keys from one secret.
pub fn derive_key(secret: &KeySecret, purpose: &[u8]) -> [u8; 32] {
    let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"lineage key secret v1");
    let prk = salt.extract(secret.expose());
    let mut out = [0u8; 32];
    let info = [purpose];
    // 32 bytes is far below HKDF-SHA256's output limit, so expand/fill cannot fail.
    if let Ok(okm) = prk.expand(&info, Len(32)) {
        let _ = okm.fill(&mut out);
    }
    out
}

impl KeyEncryption {
    pub fn new(secret: &KeySecret) -> Self {
        let key = derive_key(secret, b"signing-key encryption");
        // AES_256_GCM takes exactly 32 bytes; this cannot fail.
        let unbound = UnboundKey::new(&AES_256_GCM, &key).unwrap_or_else(|_| unreachable!());
        Self(LessSafeKey::new(unbound))
    }

    fn seal(&self, kid: &str, plaintext: &[u8]) -> anyhow::Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| anyhow::anyhow!("no randomness"))?;
        let mut buf = plaintext.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(kid.as_bytes()),
                &mut buf,
            )
            .map_err(|_| anyhow::anyhow!("encrypting the signing key failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    fn open(&self, kid: &str, sealed: &str) -> anyhow::Result<Vec<u8>> {
        let raw = URL_SAFE_NO_PAD.decode(sealed)?;
        if raw.len() < NONCE_LEN {
            anyhow::bail!("stored signing key {kid} is truncated");
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| anyhow::anyhow!("bad nonce on signing key {kid}"))?;
        let mut buf = ct.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut buf)
            .map_err(|_| {
                anyhow::anyhow!(
                    "cannot decrypt signing key {kid}: \
                 the key secret differs from the one it was stored with"
                )
            })?;
        Ok(plain.to_vec())
    }
}

/// RFC 7638 thumbprint of an Ed25519 public key: SHA-256 over the canonical required members.
pub fn thumbprint(public_key: &[u8]) -> String {
    PublicJwk::Okp {
        x: URL_SAFE_NO_PAD.encode(public_key),
    }
    .thumbprint()
}

/// One usable key. `Debug` shows the kid and times, never key material.
pub struct SigningKey {
    pub kid: String,
    pub algorithm: KeyAlgorithm,
    /// The public key as the JWKS publishes it.
    pub public: PublicJwk,
    pub created_at: i64,
    pub activates_at: i64,
    pub retired_at: Option<i64>,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("activates_at", &self.activates_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    fn from_row(row: &SigningKeyRow, enc: &KeyEncryption) -> anyhow::Result<Self> {
        let algorithm: KeyAlgorithm = row.algorithm.parse().map_err(anyhow::Error::msg)?;
        let pkcs8 = enc.open(&row.kid, &row.private_key_encrypted)?;
        let Material {
            jwk,
            encoding,
            decoding,
        } = key_material::parse(algorithm, &pkcs8)
            .map_err(|e| anyhow::anyhow!("stored signing key {}: {e}", row.kid))?;
        if jwk.thumbprint() != row.kid {
            anyhow::bail!("stored signing key {} does not match its kid", row.kid);
        }
        Ok(Self {
            kid: row.kid.clone(),
            algorithm,
            public: jwk,
            created_at: row.created_at,
            activates_at: row.activates_at,
            retired_at: row.retired_at,
            encoding,
            decoding,
        })
    }

    /// Published while pending, active, or retired less than `max_token_ttl` (+ skew) ago.
    pub fn is_published(&self, now: i64, max_token_ttl: Seconds) -> bool {
        match self.retired_at {
            None => true,
            Some(r) => now < r + max_token_ttl + RETIRED_KEY_SKEW,
        }
    }

    pub fn state(&self, now: i64, max_token_ttl: Seconds) -> KeyState {
        key_state(self.activates_at, self.retired_at, now, max_token_ttl)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Published, not yet signing.
    Pending,
    Active,
    /// No longer signs; still published so tokens it signed keep validating.
    Retired,
    /// Every token it signed has expired; no longer published.
    Expired,
}

pub fn key_state(
    activates_at: i64,
    retired_at: Option<i64>,
    now: i64,
    max_ttl: Seconds,
) -> KeyState {
    match retired_at {
        Some(r) if now >= r + max_ttl + RETIRED_KEY_SKEW => KeyState::Expired,
        Some(r) if now >= r => KeyState::Retired,
        _ if now < activates_at => KeyState::Pending,
        _ => KeyState::Active,
    }
}

/// The keys one node currently knows.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<Arc<SigningKey>>,
}

impl KeySet {
    /// The key that signs access tokens (Ed25519) at `now`.
    pub fn active(&self, now: i64) -> Option<&Arc<SigningKey>> {
        self.active_for(KeyAlgorithm::EdDSA, now)
    }

    /// The key of `alg` that signs at `now`: the latest activation already reached and not
    /// retired.
    pub fn active_for(&self, alg: KeyAlgorithm, now: i64) -> Option<&Arc<SigningKey>> {
        self.keys
            .iter()
            .filter(|k| k.algorithm == alg)
            .filter(|k| k.activates_at <= now && k.retired_at.is_none_or(|r| now < r))
            .max_by(|a, b| (a.activates_at, &a.kid).cmp(&(b.activates_at, &b.kid)))
    }

    pub fn published(
        &self,
        now: i64,
        max_token_ttl: Seconds,
    ) -> impl Iterator<Item = &Arc<SigningKey>> {
        self.keys
            .iter()
            .filter(move |k| k.is_published(now, max_token_ttl))
    }

    pub fn get(&self, kid: &str) -> Option<&Arc<SigningKey>> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// The claims of a JWT of type `typ` signed by one of these keys, checked with the algorithm of
    /// the key its `kid` names — never the header's word for it (RFC 8725 §3.1). Times, issuer and
    /// audience are the caller's to check. `None` for anything this server did not sign so.
    pub fn decode<T: serde::de::DeserializeOwned>(&self, token: &str, typ: &str) -> Option<T> {
        use jsonwebtoken::{Algorithm, Validation};
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.typ.as_deref() != Some(typ) {
            return None;
        }
        let key = self.get(header.kid.as_deref()?)?;
        if header.alg != key.algorithm.jwt()
            || !matches!(header.alg, Algorithm::RS256 | Algorithm::EdDSA)
        {
            return None;
        }
        let mut validation = Validation::new(key.algorithm.jwt());
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<T>(token, &key.decoding, &validation)
            .ok()
            .map(|data| data.claims)
    }

    /// Load every key still published, reusing already-decrypted ones from `previous`.
    pub fn load(
        conn: &mut DbConnection,
        enc: &KeyEncryption,
        previous: Option<&KeySet>,
        now: i64,
        max_token_ttl: Seconds,
    ) -> Result<KeySet, StoreError> {
        let rows = key_rows::list_published(conn, now - max_token_ttl - RETIRED_KEY_SKEW)?;
        let known: HashMap<&str, &Arc<SigningKey>> = previous
            .map(|p| p.keys.iter().map(|k| (k.kid.as_str(), k)).collect())
            .unwrap_or_default();
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            match known.get(row.kid.as_str()) {
                Some(k) if k.retired_at == row.retired_at => keys.push(Arc::clone(k)),
                _ => keys.push(Arc::new(SigningKey::from_row(&row, enc)?)),
            }
        }
        Ok(KeySet { keys })
    }
}

/// A fresh key of `alg` as a row ready to insert. RSA generation takes a noticeable moment, so
/// callers generate before they open the transaction that inserts.
pub fn generate(
    enc: &KeyEncryption,
    alg: KeyAlgorithm,
    now: i64,
    activates_at: i64,
) -> anyhow::Result<SigningKeyRow> {
    let pkcs8 = key_material::generate(alg)?;
    let jwk = key_material::parse(alg, &pkcs8)?.jwk;
    let kid = jwk.thumbprint();
    Ok(SigningKeyRow {
        private_key_encrypted: enc.seal(&kid, &pkcs8)?,
        public_key: jwk.stored(),
        kid,
        algorithm: alg.as_str().into(),
        created_at: now,
        activates_at,
        retired_at: None,
    })
}

/// On first start (and the first start of a version that added an algorithm) an algorithm has no
/// key: make one that signs at once. Serialised across nodes so two nodes starting together on
/// one PostgreSQL still end up with one active key per algorithm. Returns the kids created.
pub fn ensure_signing_keys(
    conn: &mut DbConnection,
    enc: &KeyEncryption,
    now: i64,
) -> Result<Vec<String>, StoreError> {
    let mut created = Vec::new();
    for alg in KeyAlgorithm::ALL {
        if key_rows::count_unretired(conn, alg.as_str())? > 0 {
            continue;
        }
        let row = generate(enc, alg, now, now)?;
        let inserted = conn.transaction(|conn| {
            key_rows::lock_for_rotation(conn)?;
            if key_rows::count_unretired(conn, alg.as_str())? > 0 {
                return Ok::<_, StoreError>(false);
            }
            key_rows::insert(conn, &row)?;
            Ok(true)
        })?;
        if inserted {
            created.push(row.kid);
        }
    }
    Ok(created)
}

/// Add a new key of `alg` that starts signing after `lead`; every older key of that algorithm
/// retires at that moment.
pub fn rotate(
    conn: &mut DbConnection,
    enc: &KeyEncryption,
    alg: KeyAlgorithm,
    now: i64,
    lead: Seconds,
) -> Result<SigningKeyRow, StoreError> {
    let row = generate(enc, alg, now, now + lead.max(Seconds::ZERO))?;
    conn.transaction(|conn| {
        key_rows::lock_for_rotation(conn)?;
        key_rows::retire_all_unretired(conn, alg.as_str(), row.activates_at)?;
        key_rows::insert(conn, &row)?;
        Ok(row)
    })
}

/// Verify an encryption round trip at start-up, so a wrong key secret fails loudly and early.
pub fn check_secret(conn: &mut DbConnection, enc: &KeyEncryption) -> Result<(), StoreError> {
    for row in key_rows::list_published(conn, i64::MIN)?
        .iter()
        .filter(|r| r.retired_at.is_none())
    {
        SigningKey::from_row(row, enc)?;
    }
    Ok(())
}
