//! The `lineage` binary run as a real process against a test database.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use super::app::{KEY_SECRET, TestApp, TestDatabase};

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

/// `lineage` on `database`, in `dir`, with a clean environment (no `LINEAGE_*`, no `RUST_LOG`).
pub fn lineage_command(dir: &CliDir, database: &TestDatabase) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lineage"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("LINEAGE_") {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("RUST_LOG")
        .current_dir(&dir.0)
        .args(["--database-url", &database.url_string()])
        .args(["--key-secret", KEY_SECRET]);
    cmd
}

/// Run `lineage` against the app's database with a clean environment and the app's issuer.
pub fn lineage_cli(app: &TestApp, dir: &CliDir, args: &[&str]) -> Output {
    lineage_command(dir, &app.database)
        .args(["--issuer", &app.issuer])
        .args(args)
        .output()
        .expect("run lineage")
}

/// Run `lineage` on `database` with `stdin` as its input, assert success, return stdout.
pub fn cli_with_stdin(dir: &CliDir, database: &TestDatabase, args: &[&str], stdin: &str) -> String {
    let mut child = lineage_command(dir, database)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lineage");
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).expect("stdin");
    }
    let out = child.wait_with_output().expect("lineage");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A port nothing listens on now, for a server started as a process.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
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
