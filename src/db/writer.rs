//! The single SQLite writer: one thread that owns one connection and runs write jobs in order.
//!
//! SQLite has one writer at a time, and connections contending for the lock back off by sleeping
//! (seconds under load). Queueing writes for one connection avoids that; a channel instead of a
//! pool of one also saves a blocking-pool hop and a lock handoff per write.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;

use super::{DbConnection, DbPool, StoreError};

type Job = Box<dyn FnOnce(&mut DbConnection) + Send>;

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
                while let Ok(job) = queue.recv() {
                    // A panicking job must not take every later write down with it.
                    if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut conn))).is_err() {
                        tracing::error!("a database write panicked; the writer carries on");
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
        self.jobs
            .send(Box::new(move |c| {
                let _entered = span.enter();
                let _ = tx.send(f(c));
            }))
            .map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Other(anyhow::anyhow!("a database write failed")))?
    }
}
