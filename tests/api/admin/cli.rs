//! The `lineage` command line, run as a real process against a test database: JSON outputs,
//! clear failures, configuration errors (exit 2, one line on stderr), and migrations both ways.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use diesel::sql_types::Text;
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl, SqliteConnection};
use serde_json::Value;

use crate::helpers::{Backend, KEY_SECRET, TestDatabase, assert_oauth_error, basic_auth};

/// A scratch working directory (so no stray `lineage.toml` is read), removed when dropped.
struct WorkDir(PathBuf);

impl WorkDir {
    fn new() -> Self {
        let dir =
            std::env::temp_dir().join(format!("lineage-cli-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create work dir");
        Self(dir)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `lineage` with a clean environment, run in `dir`.
fn lineage(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lineage"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("LINEAGE_") {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("RUST_LOG")
        // A panic would print a backtrace, which the tests below reject.
        .env("RUST_BACKTRACE", "1")
        .current_dir(dir);
    cmd
}

fn run_with_stdin(mut cmd: Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lineage");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait for lineage")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A failure a user can read: non-zero exit, the message on stderr, no panic.
fn assert_clear_failure(out: &Output, expected: &str) {
    let err = stderr(out);
    assert!(
        !out.status.success(),
        "expected a failure, stdout: {}",
        stdout(out)
    );
    assert!(
        err.to_lowercase().contains(&expected.to_lowercase()),
        "stderr should mention `{expected}`: {err}"
    );
    assert!(!err.contains("panicked"), "no panic: {err}");
    assert!(
        !err.to_lowercase().contains("backtrace"),
        "no backtrace: {err}"
    );
}

/// The CLI pointed at one test database.
struct Cli {
    database: Arc<TestDatabase>,
    dir: WorkDir,
}

impl Cli {
    fn new(backend: Backend) -> Option<Self> {
        Some(Self {
            database: Arc::new(TestDatabase::create(backend)?),
            dir: WorkDir::new(),
        })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = lineage(&self.dir.0);
        cmd.args(["--database-url", &self.database.url_string()])
            .args(["--key-secret", KEY_SECRET])
            .args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run lineage")
    }

    fn run_stdin(&self, args: &[&str], stdin: &str) -> Output {
        run_with_stdin(self.command(args), stdin)
    }

    /// Run, assert success, parse stdout as one JSON document.
    fn json(&self, args: &[&str]) -> Value {
        parse_json(&self.run(args))
    }
}

fn parse_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "lineage failed ({}): {}",
        out.status,
        stderr(out)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", stdout(out)))
}

fn is_base64url(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

macro_rules! cli_both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite);
                }

                #[test]
                fn postgres() {
                    super::$name($crate::helpers::Backend::Postgres);
                }
            }
        )+
    };
}

cli_both_backends!(
    client_create_list_show_delete,
    user_create_list_set_password_disable,
    keys_rotate_and_list,
    migrations_revert_and_reapply,
);

