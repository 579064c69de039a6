//! Family lifetimes on the injected clock: the idle timeout (extended by each rotation, never past
//! the absolute expiry), the absolute lifetime (never extended), the rotation cap, and access
//! tokens that never outlive their family. Each limit is checked one second before and at its edge.

use lineage::domain::Seconds;

use crate::helpers::{
    Backend, Fixture, assert_inactive, assert_oauth_error, family, introspect, unused_count,
};

const IDLE: i64 = 100;
const ABSOLUTE: i64 = 250;
/// Longer than the family's whole life, so the cap on `exp` is visible.
const ACCESS_TTL: i64 = 600;

async fn fixture(backend: Backend) -> Option<Fixture> {
    Fixture::new(backend, |s| {
        s.refresh_idle_ttl = Seconds::new(IDLE);
        s.refresh_absolute_ttl = Seconds::new(ABSOLUTE);
        s.access_token_ttl = Seconds::new(ACCESS_TTL);
    })
    .await
}

fn description(body: &serde_json::Value) -> String {
    body["error_description"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

both_backends!(
    idle_timeout_at_its_edge,
    idle_is_extended_by_rotation_but_never_past_absolute,
    absolute_lifetime_at_its_edge,
    access_tokens_never_outlive_the_family,
    max_rotations_caps_the_chain,
);

async fn idle_timeout_at_its_edge(backend: Backend) {
    let Some(fx) = fixture(backend).await else {
        return;
    };
    let t0 = fx.app.now();
    let (idle_id, idle_token) = fx.start().await;
    let (busy_id, busy_token) = fx.start().await;
    assert_eq!(family(&fx.app, &idle_id).await.idle_expires_at, t0 + IDLE);

    fx.app.clock.set(t0 + IDLE - 1);
    let active = introspect(&fx.app, &fx.client, &idle_token).await;
    assert_eq!(active["active"], true, "one second before the idle timeout");
    assert_eq!(active["exp"], t0 + IDLE);
    let busy = fx.rotate(&busy_token).await;

    fx.app.clock.set(t0 + IDLE);
    assert_inactive(
        &introspect(&fx.app, &fx.client, &idle_token).await,
        "a token at its idle timeout",
    );
    let resp = fx.refresh(&idle_token).await;
    let body = assert_oauth_error(resp, 400, "invalid_grant").await;
    let d = description(&body);
    assert!(
        d.contains("idle"),
        "the description names the idle timeout: {d}"
    );
    assert!(!d.contains("absolute"), "{d}");
    assert_eq!(
        unused_count(&fx.app, &idle_id).await,
        1,
        "nothing was spent"
    );

    // The family that was used a second earlier lives on.
    let row = family(&fx.app, &busy_id).await;
    assert_eq!(row.idle_expires_at, t0 + IDLE - 1 + IDLE);
    fx.rotate(&busy.refresh_token).await;
}

async fn idle_is_extended_by_rotation_but_never_past_absolute(backend: Backend) {
    let Some(fx) = fixture(backend).await else {
        return;
    };
    let t0 = fx.app.now();
    let (id, mut token) = fx.start().await;
    let absolute = t0 + ABSOLUTE;
    for (at, idle) in [
        (90, t0 + 190),
        (180, absolute), // 280 would pass the absolute expiry
        (240, absolute),
    ] {
        fx.app.clock.set(t0 + at);
        token = fx.rotate(&token).await.refresh_token;
        let row = family(&fx.app, &id).await;
        assert_eq!(row.idle_expires_at, idle, "after the rotation at +{at}");
        assert_eq!(row.absolute_expires_at, absolute, "never extended");
        let seen = introspect(&fx.app, &fx.client, &token).await;
        assert_eq!(
            seen["exp"], idle,
            "a refresh token's life shrinks to the family's end"
        );
    }
}

async fn absolute_lifetime_at_its_edge(backend: Backend) {
    let Some(fx) = fixture(backend).await else {
        return;
    };
    let t0 = fx.app.now();
    let (id, mut token) = fx.start().await;
    // Used often enough that the idle timeout never strikes first.
    for at in [90, 180, ABSOLUTE - 1] {
        fx.app.clock.set(t0 + at);
        token = fx.rotate(&token).await.refresh_token;
    }
    assert_eq!(
        introspect(&fx.app, &fx.client, &token).await["active"],
        true,
        "one second before the absolute expiry"
    );

    fx.app.clock.set(t0 + ABSOLUTE);
    assert_inactive(
        &introspect(&fx.app, &fx.client, &token).await,
        "a token at the absolute expiry",
    );
    let resp = fx.refresh(&token).await;
    let body = assert_oauth_error(resp, 400, "invalid_grant").await;
    let d = description(&body);
    assert!(
        d.contains("absolute"),
        "the description names the absolute lifetime: {d}"
    );
    assert!(!d.contains("idle"), "{d}");
    assert_eq!(unused_count(&fx.app, &id).await, 1, "nothing was spent");
    assert_eq!(
        family(&fx.app, &id).await.revoked_at,
        None,
        "expired, not revoked"
    );

    // Still nothing much later.
    fx.app.clock.set(t0 + ABSOLUTE + 3600);
    let resp = fx.refresh(&token).await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
}

async fn access_tokens_never_outlive_the_family(backend: Backend) {
    let Some(fx) = fixture(backend).await else {
        return;
    };
    let t0 = fx.app.now();
    let (_, mut token) = fx.start().await;
    let absolute = t0 + ABSOLUTE;
    for at in [0, 1, 90, 180, 200, ABSOLUTE - 1] {
        fx.app.clock.set(t0 + at);
        let r = fx.rotate(&token).await;
        let exp = r.claims["exp"].as_i64().expect("exp");
        // The family now ends at its idle expiry, never later than its absolute one.
        let family_end = (t0 + at + IDLE).min(absolute);
        assert_eq!(exp, family_end, "at +{at}: capped at the family's end");
        assert!(exp <= absolute);
        assert_eq!(
            r.expires_in,
            family_end - (t0 + at),
            "at +{at}: expires_in agrees"
        );
        assert!(r.expires_in <= ACCESS_TTL);
        token = r.refresh_token;
    }
}

async fn max_rotations_caps_the_chain(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |s| s.refresh_max_rotations = Some(3)).await else {
        return;
    };
    let (id, mut token) = fx.start().await;
    for n in 1..=2 {
        fx.app.clock.advance(10);
        token = fx.rotate(&token).await.refresh_token;
        assert_eq!(family(&fx.app, &id).await.rotation_count, n);
    }
    // The rotation that reaches the cap returns an access token and no refresh token: one
    // handed out now could never be used.
    fx.app.clock.advance(10);
    let last: serde_json::Value = fx.refresh(&token).await.json().await.expect("JSON");
    assert!(last["access_token"].is_string(), "{last}");
    assert!(last.get("refresh_token").is_none(), "{last}");
    assert_eq!(family(&fx.app, &id).await.rotation_count, 3);
    assert_eq!(unused_count(&fx.app, &id).await, 0);
    // A retry of that last rotation within the grace gets the same answer, not reuse.
    let retry: serde_json::Value = fx.refresh(&token).await.json().await.expect("JSON");
    assert!(retry["access_token"].is_string(), "{retry}");
    assert!(retry.get("refresh_token").is_none(), "{retry}");

    fx.app
        .clock
        .advance(fx.app.settings.refresh_grace.get() + 1);
    let resp = fx.refresh(&token).await;
    let body = assert_oauth_error(resp, 400, "invalid_grant").await;
    let d = description(&body);
    assert!(
        d.contains("maximum number"),
        "the description names the rotation cap: {d}"
    );
    let row = family(&fx.app, &id).await;
    assert_eq!(row.rotation_count, 3);
    assert_eq!(row.revoked_at, None, "reaching the cap is no sign of theft");
    assert_inactive(
        &introspect(&fx.app, &fx.client, &token).await,
        "a token of a family at its rotation cap",
    );
}
