//! The write path under failure: a write that panics is rolled back without taking later writes
//! with it, and a full SQLite writer queue answers 503 instead of growing without bound.

use std::time::Duration;

use diesel::Connection;
use futures_util::future::join3;
use futures_util::stream::{FuturesUnordered, StreamExt};
use lineage::db::models::audit_events::{self, AuditEventRow};
use lineage::db::{Database, PoolOptions, StoreError};

use crate::helpers::{Backend, TestApp, assert_oauth_error, spawn_app};
use crate::refresh_helpers::Fixture;

fn event(kind: &str) -> AuditEventRow {
    AuditEventRow::new(0, kind, "written by the writer test")
}

async fn kinds_visible(db: &Database, kind: &'static str) -> usize {
    db.run(move |c| Ok(audit_events::list_kind(c, kind)?.len()))
        .await
        .expect("read audit events")
}

/// A write job that holds the writer (or, on PostgreSQL, one pooled connection) until released.
fn hold_writer(
    db: &Database,
) -> (
    tokio::task::JoinHandle<Result<(), StoreError>>,
    std::sync::mpsc::Sender<()>,
    std::sync::mpsc::Receiver<()>,
) {
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let db = db.clone();
    let held = tokio::spawn(async move {
        db.write(move |_| {
            let _ = started_tx.send(());
            let _ = release_rx.recv_timeout(Duration::from_secs(30));
            Ok(())
        })
        .await
    });
    (held, release_tx, started_rx)
}

async fn wait_started(started: std::sync::mpsc::Receiver<()>) {
    tokio::task::spawn_blocking(move || started.recv_timeout(Duration::from_secs(10)))
        .await
        .expect("join")
        .expect("the holding job started");
}

async fn reopened_sees(app: &TestApp, kind: &'static str) -> usize {
    let url = app.database.url();
    let db = tokio::task::spawn_blocking(move || Database::open(&url, &PoolOptions::default()))
        .await
        .expect("join")
        .expect("reopen the database");
    kinds_visible(&db, kind).await
}

async fn a_panicking_write_is_rolled_back_and_later_writes_commit(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let failed = app
        .db
        .write(|c| {
            c.transaction::<(), StoreError, _>(|c| {
                audit_events::insert(c, &event("writer_test_panicked"))?;
                panic!("a bug inside a write job");
            })
        })
        .await;
    assert!(failed.is_err(), "a panicking write reports an error");

    app.db
        .write(|c| audit_events::insert(c, &event("writer_test_after")))
        .await
        .expect("the next write succeeds");
    assert_eq!(kinds_visible(&app.db, "writer_test_after").await, 1);
    assert_eq!(kinds_visible(&app.db, "writer_test_panicked").await, 0);
    assert_eq!(reopened_sees(&app, "writer_test_after").await, 1);
}

async fn a_panic_inside_a_group_commit_spares_the_writes_after_it(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (held, release, started) = hold_writer(&app.db);
    wait_started(started).await;
    // Both queue behind the holding job, so the writer runs them as one group; `join3` polls the
    // panicking job first, so it is queued first.
    let (panicked, after, ()) = join3(
        app.db.write(|c| {
            c.transaction::<(), StoreError, _>(|c| {
                audit_events::insert(c, &event("writer_test_group_panicked"))?;
                panic!("a bug inside a grouped write job");
            })
        }),
        app.db
            .write(|c| audit_events::insert(c, &event("writer_test_group_after"))),
        async move {
            let _ = release.send(());
        },
    )
    .await;
    held.await.expect("join").expect("the holding job");
    assert!(panicked.is_err());
    after.expect("the write queued after the panicking one commits");
    assert_eq!(kinds_visible(&app.db, "writer_test_group_after").await, 1);
    assert_eq!(
        kinds_visible(&app.db, "writer_test_group_panicked").await,
        0
    );
    assert_eq!(reopened_sees(&app, "writer_test_group_after").await, 1);
}

both_backends!(
    a_panicking_write_is_rolled_back_and_later_writes_commit,
    a_panic_inside_a_group_commit_spares_the_writes_after_it,
);

/// SQLite only: PostgreSQL writes use the pool, whose bound is its size and checkout timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_writer_queue_answers_503_temporarily_unavailable() {
    let Some(fx) = Fixture::new(Backend::Sqlite, |s| s.writer_queue = 2).await else {
        return;
    };
    let mut tokens = Vec::new();
    for _ in 0..6 {
        tokens.push(fx.start().await.1);
    }
    let (held, release, started) = hold_writer(&fx.app.db);
    wait_started(started).await;

    let mut pending: FuturesUnordered<_> = tokens.iter().map(|t| fx.refresh(t)).collect();
    // Two refreshes wait in the queue; the other four are refused at once.
    let mut refused = 0;
    while refused < 4 {
        let resp = tokio::time::timeout(Duration::from_secs(10), pending.next())
            .await
            .expect("a refresh beyond the queue's bound is answered at once")
            .expect("a response");
        assert!(resp.headers().contains_key("retry-after"));
        assert_oauth_error(resp, 503, "temporarily_unavailable").await;
        refused += 1;
    }
    let _ = release.send(());
    while let Some(resp) = pending.next().await {
        assert_eq!(resp.status(), 200, "the queued refreshes complete");
    }
    held.await.expect("join").expect("the holding job");
}
