//! The client registry: who may ask for tokens, how they authenticate, and what they may get.

use diesel::Connection;
use serde::Serialize;

use crate::db::models::audit_events::{self, AuditEventRow};
use crate::db::models::clients::{self as client_rows, ClientRow};
use crate::db::models::logout_deliveries;
use crate::db::models::revocation_feed::Revocation;
use crate::db::models::{consents, users};
use crate::db::{DbConnection, StoreError};
use crate::domain::{ClientId, GrantType, LogoutUri, Permission, RedirectUri, Scope};
use crate::tokens::keys::KeyAlgorithm;
use crate::tokens::refresh::{self, RevocationReason};
use crate::tokens::secret::{HashedToken, PlainToken};

/// A registered client, parsed from its row.
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: ClientId,
    pub name: String,
    pub is_public: bool,
    secret_hash: Option<HashedToken>,
    pub redirect_uris: Vec<RedirectUri>,
    pub grant_types: Vec<GrantType>,
    pub scopes: Scope,
    pub audience: String,
    pub first_party: bool,
    pub created_at: i64,
    pub permissions: Vec<Permission>,
    /// What signs this client's ID tokens (`id_token_signed_response_alg`).
    pub id_token_alg: KeyAlgorithm,
    /// Where logout tokens are sent when one of its families ends early (`backchannel`).
    pub backchannel_logout_uri: Option<LogoutUri>,
    /// Where the browser may be sent after RP-initiated logout (exact matches).
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    /// Every token request must carry a DPoP proof (RFC 9449): all its tokens are bound to a key.
    pub require_dpop: bool,
}

impl Client {
    fn from_row(row: ClientRow) -> Result<Self, StoreError> {
        let bad = |what: &str| {
            StoreError::Other(anyhow::anyhow!(
                "client {} has an invalid {what}",
                row.client_id
            ))
        };
        let redirect_uris = row
            .redirect_uris
            .split_whitespace()
            .map(RedirectUri::parse)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| bad("redirect URI"))?;
        let grant_types = row
            .grant_types
            .split_whitespace()
            .map(|g| GrantType::parse(g).ok_or(()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| bad("grant type"))?;
        let scopes = Scope::parse(&row.scopes).map_err(|_| bad("scope"))?;
        let permissions = row
            .permissions
            .split_whitespace()
            .map(|p| Permission::parse(p).ok_or(()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| bad("permission"))?;
        let id_token_alg = row
            .id_token_signed_response_alg
            .parse()
            .map_err(|_| bad("id_token_signed_response_alg"))?;
        let backchannel_logout_uri = row
            .backchannel_logout_uri
            .as_deref()
            .map(LogoutUri::parse)
            .transpose()
            .map_err(|_| bad("back-channel logout URI"))?;
        let post_logout_redirect_uris = row
            .post_logout_redirect_uris
            .split_whitespace()
            .map(RedirectUri::parse)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| bad("post-logout redirect URI"))?;
        Ok(Self {
            client_id: ClientId::stored(row.client_id),
            name: row.name,
            is_public: row.is_public,
            secret_hash: row.secret_hash.map(HashedToken::from_stored),
            redirect_uris,
            grant_types,
            scopes,
            audience: row.audience,
            first_party: row.first_party,
            created_at: row.created_at,
            permissions,
            id_token_alg,
            backchannel_logout_uri,
            post_logout_redirect_uris,
            require_dpop: row.require_dpop,
        })
    }

    pub fn has_permission(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
    }

    /// The registered post-logout redirect URI equal to `uri`, if any (RP-Initiated Logout 1.0
    /// §3: exact string comparison, as for redirect URIs).
    pub fn post_logout_redirect_uri(&self, uri: &str) -> Option<&RedirectUri> {
        self.post_logout_redirect_uris
            .iter()
            .find(|r| r.as_str() == uri)
    }

    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// Constant-time check of a presented secret. Public clients have none to check.
    pub fn secret_matches(&self, presented: &PlainToken) -> bool {
        match &self.secret_hash {
            Some(stored) => stored.matches(&presented.hash()),
            None => false,
        }
    }

