//! One refresh token used by 32 requests at once: exactly one successor ever exists. With a retry
//! grace every request gets that same successor; without one exactly one request succeeds and the
//! rest are reuse. The same across two server instances sharing one PostgreSQL database.

use std::collections::HashSet;
use std::sync::Arc;

use lineage::clock::ManualClock;
use lineage::domain::Seconds;
use serde_json::Value;
use tokio::sync::Barrier;

use crate::helpers::{
    Backend, FAMILY_SCOPE, TestApp, TestClient, TestDatabase, basic_auth, create_user, family,
    refresh_client, spawn_app_on, start_family, token_rows, unused_count,
};

const TASKS: usize = 32;

both_backends!(
    concurrent_use_with_grace_yields_one_successor,
    concurrent_use_without_grace_has_exactly_one_winner,
);

/// `TASKS` requests presenting `token`, released together, spread over `nodes` in turn.
async fn stampede(nodes: &[&TestApp], client: &TestClient, token: &str) -> Vec<(u16, Value)> {
    let barrier = Arc::new(Barrier::new(TASKS));
    let auth = basic_auth(&client.id, &client.secret);
    let body =
        crate::helpers::form_body(&[("grant_type", "refresh_token"), ("refresh_token", token)]);
    let mut handles = Vec::new();
    for i in 0..TASKS {
        let url = nodes[i % nodes.len()].url("/token");
        let (barrier, auth, body) = (Arc::clone(&barrier), auth.clone(), body.clone());
        handles.push(tokio::spawn(async move {
            // One client per task: separate connections, so the requests really overlap.
            let http = reqwest::Client::new();
            let req = http
                .post(url)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .header("Authorization", auth)
                .body(body);
            barrier.wait().await;
            let resp = req.send().await.expect("POST /token");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.expect("JSON body"))
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

/// Grace > 0: every request succeeds and every one carries the same successor.
async fn assert_one_successor_for_all(
    app: &TestApp,
    family_id: &str,
    results: &[(u16, Value)],
    client: &TestClient,
) {
    let mut successors = HashSet::new();
    for (status, body) in results {
        assert_eq!(
            *status, 200,
            "within the grace every concurrent use is a retry: {body}"
        );
        successors.insert(
            body["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_string(),
        );
    }
    assert_eq!(successors.len(), 1, "one successor for all: {successors:?}");
    assert_eq!(unused_count(app, family_id).await, 1, "one live token");
    assert_eq!(
        token_rows(app, family_id).await.len(),
        2,
        "exactly one successor row"
    );
    let row = family(app, family_id).await;
    assert_eq!(row.revoked_at, None);
    assert_eq!(row.rotation_count, 1);
    // The successor carries the family on.
    let next = successors.into_iter().next().expect("a successor");
    crate::helpers::refresh_ok(app, client, &next).await;
}

/// Grace 0: one winner; every other use is reuse and revokes the family.
async fn assert_exactly_one_winner(app: &TestApp, family_id: &str, results: &[(u16, Value)]) {
    let winners: Vec<_> = results.iter().filter(|(s, _)| *s == 200).collect();
    assert_eq!(winners.len(), 1, "exactly one success: {results:?}");
    for (status, body) in results.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 400, "{body}");
        assert_eq!(body["error"], "invalid_grant", "{body}");
    }
    assert_eq!(
        unused_count(app, family_id).await,
        1,
        "one successor, never used"
    );
    assert_eq!(
        token_rows(app, family_id).await.len(),
        2,
        "exactly one successor row"
    );
    let row = family(app, family_id).await;
    assert_eq!(row.rotation_count, 1);
    assert_eq!(row.revoked_reason.as_deref(), Some("reuse_detected"));
}

async fn concurrent_use_with_grace_yields_one_successor(backend: Backend) {
    let Some(fx) =
        crate::helpers::Fixture::new(backend, |s| s.refresh_grace = Seconds::new(5)).await
    else {
        return;
    };
    for _ in 0..3 {
        let (family_id, token) = fx.start().await;
        let results = stampede(&[&fx.app], &fx.client, &token).await;
        assert_one_successor_for_all(&fx.app, &family_id, &results, &fx.client).await;
    }
}

async fn concurrent_use_without_grace_has_exactly_one_winner(backend: Backend) {
    let Some(fx) = crate::helpers::Fixture::new(backend, |s| s.refresh_grace = Seconds::ZERO).await
    else {
        return;
    };
    for _ in 0..3 {
        let (family_id, token) = fx.start().await;
        let results = stampede(&[&fx.app], &fx.client, &token).await;
        assert_exactly_one_winner(&fx.app, &family_id, &results).await;
    }
}

/// Two nodes on one PostgreSQL database, one clock, the same key secret.
async fn two_nodes(grace: Seconds) -> Option<(TestApp, TestApp)> {
    let database = Arc::new(TestDatabase::create(Backend::Postgres)?);
    let clock = ManualClock::starting_now();
    let a = spawn_app_on(Arc::clone(&database), clock.clone(), |s| {
        s.refresh_grace = grace
    })
    .await;
    let b = spawn_app_on(database, clock, |s| s.refresh_grace = grace).await;
    Some((a, b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_concurrent_use_with_grace_yields_one_successor() {
    let Some((a, b)) = two_nodes(Seconds::new(5)).await else {
        return;
    };
    let user = create_user(&a, "alice").await;
    let client = refresh_client(&a, FAMILY_SCOPE).await;
    for _ in 0..3 {
        let (family_id, token) = start_family(&a, &user.id, &client.id, FAMILY_SCOPE).await;
        let results = stampede(&[&a, &b], &client, &token).await;
        assert_one_successor_for_all(&b, &family_id, &results, &client).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_concurrent_use_without_grace_has_exactly_one_winner() {
    let Some((a, b)) = two_nodes(Seconds::ZERO).await else {
        return;
    };
    let user = create_user(&a, "alice").await;
    let client = refresh_client(&a, FAMILY_SCOPE).await;
    for _ in 0..3 {
        let (family_id, token) = start_family(&a, &user.id, &client.id, FAMILY_SCOPE).await;
        let results = stampede(&[&a, &b], &client, &token).await;
        assert_exactly_one_winner(&a, &family_id, &results).await;
    }
}
