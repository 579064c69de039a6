//! Property test of one refresh family driven through the library on SQLite with explicit `now`:
//! random interleavings of rotation, reuse of any earlier generation, retries, presentation by
//! another client, revocation, introspection and the passing of time (into the grace, past the
//! idle timeout, past the absolute lifetime). A small reference model predicts every outcome, and
//! after every step the table must show exactly one unused token (never two live ones), and once
//! the family is revoked nothing succeeds again.

use lineage::configuration::KeySecret;
use lineage::db::models::refresh_families;
use lineage::db::models::refresh_tokens;
use lineage::db::models::users::{self, UserRow};
use lineage::db::{Database, PoolOptions};
use lineage::domain::{Scope, Seconds};
use lineage::tokens::refresh::{
    self, NewFamily, Origin, RefreshPolicy, RotateRequest, Rotation, SuccessorKey,
};
use lineage::tokens::secret::PlainToken;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::helpers::{Backend, KEY_SECRET, TestDatabase};

const CLIENT: &str = "proptest-client";
const OTHER_CLIENT: &str = "another-client";
const START: i64 = 1_800_000_000;

#[derive(Debug, Clone)]
enum Op {
    /// Present the newest token (the normal next refresh).
    Newest,
    /// Present the newest token's parent: a retry after a lost response, or reuse.
    Parent,
    /// Present the token issued `n`-th (modulo how many there are): reuse, or a retry.
    Earlier(usize),
    /// Present a token as a client it was not issued to.
    WrongClient(usize),
    Revoke,
    /// Introspect the `n`-th token.
    Inspect(usize),
    /// Let time pass: within the grace, a while, past the idle timeout or the absolute lifetime.
    Advance(i64),
}

fn op() -> impl Strategy<Value = Op> {
    // Revocation is rare, so most cases live long enough to rotate, retry and be reused.
    prop_oneof![
        12 => Just(Op::Newest),
        3 => Just(Op::Parent),
        2 => (0usize..64).prop_map(Op::Earlier),
        2 => (0usize..64).prop_map(Op::WrongClient),
        1 => Just(Op::Revoke),
        3 => (0usize..64).prop_map(Op::Inspect),
        5 => (0i64..=3).prop_map(Op::Advance),
        2 => (4i64..=40).prop_map(Op::Advance),
        1 => (60i64..=400).prop_map(Op::Advance),
    ]
}

fn policy() -> impl Strategy<Value = RefreshPolicy> {
    (
        30i64..=200,
        1i64..=4,
        0i64..=4,
        proptest::option::weighted(0.3, 1i64..=20),
    )
        .prop_map(|(idle, factor, grace, max)| RefreshPolicy {
            idle_ttl: Seconds::new(idle),
            absolute_ttl: Seconds::new(idle * factor),
            grace: Seconds::new(grace),
            max_rotations: max,
        })
}

/// What the family should look like.
struct Model {
    policy: RefreshPolicy,
    /// Every token issued, in order; `tokens[i + 1]` is the successor of `tokens[i]`.
    tokens: Vec<(PlainToken, Option<i64>)>,
    revoked: bool,
    rotations: i64,
    idle_expires_at: i64,
    absolute_expires_at: i64,
}

impl Model {
    fn live(&self, now: i64) -> bool {
        !self.revoked
            && now < self.absolute_expires_at
            && now < self.idle_expires_at
            && self.policy.max_rotations.is_none_or(|m| self.rotations < m)
    }
}

fn fail(msg: impl Into<String>) -> TestCaseError {
    TestCaseError::fail(msg.into())
}

