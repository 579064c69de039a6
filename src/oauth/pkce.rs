//! PKCE (RFC 7636), S256 only, through oxide-auth's `Pkce` check. The request parameters are
//! validated here first so a client gets a precise error; oxide-auth's own errors are `()`.

use std::borrow::Cow;

use oxide_auth::code_grant::extensions::Pkce;
use oxide_auth::primitives::grant::Value;

/// A code verifier: 43–128 characters of `[A-Za-z0-9-._~]` (RFC 7636 §4.1).
fn is_verifier(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// An S256 challenge is `BASE64URL(SHA-256(verifier))` without padding: exactly 43 characters of
/// the base64url alphabet (RFC 7636 §4.2).
fn is_s256_challenge(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// Check the authorization request's challenge; returns the value to store with the code.
/// Public clients must send one; `plain` is never accepted.
pub fn challenge(
    required: bool,
    method: Option<&str>,
    challenge: Option<&str>,
) -> Result<Option<String>, String> {
    match (challenge, method) {
        (None, None) if required => {
            return Err("code_challenge is required (PKCE with S256)".into());
        }
        (None, None) => return Ok(None),
        (None, Some(_)) => return Err("code_challenge_method given without code_challenge".into()),
        (Some(_), None) | (Some(_), Some("plain")) => {
            return Err("code_challenge_method must be S256; plain is not accepted".into());
        }
        (Some(_), Some(m)) if m != "S256" => {
            return Err(format!("unsupported code_challenge_method `{m}`"));
        }
        (Some(c), Some(_)) if !is_s256_challenge(c) => {
            return Err(
                "code_challenge must be the 43-character base64url SHA-256 of the verifier".into(),
            );
        }
        _ => {}
    }
    let pkce = if required {
        Pkce::required()
    } else {
        Pkce::optional()
    };
    let stored = pkce
        .challenge(method.map(Cow::Borrowed), challenge.map(Cow::Borrowed))
        .map_err(|_| "the PKCE challenge was rejected".to_string())?;
    stored
        .map(|v| {
            v.into_private_value()
                .map_err(|_| "the PKCE challenge was rejected".to_string())
        })
        .transpose()
        .map(Option::flatten)
}

/// Check the token request's verifier against what was stored with the code.
pub fn verify(stored: Option<&str>, verifier: Option<&str>) -> Result<(), String> {
    match (stored, verifier) {
        (None, None) => Ok(()),
        // RFC 9700 §2.1.1: a verifier for a code issued without a challenge is an attack signal.
        (None, Some(_)) => {
            Err("code_verifier sent but the authorization request had no code_challenge".into())
        }
        (Some(_), None) => Err("code_verifier is required".into()),
        (Some(s), Some(v)) => {
            if !is_verifier(v) {
                return Err("code_verifier is malformed".into());
            }
            Pkce::optional()
                .verify(
                    Some(Value::private(Some(s.to_string()))),
                    Some(Cow::Borrowed(v)),
                )
                .map_err(|_| "code_verifier does not match the code_challenge".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn s256_round_trip() {
        let stored = challenge(true, Some("S256"), Some(CHALLENGE))
            .ok()
            .flatten();
        assert!(stored.is_some());
        assert!(verify(stored.as_deref(), Some(VERIFIER)).is_ok());
        assert!(verify(stored.as_deref(), Some("x".repeat(43).as_str())).is_err());
        assert!(verify(stored.as_deref(), None).is_err());
    }

    #[test]
    fn plain_and_missing_are_rejected() {
        assert!(challenge(true, Some("plain"), Some(CHALLENGE)).is_err());
        assert!(challenge(true, None, Some(CHALLENGE)).is_err());
        assert!(challenge(true, None, None).is_err());
        assert_eq!(challenge(false, None, None), Ok(None));
    }
}
