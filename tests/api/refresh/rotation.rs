//! `grant_type=refresh_token`: a long rotation chain, the access tokens it mints, scope narrowing
//! and widening, public clients, and tokens presented by a client they were not issued to.

use std::collections::HashSet;

use crate::helpers::{
    Backend, FAMILY_SCOPE, Fixture, assert_oauth_error, family, parse_refreshed, public_client,
    refresh_as, refresh_client, refresh_ok, start_family, token_rows, unused_count,
};

both_backends!(
    rotation_chain_of_fifty,
    narrowing_scope_narrows_the_access_token_only,
    widening_scope_is_invalid_scope_and_consumes_nothing,
    public_client_refreshes_with_client_id_only,
    token_of_another_client_is_invalid_grant_and_not_consumed,
    malformed_and_unknown_tokens_are_invalid_grant,
    a_client_without_the_refresh_grant_is_unauthorized,
);

async fn rotation_chain_of_fifty(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let (family_id, first) = fx.start().await;
    let mut seen = HashSet::from([first.clone()]);
    let mut jtis = HashSet::new();
    let mut current = first;
    for generation in 1..=50 {
        // Time passes between refreshes, well inside the idle timeout.
        fx.app.clock.advance(60);
        let r = fx.rotate(&current).await;
        assert!(
            seen.insert(r.refresh_token.clone()),
            "generation {generation}: a refresh token is never handed out twice"
        );
        let c = &r.claims;
        assert_eq!(c["sid"], family_id.as_str(), "sid is the family id");
        assert_eq!(c["sub"], fx.user.id.as_str());
        assert_eq!(c["preferred_username"], fx.user.username.as_str());
        assert_eq!(c["client_id"], fx.client.id.as_str());
        assert_eq!(c["iss"], fx.app.issuer);
        assert_eq!(c["scope"], FAMILY_SCOPE);
        assert_eq!(r.scope, FAMILY_SCOPE);
        assert_eq!(c["iat"], fx.app.now());
        assert_eq!(r.expires_in, fx.app.settings.access_token_ttl.get());
        assert_eq!(c["exp"].as_i64(), Some(fx.app.now() + r.expires_in));
        assert!(
            jtis.insert(c["jti"].as_str().expect("jti").to_string()),
            "every access token has its own jti"
        );
        assert_eq!(unused_count(&fx.app, &family_id).await, 1);
        current = r.refresh_token;
    }

    let row = family(&fx.app, &family_id).await;
    assert_eq!(row.rotation_count, 50);
    assert_eq!(row.last_used_at, fx.app.now());
    assert_eq!(row.revoked_at, None);
    assert_eq!(
        row.idle_expires_at,
        fx.app.now() + fx.app.settings.refresh_idle_ttl,
        "each rotation extends the idle timeout"
    );
    assert_eq!(
        row.absolute_expires_at,
        row.created_at + fx.app.settings.refresh_absolute_ttl,
        "rotation never extends the absolute lifetime"
    );
    let rows = token_rows(&fx.app, &family_id).await;
    assert_eq!(rows.len(), 51, "one row per generation");
    for (i, t) in rows.iter().enumerate() {
        assert_eq!(t.generation, i as i64);
        assert_eq!(
            t.used_at.is_none(),
            i == 50,
            "only the newest token is unused"
        );
        if i > 0 {
            assert_eq!(
                t.parent_hash.as_deref(),
                Some(rows[i - 1].token_hash.as_str()),
                "generation {i} descends from generation {}",
                i - 1
            );
        }
        assert!(
            !seen.contains(&t.token_hash),
            "only hashes are stored, never the tokens"
        );
    }
    // The end of the chain still works.
    fx.rotate(&current).await;
}

async fn narrowing_scope_narrows_the_access_token_only(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let (family_id, t0) = fx.start().await;
    let narrowed = parse_refreshed(
        &fx.app,
        refresh_as(&fx.app, &fx.client, &t0, Some("read")).await,
    )
    .await;
    assert_eq!(narrowed.scope, "read");
    assert_eq!(narrowed.claims["scope"], "read");
    assert_eq!(family(&fx.app, &family_id).await.scope, FAMILY_SCOPE);

    // The family keeps its scope: the next refresh without `scope` gets all of it again.
    let full = fx.rotate(&narrowed.refresh_token).await;
    assert_eq!(full.scope, FAMILY_SCOPE);
    assert_eq!(full.claims["scope"], FAMILY_SCOPE);

    // Asking for exactly the family's scope (in another order) is not widening.
    let same = parse_refreshed(
        &fx.app,
        refresh_as(&fx.app, &fx.client, &full.refresh_token, Some("write read")).await,
    )
    .await;
    assert_eq!(same.scope, FAMILY_SCOPE);
}