fn client_create_list_show_delete(backend: Backend) {
    let Some(cli) = Cli::new(backend) else {
        return;
    };
    let created = cli.json(&[
        "client",
        "create",
        "--name",
        "billing-worker",
        "--grant",
        "client_credentials",
        "--scope",
        "invoices:read invoices:write",
        "--audience",
        "https://api.example",
        "--json",
    ]);
    let id = created["client_id"]
        .as_str()
        .expect("client_id")
        .to_string();
    assert!(
        uuid::Uuid::parse_str(&id).is_ok(),
        "default id is a UUID: {id}"
    );
    let secret = created["client_secret"].as_str().expect("client_secret");
    assert!(
        secret.len() >= 43 && is_base64url(secret),
        "≥ 256-bit base64url secret: {secret}"
    );
    assert_eq!(created["name"], "billing-worker");
    assert_eq!(created["public"], false);
    assert_eq!(
        created["grant_types"],
        serde_json::json!(["client_credentials"])
    );
    assert_eq!(
        created["scopes"],
        serde_json::json!(["invoices:read", "invoices:write"])
    );
    assert_eq!(created["audience"], "https://api.example");

    // A second client: public, with a redirect URI and default grants.
    let public = cli.json(&[
        "client",
        "create",
        "--name",
        "app",
        "--public",
        "--client-id",
        "my.app",
        "--redirect-uri",
        "http://127.0.0.1:9000/cb",
        "--scope",
        "openid",
        "--json",
    ]);
    assert_eq!(public["client_id"], "my.app");
    assert_eq!(public["client_secret"], Value::Null);
    assert_eq!(public["public"], true);
    assert_eq!(
        public["redirect_uris"],
        serde_json::json!(["http://127.0.0.1:9000/cb"])
    );

    let list = cli.json(&["client", "list", "--json"]);
    let list = list.as_array().expect("list is an array");
    assert_eq!(list.len(), 2);
    assert!(list.iter().any(|c| c["client_id"] == id.as_str()));
    for c in list {
        assert!(
            c.get("client_secret").is_none(),
            "a secret is shown only once: {c}"
        );
    }
    let shown = cli.json(&["client", "show", &id, "--json"]);
    assert_eq!(shown["client_id"], id.as_str());
    assert_eq!(shown["scopes"], created["scopes"]);
    assert!(shown.get("client_secret").is_none());
    assert!(!stdout(&cli.run(&["client", "show", &id])).contains(secret));

    let deleted = cli.json(&["client", "delete", &id, "--json"]);
    assert_eq!(deleted["client_id"], id.as_str());
    assert_eq!(deleted["deleted"], true);
    let list = cli.json(&["client", "list", "--json"]);
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_clear_failure(&cli.run(&["client", "show", &id, "--json"]), &id);
    assert_clear_failure(&cli.run(&["client", "delete", &id]), &id);
}

#[test]
fn client_create_rejects_bad_registrations() {
    let Some(cli) = Cli::new(Backend::Sqlite) else {
        return;
    };
    let cases: &[(&[&str], &str)] = &[
        (
            &["--grant", "client_credentials", "--public", "--scope", "a"],
            "public",
        ),
        (&["--grant", "password", "--scope", "a"], "password"),
        (
            &["--grant", "authorization_code", "--scope", "a"],
            "redirect",
        ),
        (
            &[
                "--redirect-uri",
                "https://app.example/cb#frag",
                "--scope",
                "a",
            ],
            "fragment",
        ),
        (
            &["--redirect-uri", "/relative", "--scope", "a"],
            "/relative",
        ),
        (
            &["--redirect-uri", "http://app.example/cb", "--scope", "a"],
            "https",
        ),
        (&["--grant", "client_credentials"], "scope"),
        (&["--scope", "a\"b"], "scope"),
        (&["--client-id", "has space", "--scope", "a"], "client id"),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["client", "create", "--name", "x", "--json"];
        args.extend_from_slice(extra);
        let out = cli.run(&args);
        assert_clear_failure(&out, expected);
        assert!(stdout(&out).is_empty(), "nothing on stdout for {extra:?}");
    }
    let list = cli.json(&["client", "list", "--json"]);
    assert_eq!(list, serde_json::json!([]), "nothing was registered");

    let args = [
        "client",
        "create",
        "--name",
        "x",
        "--client-id",
        "fixed",
        "--scope",
        "a",
        "--json",
    ];
    cli.json(&args);
    assert_clear_failure(&cli.run(&args), "already exists");
}

