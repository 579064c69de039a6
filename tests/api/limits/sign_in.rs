//! Sign-in limits: the per-username back-off kept in the database (429 with `Retry-After` and a
//! page that says when, refused attempts that do not extend it, a reset on success, shared by
//! nodes), the per-address failure limit, and failed sign-ins aggregated into one security event.

use std::sync::Arc;

use lineage::clock::ManualClock;
use lineage::configuration::Settings;
use lineage::db::models::audit_events::{self, AuditEventRow};
use lineage::db::schema::sign_in_throttles;
use lineage::domain::Seconds;
use lineage::limits::RateLimit;
use reqwest::StatusCode;

use crate::helpers::{
    Backend, Browser, PASSWORD, TestApp, TestDatabase, create_user, is_signed_in, spawn_app_on,
    spawn_app_with,
};

both_backends!(
    sixth_wrong_password_is_429_with_retry_after_and_a_page_that_says_when,
    after_the_back_off_a_correct_password_from_a_clean_address_signs_in,
    refused_attempts_do_not_extend_the_back_off,
    a_successful_sign_in_resets_the_back_off,
    two_nodes_on_one_database_share_the_back_off,
    an_address_that_keeps_failing_is_refused_while_others_sign_in,
    unknown_usernames_are_counted_like_known_ones,
    failed_sign_ins_are_one_event_with_a_count,
    housekeeping_deletes_failure_counts_a_day_old,
);

const WRONG: &str = "not the password at all";

/// The server trusts 127.0.0.1 as a proxy, so `Browser::forwarded_as` gives each browser an address.
fn behind_proxy(s: &mut Settings) {
    s.limits.trusted_proxies.networks = vec!["127.0.0.1/32".parse().expect("cidr")];
    s.metrics_bind = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
}

async fn app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, behind_proxy).await
}

fn from(app: &TestApp, address: &str) -> Browser {
    Browser::forwarded_as(&app.address, address)
}

/// One sign-in attempt through the form.
async fn attempt(b: &Browser, username: &str, password: &str) -> crate::helpers::Page {
    let form = b.get("/login").await;
    assert_eq!(form.status, 200, "{}", form.describe());
    b.post(
        "/login",
        &[
            ("csrf_token", &form.value("csrf_token").expect("csrf")),
            ("return_to", "/account"),
            ("username", username),
            ("password", password),
        ],
    )
    .await
}

async fn fail_times(b: &Browser, username: &str, n: usize) {
    for i in 0..n {
        let page = attempt(b, username, WRONG).await;
        assert_eq!(
            page.status,
            StatusCode::UNAUTHORIZED,
            "failure {}: {}",
            i + 1,
            page.describe()
        );
    }
}

fn retry_after(page: &crate::helpers::Page) -> u64 {
    page.header("retry-after")
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After in {}", page.describe()))
}

async fn sixth_wrong_password_is_429_with_retry_after_and_a_page_that_says_when(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    create_user(&app, "alice").await;
    let b = from(&app, "203.0.113.9");
    fail_times(&b, "alice", 5).await;
    // Even the right password is not checked during the back-off.
    let page = attempt(&b, "alice", PASSWORD).await;
    assert_eq!(
        page.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        page.describe()
    );
    assert_eq!(retry_after(&page), 30);
    assert!(
        page.text().contains("try again in 30 seconds"),
        "{}",
        page.text()
    );
    assert_eq!(
        page.value("username").as_deref(),
        Some("alice"),
        "username kept"
    );
    assert!(
        page.form("/login").is_some(),
        "the sign-in form is there to try again"
    );
    assert!(!is_signed_in(&b).await);
    let metrics = app.metrics_text().await;
    assert!(
        metrics
            .contains(r#"lineage_rate_limited_total{endpoint="login",limit="sign_in_backoff"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"lineage_sign_ins_total{result="failure"} 5"#),
        "{metrics}"
    );
}

async fn after_the_back_off_a_correct_password_from_a_clean_address_signs_in(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    create_user(&app, "alice").await;
    let attacker = from(&app, "203.0.113.9");
    fail_times(&attacker, "alice", 5).await;
    let alice = from(&app, "198.51.100.20");
    let refused = attempt(&alice, "alice", PASSWORD).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    app.clock.advance(31);
    let page = attempt(&alice, "alice", PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.describe());
    assert!(is_signed_in(&alice).await);
}

async fn refused_attempts_do_not_extend_the_back_off(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    create_user(&app, "alice").await;
    let b = from(&app, "203.0.113.9");
    fail_times(&b, "alice", 5).await;
    for expected in [30, 20, 10] {
        let page = attempt(&b, "alice", WRONG).await;
        assert_eq!(
            page.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{}",
            page.describe()
        );
        assert_eq!(
            retry_after(&page),
            expected,
            "the back-off ends when it was set to"
        );
        app.clock.advance(10);
    }
    let page = attempt(&from(&app, "198.51.100.20"), "alice", PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.describe());
}

async fn a_successful_sign_in_resets_the_back_off(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    create_user(&app, "alice").await;
    let b = from(&app, "203.0.113.9");
    fail_times(&b, "alice", 5).await;
    let blocked = attempt(&from(&app, "198.51.100.20"), "alice", PASSWORD).await;
    assert_eq!(
        blocked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        blocked.describe()
    );
    app.clock.advance(31);
    let ok = attempt(&from(&app, "198.51.100.20"), "alice", PASSWORD).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.describe());
    // Counted from zero again: one failure is free, the next attempt is checked at once.
    fail_times(&b, "alice", 1).await;
    let page = attempt(&from(&app, "198.51.100.21"), "alice", PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.describe());
}

