//! Access tokens per second on one core: validation by `lineage_resource::Validator` against raw
//! ring Ed25519 verification of the same token bytes, and minting by `lineage::tokens::jwt::mint`
//! against raw ring signing of the same signing input. Target: at least 80 % of raw for both.
//!
//! DPoP: `validate_dpop` of a bound token with its proof (ES256 and EdDSA keys), the whole path
//! including the replay cache, next to plain `validate`. Each proof can be used once, so every
//! batch criterion times gets its own proofs with fresh `jti`s, signed before the clock starts.
//! The ratio to plain validation is printed at the end. Target: at least 50 % of plain. The
//! proof's own check (`lineage_jwt::dpop::verify`, the same proof every time, no replay cache)
//! is measured too: `validate_dpop` is about `validate` plus that.
//!
//! `cargo bench --bench validation -- --warm-up-time 1 --measurement-time 3`

// A benchmark that cannot set itself up should stop loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::Cell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jsonwebtoken::{DecodingKey, EncodingKey};
use lineage::clock::{Clock, SystemClock};
use lineage::tokens::jwt::{self, AccessClaims, Confirmation};
use lineage::tokens::keys::{KeyAlgorithm, PublicJwk, SigningKey, thumbprint};
use lineage_jwt::dpop::{self, DeviceKey, Expect, ProofClaims};
use lineage_resource::Validator;
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

const ISSUER: &str = "http://127.0.0.1:8080";
const AUDIENCE: &str = "notes-api";
/// The URL the DPoP proofs are made for.
const HTU: &str = "https://api.example.com/notes";

/// Iterations and time of every batch a benchmark timed (warm-up included), for the ratio.
#[derive(Default)]
struct Tally {
    iterations: Cell<u64>,
    time: Cell<Duration>,
}

impl Tally {
    fn add(&self, iterations: u64, time: Duration) {
        self.iterations.set(self.iterations.get() + iterations);
        self.time.set(self.time.get() + time);
    }

    /// Mean seconds per iteration, once enough ran to mean something (not under `--test`).
    fn mean(&self) -> Option<f64> {
        let n = self.iterations.get();
        (n >= 1000).then(|| self.time.get().as_secs_f64() / n as f64)
    }
}

/// A signing key as the server holds it once loaded (`SigningKey` has public fields; the
/// database round trip adds nothing to what is measured here).
fn signing_key(now: i64) -> (SigningKey, Ed25519KeyPair) {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let public = pair.public_key().as_ref();
    let key = SigningKey {
        kid: thumbprint(public),
        algorithm: KeyAlgorithm::EdDSA,
        public: PublicJwk::Okp {
            x: URL_SAFE_NO_PAD.encode(public),
        },
        created_at: now,
        activates_at: now,
        retired_at: None,
        encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
        decoding: DecodingKey::from_ed_der(public),
    };
    (key, pair)
}

/// Claims of a typical refresh-issued token: family id and a user claim included.
fn claims(now: i64) -> AccessClaims {
    let mut extra = serde_json::Map::new();
    extra.insert("preferred_username".into(), "alice".into());
    AccessClaims {
        iss: ISSUER.into(),
        sub: "5b0e2b7e-3f1c-4d8e-9a57-6c1f0f2f8a10".into(),
        aud: AUDIENCE.into(),
        exp: now + 600,
        iat: now,
        nbf: now,
        jti: "0f8d0c9e-8f4b-4c4e-b3f5-3b9e2f7a1c22".into(),
        client_id: "notes-web".into(),
        scope: "notes:read notes:write profile".into(),
        sid: Some("9a3c1d2e-7b6f-4e5a-8c9d-0e1f2a3b4c5d".into()),
        cnf: None,
        extra,
    }
}