    pub fn view(&self) -> ClientView {
        ClientView {
            client_id: self.client_id.to_string(),
            name: self.name.clone(),
            public: self.is_public,
            grant_types: self
                .grant_types
                .iter()
                .map(|g| g.as_str().to_string())
                .collect(),
            scopes: self.scopes.iter().map(str::to_string).collect(),
            redirect_uris: self.redirect_uris.iter().map(|r| r.to_string()).collect(),
            audience: self.audience.clone(),
            first_party: self.first_party,
            created_at: self.created_at,
            permissions: self
                .permissions
                .iter()
                .map(|p| p.as_str().to_string())
                .collect(),
            id_token_signed_response_alg: self.id_token_alg.as_str().to_string(),
            backchannel_logout_uri: self.backchannel_logout_uri.as_ref().map(|u| u.to_string()),
            post_logout_redirect_uris: self
                .post_logout_redirect_uris
                .iter()
                .map(|r| r.to_string())
                .collect(),
            require_dpop: self.require_dpop,
        }
    }
}

/// What `client list/show --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    pub public: bool,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub audience: String,
    pub first_party: bool,
    pub created_at: i64,
    pub permissions: Vec<String>,
    pub id_token_signed_response_alg: String,
    pub backchannel_logout_uri: Option<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// Token requests must carry a DPoP proof.
    pub require_dpop: bool,
}

/// A registration request, already parsed.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub client_id: Option<String>,
    pub name: String,
    pub public: bool,
    /// Empty: `client_credentials` without redirect URIs, else `authorization_code refresh_token`.
    pub grant_types: Vec<GrantType>,
    pub scopes: Scope,
    pub redirect_uris: Vec<RedirectUri>,
    pub audience: Option<String>,
    pub first_party: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for RegistryError {
    fn from(e: diesel::result::Error) -> Self {
        RegistryError::Store(e.into())
    }
}

/// The result of registration: the secret is shown here once and never again.
#[derive(Debug)]
pub struct CreatedClient {
    pub client: Client,
    pub client_secret: Option<PlainToken>,
}

impl CreatedClient {
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self.client.view()).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            obj.insert(
                "client_secret".into(),
                self.client_secret
                    .as_ref()
                    .map(|s| s.expose().to_string())
                    .into(),
            );
        }
        v
    }
}

/// Choose the algorithm that signs a client's ID tokens.
pub fn set_id_token_alg(
    conn: &mut DbConnection,
    client_id: &str,
    alg: KeyAlgorithm,
) -> Result<(), RegistryError> {
    match client_rows::set_id_token_alg(conn, client_id, alg.as_str())? {
        0 => Err(RegistryError::NotFound(format!("no client {client_id}"))),
        _ => Ok(()),
    }
}

pub fn create(
    conn: &mut DbConnection,
    spec: NewClient,
    now: i64,
) -> Result<CreatedClient, RegistryError> {
    create_with_permissions(conn, spec, &[], now)
}

/// Register a client that also holds `permissions` (e.g. a resource server reading the
/// revocation feed).
/// The grant types a new client gets (by default: what its redirect URIs suggest), checked
/// against what it is.
fn checked_grants(spec: &NewClient) -> Result<Vec<GrantType>, RegistryError> {
    let mut grants = spec.grant_types.clone();
    if grants.is_empty() {
        grants = if spec.redirect_uris.is_empty() {
            vec![GrantType::ClientCredentials]
        } else {
            vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
        };
    }
    grants.sort();
    grants.dedup();
    if spec.public && grants.contains(&GrantType::ClientCredentials) {
        return Err(RegistryError::Invalid(
            "a public client cannot use client_credentials: it has no secret to authenticate with"
                .into(),
        ));
    }
    if grants.contains(&GrantType::AuthorizationCode) && spec.redirect_uris.is_empty() {
        return Err(RegistryError::Invalid(
            "authorization_code needs at least one --redirect-uri".into(),
        ));
    }
    if spec.scopes.is_empty() {
        return Err(RegistryError::Invalid(
            "a client needs at least one --scope".into(),
        ));
    }
    Ok(grants)
}

