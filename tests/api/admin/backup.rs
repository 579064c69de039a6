//! `lineage backup PATH`: an online, consistent copy of the SQLite database, taken while the
//! server rotates tokens, that a new server starts from and continues refresh chains on. And
//! `lineage check`, which tells an intact database file from a damaged one.

use std::sync::Arc;

use lineage::clock::ManualClock;

use crate::helpers::{
    Backend, CliDir, Fixture, TestDatabase, assert_oauth_error, cli_json, cli_stderr, lineage_cli,
    lineage_command, refresh_as, refresh_ok, spawn_app_on,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_backup_restores_and_continues_a_refresh_chain() {
    let Some(fx) = Fixture::new(Backend::Sqlite, |_| {}).await else {
        return;
    };
    let fx = Arc::new(fx);
    let (_, first) = fx.start().await;
    let current = fx.rotate(&first).await.refresh_token;

    // Rotations keep committing on other families while the backup runs.
    let mut chains = Vec::new();
    for _ in 0..4 {
        chains.push(fx.start().await.1);
    }
    let busy = Arc::clone(&fx);
    let load = tokio::spawn(async move {
        let mut rotations = 0;
        for _ in 0..25 {
            for token in chains.iter_mut() {
                *token = busy.rotate(token).await.refresh_token;
                rotations += 1;
            }
        }
        rotations
    });

    let backups = CliDir::new();
    let target = backups.0.join("lineage-backup.db");
    let target_arg = target.display().to_string();
    let app_ref = Arc::clone(&fx);
    let report = tokio::task::spawn_blocking(move || {
        cli_json(
            &app_ref.app,
            &CliDir::new(),
            &["backup", &target_arg, "--json"],
        )
    })
    .await
    .expect("join");
    assert!(report["bytes"].as_u64().unwrap_or(0) > 0, "{report}");
    // It holds password hashes: readable by its owner only, whatever the umask.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&target)
            .expect("backup file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
    }
    assert_eq!(load.await.expect("join"), 100, "the load ran meanwhile");

    // A new server on the copy: the chain goes on from the token issued before the backup.
    let restored = spawn_app_on(
        Arc::new(TestDatabase::Sqlite {
            path: target.clone(),
        }),
        ManualClock::starting_now(),
        |_| {},
    )
    .await;
    let next = refresh_ok(&restored, &fx.client, &current).await;
    refresh_ok(&restored, &fx.client, &next.refresh_token).await;
    // And the copy remembers what was used before it: the first token is reuse there too.
    assert_oauth_error(
        refresh_as(&restored, &fx.client, &first, None).await,
        400,
        "invalid_grant",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_refuses_an_existing_file_and_postgresql() {
    let Some(fx) = Fixture::new(Backend::Sqlite, |_| {}).await else {
        return;
    };
    let dir = CliDir::new();
    let existing = dir.0.join("taken.db");
    std::fs::write(&existing, b"keep me").expect("write");
    let out = lineage_cli(&fx.app, &dir, &["backup", &existing.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        cli_stderr(&out).contains("already exists"),
        "{}",
        cli_stderr(&out)
    );
    assert_eq!(std::fs::read(&existing).expect("read"), b"keep me");

    let Some(pg) = Fixture::new(Backend::Postgres, |_| {}).await else {
        return;
    };
    let out = lineage_cli(
        &pg.app,
        &dir,
        &["backup", &dir.0.join("pg.db").display().to_string()],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(cli_stderr(&out).contains("pg_dump"), "{}", cli_stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_a_live_database_and_names_the_damage_in_a_broken_copy() {
    let Some(fx) = Fixture::new(Backend::Sqlite, |_| {}).await else {
        return;
    };
    let (_, first) = fx.start().await;
    fx.rotate(&first).await;
    let dir = CliDir::new();
    let report = cli_json(&fx.app, &dir, &["check", "--json"]);
    assert_eq!(report, serde_json::json!({"ok": true, "problems": []}));

    // A copy whose last page (a B-tree page: a fresh copy has no free pages) is overwritten.
    let copy = dir.0.join("damaged.db");
    cli_json(
        &fx.app,
        &dir,
        &["backup", &copy.display().to_string(), "--json"],
    );
    let mut bytes = std::fs::read(&copy).expect("read the copy");
    let last = bytes.len() - 4096;
    bytes[last..last + 8].fill(0xff);
    std::fs::write(&copy, &bytes).expect("write the copy");
    let damaged = TestDatabase::Sqlite { path: copy };
    let out = lineage_command(&dir, &damaged)
        .args(["check", "--json"])
        .output()
        .expect("run lineage");
    assert_eq!(out.status.code(), Some(1), "{}", cli_stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(report["ok"], false, "{report}");
    let problems = report["problems"].as_array().map_or(0, Vec::len);
    assert!(problems > 0, "{report}");
    assert!(
        cli_stderr(&out).contains("is damaged"),
        "{}",
        cli_stderr(&out)
    );

    let Some(pg) = Fixture::new(Backend::Postgres, |_| {}).await else {
        return;
    };
    let out = lineage_cli(&pg.app, &dir, &["check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        cli_stderr(&out).contains("pg_amcheck"),
        "{}",
        cli_stderr(&out)
    );
}
