//! The feed follows commit order, not the clock (PostgreSQL: these need a second connection that
//! holds locks while the server works). A revocation that commits long after its timestamp still
//! reaches a poller that polled in between; an entry numbered but not yet committed holds back
//! the ones after it, so no reader ever sees entry N+1 while N may still appear.

use std::time::{Duration, Instant};

use diesel::connection::{SimpleConnection, TransactionManager};
use diesel::sql_types::BigInt;
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};
use lineage::db::DbConnection;
use lineage::db::models::revocation_feed::{self, Revocation};
use lineage_resource::{PollOutcome, TokenError};

use crate::helpers::{
    Backend, Fixture, TestApp, basic_auth, feed_json, feed_reader, feed_sids, revoke,
};
use crate::revocation::feed_poller::validator;

#[derive(QueryableByName)]
struct Waiting {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Wait (bounded) until one of the server's connections waits for a lock.
async fn await_lock_wait(app: &TestApp) {
    let (name, mut admin) = app
        .database
        .postgres_admin()
        .expect("a PostgreSQL test database");
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let waiting: Waiting = diesel::sql_query(format!(
                "SELECT count(*) AS n FROM pg_stat_activity \
                 WHERE datname = '{name}' AND wait_event_type = 'Lock'"
            ))
            .get_result(&mut admin)
            .expect("read pg_stat_activity");
            if waiting.n > 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the request never blocked on the lock"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .expect("wait for the lock");
}

fn database_url(app: &TestApp) -> String {
    app.database.url_string()
}

/// POST /revoke in the background (it is expected to block for a while).
fn revoke_in_background(
    fx: &Fixture,
    token: &str,
) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
    let req = fx
        .app
        .api
        .post(fx.app.url("/revoke"))
        .header(
            "Authorization",
            basic_auth(&fx.client.id, &fx.client.secret),
        )
        .form(&[("token", token.to_string())]);
    tokio::spawn(req.send())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_that_commits_late_still_reaches_the_poller() {
    let Some(fx) = Fixture::new(Backend::Postgres, |_| {}).await else {
        return;
    };
    let app = &fx.app;
    let validator = validator(app, Some(&feed_reader(app).await), 1000).await;
    let (late_id, late) = fx.start().await;
    let late = fx.rotate(&late).await;
    let (_, prompt) = fx.start().await;
    let prompt = fx.rotate(&prompt).await;
    validator.validate(&late.access_token).await.expect("valid");

    // Another connection holds the family's row, so /revoke blocks inside its transaction,
    // after it has read the clock.
    let mut locker = PgConnection::establish(&database_url(app)).expect("connect");
    locker
        .batch_execute(&format!(
            "BEGIN; SELECT id FROM refresh_families WHERE id = '{late_id}' FOR UPDATE"
        ))
        .expect("lock the family");
    let revoking = revoke_in_background(&fx, &late.refresh_token);
    await_lock_wait(app).await;

    // Meanwhile time passes (well past any overlap a poller might allow), another revocation
    // commits, and the poller reads it.
    app.clock.advance(30);
    revoke(app, &fx.client, &prompt.refresh_token, None).await;
    let polled = validator.poll_revocations().await.expect("poll");
    assert!(
        matches!(polled, PollOutcome::Updated { families: 1, .. }),
        "{polled:?}"
    );
    assert_eq!(
        validator
            .validate(&prompt.access_token)
            .await
            .map_err(|e| e.token_error().cloned()),
        Err(Some(TokenError::Revoked))
    );
    validator
        .validate(&late.access_token)
        .await
        .expect("not revoked yet");
    app.clock.advance(30);
    validator.poll_revocations().await.expect("poll");

    // The lock goes; the blocked revocation commits, stamped a minute ago, and is delivered.
    locker.batch_execute("COMMIT").expect("release the lock");
    let resp = revoking.await.expect("join").expect("POST /revoke");
    assert_eq!(resp.status(), 200);
    validator.poll_revocations().await.expect("poll");
    assert_eq!(
        validator
            .validate(&late.access_token)
            .await
            .map_err(|e| e.token_error().cloned()),
        Err(Some(TokenError::Revoked)),
        "the late revocation must reach the poller"
    );
    let body = feed_json(app).await;
    assert_eq!(
        feed_sids(&body).last(),
        Some(&late_id),
        "numbered after the other: {body}"
    );
    assert_eq!(body["families"][1]["revoked_at"], app.now() - 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_in_flight_holds_back_the_ones_after_it() {
    let Some(fx) = Fixture::new(Backend::Postgres, |_| {}).await else {
        return;
    };
    let app = &fx.app;
    let validator = validator(app, Some(&feed_reader(app).await), 1000).await;
    let (family_id, token) = fx.start().await;
    let tokens = fx.rotate(&token).await;

    // A transaction on another connection has appended an entry and not committed yet.
    type Transactions = <DbConnection as Connection>::TransactionManager;
    let mut in_flight = DbConnection::establish(&database_url(app)).expect("connect");
    Transactions::begin_transaction(&mut in_flight).expect("BEGIN");
    revocation_feed::publish(
        &mut in_flight,
        &[Revocation::family("in-flight", app.now())],
    )
    .expect("publish");

    // A revocation through the server must wait to be numbered after it, not overtake it.
    let revoking = revoke_in_background(&fx, &tokens.refresh_token);
    await_lock_wait(app).await;
    assert_eq!(
        validator.poll_revocations().await,
        Ok(PollOutcome::NotModified),
        "nothing committed yet"
    );

    Transactions::commit_transaction(&mut in_flight).expect("COMMIT");
    assert_eq!(
        revoking
            .await
            .expect("join")
            .expect("POST /revoke")
            .status(),
        200
    );
    assert!(matches!(
        validator.poll_revocations().await,
        Ok(PollOutcome::Updated { families: 2, .. })
    ));
    let body = feed_json(app).await;
    assert_eq!(feed_sids(&body), vec!["in-flight".to_string(), family_id]);
    assert_eq!(
        validator
            .validate(&tokens.access_token)
            .await
            .map_err(|e| e.token_error().cloned()),
        Err(Some(TokenError::Revoked))
    );
}
