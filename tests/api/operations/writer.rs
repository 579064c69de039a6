//! The write path under failure: a write that panics is rolled back without taking later writes
//! with it, and a full SQLite writer queue answers 503 instead of growing without bound.

use std::time::Duration;

use diesel::Connection;
use futures_util::future::join3;
use futures_util::stream::{FuturesUnordered, StreamExt};
use lineage::db::models::audit_events::{self, AuditEventRow};
use lineage::db::{Database, PoolOptions, StoreError};

use super::{Gate, gate};
use crate::helpers::{Backend, Fixture, TestApp, assert_oauth_error, spawn_app};

fn event(kind: &str) -> AuditEventRow {
    AuditEventRow::new(0, kind, "written by the writer test")
}

async fn kinds_visible(db: &Database, kind: &'static str) -> usize {
    db.read(move |c| Ok::<_, lineage::db::StoreError>(audit_events::list_kind(c, kind)?.len()))
        .await
        .expect("read audit events")
}

/// A write job that holds the writer (or, on PostgreSQL, one pooled connection) until released.
fn hold_writer(db: &Database) -> (tokio::task::JoinHandle<Result<(), StoreError>>, Gate) {
    let (gate, held) = gate();
    let db = db.clone();
    let task = tokio::spawn(async move {
        db.write(move |_| {
            held.wait();
            Ok(())
        })
        .await
    });
    (task, gate)
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
    let (held, gate) = hold_writer(&app.db);
    let release = gate.started().await;
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
    let (held, gate) = hold_writer(&fx.app.db);
    let release = gate.started().await;

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

/// SQLite may roll a whole transaction back by itself (`SQLITE_FULL`, I/O errors); the writes of
/// the group must then never be reported committed when they are not, nor the other way round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_reported_committed_exactly_when_it_is() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let (held, gate) = hold_writer(&app.db);
    let release = gate.started().await;
    let (first, failing, after, ()) = futures_util::future::join4(
        app.db
            .write(|c| audit_events::insert(c, &event("writer_test_first"))),
        app.db.write(|c| {
            c.transaction::<(), StoreError, _>(|c| {
                audit_events::insert(c, &event("writer_test_failing"))?;
                // What SQLite itself does on e.g. SQLITE_FULL.
                diesel::connection::SimpleConnection::batch_execute(c, "ROLLBACK")?;
                Err(StoreError::Other(anyhow::anyhow!(
                    "database or disk is full"
                )))
            })
        }),
        app.db.write(|c| {
            c.transaction::<(), StoreError, _>(|c| {
                audit_events::insert(c, &event("writer_test_after_failure"))
            })
        }),
        async move {
            let _ = release.send(());
        },
    )
    .await;
    held.await.expect("join").expect("the holding job");
    assert!(failing.is_err());
    for (kind, reported) in [
        ("writer_test_first", &first),
        ("writer_test_after_failure", &after),
    ] {
        let stored = kinds_visible(&app.db, kind).await;
        assert_eq!(
            reported.is_ok(),
            stored == 1,
            "{kind}: reported {reported:?}, {stored} in the database"
        );
    }
    // The job queued after the failure ran again on a sound transaction and committed.
    assert!(after.is_ok(), "{after:?}");
}

/// A write job that reads before it writes must not fail because another process (the CLI, a
/// backup, a second server on the same file) committed in between: the writer takes the write
/// lock up front, so the other process waits instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_reads_first_survives_another_process_committing() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let (gate, held) = gate();
    let db = app.db.clone();
    let job = tokio::spawn(async move {
        db.write(move |c| {
            c.transaction::<(), StoreError, _>(|c| {
                audit_events::list_kind(c, "writer_test_read_first")?;
                held.wait();
                audit_events::insert(c, &event("writer_test_read_first"))
            })
        })
        .await
    });
    let go_tx = gate.started().await;
    // Another process writes now (giving up after 200 ms if it has to wait).
    let crate::helpers::TestDatabase::Sqlite { path } = app.database.as_ref() else {
        unreachable!("an SQLite test database");
    };
    let path = path.display().to_string();
    tokio::task::spawn_blocking(move || {
        use diesel::connection::SimpleConnection;
        let mut other = diesel::SqliteConnection::establish(&path).expect("open");
        other
            .batch_execute("PRAGMA busy_timeout = 200")
            .expect("pragma");
        let mut other = lineage::db::DbConnection::Sqlite(other);
        let _ = audit_events::insert(&mut other, &event("writer_test_other_process"));
    })
    .await
    .expect("join");
    let _ = go_tx.send(());
    job.await
        .expect("join")
        .expect("the job commits although another process wrote meanwhile");
    assert_eq!(kinds_visible(&app.db, "writer_test_read_first").await, 1);
}
