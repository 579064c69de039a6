use diesel::prelude::*;

use crate::db::models::refresh_families::FamilyRow;
use crate::db::models::users::UserRow;
use crate::db::prepared::{Param, Prepared};
use crate::db::schema::refresh_tokens;
use crate::db::{DbConnection, StoreError};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshTokenRow {
    /// SHA-256 of the token; the token itself is never stored.
    pub token_hash: String,
    pub family_id: String,
    pub generation: i64,
    pub parent_hash: Option<String>,
    pub created_at: i64,
    pub used_at: Option<i64>,
}

pub fn insert(conn: &mut DbConnection, row: &RefreshTokenRow) -> Result<(), StoreError> {
    on_backend!(conn, |c| diesel::insert_into(refresh_tokens::table)
        .values(row)
        .execute(c))?;
    Ok(())
}

pub fn find(conn: &mut DbConnection, hash: &str) -> Result<Option<RefreshTokenRow>, StoreError> {
    Ok(refresh_tokens::table
        .find(hash)
        .select(RefreshTokenRow::as_select())
        .get_result(conn)
        .optional()?)
}

/// The atomic primitive of rotation: mark the token used only if nobody has. Exactly one caller
/// can get 1 back, on SQLite or PostgreSQL, across processes. A prepared statement: it runs on
/// every rotation on SQLite, and diesel would parse an `UPDATE` anew each time.
pub fn mark_used(conn: &mut DbConnection, hash: &str, now: i64) -> Result<bool, StoreError> {
    struct MarkUsed;
    let spend = Prepared::<MarkUsed>::new(
        "UPDATE refresh_tokens SET used_at = $now WHERE token_hash = $hash AND used_at IS NULL",
        vec![("now", Param::BigInt(now)), ("hash", Param::Text(hash))],
    );
    let n = on_backend!(conn, |c| spend.execute(c))?;
    Ok(n == 1)
}

/// The family's current token: the one not yet used (at most one exists).
pub fn current_of(
    conn: &mut DbConnection,
    family: &str,
) -> Result<Option<RefreshTokenRow>, StoreError> {
    use refresh_tokens::dsl as t;
    Ok(t::refresh_tokens
        .filter(t::family_id.eq(family))
        .filter(t::used_at.is_null())
        .select(RefreshTokenRow::as_select())
        .get_result(conn)
        .optional()?)
}

pub fn count_unused_of(conn: &mut DbConnection, family: &str) -> Result<i64, StoreError> {
    use refresh_tokens::dsl as t;
    Ok(t::refresh_tokens
        .filter(t::family_id.eq(family))
        .filter(t::used_at.is_null())
        .count()
        .get_result(conn)?)
}

pub fn delete_of_families(
    conn: &mut DbConnection,
    families: &[String],
) -> Result<usize, StoreError> {
    use refresh_tokens::dsl as t;
    Ok(diesel::delete(t::refresh_tokens.filter(t::family_id.eq_any(families))).execute(conn)?)
}

/// A token with its family and the family's user, in one query (the hot path of rotation).
pub fn find_with_family(
    conn: &mut DbConnection,
    hash: &str,
) -> Result<Option<(RefreshTokenRow, FamilyRow, Option<UserRow>)>, StoreError> {
    use crate::db::schema::{refresh_families, users};
    let found = on_backend!(conn, |c| refresh_tokens::table
        .inner_join(refresh_families::table.left_join(users::table))
        .filter(refresh_tokens::token_hash.eq(hash))
        .select((
            RefreshTokenRow::as_select(),
            FamilyRow::as_select(),
            Option::<UserRow>::as_select(),
        ))
        .get_result(c)
        .optional());
    Ok(found?)
}