fn run_case(
    db: &Database,
    key: &SuccessorKey,
    user_id: &str,
    policy: RefreshPolicy,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let mut now = START;
    let spec = NewFamily {
        user_id: user_id.to_string(),
        client_id: CLIENT.into(),
        scope: Scope::parse("read write").map_err(fail)?,
        device_name: None,
        origin: Origin::default(),
        dpop_jkt: None,
    };
    let (family, first) = db
        .read_sync(|c| refresh::start_family(c, spec, &policy, now))
        .map_err(|e| fail(e.to_string()))?;
    let family_id = family.id;
    let mut model = Model {
        policy,
        tokens: vec![(first, None)],
        revoked: false,
        rotations: 0,
        idle_expires_at: family.idle_expires_at,
        absolute_expires_at: family.absolute_expires_at,
    };
    prop_assert_eq!(model.absolute_expires_at, now + policy.absolute_ttl);

    for (step, op) in ops.iter().enumerate() {
        let revoked_before = model.revoked;
        match op {
            Op::Advance(d) => now += d,
            Op::Revoke => {
                let did = db
                    .read_sync(|c| {
                        refresh::revoke_family(
                            c,
                            &family_id,
                            lineage::tokens::refresh::RevocationReason::RevokedByAdmin,
                            &Origin::default(),
                            now,
                        )
                    })
                    .map_err(|e| fail(e.to_string()))?;
                prop_assert_eq!(did, !model.revoked, "step {}: revoke", step);
                model.revoked = true;
            }
            Op::Inspect(n) => {
                let i = n % model.tokens.len();
                let (token, used) = model.tokens[i].clone();
                let seen = db
                    .read_sync(|c| refresh::inspect(c, &token, &policy, now))
                    .map_err(|e| fail(e.to_string()))?;
                prop_assert_eq!(
                    seen.is_some(),
                    used.is_none() && model.live(now),
                    "step {}: introspection of token {}",
                    step,
                    i
                );
            }
            Op::WrongClient(n) => {
                let i = n % model.tokens.len();
                let token = model.tokens[i].0.clone();
                let out = rotate(db, key, &token, OTHER_CLIENT, &policy, now)?;
                prop_assert!(out.is_err(), "step {}: another client spent a token", step);
            }
            Op::Newest | Op::Parent | Op::Earlier(_) => {
                let newest = model.tokens.len() - 1;
                let i = match op {
                    Op::Earlier(n) => n % model.tokens.len(),
                    Op::Parent => newest.saturating_sub(1),
                    _ => newest,
                };
                let (token, used_at) = model.tokens[i].clone();
                let out = rotate(db, key, &token, CLIENT, &policy, now)?;
                let expected_successor = key.successor(&token);
                match used_at {
                    None => {
                        // The current token: a rotation if the family is live.
                        if model.live(now) {
                            let r = out.map_err(|e| {
                                fail(format!(
                                    "step {step}: rotation of a live family failed: {e}"
                                ))
                            })?;
                            prop_assert!(!r.retried);
                            model.tokens[i].1 = Some(now);
                            model.rotations += 1;
                            let last = policy.max_rotations == Some(model.rotations);
                            match r.refresh_token {
                                // The rotation that reaches the cap hands out no successor.
                                None => prop_assert!(last, "step {}: no successor", step),
                                Some(next) => {
                                    prop_assert!(!last, "step {}: a successor past the cap", step);
                                    prop_assert!(
                                        next == expected_successor,
                                        "step {}: the successor is HMAC(parent)",
                                        step
                                    );
                                    model.tokens.push((next, None));
                                }
                            }
                            model.idle_expires_at =
                                (now + policy.idle_ttl).min(model.absolute_expires_at);
                        } else {
                            prop_assert!(out.is_err(), "step {}: an ended family rotated", step);
                        }
                    }
                    Some(used) => {
                        let grace = policy.grace.get();
                        let within_grace = grace > 0 && now - used <= grace;
                        let successor = model.tokens.get(i + 1).cloned();
                        // The token whose use reached the cap has no successor.
                        let retry_of_last = successor.is_none()
                            && within_grace
                            && !model.revoked
                            && now < model.absolute_expires_at
                            && now < model.idle_expires_at;
                        let retry = within_grace
                            && successor.as_ref().is_some_and(|s| s.1.is_none())
                            && model.live(now);
                        if retry || retry_of_last {
                            let r = out.map_err(|e| {
                                fail(format!("step {step}: a retry within the grace failed: {e}"))
                            })?;
                            prop_assert!(r.retried);
                            prop_assert!(
                                r.refresh_token == successor.map(|s| s.0),
                                "step {}: a retry returns the same successor",
                                step
                            );
                        } else {
                            prop_assert!(out.is_err(), "step {}: reuse succeeded", step);
                            // A family that already ended by expiry or its rotation cap just says
                            // so; reuse in a live (or revoked) family revokes it.
                            if model.revoked || model.live(now) {
                                model.revoked = true;
                            }
                        }
                    }
                }
            }
        }

        // Invariants, read back from the tables.
        if revoked_before {
            prop_assert!(model.revoked);
        }
        let (row, unused, total) = db
            .read_sync(|c| {
                Ok((
                    refresh_families::find(c, &family_id)?,
                    refresh_tokens::count_unused_of(c, &family_id)?,
                    {
                        use diesel::prelude::*;
                        use lineage::db::schema::refresh_tokens::dsl as t;
                        t::refresh_tokens
                            .filter(t::family_id.eq(&family_id))
                            .count()
                            .get_result::<i64>(c)?
                    },
                ))
            })
            .map_err(|e: lineage::db::StoreError| fail(e.to_string()))?;
        let row = row.ok_or_else(|| fail("the family vanished"))?;
        let capped = policy.max_rotations == Some(model.rotations);
        prop_assert_eq!(
            unused,
            i64::from(!capped),
            "step {}: exactly one unused token (none once capped), never two",
            step
        );
        prop_assert_eq!(total, model.tokens.len() as i64, "step {}: no branch", step);
        prop_assert_eq!(row.revoked_at.is_some(), model.revoked, "step {}", step);
        prop_assert_eq!(row.rotation_count, model.rotations, "step {}", step);
        prop_assert_eq!(row.idle_expires_at, model.idle_expires_at, "step {}", step);
        prop_assert_eq!(row.absolute_expires_at, model.absolute_expires_at);
        prop_assert!(row.idle_expires_at <= row.absolute_expires_at);
    }

    // Once revoked, nothing of the family ever succeeds again.
    if model.revoked {
        for (i, (token, _)) in model.tokens.iter().enumerate() {
            let out = rotate(db, key, token, CLIENT, &policy, now)?;
            prop_assert!(out.is_err(), "token {} of a revoked family worked", i);
        }
    }
    Ok(())
}

