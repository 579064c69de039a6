//! Prometheus `/metrics`: served only on the separate `--metrics-bind` listener, never on the
//! public one, with the counters an operator watches.

use std::net::SocketAddr;

use lineage::domain::Seconds;

use crate::helpers::{Backend, Fixture, TestApp, refresh_ok, spawn_app, spawn_app_with};

both_backends!(
    metrics_are_not_served_on_the_public_listener,
    metrics_listener_serves_the_counters,
);

fn local_any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn scrape(app: &TestApp) -> (u16, String, String) {
    let base = app
        .metrics_address
        .as_deref()
        .expect("the metrics listener is on");
    let resp = app
        .api
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, content_type, resp.text().await.expect("body"))
}

async fn metrics_are_not_served_on_the_public_listener(backend: Backend) {
    for metrics_on in [false, true] {
        let Some(app) = spawn_app_with(backend, |s| {
            s.metrics_bind = metrics_on.then(local_any_port);
        })
        .await
        else {
            return;
        };
        let resp = app
            .api
            .get(app.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(resp.status(), 404, "metrics listener on: {metrics_on}");
        assert_eq!(app.metrics_address.is_some(), metrics_on);
    }
    // Without the setting nothing listens for metrics at all.
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    assert!(app.metrics_address.is_none());
}

async fn metrics_listener_serves_the_counters(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |s| {
        s.metrics_bind = Some(local_any_port());
        s.refresh_grace = Seconds::new(5);
    })
    .await
    else {
        return;
    };
    let (_, token) = fx.start().await;
    let next = refresh_ok(&fx.app, &fx.client, &token).await;
    // A retry within the grace, from the same origin.
    let again = refresh_ok(&fx.app, &fx.client, &token).await;
    assert_eq!(again.refresh_token, next.refresh_token);

    let (status, content_type, text) = scrape(&fx.app).await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(
        text.contains(r#"lineage_tokens_issued_total{grant_type="refresh_token"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"lineage_refresh_grace_retries_total{origin="same"} 1"#),
        "{text}"
    );
    // The metrics listener serves nothing else.
    let base = fx.app.metrics_address.clone().unwrap_or_default();
    let other = fx
        .app
        .api
        .get(format!("{base}/token"))
        .send()
        .await
        .expect("GET");
    assert_eq!(other.status(), 404);
}
