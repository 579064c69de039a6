//! The client address behind trusted proxies: `X-Forwarded-For` / `Forwarded` count only when the
//! peer is a trusted proxy, read from the right; audit events and the account page show the
//! resolved address.

use lineage::configuration::Settings;
use lineage::limits::client_ip::ForwardedHeader;
use reqwest::StatusCode;

use crate::helpers::{Backend, Browser, PASSWORD, TestApp, create_user, spawn_app_with};

both_backends!(
    a_trusted_proxy_forwards_the_client_address,
    an_untrusted_peer_cannot_claim_an_address,
    rfc_7239_forwarded_is_read_when_configured,
);

fn trusting(networks: &'static str) -> impl FnOnce(&mut Settings) {
    move |s: &mut Settings| {
        s.limits.trusted_proxies.networks = networks
            .split(',')
            .map(|n| n.parse().expect("cidr"))
            .collect();
    }
}

/// A failed sign-in with these extra headers, then a sign-in; returns the account page's text.
async fn account_after_a_failure(app: &TestApp, headers: &[(&str, &str)]) -> String {
    create_user(app, "alice").await;
    let proxied = Browser::with_headers(&app.address, headers);
    let form = proxied.get("/login").await;
    let resp = proxied
        .post(
            "/login",
            &[
                ("csrf_token", &form.value("csrf_token").expect("csrf")),
                ("return_to", "/account"),
                ("username", "alice"),
                ("password", "wrong password!"),
            ],
        )
        .await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{}", resp.describe());
    let b = app.browser();
    b.sign_in("alice", PASSWORD).await;
    b.get("/account").await.text()
}

async fn a_trusted_proxy_forwards_the_client_address(backend: Backend) {
    let Some(app) = spawn_app_with(backend, trusting("127.0.0.1/32,10.0.0.0/8")).await else {
        return;
    };
    // The client forged 198.51.100.7; the edge proxy 10.1.2.3 saw 203.0.113.9.
    let page = account_after_a_failure(
        &app,
        &[("X-Forwarded-For", "198.51.100.7, 203.0.113.9, 10.1.2.3")],
    )
    .await;
    assert!(page.contains("(from 203.0.113.9)"), "{page}");
    assert!(!page.contains("198.51.100.7"), "{page}");
}

async fn an_untrusted_peer_cannot_claim_an_address(backend: Backend) {
    for trusted in ["", "10.0.0.0/8"] {
        let Some(app) = spawn_app_with(backend, |s| {
            if !trusted.is_empty() {
                trusting("10.0.0.0/8")(s);
            }
        })
        .await
        else {
            return;
        };
        let page = account_after_a_failure(&app, &[("X-Forwarded-For", "203.0.113.9")]).await;
        assert!(
            page.contains("(from 127.0.0.1)"),
            "trusted={trusted:?}: {page}"
        );
        assert!(!page.contains("203.0.113.9"), "trusted={trusted:?}: {page}");
    }
}

async fn rfc_7239_forwarded_is_read_when_configured(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| {
        trusting("127.0.0.1/32")(s);
        s.limits.trusted_proxies.header = ForwardedHeader::Forwarded;
    })
    .await
    else {
        return;
    };
    let page = account_after_a_failure(
        &app,
        &[
            ("Forwarded", r#"for="[2001:db8:cafe::17]:4711";proto=https"#),
            // Not the configured header: ignored.
            ("X-Forwarded-For", "203.0.113.9"),
        ],
    )
    .await;
    assert!(page.contains("(from 2001:db8:cafe::17)"), "{page}");
}
