//! DPoP proofs (RFC 9449): what the authorization server and resource servers both check, and
//! the device key a client signs them with.
//!
//! A proof is a JWT with `typ: dpop+jwt`, the public key that signed it in its `jwk` header and
//! `jti`, `htm`, `htu`, `iat` (plus `ath` at a resource server, `nonce` when the server asks for
//! one) in its payload. [`verify`] checks §4.3 items 1–10 except the replay and nonce checks,
//! which need state: [`ReplayCache`] is the bounded `jti` store both sides use, and the nonce is
//! the caller's (the server mints them). The key's RFC 7638 thumbprint (`jkt`) is what tokens
//! are bound to.
//!
//! Supported algorithms: ES256 (what WebCrypto, the iOS Secure Enclave and Android Keystore
//! offer) and EdDSA (Ed25519). Each is verified with ring.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair, UnparsedPublicKey,
};
use serde_json::{Map, Value};

/// The `alg` values a proof may use, as discovery's `dpop_signing_alg_values_supported` and
/// a resource server's `WWW-Authenticate: DPoP algs=…` list them.
pub const ALGORITHMS: &[&str] = &["ES256", "EdDSA"];

/// The `typ` header of a proof (§4.2).
pub const TYP: &str = "dpop+jwt";

/// Longest `jti` accepted: a UUID or 128+ random bits fit many times over.
const MAX_JTI: usize = 256;
/// Longest proof accepted, before anything is decoded.
const MAX_PROOF: usize = 4096;

/// Why a proof was refused (each is `invalid_dpop_proof` on the wire, §7.1 and §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofError {
    /// Not a JWS compact serialization, bad base64 or JSON, or a claim of the wrong type.
    Malformed(&'static str),
    /// `typ` is not `dpop+jwt`.
    Type,
    /// `alg` is not one this server accepts.
    Algorithm,
    /// The `jwk` header is missing, not a public key of the `alg`, or holds private members.
    Key(&'static str),
    Signature,
    /// `htm` is not the request's method.
    Method,
    /// `htu` is not the request's URI (query and fragment ignored, §4.3).
    Uri,
    /// `iat` is outside the accepted window.
    Time,
    /// `ath` is missing or is not the hash of the access token presented with it.
    AccessTokenHash,
    /// The `jti` was seen before within the window.
    Replayed,
}

impl fmt::Display for ProofError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProofError::Malformed(what) => write!(f, "the DPoP proof is malformed: {what}"),
            ProofError::Type => f.write_str("the DPoP proof's typ must be dpop+jwt"),
            ProofError::Algorithm => write!(
                f,
                "the DPoP proof's alg is not supported (use one of {})",
                ALGORITHMS.join(", ")
            ),
            ProofError::Key(what) => write!(f, "the DPoP proof's jwk is not usable: {what}"),
            ProofError::Signature => f.write_str("the DPoP proof's signature does not verify"),
            ProofError::Method => f.write_str("the DPoP proof's htm is not this request's method"),
            ProofError::Uri => f.write_str("the DPoP proof's htu is not this request's URI"),
            ProofError::Time => f.write_str("the DPoP proof's iat is too old or in the future"),
            ProofError::AccessTokenHash => {
                f.write_str("the DPoP proof's ath is missing or is not the access token's hash")
            }
            ProofError::Replayed => f.write_str("the DPoP proof was used before (same jti)"),
        }
    }
}

impl std::error::Error for ProofError {}

/// What a request must match.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// The HTTP method of the request, e.g. `POST`.
    pub htm: &'a str,
    /// The URI the request was sent to, as the client knew it (the server's public URL).
    pub htu: &'a str,
    /// Unix seconds now.
    pub now: i64,
    /// How old `iat` may be, in seconds.
    pub max_age: i64,
    /// How far in the future `iat` may be (clock skew), in seconds.
    pub max_skew: i64,
    /// The access token presented with the proof (resource servers): `ath` must be its hash.
    pub access_token: Option<&'a str>,
}

/// A proof that verified.
#[derive(Clone, PartialEq, Eq)]
pub struct Proof {
    /// The RFC 7638 SHA-256 thumbprint of the proof's key, base64url.
    pub jkt: String,
    pub jti: String,
    pub iat: i64,
    /// The server nonce the proof carries, if any.
    pub nonce: Option<String>,
}

