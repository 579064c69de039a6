//! DPoP at the token endpoint (RFC 9449 §4–5, §8): read the `DPoP` header of a token request,
//! check the proof (`lineage_jwt::dpop`), refuse a replayed `jti`, and, when `dpop_nonce` is on,
//! require a nonce this server issued.
//!
//! Nonces are stateless: a nonce is an HMAC of the current five-minute period under a key derived
//! from the server's key secret, so every node sharing the secret issues and accepts the same
//! ones, and a nonce stays good for five to ten minutes. The `jti` replay cache is per node and
//! bounded (`dpop_replay_capacity`): a proof replayed to another node within its `iat` window gets
//! through the proof check there, which is why what a proof protects is itself single-use or
//! harmless to repeat (a refresh token rotates; a repeated rotation within the grace returns the
//! same tokens, bound to the same key).

use actix_web::HttpRequest;
use actix_web::http::header::HeaderName;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use lineage_jwt::dpop::{self, Expect, Proof, ReplayCache};
use ring::hmac;
use subtle::ConstantTimeEq;

use super::error::{ErrorCode, OAuthError};
use crate::configuration::{DpopSettings, KeySecret};
use crate::tokens::keys::derive_key;

/// The request header that carries a proof.
pub const PROOF_HEADER: HeaderName = HeaderName::from_static("dpop");
/// The response header that carries a nonce for the next proof.
pub const NONCE_HEADER: HeaderName = HeaderName::from_static("dpop-nonce");

/// How far in the future a proof's `iat` may be: clocks of phones drift.
const MAX_SKEW: i64 = 10;
/// A nonce is issued for one period and accepted during it and the next.
const NONCE_PERIOD: i64 = 300;

/// The proof checks of this node: settings, replay cache, nonce key.
pub struct DpopCheck {
    settings: DpopSettings,
    replay: ReplayCache,
    nonce_key: hmac::Key,
}

impl std::fmt::Debug for DpopCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopCheck")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A request's method and public URI, as a proof must name them.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub htm: &'a str,
    pub htu: &'a str,
}

impl DpopCheck {
    pub fn new(settings: DpopSettings, secret: &KeySecret) -> Self {
        let window = i64::from(settings.proof_max_age) + MAX_SKEW;
        Self {
            settings,
            replay: ReplayCache::new(settings.replay_capacity, window),
            nonce_key: hmac::Key::new(hmac::HMAC_SHA256, &derive_key(secret, b"dpop nonce")),
        }
    }

    /// The nonce proofs should carry now, when nonces are required.
    pub fn current_nonce(&self, now: i64) -> Option<String> {
        self.settings
            .nonce
            .then(|| self.nonce_of(now.div_euclid(NONCE_PERIOD)))
    }

    fn nonce_of(&self, period: i64) -> String {
        let tag = hmac::sign(&self.nonce_key, &period.to_be_bytes());
        B64.encode(&tag.as_ref()[..18])
    }

    fn nonce_is_current(&self, nonce: &str, now: i64) -> bool {
        let period = now.div_euclid(NONCE_PERIOD);
        [period, period - 1].iter().any(|p| {
            let expected = self.nonce_of(*p);
            bool::from(expected.as_bytes().ct_eq(nonce.as_bytes()))
        })
    }

    /// The proof of a request, if it carries one: verified, fresh, first use, with the current
    /// nonce when nonces are on. `access_token` is the token presented with it at a protected
    /// resource (`ath`).
    pub fn proof_of(
        &self,
        req: &HttpRequest,
        target: Target<'_>,
        access_token: Option<&str>,
        now: i64,
    ) -> Result<Option<Proof>, OAuthError> {
        proof_header(req)?
            .map(|proof| self.check(proof, target, access_token, now))
            .transpose()
    }

    /// Check one proof as [`DpopCheck::proof_of`] does: what a request's `DPoP` header holds, or
    /// what the built-in demo app signs for the token requests it makes without HTTP.
    pub fn check(
        &self,
        proof: &str,
        target: Target<'_>,
        access_token: Option<&str>,
        now: i64,
    ) -> Result<Proof, OAuthError> {
        let expect = Expect {
            htm: target.htm,
            htu: target.htu,
            now,
            max_age: i64::from(self.settings.proof_max_age),
            max_skew: MAX_SKEW,
            access_token,
        };
        let proof = dpop::verify(proof, &expect)
            .map_err(|e| OAuthError::invalid_dpop_proof(e.to_string()))?;
        if self.settings.nonce
            && !proof
                .nonce
                .as_deref()
                .is_some_and(|n| self.nonce_is_current(n, now))
        {
            let why = if proof.nonce.is_some() {
                "the DPoP nonce has expired; use the one in the DPoP-Nonce header"
            } else {
                "this server requires a DPoP nonce; use the one in the DPoP-Nonce header"
            };
            return Err(OAuthError::new(ErrorCode::UseDpopNonce, why)
                .with_dpop_nonce(self.current_nonce(now)));
        }
        if !self.replay.first_use(&proof, now) {
            return Err(OAuthError::invalid_dpop_proof(
                "the DPoP proof was used before (its jti is not new)",
            ));
        }
        Ok(proof)
    }
}

/// The `DPoP` header of a request, if it has one: exactly one, in ASCII (§4.3 items 1–2).
pub fn proof_header(req: &HttpRequest) -> Result<Option<&str>, OAuthError> {
    let mut values = req.headers().get_all(PROOF_HEADER);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(OAuthError::invalid_dpop_proof(
            "more than one DPoP header (RFC 9449 §4.3)",
        ));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| OAuthError::invalid_dpop_proof("the DPoP header is not ASCII"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Seconds;

    fn check(nonce: bool) -> DpopCheck {
        let settings = DpopSettings {
            proof_max_age: Seconds::new(60),
            nonce,
            replay_capacity: 1000,
        };
        DpopCheck::new(
            settings,
            &KeySecret::new("dpop-test-secret-0123456789".into()),
        )
    }

    #[test]
    fn a_nonce_is_good_for_its_period_and_the_next() {
        let c = check(true);
        let issued_at = 10 * NONCE_PERIOD + 1;
        let Some(nonce) = c.current_nonce(issued_at) else {
            panic!("nonces are on");
        };
        assert!(c.nonce_is_current(&nonce, issued_at));
        assert!(c.nonce_is_current(&nonce, issued_at + NONCE_PERIOD));
        assert!(!c.nonce_is_current(&nonce, issued_at + 2 * NONCE_PERIOD));
        assert!(!c.nonce_is_current("made-up", issued_at));
        assert_eq!(check(false).current_nonce(issued_at), None);
    }

    #[test]
    fn another_secret_gives_other_nonces() {
        let settings = DpopSettings {
            proof_max_age: Seconds::new(60),
            nonce: true,
            replay_capacity: 1000,
        };
        let other = DpopCheck::new(
            settings,
            &KeySecret::new("another-secret-0123456789".into()),
        );
        let nonce = other.current_nonce(1000).unwrap_or_default();
        assert!(!check(true).nonce_is_current(&nonce, 1000));
    }
}
