//! `GET /healthz`: liveness that includes a database round trip.

use std::net::SocketAddr;
use std::sync::Arc;

use lineage::clock::ManualClock;
use lineage::configuration::{KeySecret, Settings};
use lineage::startup::Application;

use crate::helpers::{Backend, KEY_SECRET, TestDatabase, spawn_app, spawn_app_with};

both_backends!(
    healthz_reports_ok,
    a_public_address_needs_https_or_insecure_http
);

async fn healthz_reports_ok(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (status, headers, body) = app.get_json("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::json!({"status": "ok"}));
    assert_eq!(
        headers.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store"),
        "a health answer must not be cached"
    );
}

/// On a non-loopback address the server starts only with an https issuer or `insecure_http`.
async fn a_public_address_needs_https_or_insecure_http(backend: Backend) {
    let Some(database) = TestDatabase::create(backend) else {
        return;
    };
    let database = Arc::new(database);
    let public = SocketAddr::from(([0, 0, 0, 0], 0));
    let mut settings = Settings::for_database(database.url(), KeySecret::new(KEY_SECRET.into()));
    settings.bind = public;
    let refused =
        Application::build_with_clock(settings.clone(), Arc::new(ManualClock::starting_now()))
            .await;
    let err = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("--insecure-http"), "{err}");

    for allow in [
        |s: &mut Settings| s.insecure_http = true,
        |s: &mut Settings| s.issuer = Some("https://auth.example.com".into()),
    ] {
        let Some(app) = spawn_app_with(backend, |s| {
            s.bind = public;
            allow(s);
        })
        .await
        else {
            return;
        };
        let (status, _, _) = app.get_json("/healthz").await;
        assert_eq!(status, 200);
    }
}
