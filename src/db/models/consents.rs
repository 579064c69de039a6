use diesel::prelude::*;

use crate::db::schema::consents;
use crate::db::{DbConnection, StoreError};

pub fn find_scope(
    conn: &mut DbConnection,
    user: &str,
    client: &str,
) -> Result<Option<String>, StoreError> {
    use consents::dsl as c;
    Ok(c::consents
        .find((user, client))
        .select(c::scope)
        .get_result(conn)
        .optional()?)
}

/// Store the consented scope (the caller passes the union with what was consented before).
pub fn upsert(
    conn: &mut DbConnection,
    user: &str,
    client: &str,
    scope: &str,
    now: i64,
) -> Result<(), StoreError> {
    use consents::dsl as c;
    let update = |conn: &mut DbConnection| {
        diesel::update(c::consents.find((user, client)))
            .set((c::scope.eq(scope), c::updated_at.eq(now)))
            .execute(conn)
    };
    if update(conn)? > 0 {
        return Ok(());
    }
    let inserted = crate::db::insert_if_absent(conn, |conn| {
        diesel::insert_into(c::consents)
            .values((
                c::user_id.eq(user),
                c::client_id.eq(client),
                c::scope.eq(scope),
                c::created_at.eq(now),
                c::updated_at.eq(now),
            ))
            .execute(conn)
    })?;
    // A concurrent first consent won the insert: store this one over it.
    if !inserted {
        update(conn)?;
    }
    Ok(())
}

pub fn delete_for_client(conn: &mut DbConnection, client: &str) -> Result<usize, StoreError> {
    use consents::dsl as c;
    Ok(diesel::delete(c::consents.filter(c::client_id.eq(client))).execute(conn)?)
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = consents)]
pub struct ConsentRow {
    pub user_id: String,
    pub client_id: String,
    pub scope: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A user's consents, the most recently given first.
pub fn list_for_user(conn: &mut DbConnection, user: &str) -> Result<Vec<ConsentRow>, StoreError> {
    use consents::dsl as c;
    Ok(c::consents
        .filter(c::user_id.eq(user))
        .order(c::updated_at.desc())
        .select(ConsentRow::as_select())
        .load(conn)?)
}

/// Forget one consent; returns whether there was one.
pub fn delete(conn: &mut DbConnection, user: &str, client: &str) -> Result<bool, StoreError> {
    use consents::dsl as c;
    Ok(diesel::delete(c::consents.find((user, client))).execute(conn)? == 1)
}
