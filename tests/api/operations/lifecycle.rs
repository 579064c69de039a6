//! The server as a process: SIGTERM under load stops accepting, answers every request it
//! accepted, commits every write and exits 0; several nodes starting together on one PostgreSQL
//! migrate it once and all serve.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use lineage::db::models::refresh_tokens;
use lineage::db::{Database, PoolOptions};
use lineage::tokens::secret::PlainToken;
use serde_json::Value;

use crate::helpers::{
    Backend, CliDir, TestDatabase, basic_auth, cli_with_stdin, form_body, free_port,
    lineage_command,
};

both_backends!(sigterm_under_load_answers_every_accepted_request_and_commits_every_write);

/// Start `lineage serve` and wait until it answers.
async fn serve(dir: &CliDir, database: &TestDatabase, port: u16) -> Child {
    let mut child = lineage_command(dir, database)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn lineage serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("http://127.0.0.1:{port}/healthz");
    while Instant::now() < deadline {
        if reqwest::get(&url).await.is_ok_and(|r| r.status() == 200) {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("lineage serve did not come up");
}

fn wait_for_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    None
}

/// One chain of rotations, each request on a new connection, until the server stops answering.
/// Returns the refresh token the app holds at the end and how many rotations succeeded.
async fn rotate_until_refused(url: String, auth: String, mut token: String) -> (String, usize) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let mut rotations = 0;
    loop {
        let sent = http
            .post(&url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form_body(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &token),
            ]))
            .send()
            .await;
        let Ok(resp) = sent else {
            return (token, rotations);
        };
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 200, "during shutdown: {body}");
        token = body["refresh_token"]
            .as_str()
            .expect("refresh token")
            .to_string();
        rotations += 1;
    }
}

async fn sigterm_under_load_answers_every_accepted_request_and_commits_every_write(
    backend: Backend,
) {
    let Some(database) = TestDatabase::create(backend) else {
        return;
    };
    let database = Arc::new(database);
    let dir = CliDir::new();
    cli_with_stdin(
        &dir,
        &database,
        &["user", "create", "alice", "--password-stdin"],
        "correct horse battery staple\n",
    );
    let client: Value = serde_json::from_str(&cli_with_stdin(
        &dir,
        &database,
        &[
            "client",
            "create",
            "--name",
            "app",
            "--client-id",
            "app",
            "--grant",
            "refresh_token",
            "--scope",
            "read",
            "--json",
        ],
        "",
    ))
    .expect("client JSON");
    let secret = client["client_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let tokens = cli_with_stdin(
        &dir,
        &database,
        &[
            "token", "mint", "--user", "alice", "--client", "app", "--count", "8",
        ],
        "",
    );
    let port = free_port();
    let mut server = serve(&dir, &database, port).await;

    let url = format!("http://127.0.0.1:{port}/token");
    let auth = basic_auth("app", &secret);
    let chains: Vec<_> = tokens
        .lines()
        .map(|t| {
            tokio::spawn(rotate_until_refused(
                url.clone(),
                auth.clone(),
                t.to_string(),
            ))
        })
        .collect();
    // Let the load run, then ask the server to stop while requests are in flight.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = server.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let code =
        tokio::task::spawn_blocking(move || wait_for_exit(&mut server, Duration::from_secs(30)))
            .await
            .expect("join");
    assert_eq!(code, Some(0), "lineage serve exits 0 after SIGTERM");

    let mut held = Vec::new();
    let mut total = 0;
    for chain in chains {
        let (token, rotations) = chain.await.expect("a chain");
        total += rotations;
        held.push(token);
    }
    assert!(total > 0, "the load ran before the signal");

    // Every token an app holds is in the database and unused: no rotation was committed whose
    // answer the app never got, and none that was answered is missing.
    let url = database.url();
    let db = tokio::task::spawn_blocking(move || Database::open(&url, &PoolOptions::default()))
        .await
        .expect("join")
        .expect("open the database");
    for token in held {
        let hash = PlainToken::new(token).hash().into_string();
        let row = db
            .read(move |c| refresh_tokens::find(c, &hash))
            .await
            .expect("read")
            .expect("the token an app holds was committed");
        assert_eq!(
            row.used_at, None,
            "a rotation was committed but its answer never reached the app"
        );
    }
}

/// Two processes starting at the same moment on an empty PostgreSQL database: migrations run
/// once (an advisory lock orders them) and both nodes serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_starting_together_migrate_once_and_both_serve() {
    let Some(database) = TestDatabase::create(Backend::Postgres) else {
        return;
    };
    let dir = CliDir::new();
    let (a, b) = (free_port(), free_port());
    let (mut first, mut second) =
        tokio::join!(serve(&dir, &database, a), serve(&dir, &database, b));
    for port in [a, b] {
        let jwks: Value = reqwest::get(format!("http://127.0.0.1:{port}/jwks.json"))
            .await
            .expect("jwks")
            .json()
            .await
            .expect("JSON");
        assert!(!jwks["keys"].as_array().expect("keys").is_empty());
    }
    let url = database.url_string();
    let mut conn = <diesel::PgConnection as diesel::Connection>::establish(&url).expect("connect");
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let applied: Vec<Count> =
        diesel::sql_query("SELECT COUNT(*) AS n FROM __diesel_schema_migrations")
            .load(&mut conn)
            .expect("migrations table");
    let expected = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .expect("migrations dir")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().is_dir()))
        .count() as i64;
    assert_eq!(
        applied[0].n, expected,
        "each migration applied exactly once"
    );
    let _ = first.kill();
    let _ = second.kill();
    let _ = first.wait();
    let _ = second.wait();
}
