//! Who may read `/revocations`: by default a confidential client holding the `revocations`
//! permission (HTTP Basic on GET; Basic or client_secret_post on POST). No or bad credentials →
//! 401 `invalid_client` with `WWW-Authenticate`; a client without the permission → 403
//! `unauthorized_client`. `revocations_public` serves it to anyone. The permission is managed
//! with `lineage client create/update --permission`.

use lineage::domain::Permission;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, CliDir, TestApp, TestClient, assert_cli_ok, basic_auth, cli_json, cli_stderr,
    feed_reader, lineage_cli, public_client, spawn_app, spawn_app_with,
};

both_backends!(
    the_feed_needs_a_client_with_the_revocations_permission,
    the_feed_can_be_made_public,
    client_permissions_are_managed_with_the_cli,
);

/// GET /revocations with an optional `Authorization` header: (status, challenge, body).
async fn get(app: &TestApp, path: &str, authorization: Option<&str>) -> (u16, String, Value) {
    let mut req = app.api.get(app.url(path));
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    answer(req).await
}

async fn answer(req: reqwest::RequestBuilder) -> (u16, String, Value) {
    let resp = req.send().await.expect("request /revocations");
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, challenge, resp.json().await.unwrap_or(Value::Null))
}

async fn post(
    app: &TestApp,
    form: &[(&str, &str)],
    authorization: Option<&str>,
) -> (u16, String, Value) {
    let mut req = app.api.post(app.url("/revocations")).form(form);
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    answer(req).await
}

fn assert_invalid_client(answer: &(u16, String, Value), what: &str) {
    let (status, challenge, body) = answer;
    assert_eq!(*status, 401, "{what}: {body}");
    assert!(
        challenge.starts_with("Basic"),
        "{what}: challenge {challenge:?}"
    );
    assert_eq!(body["error"], "invalid_client", "{what}: {body}");
}

fn assert_forbidden(answer: &(u16, String, Value), what: &str) {
    let (status, _, body) = answer;
    assert_eq!(*status, 403, "{what}: {body}");
    assert_eq!(body["error"], "unauthorized_client", "{what}: {body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or("")
            .contains("revocations"),
        "{what}: {body}"
    );
}

fn basic(client: &TestClient) -> String {
    basic_auth(&client.id, &client.secret)
}

async fn set_permissions(app: &TestApp, client_id: &str, permissions: &'static [Permission]) {
    let (id, now) = (client_id.to_string(), app.now());
    app.db
        .write(move |c| lineage::clients::set_permissions(c, &id, permissions, now))
        .await
        .expect("set permissions");
}

async fn the_feed_needs_a_client_with_the_revocations_permission(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let reader = feed_reader(&app).await;
    let other = app.create_client("jobs").await;
    let native = public_client(&app, "read").await;

    assert_invalid_client(&get(&app, "/revocations", None).await, "no credentials");
    let wrong = TestClient {
        secret: "not-the-secret".into(),
        ..reader.clone()
    };
    assert_invalid_client(
        &get(&app, "/revocations", Some(&basic(&wrong))).await,
        "wrong secret",
    );
    assert_invalid_client(
        &get(&app, "/revocations", Some("Bearer abc")).await,
        "another scheme",
    );
    // A secret never travels in a URL: GET takes HTTP Basic only.
    let in_query = format!(
        "/revocations?client_id={}&client_secret={}",
        reader.id, reader.secret
    );
    assert_invalid_client(
        &get(&app, &in_query, None).await,
        "secret in the query string",
    );
    assert_invalid_client(
        &post(&app, &[("client_id", &native.id)], None).await,
        "a public client",
    );

    // Authenticated, but not allowed.
    assert_forbidden(
        &get(&app, "/revocations", Some(&basic(&other))).await,
        "GET",
    );
    let secret_post = [
        ("client_id", other.id.as_str()),
        ("client_secret", other.secret.as_str()),
    ];
    assert_forbidden(&post(&app, &secret_post, None).await, "POST");

    // The reader, every way.
    let (status, _, body) = get(&app, "/revocations", Some(&basic(&reader))).await;
    assert_eq!(status, 200, "{body}");
    let start = body["cursor"].as_str().unwrap_or_default().to_string();
    assert!(start.ends_with(".0"), "{body}");
    let (status, _, body) = post(&app, &[("limit", "5")], Some(&basic(&reader))).await;
    assert_eq!(status, 200, "POST with HTTP Basic: {body}");
    let form = [
        ("client_id", reader.id.as_str()),
        ("client_secret", reader.secret.as_str()),
        ("after", start.as_str()),
    ];
    let (status, _, body) = post(&app, &form, None).await;
    assert_eq!(status, 200, "POST with client_secret_post: {body}");

    // Granting the permission lets the other client in; taking it away shuts it out again.
    set_permissions(&app, &other.id, &[Permission::Revocations]).await;
    assert_eq!(get(&app, "/revocations", Some(&basic(&other))).await.0, 200);
    set_permissions(&app, &other.id, &[]).await;
    assert_forbidden(
        &get(&app, "/revocations", Some(&basic(&other))).await,
        "revoked permission",
    );
}

