//! `sign_in_throttles`: failed sign-ins per username (the rules are in `limits::sign_in`).

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::db::schema::sign_in_throttles;
use crate::db::{DbConnection, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = sign_in_throttles, primary_key(username_key), treat_none_as_null = true)]
pub struct ThrottleRow {
    pub username_key: String,
    pub failures: i64,
    pub last_failure_at: i64,
    pub blocked_until: i64,
    pub event_id: Option<String>,
    pub event_started_at: i64,
    pub event_failures: i64,
    pub event_ip: Option<String>,
    pub event_ips_vary: bool,
}

impl ThrottleRow {
    fn first(username_key: &str, now: i64) -> Self {
        Self {
            username_key: username_key.to_string(),
            failures: 1,
            last_failure_at: now,
            blocked_until: 0,
            event_id: None,
            event_started_at: 0,
            event_failures: 0,
            event_ip: None,
            event_ips_vary: false,
        }
    }
}

pub fn find(
    conn: &mut DbConnection,
    username_key: &str,
) -> Result<Option<ThrottleRow>, StoreError> {
    Ok(sign_in_throttles::table
        .find(username_key)
        .select(ThrottleRow::as_select())
        .get_result(conn)
        .optional()?)
}

/// Count one more failure and return the row as it stands, locked for the rest of the caller's
/// transaction: the first statement is a write, so two nodes counting at once take turns
/// (PostgreSQL's row lock, SQLite's write lock) instead of both reading the old count.
/// `failures` is incremented, `last_failure_at` still holds the previous failure's time.
pub fn count_failure(
    conn: &mut DbConnection,
    username_key: &str,
    now: i64,
) -> Result<ThrottleRow, StoreError> {
    for _ in 0..2 {
        let bumped = diesel::update(sign_in_throttles::table.find(username_key))
            .set(sign_in_throttles::failures.eq(sign_in_throttles::failures + 1))
            .execute(conn)?;
        if bumped == 1 {
            return find(conn, username_key)?
                .ok_or_else(|| StoreError::Other(anyhow::anyhow!("throttle row vanished")));
        }
        let row = ThrottleRow::first(username_key, now);
        // A savepoint: on PostgreSQL a failed statement would otherwise abort the transaction.
        let inserted = conn.transaction(|c| {
            diesel::insert_into(sign_in_throttles::table)
                .values(&row)
                .execute(c)
        });
        match inserted {
            Ok(_) => return Ok(row),
            // Another node created the row a moment ago: count on it.
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Other(anyhow::anyhow!(
        "could not count a failed sign-in"
    )))
}

pub fn save(conn: &mut DbConnection, row: &ThrottleRow) -> Result<(), StoreError> {
    diesel::update(sign_in_throttles::table.find(&row.username_key))
        .set(row)
        .execute(conn)?;
    Ok(())
}

/// A successful sign-in: the back-off starts over (the audit event's run goes on).
pub fn reset(conn: &mut DbConnection, username_key: &str) -> Result<(), StoreError> {
    diesel::update(sign_in_throttles::table.find(username_key))
        .set((
            sign_in_throttles::failures.eq(0),
            sign_in_throttles::blocked_until.eq(0),
        ))
        .execute(conn)?;
    Ok(())
}

/// Delete up to `limit` rows whose last failure is older than `before`.
pub fn delete_older_than(
    conn: &mut DbConnection,
    before: i64,
    limit: i64,
) -> Result<usize, StoreError> {
    let keys: Vec<String> = sign_in_throttles::table
        .filter(sign_in_throttles::last_failure_at.lt(before))
        .select(sign_in_throttles::username_key)
        .limit(limit)
        .load(conn)?;
    Ok(diesel::delete(
        sign_in_throttles::table.filter(sign_in_throttles::username_key.eq_any(&keys)),
    )
    .execute(conn)?)
}
