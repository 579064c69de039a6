//! The single SQLite writer: one thread that owns one connection and runs write jobs in order.
//!
//! SQLite has one writer at a time, and connections contending for the lock back off by sleeping
//! (seconds under load). Queueing writes for one connection avoids that; a channel instead of a
//! pool of one also saves a blocking-pool hop and a lock handoff per write.
//!
//! Group commit: jobs that queue up while one runs are run together in one transaction, each in
//! its own savepoint (diesel nests `transaction` that way), and their results are released only
//! after the commit. One commit then writes each touched page once for the whole group.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use diesel::Connection;
use diesel::connection::SimpleConnection;

use super::{DbConnection, DbPool, StoreError};

/// At most this many jobs share one commit.
const MAX_GROUP: usize = 64;

/// How often the writer finishes a checkpoint itself (see `close_wal`).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(20);

/// Delivers a job's result once the fate of its transaction is known.
type Deliver = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&mut DbConnection) -> Deliver + Send>;

#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Take the one connection of `pool` (already configured) into a new thread. The thread ends
    /// when the last `Writer` handle is dropped.
    pub fn start(pool: DbPool) -> anyhow::Result<Self> {
        let mut conn = pool.get()?;
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                let mut last_checkpoint = Instant::now();
                while let Ok(first) = queue.recv() {
                    let mut group = vec![first];
                    while group.len() < MAX_GROUP {
                        match queue.try_recv() {
                            Ok(job) => group.push(job),
                            Err(_) => break,
                        }
                    }
                    run_group(&mut conn, group);
                    if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
                        close_wal(&mut conn);
                        last_checkpoint = Instant::now();
                    }
                }
            })?;
        Ok(Self { jobs })
    }

    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let span = tracing::Span::current();
        let job: Job = Box::new(move |c| {
            let result = {
                let _entered = span.enter();
                f(c)
            };
            Box::new(move |committed: Result<(), String>| {
                let _ = tx.send(match committed {
                    Ok(()) => result,
                    Err(e) => Err(StoreError::Other(anyhow::anyhow!(
                        "the write was not committed: {e}"
                    ))),
                });
            })
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Other(anyhow::anyhow!("a database write failed")))?
    }
}

fn run_one(conn: &mut DbConnection, job: Job) -> Option<Deliver> {
    // A panicking job must not take every later write down with it.
    match std::panic::catch_unwind(AssertUnwindSafe(|| job(conn))) {
        Ok(deliver) => Some(deliver),
        Err(_) => {
            tracing::error!("a database write panicked; the writer carries on");
            None
        }
    }
}

fn run_group(conn: &mut DbConnection, group: Vec<Job>) {
    if group.len() == 1 {
        // Alone: the job's own transaction (if any) is the commit.
        for job in group {
            if let Some(deliver) = run_one(conn, job) {
                deliver(Ok(()));
            }
        }
        return;
    }
    let mut delivers = Vec::with_capacity(group.len());
    let outcome = conn.transaction::<_, diesel::result::Error, _>(|c| {
        for job in group {
            delivers.extend(run_one(c, job));
        }
        Ok(())
    });
    let outcome = outcome.map_err(|e| {
        tracing::error!(error = %e, "a group commit failed; its writes were rolled back");
        e.to_string()
    });
    for deliver in delivers {
        deliver(outcome.clone());
    }
}

/// A background connection copies WAL frames into the database file as they come, but while
/// writes keep arriving its checkpoint never catches up with the end of the WAL, and SQLite only
/// starts the WAL over after a complete checkpoint: under steady load the WAL would grow without
/// bound. Between two groups no frame is being appended, so a checkpoint from the writer itself
/// completes (cheaply: the background one has done most of the copying) and the next commit
/// rewinds the WAL.
fn close_wal(conn: &mut DbConnection) {
    if let Err(e) = conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE)") {
        tracing::debug!(error = %e, "WAL checkpoint from the writer failed; retrying later");
    }
}
