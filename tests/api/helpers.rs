//! `spawn_app`: the real server on 127.0.0.1:0 with a fresh database, a manual clock, and the
//! helpers the feature tests share. JWTs are checked here with ring directly, independently of
//! lineage's own signing code.

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use diesel::{Connection, PgConnection, RunQueryDsl};
use lineage::clients::{self, NewClient};
use lineage::clock::ManualClock;
use lineage::configuration::{KeySecret, Settings};
use lineage::db::{Database, DatabaseUrl};
use lineage::domain::{GrantType, RedirectUri, Scope};
use lineage::startup::Application;
use lineage::state::KEY_RELOAD_SECONDS;
use lineage::tokens::keys::{self, KeyEncryption};
use reqwest::header::{CACHE_CONTROL, HeaderMap};
use serde_json::Value;

/// The key-encryption secret every test server uses.
pub const KEY_SECRET: &str = "test-key-secret-not-for-production";

/// Generate `<name>::sqlite` and `<name>::postgres` tests for `async fn <name>(backend: Backend)`.
/// A module per test keeps the names apart without an identifier-pasting macro crate.
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::helpers::Backend::Postgres).await;
                }
            }
        )+
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One test's own database: a temporary SQLite file, or a PostgreSQL database created on the
/// server named by `TEST_DATABASE_URL`. Removed when dropped.
pub enum TestDatabase {
    Sqlite {
        path: PathBuf,
    },
    Postgres {
        admin_url: String,
        name: String,
        url: String,
    },
}

impl TestDatabase {
    /// `None` (after a one-line notice) when the backend is PostgreSQL and `TEST_DATABASE_URL`
    /// is not set.
    pub fn create(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir()
                    .join(format!("lineage-test-{}.db", uuid::Uuid::new_v4().simple()));
                Some(Self::Sqlite { path })
            }
            Backend::Postgres => {
                let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
                    println!("skipping: TEST_DATABASE_URL not set");
                    return None;
                };
                init_openssl_without_atexit();
                let name = format!("lineage_test_{}", uuid::Uuid::new_v4().simple());
                let mut admin = PgConnection::establish(&admin_url)
                    .unwrap_or_else(|e| panic!("cannot connect to TEST_DATABASE_URL: {e}"));
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .expect("CREATE DATABASE");
                let mut url = url::Url::parse(&admin_url).expect("TEST_DATABASE_URL is a URL");
                url.set_path(&format!("/{name}"));
                Some(Self::Postgres {
                    admin_url,
                    name,
                    url: url.to_string(),
                })
            }
        }
    }

    pub fn url(&self) -> DatabaseUrl {
        let raw = match self {
            Self::Sqlite { path } => format!("sqlite://{}", path.display()),
            Self::Postgres { url, .. } => url.clone(),
        };
        DatabaseUrl::parse(&raw).expect("test database URL parses")
    }

    /// The URL as the CLI takes it.
    pub fn url_string(&self) -> String {
        match self {
            Self::Sqlite { path } => format!("sqlite://{}", path.display()),
            Self::Postgres { url, .. } => url.clone(),
        }
    }

    /// PostgreSQL only: the database's name and a superuser connection to its server.
    pub fn postgres_admin(&self) -> Option<(String, PgConnection)> {
        match self {
            Self::Sqlite { .. } => None,
            Self::Postgres {
                admin_url, name, ..
            } => {
                init_openssl_without_atexit();
                let conn = PgConnection::establish(admin_url).expect("admin connection");
                Some((name.clone(), conn))
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match self {
            Self::Sqlite { path } => {
                for suffix in ["", "-wal", "-shm", ".key"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            }
            Self::Postgres {
                admin_url, name, ..
            } => {
                // FORCE (PostgreSQL ≥ 13) ends the server's pooled connections first.
                if let Ok(mut admin) = PgConnection::establish(admin_url) {
                    let _ =
                        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .execute(&mut admin);
                }
            }
        }
    }
}

/// libpq (bundled, with a vendored OpenSSL) would otherwise let OpenSSL register an `atexit`
/// clean-up that frees its global state while r2d2's threads may still be in a TLS handshake, so
/// this test process could crash at exit. Initialising OpenSSL first with `OPENSSL_INIT_NO_ATEXIT`
/// (what `openssl_sys::init` does) avoids that, as the `lineage` binary's `main` does; see
/// `cli::cli_on_postgresql_never_crashes_at_exit`.
pub fn init_openssl_without_atexit() {
    openssl_sys::init();
}

/// A confidential client's credentials.
#[derive(Debug, Clone)]
pub struct TestClient {
    pub id: String,
    pub secret: String,
}

pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub address: String,
    /// `http://127.0.0.1:PORT` of the `/metrics` listener, when `metrics_bind` was set.
    pub metrics_address: Option<String>,
    pub port: u16,
    pub issuer: String,
    pub clock: ManualClock,
    /// The server's own pool.
    pub db: Database,
    pub api: reqwest::Client,
    pub settings: Settings,
    pub key_secret: KeySecret,
    pub database: Arc<TestDatabase>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Dropping the actix `Server` future closes the listener and stops its workers.
        self.server.abort();
    }
}

