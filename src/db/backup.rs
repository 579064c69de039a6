//! Online backups of an SQLite database: `VACUUM INTO` copies one consistent snapshot (a read
//! transaction, so the running server keeps writing meanwhile) into a new, compact file.
//! PostgreSQL has `pg_dump` for that (see the README). And the check that a database file is
//! intact (`PRAGMA integrity_check`), also on one snapshot while the server runs.

use std::path::Path;

use diesel::RunQueryDsl;
use diesel::sql_types::Text;

use super::{DatabaseUrl, DbConnection, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "lineage backup copies SQLite databases; back up PostgreSQL with pg_dump (see the README)"
    )]
    NotSqlite,
    #[error("{0} already exists; choose a new file name")]
    TargetExists(String),
    #[error("the directory of {0} does not exist")]
    NoDirectory(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why `lineage check` does not run on PostgreSQL.
pub const CHECK_NOT_SQLITE: &str = "lineage check reads SQLite databases; PostgreSQL checks its \
                                    own pages (data checksums; use pg_amcheck)";

/// What `PRAGMA integrity_check` found wrong in the database: nothing when it is intact.
pub fn sqlite_problems(conn: &mut DbConnection) -> Result<Vec<String>, StoreError> {
    #[derive(diesel::QueryableByName)]
    struct Line {
        #[diesel(sql_type = Text)]
        integrity_check: String,
    }
    let DbConnection::Sqlite(c) = conn else {
        return Err(StoreError::Other(anyhow::anyhow!(CHECK_NOT_SQLITE)));
    };
    let lines: Vec<Line> = diesel::sql_query("PRAGMA integrity_check").load(c)?;
    Ok(lines
        .into_iter()
        .map(|l| l.integrity_check)
        .filter(|l| l != "ok")
        .collect())
}

/// Check the target before any work: a new file in an existing directory.
pub fn check_target(url: &DatabaseUrl, target: &Path) -> Result<(), BackupError> {
    if !url.is_sqlite() {
        return Err(BackupError::NotSqlite);
    }
    let shown = target.display().to_string();
    if target.exists() {
        return Err(BackupError::TargetExists(shown));
    }
    match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
            Err(BackupError::NoDirectory(shown))
        }
        _ => Ok(()),
    }
}

/// Write a consistent copy of the database to `target` (which must not exist yet).
pub fn sqlite_into(conn: &mut DbConnection, target: &Path) -> Result<(), BackupError> {
    let DbConnection::Sqlite(c) = conn else {
        return Err(BackupError::NotSqlite);
    };
    let path = target
        .to_str()
        .ok_or_else(|| BackupError::NoDirectory(target.display().to_string()))?;
    // The copy holds password hashes and encrypted keys: readable by its owner only. SQLite
    // writes `VACUUM INTO` into an existing file as long as it is empty.
    create_private(target).map_err(|e| {
        BackupError::Store(StoreError::Other(anyhow::anyhow!(
            "cannot create {}: {e}",
            target.display()
        )))
    })?;
    let copied = diesel::sql_query("VACUUM INTO ?")
        .bind::<Text, _>(path)
        .execute(c);
    if let Err(e) = copied {
        let _ = std::fs::remove_file(target);
        return Err(StoreError::from(e).into());
    }
    Ok(())
}

#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map(drop)
}
