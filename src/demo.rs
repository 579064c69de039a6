//! `serve --demo`: ready-made clients and a user, so a new user can try every flow at once.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::clients::{self, NewClient, RegistryError};
use crate::db::DbConnection;
use crate::domain::{
    DisplayName, Email, GrantType, LogoutUri, Password, Permission, RedirectUri, Scope, Username,
};
use crate::profile::ProfileChange;
use crate::state::AppState;
use crate::tokens::keys::derive_key;
use crate::tokens::secret::PlainToken;
use crate::users;

pub const DEMO_SERVICE_CLIENT: &str = "demo-service";
pub const DEMO_SERVICE_SCOPE: &str = "demo:read demo:write";
pub const DEMO_AUDIENCE: &str = "demo-api";
pub const DEMO_APP_CLIENT: &str = "demo-app";
/// OpenID Connect's scopes and the notes API's: the demo app signs the user in and reads notes.
pub const DEMO_APP_SCOPE: &str = "openid profile email notes:read notes:write";
pub const DEMO_APP_AUDIENCE: &str = "notes-api";
pub const DEMO_USER: &str = "demo";
pub const DEMO_USER_DISPLAY_NAME: &str = "Demo User";
pub const DEMO_USER_EMAIL: &str = "demo@example.com";
/// Where the demo app receives back-channel logout tokens, below the issuer.
pub const DEMO_BACKCHANNEL_PATH: &str = "/demo/backchannel-logout";

/// The demo app's back-channel logout URI on this server, when the URI rules allow it: https, or
/// http on a loopback address (the default `127.0.0.1`). An http issuer on another host gets none
/// (lineage would refuse to send a logout token there in clear), and the demo page says so.
pub fn demo_backchannel_uri(issuer: &str) -> Option<LogoutUri> {
    LogoutUri::parse(&format!("{issuer}{DEMO_BACKCHANNEL_PATH}")).ok()
}

fn derived(state: &AppState, purpose: &[u8], len: usize) -> String {
    URL_SAFE_NO_PAD.encode(derive_key(&state.key_secret, purpose))[..len].to_string()
}

