//! The resource-server side end to end: the real lineage server and the example notes API
//! (examples/resource_server.rs, compiled in here as a module) both on port 0, talking over HTTP.
//! Time moves through lineage's `ManualClock`, shared with the validator; nothing sleeps except
//! the bounded wait for one background revocation poll.

// A failed expectation in a test should panic with a message; the crate-wide lint is for src/.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../examples/resource_server.rs"]
#[allow(dead_code)]
mod notes_example;

// The HTTP tests' server spawning (a fresh database, port 0, a manual clock), shared as a file.
#[path = "../api/helpers/app.rs"]
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
use lineage::tokens::keys::{self, KeyAlgorithm, KeyEncryption, PublicJwk, SigningKey};
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
            dpop_jkt: None,
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
            cnf: None,
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

/// What the API answered: status, `WWW-Authenticate` (several joined by `, `), body.
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
            .get_all("WWW-Authenticate")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect::<Vec<_>>()
            .join(", ");
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            challenge,
            body,
        }
    }

    /// `Authorization: DPoP <token>` and a `DPoP: <proof>` header.
    async fn send_dpop(&self, req: reqwest::RequestBuilder, token: &str, proof: &str) -> Answer {
        let req = req
            .header("Authorization", format!("DPoP {token}"))
            .header("DPoP", proof);
        self.send(req, None).await
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

mod dpop;
mod jwks_fetching;
mod served;