async fn two_nodes_on_one_database_share_the_back_off(backend: Backend) {
    let Some(database) = TestDatabase::create(backend) else {
        return;
    };
    let (database, clock) = (Arc::new(database), ManualClock::starting_now());
    let a = spawn_app_on(Arc::clone(&database), clock.clone(), behind_proxy).await;
    let b = spawn_app_on(Arc::clone(&database), clock.clone(), behind_proxy).await;
    create_user(&a, "alice").await;
    fail_times(&from(&a, "203.0.113.9"), "alice", 5).await;
    // The other node has never seen this address fail, and still refuses: the back-off is shared.
    let page = attempt(&from(&b, "198.51.100.20"), "alice", PASSWORD).await;
    assert_eq!(
        page.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        page.describe()
    );
    assert_eq!(retry_after(&page), 30);
    clock.advance(31);
    let page = attempt(&from(&b, "198.51.100.20"), "alice", PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.describe());
}

async fn an_address_that_keeps_failing_is_refused_while_others_sign_in(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| {
        behind_proxy(s);
        s.limits.sign_in_ip_failures = RateLimit::parse("x", "3/1h").expect("rate");
    })
    .await
    else {
        return;
    };
    create_user(&app, "alice").await;
    let attacker = from(&app, "203.0.113.9");
    // Different usernames each time: no username reaches its back-off.
    for name in ["bob", "carol", "dave"] {
        fail_times(&attacker, name, 1).await;
    }
    let page = attempt(&attacker, "alice", PASSWORD).await;
    assert_eq!(
        page.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        page.describe()
    );
    assert!(retry_after(&page) > 60, "{}", retry_after(&page));
    assert!(page.text().contains("from your network"), "{}", page.text());
    assert_eq!(page.value("username").as_deref(), Some("alice"));
    // Another address is not affected.
    let page = attempt(&from(&app, "198.51.100.20"), "alice", PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.describe());
}

async fn unknown_usernames_are_counted_like_known_ones(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let b = from(&app, "203.0.113.9");
    fail_times(&b, "nobody", 5).await;
    let page = attempt(&b, "nobody", WRONG).await;
    assert_eq!(
        page.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        page.describe()
    );
    let (rows, events) = app
        .db
        .read(|c| {
            use diesel::prelude::*;
            let rows: Vec<String> = sign_in_throttles::table
                .select(sign_in_throttles::username_key)
                .load(c)?;
            Ok::<_, lineage::db::StoreError>((rows, audit_events::list_kind(c, "sign_in_failed")?))
        })
        .await
        .expect("rows");
    assert_eq!(rows.len(), 1, "one row for the username");
    assert!(
        !rows[0].contains("nobody"),
        "the username itself is not stored"
    );
    assert!(events.is_empty(), "no security event without a user");
}

async fn failed_sign_ins_are_one_event_with_a_count(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let user_id = create_user(&app, "alice").await.id;
    // A security alert that must stay on the account page.
    let mut reuse = AuditEventRow::new(
        app.now() - 60,
        "refresh_token_reuse",
        "a refresh token of Laptop was used a second time (generation 3); every token of that session was revoked",
    );
    reuse.user_id = Some(user_id.clone());
    app.db
        .write(move |c| audit_events::insert(c, &reuse))
        .await
        .expect("event");

    for i in 0..20 {
        let page = attempt(&from(&app, &format!("203.0.113.{i}")), "alice", WRONG).await;
        assert_eq!(
            page.status,
            StatusCode::UNAUTHORIZED,
            "failure {i}: {}",
            page.describe()
        );
        app.clock.advance(301); // past any back-off, well within the event's 15 minutes
    }
    let events = app
        .db
        .read(|c| audit_events::list_kind(c, "sign_in_failed"))
        .await
        .expect("events");
    assert_eq!(events.len(), 1, "one aggregated event: {events:?}");
    assert_eq!(
        events[0].ip.as_deref(),
        Some("203.0.113.19"),
        "the latest address"
    );

    let alice = from(&app, "198.51.100.20");
    let ok = attempt(&alice, "alice", PASSWORD).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.describe());
    let account = alice.get("/account").await.text();
    assert!(
        account.contains("20 failed sign-ins with a wrong password"),
        "{account}"
    );
    assert!(account.contains("(from 203.0.113.19)"), "{account}");
    assert!(
        account.contains("used a second time"),
        "the reuse alert is still shown: {account}"
    );
}

async fn housekeeping_deletes_failure_counts_a_day_old(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    fail_times(&from(&app, "203.0.113.9"), "nobody", 1).await;
    let gc = |now: i64| {
        app.db
            .write(move |c| lineage::housekeeping::collect_all(c, now, Seconds::new(600)))
    };
    let report = gc(app.now()).await.expect("gc");
    assert_eq!(report.sign_in_throttles, 0, "a fresh count stays");
    app.clock
        .advance(lineage::limits::sign_in::FORGET_AFTER.get() + 1);
    let report = gc(app.now()).await.expect("gc");
    assert_eq!(report.sign_in_throttles, 1, "a day-old count goes");
}