async fn widening_scope_is_invalid_scope_and_consumes_nothing(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let (family_id, t0) = fx.start().await;
    // `admin` is allowed to the client, but not part of this family.
    for wider in ["read write admin", "admin", "read delete"] {
        let resp = refresh_as(&fx.app, &fx.client, &t0, Some(wider)).await;
        assert_oauth_error(resp, 400, "invalid_scope").await;
    }
    let resp = refresh_as(&fx.app, &fx.client, &t0, Some("read\"bad")).await;
    assert_oauth_error(resp, 400, "invalid_scope").await;

    // The refused request did not spend the token nor end the family.
    let row = family(&fx.app, &family_id).await;
    assert_eq!(row.revoked_at, None);
    assert_eq!(row.rotation_count, 0);
    assert_eq!(token_rows(&fx.app, &family_id).await.len(), 1);
    let r = fx.rotate(&t0).await;
    assert_eq!(r.scope, FAMILY_SCOPE);
}

async fn public_client_refreshes_with_client_id_only(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let app = &fx.app;
    let native = public_client(app, "read write").await;
    assert!(native.secret.is_empty());
    let (family_id, t0) = start_family(app, &fx.user.id, &native.id, "read").await;
    let r1 = refresh_ok(app, &native, &t0).await;
    assert_eq!(r1.claims["client_id"], native.id.as_str());
    assert_eq!(r1.claims["sid"], family_id.as_str());
    let r2 = refresh_ok(app, &native, &r1.refresh_token).await;
    assert_eq!(r2.scope, "read");

    // Without any client identification the request is refused and the token survives.
    let resp = app
        .post_token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &r2.refresh_token),
            ],
            None,
        )
        .await;
    assert_oauth_error(resp, 401, "invalid_client").await;
    // A public client presenting a secret is not authenticated either.
    let resp = app
        .post_token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &r2.refresh_token),
                ("client_id", &native.id),
                ("client_secret", "anything"),
            ],
            None,
        )
        .await;
    assert_oauth_error(resp, 401, "invalid_client").await;
    refresh_ok(app, &native, &r2.refresh_token).await;
}

async fn token_of_another_client_is_invalid_grant_and_not_consumed(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let app = &fx.app;
    let other = refresh_client(app, "read write admin").await;
    let other_public = public_client(app, "read write admin").await;
    let native = public_client(app, "read write").await;
    let (family_a, token_a) = fx.start().await;
    let (family_n, token_n) = start_family(app, &fx.user.id, &native.id, "read").await;

    for (thief, token) in [
        (&other, &token_a),
        (&other_public, &token_a),
        (&fx.client, &token_n),
        (&other_public, &token_n),
    ] {
        let resp = refresh_as(app, thief, token, None).await;
        let body = assert_oauth_error(resp, 400, "invalid_grant").await;
        assert!(
            !body["error_description"]
                .as_str()
                .unwrap_or("")
                .contains("already used"),
            "not treated as reuse: {body}"
        );
    }
    for family_id in [&family_a, &family_n] {
        let row = family(app, family_id).await;
        assert_eq!(row.revoked_at, None, "another client cannot end a family");
        assert_eq!(row.rotation_count, 0);
        assert_eq!(unused_count(app, family_id).await, 1);
    }
    // The rightful clients still rotate the untouched tokens.
    fx.rotate(&token_a).await;
    refresh_ok(app, &native, &token_n).await;
}

async fn malformed_and_unknown_tokens_are_invalid_grant(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let unknown = uuid::Uuid::new_v4().to_string();
    for bad in [unknown.as_str(), "not-a-token", &unknown.to_uppercase()] {
        let resp = fx.refresh(bad).await;
        assert_oauth_error(resp, 400, "invalid_grant").await;
    }
    // An empty value counts as absent.
    let resp = fx.refresh("").await;
    assert_oauth_error(resp, 400, "invalid_request").await;
    let resp = fx
        .app
        .token_basic(&fx.client, &[("grant_type", "refresh_token")])
        .await;
    assert_oauth_error(resp, 400, "invalid_request").await;
}

async fn a_client_without_the_refresh_grant_is_unauthorized(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    // A client_credentials-only client holding a family (e.g. its grants were narrowed later).
    let service = fx.app.create_client(FAMILY_SCOPE).await;
    let (family_id, token) = start_family(&fx.app, &fx.user.id, &service.id, "read").await;
    let resp = refresh_as(&fx.app, &service, &token, None).await;
    assert_oauth_error(resp, 400, "unauthorized_client").await;
    assert_eq!(unused_count(&fx.app, &family_id).await, 1, "nothing spent");
    assert_eq!(family(&fx.app, &family_id).await.revoked_at, None);
}
