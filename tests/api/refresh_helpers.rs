//! What the refresh-family tests (issue 4) share: users, refresh-capable clients, families started
//! through the library (the browser sign-in is another issue), thin wrappers over `/token`,
//! `/revoke`, `/introspect` and `/revocations`, and direct looks at the tables.
//! Free functions rather than `impl TestApp`, so nothing here can collide with helpers.rs.

use std::path::PathBuf;
use std::process::{Command, Output};

use diesel::prelude::*;
use lineage::clients::NewClient;
use lineage::db::models::audit_events::AuditEventRow;
use lineage::db::models::refresh_families::{self, FamilyRow};
use lineage::db::models::refresh_tokens::{self, RefreshTokenRow};
use lineage::domain::{GrantType, Password, Permission, RedirectUri, Scope, Username};
use lineage::tokens::refresh::{self, NewFamily, Origin, RefreshPolicy};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, KEY_SECRET, TestApp, TestClient, basic_auth, decode_segment, form_body,
    service_client, spawn_app_with, verify_jwt,
};

/// The scope every fixture family starts with.
pub const FAMILY_SCOPE: &str = "read write";

#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub username: String,
}

/// A server, one user and one confidential client allowed the refresh_token grant.
pub struct Fixture {
    pub app: TestApp,
    pub user: TestUser,
    pub client: TestClient,
}

impl Fixture {
    /// `None` = skipped (PostgreSQL without `TEST_DATABASE_URL`).
    pub async fn new(
        backend: Backend,
        adjust: impl FnOnce(&mut lineage::configuration::Settings),
    ) -> Option<Self> {
        let app = spawn_app_with(backend, adjust).await?;
        let user = create_user(&app, "alice").await;
        let client = refresh_client(&app, "read write admin").await;
        Some(Self { app, user, client })
    }

    /// A family of the fixture user and client with `FAMILY_SCOPE`: (family id, first token).
    pub async fn start(&self) -> (String, String) {
        start_family(&self.app, &self.user.id, &self.client.id, FAMILY_SCOPE).await
    }

    /// The same for another user (still the fixture client).
    pub async fn start_for(&self, user_id: &str) -> (String, String) {
        start_family(&self.app, user_id, &self.client.id, FAMILY_SCOPE).await
    }

    /// Refresh with the fixture client, asserting success.
    pub async fn rotate(&self, token: &str) -> Refreshed {
        refresh_ok(&self.app, &self.client, token).await
    }

    pub async fn refresh(&self, token: &str) -> reqwest::Response {
        refresh(&self.app, &self.client, token, None).await
    }
}

/// Create a user through the library (hashed first, then written).
pub async fn create_user(app: &TestApp, name: &str) -> TestUser {
    let username = Username::parse(name).expect("valid username");
    let now = app.now();
    let password = Password::new("correct horse battery".into()).expect("valid password");
    let hash = lineage::users::hash_password(&password).expect("hash");
    let view = app
        .db
        .write(move |c| lineage::users::create(c, &username, &hash, now))
        .await
        .expect("user creation");
    TestUser {
        id: view.id,
        username: view.username,
    }
}

/// A confidential web client allowed authorization_code and refresh_token.
pub fn refresh_client_spec(scopes: &str) -> NewClient {
    NewClient {
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        redirect_uris: vec![RedirectUri::parse("https://app.example/cb").expect("redirect uri")],
        ..service_client(scopes)
    }
}

pub async fn refresh_client(app: &TestApp, scopes: &str) -> TestClient {
    app.create_client_with(refresh_client_spec(scopes)).await
}

/// A public (native app) client allowed the refresh_token grant; its `secret` is empty.
pub async fn public_client(app: &TestApp, scopes: &str) -> TestClient {
    app.create_client_with(NewClient {
        public: true,
        ..refresh_client_spec(scopes)
    })
    .await
}

/// A resource server: a confidential client_credentials client that only introspects.
pub async fn resource_server(app: &TestApp) -> TestClient {
    app.create_client("introspect").await
}

