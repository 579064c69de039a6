//! `lineage client …`

use clap::Subcommand;
use serde_json::json;

use super::{Failure, print, usage};
use crate::clients::{self, NewClient};
use crate::db::models::logout_deliveries::{self, DeliveryCounts};
use crate::domain::{GrantType, LogoutUri, Permission, RedirectUri, Scope};
use crate::startup::Backend;
use crate::tokens::keys::KeyAlgorithm;

fn parse_alg(raw: &str) -> Result<KeyAlgorithm, String> {
    raw.parse()
}

/// `--dpop`: whether a client's token requests must carry a DPoP proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DpopRule {
    Required,
    Optional,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; a confidential client's secret is printed once.
    Create {
        #[arg(long)]
        name: String,
        /// Client id (default: a random UUID).
        #[arg(long)]
        client_id: Option<String>,
        /// A public client (native or browser app): no secret, PKCE required.
        #[arg(long)]
        public: bool,
        /// Allowed grant type; repeat or comma-separate
        /// (authorization_code, refresh_token, client_credentials).
        #[arg(long = "grant", value_delimiter = ',')]
        grants: Vec<String>,
        /// Allowed scopes; repeat or space-separate.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Exact redirect URI; repeat for several.
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// `aud` of the access tokens this client gets (default: the client id).
        #[arg(long)]
        audience: Option<String>,
        /// A first-party client: users are not asked for consent.
        #[arg(long)]
        first_party: bool,
        /// A permission beyond the grants; repeat or comma-separate (revocations: read the
        /// revocation feed, for resource servers).
        #[arg(long = "permission", value_delimiter = ',')]
        permissions: Vec<String>,
        /// What signs this client's OpenID Connect ID tokens: `RS256` (the default, which every
        /// OIDC library supports) or `EdDSA`.
        #[arg(long, value_parser = clap::builder::ValueParser::new(parse_alg))]
        id_token_alg: Option<KeyAlgorithm>,
        /// Where lineage POSTs a logout token when one of this client's sessions ends early
        /// (OpenID Connect Back-Channel Logout); https, or http on a loopback host.
        #[arg(long)]
        backchannel_logout_uri: Option<String>,
        /// Where the app may send the browser after signing the user out (OpenID Connect
        /// RP-Initiated Logout), an exact URI; repeat for several.
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// Whether token requests must carry a DPoP proof (RFC 9449), binding every refresh
        /// token and access token to a key the app holds: `required` (the default for public
        /// clients) or `optional` (the default for confidential ones).
        #[arg(long, value_enum)]
        dpop: Option<DpopRule>,
        #[arg(long)]
        json: bool,
    },
    /// Change an existing client: its permissions (the given list replaces the current one)
    /// and/or its back-channel logout URI and/or its post-logout redirect URIs.
    #[command(group(
        clap::ArgGroup::new("change")
            .required(true)
            .multiple(true)
            .args([
                "permissions",
                "no_permissions",
                "backchannel_logout_uri",
                "no_backchannel_logout_uri",
                "post_logout_redirect_uris",
                "no_post_logout_redirect_uris",
                "dpop",
            ])
    ))]
    Update {
        client_id: String,
        /// The client's permissions from now on; repeat or comma-separate.
        #[arg(long = "permission", value_delimiter = ',')]
        permissions: Vec<String>,
        /// Take every permission away.
        #[arg(long, conflicts_with = "permissions")]
        no_permissions: bool,
        /// Where logout tokens go from now on (https, or http on a loopback host).
        #[arg(long)]
        backchannel_logout_uri: Option<String>,
        /// Stop sending logout tokens to this client.
        #[arg(long, conflicts_with = "backchannel_logout_uri")]
        no_backchannel_logout_uri: bool,
        /// The post-logout redirect URIs from now on (the list replaces the current one);
        /// repeat for several.
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// Send the browser to lineage's own "signed out" page after RP-initiated logout.
        #[arg(long, conflicts_with = "post_logout_redirect_uris")]
        no_post_logout_redirect_uris: bool,
        /// Require DPoP proofs on token requests from now on, or make them optional. Existing
        /// sessions keep their binding (or their lack of one).
        #[arg(long, value_enum)]
        dpop: Option<DpopRule>,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    Show {
        client_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a client and end everything issued to it.
    Delete {
        client_id: String,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: ClientCommand, backend: &Backend, now: i64) -> Result<(), Failure> {
    let db = &backend.db;
    match cmd {
        ClientCommand::Create {
            name,
            client_id,
            public,
            grants,
            scopes,
            redirect_uris,
            audience,
            first_party,
            permissions,
            id_token_alg,
            backchannel_logout_uri,
            post_logout_redirect_uris,
            dpop,
            json,
        } => {
            let permissions = parse_permissions(&permissions)?;
            // A public client's tokens sit on a device that can be copied: bind them by default.
            let require_dpop = dpop.map_or(public, |d| d == DpopRule::Required);
            let logout_uri = parse_logout_uri(backchannel_logout_uri.as_deref())?;
            let post_logout = parse_redirect_uris(&post_logout_redirect_uris)?;
            let spec = NewClient {
                client_id,
                name,
                public,
                grant_types: parse_grants(&grants)?,
                scopes: Scope::parse(&scopes.join(" ")).map_err(usage)?,
                redirect_uris: parse_redirect_uris(&redirect_uris)?,
                audience,
                first_party,
            };
            // One transaction: the client exists with its settings, or not at all.
            let created = db.write_sync(|c| {
                let mut created = clients::create_with_permissions(c, spec, &permissions, now)?;
                let id = created.client.client_id.to_string();
                if let Some(alg) = id_token_alg {
                    clients::set_id_token_alg(c, &id, alg)?;
                    created.client.id_token_alg = alg;
                }
                if let Some(uri) = &logout_uri {
                    created.client = clients::set_backchannel_logout_uri(c, &id, Some(uri), now)?;
                }
                if !post_logout.is_empty() {
                    created.client =
                        clients::set_post_logout_redirect_uris(c, &id, &post_logout, now)?;
                }
                if require_dpop {
                    created.client = clients::set_require_dpop(c, &id, true, now)?;
                }
                Ok::<_, clients::RegistryError>(created)
            })?;
            print(json, created.to_json(), || created_text(&created));
            Ok(())
        }
        ClientCommand::Update {
            client_id,
            permissions,
            no_permissions,
            backchannel_logout_uri,
            no_backchannel_logout_uri,
            post_logout_redirect_uris,
            no_post_logout_redirect_uris,
            dpop,
            json,
        } => {
            let permissions = (no_permissions || !permissions.is_empty())
                .then(|| parse_permissions(&permissions))
                .transpose()?;
            let logout_uri = match (backchannel_logout_uri, no_backchannel_logout_uri) {
                (Some(raw), _) => Some(parse_logout_uri(Some(&raw))?),
                (None, true) => Some(None),
                (None, false) => None,
            };
            let post_logout = (no_post_logout_redirect_uris
                || !post_logout_redirect_uris.is_empty())
            .then(|| parse_redirect_uris(&post_logout_redirect_uris))
            .transpose()?;
            let client = db.write_sync(|c| {
                let mut client = clients::get(c, &client_id)?;
                if let Some(permissions) = &permissions {
                    client = clients::set_permissions(c, &client_id, permissions, now)?;
                }
                if let Some(uri) = &logout_uri {
                    client = clients::set_backchannel_logout_uri(c, &client_id, uri.as_ref(), now)?;
                }
                if let Some(uris) = &post_logout {
                    client = clients::set_post_logout_redirect_uris(c, &client_id, uris, now)?;
                }
                if let Some(rule) = dpop {
                    let required = rule == DpopRule::Required;
                    client = clients::set_require_dpop(c, &client_id, required, now)?;
                }
                Ok::<_, clients::RegistryError>(client)
            })?;
            let v = client.view();
            print(json, json!(v), || {
                let list = if v.permissions.is_empty() {
                    "none".to_string()
                } else {
                    v.permissions.join(", ")
                };
                let uri = v.backchannel_logout_uri.as_deref().unwrap_or("none");
                let after = if v.post_logout_redirect_uris.is_empty() {
                    "none".to_string()
                } else {
                    v.post_logout_redirect_uris.join(" ")
                };
                let dpop = if v.require_dpop {
                    "required"
                } else {
                    "optional"
                };
                format!(
                    "client {}: permissions {list}; back-channel logout URI {uri}; \
                     post-logout redirect URIs {after}; DPoP {dpop}",
                    v.client_id
                )
            });
            Ok(())
        }
        ClientCommand::List { json } => {
            let list = db.read_sync(clients::list)?;
            let views: Vec<_> = list.iter().map(|c| c.view()).collect();
            print(json, json!(views), || list_text(&views));
            Ok(())
        }
        ClientCommand::Show { client_id, json } => {
            let (c, logouts) = db.read_sync(|conn| {
                let c = clients::get(conn, &client_id)?;
                let logouts = logout_deliveries::counts_for_client(conn, &client_id)?;
                Ok::<_, clients::RegistryError>((c, logouts))
            })?;
            let shown = show_json(&c.view(), &logouts);
            print(json, shown.clone(), || {
                serde_json::to_string_pretty(&shown).unwrap_or_default()
            });
            Ok(())
        }
        ClientCommand::Delete { client_id, json } => {
            db.write_sync(|c| clients::delete(c, &client_id, now))?;
            print(
                json,
                json!({"client_id": client_id, "deleted": true}),
                || format!("deleted client {client_id}"),
            );
            Ok(())
        }
    }
}

fn parse_permissions(raw: &[String]) -> Result<Vec<Permission>, Failure> {
    raw.iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .map(|p| {
            Permission::parse(p).ok_or_else(|| {
                let known: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
                usage(format!(
                    "unknown permission `{p}` (known: {})",
                    known.join(", ")
                ))
            })
        })
        .collect()
}

/// Exact redirect URIs (the same rules for `--redirect-uri` and `--post-logout-redirect-uri`).
fn parse_redirect_uris(raw: &[String]) -> Result<Vec<RedirectUri>, Failure> {
    raw.iter()
        .map(|u| RedirectUri::parse(u))
        .collect::<Result<Vec<_>, _>>()
        .map_err(usage)
}

fn parse_logout_uri(raw: Option<&str>) -> Result<Option<LogoutUri>, Failure> {
    raw.map(LogoutUri::parse).transpose().map_err(usage)
}

/// `client show`: the client, and what became of the logout tokens sent to it (delivered and
/// given-up ones are counted for as long as housekeeping keeps them, a week).
fn show_json(view: &clients::ClientView, logouts: &DeliveryCounts) -> serde_json::Value {
    let mut v = json!(view);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("backchannel_logout".into(), json!(logouts));
    }
    v
}

fn parse_grants(grants: &[String]) -> Result<Vec<GrantType>, Failure> {
    grants
        .iter()
        .map(|g| g.trim())
        .filter(|g| !g.is_empty())
        .map(|g| GrantType::parse(g).ok_or_else(|| usage(format!("unknown grant type `{g}`"))))
        .collect()
}

/// The new client's id and, once only, its secret.
fn created_text(created: &clients::CreatedClient) -> String {
    let mut out = format!("client_id:     {}\n", created.client.client_id);
    match &created.client_secret {
        Some(s) => out.push_str(&format!(
            "client_secret: {}\n(shown once: store it now)",
            s.expose()
        )),
        None => out.push_str("public client: no secret"),
    }
    if created.client.require_dpop {
        out.push_str(
            "\nDPoP required: token requests must carry a proof (--dpop optional to lift)",
        );
    }
    out
}

fn list_text(views: &[clients::ClientView]) -> String {
    if views.is_empty() {
        return "no clients".into();
    }
    views
        .iter()
        .map(|v| {
            let mut line = format!(
                "{}  {}  [{}]  scopes: {}",
                v.client_id,
                v.name,
                v.grant_types.join(","),
                v.scopes.join(" ")
            );
            if !v.permissions.is_empty() {
                line.push_str(&format!("  permissions: {}", v.permissions.join(",")));
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}
