//! The `lineage` command line: clap commands turned into library calls.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::json;

mod clients;
mod families;
mod keys;
mod users;

pub use clients::ClientCommand;
pub use families::{FamilyCommand, TokenCommand};
pub use keys::KeysCommand;
pub use users::UserCommand;

use crate::clients::RegistryError;
use crate::clock::{Clock, SystemClock};
use crate::configuration::{Settings, SettingsArgs};
use crate::db::StoreError;
use crate::startup::{Application, open_backend};
use crate::{demo, housekeeping, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "lineage",
    version,
    about = "OAuth 2.0 authorization server with rotating refresh-token families"
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the authorization server.
    Serve {
        /// Also create a demo client (idempotent) and print how to try it.
        #[arg(long)]
        demo: bool,
    },
    /// Apply pending database migrations (the server also does this at start).
    Migrate {
        /// Roll back the most recent migration instead.
        #[arg(long)]
        revert: bool,
    },
    /// Register and manage OAuth clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage Ed25519 signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Operator tools for refresh-token families.
    #[command(subcommand)]
    Token(TokenCommand),
    /// See and revoke refresh-token families (one login on one device).
    #[command(subcommand)]
    Family(FamilyCommand),
    /// Copy the SQLite database to PATH while the server runs (one consistent snapshot).
    /// PostgreSQL: use pg_dump.
    Backup {
        /// The new file to write (must not exist).
        path: std::path::PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Check that the SQLite database file is intact (`PRAGMA integrity_check`, on one snapshot
    /// while the server runs). Exits 1 and lists what is wrong if it is not.
    Check {
        #[arg(long)]
        json: bool,
    },
    /// Delete ended families, expired denylist and revocation-feed entries and old audit events
    /// now.
    Gc {
        #[arg(long)]
        json: bool,
    },
}

/// A failure the user should read: message on stderr, and an exit code.
struct Failure {
    message: String,
    code: u8,
}

impl From<RegistryError> for Failure {
    fn from(e: RegistryError) -> Self {
        Failure {
            message: e.to_string(),
            code: 1,
        }
    }
}
impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure {
            message: e.to_string(),
            code: 1,
        }
    }
}
impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure {
            message: format!("{e:#}"),
            code: 1,
        }
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        code: 2,
    }
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let settings = match cli.settings.resolve() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lineage: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.log_format);
    match dispatch(cli.command, settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("lineage: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn print(json_out: bool, value: serde_json::Value, human: impl FnOnce() -> String) {
    use std::io::Write;
    let text = if json_out { value.to_string() } else { human() };
    // A closed pipe (`lineage client list | head -1`) is not an error worth a panic.
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

fn dispatch(command: Command, settings: Settings) -> Result<(), Failure> {
    let now = SystemClock.now();
    match command {
        Command::Serve { demo } => {
            settings
                .check_transport()
                .map_err(|e| usage(format!("invalid configuration: {e}")))?;
            serve(Settings { demo, ..settings }, demo)
        }
        Command::Migrate { revert } => {
            let db = crate::db::Database::open(&settings.database_url, &Default::default())?;
            if revert {
                let v = db.revert_last_migration()?;
                println!("reverted {v}");
            } else {
                let applied = db.migrate()?;
                if applied.is_empty() {
                    println!("database is up to date");
                }
                for v in applied {
                    println!("applied {v}");
                }
            }
            Ok(())
        }
        Command::Client(cmd) => clients::run(cmd, &open_backend(&settings)?, now),
        Command::User(cmd) => users::run(cmd, &open_backend(&settings)?, now),
        Command::Keys(cmd) => keys::run(cmd, &settings, &open_backend(&settings)?, now),
        Command::Token(cmd) => families::mint(cmd, &settings, &open_backend(&settings)?, now),
        Command::Family(cmd) => families::family(cmd, &settings, &open_backend(&settings)?, now),
        Command::Backup { path, json } => backup(&settings, &path, json),
        Command::Check { json } => check(&settings, json),
        Command::Gc { json } => {
            let backend = open_backend(&settings)?;
            let report = backend
                .db
                // Bounded batches, each its own transaction: a running server's writes go on.
                .run_sync(|c| housekeeping::collect_all(c, now, settings.access_token_ttl))?;
            print(json, json!(report), || {
                format!(
                    "deleted {} families, {} refresh tokens, {} denylist entries, \
                     {} revocation-feed entries, {} audit events",
                    report.families,
                    report.refresh_tokens,
                    report.revoked_access_tokens,
                    report.revocation_feed_entries,
                    report.audit_events
                )
            });
            Ok(())
        }
    }
}

fn backup(settings: &Settings, path: &std::path::Path, json_out: bool) -> Result<(), Failure> {
    use crate::db::backup::{self, BackupError};
    let failed = |e: BackupError| Failure {
        message: e.to_string(),
        code: 1,
    };
    backup::check_target(&settings.database_url, path).map_err(failed)?;
    let db = crate::db::Database::open(&settings.database_url, &Default::default())?;
    let started = std::time::Instant::now();
    db.read_sync(|c| backup::sqlite_into(c, path).map_err(failed))?;
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    print(
        json_out,
        json!({"path": path.display().to_string(), "bytes": bytes}),
        || {
            format!(
                "backed up {} to {} ({bytes} bytes in {:.1?}); keep the key secret with it",
                settings.database_url.redacted(),
                path.display(),
                started.elapsed()
            )
        },
    );
    Ok(())
}

fn check(settings: &Settings, json_out: bool) -> Result<(), Failure> {
    if !settings.database_url.is_sqlite() {
        // Before opening anything: an unreachable PostgreSQL would hide this answer.
        return Err(Failure {
            message: crate::db::backup::CHECK_NOT_SQLITE.into(),
            code: 1,
        });
    }
    let db = crate::db::Database::open(&settings.database_url, &Default::default())?;
    let problems = db.read_sync(crate::db::backup::sqlite_problems)?;
    let database = settings.database_url.redacted();
    if problems.is_empty() {
        print(json_out, json!({"ok": true, "problems": []}), || {
            format!("{database} is intact (PRAGMA integrity_check)")
        });
        return Ok(());
    }
    if json_out {
        println!("{}", json!({"ok": false, "problems": problems}));
    } else {
        for problem in &problems {
            eprintln!("{problem}");
        }
    }
    Err(Failure {
        message: format!(
            "{database} is damaged: PRAGMA integrity_check found {} problem(s); restore the last \
             backup that checks clean",
            problems.len()
        ),
        code: 1,
    })
}

fn serve(settings: Settings, demo: bool) -> Result<(), Failure> {
    let system = actix_web::rt::System::new();
    system.block_on(async move {
        let app = Application::build(settings.clone()).await?;
        let database = settings.database_url.redacted();
        tracing::info!(issuer = app.issuer(), port = app.port(), %database, "lineage is listening");
        if let Some(port) = app.metrics_port() {
            tracing::info!(
                port,
                "metrics are served on /metrics of the metrics listener"
            );
        }
        if demo {
            let state = app.state();
            demo::prepare(&state).await?;
        }
        app.run_until_signalled().await.map_err(Failure::from)
    })
}