fn user_create_list_set_password_disable(backend: Backend) {
    let Some(cli) = Cli::new(backend) else {
        return;
    };
    let out = cli.run_stdin(
        &["user", "create", "alice", "--password-stdin", "--json"],
        "correct horse battery\n",
    );
    let alice = parse_json(&out);
    assert_eq!(alice["username"], "alice");
    assert_eq!(alice["disabled"], false);
    assert_eq!(alice["security_version"], 1);
    assert!(uuid::Uuid::parse_str(alice["id"].as_str().expect("id")).is_ok());
    let json = serde_json::to_string(&alice).expect("json");
    assert!(
        !json.contains("correct horse") && !json.contains("argon2"),
        "{json}"
    );

    let dup = cli.run_stdin(
        &["user", "create", "alice", "--password-stdin"],
        "another password\n",
    );
    assert_clear_failure(&dup, "already exists");

    let short = cli.run_stdin(&["user", "create", "bob", "--password-stdin"], "short\n");
    assert_clear_failure(&short, "too short");
    let bad_name = cli.run_stdin(
        &["user", "create", "bad name!", "--password-stdin"],
        "long enough password\n",
    );
    assert_clear_failure(&bad_name, "username");

    let users = cli.json(&["user", "list", "--json"]);
    let names: Vec<&str> = users
        .as_array()
        .expect("array")
        .iter()
        .map(|u| u["username"].as_str().expect("username"))
        .collect();
    assert_eq!(names, ["alice"]);

    let changed = parse_json(&cli.run_stdin(
        &[
            "user",
            "set-password",
            "alice",
            "--password-stdin",
            "--json",
        ],
        "a brand new password\n",
    ));
    assert_eq!(
        changed["security_version"], 2,
        "a new password bumps the security version"
    );
    assert_stored_password(
        &cli.database,
        "alice",
        "a brand new password",
        "correct horse battery",
    );
    let too_short = cli.run_stdin(
        &["user", "set-password", "alice", "--password-stdin"],
        "1234\n",
    );
    assert_clear_failure(&too_short, "too short");
    let unknown = cli.run_stdin(
        &["user", "set-password", "nobody", "--password-stdin"],
        "long enough password\n",
    );
    assert_clear_failure(&unknown, "nobody");

    let disabled = cli.json(&["user", "disable", "alice", "--json"]);
    assert_eq!(disabled["disabled"], true);
    assert_eq!(disabled["security_version"], 3);
    let users = cli.json(&["user", "list", "--json"]);
    assert_eq!(users[0]["disabled"], true);
    assert_clear_failure(&cli.run(&["user", "disable", "nobody"]), "nobody");
}

/// The stored argon2id hash accepts the new password and not the old one.
fn assert_stored_password(database: &TestDatabase, name: &str, new: &str, old: &str) {
    use lineage::domain::Password;
    let db = lineage::db::Database::open(&database.url(), &Default::default()).expect("open db");
    let name = name.to_string();
    let row = db
        .read_sync(move |c| lineage::users::get(c, &name))
        .expect("user row");
    assert!(row.password_hash.starts_with("$argon2id$"), "argon2id hash");
    let hash = Some(row.password_hash.as_str());
    assert!(lineage::users::verify_password(
        hash,
        &Password::attempt(new.into())
    ));
    assert!(!lineage::users::verify_password(
        hash,
        &Password::attempt(old.into())
    ));
}

fn keys_rotate_and_list(backend: Backend) {
    let Some(cli) = Cli::new(backend) else {
        return;
    };
    let before = cli.json(&["keys", "list", "--json"]);
    let before = before.as_array().expect("array").len();

    let first = cli.json(&["keys", "rotate", "--lead", "0", "--json"]);
    let kid = first["kid"].as_str().expect("kid");
    assert_eq!(kid.len(), 43, "a base64url SHA-256 thumbprint: {kid}");
    assert!(is_base64url(kid));
    assert_eq!(first["algorithm"], "EdDSA");
    assert_eq!(first["state"], "active");
    assert_eq!(first["activates_at"], first["created_at"]);
    assert_eq!(first["retired_at"], Value::Null);

    // The default lead (10 minutes): published now, signs later.
    let second = cli.json(&["keys", "rotate", "--json"]);
    assert_eq!(second["state"], "pending");
    let activates = second["activates_at"].as_i64().expect("activates_at");
    assert_eq!(
        activates,
        second["created_at"].as_i64().expect("created_at") + 600
    );

    let list = cli.json(&["keys", "list", "--json"]);
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), before + 2);
    let old = list
        .iter()
        .find(|k| k["kid"] == kid)
        .expect("first key listed");
    assert_eq!(
        old["state"], "active",
        "the old key signs until the new one takes over"
    );
    assert_eq!(old["retired_at"], activates);
    assert_eq!(old["published_until"], activates + 600 + 60);
    let new = list
        .iter()
        .find(|k| k["kid"] == second["kid"])
        .expect("second key listed");
    assert_eq!(new["state"], "pending");
    let text = serde_json::to_string(&list).expect("json");
    assert!(
        !text.contains("private"),
        "no key material in the listing: {text}"
    );

    assert_clear_failure(&cli.run(&["keys", "rotate", "--lead", "soon"]), "lead");
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

