//! The single SQLite writer: one thread that owns one connection and runs write jobs in order.
//!
//! SQLite has one writer at a time, and connections contending for the lock back off by sleeping
//! (seconds under load). Queueing writes for one connection avoids that; a channel instead of a
//! pool of one also saves a blocking-pool hop and a lock handoff per write.
//!
//! Group commit: jobs that queue up while one runs are run together in one transaction (a job's
//! own `transaction` becomes a savepoint inside it), and their results are released only after
//! the commit. One commit then writes each touched page once for the whole group.
//!
//! The queue is bounded: when it is full a write fails at once as `Unavailable` (503) instead of
//! piling up memory behind a writer that cannot keep up.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, TrySendError};
use std::time::{Duration, Instant};

use diesel::Connection;
use diesel::connection::{SimpleConnection, TransactionManager};

use super::metrics::DbMetrics;
use super::{DbConnection, StoreError};

/// At most this many jobs share one commit. Not more: the jobs of a group get their answers all at
/// once, after its commit, and while the HTTP workers sign and send a group's responses the writer
/// should already be committing the next one. At 64 connections a cap of 16 instead of 64 gave
/// ~13 % more rotations and a lower p99 (BENCHMARKS.md); 8 and 32 measured within noise of 16.
pub(crate) const MAX_GROUP: usize = 16;

/// How often the writer finishes a checkpoint itself (see `close_wal`).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(20);

/// WAL frames not yet in the database file (as the background checkpointer last saw them) above
/// which the writer leaves the copying to that checkpointer instead of finishing a checkpoint
/// itself: 8 MiB of 4 KiB pages. Under steady load the backlog stays in the hundreds; it only
/// grows past this while a long reader (`lineage backup`, `lineage check`) holds an old snapshot,
/// and copying all of that inside the writer stalled every write for over half a second. Should
/// the checkpointer still be behind after `WRITER_CHECKPOINT_AT_LEAST`, the writer checkpoints
/// anyway: writes then wait for the copy rather than letting the WAL grow without bound.
const WRITER_CHECKPOINT_MAX_BACKLOG: u32 = 2048;
const WRITER_CHECKPOINT_AT_LEAST: Duration = Duration::from_secs(5);

/// Delivers a job's result once the fate of its transaction is known.
type Deliver = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A write job: given the connection (or why there is none), it runs and returns its delivery.
type Job = Box<dyn FnOnce(Result<&mut DbConnection, StoreError>) -> Deliver + Send>;

enum Message {
    Job(Job),
    /// Reply once every job queued before has committed, after a final checkpoint.
    Flush(tokio::sync::oneshot::Sender<()>),
    /// SQL run now and again on every replacement connection (e.g. checkpoint pragmas).
    Setup(String, tokio::sync::oneshot::Sender<Result<(), StoreError>>),
}

type TxManager = <DbConnection as Connection>::TransactionManager;

#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::SyncSender<Message>,
    /// WAL frames not yet checkpointed, as the background checkpointer last saw them (0 while
    /// there is none).
    backlog: Arc<AtomicU32>,
    /// Jobs sent and not yet taken by the writer: one atomic add per job here, one subtraction
    /// per group on the writer thread.
    queued: prometheus_client::metrics::gauge::Gauge,
}

/// The background checkpointer's report to the writer: WAL frames not yet in the database file.
pub struct Backlog(Arc<AtomicU32>);

impl Backlog {
    pub fn report(&self, frames: u32) {
        self.0.store(frames, Ordering::Relaxed);
    }
}

/// The writer thread's connection: opened on demand, replaced after a job panics.
struct WriterConnection {
    open: Box<dyn Fn() -> Result<DbConnection, StoreError> + Send>,
    conn: Option<DbConnection>,
    setup: Vec<String>,
}

impl WriterConnection {
    fn get(&mut self) -> Result<&mut DbConnection, StoreError> {
        if self.conn.is_none() {
            let mut fresh = (self.open)()?;
            for sql in &self.setup {
                fresh.batch_execute(sql)?;
            }
            self.conn = Some(fresh);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| StoreError::Unavailable("the database writer has no connection".into()))
    }

    /// After a panic, diesel's transaction depth no longer matches the database: every later
    /// "commit" would only release a savepoint of a transaction that never commits. Roll back
    /// what is open and start over on a new connection.
    fn discard(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            while let Ok(Some(_)) =
                TxManager::transaction_manager_status_mut(&mut conn).transaction_depth()
            {
                if TxManager::rollback_transaction(&mut conn).is_err() {
                    break;
                }
            }
            // Closing the connection rolls back whatever is still open.
            drop(conn);
        }
    }
}

