use diesel::prelude::*;

use crate::db::schema::revoked_access_tokens;
use crate::db::{DbConnection, StoreError};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = revoked_access_tokens)]
pub struct RevokedAccessTokenRow {
    pub jti: String,
    pub client_id: String,
    pub revoked_at: i64,
    pub expires_at: i64,
}

/// Add to the denylist; revoking twice (or twice at once) is not an error. Returns whether it
/// was new.
pub fn insert(conn: &mut DbConnection, row: &RevokedAccessTokenRow) -> Result<bool, StoreError> {
    crate::db::insert_if_absent(conn, |c| {
        diesel::insert_into(revoked_access_tokens::table)
            .values(row)
            .execute(c)
    })
}

/// Delete up to `limit` entries whose token has expired anyway.
pub fn delete_expired(conn: &mut DbConnection, now: i64, limit: i64) -> Result<usize, StoreError> {
    use revoked_access_tokens::dsl as r;
    let ids: Vec<String> = r::revoked_access_tokens
        .filter(r::expires_at.lt(now))
        .select(r::jti)
        .limit(limit)
        .load(conn)?;
    Ok(diesel::delete(r::revoked_access_tokens.filter(r::jti.eq_any(&ids))).execute(conn)?)
}
