//! `POST /revoke` (RFC 7009) and `POST /introspect` (RFC 7662) for both token kinds: a refresh
//! token ends its family, an access token goes on the `jti` denylist; another client's revocation
//! is a quiet no-op; introspection describes a refresh token only to its own client, and access
//! tokens to any confidential client (a resource server).

use lineage::domain::Seconds;
use serde_json::Value;

use crate::helpers::{
    Backend, FAMILY_SCOPE, Fixture, assert_inactive, assert_oauth_error, audit_events_of_kind,
    denylist_entry, family, introspect, jwt_claims, post_as, public_client, refresh_client,
    resource_server, revoke, start_family,
};

both_backends!(
    revoking_a_refresh_token_ends_its_family,
    revoking_an_older_generation_ends_the_family_too,
    revoking_an_access_token_denylists_its_jti,
    another_clients_revocation_changes_nothing,
    unknown_and_repeated_revocations_answer_200,
    introspecting_a_refresh_token,
    introspecting_an_access_token,
    introspection_needs_a_confidential_client,
    concurrent_revocations_of_one_access_token_all_answer_200,
    a_client_registered_again_does_not_revive_its_old_tokens,
);

async fn revoking_a_refresh_token_ends_its_family(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let rs = resource_server(&fx.app).await;
    for hint in [None, Some("refresh_token"), Some("access_token")] {
        let (id, t0) = fx.start().await;
        let r = fx.rotate(&t0).await;
        revoke(&fx.app, &fx.client, &r.refresh_token, hint).await;

        let row = family(&fx.app, &id).await;
        assert_eq!(
            row.revoked_reason.as_deref(),
            Some("revoked_by_client"),
            "hint {hint:?}"
        );
        assert_eq!(row.revoked_at, Some(fx.app.now()));
        let resp = fx.refresh(&r.refresh_token).await;
        assert_oauth_error(resp, 400, "invalid_grant").await;
        assert_inactive(
            &introspect(&fx.app, &fx.client, &r.refresh_token).await,
            "a revoked refresh token",
        );
        assert_inactive(
            &introspect(&fx.app, &rs, &r.access_token).await,
            "an access token of a revoked family",
        );
        let events: Vec<_> = audit_events_of_kind(&fx.app, "family_revoked")
            .await
            .into_iter()
            .filter(|e| e.family_id.as_deref() == Some(id.as_str()))
            .collect();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].client_id.as_deref(), Some(fx.client.id.as_str()));
        assert_eq!(events[0].ip.as_deref(), Some("127.0.0.1"));
        // Revoking a refresh token is not reuse.
        assert!(
            audit_events_of_kind(&fx.app, "refresh_token_reuse")
                .await
                .is_empty()
        );
    }
}

async fn revoking_an_older_generation_ends_the_family_too(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let (id, t0) = fx.start().await;
    let t1 = fx.rotate(&t0).await.refresh_token;
    let t2 = fx.rotate(&t1).await.refresh_token;
    revoke(&fx.app, &fx.client, &t0, None).await;
    assert_eq!(
        family(&fx.app, &id).await.revoked_reason.as_deref(),
        Some("revoked_by_client")
    );
    let resp = fx.refresh(&t2).await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
}

