use diesel::prelude::*;

use crate::db::schema::signing_keys;
use crate::db::{DbConnection, StoreError};

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct SigningKeyRow {
    pub kid: String,
    pub algorithm: String,
    pub public_key: String,
    pub private_key_encrypted: String,
    pub created_at: i64,
    pub activates_at: i64,
    pub retired_at: Option<i64>,
}

// The private key is encrypted, but its ciphertext has no business in logs either.
impl std::fmt::Debug for SigningKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRow")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("created_at", &self.created_at)
            .field("activates_at", &self.activates_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

pub fn insert(conn: &mut DbConnection, row: &SigningKeyRow) -> Result<(), StoreError> {
    diesel::insert_into(signing_keys::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Keys not retired, or retired at or after `retired_after`.
pub fn list_published(
    conn: &mut DbConnection,
    retired_after: i64,
) -> Result<Vec<SigningKeyRow>, StoreError> {
    use crate::db::schema::signing_keys::dsl::*;
    Ok(signing_keys
        .filter(retired_at.is_null().or(retired_at.ge(retired_after)))
        .order((activates_at.asc(), kid.asc()))
        .select(SigningKeyRow::as_select())
        .load(conn)?)
}

pub fn list_all(conn: &mut DbConnection) -> Result<Vec<SigningKeyRow>, StoreError> {
    use crate::db::schema::signing_keys::dsl::*;
    Ok(signing_keys
        .order((activates_at.asc(), kid.asc()))
        .select(SigningKeyRow::as_select())
        .load(conn)?)
}

/// Keys of `alg` not yet retired.
pub fn count_unretired(conn: &mut DbConnection, alg: &str) -> Result<i64, StoreError> {
    use crate::db::schema::signing_keys::dsl::*;
    Ok(signing_keys
        .filter(retired_at.is_null())
        .filter(algorithm.eq(alg))
        .count()
        .get_result(conn)?)
}

/// Retire every key of `alg` not yet retired, at `at`.
pub fn retire_all_unretired(
    conn: &mut DbConnection,
    alg: &str,
    at: i64,
) -> Result<usize, StoreError> {
    use crate::db::schema::signing_keys::dsl::*;
    Ok(diesel::update(
        signing_keys
            .filter(retired_at.is_null())
            .filter(algorithm.eq(alg)),
    )
    .set(retired_at.eq(at))
    .execute(conn)?)
}

/// Serialise key creation across nodes. PostgreSQL: a table lock held to the end of the
/// transaction. SQLite: one writer at a time already, and nodes never share a SQLite file.
pub fn lock_for_rotation(conn: &mut DbConnection) -> Result<(), StoreError> {
    if let DbConnection::Postgresql(_) = conn {
        diesel::sql_query("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE").execute(conn)?;
    }
    Ok(())
}
