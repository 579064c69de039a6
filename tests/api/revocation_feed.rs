//! `GET /revocations?since=T`: revoked families (`sid`) and user not-before times, a `now` cursor,
//! ETag / If-None-Match → 304, and entries dropped once no access token issued before them can
//! still be alive (access-token lifetime + 60 s).

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp};
use crate::refresh_helpers::{Fixture, create_user, feed, feed_sids, feed_subs, revoke};

both_backends!(
    feed_lists_revoked_families_and_user_not_before,
    since_selects_newer_entries,
    etag_makes_an_unchanged_poll_a_304,
    entries_are_dropped_after_the_access_token_lifetime_plus_60s,
);

async fn revoke_all(app: &TestApp, user_id: &str) {
    let (uid, now) = (user_id.to_string(), app.now());
    app.db
        .write(move |c| {
            lineage::tokens::refresh::revoke_all_for_user(c, &uid, "signed_out_everywhere", now)
        })
        .await
        .expect("revoke_all_for_user");
}

async fn get_ok(app: &TestApp, since: Option<&str>) -> Value {
    let (status, headers, body) = feed(app, since, None).await;
    assert_eq!(status, 200);
    assert!(headers.get("etag").is_some(), "an ETag");
    assert_eq!(
        headers.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-cache")
    );
    body.expect("a body")
}

async fn feed_lists_revoked_families_and_user_not_before(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let app = &fx.app;
    let body = get_ok(app, None).await;
    assert_eq!(body, json!({"families": [], "users": [], "now": app.now()}));

    let (live, _) = fx.start().await;
    let (id, token) = fx.start().await;
    app.clock.advance(5);
    revoke(app, &fx.client, &token, None).await;
    let revoked_at = app.now();
    app.clock.advance(5);
    let bob = create_user(app, "bob").await;
    revoke_all(app, &bob.id).await;
    let not_before = app.now();

    let body = get_ok(app, None).await;
    assert_eq!(
        body,
        json!({
            "families": [{"sid": id, "revoked_at": revoked_at}],
            "users": [{"sub": bob.id, "not_before": not_before}],
            "now": app.now(),
        })
    );
    assert!(
        !feed_sids(&body).contains(&live),
        "live families are not listed"
    );
}

async fn since_selects_newer_entries(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let app = &fx.app;
    let t = app.now();
    let (f1, tok1) = fx.start().await;
    let (f2, tok2) = fx.start().await;
    let (f3, tok3) = fx.start().await;
    let bob = create_user(app, "bob").await;
    revoke(app, &fx.client, &tok1, None).await; // at t
    app.clock.set(t + 10);
    revoke(app, &fx.client, &tok2, None).await; // at t+10
    app.clock.set(t + 20);
    revoke_all(app, &bob.id).await; // bob's not-before at t+20

    let cases: [(i64, &[&String], bool); 5] = [
        (0, &[&f1, &f2], true),
        (10, &[&f2], true),
        (11, &[], true),
        (20, &[], true),
        (21, &[], false),
    ];
    for (offset, families, bob_listed) in cases {
        let since = (t + offset).to_string();
        let body = get_ok(app, Some(&since)).await;
        let expected: Vec<String> = families.iter().map(|s| s.to_string()).collect();
        assert_eq!(feed_sids(&body), expected, "since=t+{offset}");
        assert_eq!(
            feed_subs(&body) == vec![bob.id.clone()],
            bob_listed,
            "since=t+{offset}: {body}"
        );
    }

    // `now` is the cursor for the next poll: a later revocation shows, older ones do not.
    let body = get_ok(app, None).await;
    let cursor = body["now"].as_i64().expect("now");
    assert_eq!(cursor, t + 20);
    app.clock.set(t + 25);
    revoke(app, &fx.client, &tok3, None).await;
    let body = get_ok(app, Some(&cursor.to_string())).await;
    let sids = feed_sids(&body);
    assert!(sids.contains(&f3), "{body}");
    assert!(!sids.contains(&f1) && !sids.contains(&f2), "{body}");

    // A `since` that is not unix seconds is a client error; an empty one means "everything kept".
    let (status, _, body) = feed(app, Some("yesterday"), None).await;
    assert_eq!(status, 400);
    assert_eq!(body.expect("error body")["error"], "invalid_request");
    let body = get_ok(app, Some("")).await;
    assert_eq!(feed_sids(&body).len(), 3);
}

async fn etag_makes_an_unchanged_poll_a_304(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let app = &fx.app;
    let (_, token) = fx.start().await;
    revoke(app, &fx.client, &token, None).await;
    let (status, headers, _) = feed(app, None, None).await;
    assert_eq!(status, 200);
    let etag = headers
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .expect("ETag")
        .to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "a strong ETag: {etag}"
    );

    // Nothing new — even a few seconds later — is a bodiless 304 carrying the same ETag.
    for _ in 0..2 {
        app.clock.advance(2);
        let (status, headers, body) = feed(app, None, Some(&etag)).await;
        assert_eq!(status, 304);
        assert_eq!(body, None, "a 304 has no body");
        assert_eq!(
            headers.get("etag").and_then(|v| v.to_str().ok()),
            Some(etag.as_str())
        );
    }
    // One of several listed ETags matching is enough.
    let list = format!("\"stale\", {etag}");
    assert_eq!(feed(app, None, Some(&list)).await.0, 304);
    assert_eq!(feed(app, None, Some("\"stale\"")).await.0, 200);

    // A new revocation changes the ETag.
    let (_, second) = fx.start().await;
    revoke(app, &fx.client, &second, None).await;
    let (status, headers, body) = feed(app, None, Some(&etag)).await;
    assert_eq!(status, 200);
    assert_eq!(feed_sids(&body.expect("a body")).len(), 2);
    let new_etag = headers
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .expect("ETag");
    assert_ne!(new_etag, etag);
}

async fn entries_are_dropped_after_the_access_token_lifetime_plus_60s(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |s| s.access_token_ttl = 300).await else {
        return;
    };
    let app = &fx.app;
    let keep = 300 + 60;
    assert_eq!(lineage::tokens::keys::RETIRED_KEY_SKEW, 60);
    let t = app.now();
    let (old, old_token) = fx.start().await;
    let (newer, newer_token) = fx.start().await;
    let bob = create_user(app, "bob").await;
    revoke(app, &fx.client, &old_token, None).await; // at t
    revoke_all(app, &bob.id).await; // at t
    app.clock.set(t + 100);
    revoke(app, &fx.client, &newer_token, None).await;

    app.clock.set(t + keep);
    let body = get_ok(app, None).await;
    assert_eq!(
        feed_sids(&body),
        vec![old.clone(), newer.clone()],
        "still kept at the edge"
    );
    assert_eq!(feed_subs(&body), vec![bob.id.clone()]);

    app.clock.set(t + keep + 1);
    for since in [None, Some("0"), Some(t.to_string().as_str())] {
        let body = get_ok(app, since).await;
        assert_eq!(
            feed_sids(&body),
            vec![newer.clone()],
            "since {since:?}: dropped"
        );
        assert_eq!(
            feed_subs(&body),
            Vec::<String>::new(),
            "since {since:?}: dropped"
        );
    }

    app.clock.set(t + 100 + keep + 1);
    let body = get_ok(app, None).await;
    assert_eq!(body["families"], json!([]));
}