/// Rotate; a storage error fails the case, a refusal is an `Err` the caller checks.
fn rotate(
    db: &Database,
    key: &SuccessorKey,
    token: &PlainToken,
    client: &str,
    policy: &RefreshPolicy,
    now: i64,
) -> Result<Result<refresh::Rotated, String>, TestCaseError> {
    let req = RotateRequest {
        client_id: lineage::domain::ClientId::parse(client).map_err(fail)?,
        scope: None,
        origin: Origin::default(),
        dpop_jkt: None,
        proof_required: false,
        bind_on_proof: false,
    };
    let out = db
        .read_sync(|c| {
            refresh::rotate(
                c,
                &refresh::Presentation::new(key, token),
                &req,
                policy,
                now,
            )
        })
        .map_err(|e| fail(format!("storage error: {e}")))?;
    match out {
        Rotation::Issued(r) => Ok(Ok(*r)),
        Rotation::Refused(refused) => Ok(Err(refused.to_string())),
    }
}

#[test]
fn random_interleavings_never_leave_two_live_tokens() {
    let database = TestDatabase::create(Backend::Sqlite).expect("a SQLite test database");
    let db = Database::open(&database.url(), &PoolOptions::default()).expect("open");
    db.migrate().expect("migrate");
    let user_id = uuid::Uuid::new_v4().to_string();
    let row = UserRow {
        id: user_id.clone(),
        username: "prop".into(),
        // Never checked here: no sign-in happens in this test.
        password_hash: "unused".into(),
        security_version: 1,
        disabled: false,
        not_before: None,
        created_at: START,
        updated_at: START,
        display_name: None,
        email: None,
        email_verified: false,
    };
    db.read_sync(|c| users::insert(c, &row))
        .expect("insert user");
    let key = SuccessorKey::new(&KeySecret::new(KEY_SECRET.to_string()));

    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (policy(), proptest::collection::vec(op(), 1..80));
    let result = runner.run(&strategy, |(policy, ops)| {
        run_case(&db, &key, &user_id, policy, &ops)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
