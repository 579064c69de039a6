//! A jsonwebtoken `CryptoProvider` over `ring`, EdDSA (Ed25519) only.
//!
//! jsonwebtoken 11 has no crypto backend of its own; its `rust_crypto` one pulls in the `rsa`
//! crate (RUSTSEC-2023-0071). lineage signs only with Ed25519, so this provider supports exactly
//! that and refuses every other algorithm. The provider is process-global and the first one
//! installed wins; the server and `lineage-resource` both install this one, so a process that runs
//! both (the server's tests do) signs and verifies with the same code whichever starts first.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Once, RwLock};

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: |_| Err(ErrorKind::InvalidAlgorithm.into()),
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

// Parsing a PKCS#8 Ed25519 key costs about as much as a signature, and jsonwebtoken asks for a
// signer on every `encode`: keep the parsed pairs, keyed by their (few) PKCS#8 documents.
type KeyCache = RwLock<HashMap<Vec<u8>, Arc<Ed25519KeyPair>>>;
static PARSED: LazyLock<KeyCache> = LazyLock::new(Default::default);
const MAX_CACHED_KEYS: usize = 16;

fn parsed_key(pkcs8: &[u8]) -> Result<Arc<Ed25519KeyPair>, Error> {
    if let Ok(cache) = PARSED.read()
        && let Some(k) = cache.get(pkcs8)
    {
        return Ok(Arc::clone(k));
    }
    let pair = Arc::new(
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
            .map_err(|_| ErrorKind::InvalidEddsaKey)?,
    );
    if let Ok(mut cache) = PARSED.write() {
        if cache.len() >= MAX_CACHED_KEYS {
            cache.clear();
        }
        cache.insert(pkcs8.to_vec(), Arc::clone(&pair));
    }
    Ok(pair)
}

struct RingSigner(Arc<Ed25519KeyPair>);

impl signature::Signer<Vec<u8>> for RingSigner {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        Ok(self.0.sign(msg).as_ref().to_vec())
    }
}

impl JwtSigner for RingSigner {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

/// A raw 32-byte Ed25519 public key. ring has no pre-parsed form for Ed25519 public keys: the
/// point is decoded inside every verification, raw `ring` included.
struct RingVerifier(Vec<u8>);

impl signature::Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> Result<(), signature::Error> {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(msg, sig)
            .map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

fn new_signer(
    alg: &Algorithm,
    key: &EncodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn JwtSigner>> {
    if *alg != Algorithm::EdDSA {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    Ok(Box::new(RingSigner(parsed_key(key.as_bytes())?)))
}

fn new_verifier(
    alg: &Algorithm,
    key: &DecodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn JwtVerifier>> {
    if *alg != Algorithm::EdDSA {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let bytes = key.try_get_as_bytes()?;
    if bytes.len() != 32 {
        return Err(ErrorKind::InvalidEddsaKey.into());
    }
    Ok(Box::new(RingVerifier(bytes.to_vec())))
}

fn ed_public_from_private(
    pkcs8: &[u8],
    curve: &EllipticCurve,
) -> jsonwebtoken::errors::Result<Vec<u8>> {
    if *curve != EllipticCurve::Ed25519 {
        return Err(ErrorKind::InvalidEddsaKey.into());
    }
    Ok(parsed_key(pkcs8)?.public_key().as_ref().to_vec())
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

        let hs = EncodingKey::from_secret(b"secret");
        assert!(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &hs).is_err());
    }
}
