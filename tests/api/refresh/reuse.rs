//! Reuse detection and the retry grace: a used refresh token presented again revokes its whole
//! family (reason `reuse_detected`, an audit event with IP and user agent), except a retry of the
//! parent within the grace while its successor is unused, which gets that same successor back.

use lineage::domain::Seconds;

use crate::helpers::{
    Backend, Fixture, assert_oauth_error, audit_events_of_kind, family, feed, feed_sids,
    introspect, post_as, resource_server, token_rows, unused_count,
};

both_backends!(
    reuse_of_every_earlier_generation_revokes_the_family,
    after_reuse_every_token_of_the_family_fails,
    retry_within_grace_returns_the_same_successor,
    retry_after_the_successor_was_used_is_reuse,
    grace_zero_makes_any_second_use_reuse,
);

const CHAIN: usize = 8;

/// A family rotated `CHAIN` times at one instant: every token it has had, oldest first.
async fn chain(fx: &Fixture) -> (String, Vec<String>) {
    let (family_id, first) = fx.start().await;
    let mut tokens = vec![first];
    for _ in 0..CHAIN {
        let next = fx
            .rotate(tokens.last().expect("a token"))
            .await
            .refresh_token;
        tokens.push(next);
    }
    (family_id, tokens)
}

async fn refresh_with_agent(fx: &Fixture, token: &str, agent: &str) -> reqwest::Response {
    post_as(
        &fx.app,
        "/token",
        &fx.client,
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
        Some(agent),
    )
    .await
}

