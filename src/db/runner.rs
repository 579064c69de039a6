//! The threads that run pooled database jobs: as many as the pool has connections, taking jobs
//! from one queue in arrival order.
//!
//! Before these, a job waited for a slot (an async semaphore with one permit per connection),
//! then an HTTP worker handed it to tokio's blocking pool, which took a connection from the pool.
//! When a job ended, its permit woke the next job's task, but that job reached a connection only
//! once an HTTP worker — busy parsing, signing and answering other requests — had run the task
//! and handed it over again. At 64 connections on PostgreSQL the connections sat idle for that
//! time. Here the thread that finishes a job takes the next one itself, and the HTTP worker only
//! queues a job and awaits its answer.
//!
//! A job that waited for a thread longer than the pool's connection timeout is given up as
//! `Unavailable` (503) and never runs, as with the semaphore before; one a thread has taken always
//! runs to its end and its caller gets its answer, so a committed write is never reported as
//! failed. A job whose caller went away before a thread took it is skipped.
//!
//! These are plain threads, outside any tokio runtime: a job must not call `tokio::spawn` or
//! `Handle::current` (none does; diesel work is all they run).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use super::metrics::DbMetrics;
use super::{DbConnection, DbPool, StoreError, on_pooled_since};

/// A job's work on the thread that took it: run on a pooled connection and send the answer.
type Work = Box<dyn FnOnce(&DbPool, &DbMetrics) + Send>;

/// A queued job.
struct Job {
    /// Set by whichever comes first: a thread taking the job, or its caller giving up on it.
    taken: Arc<AtomicBool>,
    run: Work,
}

/// The handle `Database` clones share; the threads end when it is dropped.
pub(crate) struct Runner {
    jobs: mpsc::Sender<Job>,
    /// How long a job may wait for a thread before the database counts as unavailable.
    timeout: Duration,
}

impl Runner {
    /// One thread per connection the pool may hold.
    pub fn start(
        pool: &DbPool,
        metrics: &Arc<DbMetrics>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let (pool, metrics) = (pool.clone(), Arc::clone(metrics));
        let jobs = crate::job_threads::start(
            "db",
            pool.max_size() as usize,
            || {},
            move |job: Job| {
                if job.taken.swap(true, Ordering::AcqRel) {
                    return; // its caller gave up on it
                }
                // A panicking job drops its answer's sender (its caller sees an error) and its
                // connection, which the pool then discards.
                let ran = std::panic::catch_unwind(AssertUnwindSafe(|| (job.run)(&pool, &metrics)));
                if ran.is_err() {
                    tracing::error!("a database job panicked");
                }
            },
        )?;
        Ok(Self { jobs, timeout })
    }

    /// Queue `f` for the next free thread and await its result.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let queued = Instant::now();
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let taken = Arc::new(AtomicBool::new(false));
        let span = tracing::Span::current();
        let job = Job {
            taken: Arc::clone(&taken),
            run: Box::new(move |pool, metrics| {
                if tx.is_closed() {
                    return; // its caller went away
                }
                let _entered = span.enter();
                let _ = tx.send(on_pooled_since(queued, pool, metrics, f));
            }),
        };
        let failed = || StoreError::Other(anyhow::anyhow!("a database job failed"));
        self.jobs.send(job).map_err(|_| failed())?;
        match tokio::time::timeout(self.timeout, &mut rx).await {
            Ok(answer) => answer.unwrap_or_else(|_| Err(failed().into())),
            Err(_) => {
                if taken.swap(true, Ordering::AcqRel) {
                    // A thread took it in time: it runs to its end, and its answer is the answer.
                    rx.await.unwrap_or_else(|_| Err(failed().into()))
                } else {
                    let reason = "no database connection became free";
                    Err(StoreError::Unavailable(reason.into()).into())
                }
            }
        }
    }
}