async fn the_feed_can_be_made_public(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| s.revocations_public = true).await else {
        return;
    };
    let (status, _, body) = get(&app, "/revocations", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["has_more"], false);
    let (status, _, _) = post(&app, &[("limit", "10")], None).await;
    assert_eq!(status, 200);
}

async fn client_permissions_are_managed_with_the_cli(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let dir = CliDir::new();
    let created = cli_json(
        &app,
        &dir,
        &[
            "client",
            "create",
            "--name",
            "notes-api",
            "--grant",
            "client_credentials",
            "--scope",
            "notes:read",
            "--permission",
            "revocations",
            "--json",
        ],
    );
    assert_eq!(created["permissions"], json!(["revocations"]), "{created}");
    let rs = TestClient {
        id: created["client_id"].as_str().expect("client_id").into(),
        secret: created["client_secret"].as_str().expect("secret").into(),
    };
    assert_eq!(get(&app, "/revocations", Some(&basic(&rs))).await.0, 200);
    let shown = cli_json(&app, &dir, &["client", "show", &rs.id, "--json"]);
    assert_eq!(shown["permissions"], json!(["revocations"]));

    // An existing client gets the permission with `client update`, and loses it again.
    let other = cli_json(
        &app,
        &dir,
        &[
            "client", "create", "--name", "jobs", "--scope", "jobs", "--json",
        ],
    );
    let other = TestClient {
        id: other["client_id"].as_str().expect("client_id").into(),
        secret: other["client_secret"].as_str().expect("secret").into(),
    };
    assert_eq!(get(&app, "/revocations", Some(&basic(&other))).await.0, 403);
    let updated = cli_json(
        &app,
        &dir,
        &[
            "client",
            "update",
            &other.id,
            "--permission",
            "revocations",
            "--json",
        ],
    );
    assert_eq!(updated["permissions"], json!(["revocations"]));
    assert_eq!(get(&app, "/revocations", Some(&basic(&other))).await.0, 200);
    let listed = cli_json(&app, &dir, &["client", "list", "--json"]);
    let mut with_permission: Vec<&str> = listed
        .as_array()
        .expect("a list")
        .iter()
        .filter(|c| c["permissions"] == json!(["revocations"]))
        .filter_map(|c| c["client_id"].as_str())
        .collect();
    with_permission.sort();
    let mut expected = vec![rs.id.as_str(), other.id.as_str()];
    expected.sort();
    assert_eq!(with_permission, expected);
    let human = lineage_cli(
        &app,
        &dir,
        &["client", "update", &other.id, "--no-permissions"],
    );
    assert_cli_ok(&human);
    assert_eq!(get(&app, "/revocations", Some(&basic(&other))).await.0, 403);

    // Mistakes are refused with a reason.
    let unknown = lineage_cli(
        &app,
        &dir,
        &["client", "update", &other.id, "--permission", "admin"],
    );
    assert_eq!(unknown.status.code(), Some(2), "{}", cli_stderr(&unknown));
    assert!(cli_stderr(&unknown).contains("unknown permission `admin`"));
    let nothing = lineage_cli(&app, &dir, &["client", "update", &other.id]);
    assert_eq!(nothing.status.code(), Some(2), "{}", cli_stderr(&nothing));
    let public = lineage_cli(
        &app,
        &dir,
        &[
            "client",
            "create",
            "--name",
            "spa",
            "--public",
            "--redirect-uri",
            "https://spa.example/cb",
            "--scope",
            "read",
            "--permission",
            "revocations",
        ],
    );
    assert_eq!(public.status.code(), Some(1), "{}", cli_stderr(&public));
    assert!(cli_stderr(&public).contains("public client cannot hold permissions"));
    let missing = lineage_cli(
        &app,
        &dir,
        &["client", "update", "nobody", "--permission", "revocations"],
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        cli_stderr(&missing).contains("no client `nobody`"),
        "{}",
        cli_stderr(&missing)
    );
}
