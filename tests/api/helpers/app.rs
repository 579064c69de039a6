//! One test's own server: a fresh database (a temporary SQLite file, or a PostgreSQL database of
//! its own), the real application on 127.0.0.1:0 and a manual clock the test moves. Also compiled
//! into tests/resource/, so it uses nothing else from `helpers`.

use std::path::PathBuf;
use std::sync::Arc;

use actix_web::web::Data;
use diesel::{Connection, PgConnection, RunQueryDsl};
use lineage::clock::ManualClock;
use lineage::configuration::{KeySecret, Settings};
use lineage::db::{Database, DatabaseUrl};
use lineage::startup::Application;
use lineage::state::AppState;

/// The key-encryption secret every test server uses.
pub const KEY_SECRET: &str = "test-key-secret-not-for-production";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One test's own database: a temporary SQLite file, or a PostgreSQL database created on the
/// server named by `TEST_DATABASE_URL`. Removed when dropped.
pub enum TestDatabase {
    Sqlite {
        path: PathBuf,
    },
    Postgres {
        admin_url: String,
        name: String,
        url: String,
    },
}

impl TestDatabase {
    /// `None` (after a one-line notice) when the backend is PostgreSQL and `TEST_DATABASE_URL`
    /// is not set.
    pub fn create(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir()
                    .join(format!("lineage-test-{}.db", uuid::Uuid::new_v4().simple()));
                Some(Self::Sqlite { path })
            }
            Backend::Postgres => {
                let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
                    println!("skipping: TEST_DATABASE_URL not set");
                    return None;
                };
                init_openssl_without_atexit();
                let name = format!("lineage_test_{}", uuid::Uuid::new_v4().simple());
                let mut admin = PgConnection::establish(&admin_url)
                    .unwrap_or_else(|e| panic!("cannot connect to TEST_DATABASE_URL: {e}"));
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .expect("CREATE DATABASE");
                let mut url = url::Url::parse(&admin_url).expect("TEST_DATABASE_URL is a URL");
                url.set_path(&format!("/{name}"));
                Some(Self::Postgres {
                    admin_url,
                    name,
                    url: url.to_string(),
                })
            }
        }
    }

    pub fn url(&self) -> DatabaseUrl {
        let raw = match self {
            Self::Sqlite { path } => format!("sqlite://{}", path.display()),
            Self::Postgres { url, .. } => url.clone(),
        };
        DatabaseUrl::parse(&raw).expect("test database URL parses")
    }

    /// The URL as the CLI takes it.
    pub fn url_string(&self) -> String {
        match self {
            Self::Sqlite { path } => format!("sqlite://{}", path.display()),
            Self::Postgres { url, .. } => url.clone(),
        }
    }

    /// PostgreSQL only: the database's name and a superuser connection to its server.
    pub fn postgres_admin(&self) -> Option<(String, PgConnection)> {
        match self {
            Self::Sqlite { .. } => None,
            Self::Postgres {
                admin_url, name, ..
            } => {
                init_openssl_without_atexit();
                let conn = PgConnection::establish(admin_url).expect("admin connection");
                Some((name.clone(), conn))
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match self {
            Self::Sqlite { path } => {
                for suffix in ["", "-wal", "-shm", ".key"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            }
            Self::Postgres {
                admin_url, name, ..
            } => {
                // FORCE (PostgreSQL ≥ 13) ends the server's pooled connections first.
                if let Ok(mut admin) = PgConnection::establish(admin_url) {
                    let _ =
                        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .execute(&mut admin);
                }
            }
        }
    }
}

/// libpq (bundled, with a vendored OpenSSL) would otherwise let OpenSSL register an `atexit`
/// clean-up that frees its global state while r2d2's threads may still be in a TLS handshake, so
/// this test process could crash at exit. Initialising OpenSSL first with `OPENSSL_INIT_NO_ATEXIT`
/// (what `openssl_sys::init` does) avoids that, as the `lineage` binary's `main` does; see
/// `admin::cli::cli_on_postgresql_never_crashes_at_exit`.
pub fn init_openssl_without_atexit() {
    openssl_sys::init();
}

pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub address: String,
    /// `http://127.0.0.1:PORT` of the `/metrics` listener, when `metrics_bind` was set.
    pub metrics_address: Option<String>,
    pub port: u16,
    pub issuer: String,
    pub clock: ManualClock,
    /// The server's own state (its pool is also `db`).
    pub state: Data<AppState>,
    /// The server's own pool.
    pub db: Database,
    pub api: reqwest::Client,
    pub settings: Settings,
    pub key_secret: KeySecret,
    pub database: Arc<TestDatabase>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Dropping the actix `Server` future closes the listener and stops its workers.
        self.server.abort();
    }
}

/// Start a server with test settings on a fresh database. `None` = skipped (no PostgreSQL).
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// The same, with settings adjusted before the server starts.
pub async fn spawn_app_with(
    backend: Backend,
    adjust: impl FnOnce(&mut Settings),
) -> Option<TestApp> {
    let database = Arc::new(TestDatabase::create(backend)?);
    let clock = ManualClock::starting_now();
    Some(spawn_app_on(database, clock, adjust).await)
}

/// Start a server on an existing test database with a given clock (several nodes, one database).
pub async fn spawn_app_on(
    database: Arc<TestDatabase>,
    clock: ManualClock,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    let key_secret = KeySecret::new(KEY_SECRET.to_string());
    let mut settings = Settings::for_database(database.url(), key_secret.clone());
    adjust(&mut settings);
    let app = Application::build_with_clock(settings.clone(), Arc::new(clock.clone()))
        .await
        .expect("the application builds");
    let port = app.port();
    let metrics_address = app.metrics_port().map(|p| format!("http://127.0.0.1:{p}"));
    let issuer = app.issuer().to_string();
    let state = app.state();
    let db = state.db.clone();
    let server = tokio::spawn(app.run_until_stopped());
    let api = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("reqwest client");
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        metrics_address,
        port,
        issuer,
        clock,
        state,
        db,
        api,
        settings,
        key_secret,
        database,
        server,
    }
}

/// A server started with `Settings.demo = true` after `lineage::demo::prepare` ran on it, as
/// `lineage serve --demo` does. `None` = skipped (PostgreSQL without `TEST_DATABASE_URL`).
pub async fn spawn_demo_app(backend: Backend) -> Option<TestApp> {
    let app = spawn_app_with(backend, |s| s.demo = true).await?;
    // No request reaches the server before this returns, so preparing after it started listening
    // is the same as preparing before.
    lineage::demo::prepare(&app.state)
        .await
        .expect("demo::prepare");
    Some(app)
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn now(&self) -> i64 {
        use lineage::clock::Clock;
        self.clock.now()
    }
}
