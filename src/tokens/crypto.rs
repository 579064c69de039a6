//! A jsonwebtoken `CryptoProvider` over `ring`, EdDSA (Ed25519) only.
//!
//! jsonwebtoken 11 needs a crypto backend; its `rust_crypto` one pulls in the `rsa` crate
//! (RUSTSEC-2023-0071). lineage signs only with Ed25519, so this provider supports exactly that
//! and refuses every other algorithm.

use std::collections::HashMap;
use std::sync::{Arc, Once, RwLock};

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
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

/// Install the provider once per process; safe to call from every entry point.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means another provider was installed first (only possible in an embedding program).
        let _ = PROVIDER.install_default();
    });
}

// Parsing a PKCS#8 Ed25519 key costs about as much as a signature, and jsonwebtoken asks for a
// signer on every `encode`: keep the parsed pairs, keyed by their (few) PKCS#8 documents.
type KeyCache = RwLock<HashMap<Vec<u8>, Arc<Ed25519KeyPair>>>;
static PARSED: std::sync::LazyLock<KeyCache> = std::sync::LazyLock::new(Default::default);
const MAX_CACHED_KEYS: usize = 16;

fn parsed_key(pkcs8: &[u8]) -> Result<Arc<Ed25519KeyPair>, Error> {
    if let Ok(cache) = PARSED.read()
        && let Some(k) = cache.get(pkcs8)
    {
        return Ok(k.clone());
    }
    let pair = Arc::new(
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
            .map_err(|_| ErrorKind::InvalidEddsaKey)?,
    );
    if let Ok(mut cache) = PARSED.write() {
        if cache.len() >= MAX_CACHED_KEYS {
            cache.clear();
        }
        cache.insert(pkcs8.to_vec(), pair.clone());
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
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    Ok(ring::digest::digest(alg, data).as_ref().to_vec())
}
