//! HMAC-signed form values: CSRF tokens bound to a browser (RFC-free, OWASP "HMAC-based token"
//! pattern) and the consent page's request handle. Stateless, so any node can check them.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;

use crate::configuration::KeySecret;
use crate::tokens::keys::derive_key;

#[derive(Clone)]
pub struct FormSigner(hmac::Key);

impl fmt::Debug for FormSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FormSigner([redacted])")
    }
}

impl FormSigner {
    pub fn new(secret: &KeySecret) -> Self {
        Self(hmac::Key::new(
            hmac::HMAC_SHA256,
            &derive_key(secret, b"form signing"),
        ))
    }

    fn tag(&self, purpose: &str, data: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(purpose.as_bytes());
        ctx.update(&[0]);
        ctx.update(data);
        ctx.sign()
    }

    /// The CSRF token for forms shown to the browser holding `binding` (its session or pre-session
    /// cookie value).
    pub fn csrf_token(&self, binding: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.tag("csrf", binding.as_bytes()))
    }

    pub fn csrf_ok(&self, binding: &str, presented: &str) -> bool {
        let Ok(raw) = URL_SAFE_NO_PAD.decode(presented) else {
            return false;
        };
        hmac::verify(
            &self.0,
            &[b"csrf".as_slice(), &[0], binding.as_bytes()].concat(),
            &raw,
        )
        .is_ok()
    }

    /// `payload` signed for `purpose`: `base64url(payload).base64url(tag)`.
    pub fn seal(&self, purpose: &str, payload: &[u8]) -> String {
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(self.tag(purpose, payload))
        )
    }

    pub fn open(&self, purpose: &str, sealed: &str) -> Option<Vec<u8>> {
        let (data, tag) = sealed.split_once('.')?;
        let data = URL_SAFE_NO_PAD.decode(data).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let msg = [purpose.as_bytes(), &[0], &data].concat();
        hmac::verify(&self.0, &msg, &tag).ok()?;
        Some(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_and_seal_round_trip() {
        let s = FormSigner::new(&KeySecret::new("0123456789abcdef0123".into()));
        let t = s.csrf_token("cookie-a");
        assert!(s.csrf_ok("cookie-a", &t));
        assert!(!s.csrf_ok("cookie-b", &t));
        let sealed = s.seal("consent", b"{}");
        assert_eq!(
            s.open("consent", &sealed).as_deref(),
            Some(b"{}".as_slice())
        );
        assert!(s.open("other", &sealed).is_none());
    }
}
