//! `GET /revocations`: revoked families (`sid`), user not-before times, revoked access tokens
//! (`jti`) and deleted clients, paged with an opaque cursor in commit order, ETag /
//! If-None-Match → 304 for a poll that finds nothing new, and entries dropped (and deleted by
//! housekeeping) once no access token issued before them can still be alive (lifetime + 60 s).
//! Authentication is in feed_auth.rs; pollers in feed_poller.rs.

use std::sync::Arc;

use diesel::RunQueryDsl;
use lineage::clock::ManualClock;
use lineage::db::models::revocation_feed::{self, Revocation};
use lineage::db::{Database, PoolOptions, StoreError};
use lineage::domain::Seconds;
use lineage::housekeeping;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, Fixture, TestApp, TestDatabase, basic_auth, count_rows, create_user, feed,
    feed_reader, feed_sids, feed_subs, jwt_claims, revoke, spawn_app_on,
};

both_backends!(
    feed_lists_every_kind_of_revocation,
    a_cursor_pages_on_from_where_the_last_page_ended,
    paging_across_many_entries,
    etag_makes_an_unchanged_poll_a_304,
    entries_are_dropped_after_the_access_token_lifetime_plus_60s,
    revocations_on_record_before_the_upgrade_stay_in_the_feed,
);

/// The migration that introduced the feed.
const FEED_MIGRATION: &str = "20261202000003";

pub async fn revoke_all(app: &TestApp, user_id: &str) {
    let (uid, now) = (user_id.to_string(), app.now());
    app.db
        .write(move |c| {
            lineage::tokens::refresh::revoke_all_for_user(
                c,
                &uid,
                lineage::tokens::refresh::RevocationReason::SignedOutEverywhere,
                now,
            )
        })
        .await
        .expect("revoke_all_for_user");
}

async fn get_ok(app: &TestApp, after: Option<&str>) -> Value {
    let (status, headers, body) = feed(app, after, None).await;
    assert_eq!(status, 200, "{body:?}");
    assert!(headers.get("etag").is_some(), "an ETag");
    assert_eq!(
        headers.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-cache")
    );
    body.expect("a body")
}

fn cursor(body: &Value) -> String {
    body["cursor"]
        .as_str()
        .unwrap_or_else(|| panic!("a string cursor in {body}"))
        .to_string()
}

