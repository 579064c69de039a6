//! Online backups of an SQLite database: `VACUUM INTO` copies one consistent snapshot (a read
//! transaction, so the running server keeps writing meanwhile) into a new, compact file.
//! PostgreSQL has `pg_dump` for that (see the README).

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
    let target = target
        .to_str()
        .ok_or_else(|| BackupError::NoDirectory(target.display().to_string()))?;
    diesel::sql_query("VACUUM INTO ?")
        .bind::<Text, _>(target)
        .execute(c)
        .map_err(StoreError::from)?;
    Ok(())
}
