//! `lineage serve`: configuration errors, refusals at start, the demo, exit behaviour.

use super::*;

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
