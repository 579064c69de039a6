//! The validation rules against a fixed JWKS and an injected clock: no network, no sleeping.
//! Tokens are built here with ring and base64 directly, so a bug in the validator's own parsing
//! cannot hide behind a matching bug in a shared helper. DPoP-bound tokens and their proofs:
//! `dpop.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, test as actix_test, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lineage_resource::{
    AccessClaims, AuthErrorKind, Authenticated, BuildError, RequireScope, TokenError, Validator,
    ValidatorBuilder, bearer_token,
};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{Value, json};

const ISSUER: &str = "http://as.test";
const NOW: i64 = 1_700_000_000;

struct Key {
    kid: String,
    pair: Ed25519KeyPair,
}

impl Key {
    fn new(kid: &str) -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Self {
            kid: kid.into(),
            pair: Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap(),
        }
    }

    fn x(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.pair.public_key().as_ref())
    }

    fn jwk(&self) -> Value {
        json!({"kty": "OKP", "crv": "Ed25519", "x": self.x(), "kid": self.kid, "use": "sig", "alg": "EdDSA"})
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = signing_input(header, claims);
        let sig = self.pair.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    fn header(&self) -> Value {
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": self.kid})
    }

    fn token(&self, claims: &Value) -> String {
        self.sign(&self.header(), claims)
    }
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

fn claims() -> Value {
    json!({
        "iss": ISSUER, "sub": "user-1", "aud": "notes-api", "exp": NOW + 600, "iat": NOW,
        "nbf": NOW, "jti": "jti-1", "client_id": "notes-app", "scope": "notes:read profile",
        "sid": "family-1", "preferred_username": "alice"
    })
}

fn with(mut base: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

struct Fixture {
    key: Key,
    time: Arc<AtomicI64>,
    validator: Validator,
}

async fn fixture() -> Fixture {
    fixture_with(|b| b).await
}

/// The fixture's validator with more builder settings.
async fn fixture_with(configure: impl FnOnce(ValidatorBuilder) -> ValidatorBuilder) -> Fixture {
    let key = Key::new("k1");
    let time = Arc::new(AtomicI64::new(NOW));
    let t = Arc::clone(&time);
    let builder = Validator::builder(format!("{ISSUER}/"))
        .audience("notes-api")
        .audience("other-api")
        .leeway(Duration::from_secs(5))
        .clock(move || t.load(Ordering::SeqCst))
        .static_jwks(json!({"keys": [key.jwk()]}).to_string())
        .revocation_poll(None);
    let validator = configure(builder).build().await.unwrap();
    Fixture {
        key,
        time,
        validator,
    }
}

impl Fixture {
    async fn reject(&self, token: &str) -> TokenError {
        let err = self
            .validator
            .validate(token)
            .await
            .expect_err("must be rejected");
        assert_eq!(err.status_code(), 401, "{err}");
        let challenge = err.www_authenticate().unwrap();
        assert!(
            challenge.starts_with(
                r#"Bearer realm="notes-api", error="invalid_token", error_description=""#
            ),
            "{challenge}"
        );
        err.token_error().cloned().unwrap()
    }
}

#[tokio::test]
async fn a_valid_token_yields_typed_claims() {
    let f = fixture().await;
    let c: AccessClaims = f.validator.validate(&f.key.token(&claims())).await.unwrap();
    assert_eq!(c.sub, "user-1");
    assert_eq!(c.client_id, "notes-app");
    assert_eq!(c.aud, vec!["notes-api"]);
    assert!(c.has_scope("notes:read") && c.has_scope("profile") && !c.has_scope("notes:write"));
    assert_eq!(c.sid.as_deref(), Some("family-1"));
    assert_eq!((c.iat, c.exp, c.jti.as_str()), (NOW, NOW + 600, "jti-1"));
    assert_eq!(c.extra_str("preferred_username"), Some("alice"));
    assert!(
        !c.extra.contains_key("sub"),
        "registered claims are not repeated in extra"
    );

    // Another configured audience, an audience array, and the long typ form are fine too.
    let other = f
        .key
        .token(&with(claims(), json!({"aud": ["x", "other-api"]})));
    assert!(f.validator.validate(&other).await.is_ok());
    let long_typ = f.key.sign(
        &json!({"alg": "EdDSA", "typ": "application/at+jwt", "kid": "k1"}),
        &claims(),
    );
    assert!(f.validator.validate_cached(&long_typ).is_ok());
}

#[tokio::test]
async fn expiry_and_not_before_follow_the_injected_clock_with_leeway() {
    let f = fixture().await;
    let token = f.key.token(&claims());
    f.time.store(NOW + 600 + 4, Ordering::SeqCst);
    assert!(f.validator.validate(&token).await.is_ok(), "within leeway");
    f.time.store(NOW + 600 + 5, Ordering::SeqCst);
    assert_eq!(f.reject(&token).await, TokenError::Expired);

    f.time.store(NOW, Ordering::SeqCst);
    let later = f.key.token(&with(claims(), json!({"nbf": NOW + 60})));
    assert_eq!(f.reject(&later).await, TokenError::NotYetValid);
    let future_iat = f
        .key
        .token(&with(claims(), json!({"iat": NOW + 60, "nbf": null})));
    assert_eq!(f.reject(&future_iat).await, TokenError::NotYetValid);
    f.time.store(NOW + 55, Ordering::SeqCst);
    assert!(
        f.validator.validate(&later).await.is_ok(),
        "within leeway of nbf"
    );
}

#[tokio::test]
async fn issuer_and_audience_must_match() {
    let f = fixture().await;
    let wrong_iss = f
        .key
        .token(&with(claims(), json!({"iss": "http://evil.test"})));
    assert_eq!(f.reject(&wrong_iss).await, TokenError::WrongIssuer);
    let wrong_aud = f.key.token(&with(claims(), json!({"aud": "billing-api"})));
    assert_eq!(f.reject(&wrong_aud).await, TokenError::WrongAudience);
    let empty_aud = f.key.token(&with(claims(), json!({"aud": []})));
    assert_eq!(f.reject(&empty_aud).await, TokenError::WrongAudience);
}

#[tokio::test]
async fn only_eddsa_at_jwt_with_a_kid_is_accepted() {
    let f = fixture().await;
    let payload = URL_SAFE_NO_PAD.encode(claims().to_string());

    // alg none, unsigned.
    let none = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"at+jwt","kid":"k1"}"#)
    );
    assert_eq!(
        f.reject(&none).await,
        TokenError::UnsupportedAlgorithm("none".into())
    );
    let none_sig = format!(
        "{}.{payload}.AAAA",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"at+jwt","kid":"k1"}"#)
    );
    assert_eq!(
        f.reject(&none_sig).await,
        TokenError::UnsupportedAlgorithm("none".into())
    );

    // Key confusion: HS256 keyed with the public key bytes from the JWKS.
    let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": "k1"});
    let input = signing_input(&header, &claims());
    let public = URL_SAFE_NO_PAD.decode(f.key.x()).unwrap();
    let mac = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &public),
        input.as_bytes(),
    );
    let hs256 = format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
    assert_eq!(
        f.reject(&hs256).await,
        TokenError::UnsupportedAlgorithm("HS256".into())
    );

    // A real Ed25519 signature does not help when the header says otherwise.
    let rs = f.key.sign(
        &json!({"alg": "RS256", "typ": "at+jwt", "kid": "k1"}),
        &claims(),
    );
    assert_eq!(
        f.reject(&rs).await,
        TokenError::UnsupportedAlgorithm("RS256".into())
    );
    let no_typ = f.key.sign(&json!({"alg": "EdDSA", "kid": "k1"}), &claims());
    assert_eq!(f.reject(&no_typ).await, TokenError::WrongType);
    let id_token = f.key.sign(
        &json!({"alg": "EdDSA", "typ": "JWT", "kid": "k1"}),
        &claims(),
    );
    assert_eq!(f.reject(&id_token).await, TokenError::WrongType);
    let no_kid = f
        .key
        .sign(&json!({"alg": "EdDSA", "typ": "at+jwt"}), &claims());
    assert_eq!(f.reject(&no_kid).await, TokenError::MissingKeyId);
    let crit = f.key.sign(
        &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "k1", "crit": ["exp"]}),
        &claims(),
    );
    assert_eq!(f.reject(&crit).await, TokenError::CriticalHeader);
    // Keys named inside the token are never used.
    let attacker = Key::new("k1");
    let embedded = attacker.sign(
        &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "k1", "jwk": attacker.jwk(), "jku": "http://evil.test/jwks"}),
        &claims(),
    );
    assert_eq!(f.reject(&embedded).await, TokenError::BadSignature);
}