/// Tables and indexes the migrations created (diesel's bookkeeping table excluded).
fn schema_objects(database: &TestDatabase) -> Vec<String> {
    let rows: Vec<Name> = match database.url() {
        lineage::db::DatabaseUrl::Sqlite { path } => {
            let mut c = SqliteConnection::establish(&path).expect("open sqlite");
            diesel::sql_query(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'index') \
                 AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '__diesel%'",
            )
            .load(&mut c)
            .expect("list sqlite objects")
        }
        lineage::db::DatabaseUrl::Postgres { url } => {
            let mut c = PgConnection::establish(&url).expect("open postgres");
            diesel::sql_query(
                "SELECT relname::text AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i') \
                 AND relname NOT LIKE '\\_\\_diesel%'",
            )
            .load(&mut c)
            .expect("list postgres objects")
        }
    };
    let mut names: Vec<String> = rows.into_iter().map(|r| r.name).collect();
    names.sort();
    names
}

fn migrations_revert_and_reapply(backend: Backend) {
    let Some(cli) = Cli::new(backend) else {
        return;
    };
    let out = cli.run(&["migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let applied: Vec<String> = stdout(&out)
        .lines()
        .filter_map(|l| l.strip_prefix("applied ").map(str::to_string))
        .collect();
    assert!(
        !applied.is_empty(),
        "a fresh database gets migrations: {}",
        stdout(&out)
    );
    let full_schema = schema_objects(&cli.database);
    assert!(
        full_schema.contains(&"clients".to_string()),
        "{full_schema:?}"
    );

    let again = cli.run(&["migrate"]);
    assert!(again.status.success());
    assert!(stdout(&again).contains("up to date"), "{}", stdout(&again));

    // Every down.sql runs, newest first, and leaves nothing behind.
    for version in applied.iter().rev() {
        let out = cli.run(&["migrate", "--revert"]);
        assert!(
            out.status.success(),
            "reverting {version}: {}",
            stderr(&out)
        );
        assert_eq!(stdout(&out).trim(), format!("reverted {version}"));
    }
    assert_eq!(schema_objects(&cli.database), Vec::<String>::new());
    assert_clear_failure(&cli.run(&["migrate", "--revert"]), "revert");

    let out = cli.run(&["migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let reapplied: Vec<String> = stdout(&out)
        .lines()
        .filter_map(|l| l.strip_prefix("applied ").map(str::to_string))
        .collect();
    assert_eq!(reapplied, applied);
    assert_eq!(schema_objects(&cli.database), full_schema);
    cli.json(&["client", "create", "--name", "x", "--scope", "a", "--json"]);
}

#[test]
fn invalid_configuration_exits_2_with_one_line() {
    let dir = WorkDir::new();
    let db = format!("sqlite://{}", dir.0.join("x.db").display());
    std::fs::write(dir.0.join("zero.toml"), "access_token_ttl = 0\n").expect("write toml");
    std::fs::write(dir.0.join("unknown.toml"), "colour = \"blue\"\n").expect("write toml");
    std::fs::write(
        dir.0.join("limits.toml"),
        "sign_in_ip_failures = \"lots\"\n",
    )
    .expect("write toml");
    // (flags, environment, what the one line on stderr must mention)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (&["--access-token-ttl", "0"], &[], "access-token-ttl"),
        (
            &["--access-token-ttl", "ten minutes"],
            &[],
            "access-token-ttl",
        ),
        (&["--refresh-idle-ttl", "31d"], &[], "refresh-idle-ttl"),
        (
            &["--refresh-absolute-ttl", "0"],
            &[],
            "refresh-absolute-ttl",
        ),
        // `now + ttl` must never overflow: lifetimes are capped.
        (
            &["--refresh-absolute-ttl", "9223372036854775807"],
            &[],
            "refresh-absolute-ttl",
        ),
        (&["--metrics-bind", "nowhere"], &[], "metrics-bind"),
        (&["--insecure-http", "maybe"], &[], "insecure-http"),
        (&["--database-url", "mysql://x"], &[], "mysql"),
        (&["--issuer", "not-a-url"], &[], "issuer"),
        (&["--issuer", "ftp://example.com"], &[], "issuer"),
        (&["--bind", "nowhere"], &[], "bind"),
        (&["--key-secret", "short"], &[], "key-secret"),
        (
            &[],
            &[("LINEAGE_ACCESS_TOKEN_TTL", "0")],
            "access-token-ttl",
        ),
        (&["--config", "zero.toml"], &[], "access-token-ttl"),
        (&["--config", "unknown.toml"], &[], "colour"),
        (&["--config", "missing.toml"], &[], "missing.toml"),
        (&["--config", "limits.toml"], &[], "sign-in-ip-failures"),
        (
            &[],
            &[("LINEAGE_TRUSTED_PROXIES", "10.0.0.0/8,proxy.internal")],
            "trusted-proxies",
        ),
        (
            &["--client-auth-failures", "many"],
            &[],
            "client-auth-failures",
        ),
        (
            &[],
            &[("LINEAGE_OAUTH_IP_REQUESTS", "0/1s")],
            "oauth-ip-requests",
        ),
        (&["--sign-in-backoff-max", "1s"], &[], "sign-in-backoff-max"),
        (
            &[],
            &[("LINEAGE_PASSWORD_HASH_WORKERS", "0")],
            "password-hash-workers",
        ),
        (
            &["--forwarded-header", "x-real-ip"],
            &[],
            "forwarded-header",
        ),
    ];
    for (args, env, expected) in cases {
        let mut cmd = lineage(&dir.0);
        // Valid defaults for whatever the case does not set itself (a flag may appear only once).
        for (flag, value) in [
            ("--database-url", db.as_str()),
            ("--key-secret", KEY_SECRET),
        ] {
            if !args.contains(&flag) {
                cmd.args([flag, value]);
            }
        }
        cmd.args(*args)
            .args(["client", "list", "--json"])
            .envs(env.iter().copied());
        let out = cmd.output().expect("run lineage");
        let err = stderr(&out);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?} {env:?}: exit code (stderr: {err})"
        );
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: one line on stderr: {err}"
        );
        assert_clear_failure(&out, expected);
        assert!(stdout(&out).is_empty(), "{args:?}: nothing on stdout");
    }
    assert!(!dir.0.join("x.db").exists(), "nothing was touched");
}