async fn revoking_an_access_token_denylists_its_jti(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let rs = resource_server(&fx.app).await;
    let (id, t0) = fx.start().await;
    let first = fx.rotate(&t0).await;
    let second = fx.rotate(&first.refresh_token).await;
    assert_eq!(
        introspect(&fx.app, &rs, &first.access_token).await["active"],
        true
    );

    revoke(
        &fx.app,
        &fx.client,
        &first.access_token,
        Some("access_token"),
    )
    .await;
    let jti = first.claims["jti"].as_str().expect("jti");
    let (revoked_at, expires_at) = denylist_entry(&fx.app, jti)
        .await
        .expect("the jti is on the denylist");
    assert_eq!(revoked_at, fx.app.now());
    assert_eq!(
        expires_at,
        first.claims["exp"].as_i64().expect("exp"),
        "kept until exp"
    );

    assert_inactive(
        &introspect(&fx.app, &rs, &first.access_token).await,
        "a revoked access token",
    );
    // Only that token: its family and the family's other access tokens live on.
    assert_eq!(family(&fx.app, &id).await.revoked_at, None);
    assert_eq!(
        introspect(&fx.app, &rs, &second.access_token).await["active"],
        true
    );
    let third = fx.rotate(&second.refresh_token).await;

    // The hint is a hint: an access token revoked with hint=refresh_token (or none) is found too.
    let mut current = third.refresh_token;
    for hint in [Some("refresh_token"), None] {
        let r = fx.rotate(&current).await;
        revoke(&fx.app, &fx.client, &r.access_token, hint).await;
        assert_inactive(&introspect(&fx.app, &rs, &r.access_token).await, "revoked");
        assert_eq!(family(&fx.app, &id).await.revoked_at, None);
        current = r.refresh_token;
    }
    // Revoking an access token twice is fine.
    revoke(&fx.app, &fx.client, &first.access_token, None).await;
}

async fn another_clients_revocation_changes_nothing(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let app = &fx.app;
    let rs = resource_server(app).await;
    let other = refresh_client(app, FAMILY_SCOPE).await;
    let native = public_client(app, FAMILY_SCOPE).await;
    let (id, t0) = fx.start().await;
    let r = fx.rotate(&t0).await;

    for intruder in [&other, &native, &rs] {
        for hint in [None, Some("refresh_token"), Some("access_token")] {
            revoke(app, intruder, &r.refresh_token, hint).await;
            revoke(app, intruder, &r.access_token, hint).await;
            revoke(app, intruder, &t0, hint).await;
        }
    }
    assert_eq!(family(app, &id).await.revoked_at, None, "the family lives");
    let jti = r.claims["jti"].as_str().expect("jti");
    assert_eq!(denylist_entry(app, jti).await, None, "nothing denylisted");
    assert_eq!(introspect(app, &rs, &r.access_token).await["active"], true);
    assert!(audit_events_of_kind(app, "family_revoked").await.is_empty());
    fx.rotate(&r.refresh_token).await;

    // A public client's own family can be revoked by it with just its client_id.
    let (nid, nt) = start_family(app, &fx.user.id, &native.id, "read").await;
    revoke(app, &native, &nt, None).await;
    assert_eq!(
        family(app, &nid).await.revoked_reason.as_deref(),
        Some("revoked_by_client")
    );
}

async fn unknown_and_repeated_revocations_answer_200(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let app = &fx.app;
    let unknown = uuid::Uuid::new_v4().to_string();
    for token in [unknown.as_str(), "garbage", "a.b.c"] {
        for hint in [
            None,
            Some("refresh_token"),
            Some("access_token"),
            Some("bogus"),
        ] {
            revoke(app, &fx.client, token, hint).await;
        }
    }
    let (id, t0) = fx.start().await;
    revoke(app, &fx.client, &t0, None).await;
    let revoked_at = family(app, &id).await.revoked_at;
    app.clock.advance(5);
    revoke(app, &fx.client, &t0, None).await;
    assert_eq!(
        family(app, &id).await.revoked_at,
        revoked_at,
        "revoked once"
    );
    assert_eq!(audit_events_of_kind(app, "family_revoked").await.len(), 1);

    // Client authentication is still required, and `token` too.
    let resp = app
        .api
        .post(app.url("/revoke"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("token={unknown}"))
        .send()
        .await
        .expect("POST /revoke");
    assert_oauth_error(resp, 401, "invalid_client").await;
    let resp = post_as(app, "/revoke", &fx.client, &[], None).await;
    assert_oauth_error(resp, 400, "invalid_request").await;
}

async fn introspecting_a_refresh_token(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let app = &fx.app;
    let rs = resource_server(app).await;
    let other = refresh_client(app, FAMILY_SCOPE).await;
    let (id, t0) = fx.start().await;
    app.clock.advance(7);
    let r = fx.rotate(&t0).await;

    let v = introspect(app, &fx.client, &r.refresh_token).await;
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["token_type"], "refresh_token");
    assert_eq!(v["client_id"], fx.client.id.as_str());
    assert_eq!(v["sub"], fx.user.id.as_str());
    assert_eq!(v["username"], fx.user.username.as_str());
    assert_eq!(v["scope"], FAMILY_SCOPE);
    assert_eq!(v["sid"], id.as_str());
    assert_eq!(v["iss"], app.issuer);
    assert_eq!(v["iat"], app.now());
    let row = family(app, &id).await;
    assert_eq!(v["exp"], row.idle_expires_at.min(row.absolute_expires_at));

    // A used generation is not the current token.
    assert_inactive(
        &introspect(app, &fx.client, &t0).await,
        "a used refresh token",
    );
    // Another client — a resource server or another app — learns nothing about it.
    assert_inactive(
        &introspect(app, &rs, &r.refresh_token).await,
        "another client's",
    );
    assert_inactive(
        &introspect(app, &other, &r.refresh_token).await,
        "another client's",
    );
    // Unknown tokens.
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_inactive(
        &introspect(app, &fx.client, &unknown).await,
        "an unknown token",
    );
    assert_inactive(&introspect(app, &fx.client, "nonsense").await, "nonsense");
    // Introspection spends nothing: the token still rotates.
    fx.rotate(&r.refresh_token).await;
}

