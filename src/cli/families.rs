//! `lineage token mint …` and `lineage family …`: refresh-token families from the command line.

use clap::Subcommand;
use serde_json::json;

use super::{Failure, print, usage};
use crate::clients::{self, Client};
use crate::configuration::Settings;
use crate::db::models::refresh_families::{self, FamilyRow};
use crate::db::models::users::{self as user_rows, UserRow};
use crate::domain::{GrantType, Scope};
use crate::startup::Backend;
use crate::tokens::jwt::{self, AccessClaims, AccessTokenSpec};
use crate::tokens::keys::{self, KeyEncryption};
use crate::tokens::refresh::{self, NewFamily, Origin, RefreshPolicy};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Start refresh families for a user without a browser sign-in (tests, benchmarks, support).
    /// Prints one refresh token per line, or with --json one object per line.
    Mint {
        /// Username (or user id).
        #[arg(long)]
        user: String,
        #[arg(long)]
        client: String,
        /// Scope of the families (default: everything the client may ask for).
        #[arg(long)]
        scope: Option<String>,
        #[arg(long)]
        device_name: Option<String>,
        /// How many families to start.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Bind the families to a DPoP key (its RFC 7638 SHA-256 thumbprint): every rotation
        /// then needs a proof by that key, and the access tokens carry `cnf.jkt`.
        #[arg(long, value_parser = parse_jkt)]
        dpop_jkt: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// A SHA-256 JWK thumbprint: 43 base64url characters.
fn parse_jkt(raw: &str) -> Result<String, String> {
    if lineage_jwt::dpop::is_thumbprint(raw) {
        Ok(raw.to_string())
    } else {
        Err("a DPoP key thumbprint is 43 base64url characters".into())
    }
}

#[derive(Debug, Subcommand)]
pub enum FamilyCommand {
    /// A user's families, newest first.
    List {
        /// Username (or user id).
        #[arg(long)]
        user: String,
        #[arg(long)]
        json: bool,
    },
    /// Revoke one family: every refresh token of it stops working.
    Revoke {
        family_id: String,
        #[arg(long)]
        json: bool,
    },
}

/// A user by name, or by id when no user has that name.
pub(super) fn find_user(
    c: &mut crate::db::DbConnection,
    name_or_id: &str,
) -> Result<UserRow, Failure> {
    if let Some(u) = user_rows::find_by_username(c, name_or_id)? {
        return Ok(u);
    }
    user_rows::find(c, name_or_id)?.ok_or_else(|| Failure {
        message: format!("no user `{name_or_id}`"),
        code: 1,
    })
}

/// What `token mint` signs access tokens for.
struct Minted<'a> {
    issuer: &'a str,
    client: &'a Client,
    user: &'a UserRow,
    scope: &'a Scope,
}

impl Minted<'_> {
    /// The access token the token endpoint would issue with this family's first refresh.
    fn access_token(
        &self,
        set: &keys::KeySet,
        family: &FamilyRow,
        settings: &Settings,
        now: i64,
    ) -> Result<String, Failure> {
        let key = set.active(now).ok_or_else(|| Failure {
            message: "no active signing key".into(),
            code: 1,
        })?;
        let claims = AccessClaims::issue(AccessTokenSpec {
            issuer: self.issuer,
            client: self.client,
            subject: &self.user.id,
            scope: self.scope,
            sid: Some(family.id.clone()),
            jkt: family.dpop_jkt.clone(),
            user_claims: jwt::user_claims(self.user, self.scope),
            now,
            ttl: settings.access_token_ttl,
            expires_no_later: Some(family.absolute_expires_at),
        });
        jwt::mint(key, &claims).map_err(|e| Failure {
            message: e.to_string(),
            code: 1,
        })
    }
}

/// The scope families may be minted with for this user and client, or why none can be.
fn mintable(user: &UserRow, client: &Client, scope: Option<String>) -> Result<Scope, Failure> {
    let refused = |message| Failure { message, code: 1 };
    if user.disabled {
        return Err(refused(format!("user `{}` is disabled", user.username)));
    }
    if !client.allows_grant(GrantType::RefreshToken) {
        return Err(refused(format!(
            "client `{}` is not allowed the refresh_token grant",
            client.client_id
        )));
    }
    let scope = match scope {
        Some(raw) => Scope::parse(&raw).map_err(usage)?,
        None => client.scopes.clone(),
    };
    if !scope.is_subset_of(&client.scopes) {
        return Err(usage(format!(
            "scope `{scope}` exceeds what client `{}` may ask for",
            client.client_id
        )));
    }
    Ok(scope)
}