/// A plain-http issuer on a public address would send tokens and cookies over the network in
/// clear: `serve` refuses it (exit 2, one line) unless told `--insecure-http`.
#[test]
fn serve_refuses_plain_http_on_a_public_address() {
    let dir = WorkDir::new();
    let db = format!("sqlite://{}", dir.0.join("x.db").display());
    for extra in [
        &[][..],
        &["--issuer", "http://auth.example.com"][..],
        &["--issuer", "HTTP://auth.example.com"][..],
    ] {
        let out = lineage(&dir.0)
            .args(["--database-url", &db, "--key-secret", KEY_SECRET])
            .args(extra)
            .args(["serve", "--bind", "0.0.0.0:0"])
            .output()
            .expect("run lineage serve");
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", stderr(&out));
        assert_eq!(
            stderr(&out).trim_end().lines().count(),
            1,
            "{}",
            stderr(&out)
        );
        assert_clear_failure(&out, "--insecure-http");
    }
    assert!(!dir.0.join("x.db").exists(), "nothing was touched");
}

#[test]
fn unreachable_database_at_start_is_a_clear_error() {
    let dir = WorkDir::new();
    for url in [
        // Nothing listens on port 1.
        "postgres://postgres@127.0.0.1:1/lineage",
        "sqlite:///nonexistent-lineage-dir/lineage.db",
    ] {
        let mut child = lineage(&dir.0)
            .args(["--database-url", url, "--key-secret", KEY_SECRET])
            .args(["serve", "--bind", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn lineage serve");
        let status = wait_at_most(&mut child, Duration::from_secs(30));
        let out = child.wait_with_output().expect("output");
        assert!(
            status.is_some_and(|s| !s.success()),
            "{url}: serve must exit with an error"
        );
        assert_clear_failure(&out, "database");
    }
}

/// Wait for a child to exit; kill it (by its own handle) if it takes longer than `limit`.
fn wait_at_most(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_registered_client_gets_tokens_until_deleted() {
    let Some(cli) = Cli::new(Backend::Sqlite) else {
        return;
    };
    let created = cli.json(&[
        "client",
        "create",
        "--name",
        "svc",
        "--grant",
        "client_credentials",
        "--scope",
        "a b",
        "--audience",
        "https://api.example",
        "--json",
    ]);
    let id = created["client_id"].as_str().expect("id").to_string();
    let secret = created["client_secret"]
        .as_str()
        .expect("secret")
        .to_string();

    // A server on the same database sees the client the CLI registered.
    let app = crate::helpers::spawn_app_on(
        Arc::clone(&cli.database),
        lineage::clock::ManualClock::starting_now(),
        |_| {},
    )
    .await;
    let resp = app
        .post_token(
            &[("grant_type", "client_credentials")],
            Some(&basic_auth(&id, &secret)),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("JSON");
    assert_eq!(body["scope"], "a b");

    let out = cli.run(&["client", "delete", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let resp = app
        .post_token(
            &[("grant_type", "client_credentials")],
            Some(&basic_auth(&id, &secret)),
        )
        .await;
    assert_oauth_error(resp, 401, "invalid_client").await;
}

/// `serve --demo` prints a working client and the same secret on every start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_demo_prints_a_working_client() {
    let Some(cli) = Cli::new(Backend::Sqlite) else {
        return;
    };
    let mut secrets = Vec::new();
    for _ in 0..2 {
        let mut cmd = cli.command(&["serve", "--demo", "--bind", "127.0.0.1:0"]);
        let (mut child, issuer, secret) = tokio::task::spawn_blocking(move || start_demo(&mut cmd))
            .await
            .expect("join");
        let resp = reqwest::Client::new()
            .post(format!("{issuer}/token"))
            .header("Authorization", basic_auth("demo-service", &secret))
            .form(&[("grant_type", "client_credentials"), ("scope", "demo:read")])
            .send()
            .await
            .expect("POST /token");
        let status = resp.status();
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(status, 200);
        secrets.push(secret);
    }
    assert_eq!(
        secrets[0], secrets[1],
        "the demo secret is stable across restarts"
    );
}

/// Start `serve --demo` and read its issuer and client secret from stdout.
fn start_demo(cmd: &mut Command) -> (Child, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn lineage serve --demo");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Keep draining stdout for the server's whole life: a closed pipe would fail its writes.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut issuer, mut secret) = (None, None);
    while issuer.is_none() || secret.is_none() {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            panic!("serve --demo did not print its client in time");
        };
        if let Some(rest) = line.split("ready at ").nth(1) {
            issuer = Some(rest.trim().to_string());
        }
        if let Some(rest) = line.trim().strip_prefix("client_secret:") {
            secret = Some(rest.trim().to_string());
        }
    }
    (
        child,
        issuer.unwrap_or_default(),
        secret.unwrap_or_default(),
    )
}

/// A short CLI command on PostgreSQL must exit normally every time. The pool's background thread
/// may still be in libpq's TLS handshake when `main` returns; OpenSSL's `atexit` clean-up then
/// frees state that thread uses, and the process dies of SIGSEGV (about one run in ten here).
#[test]
fn cli_on_postgresql_never_crashes_at_exit() {
    let Some(cli) = Cli::new(Backend::Postgres) else {
        return;
    };
    let url = cli.database.url_string();
    cli.run(&["migrate"]);
    for attempt in 0..50 {
        // The server's default sslmode (`prefer`): TLS whenever PostgreSQL offers it.
        let out = lineage(&cli.dir.0)
            .args(["--database-url", &url, "--key-secret", KEY_SECRET])
            .args(["keys", "list", "--json"])
            .output()
            .expect("run lineage");
        assert!(
            out.status.success(),
            "attempt {attempt}: lineage keys list ended with {}: {}",
            out.status,
            stderr(&out)
        );
    }
}