/// The feed as the reader, with query parameters given raw.
async fn get_raw(app: &TestApp, query: &str) -> (u16, Value) {
    let reader = feed_reader(app).await;
    let resp = app
        .api
        .get(app.url(&format!("/revocations?{query}")))
        .header("Authorization", basic_auth(&reader.id, &reader.secret))
        .send()
        .await
        .expect("GET /revocations");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn feed_lists_every_kind_of_revocation(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let app = &fx.app;
    let body = get_ok(app, None).await;
    let start = cursor(&body);
    assert!(start.ends_with(".0"), "epoch.number: {start}");
    let empty = json!({
        "families": [], "users": [], "access_tokens": [], "clients": [],
        "cursor": start, "has_more": false, "retention": 600 + 60,
    });
    assert_eq!(body, empty);

    let t = app.now();
    let (live, live_token) = fx.start().await;
    let (id, token) = fx.start().await;
    app.clock.set(t + 5);
    revoke(app, &fx.client, &token, None).await;
    app.clock.set(t + 10);
    let bob = create_user(app, "bob").await;
    revoke_all(app, &bob.id).await;
    app.clock.set(t + 15);
    let access = fx.rotate(&live_token).await;
    revoke(app, &fx.client, &access.access_token, Some("access_token")).await;
    // Revoking it again adds nothing.
    revoke(app, &fx.client, &access.access_token, Some("access_token")).await;
    let claims = jwt_claims(&access.access_token);
    app.clock.set(t + 20);
    let service = app.create_client("jobs").await;
    app.delete_client(&service.id).await;

    let body = get_ok(app, None).await;
    let last = cursor(&body);
    assert_eq!(
        body,
        json!({
            "families": [{"sid": id, "revoked_at": t + 5}],
            "users": [{"sub": bob.id, "not_before": t + 10}],
            "access_tokens": [{"jti": claims["jti"], "revoked_at": t + 15, "expires_at": claims["exp"]}],
            "clients": [{"client_id": service.id, "deleted_at": t + 20}],
            "cursor": last,
            "has_more": false,
            "retention": 660,
        })
    );
    assert!(
        !feed_sids(&body).contains(&live),
        "live families are not listed"
    );
    // From its cursor on, nothing is new, and the cursor stays put.
    let body = get_ok(app, Some(&last)).await;
    let nothing_new = json!({
        "families": [], "users": [], "access_tokens": [], "clients": [],
        "cursor": last, "has_more": false, "retention": 660,
    });
    assert_eq!(body, nothing_new);
}

async fn a_cursor_pages_on_from_where_the_last_page_ended(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let app = &fx.app;
    let t = app.now();
    let (f1, tok1) = fx.start().await;
    let (f2, tok2) = fx.start().await;
    let (f3, tok3) = fx.start().await;
    revoke(app, &fx.client, &tok1, None).await;
    let first = get_ok(app, None).await;
    assert_eq!(feed_sids(&first), vec![f1.clone()]);

    // A revocation stamped earlier than the last poll (another node's clock is behind, or this
    // one was stepped back) still comes after the cursor: order is commit order, not time.
    app.clock.set(t - 100);
    revoke(app, &fx.client, &tok2, None).await;
    app.clock.set(t + 20);
    revoke(app, &fx.client, &tok3, None).await;
    let next = get_ok(app, Some(&cursor(&first))).await;
    assert_eq!(feed_sids(&next), vec![f2.clone(), f3.clone()]);
    assert_eq!(next["families"][0]["revoked_at"], t - 100);

    // `limit` pages one entry at a time; `has_more` says when to go on.
    let mut after = None::<String>;
    let mut seen = Vec::new();
    loop {
        let query = match &after {
            Some(a) => format!("limit=1&after={a}"),
            None => "limit=1".into(),
        };
        let (status, page) = get_raw(app, &query).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(feed_sids(&page));
        after = Some(cursor(&page));
        if page["has_more"] == false {
            break;
        }
    }
    assert_eq!(seen, vec![f1.clone(), f2.clone(), f3.clone()]);

    // A cursor beyond the newest entry, or of another epoch (the server restarted, perhaps on a
    // database restored from a backup), starts over.
    let epoch = cursor(&first).split_once('.').map(|(e, _)| e.to_string());
    let epoch = epoch.expect("epoch.number");
    for query in [
        format!("after={epoch}.999999"),
        "after=0123456789ab.1".to_string(),
    ] {
        let (_, page) = get_raw(app, &query).await;
        assert_eq!(feed_sids(&page), vec![f1.clone(), f2.clone(), f3.clone()]);
    }

    // Malformed requests are client errors; the old `since` is refused with a pointer.
    for query in [
        "after=abc",
        "after=-1",
        "after=x.-1",
        "after=x.y",
        "limit=0",
        "limit=ten",
        "since=0",
    ] {
        let (status, body) = get_raw(app, query).await;
        assert_eq!(
            (status, &body["error"]),
            (400, &json!("invalid_request")),
            "{query}: {body}"
        );
    }
    let (_, body) = get_raw(app, "since=0").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or("")
            .contains("after"),
        "{body}"
    );
}