// A jti is single-use, not secret, but there is no reason to print proofs' details in logs.
impl fmt::Debug for Proof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proof")
            .field("jkt", &self.jkt)
            .field("iat", &self.iat)
            .field("nonce", &self.nonce.as_ref().map(|_| "[present]"))
            .finish_non_exhaustive()
    }
}

/// Check a proof's form, key, signature, `htm`, `htu`, `iat` and (when `expect.access_token` is
/// given) `ath`. Replay and nonce are the caller's checks.
pub fn verify(proof: &str, expect: &Expect<'_>) -> Result<Proof, ProofError> {
    if proof.len() > MAX_PROOF {
        return Err(ProofError::Malformed("too long"));
    }
    let mut parts = proof.split('.');
    let (Some(h64), Some(p64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ProofError::Malformed("not a signed JWT"));
    };
    let header = json_object(h64)?;
    if header.get("typ").and_then(Value::as_str) != Some(TYP) {
        return Err(ProofError::Type);
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(ProofError::Algorithm)?;
    let key = PublicKey::from_jwk(alg, header.get("jwk"))?;
    let signature = B64
        .decode(s64)
        .map_err(|_| ProofError::Malformed("the signature is not base64url"))?;
    let signed = &proof[..h64.len() + 1 + p64.len()];
    key.verify(signed.as_bytes(), &signature)?;

    let claims = json_object(p64)?;
    let jti = string_claim(&claims, "jti")?.ok_or(ProofError::Malformed("no jti"))?;
    if jti.is_empty() || jti.len() > MAX_JTI {
        return Err(ProofError::Malformed("the jti is empty or too long"));
    }
    let htm = string_claim(&claims, "htm")?.ok_or(ProofError::Malformed("no htm"))?;
    if htm != expect.htm {
        return Err(ProofError::Method);
    }
    let htu = string_claim(&claims, "htu")?.ok_or(ProofError::Malformed("no htu"))?;
    if !same_uri(htu, expect.htu) {
        return Err(ProofError::Uri);
    }
    let iat = claims
        .get("iat")
        .ok_or(ProofError::Malformed("no iat"))?
        .as_i64()
        .ok_or(ProofError::Malformed("iat is not an integer"))?;
    if iat < expect.now - expect.max_age || iat > expect.now + expect.max_skew {
        return Err(ProofError::Time);
    }
    if let Some(token) = expect.access_token {
        let ath = string_claim(&claims, "ath")?.ok_or(ProofError::AccessTokenHash)?;
        if ath != access_token_hash(token) {
            return Err(ProofError::AccessTokenHash);
        }
    }
    let nonce = string_claim(&claims, "nonce")?.map(str::to_string);
    Ok(Proof {
        jkt: key.thumbprint(),
        jti: jti.to_string(),
        iat,
        nonce,
    })
}

/// Whether `s` has the shape of a SHA-256 JWK thumbprint (43 base64url characters), as a
/// `dpop_jkt` parameter (§10) must.
pub fn is_thumbprint(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `ath` (§4.2): base64url(SHA-256(access token)).
pub fn access_token_hash(access_token: &str) -> String {
    B64.encode(ring::digest::digest(
        &ring::digest::SHA256,
        access_token.as_bytes(),
    ))
}

/// §4.3 item 9: the same URI ignoring query and fragment, after the syntax-based normalisation
/// of RFC 3986 §6.2.2 and the scheme-based one of §6.2.3 (case of scheme and host, default port,
/// empty path is `/`, percent-encoding case).
pub fn same_uri(a: &str, b: &str) -> bool {
    // What a client usually sends: the URI exactly as the server names it (`b`, the request's
    // URI, which the caller builds), nothing to normalise.
    if a == b && !a.contains(['?', '#']) {
        return true;
    }
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => {
            a.scheme() == b.scheme()
                && a.host_str() == b.host_str()
                && a.port_or_known_default() == b.port_or_known_default()
                && a.path() == b.path()
                && !a.cannot_be_a_base()
        }
        _ => false,
    }
}

fn json_object(b64: &str) -> Result<Map<String, Value>, ProofError> {
    let bytes = B64
        .decode(b64)
        .map_err(|_| ProofError::Malformed("a part is not base64url"))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ProofError::Malformed("a part is not a JSON object")),
    }
}

/// A claim that must be a string when present.
fn string_claim<'a>(
    claims: &'a Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'a str>, ProofError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ProofError::Malformed(
            "a claim that must be a string is not",
        )),
    }
}

