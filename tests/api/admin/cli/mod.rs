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

mod migrations;
mod registry;
mod serving;
