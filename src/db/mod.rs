//! Storage: one diesel connection type over SQLite and PostgreSQL, chosen by URL, behind an r2d2
//! pool.

/// Run a diesel query on the backend's own connection (`|c|` is a `PgConnection` in one arm and a
/// `SqliteConnection` in the other; the body is compiled for each). Through `DbConnection`,
/// diesel's multi-backend connection, every execution serializes the whole query to SQL text —
/// once to ask whether it may be cached and again around its binds — even when its prepared
/// statement is cached. On the concrete connection a query with a static id is found in the
/// statement cache by its type and only its binds are collected. For the statements of the hot
/// paths (rotation on the SQLite writer, where that text building took more time than SQLite).
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConnection::Postgresql($c) => $body,
            $crate::db::DbConnection::Sqlite($c) => $body,
        }
    };
}
pub(crate) use on_backend;

pub mod backup;
pub mod metrics;
pub mod models;
pub mod prepared;
mod runner;
pub mod schema;
#[cfg(target_os = "linux")]
mod writeback;
mod writer;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

/// The migrations are portable SQL, so one folder serves both backends.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

pub type DbPool = Pool<ConnectionManager<DbConnection>>;
pub type DbPooled = PooledConnection<ConnectionManager<DbConnection>>;

/// Which backend a database URL names. `sqlite://path`, `sqlite:path` or a plain path is SQLite;
/// `postgres://` / `postgresql://` is PostgreSQL.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite { path: String },
    Postgres { url: String },
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("database URL is empty".into());
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            url::Url::parse(raw).map_err(|e| format!("database URL is not a valid URL: {e}"))?;
            return Ok(Self::Postgres {
                url: raw.to_string(),
            });
        }
        if let Some(path) = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err("sqlite URL has no path (use sqlite://lineage.db)".into());
            }
            return Ok(Self::Sqlite {
                path: path.to_string(),
            });
        }
        if let Some((scheme, _)) = raw.split_once("://") {
            return Err(format!(
                "unsupported database scheme `{scheme}` (use sqlite://PATH or postgres://...)"
            ));
        }
        Ok(Self::Sqlite {
            path: raw.to_string(),
        })
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, Self::Sqlite { .. })
    }

    fn connection_string(&self) -> &str {
        match self {
            Self::Sqlite { path } => path,
            Self::Postgres { url } => url,
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    // A PostgreSQL URL may carry a password: show only what is safe.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl DatabaseUrl {
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite { path } => format!("sqlite://{path}"),
            Self::Postgres { url } => match url::Url::parse(url) {
                Ok(mut u) => {
                    if u.password().is_some() {
                        let _ = u.set_password(Some("***"));
                    }
                    u.to_string()
                }
                Err(_) => "postgres://…".to_string(),
            },
        }
    }
}

/// SQLite pragmas every pooled connection needs. WAL lets readers run beside the writer;
/// `synchronous=NORMAL` keeps commits durable across a process crash (not a power cut) — see
/// README.
/// Token hashes are random keys, so index pages are touched at random: a 16 MiB page cache and
/// reads through mmap keep a large table from turning every lookup into a `pread`.
#[derive(Debug, Clone, Copy)]
struct SqlitePragmas;

impl CustomizeConnection<DbConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut DbConnection) -> Result<(), diesel::r2d2::Error> {
        apply_sqlite_pragmas(conn).map_err(diesel::r2d2::Error::QueryError)
    }
}

fn apply_sqlite_pragmas(conn: &mut DbConnection) -> diesel::QueryResult<()> {
    if let DbConnection::Sqlite(c) = conn {
        c.batch_execute(
            "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
             PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
             PRAGMA cache_size = -16384; PRAGMA mmap_size = 268435456;",
        )?;
    }
    Ok(())
}

