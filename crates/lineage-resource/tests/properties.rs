//! Properties of the validator on hostile input: arbitrary strings and `Authorization` headers,
//! and a valid token mutated every way an attacker might try (a changed character anywhere, a bit
//! flipped inside the decoded header, payload or signature, another `alg` with or without a fresh
//! signature, `none`, another key, huge inputs). Never a panic, and nothing is accepted but the
//! exact token that was signed; the same for a DPoP proof.
//!
//! `PROPTEST_CASES` raises the number of cases for a longer local run (BENCHMARKS.md).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lineage_jwt::dpop::{DeviceKey, ProofClaims};
use lineage_resource::{Credentials, Validator, bearer_token};
use proptest::prelude::*;
use proptest::test_runner::Config;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{Value, json};

const ISSUER: &str = "http://as.test";
const NOW: i64 = 1_700_000_000;

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

struct Key {
    kid: &'static str,
    pair: Ed25519KeyPair,
}

impl Key {
    fn new(kid: &'static str) -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        Self { kid, pair }
    }

    fn jwk(&self) -> Value {
        let x = URL_SAFE_NO_PAD.encode(self.pair.public_key().as_ref());
        json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": self.kid, "use": "sig", "alg": "EdDSA"})
    }

    /// A compact JWS of these exact header and payload bytes.
    fn sign_raw(&self, header: &[u8], payload: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let sig = self.pair.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }
}

fn header(alg: &str, kid: &str) -> Vec<u8> {
    json!({"alg": alg, "typ": "at+jwt", "kid": kid})
        .to_string()
        .into_bytes()
}

fn claims() -> Vec<u8> {
    json!({
        "iss": ISSUER, "sub": "user-1", "aud": "notes-api", "exp": NOW + 600, "iat": NOW,
        "nbf": NOW, "jti": "jti-1", "client_id": "notes-app", "scope": "notes:read profile",
        "sid": "family-1", "preferred_username": "alice"
    })
    .to_string()
    .into_bytes()
}

/// The trusted key `k1`, a second trusted key `k2`, a key nobody trusts, the validator, and the
/// one token it must accept.
struct Fixture {
    trusted: Key,
    other_trusted: Key,
    stranger: Key,
    validator: Validator,
    token: String,
    /// A DPoP key and a token bound to it.
    device: DeviceKey,
    bound: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let (trusted, other_trusted, stranger) = (Key::new("k1"), Key::new("k2"), Key::new("k1"));
        let jwks = json!({"keys": [trusted.jwk(), other_trusted.jwk()]}).to_string();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let validator = runtime
            .block_on(
                Validator::builder(ISSUER)
                    .audience("notes-api")
                    .clock(|| NOW)
                    .static_jwks(jwks)
                    .revocation_poll(None)
                    .build(),
            )
            .unwrap();
        let token = trusted.sign_raw(&header("EdDSA", "k1"), &claims());
        let device = DeviceKey::generate_es256().unwrap();
        let mut bound_claims: Value = serde_json::from_slice(&claims()).unwrap();
        bound_claims["cnf"] = json!({ "jkt": device.jkt() });
        let bound = trusted.sign_raw(&header("EdDSA", "k1"), bound_claims.to_string().as_bytes());
        Fixture {
            trusted,
            other_trusted,
            stranger,
            validator,
            token,
            device,
            bound,
        }
    })
}

/// Whether the validator accepts `token`; the property is that only the signed one is.
fn accepted(token: &str) -> bool {
    fixture().validator.validate_cached(token).is_ok()
}

const HTU: &str = "https://api.test/notes";

/// A fresh proof (its own `jti`) for the fixture's bound token.
fn fresh_proof() -> String {
    let mut jti = [0u8; 16];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut jti).unwrap();
    let f = fixture();
    f.device
        .proof(&ProofClaims {
            htm: "GET",
            htu: HTU,
            iat: NOW,
            jti: &URL_SAFE_NO_PAD.encode(jti),
            access_token: Some(&f.bound),
            nonce: None,
        })
        .unwrap()
}

/// Whether the validator accepts the bound token with `proof`.
fn proof_accepted(proof: &str) -> bool {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let f = fixture();
    runtime
        .block_on(f.validator.validate_dpop(&f.bound, proof, "GET", HTU))
        .is_ok()
}

/// A byte of a compact JWS, or something that should never be in one.
fn replacement() -> impl Strategy<Value = char> {
    prop_oneof![
        8 => proptest::char::ranges(vec!['A'..='Z', 'a'..='z', '0'..='9'].into()),
        2 => prop::sample::select(vec!['-', '_', '.', '=', '+', '/', ' ', '%', '\0', 'é']),
    ]
}

/// Flip one bit of the decoded `part` (0 header, 1 payload, 2 signature) and re-encode it.
fn flip_decoded_bit(token: &str, part: usize, bit: usize) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let mut bytes = URL_SAFE_NO_PAD.decode(&parts[part]).unwrap();
    let bit = bit % (bytes.len() * 8);
    bytes[bit / 8] ^= 1 << (bit % 8);
    parts[part] = URL_SAFE_NO_PAD.encode(bytes);
    parts.join(".")
}

#[test]
fn the_signed_proof_is_accepted_once() {
    let proof = fresh_proof();
    assert!(proof_accepted(&proof));
    assert!(!proof_accepted(&proof));
}

#[test]
fn the_signed_token_is_accepted() {
    assert!(accepted(&fixture().token));
    let header = format!("Bearer {}", fixture().token);
    assert_eq!(bearer_token(Some(&header)).unwrap(), fixture().token);
}

