//! The revocation feed: an append-only list of revocations, numbered in commit order, that
//! resource servers page through by number (`GET /revocations?after=N`).
//!
//! Why commit order matters: a reader that has seen entry N must already be able to see every
//! entry below N, or a cursor past N skips them for good. So `seq` is not a database sequence
//! (PostgreSQL hands those out before commit: seq 6 can commit while seq 5 is still in flight).
//! Appending first updates the one row of `revocation_feed_head`; its row lock lasts until the
//! appending transaction ends, so the next appender waits there and reads the number this one
//! committed. Numbers are therefore handed out in commit order, on PostgreSQL as on SQLite
//! (where the single writer already serialises commits), across nodes and the CLI alike.
//! PostgreSQL's reuse detection (`tokens/refresh/rotation_pg.rs`) appends in the one statement
//! that revokes the family: the head row it updates stays locked until that statement commits.

use diesel::prelude::*;

use crate::db::schema::{revocation_feed, revocation_feed_head};
use crate::db::{DbConnection, StoreError};

/// What a feed entry revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A refresh family (`sid`): every access token it issued.
    Family,
    /// A user's not-before: every access token of the user issued before `at`.
    User,
    /// One access token (`jti`), revoked through RFC 7009.
    AccessToken,
    /// A deleted client: every access token issued to it up to `at`.
    Client,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Family => "family",
            Kind::User => "user",
            Kind::AccessToken => "access_token",
            Kind::Client => "client",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "family" => Kind::Family,
            "user" => Kind::User,
            "access_token" => Kind::AccessToken,
            "client" => Kind::Client,
            _ => return None,
        })
    }
}

/// One revocation to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub kind: Kind,
    pub subject: String,
    pub at: i64,
    pub expires_at: Option<i64>,
}

impl Revocation {
    pub fn family(sid: &str, at: i64) -> Self {
        Self::new(Kind::Family, sid, at, None)
    }

    pub fn user_not_before(user_id: &str, not_before: i64) -> Self {
        Self::new(Kind::User, user_id, not_before, None)
    }

    pub fn access_token(jti: &str, at: i64, expires_at: i64) -> Self {
        Self::new(Kind::AccessToken, jti, at, Some(expires_at))
    }

    pub fn client_deleted(client_id: &str, at: i64) -> Self {
        Self::new(Kind::Client, client_id, at, None)
    }

    fn new(kind: Kind, subject: &str, at: i64, expires_at: Option<i64>) -> Self {
        Self {
            kind,
            subject: subject.to_string(),
            at,
            expires_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = revocation_feed)]
pub struct FeedRow {
    pub seq: i64,
    pub kind: String,
    pub subject: String,
    pub at: i64,
    pub expires_at: Option<i64>,
}

/// The head row's key: the table holds exactly this one row.
pub(crate) const HEAD: i64 = 1;

/// Append `revocations` to the feed, in the caller's transaction — the one that made them, so
/// they commit or roll back together. Call it as the revocation's last statement: from here to
/// the commit the transaction holds the head row, and every other revocation waits for it.
pub fn publish(conn: &mut DbConnection, revocations: &[Revocation]) -> Result<(), StoreError> {
    if revocations.is_empty() {
        return Ok(());
    }
    let count = i64::try_from(revocations.len())
        .map_err(|_| StoreError::Other(anyhow::anyhow!("too many revocations at once")))?;
    // A savepoint when the caller has a transaction (as it must); atomic on its own otherwise.
    conn.transaction(|c| {
        use revocation_feed_head::dsl as h;
        let claimed = diesel::update(h::revocation_feed_head.find(HEAD))
            .set(h::last_seq.eq(h::last_seq + count))
            .execute(c)?;
        if claimed != 1 {
            return Err(StoreError::Other(anyhow::anyhow!(
                "the revocation feed has no head row; run the migrations"
            )));
        }
        let last: i64 = h::revocation_feed_head
            .find(HEAD)
            .select(h::last_seq)
            .get_result(c)?;
        let first = last - count + 1;
        let rows: Vec<FeedRow> = revocations
            .iter()
            .zip(first..)
            .map(|(r, seq)| FeedRow {
                seq,
                kind: r.kind.as_str().to_string(),
                subject: r.subject.clone(),
                at: r.at,
                expires_at: r.expires_at,
            })
            .collect();
        // One statement per row: diesel's multi-backend connection has no batch insert.
        for row in &rows {
            diesel::insert_into(revocation_feed::table)
                .values(row)
                .execute(c)?;
        }
        Ok(())
    })
}

/// The number of the newest committed entry (0 before the first) and the current epoch.
pub fn head(conn: &mut DbConnection) -> Result<(i64, String), StoreError> {
    use revocation_feed_head::dsl as h;
    Ok(h::revocation_feed_head
        .find(HEAD)
        .select((h::last_seq, h::epoch))
        .get_result::<(i64, String)>(conn)
        .optional()?
        .unwrap_or_default())
}

/// Start a new epoch (at every server start): cursors of the previous one are not trusted, since
/// the database may have been restored from a backup whose numbers run below them.
pub fn new_epoch(conn: &mut DbConnection) -> Result<(), StoreError> {
    use revocation_feed_head::dsl as h;
    let epoch = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    diesel::update(h::revocation_feed_head.find(HEAD))
        .set(h::epoch.eq(epoch))
        .execute(conn)?;
    Ok(())
}

/// Up to `limit` entries numbered after `after` that happened at or after `kept_from`, oldest
/// number first.
pub fn page(
    conn: &mut DbConnection,
    after: i64,
    kept_from: i64,
    limit: i64,
) -> Result<Vec<FeedRow>, StoreError> {
    use revocation_feed::dsl as f;
    Ok(f::revocation_feed
        .filter(f::seq.gt(after))
        .filter(f::at.ge(kept_from))
        .order(f::seq.asc())
        .limit(limit)
        .select(FeedRow::as_select())
        .load(conn)?)
}

/// Delete up to `limit` entries that happened before `before`: every token they cover has expired.
pub fn delete_older_than(
    conn: &mut DbConnection,
    before: i64,
    limit: i64,
) -> Result<usize, StoreError> {
    use revocation_feed::dsl as f;
    let seqs: Vec<i64> = f::revocation_feed
        .filter(f::at.lt(before))
        .select(f::seq)
        .limit(limit)
        .load(conn)?;
    if seqs.is_empty() {
        return Ok(0);
    }
    Ok(diesel::delete(f::revocation_feed.filter(f::seq.eq_any(&seqs))).execute(conn)?)
}