async fn reuse_of_every_earlier_generation_revokes_the_family(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let grace = fx.app.settings.refresh_grace.get();
    assert!(grace > 0, "the default configuration has a retry grace");
    for generation in 0..CHAIN {
        let (family_id, tokens) = chain(&fx).await;
        if generation == CHAIN - 1 {
            // The newest token's parent is a retry within the grace (its successor is unused):
            // only after the grace is it reuse. Older ones are reuse at once, because their
            // successors have been used.
            fx.app.clock.advance(grace + 1);
        }
        let agent = format!("reuse-probe/{generation}");
        let resp = refresh_with_agent(&fx, &tokens[generation], &agent).await;
        let body = assert_oauth_error(resp, 400, "invalid_grant").await;
        assert!(
            body["error_description"]
                .as_str()
                .unwrap_or("")
                .contains("already used"),
            "generation {generation}: {body}"
        );

        let row = family(&fx.app, &family_id).await;
        assert_eq!(
            row.revoked_reason.as_deref(),
            Some("reuse_detected"),
            "generation {generation}"
        );
        assert_eq!(row.revoked_at, Some(fx.app.now()));

        let events: Vec<_> = audit_events_of_kind(&fx.app, "refresh_token_reuse")
            .await
            .into_iter()
            .filter(|e| e.family_id.as_deref() == Some(family_id.as_str()))
            .collect();
        assert_eq!(
            events.len(),
            1,
            "one audit event for generation {generation}"
        );
        let e = &events[0];
        assert_eq!(e.user_id.as_deref(), Some(fx.user.id.as_str()));
        assert_eq!(e.client_id.as_deref(), Some(fx.client.id.as_str()));
        assert_eq!(e.ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(e.user_agent.as_deref(), Some(agent.as_str()));
        assert_eq!(e.at, fx.app.now());
        assert!(!e.detail.is_empty());

        // The newest token, never used, stops working too, and is not spent by the attempt.
        let newest = tokens.last().expect("newest");
        let resp = fx.refresh(newest).await;
        assert_oauth_error(resp, 400, "invalid_grant").await;
        assert_eq!(unused_count(&fx.app, &family_id).await, 1);
        assert_eq!(
            family(&fx.app, &family_id).await.rotation_count,
            CHAIN as i64
        );
    }
}

async fn after_reuse_every_token_of_the_family_fails(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let rs = resource_server(&fx.app).await;
    let (other_family, other_token) = fx.start().await;
    let (family_id, first) = fx.start().await;
    let mut tokens = vec![first];
    let mut access = Vec::new();
    for _ in 0..20 {
        fx.app.clock.advance(10);
        let r = fx.rotate(tokens.last().expect("a token")).await;
        tokens.push(r.refresh_token);
        access.push(r.access_token);
    }
    let newest = tokens.last().expect("newest").clone();
    assert_eq!(introspect(&fx.app, &rs, &access[19]).await["active"], true);
    assert_eq!(
        introspect(&fx.app, &fx.client, &newest).await["active"],
        true
    );

    // One reuse of the very first token...
    let resp = fx.refresh(&tokens[0]).await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
    let revoked_at = fx.app.now();

    // ...and nothing of that family works any more, in any order, later on.
    fx.app.clock.advance(1);
    for (i, t) in tokens.iter().enumerate().rev() {
        let resp = fx.refresh(t).await;
        assert_oauth_error(resp, 400, "invalid_grant").await;
        let row = family(&fx.app, &family_id).await;
        assert_eq!(
            row.revoked_reason.as_deref(),
            Some("reuse_detected"),
            "token {i}"
        );
        assert_eq!(
            row.revoked_at,
            Some(revoked_at),
            "revoked once, at the reuse"
        );
    }
    assert_eq!(
        token_rows(&fx.app, &family_id).await.len(),
        21,
        "no new token"
    );
    let events = audit_events_of_kind(&fx.app, "refresh_token_reuse").await;
    assert_eq!(
        events.len(),
        1,
        "the first reuse revokes; the rest find it revoked"
    );

    // Introspection and the revocation feed agree.
    for t in [&newest, &tokens[0]] {
        crate::helpers::assert_inactive(
            &introspect(&fx.app, &fx.client, t).await,
            "a token of a revoked family",
        );
    }
    for a in &access {
        crate::helpers::assert_inactive(
            &introspect(&fx.app, &rs, a).await,
            "an access token of a revoked family",
        );
    }
    let (_, _, body) = feed(&fx.app, None, None).await;
    let body = body.expect("feed body");
    assert_eq!(feed_sids(&body), vec![family_id.clone()]);

    // Another family of the same user and client is not touched.
    assert_eq!(family(&fx.app, &other_family).await.revoked_at, None);
    fx.rotate(&other_token).await;
}

async fn retry_within_grace_returns_the_same_successor(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |s| s.refresh_grace = Seconds::new(5)).await else {
        return;
    };
    let (family_id, t0) = fx.start().await;
    let first = fx.rotate(&t0).await;

    // The response was lost; the client retries with the same parent, up to the grace's edge.
    let mut jtis = vec![first.claims["jti"].clone()];
    for _ in 0..5 {
        fx.app.clock.advance(1);
        let retry = fx.rotate(&t0).await;
        assert_eq!(
            retry.refresh_token, first.refresh_token,
            "a retry within the grace gets the same successor"
        );
        assert!(
            !jtis.contains(&retry.claims["jti"]),
            "but a fresh access token"
        );
        jtis.push(retry.claims["jti"].clone());
        assert_eq!(retry.claims["sid"], family_id.as_str());
        let row = family(&fx.app, &family_id).await;
        assert_eq!(row.revoked_at, None);
        assert_eq!(row.rotation_count, 1, "a retry is not another rotation");
        assert_eq!(token_rows(&fx.app, &family_id).await.len(), 2, "no branch");
        assert_eq!(unused_count(&fx.app, &family_id).await, 1);
    }

    // One second past the grace the same retry is reuse: the family ends, successor included.
    fx.app.clock.advance(1);
    let resp = fx.refresh(&t0).await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
    let row = family(&fx.app, &family_id).await;
    assert_eq!(row.revoked_reason.as_deref(), Some("reuse_detected"));
    let resp = fx.refresh(&first.refresh_token).await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
    assert_eq!(
        audit_events_of_kind(&fx.app, "refresh_token_reuse")
            .await
            .len(),
        1
    );
}

async fn retry_after_the_successor_was_used_is_reuse(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |s| s.refresh_grace = Seconds::new(30)).await else {
        return;
    };
    let (family_id, t0) = fx.start().await;
    let t1 = fx.rotate(&t0).await.refresh_token;
    let t2 = fx.rotate(&t1).await.refresh_token;
    // Well within the grace, but t0's successor t1 has been used: that is reuse.
    let resp = fx.refresh(&t0).await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
    let row = family(&fx.app, &family_id).await;
    assert_eq!(row.revoked_reason.as_deref(), Some("reuse_detected"));
    let resp = fx.refresh(&t2).await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
}

async fn grace_zero_makes_any_second_use_reuse(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |s| s.refresh_grace = Seconds::ZERO).await else {
        return;
    };
    let (family_id, t0) = fx.start().await;
    let t1 = fx.rotate(&t0).await.refresh_token;
    // The same second, successor unused: with no grace this is reuse all the same.
    let resp = fx.refresh(&t0).await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
    let row = family(&fx.app, &family_id).await;
    assert_eq!(row.revoked_reason.as_deref(), Some("reuse_detected"));
    let resp = fx.refresh(&t1).await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
}
