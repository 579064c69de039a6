//! `lineage client …`

use clap::Subcommand;
use diesel::Connection;
use serde_json::json;

use super::{Failure, print, usage};
use crate::clients::{self, NewClient};
use crate::domain::{GrantType, Permission, RedirectUri, Scope};
use crate::startup::Backend;
use crate::tokens::keys::KeyAlgorithm;

fn parse_alg(raw: &str) -> Result<KeyAlgorithm, String> {
    raw.parse()
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
        #[arg(long)]
        json: bool,
    },
    /// Change an existing client's permissions (the given list replaces the current one).
    Update {
        client_id: String,
        /// The client's permissions from now on; repeat or comma-separate.
        #[arg(
            long = "permission",
            value_delimiter = ',',
            required_unless_present = "no_permissions"
        )]
        permissions: Vec<String>,
        /// Take every permission away.
        #[arg(long, conflicts_with = "permissions")]
        no_permissions: bool,
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
            json,
        } => {
            let permissions = parse_permissions(&permissions)?;
            let spec = NewClient {
                client_id,
                name,
                public,
                grant_types: parse_grants(&grants)?,
                scopes: Scope::parse(&scopes.join(" ")).map_err(usage)?,
                redirect_uris: redirect_uris
                    .iter()
                    .map(|u| RedirectUri::parse(u))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(usage)?,
                audience,
                first_party,
            };
            let created = db.write_sync(|c| {
                c.transaction(|c| {
                    let mut created = clients::create_with_permissions(c, spec, &permissions, now)?;
                    if let Some(alg) = id_token_alg {
                        clients::set_id_token_alg(c, created.client.client_id.as_str(), alg)?;
                        created.client.id_token_alg = alg;
                    }
                    Ok::<_, clients::RegistryError>(created)
                })
            })?;
            print(json, created.to_json(), || created_text(&created));
            Ok(())
        }
        ClientCommand::Update {
            client_id,
            permissions,
            no_permissions: _,
            json,
        } => {
            let permissions = parse_permissions(&permissions)?;
            let client =
                db.write_sync(|c| clients::set_permissions(c, &client_id, &permissions, now))?;
            let v = client.view();
            print(json, json!(v), || {
                let list = if v.permissions.is_empty() {
                    "none".to_string()
                } else {
                    v.permissions.join(", ")
                };
                format!("client {}: permissions {list}", v.client_id)
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
            let c = db.read_sync(|conn| clients::get(conn, &client_id))?;
            let v = c.view();
            print(json, json!(v), || {
                serde_json::to_string_pretty(&v).unwrap_or_default()
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
