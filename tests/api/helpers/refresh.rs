//! What the refresh-family tests share: a `Fixture` (server, user, refresh-capable client),
//! families started through the library, thin wrappers over `/token`, `/revoke`, `/introspect`
//! and `/revocations`, and direct looks at the tables.

use diesel::prelude::*;
use lineage::db::models::audit_events::AuditEventRow;
use lineage::db::models::refresh_families::{self, FamilyRow};
use lineage::db::models::refresh_tokens::{self, RefreshTokenRow};
use lineage::domain::Scope;
use lineage::tokens::refresh::{self, NewFamily, Origin, RefreshPolicy};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::accounts::{TestClient, TestUser, create_user, feed_reader, refresh_client};
use super::app::{Backend, TestApp, spawn_app_with};
use super::jwt::verify_jwt;
use super::requests::{basic_auth, post_as};

/// The scope every fixture family starts with.
pub const FAMILY_SCOPE: &str = "read write";

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
        refresh_as(&self.app, &self.client, token, None).await
    }
}

/// Start a family directly through the library at the app's clock: (family id, first token).
pub async fn start_family(
    app: &TestApp,
    user_id: &str,
    client_id: &str,
    scope: &str,
) -> (String, String) {
    start_family_bound(app, user_id, client_id, scope, None).await
}

/// `start_family` bound to the DPoP key with thumbprint `dpop_jkt` (as a code exchange with a
/// proof by that key binds it), or to none.
pub async fn start_family_bound(
    app: &TestApp,
    user_id: &str,
    client_id: &str,
    scope: &str,
    dpop_jkt: Option<&str>,
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
        dpop_jkt: dpop_jkt.map(str::to_string),
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

/// `grant_type=refresh_token` as `client` (see `post_as`), optionally narrowing the scope.
pub async fn refresh_as(
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
    parse_refreshed(app, refresh_as(app, client, token, None).await).await
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
