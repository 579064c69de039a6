//! DPoP-bound tokens (RFC 9449 §7): the proof's checks, one refusal each, the two schemes kept
//! apart, and the actix extractor reading `Authorization: DPoP` and the `DPoP` header.

use lineage_jwt::dpop::{DeviceKey, ProofClaims};
use lineage_resource::{Credentials, DpopError, ProofError, Scheme};

use super::*;

const HTU: &str = "https://api.test/notes";

/// A token bound to `key`, signed by the fixture's issuer key.
fn bound_token(f: &Fixture, key: &DeviceKey) -> String {
    f.key
        .token(&with(claims(), json!({"cnf": {"jkt": key.jkt()}})))
}

/// A proof for `GET {HTU}` with `token`, made `iat` at the fixture's start time.
fn proof_for(key: &DeviceKey, token: &str, jti: &str) -> String {
    key.proof(&ProofClaims {
        htm: "GET",
        htu: HTU,
        iat: NOW,
        jti,
        access_token: Some(token),
        nonce: None,
    })
    .unwrap()
}

impl Fixture {
    /// The request is refused, in the DPoP scheme, with `code`; the error is returned.
    async fn reject_dpop(
        &self,
        token: &str,
        proof: &str,
        method: &str,
        htu: &str,
        code: &str,
    ) -> lineage_resource::AuthError {
        let err = self
            .validator
            .validate_dpop(token, proof, method, htu)
            .await
            .expect_err("must be refused");
        assert_eq!(err.status_code(), 401, "{err}");
        assert_eq!(err.scheme(), Scheme::Dpop);
        let challenge = err.www_authenticate().unwrap();
        let start = format!(r#"DPoP realm="notes-api", error="{code}", error_description=""#);
        assert!(challenge.starts_with(&start), "{challenge}");
        assert!(
            challenge.ends_with(r#", algs="ES256 EdDSA""#),
            "{challenge}"
        );
        assert_eq!(err.body().unwrap()["error"], code);
        err
    }

    async fn refused_proof(&self, token: &str, proof: &str, method: &str, htu: &str) -> DpopError {
        self.reject_dpop(token, proof, method, htu, "invalid_dpop_proof")
            .await
            .dpop_error()
            .cloned()
            .unwrap()
    }
}

#[tokio::test]
async fn a_bound_token_with_a_good_proof_passes_for_es256_and_eddsa() {
    let f = fixture().await;
    for key in [
        DeviceKey::generate_es256().unwrap(),
        DeviceKey::generate_ed25519().unwrap(),
    ] {
        let token = bound_token(&f, &key);
        let proof = proof_for(&key, &token, &format!("{}-1", key.alg()));
        let c = f
            .validator
            .validate_dpop(&token, &proof, "GET", HTU)
            .await
            .unwrap();
        assert_eq!(c.sub, "user-1");
        assert_eq!(c.dpop_jkt(), Some(key.jkt().as_str()), "{}", key.alg());
        assert!(!c.extra.contains_key("cnf"), "cnf is not repeated in extra");

        // The query is not part of htu (§4.3), and the window is 60 s back, the leeway ahead.
        let at = |iat: i64, jti: &str| {
            key.proof(&ProofClaims {
                htm: "GET",
                htu: "https://api.test/notes",
                iat,
                jti,
                access_token: Some(&token),
                nonce: None,
            })
            .unwrap()
        };
        let htu_with_query = "https://api.test/notes?page=2";
        for (proof, label) in [
            (at(NOW - 60, "old"), "60 s old"),
            (at(NOW + 5, "ahead"), "5 s ahead"),
        ] {
            assert!(
                f.validator
                    .validate_dpop(&token, &proof, "GET", htu_with_query)
                    .await
                    .is_ok(),
                "{label}"
            );
        }
    }
}

#[tokio::test]
async fn each_proof_check_refuses_with_invalid_dpop_proof() {
    let f = fixture().await;
    let key = DeviceKey::generate_es256().unwrap();
    let token = bound_token(&f, &key);
    let sign = |claims: ProofClaims<'_>| key.proof(&claims).unwrap();
    let base = ProofClaims {
        htm: "GET",
        htu: HTU,
        iat: NOW,
        jti: "j",
        access_token: Some(&token),
        nonce: None,
    };
    let refused = |e: ProofError| DpopError::Proof(e);

    let wrong_htu = sign(ProofClaims {
        htu: "https://api.test/other",
        ..base
    });
    assert_eq!(
        f.refused_proof(&token, &wrong_htu, "GET", HTU).await,
        refused(ProofError::Uri)
    );
    // Another host, scheme or port is another URI.
    let good = sign(base);
    for htu in [
        "https://evil.test/notes",
        "http://api.test/notes",
        "https://api.test:8443/notes",
    ] {
        assert_eq!(
            f.refused_proof(&token, &good, "GET", htu).await,
            refused(ProofError::Uri),
            "{htu}"
        );
    }

    assert_eq!(
        f.refused_proof(&token, &good, "POST", HTU).await,
        refused(ProofError::Method)
    );

    let old = sign(ProofClaims {
        iat: NOW - 61,
        ..base
    });
    assert_eq!(
        f.refused_proof(&token, &old, "GET", HTU).await,
        refused(ProofError::Time)
    );
    let ahead = sign(ProofClaims {
        iat: NOW + 6,
        ..base
    });
    assert_eq!(
        f.refused_proof(&token, &ahead, "GET", HTU).await,
        refused(ProofError::Time)
    );

    let no_ath = sign(ProofClaims {
        access_token: None,
        ..base
    });
    assert_eq!(
        f.refused_proof(&token, &no_ath, "GET", HTU).await,
        refused(ProofError::AccessTokenHash)
    );
    let another_token = f.key.token(&with(
        claims(),
        json!({"jti": "jti-2", "cnf": {"jkt": key.jkt()}}),
    ));
    let other_ath = sign(ProofClaims {
        access_token: Some(&another_token),
        ..base
    });
    assert_eq!(
        f.refused_proof(&token, &other_ath, "GET", HTU).await,
        refused(ProofError::AccessTokenHash)
    );

    // A proof that verifies, by a key the token is not bound to (a stolen token, the thief's
    // own key).
    let thief = DeviceKey::generate_es256().unwrap();
    let swapped = proof_for(&thief, &token, "j");
    assert_eq!(
        f.refused_proof(&token, &swapped, "GET", HTU).await,
        DpopError::KeyMismatch
    );

    assert!(matches!(
        f.refused_proof(&token, "not-a-proof", "GET", HTU).await,
        DpopError::Proof(ProofError::Malformed(_))
    ));

    // None of the refusals above used up the jti: the good proof passes once, then is a replay.
    assert!(
        f.validator
            .validate_dpop(&token, &good, "GET", HTU)
            .await
            .is_ok()
    );
    let replayed = f
        .reject_dpop(&token, &good, "GET", HTU, "invalid_dpop_proof")
        .await;
    assert_eq!(replayed.dpop_error(), Some(&refused(ProofError::Replayed)));
    assert!(
        replayed
            .www_authenticate()
            .unwrap()
            .contains("the DPoP proof was used before (same jti)")
    );
}

#[tokio::test]
async fn a_proof_ages_out_with_the_injected_clock() {
    let f = fixture().await;
    let key = DeviceKey::generate_ed25519().unwrap();
    let token = bound_token(&f, &key);
    let proof = proof_for(&key, &token, "late");
    f.time.store(NOW + 61, Ordering::SeqCst);
    assert_eq!(
        f.refused_proof(&token, &proof, "GET", HTU).await,
        DpopError::Proof(ProofError::Time)
    );
    f.time.store(NOW + 60, Ordering::SeqCst);
    assert!(
        f.validator
            .validate_dpop(&token, &proof, "GET", HTU)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn the_proof_window_and_replay_cache_follow_the_builder() {
    let f = fixture_with(|b| {
        b.dpop_proof_max_age(Duration::from_secs(10))
            .dpop_replay_capacity(2)
    })
    .await;
    let key = DeviceKey::generate_ed25519().unwrap();
    let token = bound_token(&f, &key);
    let at = |iat: i64, jti: &str| {
        key.proof(&ProofClaims {
            htm: "GET",
            htu: HTU,
            iat,
            jti,
            access_token: Some(&token),
            nonce: None,
        })
        .unwrap()
    };
    assert_eq!(
        f.refused_proof(&token, &at(NOW - 11, "a"), "GET", HTU)
            .await,
        DpopError::Proof(ProofError::Time)
    );
    let ok = |proof: String| {
        let v = f.validator.clone();
        let token = token.clone();
        async move { v.validate_dpop(&token, &proof, "GET", HTU).await }
    };
    assert!(ok(at(NOW - 3, "a")).await.is_ok());
    assert!(ok(at(NOW - 2, "b")).await.is_ok());
    // The cache holds two: "a" is forgotten to make room, and from then on nothing as old as
    // "a" is accepted, so its replay is still refused.
    assert!(ok(at(NOW - 1, "c")).await.is_ok());
    for (proof, label) in [
        (at(NOW - 3, "a"), "a again"),
        (at(NOW - 3, "d"), "as old as a"),
    ] {
        assert_eq!(
            f.refused_proof(&token, &proof, "GET", HTU).await,
            DpopError::Proof(ProofError::Replayed),
            "{label}"
        );
    }
    assert!(ok(at(NOW, "e")).await.is_ok());
}

#[tokio::test]
async fn the_token_is_checked_before_the_proof() {
    let f = fixture().await;
    let key = DeviceKey::generate_es256().unwrap();
    let expired = f.key.token(&with(
        claims(),
        json!({"exp": NOW - 10, "cnf": {"jkt": key.jkt()}}),
    ));
    let err = f
        .reject_dpop(&expired, "not-a-proof", "GET", HTU, "invalid_token")
        .await;
    assert_eq!(err.token_error(), Some(&TokenError::Expired));

    let forged = Key::new("k1").token(&with(claims(), json!({"cnf": {"jkt": key.jkt()}})));
    let proof = proof_for(&key, &forged, "j");
    let err = f
        .reject_dpop(&forged, &proof, "GET", HTU, "invalid_token")
        .await;
    assert_eq!(err.token_error(), Some(&TokenError::BadSignature));
}

#[tokio::test]
async fn bound_and_unbound_tokens_each_need_their_own_scheme() {
    let f = fixture().await;
    let key = DeviceKey::generate_ed25519().unwrap();
    let bound = bound_token(&f, &key);

    // RFC 9449 §7.2: a bound token presented as a bearer token.
    assert_eq!(f.reject(&bound).await, TokenError::BoundToDpopKey);
    let err = f.validator.validate_cached(&bound).unwrap_err();
    assert_eq!(err.token_error(), Some(&TokenError::BoundToDpopKey));
    let err = f
        .validator
        .authenticate(Some(&format!("Bearer {bound}")))
        .await
        .unwrap_err();
    assert_eq!(
        err.www_authenticate().unwrap(),
        concat!(
            r#"Bearer realm="notes-api", error="invalid_token", error_description="the access "#,
            r#"token is bound to a DPoP key: send it with the DPoP scheme and a DPoP proof""#
        )
    );

    // An unbound token under the DPoP scheme, even with a proof that is fine in itself.
    let unbound = f.key.token(&claims());
    let proof = proof_for(&key, &unbound, "u");
    let err = f
        .reject_dpop(&unbound, &proof, "GET", HTU, "invalid_token")
        .await;
    assert_eq!(err.token_error(), Some(&TokenError::NotDpopBound));

    // A binding this crate cannot check is refused both ways, never ignored.
    for cnf in [
        json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}),
        json!({"jkt": key.jkt(), "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}),
        json!({"jkt": ""}),
        json!({"jkt": 7}),
    ] {
        let token = f.key.token(&with(claims(), json!({ "cnf": cnf })));
        assert_eq!(
            f.reject(&token).await,
            TokenError::UnsupportedConfirmation,
            "{cnf}"
        );
        let proof = proof_for(&key, &token, "x");
        let err = f
            .reject_dpop(&token, &proof, "GET", HTU, "invalid_token")
            .await;
        assert_eq!(
            err.token_error(),
            Some(&TokenError::UnsupportedConfirmation),
            "{cnf}"
        );
    }
}

#[test]
fn authorization_parsing_knows_both_schemes() {
    let parse = |v: &'static str| Credentials::parse(Some(v));
    assert_eq!(parse("Bearer abc").unwrap(), Credentials::Bearer("abc"));
    assert_eq!(parse("DPoP abc.def").unwrap(), Credentials::Dpop("abc.def"));
    assert_eq!(parse("dpop   abc").unwrap(), Credentials::Dpop("abc"));
    assert_eq!(parse("DPOP abc").unwrap().scheme(), Scheme::Dpop);
    assert_eq!(
        format!("{:?}", parse("DPoP secret").unwrap()),
        "DPoP([redacted])"
    );
    for missing in [None, Some("Basic dXNlcjpwYXNz"), Some("DPoPabc")] {
        let e = Credentials::parse(missing).unwrap_err();
        assert_eq!(e.kind(), &AuthErrorKind::MissingToken, "{missing:?}");
    }
    for bad in ["DPoP", "DPoP a b", "DPoP \"abc\""] {
        let e = parse(bad).unwrap_err();
        assert_eq!((e.status_code(), e.scheme()), (400, Scheme::Dpop), "{bad}");
        assert!(
            e.www_authenticate()
                .unwrap()
                .starts_with(r#"DPoP error="invalid_request""#),
            "{bad}"
        );
    }
    // The Bearer-only helper treats DPoP as another scheme.
    assert_eq!(
        bearer_token(Some("DPoP abc")).unwrap_err().kind(),
        &AuthErrorKind::MissingToken
    );
}

/// A handler that reads the token twice: the second read must not see the proof as a replay.
async fn twice(first: Authenticated, second: Authenticated<Username>) -> HttpResponse {
    HttpResponse::Ok().body(format!("{} {} {:?}", first.sub, second.0, first.scheme()))
}

fn challenges(resp: &actix_web::dev::ServiceResponse) -> Vec<String> {
    resp.headers()
        .get_all("WWW-Authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

#[actix_web::test]
async fn the_actix_extractor_takes_dpop_tokens_with_one_proof_header() {
    let f = fixture().await;
    let app = actix_test::init_service(
        App::new()
            .app_data(web::Data::new(f.validator.clone()))
            .route("/me", web::get().to(whoami))
            .route("/notes", web::post().to(write))
            .route(
                "/twice",
                web::get().to(twice).wrap(RequireScope("notes:read")),
            ),
    )
    .await;
    let key = DeviceKey::generate_es256().unwrap();
    let token = bound_token(&f, &key);
    let proof = |method: &str, path: &str, jti: &str| {
        key.proof(&ProofClaims {
            htm: method,
            htu: &format!("http://api.test{path}"),
            iat: NOW,
            jti,
            access_token: Some(&token),
            nonce: None,
        })
        .unwrap()
    };
    let request = |path: &str, authorization: String, proofs: Vec<String>| {
        let mut req = actix_test::TestRequest::get()
            .uri(path)
            .insert_header(("Host", "api.test"))
            .insert_header(("Authorization", authorization));
        for p in proofs {
            req = req.append_header(("DPoP", p));
        }
        req.to_request()
    };
    let dpop = format!("DPoP {token}");

    let resp = actix_test::call_service(
        &app,
        request("/me", dpop.clone(), vec![proof("GET", "/me", "1")]),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = actix_test::read_body_json(resp).await;
    assert_eq!(body["sub"], "user-1");

    // The scheme is case-insensitive; the query is not part of the htu.
    let resp = actix_test::call_service(
        &app,
        request(
            "/me?x=1",
            format!("dpop {token}"),
            vec![proof("GET", "/me", "2")],
        ),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);

    // The scope guard and two extractors read the same proof once.
    let resp = actix_test::call_service(
        &app,
        request("/twice", dpop.clone(), vec![proof("GET", "/twice", "3")]),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(actix_test::read_body(resp).await, "user-1 alice Dpop");

    // The same proof again: a replay.
    let resp = actix_test::call_service(
        &app,
        request("/me", dpop.clone(), vec![proof("GET", "/me", "1")]),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(
        challenges(&resp)[0].contains("same jti"),
        "{:?}",
        challenges(&resp)
    );

    let resp = actix_test::call_service(&app, request("/me", dpop.clone(), vec![])).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenges(&resp),
        [concat!(
            r#"DPoP realm="notes-api", error="invalid_dpop_proof", error_description="no DPoP "#,
            r#"proof was sent: the DPoP scheme needs a DPoP header", algs="ES256 EdDSA""#
        )]
    );
    let body: Value = actix_test::read_body_json(resp).await;
    assert_eq!(
        body,
        json!({
            "error": "invalid_dpop_proof",
            "error_description": "no DPoP proof was sent: the DPoP scheme needs a DPoP header",
        })
    );

    let resp = actix_test::call_service(
        &app,
        request(
            "/me",
            dpop.clone(),
            vec![proof("GET", "/me", "4"), proof("GET", "/me", "5")],
        ),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let refusal = &challenges(&resp)[0];
    assert!(
        refusal.starts_with(r#"DPoP realm="notes-api", error="invalid_dpop_proof""#),
        "{refusal}"
    );
    assert!(refusal.contains("more than one DPoP header"), "{refusal}");
    // Neither of the two proofs was used up.
    let resp = actix_test::call_service(
        &app,
        request("/me", dpop.clone(), vec![proof("GET", "/me", "4")]),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);

    // A bound token as a bearer token, proof or not.
    let resp = actix_test::call_service(
        &app,
        request(
            "/me",
            format!("Bearer {token}"),
            vec![proof("GET", "/me", "6")],
        ),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let refusal = &challenges(&resp)[0];
    assert!(
        refusal.starts_with(r#"Bearer realm="notes-api", error="invalid_token""#),
        "{refusal}"
    );
    assert!(refusal.contains("bound to a DPoP key"), "{refusal}");
    let body: Value = actix_test::read_body_json(resp).await;
    assert_eq!(body["error"], "invalid_token");

    // An unbound token under the DPoP scheme.
    let unbound = f.key.token(&claims());
    let unbound_proof = key
        .proof(&ProofClaims {
            htm: "GET",
            htu: "http://api.test/me",
            iat: NOW,
            jti: "7",
            access_token: Some(&unbound),
            nonce: None,
        })
        .unwrap();
    let resp = actix_test::call_service(
        &app,
        request("/me", format!("DPoP {unbound}"), vec![unbound_proof]),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let refusal = &challenges(&resp)[0];
    assert!(
        refusal.starts_with(r#"DPoP realm="notes-api", error="invalid_token""#),
        "{refusal}"
    );
    assert!(refusal.contains("not bound to a DPoP key"), "{refusal}");

    // A DPoP request without the scope: 403 in the DPoP scheme.
    let req = actix_test::TestRequest::post()
        .uri("/notes")
        .insert_header(("Host", "api.test"))
        .insert_header(("Authorization", dpop.clone()))
        .insert_header(("DPoP", proof("POST", "/notes", "8")))
        .to_request();
    let resp = actix_test::call_service(&app, req).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let refusal = &challenges(&resp)[0];
    assert!(
        refusal.starts_with(r#"DPoP realm="notes-api", error="insufficient_scope""#),
        "{refusal}"
    );
    assert!(refusal.contains(r#"scope="notes:write""#), "{refusal}");

    let resp = actix_test::call_service(&app, request("/me", "DPoP ".into(), vec![])).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(challenges(&resp)[0].starts_with(r#"DPoP realm="notes-api", error="invalid_request""#));
}

/// GET `path` with the DPoP token, a fresh proof for `htu`, and extra headers.
fn dpop_get(
    key: &DeviceKey,
    token: &str,
    path: &str,
    htu: &str,
    headers: &[(&'static str, &'static str)],
) -> actix_test::TestRequest {
    let mut jti = [0u8; 16];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut jti).unwrap();
    let proof = key
        .proof(&ProofClaims {
            htm: "GET",
            htu,
            iat: NOW,
            jti: &URL_SAFE_NO_PAD.encode(jti),
            access_token: Some(token),
            nonce: None,
        })
        .unwrap();
    let mut req = actix_test::TestRequest::get()
        .uri(path)
        .insert_header(("Authorization", format!("DPoP {token}")))
        .insert_header(("DPoP", proof));
    for &(name, value) in headers {
        req = req.insert_header((name, value));
    }
    req
}

#[actix_web::test]
async fn the_htu_is_the_request_url_unless_a_public_url_is_configured() {
    let key = DeviceKey::generate_ed25519().unwrap();

    // Default: scheme and host (with port) as the request arrived, then its path.
    let f = fixture().await;
    let token = bound_token(&f, &key);
    let app = actix_test::init_service(
        App::new()
            .app_data(web::Data::new(f.validator.clone()))
            .route("/me", web::get().to(whoami)),
    )
    .await;
    let call = |htu: &str, headers: &[(&'static str, &'static str)]| {
        let req = dpop_get(&key, &token, "/me", htu, headers).to_request();
        async { actix_test::call_service(&app, req).await.status() }
    };
    let host = [("Host", "api.test:8443")];
    assert_eq!(call("http://api.test:8443/me", &host).await, StatusCode::OK);
    for wrong in [
        "https://api.test:8443/me",
        "http://api.test/me",
        "http://api.test:8443/you",
    ] {
        assert_eq!(
            call(wrong, &host).await,
            StatusCode::UNAUTHORIZED,
            "{wrong}"
        );
    }
    // actix's connection info follows X-Forwarded-* (which is why public_url exists).
    let forwarded = [
        ("Host", "10.0.0.7:8080"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "api.example.com"),
    ];
    assert_eq!(
        call("https://api.example.com/me", &forwarded).await,
        StatusCode::OK
    );

    // public_url: the configured origin and path prefix, whatever the request says.
    let f = fixture_with(|b| b.public_url("https://API.example.com:443/v1/")).await;
    assert_eq!(f.validator.public_url(), Some("https://api.example.com/v1"));
    let token = bound_token(&f, &key);
    let app = actix_test::init_service(
        App::new()
            .app_data(web::Data::new(f.validator.clone()))
            .route("/me", web::get().to(whoami)),
    )
    .await;
    let call = |htu: &str, headers: &[(&'static str, &'static str)]| {
        let req = dpop_get(&key, &token, "/me", htu, headers).to_request();
        async { actix_test::call_service(&app, req).await.status() }
    };
    let internal = [("Host", "10.0.0.7:8080")];
    assert_eq!(
        call("https://api.example.com/v1/me", &internal).await,
        StatusCode::OK
    );
    assert_eq!(
        call("http://10.0.0.7:8080/me", &internal).await,
        StatusCode::UNAUTHORIZED
    );
    let spoofed = [
        ("Host", "evil.test"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "evil.test"),
    ];
    assert_eq!(
        call("https://evil.test/me", &spoofed).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call("https://api.example.com/v1/me", &spoofed).await,
        StatusCode::OK
    );

    for bad in [
        "api.example.com",
        "ftp://api.example.com",
        "https://api.example.com/?x=1",
        "https://user:pw@api.example.com",
    ] {
        let built = Validator::builder(ISSUER)
            .audience("notes-api")
            .static_jwks(r#"{"keys":[]}"#)
            .revocation_poll(None)
            .public_url(bad)
            .build()
            .await;
        assert!(
            matches!(built, Err(BuildError::InvalidPublicUrl(_))),
            "{bad}: {built:?}"
        );
    }
}