impl Writer {
    /// Start the writer thread; `open` makes a configured connection (now and after a panic).
    /// The thread ends when the last `Writer` handle is dropped.
    pub fn start(
        open: Box<dyn Fn() -> Result<DbConnection, StoreError> + Send>,
        queue: usize,
        metrics: Arc<DbMetrics>,
    ) -> anyhow::Result<Self> {
        let mut conn = WriterConnection {
            conn: Some(open()?),
            open,
            setup: Vec::new(),
        };
        let (jobs, inbox) = mpsc::sync_channel::<Message>(queue.max(1));
        let queued = metrics.writer_queue_depth.clone();
        let backlog = Arc::new(AtomicU32::new(0));
        let seen = Arc::clone(&backlog);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                let mut last_checkpoint = Instant::now();
                while let Ok(first) = inbox.recv() {
                    let mut group = Vec::new();
                    let mut next = Some(first);
                    while let Some(message) = next.take() {
                        match message {
                            Message::Job(job) => group.push(job),
                            Message::Setup(sql, reply) => {
                                commit_group(&mut conn, std::mem::take(&mut group), &metrics);
                                let _ = reply.send(setup(&mut conn, sql));
                            }
                            Message::Flush(reply) => {
                                commit_group(&mut conn, std::mem::take(&mut group), &metrics);
                                checkpoint(&mut conn, "TRUNCATE");
                                let _ = reply.send(());
                            }
                        }
                        if group.len() < MAX_GROUP {
                            next = inbox.try_recv().ok();
                        }
                    }
                    commit_group(&mut conn, group, &metrics);
                    let since = last_checkpoint.elapsed();
                    if since >= CHECKPOINT_EVERY
                        && (seen.load(Ordering::Relaxed) <= WRITER_CHECKPOINT_MAX_BACKLOG
                            || since >= WRITER_CHECKPOINT_AT_LEAST)
                    {
                        close_wal(&mut conn);
                        last_checkpoint = Instant::now();
                    }
                }
            })?;
        Ok(Self {
            jobs,
            backlog,
            queued,
        })
    }

    /// Where the background checkpointer reports what it found still to copy (without holding
    /// the queue, which would keep the writer thread alive).
    pub fn backlog(&self) -> Backlog {
        Backlog(Arc::clone(&self.backlog))
    }

    fn send(&self, message: Message) -> Result<(), StoreError> {
        self.jobs.try_send(message).map_err(|e| match e {
            TrySendError::Full(_) => {
                StoreError::Unavailable("the database writer's queue is full".into())
            }
            TrySendError::Disconnected(_) => {
                StoreError::Unavailable("the database writer has stopped".into())
            }
        })
    }

    /// A job is counted before it is sent, so the writer never takes one it does not know of.
    fn send_job(&self, job: Job) -> Result<(), StoreError> {
        self.queued.inc();
        let sent = self.send(Message::Job(job));
        if sent.is_err() {
            self.queued.dec();
        }
        sent
    }

    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let span = tracing::Span::current();
        let job: Job = Box::new(move |conn| {
            let result = match conn {
                Ok(c) => {
                    let _entered = span.enter();
                    f(c)
                }
                Err(e) => Err(e.into()),
            };
            Box::new(move |committed: Result<(), String>| {
                let _ = tx.send(match committed {
                    Ok(()) => result,
                    Err(e) => Err(StoreError::Other(anyhow::anyhow!(
                        "the write was not committed: {e}"
                    ))
                    .into()),
                });
            })
        });
        self.send_job(job)?;
        // A job that panicked drops its sender without an answer.
        rx.await.unwrap_or_else(|_| {
            Err(StoreError::Other(anyhow::anyhow!("a database write failed")).into())
        })
    }

    /// Wait until every write queued so far has committed, then checkpoint the WAL into the
    /// database file (at shutdown: the file alone is then complete).
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Blocking send: a flush must not be refused because the queue is momentarily full.
        let jobs = self.jobs.clone();
        tokio::task::spawn_blocking(move || jobs.send(Message::Flush(tx)))
            .await
            .map_err(|e| StoreError::Other(anyhow::anyhow!("flush task failed: {e}")))?
            .map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))
    }

    /// Run `sql` on the writer's connection now and on every connection that replaces it.
    pub async fn configure(&self, sql: &str) -> Result<(), StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Message::Setup(sql.to_string(), tx))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?
    }
}

fn setup(conn: &mut WriterConnection, sql: String) -> Result<(), StoreError> {
    conn.get()?.batch_execute(&sql)?;
    conn.setup.push(sql);
    Ok(())
}

/// Run one job; `None` if it panicked.
fn run_one(conn: &mut DbConnection, job: Job) -> Option<Deliver> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| job(Ok(conn)))) {
        Ok(deliver) => Some(deliver),
        Err(_) => {
            tracing::error!(
                "a database write panicked; it was rolled back and the writer reconnects"
            );
            None
        }
    }
}

