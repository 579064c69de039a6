//! JWKS fetching against an issuer the test controls, so fetches can be counted.

use super::*;

struct FakeIssuer {
    base: String,
    keys: Arc<RwLock<Vec<Value>>>,
    jwks_fetches: Arc<AtomicUsize>,
    conditional_fetches: Arc<AtomicUsize>,
    feed_status: Arc<AtomicU16>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for FakeIssuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[derive(Clone)]
struct FakeState {
    base: String,
    keys: Arc<RwLock<Vec<Value>>>,
    jwks_fetches: Arc<AtomicUsize>,
    conditional_fetches: Arc<AtomicUsize>,
    feed_status: Arc<AtomicU16>,
}

async fn fake_metadata(s: Data<FakeState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"issuer": s.base, "jwks_uri": format!("{}/jwks.json", s.base)}))
}

async fn fake_jwks(s: Data<FakeState>, req: HttpRequest) -> HttpResponse {
    s.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let keys = s.keys.read().unwrap().clone();
    let etag = format!("\"{}\"", keys.len());
    if req.headers().get("If-None-Match").is_some() {
        s.conditional_fetches.fetch_add(1, Ordering::SeqCst);
    }
    if req
        .headers()
        .get("If-None-Match")
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        return HttpResponse::NotModified()
            .insert_header(("Cache-Control", "public, max-age=300"))
            .insert_header(("ETag", etag))
            .finish();
    }
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=300"))
        .insert_header(("ETag", etag))
        .json(json!({ "keys": keys }))
}

async fn fake_feed(s: Data<FakeState>) -> HttpResponse {
    match s.feed_status.load(Ordering::SeqCst) {
        200 => HttpResponse::Ok().json(json!({
            "families": [], "users": [], "access_tokens": [], "clients": [],
            "cursor": "0", "has_more": false, "retention": 660,
        })),
        _ => HttpResponse::ServiceUnavailable().finish(),
    }
}

async fn spawn_fake_issuer() -> FakeIssuer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let state = FakeState {
        base: format!("http://{}", listener.local_addr().unwrap()),
        keys: Default::default(),
        jwks_fetches: Default::default(),
        conditional_fetches: Default::default(),
        feed_status: Arc::new(AtomicU16::new(200)),
    };
    let data = Data::new(state.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route(
                "/.well-known/oauth-authorization-server",
                web::get().to(fake_metadata),
            )
            .route("/jwks.json", web::get().to(fake_jwks))
            .route("/revocations", web::get().to(fake_feed))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    FakeIssuer {
        base: state.base,
        keys: state.keys,
        jwks_fetches: state.jwks_fetches,
        conditional_fetches: state.conditional_fetches,
        feed_status: state.feed_status,
        server: tokio::spawn(server),
    }
}

struct TestKey {
    kid: String,
    pair: Ed25519KeyPair,
}

impl TestKey {
    fn new(kid: &str) -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Self {
            kid: kid.into(),
            pair: Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap(),
        }
    }

    fn jwk(&self) -> Value {
        let x = URL_SAFE_NO_PAD.encode(self.pair.public_key().as_ref());
        json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": self.kid, "use": "sig", "alg": "EdDSA"})
    }

    fn token(&self, issuer: &str, now: i64) -> String {
        let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": self.kid});
        let claims = json!({
            "iss": issuer, "sub": "svc", "aud": AUDIENCE, "exp": now + 600, "iat": now, "nbf": now,
            "jti": uuid::Uuid::new_v4().to_string(), "client_id": "svc", "scope": "notes:read"
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(self.pair.sign(input.as_bytes()).as_ref())
        )
    }
}