/// A proof's public key, checked against its `alg`.
enum PublicKey {
    /// x and y, 32 bytes each.
    P256 {
        x: Vec<u8>,
        y: Vec<u8>,
    },
    Ed25519 {
        x: Vec<u8>,
    },
}

impl PublicKey {
    fn from_jwk(alg: &str, jwk: Option<&Value>) -> Result<Self, ProofError> {
        let Some(Value::Object(jwk)) = jwk else {
            return Err(ProofError::Key("no jwk header"));
        };
        // §4.3 item 7: a public key only. Private members of EC and OKP keys are `d`; RSA's and
        // symmetric keys' are refused with their key types anyway.
        if ["d", "p", "q", "dp", "dq", "qi", "k"]
            .iter()
            .any(|m| jwk.contains_key(*m))
        {
            return Err(ProofError::Key("it holds private key material"));
        }
        let member = |name: &'static str| jwk.get(name).and_then(Value::as_str);
        let coordinate = |name: &'static str| -> Result<Vec<u8>, ProofError> {
            let text = member(name).ok_or(ProofError::Key("a coordinate is missing"))?;
            let bytes = B64
                .decode(text)
                .map_err(|_| ProofError::Key("a coordinate is not base64url"))?;
            // Canonical encodings only: the thumbprint is computed over these exact strings.
            if bytes.len() != 32 || B64.encode(&bytes) != text {
                return Err(ProofError::Key("a coordinate has the wrong length"));
            }
            Ok(bytes)
        };
        match (alg, member("kty"), member("crv")) {
            ("ES256", Some("EC"), Some("P-256")) => Ok(PublicKey::P256 {
                x: coordinate("x")?,
                y: coordinate("y")?,
            }),
            ("EdDSA", Some("OKP"), Some("Ed25519")) => Ok(PublicKey::Ed25519 {
                x: coordinate("x")?,
            }),
            ("ES256" | "EdDSA", _, _) => {
                Err(ProofError::Key("its kty or crv does not fit the alg"))
            }
            _ => Err(ProofError::Algorithm),
        }
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), ProofError> {
        let checked = match self {
            PublicKey::P256 { x, y } => {
                let mut point = Vec::with_capacity(65);
                point.push(0x04);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).verify(message, signature)
            }
            PublicKey::Ed25519 { x } => {
                UnparsedPublicKey::new(&ED25519, x).verify(message, signature)
            }
        };
        checked.map_err(|_| ProofError::Signature)
    }

    /// The canonical JWK (RFC 7638 §3.2: required members, lexicographic order, no spaces).
    fn canonical(&self) -> String {
        match self {
            PublicKey::P256 { x, y } => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                B64.encode(x),
                B64.encode(y)
            ),
            PublicKey::Ed25519 { x } => {
                format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, B64.encode(x))
            }
        }
    }

    fn thumbprint(&self) -> String {
        let canonical = self.canonical();
        B64.encode(ring::digest::digest(
            &ring::digest::SHA256,
            canonical.as_bytes(),
        ))
    }

    fn jwk(&self) -> Value {
        serde_json::from_str(&self.canonical()).unwrap_or(Value::Null)
    }
}

/// The `jti`s of proofs accepted within the `iat` window, in bounded memory.
///
/// An entry is kept until its proof's `iat` leaves the window. When the cache is full the oldest
/// entry is dropped and the cache stops accepting any proof whose `iat` is not newer than the
/// dropped one's, so a replay can never get through because its first use was forgotten: under
/// a flood the window shrinks instead.
pub struct ReplayCache {
    inner: Mutex<Seen>,
    capacity: usize,
    max_age: i64,
}

#[derive(Default)]
struct Seen {
    /// Key (hash of jkt and jti) → the iat it was seen with.
    entries: HashMap<[u8; 16], i64>,
    /// Insertion order, for expiry and eviction.
    order: VecDeque<([u8; 16], i64)>,
    /// Proofs with `iat` at or before this are refused: a first use this old may be forgotten.
    floor: i64,
}

impl fmt::Debug for ReplayCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayCache")
            .field("capacity", &self.capacity)
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

impl ReplayCache {
    /// A cache for proofs accepted up to `max_age` seconds old (plus the skew allowance: pass the
    /// whole window), holding at most `capacity` entries.
    pub fn new(capacity: usize, max_age: i64) -> Self {
        Self {
            inner: Mutex::new(Seen {
                floor: i64::MIN,
                ..Seen::default()
            }),
            capacity: capacity.max(1),
            max_age,
        }
    }

