//! The metrics listener's request counter and latency histogram (by route pattern, never by
//! path), the refresh-family counters and gauge, and the storage metrics.

use std::net::SocketAddr;

use diesel::Connection;
use lineage::db::StoreError;
use lineage::domain::Seconds;
use lineage::tokens::refresh::{self, Origin};
use reqwest::Method;

use crate::helpers::{
    Backend, Fixture, TestApp, basic_auth, family_row, refresh_ok, revoke, spawn_app_with,
};

both_backends!(
    requests_are_counted_and_timed_by_route_pattern,
    rotations_revocations_and_live_families_are_counted,
    storage_metrics_are_served,
);

fn with_metrics(s: &mut lineage::configuration::Settings) {
    s.metrics_bind = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
}

async fn scrape(app: &TestApp) -> String {
    let base = app.metrics_address.as_deref().expect("metrics listener");
    let resp = app
        .api
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(resp.status(), 200);
    resp.text().await.expect("body")
}

/// The value of one series (`name{labels}` exactly as encoded), if it is there.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn assert_value(text: &str, series: &str, expected: f64) {
    assert_eq!(value(text, series), Some(expected), "{series} in:\n{text}");
}

async fn requests_are_counted_and_timed_by_route_pattern(backend: Backend) {
    let Some(app) = spawn_app_with(backend, with_metrics).await else {
        return;
    };
    let client = app.create_client("read").await;
    for _ in 0..3 {
        app.client_credentials_token(&client).await;
    }
    let wrong = app
        .post_token(
            &[("grant_type", "client_credentials")],
            Some(&basic_auth(&client.id, "not-the-secret")),
        )
        .await;
    assert_eq!(wrong.status(), 401);
    let missing = app
        .api
        .get(app.url("/no-such-page"))
        .send()
        .await
        .expect("GET");
    assert_eq!(missing.status(), 404);
    let with_id = app
        .api
        .post(app.url("/account/families/some-family-id/revoke"))
        .send()
        .await
        .expect("POST");
    let with_id_status = with_id.status().as_u16();
    let brew = Method::from_bytes(b"BREW").expect("method");
    let odd = app
        .api
        .request(brew, app.url("/token"))
        .send()
        .await
        .expect("BREW");
    assert_eq!(odd.status(), 405);

    let text = scrape(&app).await;
    let token = r#"method="POST",route="/token""#;
    assert_value(
        &text,
        &format!("lineage_http_requests_total{{{token},status=\"200\"}}"),
        3.0,
    );
    assert_value(
        &text,
        &format!("lineage_http_requests_total{{{token},status=\"401\"}}"),
        1.0,
    );
    let ok = format!("{token},status_class=\"2xx\"");
    assert_value(
        &text,
        &format!("lineage_http_request_duration_seconds_count{{{ok}}}"),
        3.0,
    );
    assert_value(
        &text,
        &format!("lineage_http_request_duration_seconds_bucket{{le=\"+Inf\",{ok}}}"),
        3.0,
    );
    assert_value(
        &text,
        &format!("lineage_http_request_duration_seconds_count{{{token},status_class=\"4xx\"}}"),
        1.0,
    );
    assert!(
        value(
            &text,
            &format!("lineage_http_request_duration_seconds_sum{{{ok}}}")
        )
        .is_some_and(|s| s > 0.0),
        "{text}"
    );
    // Unknown paths, odd methods and ids in paths all collapse into bounded labels.
    assert_value(
        &text,
        r#"lineage_http_requests_total{method="GET",route="other",status="404"}"#,
        1.0,
    );
    assert_value(
        &text,
        &format!(
            "lineage_http_requests_total{{method=\"POST\",route=\"/account/families/{{family_id}}/revoke\",status=\"{with_id_status}\"}}"
        ),
        1.0,
    );
    assert_value(
        &text,
        r#"lineage_http_requests_total{method="other",route="/token",status="405"}"#,
        1.0,
    );
    for leaked in ["no-such-page", "some-family-id", "BREW"] {
        assert!(!text.contains(leaked), "{leaked} became a label:\n{text}");
    }
}

