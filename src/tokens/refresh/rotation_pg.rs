//! The rotation of `rotation.rs` on PostgreSQL, as one statement in autocommit. A network round
//! trip costs far more than the SQL on PostgreSQL, so the conditional update that spends the
//! token, the family checks, the successor and the family touch are data-modifying CTEs of one
//! statement: one round trip and one commit per rotation.
//!
//! The statement spends the token only when the family's checks pass (the same checks as
//! `rotation::admit`), and returns the token, its family and user as found in any case, so the
//! rare answers — a retry, reuse, an ended family — are decided by the same Rust rule as on
//! SQLite, from that one read. Reuse takes a second statement (revocation, its audit event, its
//! back-channel logout and its feed entry, again one statement); a retry within the grace takes
//! one audit insert.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Text};

use super::revocation::RevocationReason;
use super::rotation::{
    Presented, Refusal, RotateRequest, Rotation, UsedAnswer, admit, answer_retry, judge_used,
    key_matches, log_reuse, record_unproven_use, reuse_event, rotated, settle, successor_unused,
    unknown,
};
use super::{Presentation, RefreshPolicy};
use crate::db::metrics;
use crate::db::models::refresh_families::FamilyRow;
use crate::db::models::refresh_tokens::{self, RefreshTokenRow};
use crate::db::models::revocation_feed::{self, Kind};
use crate::db::models::users::UserRow;
use crate::db::prepared::{Param, Prepared};
use crate::db::{DbConnection, StoreError};

/// Spend the presented token at `$now` if its family is live, issued to `$client`, and `$scope` (if
/// any) is within the family's; then store `$successor` (unless this rotation reaches the cap
/// `$max_rotations`) and touch the family. A family bound to a DPoP key is only spent with a proof
/// by that key (`$jkt`); an unbound one without a proof only if the client allows that
/// (`$unproven_ok`), and a public client's unbound family refreshed with a proof becomes bound to
/// its key (`$bind`, NULL otherwise). The conditional `UPDATE … WHERE used_at IS NULL` decides
/// the race exactly as on SQLite. Whatever happened, the one row returned is the token with its
/// family and user as the statement found them (none: unknown token), and whether its successor
/// exists unused.
const ROTATE: &str = "
WITH found AS (
    SELECT t.generation AS t_generation, t.parent_hash AS t_parent_hash,
           t.created_at AS t_created_at, t.used_at AS t_used_at,
           f.*,
           u.id AS u_id, u.username AS u_username, u.password_hash AS u_password_hash,
           u.security_version AS u_security_version, u.disabled AS u_disabled,
           u.not_before AS u_not_before, u.created_at AS u_created_at,
           u.updated_at AS u_updated_at, u.display_name AS u_display_name,
           u.email AS u_email, u.email_verified AS u_email_verified
    FROM refresh_tokens t
    JOIN refresh_families f ON f.id = t.family_id
    LEFT JOIN users u ON u.id = f.user_id
    WHERE t.token_hash = $hash
),
spent AS (
    UPDATE refresh_tokens t SET used_at = $now
    FROM found
    WHERE t.token_hash = $hash AND t.used_at IS NULL
      AND found.client_id = $client
      AND found.revoked_at IS NULL AND found.revoked_reason IS NULL
      AND $now < found.absolute_expires_at AND $now < found.idle_expires_at
      AND ($max_rotations::bigint IS NULL OR found.rotation_count < $max_rotations)
      AND found.u_id IS NOT NULL AND NOT found.u_disabled
      AND ($scope::text[] IS NULL OR $scope <@ string_to_array(found.scope, ' '))
      AND ((found.dpop_jkt IS NULL AND $unproven_ok) OR found.dpop_jkt = $jkt)
    RETURNING found.id AS family_id, found.t_generation AS generation, found.rotation_count
),
touched AS (
    UPDATE refresh_families f
    SET last_used_at = $now, idle_expires_at = LEAST($now + $idle_ttl, f.absolute_expires_at),
        rotation_count = f.rotation_count + 1, ip = $ip, user_agent = $user_agent,
        dpop_jkt = COALESCE(f.dpop_jkt, $bind)
    FROM spent
    WHERE f.id = spent.family_id
),
successor AS (
    INSERT INTO refresh_tokens (token_hash, family_id, generation, parent_hash, created_at)
    SELECT $successor, family_id, generation + 1, $hash, $now FROM spent
    WHERE $max_rotations::bigint IS NULL OR rotation_count + 1 < $max_rotations
)
SELECT found.*,
       EXISTS (SELECT 1 FROM spent) AS won,
       (nx.token_hash IS NOT NULL AND nx.used_at IS NULL) AS successor_unused
FROM found
LEFT JOIN refresh_tokens nx ON nx.token_hash = $successor";

/// The statement types of diesel's cache.
struct RotateStatement;
struct RevokeForReuseStatement;

