use diesel::prelude::*;

use crate::db::schema::browser_sessions;
use crate::db::{DbConnection, StoreError};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = browser_sessions)]
pub struct BrowserSessionRow {
    /// SHA-256 of the cookie value.
    pub id_hash: String,
    pub user_id: String,
    pub security_version: i64,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    /// When the user entered the password (OIDC Core §2 `auth_time`, checked by `max_age`).
    pub auth_time: i64,
}

pub fn insert(conn: &mut DbConnection, row: &BrowserSessionRow) -> Result<(), StoreError> {
    diesel::insert_into(browser_sessions::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn find(
    conn: &mut DbConnection,
    id_hash: &str,
) -> Result<Option<BrowserSessionRow>, StoreError> {
    Ok(browser_sessions::table
        .find(id_hash)
        .select(BrowserSessionRow::as_select())
        .get_result(conn)
        .optional()?)
}

pub fn delete(conn: &mut DbConnection, id_hash: &str) -> Result<usize, StoreError> {
    Ok(diesel::delete(browser_sessions::table.find(id_hash)).execute(conn)?)
}

/// End every browser session of a user, except `keep` (the one changing the password).
pub fn delete_for_user(
    conn: &mut DbConnection,
    user: &str,
    keep: Option<&str>,
) -> Result<usize, StoreError> {
    use browser_sessions::dsl as b;
    let q = b::browser_sessions.filter(b::user_id.eq(user));
    Ok(match keep {
        Some(k) => diesel::delete(q.filter(b::id_hash.ne(k))).execute(conn)?,
        None => diesel::delete(q).execute(conn)?,
    })
}

pub fn set_security_version(
    conn: &mut DbConnection,
    id_hash: &str,
    version: i64,
) -> Result<usize, StoreError> {
    use browser_sessions::dsl as b;
    Ok(diesel::update(b::browser_sessions.find(id_hash))
        .set(b::security_version.eq(version))
        .execute(conn)?)
}

pub fn delete_expired(conn: &mut DbConnection, now: i64, limit: i64) -> Result<usize, StoreError> {
    use browser_sessions::dsl as b;
    let ids: Vec<String> = b::browser_sessions
        .filter(b::expires_at.lt(now))
        .select(b::id_hash)
        .limit(limit)
        .load(conn)?;
    Ok(diesel::delete(b::browser_sessions.filter(b::id_hash.eq_any(&ids))).execute(conn)?)
}
