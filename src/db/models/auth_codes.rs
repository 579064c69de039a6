use diesel::prelude::*;

use crate::db::schema::auth_codes;
use crate::db::{DbConnection, StoreError};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = auth_codes)]
pub struct AuthCodeRow {
    pub code_hash: String,
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub pkce_challenge: Option<String>,
    pub device_name: Option<String>,
    pub session_hash: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub family_id: Option<String>,
    /// The authorization request named `redirect_uri`, so the token request must repeat it.
    pub redirect_uri_given: bool,
    /// The OIDC `nonce` of the authorization request, echoed in the ID token (OIDC Core §2).
    pub nonce: Option<String>,
    /// When the user entered the password of the session that approved the code.
    pub auth_time: i64,
    /// The authorization request's `dpop_jkt` (RFC 9449 §10): the exchange must be proven by
    /// that key.
    pub dpop_jkt: Option<String>,
}

pub fn insert(conn: &mut DbConnection, row: &AuthCodeRow) -> Result<(), StoreError> {
    diesel::insert_into(auth_codes::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConnection, hash: &str) -> Result<Option<AuthCodeRow>, StoreError> {
    Ok(auth_codes::table
        .find(hash)
        .select(AuthCodeRow::as_select())
        .get_result(conn)
        .optional()?)
}

/// Single use: exactly one exchange can mark a code used.
pub fn mark_used(conn: &mut DbConnection, hash: &str, now: i64) -> Result<bool, StoreError> {
    use auth_codes::dsl as a;
    let n = diesel::update(
        a::auth_codes
            .filter(a::code_hash.eq(hash))
            .filter(a::used_at.is_null()),
    )
    .set(a::used_at.eq(now))
    .execute(conn)?;
    Ok(n == 1)
}

pub fn set_family(conn: &mut DbConnection, hash: &str, family: &str) -> Result<usize, StoreError> {
    use auth_codes::dsl as a;
    Ok(diesel::update(a::auth_codes.find(hash))
        .set(a::family_id.eq(family))
        .execute(conn)?)
}

/// Families started from codes this browser session approved.
pub fn families_of_session(
    conn: &mut DbConnection,
    session_hash: &str,
) -> Result<Vec<String>, StoreError> {
    use auth_codes::dsl as a;
    let ids: Vec<Option<String>> = a::auth_codes
        .filter(a::session_hash.eq(session_hash))
        .select(a::family_id)
        .load(conn)?;
    Ok(ids.into_iter().flatten().collect())
}

/// Codes past their life are useless except for replay detection, which needs them only while
/// the family they started could still be alive; they go once expired for a day.
pub fn delete_expired(
    conn: &mut DbConnection,
    before: i64,
    limit: i64,
) -> Result<usize, StoreError> {
    use auth_codes::dsl as a;
    let ids: Vec<String> = a::auth_codes
        .filter(a::expires_at.lt(before))
        .select(a::code_hash)
        .limit(limit)
        .load(conn)?;
    Ok(diesel::delete(a::auth_codes.filter(a::code_hash.eq_any(&ids))).execute(conn)?)
}

/// End the unredeemed codes a user approved for a client (when the user withdraws consent). Only
/// unexpired codes qualify, which keeps this a short range of the `expires_at` index.
pub fn expire_unused(
    conn: &mut DbConnection,
    user: &str,
    client: &str,
    now: i64,
) -> Result<usize, StoreError> {
    use auth_codes::dsl as a;
    Ok(diesel::update(
        a::auth_codes
            .filter(a::user_id.eq(user))
            .filter(a::client_id.eq(client))
            .filter(a::used_at.is_null())
            .filter(a::expires_at.gt(now)),
    )
    .set(a::expires_at.eq(now))
    .execute(conn)?)
}