/// End the family `$family` with `$reason` at `$now` if it is live; then, only if it did, record
/// the audit event, queue a back-channel logout token when the family's client has a logout URI
/// (as `logout_deliveries::queue` does) and append the family to the revocation feed
/// (`$feed_kind`, under the head row `$head`). The
/// feed's head row is updated in this statement and stays locked until it commits, so entries are
/// numbered in commit order (`revocation_feed.rs`); a missing head row leaves the entry's number
/// NULL and fails the whole statement.
const REVOKE_FOR_REUSE: &str = "
WITH revoked AS (
    UPDATE refresh_families SET revoked_at = $now, revoked_reason = $reason
    WHERE id = $family AND revoked_at IS NULL
    RETURNING id, client_id, user_id
),
event AS (
    INSERT INTO audit_events (id, at, kind, user_id, client_id, family_id, ip, user_agent, detail)
    SELECT $event_id, $now, $kind, $user_id, $client_id, id, $ip, $user_agent, $detail FROM revoked
),
logout AS (
    INSERT INTO logout_deliveries (family_id, client_id, user_id, created_at, attempts,
                                   next_attempt_at)
    SELECT r.id, r.client_id, r.user_id, $now, 0, $now
    FROM revoked r JOIN clients c ON c.client_id = r.client_id
    WHERE c.backchannel_logout_uri IS NOT NULL
),
head AS (
    UPDATE revocation_feed_head SET last_seq = last_seq + 1
    WHERE id = $head AND EXISTS (SELECT 1 FROM revoked)
    RETURNING last_seq
)
INSERT INTO revocation_feed (seq, kind, subject, at, expires_at)
SELECT head.last_seq, $feed_kind, revoked.id, $now, NULL::bigint
FROM revoked LEFT JOIN head ON true";

/// One row of `ROTATE`: the token's columns (`t_`), the family's (as stored), the user's (`u_`,
/// NULL when the user is gone) and the outcome.
#[derive(QueryableByName)]
struct Found {
    #[diesel(sql_type = Bool)]
    won: bool,
    #[diesel(sql_type = Bool)]
    successor_unused: bool,
    #[diesel(sql_type = BigInt)]
    t_generation: i64,
    #[diesel(sql_type = Nullable<Text>)]
    t_parent_hash: Option<String>,
    #[diesel(sql_type = BigInt)]
    t_created_at: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    t_used_at: Option<i64>,
    #[diesel(embed)]
    family: FamilyRow,
    #[diesel(sql_type = Nullable<Text>)]
    u_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    u_username: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    u_password_hash: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    u_security_version: Option<i64>,
    #[diesel(sql_type = Nullable<Bool>)]
    u_disabled: Option<bool>,
    #[diesel(sql_type = Nullable<BigInt>)]
    u_not_before: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    u_created_at: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    u_updated_at: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    u_display_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    u_email: Option<String>,
    #[diesel(sql_type = Nullable<Bool>)]
    u_email_verified: Option<bool>,
}

impl Found {
    fn user(&mut self) -> Option<UserRow> {
        Some(UserRow {
            id: self.u_id.take()?,
            username: self.u_username.take()?,
            password_hash: self.u_password_hash.take()?,
            security_version: self.u_security_version?,
            disabled: self.u_disabled?,
            not_before: self.u_not_before,
            created_at: self.u_created_at?,
            updated_at: self.u_updated_at?,
            display_name: self.u_display_name.take(),
            email: self.u_email.take(),
            email_verified: self.u_email_verified?,
        })
    }

    fn token(&self, hash: &str) -> RefreshTokenRow {
        RefreshTokenRow {
            token_hash: hash.to_string(),
            family_id: self.family.id.clone(),
            generation: self.t_generation,
            parent_hash: self.t_parent_hash.clone(),
            created_at: self.t_created_at,
            used_at: self.t_used_at,
        }
    }
}

fn pg(conn: &mut DbConnection) -> Result<&mut diesel::PgConnection, StoreError> {
    match conn {
        DbConnection::Postgresql(pg) => Ok(pg),
        DbConnection::Sqlite(_) => Err(StoreError::Other(anyhow::anyhow!(
            "the PostgreSQL rotation was called on SQLite"
        ))),
    }
}

