//! The resource-server side end to end: the real lineage server and the example notes API
//! (examples/resource_server.rs, compiled in here as a module) both on port 0, talking over HTTP.
//! Time moves through lineage's `ManualClock`, shared with the validator; nothing sleeps except
//! the bounded wait for one background revocation poll.

// A failed expectation in a test should panic with a message; the crate-wide lint is for src/.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/resource_server.rs"]
#[allow(dead_code)]
mod notes_example;

// The HTTP tests' server spawning (a fresh database, port 0, a manual clock), shared as a file.
#[path = "api/helpers/app.rs"]
#[allow(dead_code)]
mod app;

use app::{Backend, TestApp, spawn_app};

use std::net::TcpListener;
use std::sync::atomic::{AtomicI64, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix_web::web::Data;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use lineage::clients::{self, NewClient};
use lineage::clock::Clock;
use lineage::db::StoreError;
use lineage::domain::Seconds;
use lineage::domain::{GrantType, Password, Permission, RedirectUri, Scope, Username};
use lineage::state::KEY_RELOAD_SECONDS;
use lineage::tokens::jwt::{self, AccessClaims as ServerClaims};
use lineage::tokens::keys::{self, KeyEncryption, SigningKey};
use lineage::tokens::refresh::{self, NewFamily, RefreshPolicy};
use lineage::users;
use lineage_resource::{PollOutcome, TokenError, Validator};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{Value, json};

const AUDIENCE: &str = "notes-api";

// ---------------------------------------------------------------------------------------------
// The authorization server

/// lineage on a fresh SQLite database, started by the same helper as the HTTP tests (tests/api).
struct Lineage {
    app: TestApp,
}

/// The server's address, clock, state and settings are the test app's.
impl std::ops::Deref for Lineage {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.app
    }
}

struct TestClient {
    id: String,
    secret: String,
}

async fn spawn_lineage() -> Lineage {
    let app = spawn_app(Backend::Sqlite)
        .await
        .expect("SQLite needs no external database");
    Lineage { app }
}

fn basic(client: &TestClient) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", enc(&client.id), enc(&client.secret)))
    )
}

fn service_client(scopes: &str, audience: &str) -> NewClient {
    NewClient {
        client_id: None,
        name: "notes service".into(),
        public: false,
        grant_types: vec![GrantType::ClientCredentials],
        scopes: Scope::parse(scopes).unwrap(),
        redirect_uris: vec![],
        audience: Some(audience.into()),
        first_party: false,
    }
}

fn web_client(scopes: &str) -> NewClient {
    NewClient {
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        redirect_uris: vec![RedirectUri::parse("https://notes.example/cb").unwrap()],
        ..service_client(scopes, AUDIENCE)
    }
}