/// One configured SQLite connection outside any pool (the writer thread's own).
fn open_sqlite(path: &str) -> Result<DbConnection, StoreError> {
    let conn = diesel::SqliteConnection::establish(path)
        .map_err(|e| StoreError::Unavailable(format!("cannot open the SQLite database: {e}")))?;
    let mut conn = DbConnection::Sqlite(conn);
    apply_sqlite_pragmas(&mut conn)?;
    Ok(conn)
}

/// What `PRAGMA wal_checkpoint` reports: frames in the WAL and how many of them are in the
/// database file.
#[derive(diesel::QueryableByName)]
struct WalCheckpoint {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    log: i32,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    checkpointed: i32,
}

#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub max_size: u32,
    pub connection_timeout: Duration,
    /// SQLite: write jobs that may wait for the writer thread; more are refused (503).
    pub writer_queue: usize,
}

/// The default bound of the SQLite writer's queue: far above what one writer drains between two
/// commits at full load (a group is at most 16 jobs), small enough to stay a few MiB.
pub const DEFAULT_WRITER_QUEUE: usize = 4096;

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 8,
            connection_timeout: Duration::from_secs(3),
            writer_queue: DEFAULT_WRITER_QUEUE,
        }
    }
}

/// Open the pool and prove the database answers; an unreachable database is an error here,
/// not a hang.
pub fn connect(url: &DatabaseUrl, options: &PoolOptions) -> anyhow::Result<DbPool> {
    use anyhow::Context;
    if let DatabaseUrl::Sqlite { path } = url
        && let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
        && !parent.exists()
    {
        anyhow::bail!(
            "the directory for the SQLite database does not exist: {}",
            parent.display()
        );
    }
    let manager = ConnectionManager::<DbConnection>::new(url.connection_string());
    let pool = Pool::builder()
        .max_size(options.max_size)
        .min_idle(Some(1))
        .connection_timeout(options.connection_timeout)
        // No `SELECT 1` at every checkout: a round trip per job that does nothing. A connection
        // that died under us is found when a job fails on it (`on_pooled`) and replaced then.
        .test_on_check_out(false)
        .connection_customizer(Box::new(SqlitePragmas))
        .build(manager)
        .with_context(|| format!("cannot connect to the database at {}", url.redacted()))?;
    let mut conn = pool
        .get()
        .with_context(|| format!("cannot connect to the database at {}", url.redacted()))?;
    conn.batch_execute("SELECT 1")
        .context("the database does not answer")?;
    Ok(pool)
}

/// Apply every pending embedded migration; returns the versions applied.
pub fn run_migrations(conn: &mut DbConnection) -> anyhow::Result<Vec<String>> {
    let applied = match conn {
        DbConnection::Postgresql(c) => {
            // Nodes starting together on one database must not migrate at the same time.
            diesel::sql_query("SELECT pg_advisory_lock(7210359170461)").execute(c)?;
            let applied = c
                .run_pending_migrations(MIGRATIONS)
                .map(|v| v.into_iter().map(|m| m.to_string()).collect::<Vec<_>>());
            diesel::sql_query("SELECT pg_advisory_unlock(7210359170461)").execute(c)?;
            applied
        }
        DbConnection::Sqlite(c) => c
            .run_pending_migrations(MIGRATIONS)
            .map(|v| v.into_iter().map(|m| m.to_string()).collect::<Vec<_>>()),
    }
    .map_err(|e| anyhow::anyhow!("database migration failed: {e}"))?;
    Ok(applied)
}

/// Roll back the most recent migration (used by tests of the down migrations and by operators).
pub fn revert_last_migration(conn: &mut DbConnection) -> anyhow::Result<String> {
    let reverted = match conn {
        DbConnection::Postgresql(c) => c.revert_last_migration(MIGRATIONS),
        DbConnection::Sqlite(c) => c.revert_last_migration(MIGRATIONS),
    }
    .map_err(|e| anyhow::anyhow!("reverting the migration failed: {e}"))?;
    Ok(reverted.to_string())
}

