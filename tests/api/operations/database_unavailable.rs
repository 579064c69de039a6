//! PostgreSQL going away under a running server: the token endpoint answers 503
//! `temporarily_unavailable` (or succeeds on a fresh connection), and the server recovers by
//! itself once the database is back — no restart.

use std::time::{Duration, Instant};

use crate::helpers::{Backend, TestApp, TestClient, assert_oauth_error, spawn_app};
use diesel::RunQueryDsl;

fn terminate_app_connections(app: &TestApp) {
    let (name, mut admin) = app
        .database
        .postgres_admin()
        .expect("PostgreSQL test database");
    diesel::sql_query(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    ))
    .execute(&mut admin)
    .expect("pg_terminate_backend");
}

fn allow_connections(app: &TestApp, allow: bool) {
    let (name, mut admin) = app
        .database
        .postgres_admin()
        .expect("PostgreSQL test database");
    diesel::sql_query(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {allow}"))
        .execute(&mut admin)
        .expect("ALTER DATABASE");
}

/// 200, or 503 with the RFC 6749 error `temporarily_unavailable`.
async fn token_or_unavailable(app: &TestApp, client: &TestClient) -> u16 {
    let resp = app
        .token_basic(client, &[("grant_type", "client_credentials")])
        .await;
    match resp.status().as_u16() {
        200 => 200,
        _ => {
            assert_oauth_error(resp, 503, "temporarily_unavailable").await;
            503
        }
    }
}

async fn assert_recovers(app: &TestApp, client: &TestClient) {
    // The pool reconnects in the background with a bounded back-off; give it a few attempts.
    let deadline = Instant::now() + Duration::from_secs(20);
    while token_or_unavailable(app, client).await != 200 {
        assert!(
            Instant::now() < deadline,
            "the server did not recover on its own"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for _ in 0..3 {
        assert_eq!(token_or_unavailable(app, client).await, 200);
    }
    let (status, _, body) = app.get_json("/healthz").await;
    assert_eq!(
        (status.as_u16(), body),
        (200, serde_json::json!({"status": "ok"}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connections_are_replaced_without_a_restart() {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        return;
    };
    let client = app.create_client("x").await;
    app.client_credentials_token(&client).await;

    terminate_app_connections(&app);
    token_or_unavailable(&app, &client).await;
    assert_recovers(&app, &client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_database_is_503_and_the_server_recovers() {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        return;
    };
    let client = app.create_client("x").await;
    app.client_credentials_token(&client).await;

    allow_connections(&app, false);
    terminate_app_connections(&app);

    let resp = app
        .token_basic(&client, &[("grant_type", "client_credentials")])
        .await;
    assert_oauth_error(resp, 503, "temporarily_unavailable").await;
    let (status, _, _) = app.get_json("/healthz").await;
    assert_eq!(status, 503, "health reports the database outage");
    // Published keys are already in memory: resource servers can still fetch them.
    assert_eq!(app.jwks_kids().await.len(), 1);

    allow_connections(&app, true);
    assert_recovers(&app, &client).await;
}