impl Lineage {
    fn now(&self) -> i64 {
        self.clock.now()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// A validator sharing the server's clock, reading the feed as its own client.
    async fn validator(&self, poll: Option<Duration>) -> Validator {
        let clock = self.clock.clone();
        let reader = self.feed_reader().await;
        Validator::builder(&self.issuer)
            .audience(AUDIENCE)
            .clock(move || clock.now())
            .revocation_poll(poll)
            .client_credentials(reader.id, reader.secret)
            .build()
            .await
            .expect("the validator builds against lineage")
    }

    /// The notes API's own client, allowed to read the revocation feed.
    async fn feed_reader(&self) -> TestClient {
        let now = self.now();
        let spec = NewClient {
            name: "notes API".into(),
            ..service_client("notes:read", AUDIENCE)
        };
        let created = self
            .state
            .db
            .write(move |c| {
                clients::create_with_permissions(c, spec, &[Permission::Revocations], now)
                    .map_err(|e| StoreError::Other(anyhow::anyhow!("{e}")))
            })
            .await
            .unwrap();
        TestClient {
            id: created.client.client_id.to_string(),
            secret: created
                .client_secret
                .map(|s| s.expose().to_string())
                .unwrap_or_default(),
        }
    }

    async fn create_client(&self, spec: NewClient) -> TestClient {
        let now = self.now();
        let created = self
            .state
            .db
            .write(move |c| {
                clients::create(c, spec, now).map_err(|e| StoreError::Other(anyhow::anyhow!("{e}")))
            })
            .await
            .unwrap();
        TestClient {
            id: created.client.client_id.to_string(),
            secret: created
                .client_secret
                .map(|s| s.expose().to_string())
                .unwrap_or_default(),
        }
    }

    async fn create_user(&self, name: &str) -> String {
        let (name, now) = (Username::parse(name).unwrap(), self.now());
        let password = Password::new("correct horse battery staple".into()).unwrap();
        let hash = users::hash_password(&password).unwrap();
        self.state
            .db
            .write(move |c| {
                users::create(c, &name, &hash, now)
                    .map_err(|e| StoreError::Other(anyhow::anyhow!("{e}")))
            })
            .await
            .unwrap()
            .id
    }

    /// A device login: a new refresh family and its first refresh token.
    async fn start_family(&self, user_id: &str, client: &TestClient, device: &str) -> String {
        let spec = NewFamily {
            user_id: user_id.into(),
            client_id: client.id.clone(),
            scope: Scope::parse("notes:read notes:write").unwrap(),
            device_name: Some(device.into()),
            origin: Default::default(),
        };
        let (policy, now) = (RefreshPolicy::from_settings(&self.settings), self.now());
        let (_, token) = self
            .state
            .db
            .write(move |c| refresh::start_family(c, spec, &policy, now))
            .await
            .unwrap();
        token.expose().to_string()
    }

    async fn post_form(
        &self,
        path: &str,
        client: &TestClient,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.api
            .post(self.url(path))
            .header("Authorization", basic(client))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    async fn token(&self, client: &TestClient, form: &[(&str, &str)]) -> Value {
        let resp = self.post_form("/token", client, form).await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 200, "token request failed: {body}");
        body
    }

    async fn client_credentials(&self, client: &TestClient, scope: Option<&str>) -> String {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        self.token(client, &form).await["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Rotate a refresh token: (access token, next refresh token).
    async fn refresh(&self, client: &TestClient, refresh_token: &str) -> (String, String) {
        let body = self
            .token(
                client,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token),
                ],
            )
            .await;
        (
            body["access_token"].as_str().unwrap().to_string(),
            body["refresh_token"].as_str().unwrap().to_string(),
        )
    }

    async fn signing_key(&self) -> Arc<SigningKey> {
        let now = self.now();
        let keys = self.state.keys.current(&self.state.db, now).await;
        keys.active(now).cloned().expect("an active signing key")
    }

    /// Claims as lineage would issue them, for tokens the tests shape by hand.
    fn claims(&self, sub: &str) -> ServerClaims {
        let now = self.now();
        ServerClaims {
            iss: self.issuer.clone(),
            sub: sub.into(),
            aud: AUDIENCE.into(),
            exp: now + 600,
            iat: now,
            nbf: now,
            jti: uuid::Uuid::new_v4().to_string(),
            client_id: "notes-app".into(),
            scope: "notes:read notes:write".into(),
            sid: None,
            extra: Default::default(),
        }
    }

    /// Signed with the server's real active key.
    async fn mint(&self, claims: &ServerClaims) -> String {
        let key = self.signing_key().await;
        jwt::mint(&key, claims).unwrap()
    }
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

// ---------------------------------------------------------------------------------------------
// The protected API: examples/resource_server.rs on port 0

struct NotesApi {
    base: String,
    http: reqwest::Client,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for NotesApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// What the API answered: status, `WWW-Authenticate`, body.
#[derive(Debug)]
struct Answer {
    status: u16,
    challenge: String,
    body: Value,
}

impl Answer {
    fn assert_invalid_token(&self, description: &str) {
        assert_eq!(self.status, 401, "{self:?}");
        assert!(
            self.challenge.starts_with(
                r#"Bearer realm="notes-api", error="invalid_token", error_description=""#
            ),
            "{self:?}"
        );
        assert!(
            self.challenge.contains(description),
            "expected `{description}` in {self:?}"
        );
        assert_eq!(self.body["error"], "invalid_token");
    }
}

async fn spawn_api(validator: Validator) -> NotesApi {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(notes_example::serve(listener, validator).unwrap());
    NotesApi {
        base,
        http: reqwest::Client::new(),
        server,
    }
}

impl NotesApi {
    async fn send(&self, req: reqwest::RequestBuilder, token: Option<&str>) -> Answer {
        let req = match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let challenge = resp
            .headers()
            .get("WWW-Authenticate")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            challenge,
            body,
        }
    }

    async fn list(&self, token: &str) -> Answer {
        self.send(self.http.get(format!("{}/notes", self.base)), Some(token))
            .await
    }

    async fn create(&self, token: Option<&str>, text: &str) -> Answer {
        let req = self
            .http
            .post(format!("{}/notes", self.base))
            .json(&json!({ "text": text }));
        self.send(req, token).await
    }
}

// ---------------------------------------------------------------------------------------------
// Tests against lineage

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_api_accepts_lineage_tokens_and_enforces_scopes() {
    let lineage = spawn_lineage().await;
    let client = lineage
        .create_client(service_client("notes:read notes:write", AUDIENCE))
        .await;
    let api = spawn_api(lineage.validator(None).await).await;

    let health = api
        .send(api.http.get(format!("{}/healthz", api.base)), None)
        .await;
    assert_eq!(health.status, 200);

    let anonymous = api
        .send(api.http.get(format!("{}/notes", api.base)), None)
        .await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.challenge, r#"Bearer realm="notes-api""#);

    let reader = lineage
        .client_credentials(&client, Some("notes:read"))
        .await;
    let listed = api.list(&reader).await;
    assert_eq!((listed.status, listed.body.clone()), (200, json!([])));
    let refused = api.create(Some(&reader), "hello").await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(
        refused.challenge.contains(r#"error="insufficient_scope""#),
        "{refused:?}"
    );
    assert!(
        refused.challenge.ends_with(r#"scope="notes:write""#),
        "{refused:?}"
    );

    let writer = lineage.client_credentials(&client, None).await;
    let created = api.create(Some(&writer), "buy milk").await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(
        created.body["author"],
        client.id.as_str(),
        "client_credentials: sub is the client"
    );
    let listed = api.list(&reader).await;
    assert_eq!(listed.body[0]["text"], "buy milk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_misdirected_tokens_are_refused_per_rfc_6750() {
    let lineage = spawn_lineage().await;
    let notes = lineage
        .create_client(service_client("notes:read", AUDIENCE))
        .await;
    let billing = lineage
        .create_client(service_client("notes:read", "billing-api"))
        .await;
    let validator = lineage.validator(None).await;
    let api = spawn_api(validator.clone()).await;
    let key = lineage.signing_key().await;
    let now = lineage.now();
    let good = lineage.client_credentials(&notes, None).await;
    assert_eq!(api.list(&good).await.status, 200);

    // Signed by the server's real key, shaped wrong.
    let mut c = lineage.claims("user-1");
    c.exp = now - 30;
    c.iat = now - 630;
    c.nbf = now - 630;
    api.list(&lineage.mint(&c).await)
        .await
        .assert_invalid_token("the access token expired");

    let mut c = lineage.claims("user-1");
    c.nbf = now + 120;
    api.list(&lineage.mint(&c).await)
        .await
        .assert_invalid_token("not valid yet");

    let mut c = lineage.claims("user-1");
    c.iss = "http://evil.example".into();
    api.list(&lineage.mint(&c).await)
        .await
        .assert_invalid_token("another authorization server");

    // A genuine lineage token for another API.
    let for_billing = lineage.client_credentials(&billing, None).await;
    api.list(&for_billing)
        .await
        .assert_invalid_token("another audience");

    // typ JWT (e.g. an ID token), same key and claims.
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.typ = Some("JWT".into());
    header.kid = Some(key.kid.clone());
    let id_token = jsonwebtoken::encode(&header, &lineage.claims("user-1"), &key.encoding).unwrap();
    api.list(&id_token)
        .await
        .assert_invalid_token("typ must be at+jwt");

    // alg none, unsigned.
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&lineage.claims("user-1")).unwrap());
    let none_header = json!({"alg": "none", "typ": "at+jwt", "kid": key.kid});
    let none = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(none_header.to_string())
    );
    api.list(&none)
        .await
        .assert_invalid_token("alg none is not accepted");

    // Key confusion: HS256 keyed with the public key bytes the JWKS publishes.
    let hs_header = json!({"alg": "HS256", "typ": "at+jwt", "kid": key.kid});
    let input = format!(
        "{}.{payload}",
        URL_SAFE_NO_PAD.encode(hs_header.to_string())
    );
    let public = URL_SAFE_NO_PAD.decode(&key.x).unwrap();
    let mac = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &public),
        input.as_bytes(),
    );
    let hs256 = format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
    api.list(&hs256)
        .await
        .assert_invalid_token("alg HS256 is not accepted");

