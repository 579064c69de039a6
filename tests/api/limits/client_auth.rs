//! Limits on failed client authentication (per client id at an address, per address) at
//! `/token` (every grant, the refresh grant too), `/revoke` and `/introspect`, the per-address
//! request ceiling, and the cap on the keys the limiters track.

use lineage::configuration::Settings;
use lineage::limits::RateLimit;
use serde_json::Value;

use crate::helpers::{
    Backend, TestApp, TestClient, assert_oauth_error, basic_auth, spawn_app_with,
};

both_backends!(
    failed_client_authentication_is_limited_at_every_endpoint,
    failures_of_the_refresh_grant_count,
    an_address_failing_with_many_client_ids_is_limited,
    the_per_address_ceiling_answers_429,
    the_limiters_track_at_most_their_cap_of_keys,
);

fn behind_proxy(s: &mut Settings) {
    s.limits.trusted_proxies.networks = vec!["127.0.0.1/32".parse().expect("cidr")];
    s.metrics_bind = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
}

fn rate(raw: &str) -> Option<RateLimit> {
    RateLimit::parse("test", raw).expect("a rate")
}

async fn post(
    app: &TestApp,
    path: &str,
    address: &str,
    params: &[(&str, &str)],
    authorization: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .api
        .post(app.url(path))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-Forwarded-For", address)
        .body(crate::helpers::form_body(params));
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    req.send().await.expect("POST")
}

/// Assert the limit's answer: 429, `Retry-After`, no-store, RFC 6749 JSON.
async fn assert_limited(resp: reqwest::Response) -> Value {
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        retry_after.is_some_and(|s| s >= 1),
        "Retry-After: {retry_after:?}"
    );
    assert_oauth_error(resp, 429, "temporarily_unavailable").await
}

fn params_for(path: &str) -> Vec<(&'static str, &'static str)> {
    match path {
        "/token" => vec![("grant_type", "client_credentials")],
        _ => vec![("token", "some-token")],
    }
}

async fn failed_client_authentication_is_limited_at_every_endpoint(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| {
        behind_proxy(s);
        s.limits.client_auth_failures = rate("3/1h");
    })
    .await
    else {
        return;
    };
    let client = app.create_client("x").await;
    let wrong = basic_auth(&client.id, "not-the-secret");
    let right = basic_auth(&client.id, &client.secret);
    for (i, path) in ["/token", "/revoke", "/introspect"].into_iter().enumerate() {
        let attacker = format!("203.0.113.{i}");
        let params = params_for(path);
        for _ in 0..3 {
            let resp = post(&app, path, &attacker, &params, Some(&wrong)).await;
            assert_oauth_error(resp, 401, "invalid_client").await;
        }
        // From that address even the right secret is not checked now.
        let resp = post(&app, path, &attacker, &params, Some(&right)).await;
        let body = assert_limited(resp).await;
        assert!(
            body["error_description"]
                .as_str()
                .unwrap_or("")
                .contains("failed client"),
            "{body}"
        );
        // The client itself keeps working from its own address.
        let resp = post(&app, path, "198.51.100.20", &params, Some(&right)).await;
        assert_eq!(
            resp.status(),
            200,
            "{path}: {}",
            resp.text().await.unwrap_or_default()
        );
    }
    let metrics = app.metrics_text().await;
    for endpoint in ["token", "revoke", "introspect"] {
        let line = format!(
            r#"lineage_rate_limited_total{{endpoint="{endpoint}",limit="client_auth_failures"}} 1"#
        );
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
}

async fn failures_of_the_refresh_grant_count(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| {
        behind_proxy(s);
        s.limits.client_auth_failures = rate("3/1h");
    })
    .await
    else {
        return;
    };
    let client = app.create_client("x").await;
    let wrong = basic_auth(&client.id, "not-the-secret");
    let params = [
        ("grant_type", "refresh_token"),
        ("refresh_token", "6f1c1a2e-7d5b-4c3a-9e8f-0a1b2c3d4e5f"),
    ];
    for _ in 0..3 {
        let resp = post(&app, "/token", "203.0.113.9", &params, Some(&wrong)).await;
        assert_oauth_error(resp, 401, "invalid_client").await;
    }
    let resp = post(&app, "/token", "203.0.113.9", &params, Some(&wrong)).await;
    assert_limited(resp).await;
}