async fn introspecting_an_access_token(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let app = &fx.app;
    let rs = resource_server(app).await;
    let other = refresh_client(app, FAMILY_SCOPE).await;
    let (id, t0) = fx.start().await;
    let r = fx.rotate(&t0).await;

    for asker in [&rs, &fx.client, &other] {
        let v = introspect(app, asker, &r.access_token).await;
        assert_eq!(v["active"], true, "{v}");
        assert_eq!(v["token_type"], "Bearer");
        assert_eq!(v["sub"], fx.user.id.as_str());
        assert_eq!(v["client_id"], fx.client.id.as_str());
        assert_eq!(v["sid"], id.as_str());
        assert_eq!(v["scope"], FAMILY_SCOPE);
        assert_eq!(v["username"], fx.user.username.as_str());
        assert_eq!(v["jti"], r.claims["jti"]);
        assert_eq!(v["exp"], r.claims["exp"]);
        assert_eq!(v["iss"], app.issuer);
    }
    // A client_credentials token (no family) is active too.
    let cc = app.client_credentials_token(&rs).await;
    let v = introspect(app, &rs, &cc).await;
    assert_eq!(v["active"], true);
    assert!(v.get("sid").is_none_or(Value::is_null), "{v}");

    // Tampered: the payload of another token under this signature.
    let parts: Vec<&str> = r.access_token.split('.').collect();
    let cc_parts: Vec<&str> = cc.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], cc_parts[1], parts[2]);
    assert_inactive(&introspect(app, &rs, &forged).await, "a forged token");

    // Expired: one second before `exp` active, at `exp` inactive.
    let exp = jwt_claims(&r.access_token)["exp"].as_i64().expect("exp");
    app.clock.set(exp - 1);
    assert_eq!(introspect(app, &rs, &r.access_token).await["active"], true);
    app.clock.set(exp);
    assert_inactive(
        &introspect(app, &rs, &r.access_token).await,
        "an expired access token",
    );
}

