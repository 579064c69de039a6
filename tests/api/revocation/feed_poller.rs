//! The revocation feed as a real `lineage_resource::Validator` reads it from the running server:
//! revoked access tokens (`jti`) and deleted clients are refused, pages are followed until none
//! is left, the retention comes from the server, and the feed wants the validator's credentials.

use std::time::Duration;

use lineage::clock::Clock;
use lineage::domain::Seconds;
use lineage_resource::{FeedError, PollOutcome, TokenError, Validator};

use crate::helpers::{
    Backend, Fixture, TestApp, TestClient, feed_reader, revoke, service_client, spawn_app,
    spawn_app_with,
};

both_backends!(
    revoked_access_tokens_and_deleted_clients_are_refused_by_the_validator,
    the_validator_follows_pages_and_learns_the_retention,
    the_validator_needs_credentials_unless_the_feed_is_public,
);

/// The `aud` of every test client's tokens.
const AUDIENCE: &str = "https://api.example";

/// A validator on the app's clock that polls only when asked (the background poll is hourly).
pub async fn validator(app: &TestApp, reader: Option<&TestClient>, page_limit: u32) -> Validator {
    let clock = app.clock.clone();
    let mut builder = Validator::builder(&app.issuer)
        .audience(AUDIENCE)
        .clock(move || clock.now())
        .revocation_poll(Some(Duration::from_secs(3600)))
        .revocation_page_limit(page_limit);
    if let Some(r) = reader {
        builder = builder.client_credentials(&r.id, &r.secret);
    }
    builder
        .build()
        .await
        .expect("the validator builds against lineage")
}

fn updated(families: usize, access_tokens: usize, clients: usize, pages: usize) -> PollOutcome {
    PollOutcome::Updated {
        families,
        users: 0,
        access_tokens,
        clients,
        pages,
    }
}

async fn refused(validator: &Validator, token: &str) -> TokenError {
    validator
        .validate(token)
        .await
        .expect_err("the token must be refused")
        .token_error()
        .cloned()
        .expect("an invalid_token refusal")
}

async fn revoked_access_tokens_and_deleted_clients_are_refused_by_the_validator(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let app = &fx.app;
    let validator = validator(app, Some(&feed_reader(app).await), 1000).await;
    let (_, first) = fx.start().await;
    let one = fx.rotate(&first).await;
    let two = fx.rotate(&one.refresh_token).await;
    let service = app.create_client("jobs").await;
    let service_token = app.client_credentials_token(&service).await;
    for token in [&one.access_token, &two.access_token, &service_token] {
        validator
            .validate(token)
            .await
            .expect("valid before any revocation");
    }

    // An access token revoked on its own (RFC 7009): that token, not its family's others.
    revoke(app, &fx.client, &one.access_token, Some("access_token")).await;
    assert_eq!(validator.poll_revocations().await, Ok(updated(0, 1, 0, 1)));
    assert_eq!(
        refused(&validator, &one.access_token).await,
        TokenError::AccessTokenRevoked
    );
    validator
        .validate(&two.access_token)
        .await
        .expect("the family's other tokens stay valid");

    // A deleted client: its client_credentials tokens (no family to revoke) are refused…
    app.clock.advance(1);
    app.delete_client(&service.id).await;
    assert_eq!(validator.poll_revocations().await, Ok(updated(0, 0, 1, 1)));
    assert_eq!(
        refused(&validator, &service_token).await,
        TokenError::ClientDeleted
    );
    // …but a client registered again under the same id afterwards is a new client.
    app.clock.advance(1);
    let again = app
        .create_client_with(lineage::clients::NewClient {
            client_id: Some(service.id.clone()),
            ..service_client("jobs")
        })
        .await;
    let fresh = app.client_credentials_token(&again).await;
    validator
        .validate(&fresh)
        .await
        .expect("tokens of the new registration are valid");

    let status = validator.revocation_status().expect("polling is on");
    assert_eq!(
        (status.revoked_access_tokens, status.deleted_clients),
        (1, 1)
    );
    // A revoked jti is forgotten once its token has expired (leeway included).
    let exp = crate::helpers::jwt_claims(&one.access_token)["exp"]
        .as_i64()
        .expect("exp");
    app.clock.set(exp + 10);
    validator.poll_revocations().await.expect("poll");
    assert_eq!(
        validator
            .revocation_status()
            .expect("status")
            .revoked_access_tokens,
        0
    );
}

async fn the_validator_follows_pages_and_learns_the_retention(backend: Backend) {
    let ttl = 120;
    let Some(fx) = Fixture::new(backend, |s| s.access_token_ttl = Seconds::new(ttl)).await else {
        return;
    };
    let app = &fx.app;
    let validator = validator(app, Some(&feed_reader(app).await), 2).await;
    let status = validator.revocation_status().expect("polling is on");
    assert_eq!(status.retention, Some(ttl + 60), "learned at start-up");

    let t = app.now();
    let mut access = Vec::new();
    for _ in 0..5 {
        let (_, token) = fx.start().await;
        let r = fx.rotate(&token).await;
        revoke(app, &fx.client, &r.refresh_token, None).await;
        access.push(r.access_token);
    }
    // Two entries a page: one poll reads all three pages.
    assert_eq!(validator.poll_revocations().await, Ok(updated(5, 0, 0, 3)));
    for token in &access {
        assert_eq!(refused(&validator, token).await, TokenError::Revoked);
    }
    // Nothing new: one small page, then 304s.
    assert_eq!(validator.poll_revocations().await, Ok(updated(0, 0, 0, 1)));
    assert_eq!(
        validator.poll_revocations().await,
        Ok(PollOutcome::NotModified)
    );

    // Entries are remembered for the server's retention (180 s here), not a fixed 660 s, plus
    // the validator's leeway (10 s), during which a just-expired token still validates.
    app.clock.set(t + ttl + 60 + 10 - 1);
    validator.poll_revocations().await.expect("poll");
    assert_eq!(
        validator
            .revocation_status()
            .expect("status")
            .revoked_families,
        5
    );
    app.clock.set(t + ttl + 60 + 10);
    validator.poll_revocations().await.expect("poll");
    assert_eq!(
        validator
            .revocation_status()
            .expect("status")
            .revoked_families,
        0
    );
}

async fn the_validator_needs_credentials_unless_the_feed_is_public(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let anonymous = validator(&app, None, 1000).await;
    match anonymous.poll_revocations().await {
        Err(FeedError::Refused { status: 401, .. }) => {}
        other => panic!("expected a 401 refusal, got {other:?}"),
    }
    assert_eq!(
        anonymous.revocation_status().expect("status").last_success,
        None
    );
    let other = app.create_client("jobs").await;
    match validator(&app, Some(&other), 1000)
        .await
        .poll_revocations()
        .await
    {
        Err(e @ FeedError::Refused { status: 403, .. }) => {
            assert!(e.to_string().contains("--permission revocations"), "{e}");
        }
        other => panic!("expected a 403 refusal, got {other:?}"),
    }

    let Some(public) = spawn_app_with(backend, |s| s.revocations_public = true).await else {
        return;
    };
    let anonymous = validator(&public, None, 1000).await;
    // Read once at start-up; nothing since.
    assert_eq!(
        anonymous.revocation_status().expect("status").retention,
        Some(660)
    );
    assert_eq!(
        anonymous.poll_revocations().await,
        Ok(PollOutcome::NotModified)
    );
}