/// `n` concurrent requests to the API, each with a token under a never-seen kid.
async fn forged_kid_flood(api: &NotesApi, issuer: &str, now: i64, n: usize) {
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..n {
        let key = TestKey {
            kid: uuid::Uuid::new_v4().to_string(),
            pair: Ed25519KeyPair::from_pkcs8(
                Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                    .unwrap()
                    .as_ref(),
            )
            .unwrap(),
        };
        let token = key.token(issuer, now);
        let (http, url) = (api.http.clone(), format!("{}/notes", api.base));
        requests.spawn(async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    while let Some(status) = requests.join_next().await {
        assert_eq!(status.unwrap(), 401);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kid_flood_costs_at_most_one_jwks_fetch_per_interval() {
    let issuer = spawn_fake_issuer().await;
    let k1 = TestKey::new("k1");
    issuer.keys.write().unwrap().push(k1.jwk());
    let time = Arc::new(AtomicI64::new(1_700_000_000));
    let t = Arc::clone(&time);
    let validator = Validator::builder(&issuer.base)
        .audience(AUDIENCE)
        .clock(move || t.load(Ordering::SeqCst))
        .jwks_refetch_interval(Duration::from_secs(10))
        .revocation_poll(None)
        .build()
        .await
        .unwrap();
    let api = spawn_api(validator.clone()).await;
    let fetches = || issuer.jwks_fetches.load(Ordering::SeqCst);
    let now = || time.load(Ordering::SeqCst);
    assert_eq!(fetches(), 1, "one fetch at start");
    assert_eq!(api.list(&k1.token(&issuer.base, now())).await.status, 200);

    // Within the interval of the start-up fetch: no fetch at all.
    forged_kid_flood(&api, &issuer.base, now(), 50).await;
    assert_eq!(fetches(), 1);

    // Each new interval: one fetch for the whole flood, however many requests.
    for wave in 1..=2 {
        time.fetch_add(11, Ordering::SeqCst);
        forged_kid_flood(&api, &issuer.base, now(), 50).await;
        assert_eq!(fetches(), 1 + wave, "wave {wave}");
        forged_kid_flood(&api, &issuer.base, now(), 20).await;
        assert_eq!(fetches(), 1 + wave, "wave {wave}, again");
    }

    // A real new key published by the issuer is picked up at the next allowed refetch.
    let k2 = TestKey::new("k2");
    issuer.keys.write().unwrap().push(k2.jwk());
    let t2 = k2.token(&issuer.base, now());
    api.list(&t2).await.assert_invalid_token("unknown key");
    time.fetch_add(11, Ordering::SeqCst);
    assert_eq!(api.list(&t2).await.status, 200);
    assert_eq!(fetches(), 4);
    assert_eq!(validator.key_ids(), vec!["k1", "k2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jwks_cache_follows_max_age_and_revalidates_with_its_etag() {
    let issuer = spawn_fake_issuer().await;
    let k1 = TestKey::new("k1");
    issuer.keys.write().unwrap().push(k1.jwk());
    let time = Arc::new(AtomicI64::new(1_700_000_000));
    let t = Arc::clone(&time);
    let validator = Validator::builder(&issuer.base)
        .audience(AUDIENCE)
        .clock(move || t.load(Ordering::SeqCst))
        .revocation_poll(Some(Duration::from_secs(3600)))
        .build()
        .await
        .unwrap();
    let fetches = || issuer.jwks_fetches.load(Ordering::SeqCst);
    let now = || time.load(Ordering::SeqCst);

    for _ in 0..3 {
        time.fetch_add(90, Ordering::SeqCst);
        validator
            .validate(&k1.token(&issuer.base, now()))
            .await
            .unwrap();
    }
    assert_eq!(fetches(), 1, "max-age=300 not reached yet");
    time.fetch_add(31, Ordering::SeqCst);
    validator
        .validate(&k1.token(&issuer.base, now()))
        .await
        .unwrap();
    assert_eq!(fetches(), 2, "refreshed once the cache expired");
    assert_eq!(
        issuer.conditional_fetches.load(Ordering::SeqCst),
        1,
        "with If-None-Match"
    );
    validator
        .validate(&k1.token(&issuer.base, now()))
        .await
        .unwrap();
    assert_eq!(fetches(), 2, "a 304 renews the cache");

    // A failing feed: polls report it, validation goes on.
    issuer.feed_status.store(503, Ordering::SeqCst);
    assert!(validator.poll_revocations().await.is_err());
    assert!(
        validator
            .validate(&k1.token(&issuer.base, now()))
            .await
            .is_ok()
    );
    issuer.feed_status.store(200, Ordering::SeqCst);
    assert!(validator.poll_revocations().await.is_ok());
    let err = validator
        .validate(&TestKey::new("k1").token(&issuer.base, now()))
        .await
        .unwrap_err();
    assert_eq!(err.token_error(), Some(&TokenError::BadSignature));
}