/// Start a family directly through the library at the app's clock: (family id, first token).
pub async fn start_family(
    app: &TestApp,
    user_id: &str,
    client_id: &str,
    scope: &str,
) -> (String, String) {
    let spec = NewFamily {
        user_id: user_id.to_string(),
        client_id: client_id.to_string(),
        scope: Scope::parse(scope).expect("valid scope"),
        device_name: Some("test device".into()),
        origin: Origin {
            ip: Some("127.0.0.1".into()),
            user_agent: Some("refresh tests".into()),
        },
    };
    let policy = RefreshPolicy::from_settings(&app.settings);
    let now = app.now();
    let (family, token) = app
        .db
        .write(move |c| refresh::start_family(c, spec, &policy, now))
        .await
        .expect("start a family");
    (family.id, token.expose().to_string())
}

/// A form POST authenticated as `client`: HTTP Basic for a confidential client, `client_id` in
/// the body for a public one.
pub async fn post_as(
    app: &TestApp,
    path: &str,
    client: &TestClient,
    params: &[(&str, &str)],
    user_agent: Option<&str>,
) -> reqwest::Response {
    let mut all = params.to_vec();
    let mut req = app
        .api
        .post(app.url(path))
        .header("Content-Type", "application/x-www-form-urlencoded");
    if client.secret.is_empty() {
        all.push(("client_id", &client.id));
    } else {
        req = req.header("Authorization", basic_auth(&client.id, &client.secret));
    }
    if let Some(ua) = user_agent {
        req = req.header("User-Agent", ua);
    }
    req.body(form_body(&all))
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

/// `grant_type=refresh_token`, optionally narrowing the scope.
pub async fn refresh(
    app: &TestApp,
    client: &TestClient,
    token: &str,
    scope: Option<&str>,
) -> reqwest::Response {
    let mut params = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    if let Some(s) = scope {
        params.push(("scope", s));
    }
    post_as(app, "/token", client, &params, None).await
}

/// A successful refresh response, its access token verified against the JWKS.
#[derive(Debug, Clone)]
pub struct Refreshed {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: i64,
    pub scope: String,
    /// The verified claims of the access token.
    pub claims: Value,
}

pub async fn parse_refreshed(app: &TestApp, resp: reqwest::Response) -> Refreshed {
    let status = resp.status();
    let cache = resp
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body: Value = resp.json().await.expect("token response is JSON");
    assert_eq!(status, 200, "refresh failed: {body}");
    assert_eq!(cache, "no-store");
    assert_eq!(body["token_type"], "Bearer", "{body}");
    let access_token = body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    let refresh_token = body["refresh_token"]
        .as_str()
        .expect("a refresh grant returns the successor refresh token")
        .to_string();
    assert!(
        refresh::parse_presented(&refresh_token).is_some(),
        "refresh tokens are lowercase UUIDs: {refresh_token}"
    );
    let jwks = app.jwks().await;
    let claims = verify_jwt(&access_token, &jwks)
        .unwrap_or_else(|e| panic!("access token does not verify: {e}"))
        .claims;
    Refreshed {
        expires_in: body["expires_in"].as_i64().expect("expires_in"),
        scope: body["scope"].as_str().expect("scope").to_string(),
        access_token,
        refresh_token,
        claims,
    }
}

pub async fn refresh_ok(app: &TestApp, client: &TestClient, token: &str) -> Refreshed {
    parse_refreshed(app, refresh(app, client, token, None).await).await
}

/// The claims of a JWT, unverified.
pub fn jwt_claims(token: &str) -> Value {
    decode_segment(token.split('.').nth(1).expect("payload segment"))
}

/// POST /revoke as `client`; RFC 7009 answers 200 with an empty body in every case handled here.
pub async fn revoke(app: &TestApp, client: &TestClient, token: &str, hint: Option<&str>) {
    let mut params = vec![("token", token)];
    if let Some(h) = hint {
        params.push(("token_type_hint", h));
    }
    let resp = post_as(app, "/revoke", client, &params, None).await;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(status, 200, "revoke: {text}");
}

/// POST /introspect as `client`, asserting 200 and returning the JSON.
pub async fn introspect(app: &TestApp, client: &TestClient, token: &str) -> Value {
    let resp = post_as(app, "/introspect", client, &[("token", token)], None).await;
    let status = resp.status();
    let body: Value = resp.json().await.expect("introspection is JSON");
    assert_eq!(status, 200, "introspect: {body}");
    body
}

/// RFC 7662 §2.2: an inactive token gets `{"active":false}` and nothing else.
pub fn assert_inactive(v: &Value, what: &str) {
    assert_eq!(v, &json!({"active": false}), "{what} must be inactive");
}

/// The id of the resource server `feed_reader` registers.
pub const FEED_READER: &str = "feed-reader";
const FEED_READER_SECRET: &str = "feed-reader-secret-for-tests";

/// A resource server allowed to read the revocation feed (registered on first use).
pub async fn feed_reader(app: &TestApp) -> TestClient {
    let now = app.now();
    app.db
        .write(move |c| {
            if lineage::clients::find(c, FEED_READER)?.is_none() {
                let spec = NewClient {
                    client_id: Some(FEED_READER.into()),
                    name: "resource server".into(),
                    ..service_client("feed")
                };
                lineage::clients::create_with_permissions(
                    c,
                    spec,
                    &[Permission::Revocations],
                    now,
                )?;
                let secret = lineage::tokens::secret::PlainToken::new(FEED_READER_SECRET);
                lineage::clients::set_secret(c, FEED_READER, &secret)?;
            }
            Ok::<_, lineage::clients::RegistryError>(())
        })
        .await
        .expect("register the feed reader");
    TestClient {
        id: FEED_READER.into(),
        secret: FEED_READER_SECRET.into(),
    }
}

/// GET /revocations as the feed reader, with an optional `after` and `If-None-Match`.
pub async fn feed(
    app: &TestApp,
    after: Option<&str>,
    if_none_match: Option<&str>,
) -> (StatusCode, HeaderMap, Option<Value>) {
    let path = match after {
        Some(s) => format!("/revocations?after={s}"),
        None => "/revocations".to_string(),
    };
    let reader = feed_reader(app).await;
    let mut req = app
        .api
        .get(app.url(&path))
        .header("Authorization", basic_auth(&reader.id, &reader.secret));
    if let Some(etag) = if_none_match {
        req = req.header("If-None-Match", etag);
    }
    let resp = req.send().await.expect("GET /revocations");
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("feed body");
    let body = if text.is_empty() {
        None
    } else {
        Some(serde_json::from_str(&text).expect("feed is JSON"))
    };
    (status, headers, body)
}

/// Every entry of the feed from the start, as the feed reader (asserting one page and 200).
pub async fn feed_json(app: &TestApp) -> Value {
    let (status, _, body) = feed(app, None, None).await;
    assert_eq!(status, 200, "GET /revocations: {body:?}");
    let body = body.expect("a feed body");
    assert_eq!(body["has_more"], false, "{body}");
    body
}

/// The sids listed by a feed body.
pub fn feed_sids(body: &Value) -> Vec<String> {
    body["families"]
        .as_array()
        .expect("families array")
        .iter()
        .map(|f| f["sid"].as_str().expect("sid").to_string())
        .collect()
}

/// The user ids listed by a feed body.
pub fn feed_subs(body: &Value) -> Vec<String> {
    body["users"]
        .as_array()
        .expect("users array")
        .iter()
        .map(|u| u["sub"].as_str().expect("sub").to_string())
        .collect()
}

// ---- direct looks at the tables ----

pub async fn family_row(app: &TestApp, id: &str) -> Option<FamilyRow> {
    let id = id.to_string();
    app.db
        .read(move |c| refresh_families::find(c, &id))
        .await
        .expect("read family")
}

pub async fn family(app: &TestApp, id: &str) -> FamilyRow {
    family_row(app, id).await.expect("the family exists")
}

/// Unused tokens of a family: never more than one may exist.
pub async fn unused_count(app: &TestApp, family_id: &str) -> i64 {
    let id = family_id.to_string();
    app.db
        .read(move |c| refresh_tokens::count_unused_of(c, &id))
        .await
        .expect("count unused tokens")
}

/// Every token row of a family (used or not), oldest generation first.
pub async fn token_rows(app: &TestApp, family_id: &str) -> Vec<RefreshTokenRow> {
    use lineage::db::schema::refresh_tokens::dsl as t;
    let id = family_id.to_string();
    app.db
        .read(move |c| {
            Ok::<_, lineage::db::StoreError>(
                t::refresh_tokens
                    .filter(t::family_id.eq(id))
                    .order(t::generation.asc())
                    .select(RefreshTokenRow::as_select())
                    .load(c)?,
            )
        })
        .await
        .expect("read tokens")
}

/// Rows of a table, by name (for "nothing else was touched" checks).
pub async fn count_rows(app: &TestApp, table: &'static str) -> i64 {
    use lineage::db::schema;
    app.db
        .read(move |c| {
            Ok::<_, lineage::db::StoreError>(match table {
                "refresh_families" => schema::refresh_families::table.count().get_result(c)?,
                "refresh_tokens" => schema::refresh_tokens::table.count().get_result(c)?,
                "revoked_access_tokens" => {
                    schema::revoked_access_tokens::table.count().get_result(c)?
                }
                "audit_events" => schema::audit_events::table.count().get_result(c)?,
                "users" => schema::users::table.count().get_result(c)?,
                "clients" => schema::clients::table.count().get_result(c)?,
                "revocation_feed" => schema::revocation_feed::table.count().get_result(c)?,
                other => panic!("unknown table {other}"),
            })
        })
        .await
        .expect("count rows")
}

pub async fn audit_events_of_kind(app: &TestApp, kind: &str) -> Vec<AuditEventRow> {
    let kind = kind.to_string();
    app.db
        .read(move |c| lineage::db::models::audit_events::list_kind(c, &kind))
        .await
        .expect("read audit events")
}

/// The denylist entry of an access token's `jti`, as (revoked_at, expires_at).
pub async fn denylist_entry(app: &TestApp, jti: &str) -> Option<(i64, i64)> {
    use lineage::db::schema::revoked_access_tokens::dsl as r;
    let jti = jti.to_string();
    app.db
        .read(move |c| {
            Ok::<_, lineage::db::StoreError>(
                r::revoked_access_tokens
                    .filter(r::jti.eq(jti))
                    .select((r::revoked_at, r::expires_at))
                    .first::<(i64, i64)>(c)
                    .optional()?,
            )
        })
        .await
        .expect("read denylist")
}

// ---- the command line ----

/// A scratch working directory (so no stray `lineage.toml` is read), removed when dropped.
pub struct CliDir(pub PathBuf);

impl CliDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "lineage-refresh-cli-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("create work dir");
        Self(dir)
    }
}

impl Drop for CliDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run `lineage` against the app's database with a clean environment and the app's issuer.
pub fn lineage_cli(app: &TestApp, dir: &CliDir, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lineage"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("LINEAGE_") {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("RUST_LOG")
        .current_dir(&dir.0)
        .args(["--database-url", &app.database.url_string()])
        .args(["--key-secret", KEY_SECRET])
        .args(["--issuer", &app.issuer])
        .args(args)
        .output()
        .expect("run lineage")
}

pub fn cli_stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn cli_stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn assert_cli_ok(out: &Output) {
    assert!(
        out.status.success(),
        "lineage failed ({}): {}",
        out.status,
        cli_stderr(out)
    );
}

/// Run, assert success, parse stdout as one JSON document.
pub fn cli_json(app: &TestApp, dir: &CliDir, args: &[&str]) -> Value {
    let out = lineage_cli(app, dir, args);
    assert_cli_ok(&out);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}",
            cli_stdout(&out)
        )
    })
}