/// Errors of a storage call, split by what the caller can do about them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached right now: answer 503 and let the pool recover.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    #[error("{0}")]
    Other(#[from] anyhow::Error),
}

impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

/// Run an insert that may collide with a concurrent one on a unique key; `Ok(false)` when the row
/// was already there. The insert runs in its own savepoint, so a collision does not abort the
/// caller's transaction (PostgreSQL would otherwise refuse every later statement in it).
pub fn insert_if_absent(
    conn: &mut DbConnection,
    insert: impl FnOnce(&mut DbConnection) -> diesel::QueryResult<usize>,
) -> Result<bool, StoreError> {
    use diesel::result::{DatabaseErrorKind, Error};
    match conn.transaction(insert) {
        Ok(n) => Ok(n > 0),
        Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

impl StoreError {
    /// Whether the database could not be reached (503, the pool recovers) rather than refused
    /// the query (500). Told by diesel's error kinds, which it derives from SQLSTATE codes and
    /// the connection's state (a connection libpq reports bad is `ClosedConnection`).
    pub fn is_unavailable(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        matches!(
            self,
            StoreError::Unavailable(_)
                | StoreError::Query(Error::DatabaseError(
                    DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                    _
                ))
        )
    }
}

/// The database handle the server and CLI share: a pool plus the knowledge of its backend.
#[derive(Clone)]
pub struct Database {
    pool: DbPool,
    /// SQLite: writes queue for one writer thread (see `writer.rs`). PostgreSQL writes use `pool`.
    writer: Option<writer::Writer>,
    url: DatabaseUrl,
    /// Background helpers hold a weak reference and stop when every handle is gone.
    alive: std::sync::Arc<()>,
    metrics: Arc<metrics::DbMetrics>,
    /// One thread per pooled connection runs `read` jobs (and PostgreSQL writes) in arrival
    /// order; see `runner.rs`.
    runner: Arc<runner::Runner>,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Database {
    pub fn open(url: &DatabaseUrl, options: &PoolOptions) -> anyhow::Result<Self> {
        let pool = connect(url, options)?;
        let metrics = Arc::new(metrics::DbMetrics::new(options.writer_queue));
        let writer = match url {
            DatabaseUrl::Sqlite { path } => {
                let path = path.clone();
                Some(writer::Writer::start(
                    Box::new(move || open_sqlite(&path)),
                    options.writer_queue,
                    Arc::clone(&metrics),
                )?)
            }
            DatabaseUrl::Postgres { .. } => None,
        };
        Ok(Self {
            runner: Arc::new(runner::Runner::start(
                &pool,
                &metrics,
                options.connection_timeout,
            )?),
            pool,
            writer,
            url: url.clone(),
            alive: std::sync::Arc::new(()),
            metrics,
        })
    }

    /// What this database's pool and writer measure (the `/metrics` listener shows it).
    pub fn metrics(&self) -> &metrics::DbMetrics {
        &self.metrics
    }

    /// For a long-running SQLite server: turn off checkpoints inside commits (each one stalls the
    /// writer for milliseconds) and checkpoint from a background thread instead. The thread ends
    /// when the last handle to this database is dropped.
    pub async fn start_background_checkpoints(&self) -> anyhow::Result<()> {
        let Some(writer) = &self.writer else {
            return Ok(());
        };
        writer
            // journal_size_limit: after a burst, the rewound WAL file is cut back to 64 MiB.
            .configure("PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864")
            .await?;
        let url = self.url.clone();
        let options = PoolOptions {
            max_size: 1,
            ..PoolOptions::default()
        };
        let checkpointer = tokio::task::spawn_blocking(move || connect(&url, &options))
            .await
            .map_err(|e| anyhow::anyhow!("opening the checkpoint connection failed: {e}"))??;
        let alive = std::sync::Arc::downgrade(&self.alive);
        let backlog = writer.backlog();
        // Whether writes come in, as the checkpointer last saw; the write-back thread follows it.
        let writes_coming = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Without it checkpoints only write more at once; the checkpointer still starts.
        #[cfg(target_os = "linux")]
        if let DatabaseUrl::Sqlite { path } = &self.url
            && let Err(e) = writeback::start(path, writes_coming.clone(), alive.clone())
        {
            tracing::warn!(error = %e, "could not start the SQLite write-out thread");
        }
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                let (mut wal_frames, mut busy) = (None, false);
                while alive.upgrade().is_some() {
                    // Under load, copy often: whatever this thread has copied, the writer's own
                    // checkpoint between two groups (which stalls every write behind it) no
                    // longer has to. Idle, look only now and then.
                    std::thread::sleep(Duration::from_millis(if busy { 5 } else { 50 }));
                    let done = checkpointer
                        .get()
                        .map_err(StoreError::from)
                        .and_then(|mut c| {
                            let pass = diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)");
                            Ok(on_backend!(&mut *c, |c| pass.get_result::<WalCheckpoint>(c))?)
                        });
                    match done {
                        Ok(done) => {
                            // Writes came in since the last look, or some are still to copy.
                            busy = wal_frames != Some(done.log) || done.log > done.checkpointed;
                            wal_frames = Some(done.log);
                            // Both are -1 when there is no WAL: nothing to copy.
                            let behind = u32::try_from(done.log - done.checkpointed);
                            backlog.report(behind.unwrap_or(0));
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "WAL checkpoint failed; retrying");
                            (wal_frames, busy) = (None, false);
                            // Until it works again, the writer finishes checkpoints itself.
                            backlog.report(0);
                        }
                    }
                    writes_coming.store(busy, std::sync::atomic::Ordering::Relaxed);
                }
            })?;
        Ok(())
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    pub fn migrate(&self) -> anyhow::Result<Vec<String>> {
        let mut conn = self.pool.get()?;
        run_migrations(&mut conn)
    }

    /// Roll back the most recent migration (operators and the down-migration tests).
    pub fn revert_last_migration(&self) -> anyhow::Result<String> {
        let mut conn = self.pool.get()?;
        revert_last_migration(&mut conn)
    }

    /// For blocking callers whose job manages its own transactions (housekeeping in bounded
    /// batches): a pooled connection, nothing around it.
    pub fn run_sync<T, E>(&self, f: impl FnOnce(&mut DbConnection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        on_pooled(&self.pool, &self.metrics, f)
    }

    /// Read from the database on a pooled connection, on one of the database's own threads
    /// (never on an actix worker: diesel is synchronous). The closure returns the caller's own
    /// error type, so a lookup that finds a client error answers with it directly.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.runner.run(f).await
    }

    /// Write: on SQLite through the single writer thread (one transaction per queued group), on
    /// PostgreSQL on a pooled connection. The closure's own `transaction` is its atomic unit.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        match &self.writer {
            Some(w) => {
                // Revocations are counted only once the writer has committed them.
                let (value, revoked) = w
                    .run(move |c| {
                        let (result, revoked) = metrics::collect(|| f(c));
                        result.map(|value| (value, revoked))
                    })
                    .await?;
                self.metrics.count(revoked);
                Ok(value)
            }
            None => self.read(f).await,
        }
    }

    /// `read` for callers already on a blocking thread (CLI, start-up, tests).
    pub fn read_sync<T, E>(&self, f: impl FnOnce(&mut DbConnection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        on_pooled(&self.pool, &self.metrics, f)
    }

    /// `write` for callers already on a blocking thread (CLI, start-up, tests): one transaction
    /// on a pooled connection. On SQLite it is `BEGIN IMMEDIATE`, so it waits (`busy_timeout`)
    /// for a running server's writer instead of failing when that writer commits in between.
    pub fn write_sync<T, E>(
        &self,
        f: impl FnOnce(&mut DbConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        on_pooled(&self.pool, &self.metrics, |conn| {
            writer::begin(conn).map_err(StoreError::from)?;
            match f(conn) {
                Ok(value) => {
                    writer::commit(conn).map_err(StoreError::from)?;
                    Ok(value)
                }
                Err(e) => {
                    writer::rollback(conn);
                    Err(e)
                }
            }
        })
    }

    /// At shutdown: every queued write committed and (SQLite) the WAL checkpointed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        match &self.writer {
            Some(w) => w.flush().await,
            None => Ok(()),
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| Ok(c.batch_execute("SELECT 1")?)).await
    }
}

