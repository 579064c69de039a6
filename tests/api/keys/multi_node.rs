//! Several server instances on one PostgreSQL database share nothing but the database, and still
//! agree on the signing keys: a token from either node verifies against either node's JWKS.

use std::sync::Arc;

use lineage::clock::ManualClock;
use lineage::db::{Database, PoolOptions};
use lineage::domain::Seconds;

use crate::helpers::{Backend, TestDatabase, jwt_kid, spawn_app_on, verify_jwt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_issue_tokens_that_verify_against_either_jwks() {
    let Some(database) = TestDatabase::create(Backend::Postgres) else {
        return;
    };
    let database = Arc::new(database);
    let clock = ManualClock::starting_now();
    let a = spawn_app_on(Arc::clone(&database), clock.clone(), |_| {}).await;
    let b = spawn_app_on(Arc::clone(&database), clock.clone(), |_| {}).await;
    assert_ne!(a.port, b.port);

    // A client registered through one node authenticates at the other.
    let client = a.create_client("x").await;
    let from_a = a.client_credentials_token(&client).await;
    let from_b = b.client_credentials_token(&client).await;
    let (jwks_a, jwks_b) = (a.jwks().await, b.jwks().await);
    assert_eq!(jwks_a, jwks_b, "both nodes publish the same keys");
    for token in [&from_a, &from_b] {
        verify_jwt(token, &jwks_a).unwrap_or_else(|e| panic!("node A's JWKS: {e}"));
        verify_jwt(token, &jwks_b).unwrap_or_else(|e| panic!("node B's JWKS: {e}"));
    }
    assert_eq!(
        jwt_kid(&from_a),
        jwt_kid(&from_b),
        "both nodes sign with one key"
    );

    // A rotation made through node A is adopted by node B at its next key reload.
    let old_kid = jwt_kid(&from_a);
    let new_kid = a.rotate_keys(Seconds::ZERO).await;
    a.advance_past_key_reload(); // one clock: both nodes see the same time
    let new_a = a.client_credentials_token(&client).await;
    let new_b = b.client_credentials_token(&client).await;
    assert_eq!(jwt_kid(&new_a), new_kid);
    assert_eq!(jwt_kid(&new_b), new_kid);
    let (jwks_a, jwks_b) = (a.jwks().await, b.jwks().await);
    assert_eq!(jwks_a, jwks_b);
    for token in [&from_a, &from_b, &new_a, &new_b] {
        verify_jwt(token, &jwks_a).unwrap_or_else(|e| panic!("node A's JWKS: {e}"));
        verify_jwt(token, &jwks_b).unwrap_or_else(|e| panic!("node B's JWKS: {e}"));
    }
    assert!(b.jwks_kids().await.contains(&old_kid));
}

/// Nodes starting at the same moment on a migrated database must create one first key between
/// them, not one each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_agree_on_one_key() {
    let Some(database) = TestDatabase::create(Backend::Postgres) else {
        return;
    };
    let db = Database::open(&database.url(), &PoolOptions::default()).expect("open");
    db.migrate().expect("migrate");
    start_three_nodes_together(Arc::new(database)).await;
}

/// The same on an empty database: the nodes also race to apply the migrations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_on_an_empty_database_migrate_once() {
    let Some(database) = TestDatabase::create(Backend::Postgres) else {
        return;
    };
    start_three_nodes_together(Arc::new(database)).await;
}

async fn start_three_nodes_together(database: Arc<TestDatabase>) {
    let clock = ManualClock::starting_now();
    let (a, b, c) = tokio::join!(
        spawn_app_on(Arc::clone(&database), clock.clone(), |_| {}),
        spawn_app_on(Arc::clone(&database), clock.clone(), |_| {}),
        spawn_app_on(Arc::clone(&database), clock.clone(), |_| {}),
    );
    let kids = a.jwks_kids().await;
    assert_eq!(kids.len(), 1, "one first key, not one per node: {kids:?}");
    assert_eq!(b.jwks_kids().await, kids);
    assert_eq!(c.jwks_kids().await, kids);
    // The same for the RSA key (ID tokens).
    let rsa = a.jwks_kids_of("RS256").await;
    assert_eq!(rsa.len(), 1, "one first RSA key, not one per node: {rsa:?}");
    assert_eq!(b.jwks_kids_of("RS256").await, rsa);
    assert_eq!(c.jwks_kids_of("RS256").await, rsa);

    let client = a.create_client("x").await;
    for node in [&a, &b, &c] {
        let token = node.client_credentials_token(&client).await;
        assert_eq!(jwt_kid(&token), kids[0]);
    }
}