/// Start a server with test settings on a fresh database. `None` = skipped (no PostgreSQL).
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// The same, with settings adjusted before the server starts.
pub async fn spawn_app_with(
    backend: Backend,
    adjust: impl FnOnce(&mut Settings),
) -> Option<TestApp> {
    let database = Arc::new(TestDatabase::create(backend)?);
    let clock = ManualClock::starting_now();
    Some(spawn_app_on(database, clock, adjust).await)
}

/// Start a server on an existing test database with a given clock (several nodes, one database).
pub async fn spawn_app_on(
    database: Arc<TestDatabase>,
    clock: ManualClock,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    let key_secret = KeySecret::new(KEY_SECRET.to_string());
    let mut settings = Settings::for_database(database.url(), key_secret.clone());
    adjust(&mut settings);
    let app = Application::build_with_clock(settings.clone(), Arc::new(clock.clone()))
        .await
        .expect("the application builds");
    let port = app.port();
    let metrics_address = app.metrics_port().map(|p| format!("http://127.0.0.1:{p}"));
    let issuer = app.issuer().to_string();
    let db = app.state().db.clone();
    let server = tokio::spawn(app.run_until_stopped());
    let api = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("reqwest client");
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        metrics_address,
        port,
        issuer,
        clock,
        db,
        api,
        settings,
        key_secret,
        database,
        server,
    }
}

/// What `create_client` registers unless told otherwise: confidential, client_credentials only.
pub fn service_client(scopes: &str) -> NewClient {
    NewClient {
        client_id: None,
        name: "test service".into(),
        public: false,
        grant_types: vec![GrantType::ClientCredentials],
        scopes: Scope::parse(scopes).expect("valid scopes"),
        redirect_uris: vec![],
        audience: Some("https://api.example".into()),
        first_party: false,
    }
}

/// A confidential web-app client that may not use client_credentials.
pub fn web_client(scopes: &str) -> NewClient {
    NewClient {
        grant_types: vec![GrantType::AuthorizationCode],
        redirect_uris: vec![RedirectUri::parse("https://app.example/cb").expect("redirect uri")],
        ..service_client(scopes)
    }
}

/// RFC 6749 §2.3.1: client id and secret are form-urlencoded before they are Base64-encoded.
pub fn basic_auth(id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    basic_auth_raw(&enc(id), &enc(secret))
}

