mod account;
mod cli;
mod demo;
mod discovery;
mod profile_claims;
mod userinfo;

use lineage::domain::{DisplayName, Email};
use lineage::profile::ProfileChange;

use crate::helpers::{TestApp, TestClient, TestUser, create_user, refresh_client, start_family};

/// Every scope the OpenID tests' client may ask for.
pub const OIDC_CLIENT_SCOPES: &str = "openid profile email notes:read";

/// A server, a user and a confidential client allowed the OpenID scopes and refresh tokens.
pub struct Oidc {
    pub app: TestApp,
    pub user: TestUser,
    pub client: TestClient,
}

impl Oidc {
    pub async fn new(app: TestApp) -> Self {
        let user = create_user(&app, "alice").await;
        let client = refresh_client(&app, OIDC_CLIENT_SCOPES).await;
        Self { app, user, client }
    }

    /// A family of the user granted `scope`: (family id, refresh token).
    pub async fn family(&self, scope: &str) -> (String, String) {
        start_family(&self.app, &self.user.id, &self.client.id, scope).await
    }

    /// A fresh access token for the user granted `scope` (a family started, then rotated).
    pub async fn access_token(&self, scope: &str) -> String {
        let (_, refresh_token) = self.family(scope).await;
        crate::helpers::refresh_ok(&self.app, &self.client, &refresh_token)
            .await
            .access_token
    }

    /// `lineage user update` as the library call behind it.
    pub async fn update_profile(&self, change: ProfileChange) {
        let (name, now) = (self.user.username.clone(), self.app.now());
        self.app
            .db
            .write(move |c| lineage::users::update_profile(c, &name, &change, now))
            .await
            .expect("profile update");
    }

    /// Give the user a display name and a verified address.
    pub async fn set_full_profile(&self) {
        self.update_profile(ProfileChange {
            display_name: Some(Some(DisplayName::parse("Alice Liddell").unwrap())),
            email: Some(Some(Email::parse("alice@example.com").unwrap())),
            email_verified: Some(true),
        })
        .await;
    }
}
