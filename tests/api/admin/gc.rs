//! Housekeeping (`lineage::housekeeping`): ended families go with all their tokens once no access
//! token they issued can still be alive (access-token lifetime + 60 s after they ended), expired
//! denylist entries go, revocation-feed entries go with the same horizon, and nothing else is
//! touched — live families keep every row. Bounded batches.

use diesel::Connection;
use lineage::db::models::refresh_families;
use lineage::domain::{Scope, Seconds};
use lineage::housekeeping::{self, BATCH, GcReport};
use lineage::tokens::refresh::{self, NewFamily, Origin, RefreshPolicy};

use crate::helpers::{
    Backend, FAMILY_SCOPE, Fixture, TestApp, assert_oauth_error, count_rows, create_user,
    denylist_entry, family, family_row, revoke, token_rows,
};

const ACCESS_TTL: Seconds = Seconds::new(300);
const IDLE: i64 = 1000;
const RETENTION: i64 = ACCESS_TTL.get() + 60;

both_backends!(
    gc_removes_what_has_ended_and_nothing_else,
    gc_works_in_bounded_batches,
);

async fn gc(app: &TestApp) -> GcReport {
    let now = app.now();
    app.db
        .write(move |c| housekeeping::collect_all(c, now, ACCESS_TTL))
        .await
        .expect("gc")
}

fn report(
    families: usize,
    refresh_tokens: usize,
    revoked_access_tokens: usize,
    revocation_feed_entries: usize,
) -> GcReport {
    GcReport {
        families,
        refresh_tokens,
        revoked_access_tokens,
        revocation_feed_entries,
        ..GcReport::default()
    }
}

async fn gc_removes_what_has_ended_and_nothing_else(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |s| {
        s.access_token_ttl = ACCESS_TTL;
        s.refresh_idle_ttl = Seconds::new(IDLE);
        s.refresh_absolute_ttl = Seconds::new(10 * IDLE);
    })
    .await
    else {
        return;
    };
    let app = &fx.app;
    let t0 = app.now();

    // Live: rotated now and then, all along.
    let (live, mut live_token) = fx.start().await;
    let mut first_access = None;
    for _ in 0..3 {
        let r = fx.rotate(&live_token).await;
        first_access.get_or_insert(r.access_token);
        live_token = r.refresh_token;
    }
    // Revoked at t0, with a few generations.
    let (revoked, t) = fx.start().await;
    let t = fx.rotate(&t).await.refresh_token;
    let revoked_last = fx.rotate(&t).await.refresh_token;
    revoke(app, &fx.client, &revoked_last, None).await;
    // Never used: idle-expires at t0 + IDLE.
    let (idle, idle_token) = fx.start().await;
    // An access token revoked at t0 (denylisted until t0 + ACCESS_TTL).
    let early_access = first_access.expect("an access token");
    revoke(app, &fx.client, &early_access, Some("access_token")).await;
    let early_jti = crate::helpers::jwt_claims(&early_access)["jti"]
        .as_str()
        .expect("jti")
        .to_string();

    // Another at t0 + 200 (denylisted until t0 + 500).
    app.clock.set(t0 + 200);
    let r = fx.rotate(&live_token).await;
    live_token = r.refresh_token;
    revoke(app, &fx.client, &r.access_token, None).await;
    let late_jti = r.claims["jti"].as_str().expect("jti").to_string();

    let users = count_rows(app, "users").await;
    let clients = count_rows(app, "clients").await;
    let audit = count_rows(app, "audit_events").await;

    // At t0 + RETENTION the revoked family is still kept (a token it issued at t0 may live
    // until then), and so are its feed entries; the early denylist entry has expired.
    assert_eq!(count_rows(app, "revocation_feed").await, 3);
    app.clock.set(t0 + RETENTION);
    assert_eq!(gc(app).await, report(0, 0, 1, 0));
    assert!(denylist_entry(app, &early_jti).await.is_none());
    assert!(denylist_entry(app, &late_jti).await.is_some());
    assert!(family_row(app, &revoked).await.is_some());

    // One second later it goes, with all three of its tokens and the feed entries of t0.
    app.clock.set(t0 + RETENTION + 1);
    assert_eq!(gc(app).await, report(1, 3, 0, 2));
    assert!(family_row(app, &revoked).await.is_none());
    assert!(token_rows(app, &revoked).await.is_empty());
    let resp = fx.refresh(&revoked_last).await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
    revoke(app, &fx.client, &revoked_last, None).await; // unknown now: still 200

    // Keep the live family alive across the idle family's expiry.
    app.clock.set(t0 + IDLE - 1);
    live_token = fx.rotate(&live_token).await.refresh_token;

    // The idle family ended at t0 + IDLE: kept until t0 + IDLE + RETENTION, gone a second later.
    app.clock.set(t0 + IDLE + RETENTION);
    assert_eq!(
        gc(app).await,
        report(0, 0, 1, 1),
        "only the late denylist entry and its feed entry"
    );
    assert!(family_row(app, &idle).await.is_some());
    app.clock.set(t0 + IDLE + RETENTION + 1);
    assert_eq!(gc(app).await, report(1, 1, 0, 0));
    assert!(family_row(app, &idle).await.is_none());
    let resp = fx.refresh(&idle_token).await;
    assert_oauth_error(resp, 400, "invalid_grant").await;

    // Nothing else was touched: the live family has every generation, and the other tables
    // (audit events are kept for 90 days) are as they were.
    assert_eq!(family(app, &live).await.revoked_at, None);
    assert_eq!(
        token_rows(app, &live).await.len(),
        6,
        "every generation of a live family"
    );
    assert_eq!(count_rows(app, "users").await, users);
    assert_eq!(count_rows(app, "clients").await, clients);
    assert_eq!(count_rows(app, "audit_events").await, audit);
    assert_eq!(count_rows(app, "refresh_families").await, 1);
    assert_eq!(count_rows(app, "revoked_access_tokens").await, 0);
    assert_eq!(count_rows(app, "revocation_feed").await, 0);
    assert_eq!(
        gc(app).await,
        GcReport::default(),
        "a second pass finds nothing"
    );
    fx.rotate(&live_token).await;
}

