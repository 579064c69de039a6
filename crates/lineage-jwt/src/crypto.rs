//! A jsonwebtoken `CryptoProvider` over `ring`: EdDSA (Ed25519) and RS256.
//!
//! jsonwebtoken 11 has no crypto backend of its own; its `rust_crypto` one pulls in the `rsa`
//! crate (RUSTSEC-2023-0071). lineage signs access tokens with Ed25519 and ID tokens with RS256
//! (which OpenID Connect requires to be available, OIDC Core §15.1) or Ed25519, so this provider
//! supports exactly those two and refuses every other algorithm. RSA signatures and verification
//! are ring's (constant-time); keys are generated elsewhere (the server uses OpenSSL). The
//! provider is process-global and the first one installed wins; the server and
//! `lineage-resource` both install this one, so a process that runs both (the server's tests do)
//! signs and verifies with the same code whichever starts first.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Once, RwLock};

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature;
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::rand::SystemRandom;
use ring::rsa::PublicKeyComponents;
use ring::signature::{
    ED25519, Ed25519KeyPair, KeyPair, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair,
    UnparsedPublicKey,
};

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: rsa_public_from_private,
        rsa_pub_components_from_public_key: |_| Err(ErrorKind::InvalidAlgorithm.into()),
        ec_pub_components_from_private_key: |_, _| Err(ErrorKind::InvalidAlgorithm.into()),
        ed_pub_components_from_private_key: ed_public_from_private,
        compute_digest,
    },
};

/// Install the provider unless one already is; safe to call from every entry point.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err: a program embedding lineage installed a provider of its own first; it serves.
        let _ = PROVIDER.install_default();
    });
}