    /// Record the proof's `jti` (per key); false if it was seen before within the window, or if
    /// the cache can no longer vouch for proofs that old.
    pub fn first_use(&self, proof: &Proof, now: i64) -> bool {
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            format!("{}\u{0}{}", proof.jkt, proof.jti).as_bytes(),
        );
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest.as_ref()[..16]);
        let Ok(mut seen) = self.inner.lock() else {
            return false;
        };
        let oldest_kept = now - self.max_age;
        while let Some(&(k, iat)) = seen.order.front() {
            if iat >= oldest_kept {
                break;
            }
            seen.order.pop_front();
            if seen.entries.get(&k) == Some(&iat) {
                seen.entries.remove(&k);
            }
        }
        if proof.iat <= seen.floor || seen.entries.contains_key(&key) {
            return false;
        }
        while seen.entries.len() >= self.capacity {
            let Some((k, iat)) = seen.order.pop_front() else {
                break;
            };
            if seen.entries.get(&k) == Some(&iat) {
                seen.entries.remove(&k);
                seen.floor = seen.floor.max(iat);
            }
        }
        if proof.iat <= seen.floor {
            return false;
        }
        seen.entries.insert(key, proof.iat);
        seen.order.push_back((key, proof.iat));
        true
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |s| s.entries.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A client's DPoP key pair: what an app keeps on the device and signs proofs with. Used by
/// lineage's demo app, its tests and the load generator; any JOSE library does the same.
pub struct DeviceKey {
    pair: Pair,
    public: PublicKey,
}

enum Pair {
    P256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceKey")
            .field("alg", &self.alg())
            .field("jkt", &self.jkt())
            .finish_non_exhaustive()
    }
}

/// A key could not be generated or used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError;

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the DPoP key could not be generated or used")
    }
}

impl std::error::Error for KeyError {}

/// The claims of one proof.
#[derive(Debug, Clone, Copy)]
pub struct ProofClaims<'a> {
    pub htm: &'a str,
    pub htu: &'a str,
    pub iat: i64,
    pub jti: &'a str,
    /// The access token the proof goes with (resource requests): sets `ath`.
    pub access_token: Option<&'a str>,
    pub nonce: Option<&'a str>,
}