fn benches(c: &mut Criterion) {
    // The server's own provider, as in `lineage serve`; the validator would install an
    // equivalent one (both Ed25519 over ring) if none were there.
    lineage::tokens::crypto::install();
    let now = SystemClock.now();
    let (key, pair) = signing_key(now);
    let claims = claims(now);
    let token = jwt::mint(&key, &claims).unwrap();
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let public = pair.public_key().as_ref().to_vec();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let PublicJwk::Okp { x } = &key.public else {
        unreachable!("an Ed25519 key")
    };
    let jwks = serde_json::json!({"keys": [{
        "kty": "OKP", "crv": "Ed25519", "x": x, "kid": key.kid, "use": "sig", "alg": "EdDSA"
    }]});
    let validator = runtime
        .block_on(
            Validator::builder(ISSUER)
                .audience(AUDIENCE)
                .static_jwks(jwks.to_string())
                .revocation_poll(None)
                // Every proof of a run stays inside the 70 s window: room for all of them, so
                // a full cache never refuses one.
                .dpop_replay_capacity(2_000_000)
                .build(),
        )
        .unwrap();
    // Same answer from both sides before timing anything.
    UnparsedPublicKey::new(&ED25519, &public)
        .verify(signing_input.as_bytes(), &signature)
        .unwrap();
    assert_eq!(validator.validate_cached(&token).unwrap().jti, claims.jti);

    let mut group = c.benchmark_group("validate");
    group.throughput(Throughput::Elements(1));
    group.bench_function("ring_ed25519_verify_raw", |b| {
        b.iter(|| {
            UnparsedPublicKey::new(&ED25519, black_box(&public))
                .verify(black_box(signing_input.as_bytes()), black_box(&signature))
                .unwrap()
        })
    });
    let plain = Tally::default();
    group.bench_function("validator_validate", |b| {
        b.iter_custom(|iterations| {
            let start = Instant::now();
            for _ in 0..iterations {
                black_box(
                    runtime
                        .block_on(validator.validate(black_box(&token)))
                        .unwrap(),
                );
            }
            let elapsed = start.elapsed();
            plain.add(iterations, elapsed);
            elapsed
        })
    });
    group.bench_function("validator_validate_cached", |b| {
        b.iter(|| validator.validate_cached(black_box(&token)).unwrap())
    });
    group.finish();

    let mut group = c.benchmark_group("validate_dpop");
    group.throughput(Throughput::Elements(1));
    let mut ratios = Vec::new();
    let jti = Cell::new(0u64);
    for device in [
        DeviceKey::generate_es256().unwrap(),
        DeviceKey::generate_ed25519().unwrap(),
    ] {
        let bound = jwt::mint(
            &key,
            &AccessClaims {
                cnf: Some(Confirmation { jkt: device.jkt() }),
                ..claims.clone()
            },
        )
        .unwrap();
        let proofs = |n: u64| -> Vec<String> {
            let iat = SystemClock.now();
            (0..n)
                .map(|_| {
                    jti.set(jti.get() + 1);
                    device
                        .proof(&ProofClaims {
                            htm: "GET",
                            htu: HTU,
                            iat,
                            jti: &format!("{:016x}", jti.get()),
                            access_token: Some(&bound),
                            nonce: None,
                        })
                        .unwrap()
                })
                .collect()
        };
        // The proof is what lets the bound token in, and only once.
        let first = proofs(1);
        assert!(validator.validate_cached(&bound).is_err());
        let checked = runtime.block_on(validator.validate_dpop(&bound, &first[0], "GET", HTU));
        assert_eq!(checked.unwrap().dpop_jkt(), Some(device.jkt().as_str()));
        assert!(
            runtime
                .block_on(validator.validate_dpop(&bound, &first[0], "GET", HTU))
                .is_err()
        );

        let expect = Expect {
            htm: "GET",
            htu: HTU,
            now: SystemClock.now(),
            max_age: 60,
            max_skew: 10,
            access_token: Some(&bound),
        };
        group.bench_function(format!("lineage_jwt_dpop_verify_{}", device.alg()), |b| {
            b.iter(|| dpop::verify(black_box(&first[0]), black_box(&expect)).unwrap())
        });
        let tally = Tally::default();
        group.bench_function(format!("validator_validate_dpop_{}", device.alg()), |b| {
            b.iter_custom(|iterations| {
                let batch = proofs(iterations);
                let start = Instant::now();
                for proof in &batch {
                    black_box(
                        runtime
                            .block_on(validator.validate_dpop(
                                black_box(&bound),
                                black_box(proof),
                                "GET",
                                HTU,
                            ))
                            .unwrap(),
                    );
                }
                let elapsed = start.elapsed();
                tally.add(iterations, elapsed);
                elapsed
            })
        });
        ratios.push((device.alg(), tally.mean()));
    }
    group.finish();
    if let Some(plain) = plain.mean() {
        for (alg, dpop) in ratios {
            if let Some(dpop) = dpop {
                println!(
                    "validate_dpop ({alg} proof): {:.0}/s, {:.0} % of plain validate ({:.0}/s)",
                    1.0 / dpop,
                    100.0 * plain / dpop,
                    1.0 / plain
                );
            }
        }
    }

    let mut group = c.benchmark_group("mint");
    group.throughput(Throughput::Elements(1));
    group.bench_function("ring_ed25519_sign_raw", |b| {
        b.iter(|| pair.sign(black_box(signing_input.as_bytes())))
    });
    group.bench_function("lineage_jwt_mint", |b| {
        b.iter(|| jwt::mint(black_box(&key), black_box(&claims)).unwrap())
    });
    group.finish();
}

criterion_group!(validation, benches);
criterion_main!(validation);