async fn paging_across_many_entries(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let app = &fx.app;
    let total = 2_345;
    let now = app.now();
    let sids: Vec<String> = (0..total).map(|i| format!("family-{i:05}")).collect();
    let published = sids.clone();
    app.db
        .write(move |c| {
            let all: Vec<Revocation> = published
                .iter()
                .map(|s| Revocation::family(s, now))
                .collect();
            revocation_feed::publish(c, &all)
        })
        .await
        .expect("publish");

    // The default (and largest) page is 1,000 entries, in order, until `has_more` is false.
    let mut after = None::<String>;
    let (mut seen, mut sizes) = (Vec::new(), Vec::new());
    loop {
        let page = get_ok(app, after.as_deref()).await;
        let got = feed_sids(&page);
        sizes.push(got.len());
        seen.extend(got);
        after = Some(cursor(&page));
        if page["has_more"] == false {
            break;
        }
    }
    assert_eq!(sizes, vec![1000, 1000, 345]);
    assert_eq!(seen, sids);

    // Asking for more than 1,000 gets 1,000; POST pages the same way as GET.
    let (status, page) = get_raw(app, "limit=5000").await;
    assert_eq!(status, 200);
    assert_eq!(
        (feed_sids(&page).len(), &page["has_more"]),
        (1000, &json!(true))
    );
    let reader = feed_reader(app).await;
    let second: Value = app
        .api
        .post(app.url("/revocations"))
        .form(&[
            ("client_id", reader.id.as_str()),
            ("client_secret", reader.secret.as_str()),
            ("after", cursor(&page).as_str()),
            ("limit", "345"),
        ])
        .send()
        .await
        .expect("POST /revocations")
        .json()
        .await
        .expect("JSON");
    assert_eq!(feed_sids(&second), sids[1000..1345].to_vec());
    assert_eq!(second["has_more"], true);
}

async fn etag_makes_an_unchanged_poll_a_304(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |_| {}).await else {
        return;
    };
    let app = &fx.app;
    let (_, token) = fx.start().await;
    revoke(app, &fx.client, &token, None).await;
    let (status, headers, body) = feed(app, None, None).await;
    assert_eq!(status, 200);
    let after = cursor(&body.expect("a body"));
    // The poll after that, from the cursor: nothing new yet.
    let (status, headers2, _) = feed(app, Some(&after), None).await;
    assert_eq!(status, 200);
    assert_ne!(headers.get("etag"), headers2.get("etag"), "another page");
    let etag = headers2
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .expect("ETag")
        .to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "a strong ETag: {etag}"
    );

    // Still nothing new — even a few seconds later — is a bodiless 304 carrying the same ETag.
    for _ in 0..2 {
        app.clock.advance(2);
        let (status, headers, body) = feed(app, Some(&after), Some(&etag)).await;
        assert_eq!(status, 304);
        assert_eq!(body, None, "a 304 has no body");
        assert_eq!(
            headers.get("etag").and_then(|v| v.to_str().ok()),
            Some(etag.as_str())
        );
    }
    // One of several listed ETags matching is enough.
    let list = format!("\"stale\", {etag}");
    assert_eq!(feed(app, Some(&after), Some(&list)).await.0, 304);
    assert_eq!(feed(app, Some(&after), Some("\"stale\"")).await.0, 200);

    // A new revocation changes the answer.
    let (second_id, second) = fx.start().await;
    revoke(app, &fx.client, &second, None).await;
    let (status, _, body) = feed(app, Some(&after), Some(&etag)).await;
    assert_eq!(status, 200);
    assert_eq!(feed_sids(&body.expect("a body")), vec![second_id]);
}

