//! Jobs on pooled connections (`Database::read`, and every PostgreSQL write): a job that cannot get
//! a connection within the pool's timeout is refused as unavailable and never runs later; a job
//! that got one runs to its end and its caller gets its answer, however long it takes; a job whose
//! caller went away before it started does not run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use lineage::db::{Database, PoolOptions, StoreError};

use crate::helpers::{Backend, spawn_app};

const TIMEOUT: Duration = Duration::from_millis(300);

/// A second handle on the test app's database with one connection and a short timeout.
async fn one_connection(backend: Backend) -> Option<(crate::helpers::TestApp, Database)> {
    let app = spawn_app(backend).await?;
    let url = app.database.url();
    let options = PoolOptions {
        max_size: 1,
        connection_timeout: TIMEOUT,
        ..PoolOptions::default()
    };
    let db = tokio::task::spawn_blocking(move || Database::open(&url, &options))
        .await
        .expect("join")
        .expect("open the database");
    Some((app, db))
}

/// A job holding the only connection until released; resolves once it has started.
async fn hold(
    db: &Database,
) -> (
    tokio::task::JoinHandle<Result<&'static str, StoreError>>,
    std::sync::mpsc::Sender<()>,
) {
    let (gate, held) = super::gate();
    let db = db.clone();
    let task = tokio::spawn(async move {
        db.read(move |_| {
            held.wait();
            Ok("held")
        })
        .await
    });
    (task, gate.started().await)
}

/// A job that records that it ran.
fn marker(
    ran: &Arc<AtomicBool>,
) -> impl FnOnce(&mut lineage::db::DbConnection) -> Result<(), StoreError> + use<> {
    let ran = Arc::clone(ran);
    move |_| {
        ran.store(true, Ordering::SeqCst);
        Ok(())
    }
}

async fn a_job_that_waited_too_long_is_unavailable_and_never_runs(backend: Backend) {
    let Some((_app, db)) = one_connection(backend).await else {
        return;
    };
    let (held, release) = hold(&db).await;
    let ran = Arc::new(AtomicBool::new(false));
    let refused = db.read(marker(&ran)).await;
    assert!(
        matches!(refused, Err(ref e) if e.is_unavailable()),
        "{refused:?}"
    );
    let _ = release.send(());
    assert_eq!(held.await.expect("join").expect("the holding job"), "held");
    // Jobs run in arrival order: once this one has run, the refused one was passed over.
    db.read(|_| Ok::<_, StoreError>(()))
        .await
        .expect("free again");
    assert!(!ran.load(Ordering::SeqCst), "a refused job ran later");
}

async fn a_started_job_keeps_its_answer_past_the_timeout(backend: Backend) {
    let Some((_app, db)) = one_connection(backend).await else {
        return;
    };
    let (held, release) = hold(&db).await;
    tokio::time::sleep(TIMEOUT * 3).await;
    let _ = release.send(());
    assert_eq!(
        held.await.expect("join").expect("answered, not refused"),
        "held"
    );
}

async fn a_job_whose_caller_left_before_it_started_does_not_run(backend: Backend) {
    let Some((_app, db)) = one_connection(backend).await else {
        return;
    };
    let (held, release) = hold(&db).await;
    let ran = Arc::new(AtomicBool::new(false));
    // Polled once (so queued), then dropped.
    let gave_up = db.read(marker(&ran)).now_or_never();
    assert!(gave_up.is_none(), "still waiting when its caller left");
    let _ = release.send(());
    held.await.expect("join").expect("the holding job");
    db.read(|_| Ok::<_, StoreError>(()))
        .await
        .expect("free again");
    assert!(!ran.load(Ordering::SeqCst), "an abandoned job ran");
}

both_backends!(
    a_job_that_waited_too_long_is_unavailable_and_never_runs,
    a_started_job_keeps_its_answer_past_the_timeout,
    a_job_whose_caller_left_before_it_started_does_not_run,
);