impl DeviceKey {
    /// A new key's PKCS#8 document for `alg` (`ES256` or `EdDSA`), to keep and load again with
    /// [`DeviceKey::from_pkcs8`].
    pub fn generate_pkcs8(alg: &str) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        let doc = match alg {
            "ES256" => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng),
            "EdDSA" => Ed25519KeyPair::generate_pkcs8(&rng),
            _ => return Err(KeyError),
        };
        Ok(doc.map_err(|_| KeyError)?.as_ref().to_vec())
    }

    /// A key of `alg` from its PKCS#8 document.
    pub fn from_pkcs8(alg: &str, pkcs8: &[u8]) -> Result<Self, KeyError> {
        match alg {
            "ES256" => Self::es256_from_pkcs8(pkcs8),
            "EdDSA" => Self::ed25519_from_pkcs8(pkcs8),
            _ => Err(KeyError),
        }
    }

    /// A new P-256 key (ES256).
    pub fn generate_es256() -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| KeyError)?;
        Self::es256_from_pkcs8(pkcs8.as_ref())
    }

    /// A P-256 key from its PKCS#8 document.
    pub fn es256_from_pkcs8(pkcs8: &[u8]) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
            .map_err(|_| KeyError)?;
        let point = pair.public_key().as_ref();
        if point.len() != 65 {
            return Err(KeyError);
        }
        let public = PublicKey::P256 {
            x: point[1..33].to_vec(),
            y: point[33..].to_vec(),
        };
        Ok(Self {
            pair: Pair::P256(pair),
            public,
        })
    }

    /// A new Ed25519 key (EdDSA).
    pub fn generate_ed25519() -> Result<Self, KeyError> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| KeyError)?;
        Self::ed25519_from_pkcs8(pkcs8.as_ref())
    }

    /// An Ed25519 key from its PKCS#8 document.
    pub fn ed25519_from_pkcs8(pkcs8: &[u8]) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(|_| KeyError)?;
        let public = PublicKey::Ed25519 {
            x: pair.public_key().as_ref().to_vec(),
        };
        Ok(Self {
            pair: Pair::Ed25519(pair),
            public,
        })
    }

    pub fn alg(&self) -> &'static str {
        match self.pair {
            Pair::P256(_) => "ES256",
            Pair::Ed25519(_) => "EdDSA",
        }
    }

    /// The key's thumbprint: what tokens bound to it carry in `cnf.jkt`, and `dpop_jkt`.
    pub fn jkt(&self) -> String {
        self.public.thumbprint()
    }

    /// The public JWK.
    pub fn jwk(&self) -> Value {
        self.public.jwk()
    }

    /// A signed proof.
    pub fn proof(&self, claims: &ProofClaims<'_>) -> Result<String, KeyError> {
        let header = serde_json::json!({ "typ": TYP, "alg": self.alg(), "jwk": self.jwk() });
        let mut payload = serde_json::json!({
            "jti": claims.jti, "htm": claims.htm, "htu": claims.htu, "iat": claims.iat,
        });
        if let Some(token) = claims.access_token {
            payload["ath"] = Value::String(access_token_hash(token));
        }
        if let Some(nonce) = claims.nonce {
            payload["nonce"] = Value::String(nonce.to_string());
        }
        self.sign_parts(&header, &payload)
    }

    /// Sign any header and payload with this key (tests build malformed proofs with it).
    pub fn sign_parts(&self, header: &Value, payload: &Value) -> Result<String, KeyError> {
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(payload.to_string())
        );
        let signature = match &self.pair {
            Pair::P256(pair) => pair
                .sign(&SystemRandom::new(), signing_input.as_bytes())
                .map_err(|_| KeyError)?
                .as_ref()
                .to_vec(),
            Pair::Ed25519(pair) => pair.sign(signing_input.as_bytes()).as_ref().to_vec(),
        };
        Ok(format!("{signing_input}.{}", B64.encode(signature)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const HTU: &str = "https://as.example.com/token";

    fn expect(now: i64) -> Expect<'static> {
        Expect {
            htm: "POST",
            htu: HTU,
            now,
            max_age: 60,
            max_skew: 5,
            access_token: None,
        }
    }

    fn claims(iat: i64, jti: &str) -> ProofClaims<'_> {
        ProofClaims {
            htm: "POST",
            htu: HTU,
            iat,
            jti,
            access_token: None,
            nonce: None,
        }
    }

    #[test]
    fn both_algorithms_verify_and_give_the_keys_thumbprint() {
        for key in [
            DeviceKey::generate_es256().unwrap(),
            DeviceKey::generate_ed25519().unwrap(),
        ] {
            let proof = key.proof(&claims(1000, "j1")).unwrap();
            let ok = verify(&proof, &expect(1000)).unwrap();
            assert_eq!(ok.jkt, key.jkt());
            assert_eq!(ok.jti, "j1");
            assert_eq!(ok.iat, 1000);
        }
    }

    #[test]
    fn thumbprint_matches_rfc_7638_for_an_ec_key() {
        // RFC 7638's example is RSA; this is the P-256 example of RFC 9449 §A (proof header key),
        // whose thumbprint the RFC's §6.1 example states.
        let key = PublicKey::P256 {
            x: B64
                .decode("l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs")
                .unwrap(),
            y: B64
                .decode("9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA")
                .unwrap(),
        };
        assert_eq!(
            key.thumbprint(),
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
        );
    }

    #[test]
    fn each_check_refuses_with_its_reason() {
        let key = DeviceKey::generate_es256().unwrap();
        let now = 10_000;
        let sign = |c: &ProofClaims<'_>| key.proof(c).unwrap();
        let wrong_method = sign(&ProofClaims {
            htm: "GET",
            ..claims(now, "a")
        });
        assert_eq!(verify(&wrong_method, &expect(now)), Err(ProofError::Method));
        let wrong_uri = sign(&ProofClaims {
            htu: "https://as.example.com/other",
            ..claims(now, "a")
        });
        assert_eq!(verify(&wrong_uri, &expect(now)), Err(ProofError::Uri));
        let old = sign(&claims(now - 61, "a"));
        assert_eq!(verify(&old, &expect(now)), Err(ProofError::Time));
        let future = sign(&claims(now + 6, "a"));
        assert_eq!(verify(&future, &expect(now)), Err(ProofError::Time));

        let with_token = Expect {
            access_token: Some("the-token"),
            ..expect(now)
        };
        let no_ath = sign(&claims(now, "a"));
        assert_eq!(
            verify(&no_ath, &with_token),
            Err(ProofError::AccessTokenHash)
        );
        let other_ath = sign(&ProofClaims {
            access_token: Some("another-token"),
            ..claims(now, "a")
        });
        assert_eq!(
            verify(&other_ath, &with_token),
            Err(ProofError::AccessTokenHash)
        );
        let good_ath = sign(&ProofClaims {
            access_token: Some("the-token"),
            ..claims(now, "a")
        });
        assert!(verify(&good_ath, &with_token).is_ok());
    }

    #[test]
    fn header_rules() {
        let key = DeviceKey::generate_ed25519().unwrap();
        let payload = serde_json::json!({"jti": "a", "htm": "POST", "htu": HTU, "iat": 5});
        let header = |typ: &str, alg: &str, jwk: Value| serde_json::json!({"typ": typ, "alg": alg, "jwk": jwk});
        let signed = |h: Value| key.sign_parts(&h, &payload).unwrap();
        let e = expect(5);
        assert_eq!(
            verify(&signed(header("JWT", "EdDSA", key.jwk())), &e),
            Err(ProofError::Type)
        );
        assert_eq!(
            verify(&signed(header(TYP, "HS256", key.jwk())), &e),
            Err(ProofError::Algorithm)
        );
        // An EdDSA key claimed as ES256.
        assert!(matches!(
            verify(&signed(header(TYP, "ES256", key.jwk())), &e),
            Err(ProofError::Key(_))
        ));
        let mut private = key.jwk();
        private["d"] = Value::String(B64.encode([7u8; 32]));
        assert!(matches!(
            verify(&signed(header(TYP, "EdDSA", private)), &e),
            Err(ProofError::Key(_))
        ));
        // Another key's jwk in the header: the signature does not verify.
        let other = DeviceKey::generate_ed25519().unwrap();
        assert_eq!(
            verify(&signed(header(TYP, "EdDSA", other.jwk())), &e),
            Err(ProofError::Signature)
        );
        assert!(verify(&signed(header(TYP, "EdDSA", key.jwk())), &e).is_ok());
        assert!(matches!(verify("a.b", &e), Err(ProofError::Malformed(_))));
    }

    #[test]
    fn uris_compare_without_query_fragment_default_port_or_case() {
        assert!(same_uri(
            "HTTPS://AS.Example.com:443/token?x=1#f",
            "https://as.example.com/token"
        ));
        assert!(same_uri(
            "http://127.0.0.1:8080/token",
            "http://127.0.0.1:8080/token"
        ));
        assert!(!same_uri(
            "http://127.0.0.1:8080/token",
            "http://127.0.0.1:8081/token"
        ));
        assert!(!same_uri(
            "http://as.example.com/token",
            "https://as.example.com/token"
        ));
        assert!(!same_uri(
            "https://as.example.com/token/",
            "https://as.example.com/token"
        ));
        assert!(!same_uri("not a uri", "another"));
    }

    fn seen(jti: &str, iat: i64) -> Proof {
        Proof {
            jkt: "k".into(),
            jti: jti.into(),
            iat,
            nonce: None,
        }
    }

    #[test]
    fn replay_cache_refuses_a_jti_twice_and_forgets_it_after_the_window() {
        let cache = ReplayCache::new(100, 60);
        assert!(cache.first_use(&seen("a", 100), 100));
        assert!(!cache.first_use(&seen("a", 100), 110));
        assert!(cache.first_use(&seen("b", 100), 110));
        // Out of the window, the entries go (a proof that old fails the iat check anyway).
        assert!(cache.first_use(&seen("c", 170), 170));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_full_replay_cache_refuses_what_it_may_have_forgotten() {
        let cache = ReplayCache::new(2, 60);
        assert!(cache.first_use(&seen("a", 100), 100));
        assert!(cache.first_use(&seen("b", 101), 101));
        // Full: "a" (iat 100) is dropped, and nothing at or before 100 is accepted any more.
        assert!(cache.first_use(&seen("c", 102), 102));
        assert_eq!(cache.len(), 2);
        assert!(!cache.first_use(&seen("a", 100), 102));
        assert!(!cache.first_use(&seen("d", 100), 102));
        assert!(!cache.first_use(&seen("b", 101), 102));
        assert!(cache.first_use(&seen("e", 103), 103));
    }
}
