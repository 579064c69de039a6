use diesel::prelude::*;

use super::refresh_families::FamilyRow;
use crate::db::schema::audit_events;
use crate::db::{DbConnection, StoreError};
use crate::domain::Origin;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events)]
pub struct AuditEventRow {
    pub id: String,
    pub at: i64,
    pub kind: String,
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub family_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: String,
}

impl AuditEventRow {
    pub fn new(at: i64, kind: &str, detail: impl Into<String>) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            at,
            kind: kind.to_string(),
            user_id: None,
            client_id: None,
            family_id: None,
            ip: None,
            user_agent: None,
            detail: detail.into(),
        }
    }

    /// About one family: its user, client and id.
    pub fn for_family(self, family: &FamilyRow) -> Self {
        Self {
            user_id: Some(family.user_id.clone()),
            client_id: Some(family.client_id.clone()),
            family_id: Some(family.id.clone()),
            ..self
        }
    }

    pub fn for_family_id(self, family_id: &str) -> Self {
        Self {
            family_id: Some(family_id.to_string()),
            ..self
        }
    }

    pub fn for_user(self, user_id: &str) -> Self {
        Self {
            user_id: Some(user_id.to_string()),
            ..self
        }
    }

    pub fn for_client(self, client_id: &str) -> Self {
        Self {
            client_id: Some(client_id.to_string()),
            ..self
        }
    }

    /// Where the request that caused it came from.
    pub fn from_origin(self, origin: &Origin) -> Self {
        Self {
            ip: origin.ip.clone(),
            user_agent: origin.user_agent.clone(),
            ..self
        }
    }
}

pub fn insert(conn: &mut DbConnection, row: &AuditEventRow) -> Result<(), StoreError> {
    diesel::insert_into(audit_events::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Kinds recorded for investigations but not shown to the user: routine, and numerous enough to
/// push the alarming ones off the account page.
pub const NOT_SHOWN_TO_USERS: &[&str] = &[REFRESH_RETRY];

/// A refresh answered within the retry grace from the origin of the rotation it repeats.
pub const REFRESH_RETRY: &str = "refresh_retry";

/// The user's most recent events, as the account page lists them.
pub fn recent_for_user(
    conn: &mut DbConnection,
    user: &str,
    limit: i64,
) -> Result<Vec<AuditEventRow>, StoreError> {
    Ok(audit_events::table
        .filter(audit_events::user_id.eq(user))
        .filter(audit_events::kind.ne_all(NOT_SHOWN_TO_USERS))
        .order(audit_events::at.desc())
        .limit(limit)
        .select(AuditEventRow::as_select())
        .load(conn)?)
}

/// Whether an event of `kind` about `family_id` was recorded at or after `since`.
pub fn recorded_since(
    conn: &mut DbConnection,
    kind: &str,
    family_id: &str,
    since: i64,
) -> Result<bool, StoreError> {
    use diesel::dsl::exists;
    Ok(diesel::select(exists(
        audit_events::table
            .filter(audit_events::kind.eq(kind))
            .filter(audit_events::family_id.eq(family_id))
            .filter(audit_events::at.ge(since)),
    ))
    .get_result(conn)?)
}

pub fn list_kind(conn: &mut DbConnection, kind: &str) -> Result<Vec<AuditEventRow>, StoreError> {
    Ok(audit_events::table
        .filter(audit_events::kind.eq(kind))
        .order(audit_events::at.asc())
        .select(AuditEventRow::as_select())
        .load(conn)?)
}

/// Delete up to `limit` events older than `before`.
pub fn delete_older_than(
    conn: &mut DbConnection,
    before: i64,
    limit: i64,
) -> Result<usize, StoreError> {
    let ids: Vec<String> = audit_events::table
        .filter(audit_events::at.lt(before))
        .select(audit_events::id)
        .limit(limit)
        .load(conn)?;
    Ok(diesel::delete(audit_events::table.filter(audit_events::id.eq_any(&ids))).execute(conn)?)
}

/// Rewrite an event in place (an aggregated event gaining one more occurrence). Returns whether
/// the event still existed.
pub fn update_in_place(conn: &mut DbConnection, row: &AuditEventRow) -> Result<bool, StoreError> {
    let n = diesel::update(audit_events::table.find(&row.id))
        .set((
            audit_events::at.eq(row.at),
            audit_events::ip.eq(&row.ip),
            audit_events::user_agent.eq(&row.user_agent),
            audit_events::detail.eq(&row.detail),
        ))
        .execute(conn)?;
    Ok(n == 1)
}