async fn entries_are_dropped_after_the_access_token_lifetime_plus_60s(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |s| s.access_token_ttl = Seconds::new(300)).await else {
        return;
    };
    let app = &fx.app;
    let keep = 300 + 60;
    assert_eq!(lineage::tokens::keys::RETIRED_KEY_SKEW.get(), 60);
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
    assert_eq!(body["retention"], keep, "the feed states its retention");
    assert_eq!(
        feed_sids(&body),
        vec![old.clone(), newer.clone()],
        "still kept at the edge"
    );
    assert_eq!(feed_subs(&body), vec![bob.id.clone()]);
    let zero = format!(
        "{}.0",
        cursor(&body).split_once('.').map(|(e, _)| e).unwrap_or("")
    );
    let from_start = cursor(&get_ok(app, Some(&zero)).await);

    app.clock.set(t + keep + 1);
    for after in [None, Some(zero.as_str())] {
        let body = get_ok(app, after).await;
        assert_eq!(feed_sids(&body), vec![newer.clone()], "{after:?}: dropped");
        assert_eq!(feed_subs(&body), Vec::<String>::new(), "{after:?}: dropped");
    }
    assert_eq!(cursor(&get_ok(app, Some(&zero)).await), from_start);

    // Housekeeping deletes what is no longer served, in the same step (what `lineage gc` runs).
    let gc = |now: i64| {
        let ttl = app.settings.access_token_ttl;
        app.db
            .write(move |c| housekeeping::collect_all(c, now, ttl))
    };
    assert_eq!(count_rows(app, "revocation_feed").await, 3);
    let report = gc(app.now()).await.expect("gc");
    assert_eq!(report.revocation_feed_entries, 2, "{report:?}");
    assert_eq!(count_rows(app, "revocation_feed").await, 1);

    app.clock.set(t + 100 + keep + 1);
    let body = get_ok(app, None).await;
    assert_eq!(body["families"], json!([]));
    assert_eq!(gc(app.now()).await.expect("gc").revocation_feed_entries, 1);
    assert_eq!(count_rows(app, "revocation_feed").await, 0);
    // The numbering goes on after everything was deleted: old cursors stay valid.
    let (fresh, fresh_token) = fx.start().await;
    revoke(app, &fx.client, &fresh_token, None).await;
    assert_eq!(
        feed_sids(&get_ok(app, Some(&from_start)).await),
        vec![fresh]
    );
}

async fn revocations_on_record_before_the_upgrade_stay_in_the_feed(backend: Backend) {
    let Some(database) = TestDatabase::create(backend) else {
        return;
    };
    let database = Arc::new(database);
    let clock = ManualClock::starting_now();
    let t = lineage::clock::Clock::now(&clock);
    let db = Database::open(&database.url(), &PoolOptions::default()).expect("open");
    db.migrate().expect("migrate");
    // The schema as it was before the feed, with revocations on record.
    let before_feed = [
        format!(
            "INSERT INTO users (id, username, password_hash, security_version, disabled, not_before, \
             created_at, updated_at) VALUES ('u1', 'alice', 'x', 1, FALSE, {t}, {t}, {t})"
        ),
        family_insert("f-live", "NULL", t),
        family_insert("f-revoked", &t.to_string(), t),
        family_insert("f-long-ago", &(t - 10_000).to_string(), t - 20_000),
        format!(
            "INSERT INTO revoked_access_tokens VALUES ('j1', 'c1', {t}, {})",
            t + 600
        ),
    ];
    db.read(move |c| {
        loop {
            if lineage::db::revert_last_migration(c)? == FEED_MIGRATION {
                break;
            }
        }
        for statement in before_feed {
            diesel::sql_query(statement).execute(c)?;
        }
        Ok::<_, StoreError>(())
    })
    .await
    .expect("revert to the schema before the feed");
    db.migrate().expect("upgrade");
    drop(db);

    let app = spawn_app_on(database, clock, |_| {}).await;
    let body = crate::helpers::feed_json(&app).await;
    assert_eq!(
        body["families"],
        json!([{"sid": "f-revoked", "revoked_at": t}]),
        "{body}"
    );
    assert_eq!(body["users"], json!([{"sub": "u1", "not_before": t}]));
    let token = json!([{"jti": "j1", "revoked_at": t, "expires_at": t + 600}]);
    assert_eq!(body["access_tokens"], token);
    // New revocations are numbered after the ones carried over.
    revoke_all(&app, "u1").await;
    let next = get_ok(&app, Some(&cursor(&body))).await;
    assert_eq!(feed_sids(&next), vec!["f-live".to_string()]);
    assert_eq!(feed_subs(&next), vec!["u1".to_string()]);
}

fn family_insert(id: &str, revoked_at: &str, created: i64) -> String {
    format!(
        "INSERT INTO refresh_families (id, user_id, client_id, scope, created_at, last_used_at, \
         idle_expires_at, absolute_expires_at, rotation_count, revoked_at) \
         VALUES ('{id}', 'u1', 'c1', 'read', {created}, {created}, {}, {}, 0, {revoked_at})",
        created + 100_000,
        created + 200_000
    )
}