async fn introspection_needs_a_confidential_client(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let app = &fx.app;
    let native = public_client(app, FAMILY_SCOPE).await;
    let (_, t0) = start_family(app, &fx.user.id, &native.id, "read").await;
    let r = crate::helpers::refresh_ok(app, &native, &t0).await;
    for token in [&r.refresh_token, &r.access_token] {
        let resp = post_as(app, "/introspect", &native, &[("token", token)], None).await;
        assert_oauth_error(resp, 401, "invalid_client").await;
    }
    let resp = app
        .api
        .post(app.url("/introspect"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("token={}", r.access_token))
        .send()
        .await
        .expect("POST /introspect");
    assert_oauth_error(resp, 401, "invalid_client").await;
}

/// Two nodes on one PostgreSQL: node A has adopted a newly rotated signing key, node B has not
/// re-read its keys yet (it started later, so its reload is still due). An access token signed by
/// the new key and revoked through node B must still end up on the denylist, as introspection on
/// node B already handles that case by re-reading the keys for an unknown `kid`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_on_a_node_that_has_not_loaded_the_new_key_yet() {
    use std::sync::Arc;

    use lineage::clock::ManualClock;
    use lineage::state::KEY_RELOAD_SECONDS;

    use crate::helpers::{TestDatabase, jwt_kid, spawn_app_on};
    use crate::helpers::{create_user, refresh_ok};

    let Some(database) = TestDatabase::create(Backend::Postgres) else {
        return;
    };
    let database = Arc::new(database);
    let clock = ManualClock::starting_now();
    // Nodes of one deployment share the public issuer URL.
    let issuer = |s: &mut lineage::configuration::Settings| {
        s.issuer = Some("http://auth.lineage.test".into())
    };
    let a = spawn_app_on(Arc::clone(&database), clock.clone(), issuer).await;
    clock.advance(KEY_RELOAD_SECONDS - 10);
    let b = spawn_app_on(database, clock.clone(), issuer).await; // B loads its keys now
    let user = create_user(&a, "alice").await;
    let client = refresh_client(&a, FAMILY_SCOPE).await;
    let rs = resource_server(&a).await;
    let (_, t0) = start_family(&a, &user.id, &client.id, FAMILY_SCOPE).await;

    let new_kid = a.rotate_keys(Seconds::ZERO).await;
    clock.advance(10); // A's reload is due, B's is not
    let r = refresh_ok(&a, &client, &t0).await;
    assert_eq!(
        jwt_kid(&r.access_token),
        new_kid,
        "node A signs with the new key"
    );

    revoke(&b, &client, &r.access_token, Some("access_token")).await;
    let jti = r.claims["jti"].as_str().expect("jti");
    assert!(
        denylist_entry(&a, jti).await.is_some(),
        "the access token revoked through node B is on the denylist"
    );
    assert_inactive(
        &introspect(&a, &rs, &r.access_token).await,
        "a revoked access token",
    );
}

/// RFC 7009 §2.2: revoking an already revoked token answers 200 — also when the two revocations
/// arrive at the same moment (on PostgreSQL they race for the denylist's primary key).
async fn concurrent_revocations_of_one_access_token_all_answer_200(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    for _ in 0..5 {
        let (_, token) = fx.start().await;
        let access = fx.rotate(&token).await.access_token;
        let params = [
            ("token", access.as_str()),
            ("token_type_hint", "access_token"),
        ];
        let statuses = futures_util::future::join_all(
            (0..8).map(|_| post_as(&fx.app, "/revoke", &fx.client, &params, None)),
        )
        .await
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect::<Vec<_>>();
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
        let jti = jwt_claims(&access)["jti"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(denylist_entry(&fx.app, &jti).await.is_some());
    }
}

async fn a_client_registered_again_does_not_revive_its_old_tokens(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let rs = resource_server(&fx.app).await;
    let spec = |id: &str| lineage::clients::NewClient {
        client_id: Some(id.into()),
        ..crate::helpers::service_client("reports:read")
    };
    let service = fx.app.create_client_with(spec("reporting")).await;
    let old = fx.app.client_credentials_token(&service).await;
    assert_eq!(introspect(&fx.app, &rs, &old).await["active"], true);
    fx.app.delete_client("reporting").await;
    fx.app.clock.advance(5);
    let again = fx.app.create_client_with(spec("reporting")).await;
    assert_inactive(
        &introspect(&fx.app, &rs, &old).await,
        "a token of the deleted client, after its id was registered again",
    );
    let new = fx.app.client_credentials_token(&again).await;
    assert_eq!(introspect(&fx.app, &rs, &new).await["active"], true);
}