fn ensure_client(c: &mut DbConnection, spec: NewClient, now: i64) -> Result<(), RegistryError> {
    let id = spec.client_id.clone().unwrap_or_default();
    if clients::find(c, &id)?.is_some() {
        return Ok(());
    }
    match clients::create(c, spec, now) {
        Ok(_) | Err(RegistryError::Conflict(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The demo app's client as registered by an earlier version may lack scopes it asks for now
/// (OpenID Connect's): add them, keeping any an operator added.
fn widen_demo_app_scopes(c: &mut DbConnection) -> Result<(), RegistryError> {
    let Some(client) = clients::find(c, DEMO_APP_CLIENT)? else {
        return Ok(());
    };
    let wanted = Scope::parse(DEMO_APP_SCOPE).unwrap_or_default();
    if wanted.is_subset_of(&client.scopes) {
        return Ok(());
    }
    let mut all: Vec<&str> = client.scopes.iter().chain(wanted.iter()).collect();
    all.sort_unstable();
    all.dedup();
    crate::db::models::clients::set_scopes(c, DEMO_APP_CLIENT, &all.join(" "))?;
    Ok(())
}

/// The demo app is told about sessions that end early (Back-Channel Logout 1.0). A demo app
/// registered by an earlier version has no URI, or one on another address the server had then:
/// set it. A URI an operator set elsewhere is kept.
fn set_demo_backchannel_uri(
    c: &mut DbConnection,
    uri: Option<&LogoutUri>,
    now: i64,
) -> Result<(), RegistryError> {
    let (Some(uri), Some(client)) = (uri, clients::find(c, DEMO_APP_CLIENT)?) else {
        return Ok(());
    };
    let ours = match &client.backchannel_logout_uri {
        None => true,
        Some(old) => old.to_string().ends_with(DEMO_BACKCHANNEL_PATH),
    };
    if ours && client.backchannel_logout_uri.as_ref() != Some(uri) {
        clients::set_backchannel_logout_uri(c, DEMO_APP_CLIENT, Some(uri), now)?;
    }
    Ok(())
}

/// The demo user's profile: a display name and a verified address, so every claim shows.
fn demo_profile() -> anyhow::Result<ProfileChange> {
    Ok(ProfileChange {
        display_name: Some(Some(
            DisplayName::parse(DEMO_USER_DISPLAY_NAME).map_err(anyhow::Error::msg)?,
        )),
        email: Some(Some(
            Email::parse(DEMO_USER_EMAIL).map_err(anyhow::Error::msg)?,
        )),
        email_verified: Some(true),
    })
}

/// The demo user, created once; its password is hashed through the hashing pool before the write.
/// A demo user from before profiles gets the demo profile once.
async fn ensure_demo_user(state: &AppState, password: &str, now: i64) -> anyhow::Result<()> {
    let profile = demo_profile()?;
    let existing = state
        .db
        .read(|c| crate::db::models::users::find_by_username(c, DEMO_USER))
        .await?;
    if let Some(user) = existing {
        if user.display_name.is_none() && user.email.is_none() {
            state
                .db
                .write(move |c| users::update_profile(c, DEMO_USER, &profile, now))
                .await?;
        }
        return Ok(());
    }
    let name = Username::parse(DEMO_USER).map_err(anyhow::Error::msg)?;
    let pw = Password::new(password.to_string()).map_err(anyhow::Error::msg)?;
    let hash = state
        .hashing
        .run(move || users::hash_password(&pw))
        .await??;
    state
        .db
        .write(
            move |c| match users::create_with_profile(c, &name, &hash, &profile, now) {
                Ok(_) | Err(RegistryError::Conflict(_)) => Ok(()),
                Err(e) => Err(e),
            },
        )
        .await?;
    Ok(())
}

/// Create the demo clients and user once. Secrets are derived from the key secret, so every start
/// prints the same working credentials without storing them in clear.
pub async fn prepare(state: &AppState) -> anyhow::Result<()> {
    let secret = PlainToken::new(derived(state, b"demo client secret", 43));
    let password = derived(state, b"demo user password", 12);
    let now = state.now();
    let redirect = RedirectUri::parse(&format!("{}/demo/callback", state.issuer))
        .map_err(anyhow::Error::msg)?;
    let stored = secret.clone();
    let logout_uri = demo_backchannel_uri(&state.issuer);
    state
        .db
        .write(move |c| {
            ensure_client(
                c,
                NewClient {
                    client_id: Some(DEMO_SERVICE_CLIENT.into()),
                    name: "Demo service (client_credentials)".into(),
                    public: false,
                    grant_types: vec![GrantType::ClientCredentials],
                    scopes: Scope::parse(DEMO_SERVICE_SCOPE).unwrap_or_default(),
                    redirect_uris: vec![],
                    audience: Some(DEMO_AUDIENCE.into()),
                    first_party: true,
                },
                now,
            )?;
            clients::set_secret(c, DEMO_SERVICE_CLIENT, &stored)?;
            // The example notes API reads the revocation feed as the demo service.
            if clients::find(c, DEMO_SERVICE_CLIENT)?
                .is_some_and(|s| !s.has_permission(Permission::Revocations))
            {
                clients::set_permissions(c, DEMO_SERVICE_CLIENT, &[Permission::Revocations], now)?;
            }
            ensure_client(
                c,
                NewClient {
                    client_id: Some(DEMO_APP_CLIENT.into()),
                    name: "Demo notes app".into(),
                    public: true,
                    grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
                    scopes: Scope::parse(DEMO_APP_SCOPE).unwrap_or_default(),
                    redirect_uris: vec![redirect],
                    audience: Some(DEMO_APP_AUDIENCE.into()),
                    first_party: false,
                },
                now,
            )?;
            widen_demo_app_scopes(c)?;
            // The demo app signs a DPoP proof for every token request (`web/demo_device.rs`), so
            // its tokens must be bound; a demo app registered before it did is switched over.
            if clients::find(c, DEMO_APP_CLIENT)?.is_some_and(|app| !app.require_dpop) {
                clients::set_require_dpop(c, DEMO_APP_CLIENT, true, now)?;
            }
            set_demo_backchannel_uri(c, logout_uri.as_ref(), now)
        })
        .await?;
    ensure_demo_user(state, &password, now).await?;
    let issuer = &state.issuer;
    let s = secret.expose();
    println!(
        "\nlineage demo is ready at {issuer}\n\n\
         1. In a browser: {issuer}/demo\n   \
            sign in as `{DEMO_USER}` with password `{password}` (if you have not changed it),\n   \
            allow the Demo notes app, refresh, replay an old refresh token, steal the refresh token\n   \
            (its tokens are bound to a DPoP key), then see {issuer}/account\n   \
            (the demo app shows its ID token, and each back-channel logout lineage sends it)\n\n\
         2. A service token with curl (client_credentials):\n   \
            client_id:     {DEMO_SERVICE_CLIENT}\n   \
            client_secret: {s}\n   \
            curl -s -u '{DEMO_SERVICE_CLIENT}:{s}' -d grant_type=client_credentials -d scope=demo:read {issuer}/token\n\n\
         3. The example notes API, which accepts the demo app's tokens and reads the revocation feed\n   \
            as the demo service:\n   \
            NOTES_CLIENT_SECRET='{s}' cargo run --example resource_server -- --issuer {issuer} --client-id {DEMO_SERVICE_CLIENT}\n\n\
         Public keys: {issuer}/jwks.json\n\
         Metadata:    {issuer}/.well-known/openid-configuration\n"
    );
    Ok(())
}