/// Basic credentials exactly as given (no form-urlencoding).
pub fn basic_auth_raw(id: &str, secret: &str) -> String {
    let pair = format!("{id}:{secret}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

pub fn form_body(params: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn create_client_with(&self, spec: NewClient) -> TestClient {
        let now = self.now();
        let created = self
            .db
            .read(move |c| clients::create(c, spec, now))
            .await
            .expect("client registration");
        TestClient {
            id: created.client.client_id.to_string(),
            secret: created
                .client_secret
                .as_ref()
                .map(|s| s.expose().to_string())
                .unwrap_or_default(),
        }
    }

    /// A confidential client_credentials client allowed `scopes`.
    pub async fn create_client(&self, scopes: &str) -> TestClient {
        self.create_client_with(service_client(scopes)).await
    }

    pub async fn delete_client(&self, client_id: &str) {
        let id = client_id.to_string();
        let now = self.now();
        self.db
            .read(move |c| clients::delete(c, &id, now))
            .await
            .expect("client deletion");
    }

    pub fn now(&self) -> i64 {
        use lineage::clock::Clock;
        self.clock.now()
    }

    /// POST /token with a raw body, content type and optional Authorization header.
    pub async fn post_token_raw(
        &self,
        body: impl Into<reqwest::Body>,
        content_type: Option<&str>,
        authorization: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self.api.post(self.url("/token")).body(body);
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        if let Some(auth) = authorization {
            req = req.header("Authorization", auth);
        }
        req.send().await.expect("POST /token")
    }

    /// POST /token as a form, with an optional Authorization header.
    pub async fn post_token(
        &self,
        params: &[(&str, &str)],
        authorization: Option<&str>,
    ) -> reqwest::Response {
        self.post_token_raw(
            form_body(params),
            Some("application/x-www-form-urlencoded"),
            authorization,
        )
        .await
    }

    /// POST /token authenticating with HTTP Basic.
    pub async fn token_basic(
        &self,
        client: &TestClient,
        params: &[(&str, &str)],
    ) -> reqwest::Response {
        self.post_token(params, Some(&basic_auth(&client.id, &client.secret)))
            .await
    }

    /// POST /token authenticating with `client_secret_post`.
    pub async fn token_post(
        &self,
        client: &TestClient,
        params: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut all = params.to_vec();
        all.push(("client_id", &client.id));
        all.push(("client_secret", &client.secret));
        self.post_token(&all, None).await
    }

    /// A client_credentials access token (asserting success).
    pub async fn client_credentials_token(&self, client: &TestClient) -> String {
        let resp = self
            .token_basic(client, &[("grant_type", "client_credentials")])
            .await;
        let status = resp.status();
        let body: Value = resp.json().await.expect("token response is JSON");
        assert_eq!(status, 200, "token request failed: {body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    pub async fn jwks(&self) -> Value {
        let resp = self
            .api
            .get(self.url("/jwks.json"))
            .send()
            .await
            .expect("GET /jwks.json");
        assert_eq!(resp.status(), 200);
        resp.json().await.expect("JWKS is JSON")
    }

    pub async fn jwks_kids(&self) -> Vec<String> {
        self.jwks().await["keys"]
            .as_array()
            .expect("keys array")
            .iter()
            .map(|k| k["kid"].as_str().expect("kid").to_string())
            .collect()
    }

    pub async fn get_json(&self, path: &str) -> (reqwest::StatusCode, HeaderMap, Value) {
        let resp = self
            .api
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.json().await.unwrap_or(Value::Null);
        (status, headers, body)
    }

    /// Add a signing key that signs after `lead` seconds (as `lineage keys rotate` does); returns its kid.
    pub async fn rotate_keys(&self, lead: i64) -> String {
        let enc = KeyEncryption::new(&self.key_secret);
        let now = self.now();
        self.db
            .read(move |c| keys::rotate(c, &enc, now, lead))
            .await
            .expect("key rotation")
            .kid
    }

    /// The Prometheus text of the metrics listener (the app must have `metrics_bind` set).
    pub async fn metrics_text(&self) -> String {
        let base = self
            .metrics_address
            .as_deref()
            .expect("start the app with a metrics_bind to read its metrics");
        self.api
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// Move the clock far enough that the server re-reads its signing keys at the next request.
    pub fn advance_past_key_reload(&self) {
        self.clock.advance(KEY_RELOAD_SECONDS + 1);
    }
}

/// Assert an RFC 6749 §5.2 error response and return its body.
pub async fn assert_oauth_error(resp: reqwest::Response, status: u16, error: &str) -> Value {
    let got = resp.status().as_u16();
    assert_no_store(resp.headers());
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = resp.text().await.expect("error body");
    assert_eq!(got, status, "status (body: {text})");
    assert!(
        content_type.starts_with("application/json"),
        "content type {content_type:?}"
    );
    let body: Value = serde_json::from_str(&text).expect("error body is JSON");
    assert_eq!(body["error"], error, "error code in {body}");
    if let Some(d) = body.get("error_description") {
        assert!(d.is_string(), "error_description must be a string: {body}");
    }
    body
}

pub fn assert_no_store(headers: &HeaderMap) {
    let cache = headers
        .get(CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert_eq!(
        cache, "no-store",
        "every /token response has Cache-Control: no-store"
    );
}

/// A JWT checked against a JWKS by this file's own code: header, Ed25519 signature (ring), claims.
#[derive(Debug)]
pub struct VerifiedJwt {
    pub header: Value,
    pub claims: Value,
}

pub fn decode_segment(segment: &str) -> Value {
    let bytes = URL_SAFE_NO_PAD.decode(segment).expect("base64url segment");
    serde_json::from_slice(&bytes).expect("JSON segment")
}

/// The `kid` of a JWT's header, without verifying anything.
pub fn jwt_kid(token: &str) -> String {
    let header = token.split('.').next().expect("header segment");
    decode_segment(header)["kid"]
        .as_str()
        .expect("kid in header")
        .to_string()
}

/// Verify `token` against `jwks`: `alg` EdDSA, `typ` at+jwt, `kid` in the set, and the Ed25519
/// signature over `header.payload` with the JWK's `x`. Errors describe what failed.
pub fn verify_jwt(token: &str, jwks: &Value) -> Result<VerifiedJwt, String> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header_b64, payload_b64, signature_b64] = parts[..] else {
        return Err(format!("a JWS has three segments, got {}", parts.len()));
    };
    let header = decode_segment(header_b64);
    if header["alg"] != "EdDSA" {
        return Err(format!("alg is {}", header["alg"]));
    }
    if header["typ"] != "at+jwt" {
        return Err(format!("typ is {}", header["typ"]));
    }
    let kid = header["kid"].as_str().ok_or("no kid in the header")?;
    let jwk = jwks["keys"]
        .as_array()
        .ok_or("JWKS has no keys array")?
        .iter()
        .find(|k| k["kid"] == kid)
        .ok_or_else(|| format!("kid {kid} is not in the JWKS"))?;
    let x = URL_SAFE_NO_PAD
        .decode(jwk["x"].as_str().ok_or("JWK without x")?)
        .map_err(|e| format!("x is not base64url: {e}"))?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|e| format!("signature is not base64url: {e}"))?;
    let signing_input = format!("{header_b64}.{payload_b64}");
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &x)
        .verify(signing_input.as_bytes(), &signature)
        .map_err(|_| format!("the Ed25519 signature does not verify with key {kid}"))?;
    Ok(VerifiedJwt {
        header,
        claims: decode_segment(payload_b64),
    })
}

/// RFC 7638 thumbprint of an Ed25519 JWK, computed here from its `x`.
pub fn rfc7638_thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        canonical.as_bytes(),
    ))
}