proptest! {
    #![proptest_config(config())]

    /// One character replaced, inserted or removed anywhere: never accepted unless unchanged.
    #[test]
    fn an_edited_token_is_refused(at in any::<prop::sample::Index>(), c in replacement(),
                                  edit in 0u8..3) {
        let token = &fixture().token;
        let i = at.index(token.len());
        let mut edited: String = token.clone();
        match edit {
            0 => edited.replace_range(i..=i, c.encode_utf8(&mut [0; 4])),
            1 => edited.insert(i, c),
            _ => { edited.remove(i); }
        }
        prop_assert_eq!(accepted(&edited), edited == *token);
    }

    /// A bit flipped inside the decoded header, payload or signature, re-encoded canonically.
    #[test]
    fn a_flipped_bit_is_refused(part in 0usize..3, bit in any::<usize>()) {
        let edited = flip_decoded_bit(&fixture().token, part, bit);
        prop_assert!(!accepted(&edited));
    }

    /// The last character of a part carries unused low bits in Base64: a different spelling of the
    /// same bytes must still be refused (the signature covers the text, not the decoded bytes).
    #[test]
    fn a_non_canonical_spelling_is_refused(part in 0usize..3, c in proptest::char::ranges(vec!['A'..='Z', 'a'..='z', '0'..='9'].into())) {
        let mut parts: Vec<String> = fixture().token.split('.').map(str::to_string).collect();
        let last = parts[part].len() - 1;
        parts[part].replace_range(last.., c.encode_utf8(&mut [0; 4]));
        let edited = parts.join(".");
        prop_assert_eq!(accepted(&edited), edited == fixture().token);
    }

    /// Another `alg` (RFC 8725 §2.1), signed properly by the trusted key or not at all; `none`
    /// with an empty or any signature; another key, also under the trusted `kid`.
    #[test]
    fn another_algorithm_or_key_is_refused(
        alg in prop_oneof![
            prop::sample::select(vec!["none", "None", "NONE", "HS256", "RS256", "ES256", "eddsa",
                                      "EdDSA ", "Ed25519", ""]).prop_map(str::to_string),
            ".{0,12}",
        ],
        signer in 0u8..4,
        signature in "[A-Za-z0-9_-]{0,90}",
    ) {
        let f = fixture();
        let token = match signer {
            0 => f.trusted.sign_raw(&header(&alg, "k1"), &claims()),
            1 => f.stranger.sign_raw(&header("EdDSA", "k1"), &claims()),
            2 => f.other_trusted.sign_raw(&header("EdDSA", "k1"), &claims()),
            _ => format!(
                "{}.{}.{signature}",
                URL_SAFE_NO_PAD.encode(header(&alg, "k1")),
                URL_SAFE_NO_PAD.encode(claims())
            ),
        };
        let legitimate = signer == 0 && alg == "EdDSA";
        prop_assert_eq!(accepted(&token), legitimate);
    }

    /// Arbitrary strings, and strings shaped like a compact JWS: never accepted, never a panic.
    #[test]
    fn arbitrary_tokens_are_refused(token in prop_oneof![
        ".{0,200}",
        "[A-Za-z0-9_-]{0,120}\\.[A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,90}",
        "(eyJ[A-Za-z0-9_-]{0,60}\\.){1,4}[A-Za-z0-9_=.-]{0,90}",
    ]) {
        prop_assert!(!accepted(&token));
    }

    /// Large inputs: a huge header, payload or signature, or many parts; refused without a panic.
    #[test]
    fn huge_tokens_are_refused(size in prop_oneof![3 => 1usize..4096, 1 => 4096usize..(1 << 20)], part in 0usize..4, c in replacement()) {
        let filler: String = std::iter::repeat_n(c, size).collect();
        let mut parts: Vec<String> = fixture().token.split('.').map(str::to_string).collect();
        match part {
            3 => parts.push(filler),
            p => parts[p].push_str(&filler),
        }
        prop_assert!(!accepted(&parts.join(".")));
    }

    /// One character of a DPoP proof replaced, inserted or removed anywhere: never accepted
    /// unless unchanged (each case signs a proof of its own, so none is a replay).
    #[test]
    fn an_edited_dpop_proof_is_refused(at in any::<prop::sample::Index>(), c in replacement(),
                                       edit in 0u8..3) {
        let proof = fresh_proof();
        let i = at.index(proof.len());
        let mut edited = proof.clone();
        match edit {
            0 => edited.replace_range(i..=i, c.encode_utf8(&mut [0; 4])),
            1 => edited.insert(i, c),
            _ => { edited.remove(i); }
        }
        prop_assert_eq!(proof_accepted(&edited), edited == proof);
    }

    /// Any `Authorization` header: no panic; what `bearer_token` finds is part of the header, and
    /// only the header that carries the exact token passes validation.
    #[test]
    fn authorization_headers(
        header in prop_oneof![
            ".{0,120}",
            "(?i:bearer|basic|dpop)? {0,3}[A-Za-z0-9._~+/=-]{0,80} {0,2}",
            (0u8..3, prop::sample::select(vec!["Bearer", "bearer", "BEARER", "Bearer  ", "Bearer\t", "Basic"]))
                .prop_map(|(pad, scheme)| format!("{}{scheme} {}{}", " ".repeat(pad.into()), fixture().token, "=".repeat(pad.into()))),
        ],
    ) {
        if let Ok(credentials) = Credentials::parse(Some(&header)) {
            prop_assert!(!credentials.token().is_empty() && header.contains(credentials.token()));
        }
        let Ok(token) = bearer_token(Some(&header)) else { return Ok(()) };
        prop_assert!(!token.is_empty() && header.contains(token));
        prop_assert_eq!(accepted(token), token == fixture().token);
    }
}