/// Take a group off the queue (for the queue-depth gauge) and run it.
fn commit_group(wc: &mut WriterConnection, group: Vec<Job>, metrics: &DbMetrics) {
    if group.is_empty() {
        return;
    }
    let size = group.len() as u64;
    metrics
        .writer_queue_depth
        .dec_by(i64::try_from(size).unwrap_or(i64::MAX));
    metrics.writer_group_size.observe(size);
    run_group(wc, group);
}

fn run_group(wc: &mut WriterConnection, group: Vec<Job>) {
    let mut pending = group;
    while !pending.is_empty() {
        let conn = match wc.get() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "the database writer cannot connect");
                for job in pending {
                    job(Err(StoreError::Unavailable(e.to_string())))(Ok(()));
                }
                return;
            }
        };
        match run_together(conn, pending) {
            Ok(()) => return,
            Err(not_run) => {
                // The transaction was rolled back; the jobs it had not reached run again.
                wc.discard();
                pending = not_run;
            }
        }
    }
}

/// `BEGIN IMMEDIATE`: the write lock is taken at the start, so a job that reads before it writes
/// cannot find its snapshot outdated by another process's commit (`SQLITE_BUSY_SNAPSHOT`, which
/// `busy_timeout` does not wait out) — another process, e.g. the CLI, just makes it wait.
pub(super) fn begin(conn: &mut DbConnection) -> diesel::QueryResult<()> {
    match conn {
        DbConnection::Sqlite(c) => {
            diesel::connection::AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
        }
        other => TxManager::begin_transaction(other),
    }
}

pub(super) fn commit(conn: &mut DbConnection) -> diesel::QueryResult<()> {
    TxManager::commit_transaction(conn)
}

pub(super) fn rollback(conn: &mut DbConnection) {
    if let Err(e) = TxManager::rollback_transaction(conn) {
        tracing::warn!(error = %e, "rolling back a write transaction failed");
    }
}

/// Whether the connection is still inside the writer's own transaction and nothing deeper: a job
/// that panicked, or an error after which SQLite rolled the whole transaction back by itself
/// (`SQLITE_FULL`, I/O errors), leaves it elsewhere, and later jobs would then run outside it.
fn still_in_group(conn: &mut DbConnection) -> bool {
    TxManager::transaction_manager_status_mut(conn)
        .transaction_depth()
        .is_ok_and(|d| d.map(u32::from) == Some(1))
}

/// Run jobs in one transaction (a group of one included), committed once. If a job panics or
/// leaves the transaction broken, everything is rolled back, the jobs that ran are told their
/// writes were not committed, and the jobs not yet run are handed back (`Err`: the connection
/// must be replaced).
fn run_together(conn: &mut DbConnection, group: Vec<Job>) -> Result<(), Vec<Job>> {
    let mut delivers = Vec::with_capacity(group.len());
    let mut jobs = group.into_iter();
    if let Err(e) = begin(conn) {
        tracing::error!(error = %e, "could not begin a write transaction; reconnecting");
        let why = e.to_string();
        for job in jobs {
            job(Err(StoreError::Unavailable(why.clone())))(Ok(()));
        }
        return Err(Vec::new());
    }
    let mut broken = false;
    for job in jobs.by_ref() {
        match run_one(conn, job) {
            Some(deliver) => delivers.push(deliver),
            // Whatever it wrote before panicking must not commit with the others.
            None => broken = true,
        }
        if broken || !still_in_group(conn) {
            broken = true;
            break;
        }
    }
    if broken {
        for deliver in delivers {
            deliver(Err(
                "the transaction failed and was rolled back; not committed".into(),
            ));
        }
        return Err(jobs.collect());
    }
    let outcome = TxManager::commit_transaction(conn).map_err(|e| {
        tracing::error!(error = %e, "a group commit failed; its writes were rolled back");
        let _ = TxManager::rollback_transaction(conn);
        e.to_string()
    });
    for deliver in delivers {
        deliver(outcome.clone());
    }
    Ok(())
}

/// A background connection copies WAL frames into the database file as they come, but while
/// writes keep arriving its checkpoint never catches up with the end of the WAL, and SQLite only
/// starts the WAL over after a complete checkpoint: under steady load the WAL would grow without
/// bound. Between two groups no frame is being appended, so a checkpoint from the writer itself
/// completes (cheaply: the background one has done most of the copying) and the next commit
/// rewinds the WAL.
fn close_wal(wc: &mut WriterConnection) {
    checkpoint(wc, "PASSIVE");
}

fn checkpoint(wc: &mut WriterConnection, mode: &str) {
    if let Some(conn) = wc.conn.as_mut()
        && let Err(e) = conn.batch_execute(&format!("PRAGMA wal_checkpoint({mode})"))
    {
        tracing::debug!(error = %e, mode, "WAL checkpoint from the writer failed");
    }
}
