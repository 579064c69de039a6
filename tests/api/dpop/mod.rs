//! DPoP (RFC 9449): tokens and refresh families bound to a key the app holds, the proofs `/token`
//! and `/userinfo` check, `dpop_jkt` on `/authorize`, clients that require proofs, server nonces.

mod authorize;
mod binding;
mod clients;
mod nonces;
mod proofs;
mod userinfo;

use lineage::configuration::Settings;

use crate::helpers::{
    Backend, DeviceKey, TestApp, TestClient, app_client, create_user, es256_key,
    refresh_with_proofs, spawn_app_with, start_family_bound,
};

/// What the DPoP tests' clients may ask for.
const SCOPE: &str = "openid notes:read";

/// A server, alice, a public app and a family of hers bound to `key` (ES256), started through the
/// library: what the proof-checking tests refresh with good and bad proofs.
struct BoundFamily {
    app: TestApp,
    client: TestClient,
    key: DeviceKey,
    sid: String,
    /// The family's first refresh token.
    token: String,
}

impl BoundFamily {
    /// `None` = skipped (PostgreSQL without `TEST_DATABASE_URL`).
    async fn new(backend: Backend, adjust: impl FnOnce(&mut Settings)) -> Option<Self> {
        let app = spawn_app_with(backend, adjust).await?;
        let user = create_user(&app, "alice").await;
        let client = app_client(&app, SCOPE).await;
        let key = es256_key();
        let (sid, token) =
            start_family_bound(&app, &user.id, &client.id, SCOPE, Some(&key.jkt())).await;
        Some(Self {
            app,
            client,
            key,
            sid,
            token,
        })
    }

    /// Refresh `token` with these `DPoP` headers.
    async fn refresh_with(&self, token: &str, proofs: &[&str]) -> reqwest::Response {
        refresh_with_proofs(&self.app, &self.client, token, proofs).await
    }
}
