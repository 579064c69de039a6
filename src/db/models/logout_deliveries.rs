//! The back-channel logout outbox: one row per family that ended early while its client had a
//! `backchannel_logout_uri`, queued in the revoking transaction and sent by `backchannel`.

use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::{clients, logout_deliveries, refresh_families};
use crate::db::{DbConnection, StoreError};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = logout_deliveries)]
pub struct DeliveryRow {
    pub family_id: String,
    pub client_id: String,
    pub user_id: String,
    pub created_at: i64,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_attempt_at: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
    pub given_up_at: Option<i64>,
    pub lease_id: Option<String>,
    pub leased_until: Option<i64>,
}

/// A row this node holds the lease on, with the URI its client has now.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub row: DeliveryRow,
    pub uri: String,
    /// The client's `id_token_signed_response_alg`, which signs its logout tokens too.
    pub alg: String,
}

/// Queue a logout token for each of `family_ids` whose client has a logout URI (a deleted
/// client has no row, so gets nothing). Called inside the revoking transaction. Returns how
/// many were queued.
pub fn queue(
    conn: &mut DbConnection,
    family_ids: &[String],
    now: i64,
) -> Result<usize, StoreError> {
    if family_ids.is_empty() {
        return Ok(0);
    }
    let to_tell: Vec<(String, String, String)> = refresh_families::table
        .inner_join(clients::table)
        .filter(refresh_families::id.eq_any(family_ids))
        .filter(clients::backchannel_logout_uri.is_not_null())
        .select((
            refresh_families::id,
            refresh_families::client_id,
            refresh_families::user_id,
        ))
        .load(conn)?;
    for (family_id, client_id, user_id) in &to_tell {
        diesel::insert_into(logout_deliveries::table)
            .values((
                logout_deliveries::family_id.eq(family_id),
                logout_deliveries::client_id.eq(client_id),
                logout_deliveries::user_id.eq(user_id),
                logout_deliveries::created_at.eq(now),
                logout_deliveries::attempts.eq(0),
                logout_deliveries::next_attempt_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(to_tell.len())
}

/// A due row's client, if it still exists: its id, logout URI and signing algorithm.
type ClientSide = (Option<String>, Option<String>, Option<String>);

/// Take up to `limit` due rows for this node until `leased_until`. Each row is taken by one
/// conditional UPDATE (not finished, lease free or run out): of two nodes reading the same row,
/// only one gets it. Rows whose client is gone or has no logout URI any more are given up here.
pub fn claim(
    conn: &mut DbConnection,
    now: i64,
    lease_id: &str,
    leased_until: i64,
    limit: i64,
) -> Result<Vec<Claimed>, StoreError> {
    use logout_deliveries::dsl as d;
    let due: Vec<(DeliveryRow, ClientSide)> = d::logout_deliveries
        .left_join(clients::table)
        .filter(d::delivered_at.is_null())
        .filter(d::given_up_at.is_null())
        .filter(d::next_attempt_at.le(now))
        .filter(d::leased_until.is_null().or(d::leased_until.le(now)))
        .order(d::next_attempt_at.asc())
        .limit(limit)
        .select((
            DeliveryRow::as_select(),
            (
                clients::client_id.nullable(),
                clients::backchannel_logout_uri.nullable(),
                clients::id_token_signed_response_alg.nullable(),
            ),
        ))
        .load(conn)?;
    let mut claimed = Vec::with_capacity(due.len());
    for (row, (client, uri, alg)) in due {
        let free = d::logout_deliveries
            .filter(d::family_id.eq(&row.family_id))
            .filter(d::delivered_at.is_null())
            .filter(d::given_up_at.is_null())
            .filter(d::leased_until.is_null().or(d::leased_until.le(now)));
        let Some(uri) = uri else {
            let why = if client.is_none() {
                "the client was deleted"
            } else {
                "the client no longer has a back-channel logout URI"
            };
            diesel::update(free)
                .set((d::given_up_at.eq(now), d::last_error.eq(why)))
                .execute(conn)?;
            continue;
        };
        let taken = diesel::update(free)
            .set((d::lease_id.eq(lease_id), d::leased_until.eq(leased_until)))
            .execute(conn)?;
        if taken == 1 {
            let alg = alg.unwrap_or_default();
            claimed.push(Claimed { row, uri, alg });
        }
    }
    Ok(claimed)
}

/// How one attempt ended.
#[derive(Debug, Clone)]
pub enum Attempt {
    Delivered,
    /// Failed; try again at `retry_at`, or give up when `None`.
    Failed {
        error: String,
        retry_at: Option<i64>,
    },
}

/// Record an attempt on a row this node still holds the lease on (a lease that ran out and was
/// taken by another node makes this a no-op). Returns whether it was recorded.
pub fn record(
    conn: &mut DbConnection,
    family_id: &str,
    lease_id: &str,
    attempt: &Attempt,
    now: i64,
) -> Result<bool, StoreError> {
    use logout_deliveries::dsl as d;
    let mine = d::logout_deliveries
        .filter(d::family_id.eq(family_id))
        .filter(d::lease_id.eq(lease_id));
    let released = (
        d::attempts.eq(d::attempts + 1),
        d::last_attempt_at.eq(now),
        d::lease_id.eq(None::<String>),
        d::leased_until.eq(None::<i64>),
    );
    let n = match attempt {
        Attempt::Delivered => diesel::update(mine)
            .set((released, d::delivered_at.eq(now)))
            .execute(conn)?,
        Attempt::Failed {
            error,
            retry_at: Some(at),
        } => diesel::update(mine)
            .set((released, d::last_error.eq(error), d::next_attempt_at.eq(at)))
            .execute(conn)?,
        Attempt::Failed {
            error,
            retry_at: None,
        } => diesel::update(mine)
            .set((released, d::last_error.eq(error), d::given_up_at.eq(now)))
            .execute(conn)?,
    };
    Ok(n == 1)
}

/// A client's deliveries, for `lineage client show`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct DeliveryCounts {
    pub pending: i64,
    pub delivered: i64,
    pub given_up: i64,
    /// The error of the most recent failed attempt, if any is still on record.
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
}

pub fn counts_for_client(
    conn: &mut DbConnection,
    client_id: &str,
) -> Result<DeliveryCounts, StoreError> {
    use logout_deliveries::dsl as d;
    let of_client = || d::logout_deliveries.filter(d::client_id.eq(client_id));
    let delivered: i64 = of_client()
        .filter(d::delivered_at.is_not_null())
        .count()
        .get_result(conn)?;
    let given_up: i64 = of_client()
        .filter(d::given_up_at.is_not_null())
        .count()
        .get_result(conn)?;
    let pending: i64 = of_client()
        .filter(d::delivered_at.is_null())
        .filter(d::given_up_at.is_null())
        .count()
        .get_result(conn)?;
    let last: Option<(Option<String>, Option<i64>)> = of_client()
        .filter(d::last_error.is_not_null())
        .order((d::last_attempt_at.desc(), d::family_id.asc()))
        .select((d::last_error, d::last_attempt_at))
        .limit(1)
        .get_result(conn)
        .optional()?;
    let (last_error, last_error_at) = last.unwrap_or_default();
    Ok(DeliveryCounts {
        pending,
        delivered,
        given_up,
        last_error,
        last_error_at,
    })
}

/// Rows still to be sent, of every client (the metrics' backlog).
pub fn count_pending(conn: &mut DbConnection) -> Result<i64, StoreError> {
    use logout_deliveries::dsl as d;
    Ok(d::logout_deliveries
        .filter(d::delivered_at.is_null())
        .filter(d::given_up_at.is_null())
        .count()
        .get_result(conn)?)
}

/// A deleted client's rows: it will never be told, and its counts went with it.
pub fn delete_for_client(conn: &mut DbConnection, client_id: &str) -> Result<usize, StoreError> {
    use logout_deliveries::dsl as d;
    Ok(diesel::delete(d::logout_deliveries.filter(d::client_id.eq(client_id))).execute(conn)?)
}

/// Delete up to `limit` rows delivered or given up before `before`.
pub fn delete_finished_before(
    conn: &mut DbConnection,
    before: i64,
    limit: i64,
) -> Result<usize, StoreError> {
    use logout_deliveries::dsl as d;
    let ids: Vec<String> = d::logout_deliveries
        .filter(d::delivered_at.lt(before).or(d::given_up_at.lt(before)))
        .select(d::family_id)
        .limit(limit)
        .load(conn)?;
    Ok(diesel::delete(d::logout_deliveries.filter(d::family_id.eq_any(&ids))).execute(conn)?)
}