/// A pooled connection; the time since `queued` (the job's wait for a thread and `get()`) is the
/// pool-wait histogram.
fn pooled(
    queued: Instant,
    pool: &DbPool,
    metrics: &metrics::DbMetrics,
) -> Result<DbPooled, StoreError> {
    let conn = pool.get();
    metrics.pool_wait.observe_duration(queued.elapsed());
    Ok(conn?)
}

/// Run `job` on a pooled connection and count the revocations it made if it succeeded. When it
/// failed, test the connection (one `SELECT 1`, on the error path only): a PostgreSQL connection
/// that died under the job (server restart, killed backend, network cut) is marked broken, so the
/// pool drops it instead of handing it to the next job. diesel marks a connection broken only when
/// a transaction could not end; an autocommit statement that failed on a closed connection leaves
/// it looking healthy. A SQLite connection cannot die.
fn on_pooled<T, E>(
    pool: &DbPool,
    metrics: &metrics::DbMetrics,
    job: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<StoreError>,
{
    on_pooled_since(Instant::now(), pool, metrics, job)
}

/// `on_pooled` for a job that has been waiting for a thread since `queued`.
fn on_pooled_since<T, E>(
    queued: Instant,
    pool: &DbPool,
    metrics: &metrics::DbMetrics,
    job: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<StoreError>,
{
    use diesel::connection::TransactionManager;
    use diesel::r2d2::R2D2Connection;
    let mut conn = pooled(queued, pool, metrics)?;
    let result = counted(metrics, || job(&mut conn));
    if result.is_err() && matches!(*conn, DbConnection::Postgresql(_)) && conn.ping().is_err() {
        tracing::warn!("a database connection was lost; it will be replaced");
        <DbConnection as Connection>::TransactionManager::transaction_manager_status_mut(&mut conn)
            .set_in_error();
    }
    result
}

/// Run `job` (which commits as it goes) and count the revocations it made if it succeeded.
fn counted<T, E>(metrics: &metrics::DbMetrics, job: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    let (result, revoked) = metrics::collect(job);
    if result.is_ok() {
        metrics.count(revoked);
    }
    result
}

// Lookups use `get_result` on keys, not `first()`: `first()` adds `LIMIT ?`, and SQLite (3.4x)
// re-prepares a statement every time a parameter that shaped its plan is re-bound — a LIMIT
// parameter is one — which made every lookup pay for a full SQL parse.

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite before 3.51.3 (3.50.7 and 3.44.6 on older lines) has a race in which a checkpoint
    /// that starts while another connection starts the WAL over misses the restart and can later
    /// skip pages of a committed transaction: the database is corrupt. lineage's background
    /// checkpointer and its writer hit that window dozens of times a second under load, so the
    /// bundled library must be a fixed one.
    #[test]
    fn the_bundled_sqlite_has_the_wal_reset_fix() {
        let Ok(conn) = diesel::SqliteConnection::establish(":memory:") else {
            panic!("an in-memory SQLite database opens");
        };
        let mut conn = DbConnection::Sqlite(conn);
        let version: String = diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(
            "sqlite_version()",
        ))
        .get_result(&mut conn)
        .unwrap_or_default();
        let parts: Vec<u32> = version.split('.').filter_map(|p| p.parse().ok()).collect();
        assert!(
            parts.as_slice() >= [3, 51, 3].as_slice(),
            "SQLite {version} has the WAL-reset race; lineage needs 3.51.3 or later"
        );
    }
}