/// `rotation::rotate` on PostgreSQL: the same rule, the same answers.
pub(super) fn rotate(
    conn: &mut DbConnection,
    presented: &Presentation,
    req: &RotateRequest,
    policy: &RefreshPolicy,
    now: i64,
) -> Result<Rotation, StoreError> {
    let Presentation {
        hash,
        successor_hash,
        ..
    } = presented;
    // An empty requested scope means the family's, as in `granted_scope`.
    let scope: Option<Vec<String>> = req
        .scope
        .as_ref()
        .filter(|s| !s.is_empty())
        .map(|s| s.iter().map(str::to_string).collect());
    let query = Prepared::<RotateStatement>::new(
        ROTATE,
        vec![
            ("hash", Param::Text(hash.as_str())),
            ("now", Param::BigInt(now)),
            ("client", Param::Text(req.client_id.as_str())),
            ("successor", Param::Text(successor_hash.as_str())),
            ("idle_ttl", Param::BigInt(i64::from(policy.idle_ttl))),
            ("max_rotations", Param::OptionalBigInt(policy.max_rotations)),
            ("ip", Param::OptionalText(req.origin.ip.as_deref())),
            (
                "user_agent",
                Param::OptionalText(req.origin.user_agent.as_deref()),
            ),
            ("scope", Param::OptionalTextArray(scope)),
            ("jkt", Param::OptionalText(req.dpop_jkt.as_deref())),
            (
                "unproven_ok",
                Param::Bool(req.dpop_jkt.is_some() || !req.proof_required),
            ),
            (
                "bind",
                Param::OptionalText(req.dpop_jkt.as_deref().filter(|_| req.bind_on_proof)),
            ),
        ],
    );
    let found = query.get_result::<Found>(pg(conn)?).optional()?;
    let Some(mut found) = found else {
        return Ok(Rotation::Refused(unknown()));
    };
    if found.family.client_id != req.client_id {
        // Nothing was spent: another client cannot spend or revoke this family's token.
        let other = "the refresh token was issued to another client";
        return Ok(Rotation::Refused(Refusal::InvalidGrant(other.into())));
    }
    if let Err(refusal) = key_matches(&found.family, req) {
        // Nothing was spent: the statement checks the key too.
        if found.family.dpop_jkt.is_some() {
            record_unproven_use(conn, &found.family, req, now)?;
        }
        return Ok(Rotation::Refused(refusal));
    }
    let (won, next_unused) = (found.won, found.successor_unused);
    let p = Presented {
        presented,
        token: found.token(hash.as_str()),
        user: found.user(),
        family: found.family,
        req,
        policy,
        now,
    };
    if won {
        // The statement checked what `admit` checks; this computes the scope and the cap.
        return settle(
            admit(&p)
                .and_then(|(scope, last)| rotated(p, scope, last))
                .map_err(Into::into),
        );
    }
    if p.token.used_at.is_none() {
        // Unspent: the family refused it (nothing was written) …
        if let Err(refusal) = admit(&p) {
            return Ok(Rotation::Refused(refusal));
        }
        // … or another request spent it after this statement read it: read it again.
        return answer_lost_race(conn, hash.as_str(), p);
    }
    answer_used(conn, p, || Ok(next_unused))
}

/// Another use of the same token committed between this statement's read and its update: decide
/// on the token, family and successor as that use left them.
fn answer_lost_race(
    conn: &mut DbConnection,
    hash: &str,
    stale: Presented<'_>,
) -> Result<Rotation, StoreError> {
    let Some((token, family, user)) = refresh_tokens::find_with_family(conn, hash)? else {
        return Ok(Rotation::Refused(unknown()));
    };
    if token.used_at.is_none() {
        return Err(StoreError::Other(anyhow::anyhow!(
            "a refresh token the rotation could not spend is still unused"
        )));
    }
    let p = Presented {
        token,
        family,
        user,
        ..stale
    };
    let next_unused = successor_unused(conn, &p)?;
    answer_used(conn, p, || Ok(next_unused))
}

/// The rule of `rotation::answer_used`, each answer one statement in autocommit.
fn answer_used(
    conn: &mut DbConnection,
    p: Presented<'_>,
    successor_unused: impl FnOnce() -> Result<bool, StoreError>,
) -> Result<Rotation, StoreError> {
    match judge_used(&p, successor_unused)? {
        UsedAnswer::Retry { with_successor } => settle(answer_retry(conn, p, with_successor)),
        UsedAnswer::Ended(end) => Ok(Rotation::Refused(Refusal::InvalidGrant(end.description()))),
        UsedAnswer::Reuse => revoke_for_reuse(conn, p),
    }
}

/// Reuse: end the family, record the event the user sees and publish the revocation to the feed,
/// in one statement; only the request that ended the family records and publishes it.
fn revoke_for_reuse(conn: &mut DbConnection, p: Presented<'_>) -> Result<Rotation, StoreError> {
    let event = reuse_event(&p);
    let reason = RevocationReason::ReuseDetected.as_str();
    let query = Prepared::<RevokeForReuseStatement>::new(
        REVOKE_FOR_REUSE,
        vec![
            ("family", Param::Text(&p.family.id)),
            ("now", Param::BigInt(p.now)),
            ("reason", Param::Text(reason)),
            ("event_id", Param::Text(&event.id)),
            ("kind", Param::Text(&event.kind)),
            ("user_id", Param::OptionalText(event.user_id.as_deref())),
            ("client_id", Param::OptionalText(event.client_id.as_deref())),
            ("ip", Param::OptionalText(event.ip.as_deref())),
            (
                "user_agent",
                Param::OptionalText(event.user_agent.as_deref()),
            ),
            ("detail", Param::Text(&event.detail)),
            ("feed_kind", Param::Text(Kind::Family.as_str())),
            ("head", Param::BigInt(revocation_feed::HEAD)),
        ],
    );
    let published = query.execute(pg(conn)?)?;
    metrics::families_revoked(reason, published as u64);
    if published == 1 {
        log_reuse(&p.family);
    }
    Ok(Rotation::Refused(Refusal::ReuseDetected))
}