async fn rotations_revocations_and_live_families_are_counted(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |s| {
        with_metrics(s);
        s.refresh_grace = Seconds::new(5);
    })
    .await
    else {
        return;
    };
    let app = &fx.app;
    let (_, first) = fx.start().await;
    let (_, second) = fx.start().await;
    let text = scrape(app).await;
    assert_value(&text, "lineage_refresh_families_active", 2.0);
    assert_value(&text, "lineage_refresh_rotations_total", 0.0);

    // Two rotations and one retry within the grace (not a rotation).
    let next = fx.rotate(&first).await;
    let _latest = fx.rotate(&next.refresh_token).await;
    refresh_ok(app, &fx.client, &next.refresh_token).await;
    // After the grace, the first token again: reuse, its family revoked.
    app.clock.advance(10);
    assert_eq!(fx.refresh(&first).await.status(), 400);
    // The client revokes the second family.
    revoke(app, &fx.client, &second, None).await;
    // Three more, ended together for the user: counted once per family.
    for _ in 0..3 {
        fx.start().await;
    }
    let (user_id, now) = (fx.user.id.clone(), app.now());
    app.db
        .write(move |c| {
            refresh::revoke_all_for_user(
                c,
                &user_id,
                lineage::tokens::refresh::RevocationReason::RevokedByAdmin,
                now,
            )
        })
        .await
        .expect("revoke all");
    // A revocation whose transaction rolls back is not counted.
    let (kept, _) = fx.start().await;
    let (id, now) = (kept.clone(), app.now());
    let rolled_back = app
        .db
        .write(move |c| {
            c.transaction(|c| {
                refresh::revoke_family(
                    c,
                    &id,
                    lineage::tokens::refresh::RevocationReason::SignedOut,
                    &Origin::default(),
                    now,
                )?;
                Err::<(), _>(StoreError::Other(anyhow::anyhow!("abandoned")))
            })
        })
        .await;
    assert!(rolled_back.is_err());
    assert_eq!(
        family_row(app, &kept).await.and_then(|f| f.revoked_at),
        None
    );

    let text = scrape(app).await;
    assert_value(&text, "lineage_refresh_rotations_total", 2.0);
    assert_value(
        &text,
        r#"lineage_refresh_grace_retries_total{origin="same"}"#,
        1.0,
    );
    assert_value(&text, "lineage_refresh_reuse_detected_total", 1.0);
    let revoked =
        |reason: &str| format!("lineage_refresh_families_revoked_total{{reason=\"{reason}\"}}");
    assert_value(&text, &revoked("reuse_detected"), 1.0);
    assert_value(&text, &revoked("revoked_by_client"), 1.0);
    assert_value(&text, &revoked("revoked_by_admin"), 3.0);
    assert!(!text.contains("signed_out"), "{text}");
    assert_value(&text, "lineage_refresh_families_active", 1.0);

    // Past the idle timeout nothing is live; the gauge follows the server's clock.
    app.clock.advance(app.settings.refresh_idle_ttl.get());
    let text = scrape(app).await;
    assert_value(&text, "lineage_refresh_families_active", 0.0);
}

async fn storage_metrics_are_served(backend: Backend) {
    let Some(fx) = Fixture::new(backend, with_metrics).await else {
        return;
    };
    let (_, token) = fx.start().await;
    let next = fx.rotate(&token).await;
    fx.rotate(&next.refresh_token).await;

    let text = scrape(&fx.app).await;
    let waits = value(&text, "lineage_db_pool_wait_seconds_count").unwrap_or(0.0);
    assert!(waits > 0.0, "{text}");
    assert_value(
        &text,
        r#"lineage_db_pool_wait_seconds_bucket{le="+Inf"}"#,
        waits,
    );
    match backend {
        Backend::Sqlite => {
            assert_value(&text, "lineage_db_writer_queue_depth", 0.0);
            assert_value(
                &text,
                "lineage_db_writer_queue_capacity",
                fx.app.settings.writer_queue as f64,
            );
            // The user, the family and two rotations were written through the writer.
            let groups = value(&text, "lineage_db_writer_group_size_count").unwrap_or(0.0);
            assert!(groups >= 4.0, "{text}");
            assert_value(
                &text,
                r#"lineage_db_writer_group_size_bucket{le="16.0"}"#,
                groups,
            );
            assert!(
                value(&text, "lineage_db_writer_group_size_sum").is_some_and(|jobs| jobs >= groups),
                "{text}"
            );
        }
        Backend::Postgres => {
            assert!(
                !text.contains("lineage_db_writer"),
                "no writer on PostgreSQL:\n{text}"
            );
        }
    }
}