#[tokio::test]
async fn unknown_keys_and_tampering_are_rejected() {
    let f = fixture().await;
    let stranger = Key::new("k-unknown");
    assert_eq!(
        f.reject(&stranger.token(&claims())).await,
        TokenError::UnknownKey
    );
    // The same kid as ours, another key.
    let impostor = Key::new("k1");
    assert_eq!(
        f.reject(&impostor.token(&claims())).await,
        TokenError::BadSignature
    );

    let token = f.key.token(&claims());
    let parts: Vec<&str> = token.split('.').collect();
    let tampered_claims = with(claims(), json!({"scope": "notes:read notes:write admin"}));
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(tampered_claims.to_string()),
        parts[2]
    );
    assert_eq!(f.reject(&tampered).await, TokenError::BadSignature);
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[10] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
    assert_eq!(f.reject(&flipped).await, TokenError::BadSignature);

    for garbage in [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "..",
        "e30.e30.",
        "!!!.e30.AAAA",
    ] {
        let e = f.reject(garbage).await;
        assert!(
            matches!(e, TokenError::Malformed | TokenError::MalformedHeader),
            "{garbage}: {e:?}"
        );
    }
    // Signed garbage claims.
    let not_json = {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(f.key.header().to_string()),
            URL_SAFE_NO_PAD.encode("not json")
        );
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(f.key.pair.sign(input.as_bytes()).as_ref())
        )
    };
    assert_eq!(f.reject(&not_json).await, TokenError::MalformedClaims);
}