    // A stranger's Ed25519 key: under its own kid, and under ours.
    let stranger = Ed25519KeyPair::from_pkcs8(
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .unwrap()
            .as_ref(),
    )
    .unwrap();
    for (kid, description) in [
        ("stranger", "signed by an unknown key"),
        (key.kid.as_str(), "signature is invalid"),
    ] {
        let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid});
        let input = format!("{}.{payload}", URL_SAFE_NO_PAD.encode(header.to_string()));
        let forged = format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(stranger.sign(input.as_bytes()).as_ref())
        );
        api.list(&forged).await.assert_invalid_token(description);
    }

    // A genuine token with a widened scope pasted in.
    let parts: Vec<&str> = good.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["scope"] = json!("notes:read notes:write");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    api.list(&tampered)
        .await
        .assert_invalid_token("signature is invalid");
    let write = api.create(Some(&tampered), "sneaky").await;
    assert_eq!(write.status, 401, "{write:?}");

    // Forged key ids did not make the API hammer lineage: the JWKS was read once, at start.
    assert_eq!(validator.key_ids(), vec![key.kid.clone()]);

    // And the genuine token, once its time is up.
    lineage.clock.advance(600 + 10);
    api.list(&good)
        .await
        .assert_invalid_token("the access token expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_on_the_server_is_picked_up_without_restarting_the_api() {
    let lineage = spawn_lineage().await;
    let client = lineage
        .create_client(service_client("notes:read", AUDIENCE))
        .await;
    let validator = lineage.validator(None).await;
    let api = spawn_api(validator.clone()).await;

    let old = lineage.client_credentials(&client, None).await;
    let old_kid = kid_of(&old);
    assert_eq!(api.list(&old).await.status, 200);
    assert_eq!(validator.key_ids(), vec![old_kid.clone()]);

    let (secret, now) = (lineage.settings.key_secret.clone(), lineage.now());
    let rotated = lineage
        .state
        .db
        .write(move |c| {
            let secret = secret.load()?;
            keys::rotate(c, &KeyEncryption::new(&secret), now, Seconds::ZERO)
        })
        .await
        .unwrap();
    // The server re-reads its keys every KEY_RELOAD_SECONDS of its clock.
    lineage.clock.advance(KEY_RELOAD_SECONDS + 1);

    let new = lineage.client_credentials(&client, None).await;
    assert_eq!(kid_of(&new), rotated.kid);
    assert_ne!(rotated.kid, old_kid);
    assert_eq!(
        api.list(&new).await.status,
        200,
        "the new kid is fetched on first sight"
    );
    assert_eq!(
        api.list(&old).await.status,
        200,
        "tokens of the retired key live on until expiry"
    );
    let mut both = vec![old_kid, rotated.kid.clone()];
    both.sort();
    assert_eq!(validator.key_ids(), both);

    // Past the old token's expiry (plus leeway), only it is refused.
    let old_exp = validator.validate(&old).await.unwrap().exp;
    lineage.clock.set(old_exp + 10);
    api.list(&old).await.assert_invalid_token("expired");
    assert_eq!(api.list(&new).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_device_is_refused_after_the_next_feed_poll() {
    let lineage = spawn_lineage().await;
    let user = lineage.create_user("alice").await;
    let client = lineage
        .create_client(web_client("notes:read notes:write"))
        .await;
    let laptop = lineage.start_family(&user, &client, "laptop").await;
    let phone = lineage.start_family(&user, &client, "phone").await;
    let (laptop_access, laptop_refresh) = lineage.refresh(&client, &laptop).await;
    let (phone_access, _) = lineage.refresh(&client, &phone).await;

    // Polling in the background only hourly: this test polls by hand.
    let validator = lineage.validator(Some(Duration::from_secs(3600))).await;
    let api = spawn_api(validator.clone()).await;
    let laptop_claims = validator.validate(&laptop_access).await.unwrap();
    let sid = laptop_claims
        .sid
        .clone()
        .expect("refresh-issued tokens carry sid");
    assert_eq!(laptop_claims.sub, user);
    assert_eq!(laptop_claims.extra_str("preferred_username"), Some("alice"));
    assert_eq!(api.list(&laptop_access).await.status, 200);

    let revoked = lineage
        .post_form(
            "/revoke",
            &client,
            &[
                ("token", &laptop_refresh),
                ("token_type_hint", "refresh_token"),
            ],
        )
        .await;
    assert_eq!(revoked.status(), 200);
    let reader = lineage.feed_reader().await;
    let feed: Value = lineage
        .api
        .get(lineage.url("/revocations"))
        .header("Authorization", basic(&reader))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(feed["families"][0]["sid"], sid.as_str(), "{feed}");

    // Until the next poll the API has not heard of it (the documented lag: one poll interval).
    assert_eq!(api.list(&laptop_access).await.status, 200);
    let outcome = validator.poll_revocations().await.unwrap();
    assert_eq!(outcome, updated(1, 0, 0));
    api.list(&laptop_access)
        .await
        .assert_invalid_token("session was revoked");
    assert_eq!(
        api.list(&phone_access).await.status,
        200,
        "other devices are unaffected"
    );

    // Nothing new: one small page from the new cursor, then the ETag makes polls bodiless 304s.
    assert_eq!(
        validator.poll_revocations().await.unwrap(),
        updated(0, 0, 0)
    );
    assert_eq!(
        validator.poll_revocations().await.unwrap(),
        PollOutcome::NotModified
    );
    let status = validator.revocation_status().unwrap();
    assert_eq!(
        (status.revoked_families, status.last_success),
        (1, Some(lineage.now()))
    );

    // Memory stays bounded: once no token of the family can be alive (the retention the feed
    // states, plus the validator's 10 s leeway), the entry is dropped.
    assert_eq!(status.retention, Some(600 + 60));
    lineage.clock.advance(600 + 60 + 10 + 1);
    validator.poll_revocations().await.unwrap();
    assert_eq!(validator.revocation_status().unwrap().revoked_families, 0);
}

fn updated(families: usize, access_tokens: usize, clients: usize) -> PollOutcome {
    PollOutcome::Updated {
        families,
        users: 0,
        access_tokens,
        clients,
        pages: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_access_token_and_a_deleted_client_are_refused_by_the_api() {
    let lineage = spawn_lineage().await;
    let user = lineage.create_user("dora").await;
    let app = lineage
        .create_client(web_client("notes:read notes:write"))
        .await;
    let family = lineage.start_family(&user, &app, "laptop").await;
    let (revoked_access, next) = lineage.refresh(&app, &family).await;
    let (other_access, _) = lineage.refresh(&app, &next).await;
    let service = lineage
        .create_client(service_client("notes:read", AUDIENCE))
        .await;
    let service_token = lineage.client_credentials(&service, None).await;

    let validator = lineage.validator(Some(Duration::from_secs(3600))).await;
    let api = spawn_api(validator.clone()).await;
    for token in [&revoked_access, &other_access, &service_token] {
        assert_eq!(api.list(token).await.status, 200);
    }

    // RFC 7009 revocation of one access token reaches the API through the feed's jti list.
    let resp = lineage
        .post_form("/revoke", &app, &[("token", &revoked_access)])
        .await;
    assert_eq!(resp.status(), 200);
    lineage.clock.advance(1);
    // Deleting a client ends its client_credentials tokens too: the feed's client list.
    let (id, now) = (service.id.clone(), lineage.now());
    lineage
        .state
        .db
        .write(move |c| {
            clients::delete(c, &id, now).map_err(|e| StoreError::Other(anyhow::anyhow!("{e}")))
        })
        .await
        .unwrap();
    assert_eq!(
        validator.poll_revocations().await.unwrap(),
        updated(0, 1, 1)
    );
    api.list(&revoked_access)
        .await
        .assert_invalid_token("the access token was revoked");
    api.list(&service_token)
        .await
        .assert_invalid_token("client was deleted");
    assert_eq!(
        api.list(&other_access).await.status,
        200,
        "the family's newer token is unaffected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_everywhere_reaches_the_api_through_the_background_poller() {
    let lineage = spawn_lineage().await;
    let user = lineage.create_user("bob").await;
    let client = lineage
        .create_client(web_client("notes:read notes:write"))
        .await;
    let family = lineage.start_family(&user, &client, "tablet").await;
    let (access, _) = lineage.refresh(&client, &family).await;
    // A token for the user outside any family (sid absent): only the user's not-before catches it.
    let mut claims = lineage.claims(&user);
    claims.client_id = client.id.clone();
    let familyless = lineage.mint(&claims).await;

    let validator = lineage.validator(Some(Duration::from_millis(200))).await;
    let api = spawn_api(validator.clone()).await;
    assert_eq!(api.list(&access).await.status, 200);
    assert_eq!(api.list(&familyless).await.status, 200);

    // What a password change or "sign out everywhere" does: every family ends, not-before = now.
    lineage.clock.advance(2);
    let (user_id, now) = (user.clone(), lineage.now());
    lineage
        .state
        .db
        .write(move |c| {
            refresh::revoke_all_for_user(
                c,
                &user_id,
                lineage::tokens::refresh::RevocationReason::PasswordChanged,
                now,
            )
        })
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    while api.list(&familyless).await.status == 200 {
        assert!(
            Instant::now() < deadline,
            "the background poll never delivered the revocation"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    api.list(&familyless)
        .await
        .assert_invalid_token("issued before the user's sessions were revoked");
    api.list(&access)
        .await
        .assert_invalid_token("session was revoked");
    // A token issued after the change is fine.
    let mut fresh = lineage.claims(&user);
    fresh.client_id = client.id.clone();
    assert_eq!(api.list(&lineage.mint(&fresh).await).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_feed_leaves_signature_and_expiry_checks_in_force() {
    let lineage = spawn_lineage().await;
    let user = lineage.create_user("carol").await;
    let client = lineage.create_client(web_client("notes:read")).await;
    let family = lineage.start_family(&user, &client, "laptop").await;
    let (access, next) = lineage.refresh(&client, &family).await;

    let clock = lineage.clock.clone();
    let validator = Validator::builder(&lineage.issuer)
        .audience(AUDIENCE)
        .clock(move || clock.now())
        // Port 9 (discard) is closed here: the feed cannot be read.
        .revocations_uri("http://127.0.0.1:9/revocations")
        .revocation_poll(Some(Duration::from_secs(3600)))
        .build()
        .await
        .expect("an unreachable feed does not stop the API from starting");
    let api = spawn_api(validator.clone()).await;
    assert!(validator.poll_revocations().await.is_err());
    assert_eq!(validator.revocation_status().unwrap().last_success, None);

    // Availability over freshness: the revoked token still works until it expires…
    let revoked = lineage
        .post_form("/revoke", &client, &[("token", &next)])
        .await;
    assert_eq!(revoked.status(), 200);
    assert_eq!(api.list(&access).await.status, 200);
    // …but forgeries and expired tokens are refused as ever.
    let (input, signature) = access.rsplit_once('.').unwrap();
    let mut signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    signature[0] ^= 1;
    let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature));
    api.list(&forged)
        .await
        .assert_invalid_token("signature is invalid");
    lineage.clock.advance(600 + 10);
    api.list(&access).await.assert_invalid_token("expired");
}

// ---------------------------------------------------------------------------------------------
// JWKS fetching against an issuer the test controls, so fetches can be counted

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
