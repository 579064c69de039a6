//! Profile claims in access tokens: by scope, and fresh from the user row at every refresh.

use lineage::domain::DisplayName;
use lineage::profile::ProfileChange;
use serde_json::json;

use super::Oidc;
use crate::helpers::{Backend, refresh_ok, spawn_app};

both_backends!(
    access_tokens_carry_profile_claims_by_scope,
    a_profile_change_shows_in_the_next_refresh
);

async fn access_tokens_carry_profile_claims_by_scope(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let oidc = Oidc::new(app).await;
    oidc.set_full_profile().await;
    let updated_at = oidc.app.now();

    let (_, rt) = oidc.family("openid profile email").await;
    let all = refresh_ok(&oidc.app, &oidc.client, &rt).await.claims;
    assert_eq!(all["sub"], oidc.user.id.as_str());
    assert_eq!(all["name"], "Alice Liddell");
    assert_eq!(all["preferred_username"], "alice");
    assert_eq!(all["updated_at"], json!(updated_at));
    assert_eq!(all["email"], "alice@example.com");
    assert_eq!(all["email_verified"], true);

    let (_, rt) = oidc.family("openid email").await;
    let email_only = refresh_ok(&oidc.app, &oidc.client, &rt).await.claims;
    assert_eq!(email_only["email"], "alice@example.com");
    for absent in ["name", "updated_at"] {
        assert!(email_only.get(absent).is_none(), "{absent}: {email_only}");
    }

    // Without profile or email scopes: only `preferred_username`, as access tokens always had.
    let (_, rt) = oidc.family("notes:read").await;
    let plain = refresh_ok(&oidc.app, &oidc.client, &rt).await.claims;
    assert_eq!(plain["preferred_username"], "alice");
    for absent in ["name", "updated_at", "email", "email_verified"] {
        assert!(plain.get(absent).is_none(), "{absent}: {plain}");
    }
}

async fn a_profile_change_shows_in_the_next_refresh(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let oidc = Oidc::new(app).await;
    let (_, rt) = oidc.family("openid profile email").await;
    let before = refresh_ok(&oidc.app, &oidc.client, &rt).await;
    // No display name and no address yet: those claims are left out, not null.
    assert!(before.claims.get("name").is_none(), "{}", before.claims);
    assert!(before.claims.get("email").is_none(), "{}", before.claims);
    assert!(
        before.claims.get("email_verified").is_none(),
        "{}",
        before.claims
    );

    oidc.app.clock.advance(5);
    oidc.set_full_profile().await;
    let after = refresh_ok(&oidc.app, &oidc.client, &before.refresh_token).await;
    assert_eq!(after.claims["name"], "Alice Liddell");
    assert_eq!(after.claims["email"], "alice@example.com");
    assert_eq!(after.claims["email_verified"], true);
    assert_eq!(after.claims["updated_at"], json!(oidc.app.now()));

    oidc.app.clock.advance(5);
    oidc.update_profile(ProfileChange {
        display_name: Some(Some(DisplayName::parse("Alice L.").unwrap())),
        ..ProfileChange::default()
    })
    .await;
    let renamed = refresh_ok(&oidc.app, &oidc.client, &after.refresh_token).await;
    assert_eq!(renamed.claims["name"], "Alice L.");
    assert_eq!(renamed.claims["updated_at"], json!(oidc.app.now()));
}