#[tokio::test]
async fn every_required_claim_must_be_present() {
    let f = fixture().await;
    for claim in [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "jti",
        "client_id",
        "scope",
    ] {
        let token = f.key.token(&with(claims(), json!({claim: null})));
        assert_eq!(
            f.reject(&token).await,
            TokenError::MissingClaim(claim),
            "{claim}"
        );
    }
    let no_optional = f
        .key
        .token(&with(claims(), json!({"nbf": null, "sid": null})));
    assert!(f.validator.validate(&no_optional).await.is_ok());
}

#[tokio::test]
async fn builder_requires_an_audience_and_an_http_issuer() {
    let no_aud = Validator::builder(ISSUER)
        .static_jwks(r#"{"keys":[]}"#)
        .revocation_poll(None)
        .build()
        .await;
    assert!(matches!(no_aud, Err(BuildError::NoAudience)));
    let bad_issuer = Validator::builder("as.test").audience("a").build().await;
    assert!(matches!(bad_issuer, Err(BuildError::InvalidIssuer(_))));
    let unreachable = Validator::builder("http://127.0.0.1:9")
        .audience("a")
        .build()
        .await;
    assert!(
        matches!(unreachable, Err(BuildError::Discovery { .. })),
        "{unreachable:?}"
    );
}

#[test]
fn bearer_header_parsing_follows_rfc_6750() {
    assert_eq!(
        bearer_token(Some("Bearer abc.def-_~+/=")).ok(),
        Some("abc.def-_~+/=")
    );
    assert_eq!(bearer_token(Some("bearer   abc")).ok(), Some("abc"));
    for missing in [
        None,
        Some("Basic dXNlcjpwYXNz"),
        Some("Bearerabc"),
        Some(""),
    ] {
        let e = bearer_token(missing).unwrap_err();
        assert_eq!(e.kind(), &AuthErrorKind::MissingToken, "{missing:?}");
    }
    for bad in [
        "Bearer",
        "Bearer ",
        "Bearer a b",
        "Bearer \"abc\"",
        "Bearer ===",
    ] {
        let e = bearer_token(Some(bad)).unwrap_err();
        assert_eq!(e.status_code(), 400, "{bad}");
        assert_eq!(e.error_code(), Some("invalid_request"));
    }
}

async fn whoami(auth: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(json!({"sub": auth.sub, "scope": auth.scopes().to_string()}))
}

async fn write(auth: Authenticated) -> Result<HttpResponse, lineage_resource::AuthError> {
    auth.require_scope("notes:write")?;
    Ok(HttpResponse::Created().finish())
}

async fn maybe(auth: Option<Authenticated>) -> HttpResponse {
    HttpResponse::Ok().body(auth.map_or("anonymous".to_string(), |a| a.sub.clone()))
}

/// A custom claims type built from the validated token.
struct Username(String);

impl lineage_resource::FromAccessClaims for Username {
    fn from_access_claims(c: AccessClaims) -> Result<Self, lineage_resource::AuthError> {
        c.extra_str("preferred_username")
            .map(|u| Username(u.to_string()))
            .ok_or_else(|| lineage_resource::AuthError::insufficient_scope("profile"))
    }
}

async fn hello(user: Authenticated<Username>) -> HttpResponse {
    HttpResponse::Ok().body(format!("hello {}", user.0))
}

#[actix_web::test]
async fn the_actix_extractor_and_scope_guard_answer_per_rfc_6750() {
    let f = fixture().await;
    let app = actix_test::init_service(
        App::new()
            .app_data(web::Data::new(f.validator.clone()))
            .route("/me", web::get().to(whoami))
            .route("/hello", web::get().to(hello))
            .route("/maybe", web::get().to(maybe))
            .route("/notes", web::post().to(write))
            .route(
                "/guarded",
                web::get().to(whoami).wrap(RequireScope("notes:read")),
            )
            .route("/admin", web::get().to(whoami).wrap(RequireScope("admin"))),
    )
    .await;
    let token = f.key.token(&claims());
    let bearer = format!("Bearer {token}");

    let call = |path: &'static str, auth: Option<String>, post: bool| {
        let mut req = if post {
            actix_test::TestRequest::post()
        } else {
            actix_test::TestRequest::get()
        }
        .uri(path);
        if let Some(a) = auth {
            req = req.insert_header(("Authorization", a));
        }
        req.to_request()
    };
    let challenge = |resp: &actix_web::dev::ServiceResponse| {
        resp.headers()
            .get("WWW-Authenticate")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };

    let resp = actix_test::call_service(&app, call("/me", Some(bearer.clone()), false)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = actix_test::read_body_json(resp).await;
    assert_eq!(
        body,
        json!({"sub": "user-1", "scope": "notes:read profile"})
    );

    // No token: both schemes are offered, one challenge per header.
    let resp = actix_test::call_service(&app, call("/me", None, false)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenges: Vec<&str> = resp
        .headers()
        .get_all("WWW-Authenticate")
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        challenges,
        [
            r#"Bearer realm="notes-api""#,
            r#"DPoP realm="notes-api", algs="ES256 EdDSA""#
        ]
    );

    let resp =
        actix_test::call_service(&app, call("/me", Some("Bearer not-a-jwt".into()), false)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&resp).contains(r#"error="invalid_token""#));
    let body: Value = actix_test::read_body_json(resp).await;
    assert_eq!(body["error"], "invalid_token");

    let resp = actix_test::call_service(&app, call("/me", Some("Bearer ".into()), false)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    let resp = actix_test::call_service(&app, call("/notes", Some(bearer.clone()), true)).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(challenge(&resp).contains(r#"error="insufficient_scope""#));
    assert!(
        challenge(&resp).ends_with(r#"scope="notes:write""#),
        "{}",
        challenge(&resp)
    );

    let resp = actix_test::call_service(&app, call("/guarded", Some(bearer.clone()), false)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = actix_test::call_service(&app, call("/guarded", None, false)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = actix_test::call_service(&app, call("/admin", Some(bearer.clone()), false)).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(challenge(&resp).ends_with(r#"scope="admin""#));

    let resp = actix_test::call_service(&app, call("/hello", Some(bearer.clone()), false)).await;
    assert_eq!(actix_test::read_body(resp).await, "hello alice");
    let resp = actix_test::call_service(&app, call("/maybe", None, false)).await;
    assert_eq!(actix_test::read_body(resp).await, "anonymous");
    let resp = actix_test::call_service(&app, call("/maybe", Some(bearer), false)).await;
    assert_eq!(actix_test::read_body(resp).await, "user-1");

    // No validator registered: a server error, not an open door.
    let bare = actix_test::init_service(App::new().route("/me", web::get().to(whoami))).await;
    let resp =
        actix_test::call_service(&bare, call("/me", Some(format!("Bearer {token}")), false)).await;
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

mod dpop;
