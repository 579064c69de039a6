use diesel::prelude::*;

use crate::db::prepared::{Param, Prepared};
use crate::db::schema::refresh_families;
use crate::db::{DbConnection, StoreError, metrics};

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = refresh_families)]
pub struct FamilyRow {
    pub id: String,
    pub user_id: String,
    pub client_id: String,
    pub scope: String,
    pub device_name: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: i64,
    pub last_used_at: i64,
    pub idle_expires_at: i64,
    pub absolute_expires_at: i64,
    pub rotation_count: i64,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
    /// When the user entered the password at the sign-in that started the family; every ID token
    /// of the family carries it (OIDC Core §12.2).
    pub auth_time: i64,
    /// The thumbprint of the DPoP key the family is bound to (RFC 9449 §5): every rotation must
    /// carry a proof by that key.
    pub dpop_jkt: Option<String>,
}

pub fn insert(conn: &mut DbConnection, row: &FamilyRow) -> Result<(), StoreError> {
    diesel::insert_into(refresh_families::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<FamilyRow>, StoreError> {
    Ok(refresh_families::table
        .find(id)
        .select(FamilyRow::as_select())
        .get_result(conn)
        .optional()?)
}

pub fn list_for_user(conn: &mut DbConnection, user: &str) -> Result<Vec<FamilyRow>, StoreError> {
    Ok(refresh_families::table
        .filter(refresh_families::user_id.eq(user))
        .order(refresh_families::created_at.desc())
        .select(FamilyRow::as_select())
        .load(conn)?)
}

/// Record a rotation: last use, idle expiry, count, and where it came from (prepared once per
/// connection, like `refresh_tokens::mark_used`).
pub fn touch(
    conn: &mut DbConnection,
    id: &str,
    now: i64,
    idle_expires_at: i64,
    ip: Option<&str>,
    user_agent: Option<&str>,
) -> Result<(), StoreError> {
    struct Touch;
    let touch = Prepared::<Touch>::new(
        "UPDATE refresh_families SET last_used_at = $now, idle_expires_at = $idle, \
         rotation_count = rotation_count + 1, ip = $ip, user_agent = $user_agent WHERE id = $id",
        vec![
            ("now", Param::BigInt(now)),
            ("idle", Param::BigInt(idle_expires_at)),
            ("ip", Param::OptionalText(ip)),
            ("user_agent", Param::OptionalText(user_agent)),
            ("id", Param::Text(id)),
        ],
    );
    on_backend!(conn, |c| touch.execute(c))?;
    Ok(())
}

/// Bind a family that is not bound yet to a DPoP key (a public client's first refresh with a
/// proof, RFC 9449 §5).
pub fn bind_key(conn: &mut DbConnection, id: &str, jkt: &str) -> Result<(), StoreError> {
    use refresh_families::dsl as f;
    diesel::update(f::refresh_families.find(id).filter(f::dpop_jkt.is_null()))
        .set(f::dpop_jkt.eq(jkt))
        .execute(conn)?;
    Ok(())
}

/// Revoke if still live; returns whether this call did it.
pub fn revoke(
    conn: &mut DbConnection,
    id: &str,
    reason: &str,
    now: i64,
) -> Result<bool, StoreError> {
    use refresh_families::dsl as f;
    let n = diesel::update(
        f::refresh_families
            .filter(f::id.eq(id))
            .filter(f::revoked_at.is_null()),
    )
    .set((f::revoked_at.eq(now), f::revoked_reason.eq(reason)))
    .execute(conn)?;
    metrics::families_revoked(reason, n as u64);
    Ok(n == 1)
}

/// Revoke every live family of a user (or of a client); returns the ids revoked.
pub fn revoke_all_where(
    conn: &mut DbConnection,
    user: Option<&str>,
    client: Option<&str>,
    reason: &str,
    now: i64,
) -> Result<Vec<String>, StoreError> {
    use refresh_families::dsl as f;
    let mut q = f::refresh_families
        .filter(f::revoked_at.is_null())
        .select(f::id)
        .into_boxed();
    if let Some(u) = user {
        q = q.filter(f::user_id.eq(u.to_string()));
    }
    if let Some(c) = client {
        q = q.filter(f::client_id.eq(c.to_string()));
    }
    let ids: Vec<String> = q.load(conn)?;
    let mut revoked = 0;
    for chunk in ids.chunks(500) {
        revoked += diesel::update(
            f::refresh_families
                .filter(f::id.eq_any(chunk))
                .filter(f::revoked_at.is_null()),
        )
        .set((f::revoked_at.eq(now), f::revoked_reason.eq(reason)))
        .execute(conn)?;
    }
    metrics::families_revoked(reason, revoked as u64);
    Ok(ids)
}

/// Families still live at `now`: not revoked, expired or (with a cap) out of rotations. One
/// aggregate over the live rows, which the housekeeping keeps proportional to live sessions.
pub fn count_live(
    conn: &mut DbConnection,
    now: i64,
    max_rotations: Option<i64>,
) -> Result<i64, StoreError> {
    use refresh_families::dsl as f;
    let mut q = f::refresh_families
        .filter(f::revoked_at.is_null())
        .filter(f::idle_expires_at.gt(now))
        .filter(f::absolute_expires_at.gt(now))
        .into_boxed();
    if let Some(max) = max_rotations {
        q = q.filter(f::rotation_count.lt(max));
    }
    Ok(q.count().get_result(conn)?)
}

/// Ids of families that ended (revoked, or expired) before `before`, at most `limit`.
pub fn ended_before(
    conn: &mut DbConnection,
    before: i64,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    use refresh_families::dsl as f;
    Ok(f::refresh_families
        .filter(
            f::revoked_at
                .lt(before)
                .or(f::absolute_expires_at.lt(before))
                .or(f::idle_expires_at.lt(before)),
        )
        .select(f::id)
        .limit(limit)
        .load(conn)?)
}

pub fn delete_many(conn: &mut DbConnection, ids: &[String]) -> Result<usize, StoreError> {
    use refresh_families::dsl as f;
    Ok(diesel::delete(f::refresh_families.filter(f::id.eq_any(ids))).execute(conn)?)
}
