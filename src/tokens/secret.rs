//! Opaque secrets (client secrets, refresh tokens, codes) and their stored SHA-256 hashes.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;

/// A secret as the client sees it. Never logged: `Debug` prints `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainToken(String);

impl PlainToken {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// 256 random bits, base64url without padding (43 characters).
    pub fn generate() -> Result<Self, ring::error::Unspecified> {
        let mut bytes = [0u8; 32];
        SystemRandom::new().fill(&mut bytes)?;
        Ok(Self(URL_SAFE_NO_PAD.encode(bytes)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> HashedToken {
        HashedToken::of(self.0.as_bytes())
    }
}

impl fmt::Debug for PlainToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainToken([redacted])")
    }
}

/// Lowercase hex, two digits a byte.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [b >> 4, b & 0x0f])
        .map(|nibble| char::from(DIGITS[usize::from(nibble)]))
        .collect()
}

/// SHA-256 of a secret, hex-encoded: what the database stores. A fast hash is right for
/// high-entropy random secrets; argon2 is for human passwords.
#[derive(Clone, PartialEq, Eq)]
pub struct HashedToken(String);

impl HashedToken {
    pub fn of(bytes: &[u8]) -> Self {
        Self(hex(digest::digest(&digest::SHA256, bytes).as_ref()))
    }

    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// Constant-time comparison, so a timing side channel cannot reveal a stored hash.
    pub fn matches(&self, other: &HashedToken) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl fmt::Debug for HashedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashedToken([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let t = PlainToken::new("s3cret-value");
        assert!(!format!("{t:?}").contains("s3cret"));
        assert!(!format!("{:?}", t.hash()).contains(t.hash().as_str()));
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            HashedToken::of(b"abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(HashedToken::of(b"a").matches(&HashedToken::of(b"a")));
        assert!(!HashedToken::of(b"a").matches(&HashedToken::of(b"b")));
    }
}