async fn an_address_failing_with_many_client_ids_is_limited(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| {
        behind_proxy(s);
        s.limits.client_auth_ip_failures = rate("5/1h");
    })
    .await
    else {
        return;
    };
    let client: TestClient = app.create_client("x").await;
    let params = params_for("/token");
    for i in 0..5 {
        let auth = basic_auth(&format!("made-up-{i}"), "guess");
        let resp = post(&app, "/token", "203.0.113.9", &params, Some(&auth)).await;
        assert_oauth_error(resp, 401, "invalid_client").await;
    }
    let right = basic_auth(&client.id, &client.secret);
    let resp = post(&app, "/token", "203.0.113.9", &params, Some(&right)).await;
    assert_limited(resp).await;
    let resp = post(&app, "/token", "198.51.100.20", &params, Some(&right)).await;
    assert_eq!(resp.status(), 200);
}

async fn the_per_address_ceiling_answers_429(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| {
        behind_proxy(s);
        s.limits.oauth_ip_requests = rate("5/1h");
    })
    .await
    else {
        return;
    };
    let client = app.create_client("x").await;
    let right = basic_auth(&client.id, &client.secret);
    let params = params_for("/token");
    for _ in 0..5 {
        let resp = post(&app, "/token", "203.0.113.9", &params, Some(&right)).await;
        assert_eq!(resp.status(), 200);
    }
    for path in ["/token", "/revoke", "/introspect"] {
        let resp = post(&app, path, "203.0.113.9", &params_for(path), Some(&right)).await;
        let body = assert_limited(resp).await;
        assert!(
            body["error_description"]
                .as_str()
                .unwrap_or("")
                .contains("too many requests"),
            "{body}"
        );
    }
    let resp = post(&app, "/token", "198.51.100.20", &params, Some(&right)).await;
    assert_eq!(resp.status(), 200, "another address is not affected");
}

/// The value of `lineage_rate_limit_keys{limit="…"}` on /metrics.
async fn tracked_keys(app: &TestApp, limit: &str) -> u64 {
    let text = app.metrics_text().await;
    let prefix = format!(r#"lineage_rate_limit_keys{{limit="{limit}"}} "#);
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{prefix} in {text}"))
}

async fn the_limiters_track_at_most_their_cap_of_keys(backend: Backend) {
    const CAP: u64 = 100;
    let Some(app) = spawn_app_with(backend, |s| {
        behind_proxy(s);
        s.limits.rate_limit_max_keys = CAP as usize;
        s.limits.oauth_ip_requests = rate("1000/1h");
    })
    .await
    else {
        return;
    };
    let params = params_for("/token");
    // 3,000 unknown client ids from 3,000 addresses, 16 at a time.
    let ids: Vec<u32> = (0..3000).collect();
    for chunk in ids.chunks(16) {
        let sends = chunk.iter().map(|i| {
            let auth = basic_auth(&format!("unknown-client-{i}"), "guess");
            let address = format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256);
            let app = &app;
            let params = &params;
            async move {
                post(app, "/token", &address, params, Some(&auth))
                    .await
                    .status()
            }
        });
        for status in futures_util::future::join_all(sends).await {
            assert!(status == 401 || status == 429, "{status}");
        }
    }
    for limit in [
        "client_auth_failures",
        "client_auth_ip_failures",
        "oauth_ip_requests",
    ] {
        let keys = tracked_keys(&app, limit).await;
        assert!(keys > 0 && keys <= CAP, "{limit}: {keys} keys, cap {CAP}");
    }
}