/// The signing keys (created if there are none yet) and the issuer the server would use.
fn signer(
    settings: &Settings,
    backend: &Backend,
    now: i64,
) -> Result<(keys::KeySet, String), Failure> {
    crate::tokens::crypto::install();
    let enc = KeyEncryption::new(&backend.key_secret);
    let set = backend.db.write_sync(|c| {
        keys::ensure_signing_keys(c, &enc, now)?;
        keys::KeySet::load(c, &enc, None, now, settings.access_token_ttl)
    })?;
    Ok((set, jwt::issuer(settings.issuer.as_deref(), settings.bind)))
}

pub fn mint(
    cmd: TokenCommand,
    settings: &Settings,
    backend: &Backend,
    now: i64,
) -> Result<(), Failure> {
    let TokenCommand::Mint {
        user,
        client,
        scope,
        device_name,
        count,
        dpop_jkt,
        json,
    } = cmd;
    let db = &backend.db;
    let (user, client) = db.read_sync(|c| {
        let u = find_user(c, &user)?;
        let cl = clients::get(c, &client)?;
        Ok::<_, Failure>((u, cl))
    })?;
    let scope = mintable(&user, &client, scope)?;
    // Access tokens only with --json: they need the signing keys and the issuer.
    let signer = if json {
        Some(signer(settings, backend, now)?)
    } else {
        None
    };
    let policy = RefreshPolicy::from_settings(settings);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for _ in 0..count {
        let spec = NewFamily {
            user_id: user.id.clone(),
            client_id: client.client_id.to_string(),
            scope: scope.clone(),
            device_name: device_name.clone(),
            origin: Origin {
                ip: None,
                user_agent: Some("lineage token mint".into()),
            },
            dpop_jkt: dpop_jkt.clone(),
        };
        let (family, token) = db.write_sync(|c| refresh::start_family(c, spec, &policy, now))?;
        use std::io::Write;
        let line = match &signer {
            Some((set, issuer)) => {
                let minted = Minted {
                    issuer,
                    client: &client,
                    user: &user,
                    scope: &scope,
                };
                let access = minted.access_token(set, &family, settings, now)?;
                let shown = json!({
                    "family_id": family.id,
                    "refresh_token": token.expose(),
                    "access_token": access,
                });
                shown.to_string()
            }
            None => token.expose().to_string(),
        };
        writeln!(out, "{line}").map_err(|e| Failure {
            message: e.to_string(),
            code: 1,
        })?;
    }
    Ok(())
}

fn families_text(user: &UserRow, views: &[serde_json::Value]) -> String {
    if views.is_empty() {
        return format!("{} has no sessions", user.username);
    }
    views
        .iter()
        .map(|v| {
            format!(
                "{}  client {}  device {}  rotations {}  {}",
                v["id"].as_str().unwrap_or(""),
                v["client_id"].as_str().unwrap_or(""),
                v["device_name"].as_str().unwrap_or("-"),
                v["rotation_count"],
                v["state"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn family(
    cmd: FamilyCommand,
    settings: &Settings,
    backend: &Backend,
    now: i64,
) -> Result<(), Failure> {
    let db = &backend.db;
    let policy = RefreshPolicy::from_settings(settings);
    match cmd {
        FamilyCommand::List { user, json } => {
            let (user, families) = db.read_sync(|c| {
                let u = find_user(c, &user)?;
                let f = refresh_families::list_for_user(c, &u.id)?;
                Ok::<_, Failure>((u, f))
            })?;
            let views: Vec<_> = families
                .iter()
                .map(|f| {
                    let state = match refresh::end_reason(f, Some(&user), &policy, now) {
                        None => "live".to_string(),
                        Some(r) => r.description(),
                    };
                    let mut v = json!(f);
                    v["state"] = state.into();
                    v
                })
                .collect();
            print(json, json!(views), || families_text(&user, &views));
        }
        FamilyCommand::Revoke { family_id, json } => {
            let origin = Origin {
                ip: None,
                user_agent: Some("lineage family revoke".into()),
            };
            let revoked = db.write_sync(|c| {
                if refresh_families::find(c, &family_id)?.is_none() {
                    return Err(Failure {
                        message: format!("no family `{family_id}`"),
                        code: 1,
                    });
                }
                let reason = refresh::RevocationReason::RevokedByAdmin;
                Ok(refresh::revoke_family(c, &family_id, reason, &origin, now)?)
            })?;
            print(
                json,
                json!({"family_id": family_id, "revoked": revoked}),
                || {
                    if revoked {
                        format!("revoked family {family_id}")
                    } else {
                        format!("family {family_id} had already ended")
                    }
                },
            );
        }
    }
    Ok(())
}
