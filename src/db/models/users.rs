use diesel::prelude::*;

use crate::db::schema::users;
use crate::db::{DbConnection, StoreError};

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub security_version: i64,
    pub disabled: bool,
    pub not_before: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The profile (see `crate::profile`): NULL is "not set".
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
}

impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("security_version", &self.security_version)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

pub fn insert(conn: &mut DbConnection, row: &UserRow) -> Result<(), StoreError> {
    diesel::insert_into(users::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn find_by_username(
    conn: &mut DbConnection,
    name: &str,
) -> Result<Option<UserRow>, StoreError> {
    Ok(users::table
        .filter(users::username.eq(name))
        .select(UserRow::as_select())
        .get_result(conn)
        .optional()?)
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<UserRow>, StoreError> {
    Ok(users::table
        .find(id)
        .select(UserRow::as_select())
        .get_result(conn)
        .optional()?)
}

pub fn list(conn: &mut DbConnection) -> Result<Vec<UserRow>, StoreError> {
    Ok(users::table
        .order(users::username.asc())
        .select(UserRow::as_select())
        .load(conn)?)
}

/// New password: bump the security version so sessions started before it end.
pub fn set_password(
    conn: &mut DbConnection,
    id: &str,
    hash: &str,
    now: i64,
) -> Result<usize, StoreError> {
    Ok(diesel::update(users::table.find(id))
        .set((
            users::password_hash.eq(hash),
            users::security_version.eq(users::security_version + 1),
            users::updated_at.eq(now),
        ))
        .execute(conn)?)
}

pub fn set_disabled(
    conn: &mut DbConnection,
    id: &str,
    disabled: bool,
    now: i64,
) -> Result<usize, StoreError> {
    Ok(diesel::update(users::table.find(id))
        .set((
            users::disabled.eq(disabled),
            users::security_version.eq(users::security_version + 1),
            users::updated_at.eq(now),
        ))
        .execute(conn)?)
}

/// Take the user's row lock until the transaction ends. Whatever starts a session or a family for
/// the user and whatever ends them all take it first, so on PostgreSQL (READ COMMITTED) the two
/// cannot interleave: a family started by a concurrent code exchange is either seen and revoked,
/// or created after the revocation and refused. (SQLite's single writer serialises them anyway.)
pub fn lock(conn: &mut DbConnection, id: &str) -> Result<bool, StoreError> {
    Ok(diesel::update(users::table.find(id))
        .set(users::updated_at.eq(users::updated_at))
        .execute(conn)?
        == 1)
}

/// The user's profile as a whole, already parsed (`domain::DisplayName`, `domain::Email`).
pub fn set_profile(
    conn: &mut DbConnection,
    id: &str,
    display_name: Option<&str>,
    email: Option<&str>,
    email_verified: bool,
    now: i64,
) -> Result<usize, StoreError> {
    Ok(diesel::update(users::table.find(id))
        .set((
            users::display_name.eq(display_name),
            users::email.eq(email),
            users::email_verified.eq(email_verified),
            users::updated_at.eq(now),
        ))
        .execute(conn)?)
}

/// Access tokens of this user issued before `at` are revoked (revocation feed).
pub fn set_not_before(conn: &mut DbConnection, id: &str, at: i64) -> Result<usize, StoreError> {
    Ok(diesel::update(users::table.find(id))
        .set(users::not_before.eq(at))
        .execute(conn)?)
}