async fn gc_works_in_bounded_batches(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |s| s.access_token_ttl = ACCESS_TTL).await else {
        return;
    };
    let app = &fx.app;
    let bob = create_user(app, "bob").await;
    let extra = 5;
    let total = BATCH as usize + extra;
    let (policy, now, uid, cid) = (
        RefreshPolicy::from_settings(&app.settings),
        app.now(),
        bob.id.clone(),
        fx.client.id.clone(),
    );
    app.db
        .write(move |c| {
            c.transaction(|c| {
                for _ in 0..total {
                    let spec = NewFamily {
                        user_id: uid.clone(),
                        client_id: cid.clone(),
                        scope: Scope::parse(FAMILY_SCOPE).expect("scope"),
                        device_name: None,
                        origin: Origin::default(),
                        dpop_jkt: None,
                    };
                    refresh::start_family(c, spec, &policy, now)?;
                }
                refresh::revoke_all_for_user(
                    c,
                    &uid,
                    lineage::tokens::refresh::RevocationReason::RevokedByAdmin,
                    now,
                )?;
                Ok::<_, lineage::db::StoreError>(())
            })
        })
        .await
        .expect("start and revoke many families");
    let (live, live_token) = fx.start().await;

    app.clock.advance(RETENTION + 1);
    let now = app.now();
    let first = app
        .db
        .write(move |c| housekeeping::collect_batch(c, now, ACCESS_TTL))
        .await
        .expect("one batch");
    assert_eq!(first.families, BATCH as usize, "one batch is bounded");
    assert_eq!(first.refresh_tokens, BATCH as usize);
    assert_eq!(first.revocation_feed_entries, BATCH as usize);
    let second = app
        .db
        .write(move |c| housekeeping::collect_batch(c, now, ACCESS_TTL))
        .await
        .expect("another batch");
    assert_eq!(second.families, extra);
    // The families' entries and the user's not-before.
    assert_eq!(second.revocation_feed_entries, extra + 1);
    assert_eq!(gc(app).await, GcReport::default());

    let uid = bob.id.clone();
    let left = app
        .db
        .read(move |c| refresh_families::list_for_user(c, &uid))
        .await
        .expect("list");
    assert!(left.is_empty());
    assert_eq!(count_rows(app, "refresh_families").await, 1);
    assert_eq!(family(app, &live).await.revoked_at, None);
    fx.rotate(&live_token).await;
}
