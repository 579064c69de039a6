//! `serve --demo`: a ready-to-use client so a new user can get a token in one paste.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::clients::{self, NewClient, RegistryError};
use crate::domain::{GrantType, Scope};
use crate::state::AppState;
use crate::tokens::keys::derive_key;
use crate::tokens::secret::PlainToken;

pub const DEMO_SERVICE_CLIENT: &str = "demo-service";
pub const DEMO_SERVICE_SCOPE: &str = "demo:read demo:write";
pub const DEMO_AUDIENCE: &str = "demo-api";

/// Create the demo client once; its secret is derived from the key secret, so every start prints
/// the same working secret without storing it in clear.
pub async fn prepare(state: &AppState) -> anyhow::Result<()> {
    let secret = PlainToken::new(
        URL_SAFE_NO_PAD.encode(derive_key(&state.key_secret, b"demo client secret")),
    );
    let now = state.now();
    let stored = secret.clone();
    state
        .db
        .run(move |c| {
            if clients::find(c, DEMO_SERVICE_CLIENT)?.is_none() {
                let spec = NewClient {
                    client_id: Some(DEMO_SERVICE_CLIENT.into()),
                    name: "Demo service (client_credentials)".into(),
                    public: false,
                    grant_types: vec![GrantType::ClientCredentials],
                    scopes: Scope::parse(DEMO_SERVICE_SCOPE).unwrap_or_default(),
                    redirect_uris: vec![],
                    audience: Some(DEMO_AUDIENCE.into()),
                    first_party: true,
                };
                match clients::create(c, spec, now) {
                    Ok(_) | Err(RegistryError::Conflict(_)) => {}
                    Err(e) => return Err(anyhow::anyhow!(e.to_string()).into()),
                }
            }
            clients::set_secret(c, DEMO_SERVICE_CLIENT, &stored)
        })
        .await?;
    let issuer = &state.issuer;
    println!(
        "\nlineage demo is ready at {issuer}\n\n\
         Demo service client (client_credentials):\n  \
         client_id:     {DEMO_SERVICE_CLIENT}\n  \
         client_secret: {}\n\n\
         Get an access token:\n  \
         curl -s -u '{DEMO_SERVICE_CLIENT}:{}' -d grant_type=client_credentials -d scope=demo:read {issuer}/token\n\n\
         Public keys:  {issuer}/jwks.json\n\
         Metadata:     {issuer}/.well-known/oauth-authorization-server\n",
        secret.expose(),
        secret.expose(),
    );
    Ok(())
}