pub fn create_with_permissions(
    conn: &mut DbConnection,
    spec: NewClient,
    permissions: &[Permission],
    now: i64,
) -> Result<CreatedClient, RegistryError> {
    let permissions = permission_list(permissions, spec.public)?;
    let client_id = match &spec.client_id {
        Some(id) => ClientId::parse(id).map_err(RegistryError::Invalid)?,
        None => ClientId::generate(),
    };
    if spec.name.trim().is_empty() || spec.name.chars().count() > 200 {
        return Err(RegistryError::Invalid(
            "client name must be 1 to 200 characters".into(),
        ));
    }
    let grants = checked_grants(&spec)?;
    let audience = spec.audience.unwrap_or_else(|| client_id.to_string());
    if audience.trim().is_empty() || audience.contains(char::is_whitespace) {
        return Err(RegistryError::Invalid(
            "audience must be one non-empty value without spaces".into(),
        ));
    }
    let secret = if spec.public {
        None
    } else {
        Some(
            PlainToken::generate()
                .map_err(|_| RegistryError::Invalid("no randomness available".into()))?,
        )
    };
    let row = ClientRow {
        client_id: client_id.to_string(),
        name: spec.name.trim().to_string(),
        secret_hash: secret.as_ref().map(|s| s.hash().into_string()),
        is_public: spec.public,
        redirect_uris: spec
            .redirect_uris
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        grant_types: grants
            .iter()
            .map(|g| g.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        scopes: spec.scopes.to_string(),
        audience,
        first_party: spec.first_party,
        created_at: now,
        permissions,
        // OIDC Dynamic Client Registration §2: RS256 unless the client asks otherwise
        // (`set_id_token_alg`).
        id_token_signed_response_alg: KeyAlgorithm::RS256.as_str().to_string(),
        backchannel_logout_uri: None,
        post_logout_redirect_uris: String::new(),
        // `set_require_dpop`; the CLI turns it on for public clients unless told otherwise.
        require_dpop: false,
    };
    conn.transaction(|conn| {
        if client_rows::find(conn, &client_id)?.is_some() {
            return Err(RegistryError::Conflict(format!(
                "client `{client_id}` already exists"
            )));
        }
        // A client_credentials token's `sub` is its client id and a user's token's `sub` is the
        // user id: one id in both namespaces would let a service token pass for a user's.
        if users::find(conn, &client_id)?.is_some() {
            return Err(RegistryError::Conflict(format!(
                "`{client_id}` is the id of a user; a client id must not equal a user id"
            )));
        }
        client_rows::insert(conn, &row)?;
        let detail = format!("client {client_id} registered");
        let event = AuditEventRow::new(now, "client_created", detail).for_client(&client_id);
        audit_events::insert(conn, &event)?;
        Ok(())
    })?;
    Ok(CreatedClient {
        client: Client::from_row(row)?,
        client_secret: secret,
    })
}

pub fn find(conn: &mut DbConnection, client_id: &str) -> Result<Option<Client>, StoreError> {
    client_rows::find(conn, client_id)?
        .map(Client::from_row)
        .transpose()
}

pub fn get(conn: &mut DbConnection, client_id: &str) -> Result<Client, RegistryError> {
    find(conn, client_id)?
        .ok_or_else(|| RegistryError::NotFound(format!("no client `{client_id}`")))
}

pub fn list(conn: &mut DbConnection) -> Result<Vec<Client>, StoreError> {
    client_rows::list(conn)?
        .into_iter()
        .map(Client::from_row)
        .collect()
}

/// Replace a confidential client's secret (used by the demo so its secret is stable).
pub fn set_secret(
    conn: &mut DbConnection,
    client_id: &str,
    secret: &PlainToken,
) -> Result<(), StoreError> {
    client_rows::set_secret_hash(conn, client_id, secret.hash().as_str())?;
    Ok(())
}

/// The stored form of a permission set; a public client cannot authenticate, so holds none.
fn permission_list(permissions: &[Permission], public: bool) -> Result<String, RegistryError> {
    let mut sorted = permissions.to_vec();
    sorted.sort();
    sorted.dedup();
    if public && !sorted.is_empty() {
        return Err(RegistryError::Invalid(
            "a public client cannot hold permissions: it has no secret to authenticate with".into(),
        ));
    }
    Ok(sorted
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(" "))
}

/// Replace a client's permissions.
pub fn set_permissions(
    conn: &mut DbConnection,
    client_id: &str,
    permissions: &[Permission],
    now: i64,
) -> Result<Client, RegistryError> {
    conn.transaction(|conn| {
        let client = get(conn, client_id)?;
        let list = permission_list(permissions, client.is_public)?;
        client_rows::set_permissions(conn, client_id, &list)?;
        let shown = if list.is_empty() { "none" } else { &list };
        let detail = format!("permissions of client {client_id} set to: {shown}");
        let event = AuditEventRow::new(now, "client_updated", detail).for_client(client_id);
        audit_events::insert(conn, &event)?;
        get(conn, client_id)
    })
}

/// Set (or with `None` clear) where a client's logout tokens go (Back-Channel Logout 1.0 §2.2).
/// Families that end from now on are told there; tokens already queued go to the URI the client
/// has when they are sent, and are given up if it has none.
pub fn set_backchannel_logout_uri(
    conn: &mut DbConnection,
    client_id: &str,
    uri: Option<&LogoutUri>,
    now: i64,
) -> Result<Client, RegistryError> {
    conn.transaction(|conn| {
        get(conn, client_id)?;
        client_rows::set_backchannel_logout_uri(conn, client_id, uri.map(LogoutUri::as_str))?;
        let shown = uri.map_or("none", LogoutUri::as_str);
        let detail = format!("back-channel logout URI of client {client_id} set to: {shown}");
        let event = AuditEventRow::new(now, "client_updated", detail).for_client(client_id);
        audit_events::insert(conn, &event)?;
        get(conn, client_id)
    })
}

/// Replace where a client may send the browser after RP-initiated logout (empty: nowhere; the
/// user then sees lineage's own "signed out" page).
pub fn set_post_logout_redirect_uris(
    conn: &mut DbConnection,
    client_id: &str,
    uris: &[RedirectUri],
    now: i64,
) -> Result<Client, RegistryError> {
    conn.transaction(|conn| {
        get(conn, client_id)?;
        let mut list: Vec<&str> = uris.iter().map(RedirectUri::as_str).collect();
        list.dedup();
        let list = list.join(" ");
        client_rows::set_post_logout_redirect_uris(conn, client_id, &list)?;
        let shown = if list.is_empty() { "none" } else { &list };
        let detail = format!("post-logout redirect URIs of client {client_id} set to: {shown}");
        let event = AuditEventRow::new(now, "client_updated", detail).for_client(client_id);
        audit_events::insert(conn, &event)?;
        get(conn, client_id)
    })
}

/// Require (or stop requiring) DPoP proofs on every token request of a client. Families it
/// already has keep their binding, or their lack of one.
pub fn set_require_dpop(
    conn: &mut DbConnection,
    client_id: &str,
    required: bool,
    now: i64,
) -> Result<Client, RegistryError> {
    conn.transaction(|conn| {
        if client_rows::set_require_dpop(conn, client_id, required)? == 0 {
            return Err(RegistryError::NotFound(format!("no client `{client_id}`")));
        }
        let detail = if required {
            format!("client {client_id} must now prove possession of a DPoP key")
        } else {
            format!("client {client_id} may now use bearer tokens (DPoP optional)")
        };
        let event = AuditEventRow::new(now, "client_updated", detail).for_client(client_id);
        audit_events::insert(conn, &event)?;
        get(conn, client_id)
    })
}

/// Delete a client and end everything issued to it.
pub fn delete(conn: &mut DbConnection, client_id: &str, now: i64) -> Result<(), RegistryError> {
    conn.transaction(|conn| {
        if client_rows::delete(conn, client_id)? == 0 {
            return Err(RegistryError::NotFound(format!("no client `{client_id}`")));
        }
        consents::delete_for_client(conn, client_id)?;
        // Logout tokens still queued for it are never sent: the client no longer exists.
        logout_deliveries::delete_for_client(conn, client_id)?;
        let of = refresh::FamiliesOf {
            user: None,
            client: Some(client_id),
        };
        let ended = refresh::revoke_families(conn, of, RevocationReason::ClientDeleted, now)?;
        tracing::info!(
            client_id,
            families = ended.count(),
            "client deleted; its sessions were revoked"
        );
        let detail = format!("client {client_id} deleted");
        let event = AuditEventRow::new(now, "client_deleted", detail).for_client(client_id);
        audit_events::insert(conn, &event)?;
        // Its tokens outside any family (client_credentials) too, for resource servers.
        ended.publish(conn, vec![Revocation::client_deleted(client_id, now)])?;
        Ok(())
    })
}

/// Every scope some registered client may request (for discovery's `scopes_supported`).
pub fn all_scopes(conn: &mut DbConnection) -> Result<Vec<String>, StoreError> {
    let mut all = std::collections::BTreeSet::new();
    for s in client_rows::all_scopes(conn)? {
        all.extend(s.split_whitespace().map(str::to_string));
    }
    Ok(all.into_iter().collect())
}