/// A parsed private key of either supported kind.
enum ParsedKey {
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

// Parsing a PKCS#8 key costs about as much as a signature (an RSA key much more), and
// jsonwebtoken asks for a signer on every `encode`: keep the parsed keys, keyed by their (few)
// PKCS#8 documents.
type KeyCache = RwLock<HashMap<Vec<u8>, Arc<ParsedKey>>>;
static PARSED: LazyLock<KeyCache> = LazyLock::new(Default::default);
const MAX_CACHED_KEYS: usize = 16;

fn parsed_key(pkcs8: &[u8], alg: Algorithm) -> Result<Arc<ParsedKey>, Error> {
    let cached = PARSED.read().ok().and_then(|c| c.get(pkcs8).cloned());
    let key = match cached {
        Some(k) => k,
        None => {
            let parsed = match alg {
                Algorithm::EdDSA => ParsedKey::Ed25519(
                    Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
                        .map_err(|_| ErrorKind::InvalidEddsaKey)?,
                ),
                Algorithm::RS256 => ParsedKey::Rsa(
                    RsaKeyPair::from_pkcs8(pkcs8)
                        .map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?,
                ),
                _ => return Err(ErrorKind::InvalidAlgorithm.into()),
            };
            let k = Arc::new(parsed);
            if let Ok(mut cache) = PARSED.write() {
                if cache.len() >= MAX_CACHED_KEYS {
                    cache.clear();
                }
                cache.insert(pkcs8.to_vec(), Arc::clone(&k));
            }
            k
        }
    };
    // A key of one kind is never used for the other algorithm.
    match (&*key, alg) {
        (ParsedKey::Ed25519(_), Algorithm::EdDSA) | (ParsedKey::Rsa(_), Algorithm::RS256) => {
            Ok(key)
        }
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

struct RingSigner {
    key: Arc<ParsedKey>,
    alg: Algorithm,
}

impl signature::Signer<Vec<u8>> for RingSigner {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        match &*self.key {
            ParsedKey::Ed25519(pair) => Ok(pair.sign(msg).as_ref().to_vec()),
            ParsedKey::Rsa(pair) => {
                let mut sig = vec![0u8; pair.public().modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut sig)
                    .map_err(|_| signature::Error::new())?;
                Ok(sig)
            }
        }
    }
}

impl JwtSigner for RingSigner {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

/// A public key: a raw 32-byte Ed25519 key (ring has no pre-parsed form for those: the point is
/// decoded inside every verification, raw `ring` included), or RSA components.
enum RingVerifier {
    Ed25519(Vec<u8>),
    RsaComponents {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// PKCS#1 `RSAPublicKey` DER.
    RsaDer(Vec<u8>),
}

impl signature::Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> Result<(), signature::Error> {
        let checked = match self {
            RingVerifier::Ed25519(key) => UnparsedPublicKey::new(&ED25519, key).verify(msg, sig),
            RingVerifier::RsaComponents { n, e } => {
                PublicKeyComponents { n, e }.verify(&RSA_PKCS1_2048_8192_SHA256, msg, sig)
            }
            RingVerifier::RsaDer(der) => {
                UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der).verify(msg, sig)
            }
        };
        checked.map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        match self {
            RingVerifier::Ed25519(_) => Algorithm::EdDSA,
            RingVerifier::RsaComponents { .. } | RingVerifier::RsaDer(_) => Algorithm::RS256,
        }
    }
}

fn new_signer(
    alg: &Algorithm,
    key: &EncodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn JwtSigner>> {
    if !matches!(alg, Algorithm::EdDSA | Algorithm::RS256) {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    Ok(Box::new(RingSigner {
        key: parsed_key(key.as_bytes(), *alg)?,
        alg: *alg,
    }))
}

fn new_verifier(
    alg: &Algorithm,
    key: &DecodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn JwtVerifier>> {
    let verifier = match (alg, key.kind()) {
        (Algorithm::EdDSA, DecodingKeyKind::SecretOrDer(bytes)) if bytes.len() == 32 => {
            RingVerifier::Ed25519(bytes.clone())
        }
        (Algorithm::EdDSA, _) => return Err(ErrorKind::InvalidEddsaKey.into()),
        (Algorithm::RS256, DecodingKeyKind::RsaModulusExponent { n, e }) => {
            RingVerifier::RsaComponents {
                n: n.clone(),
                e: e.clone(),
            }
        }
        (Algorithm::RS256, DecodingKeyKind::SecretOrDer(der)) => RingVerifier::RsaDer(der.clone()),
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    Ok(Box::new(verifier))
}

fn rsa_public_from_private(pkcs8: &[u8]) -> jsonwebtoken::errors::Result<(Vec<u8>, Vec<u8>)> {
    match &*parsed_key(pkcs8, Algorithm::RS256)? {
        ParsedKey::Rsa(pair) => {
            let c: PublicKeyComponents<Vec<u8>> = pair.public().into();
            Ok((c.n, c.e))
        }
        ParsedKey::Ed25519(_) => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

fn ed_public_from_private(
    pkcs8: &[u8],
    curve: &EllipticCurve,
) -> jsonwebtoken::errors::Result<Vec<u8>> {
    if *curve != EllipticCurve::Ed25519 {
        return Err(ErrorKind::InvalidEddsaKey.into());
    }
    match &*parsed_key(pkcs8, Algorithm::EdDSA)? {
        ParsedKey::Ed25519(pair) => Ok(pair.public_key().as_ref().to_vec()),
        ParsedKey::Rsa(_) => Err(ErrorKind::InvalidEddsaKey.into()),
    }
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> jsonwebtoken::errors::Result<Vec<u8>> {
    let alg = match hash {
        ThumbprintHash::SHA256 => &ring::digest::SHA256,
        ThumbprintHash::SHA384 => &ring::digest::SHA384,
        ThumbprintHash::SHA512 => &ring::digest::SHA512,
        #[allow(unreachable_patterns)]
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    Ok(ring::digest::digest(alg, data).as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use jsonwebtoken::{Header, Validation};
    use ring::rand::SystemRandom;

    #[test]
    fn signs_and_verifies_eddsa_and_refuses_everything_else() {
        install();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let enc = EncodingKey::from_ed_der(pkcs8.as_ref());
        let dec = DecodingKey::from_ed_der(pair.public_key().as_ref());
        let claims = serde_json::json!({"sub": "a", "exp": 4_000_000_000_i64});
        let token = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &enc).unwrap();
        let back: serde_json::Value =
            jsonwebtoken::decode(&token, &dec, &Validation::new(Algorithm::EdDSA))
                .unwrap()
                .claims;
        assert_eq!(back["sub"], "a");

        // An Ed25519 key never signs RS256.
        assert!(jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &enc).is_err());
        let hs = EncodingKey::from_secret(b"secret");
        assert!(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &hs).is_err());
    }

    #[test]
    fn signs_and_verifies_rs256_with_components_and_der() {
        install();
        // A throwaway PKCS#8 key made with `openssl genpkey -algorithm RSA` for this test only.
        let pkcs8 = include_bytes!("../testdata/rsa-2048-test-only.pk8");
        let enc = EncodingKey::from_rsa_der(pkcs8);
        let claims = serde_json::json!({"sub": "a", "exp": 4_000_000_000_i64});
        let token = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &enc).unwrap();
        let (n, e) = rsa_public_from_private(pkcs8).unwrap();
        let dec = DecodingKey::from_rsa_raw_components(&n, &e);
        let v = Validation::new(Algorithm::RS256);
        let back: serde_json::Value = jsonwebtoken::decode(&token, &dec, &v).unwrap().claims;
        assert_eq!(back["sub"], "a");
        let pair = RsaKeyPair::from_pkcs8(pkcs8).unwrap();
        let der = DecodingKey::from_rsa_der(pair.public().as_ref());
        assert!(jsonwebtoken::decode::<serde_json::Value>(&token, &der, &v).is_ok());
        // Tampered: one character of the signature changed.
        let mut bad = token.clone();
        let last = bad.pop().unwrap();
        bad.push(if last == 'A' { 'B' } else { 'A' });
        assert!(jsonwebtoken::decode::<serde_json::Value>(&bad, &dec, &v).is_err());
        // An RSA key never signs EdDSA.
        assert!(jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &enc).is_err());
    }
}
