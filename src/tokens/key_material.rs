//! The two kinds of signing key and what differs between them: generation, the public JWK, the
//! RFC 7638 thumbprint that is the `kid`. Ed25519 signs access tokens (and ID tokens on request);
//! RSA signs ID tokens by default, because OpenID Connect requires RS256 (OIDC Core §15.1).

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde::{Deserialize, Serialize};

/// RSA modulus size of generated keys.
pub const RSA_BITS: u32 = 2048;

/// The JWS algorithm a key signs with (RFC 7518 names, as stored in `signing_keys.algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    EdDSA,
    RS256,
}

impl KeyAlgorithm {
    pub const ALL: [KeyAlgorithm; 2] = [KeyAlgorithm::EdDSA, KeyAlgorithm::RS256];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::EdDSA => "EdDSA",
            KeyAlgorithm::RS256 => "RS256",
        }
    }

    pub fn jwt(self) -> Algorithm {
        match self {
            KeyAlgorithm::EdDSA => Algorithm::EdDSA,
            KeyAlgorithm::RS256 => Algorithm::RS256,
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "EdDSA" => Ok(KeyAlgorithm::EdDSA),
            "RS256" => Ok(KeyAlgorithm::RS256),
            other => Err(format!(
                "unknown signing algorithm `{other}` (use RS256 or EdDSA)"
            )),
        }
    }
}

/// The public half as published in the JWKS (base64url members).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicJwk {
    /// RFC 8037: `kty: OKP`, `crv: Ed25519`.
    Okp { x: String },
    /// RFC 7518 §6.3.1: `kty: RSA`.
    Rsa { n: String, e: String },
}

impl PublicJwk {
    /// RFC 7638 thumbprint: SHA-256 over the required members in lexicographic order.
    pub fn thumbprint(&self) -> String {
        let canonical = match self {
            PublicJwk::Okp { x } => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#),
            PublicJwk::Rsa { n, e } => format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#),
        };
        URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            canonical.as_bytes(),
        ))
    }

    /// The stored `public_key` column: the raw key for Ed25519, `n.e` for RSA.
    pub fn stored(&self) -> String {
        match self {
            PublicJwk::Okp { x } => x.clone(),
            PublicJwk::Rsa { n, e } => format!("{n}.{e}"),
        }
    }
}

/// A private key (PKCS#8 DER) with what is derived from it.
pub struct Material {
    pub jwk: PublicJwk,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
}

/// Parse a stored PKCS#8 document of `alg`.
pub fn parse(alg: KeyAlgorithm, pkcs8: &[u8]) -> anyhow::Result<Material> {
    match alg {
        KeyAlgorithm::EdDSA => {
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
                .map_err(|_| anyhow::anyhow!("not an Ed25519 key"))?;
            let public = pair.public_key().as_ref();
            Ok(Material {
                jwk: PublicJwk::Okp {
                    x: URL_SAFE_NO_PAD.encode(public),
                },
                encoding: EncodingKey::from_ed_der(pkcs8),
                decoding: DecodingKey::from_ed_der(public),
            })
        }
        KeyAlgorithm::RS256 => {
            let pair = RsaKeyPair::from_pkcs8(pkcs8)
                .map_err(|e| anyhow::anyhow!("not a usable RSA key: {e}"))?;
            let c: ring::rsa::PublicKeyComponents<Vec<u8>> = pair.public().into();
            Ok(Material {
                jwk: PublicJwk::Rsa {
                    n: URL_SAFE_NO_PAD.encode(&c.n),
                    e: URL_SAFE_NO_PAD.encode(&c.e),
                },
                encoding: EncodingKey::from_rsa_der(pkcs8),
                decoding: DecodingKey::from_rsa_raw_components(&c.n, &c.e),
            })
        }
    }
}

/// A new private key of `alg` as a PKCS#8 DER document. Ed25519 comes from ring; RSA from the
/// vendored OpenSSL (constant-time key generation; ring cannot generate RSA keys).
pub fn generate(alg: KeyAlgorithm) -> anyhow::Result<Vec<u8>> {
    match alg {
        KeyAlgorithm::EdDSA => Ok(Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| anyhow::anyhow!("generating an Ed25519 key failed"))?
            .as_ref()
            .to_vec()),
        KeyAlgorithm::RS256 => {
            let rsa = openssl::rsa::Rsa::generate(RSA_BITS)?;
            let pkey = openssl::pkey::PKey::from_rsa(rsa)?;
            Ok(pkey.private_key_to_pkcs8()?)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn generated_keys_parse_and_have_the_rfc7638_kid_shape() {
        for alg in KeyAlgorithm::ALL {
            let m = parse(alg, &generate(alg).unwrap()).unwrap();
            assert_eq!(m.jwk.thumbprint().len(), 43, "{alg}");
            if let PublicJwk::Rsa { n, e } = &m.jwk {
                assert_eq!(e, "AQAB");
                assert_eq!(
                    URL_SAFE_NO_PAD.decode(n).unwrap().len() * 8,
                    RSA_BITS as usize
                );
            }
        }
    }

    #[test]
    fn rfc7638_example_thumbprint() {
        // RFC 7638 §3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR\
                 1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4\
                 QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbO\
                 pbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csF\
                 Cur-kEgU8awapJzKnqDKgw";
        let jwk = PublicJwk::Rsa {
            n: n.into(),
            e: "AQAB".into(),
        };
        assert_eq!(
            jwk.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
