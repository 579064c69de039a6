//! The `lineage` command line: clap commands turned into library calls.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::json;

use crate::clients::{self, NewClient, RegistryError};
use crate::clock::{Clock, SystemClock};
use crate::configuration::{Settings, SettingsArgs};
use crate::db::StoreError;
use crate::db::models::signing_keys;
use crate::db::models::{refresh_families, users as user_rows};
use crate::domain::{GrantType, Password, RedirectUri, Scope, Username};
use crate::startup::{Application, Backend, open_backend};
use crate::tokens::jwt::{self, AccessClaims};
use crate::tokens::keys::{self, KeyEncryption};
use crate::tokens::refresh::{self, NewFamily, Origin, RefreshPolicy};
use crate::{demo, housekeeping, telemetry, users};

#[derive(Debug, Parser)]
#[command(
    name = "lineage",
    version,
    about = "OAuth 2.0 authorization server with rotating refresh-token families"
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the authorization server.
    Serve {
        /// Also create a demo client (idempotent) and print how to try it.
        #[arg(long)]
        demo: bool,
    },
    /// Apply pending database migrations (the server also does this at start).
    Migrate {
        /// Roll back the most recent migration instead.
        #[arg(long)]
        revert: bool,
    },
    /// Register and manage OAuth clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage Ed25519 signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Operator tools for refresh-token families.
    #[command(subcommand)]
    Token(TokenCommand),
    /// See and revoke refresh-token families (one login on one device).
    #[command(subcommand)]
    Family(FamilyCommand),
    /// Delete ended families, expired denylist entries and old audit events now.
    Gc {
        #[arg(long)]
        json: bool,
    },
}

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
        #[arg(long)]
        json: bool,
    },
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
        /// Allowed grant type; repeat or comma-separate (authorization_code, refresh_token, client_credentials).
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

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is prompted for, or read from standard input.
    Create {
        username: String,
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        json: bool,
    },
    SetPassword {
        username: String,
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        json: bool,
    },
    Disable {
        username: String,
        #[arg(long)]
        json: bool,
    },
    Enable {
        username: String,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke every family of a user and publish a not-before for their access tokens.
    RevokeAll {
        username: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    List {
        #[arg(long)]
        json: bool,
    },
    /// Add a new signing key; it is published now and signs after the lead time.
    Rotate {
        /// Override the configured key-publish lead time (`0` signs at once).
        #[arg(long)]
        lead: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// A failure the user should read: message on stderr, and an exit code.
struct Failure {
    message: String,
    code: u8,
}

impl From<RegistryError> for Failure {
    fn from(e: RegistryError) -> Self {
        Failure {
            message: e.to_string(),
            code: 1,
        }
    }
}
impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure {
            message: e.to_string(),
            code: 1,
        }
    }
}
impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure {
            message: format!("{e:#}"),
            code: 1,
        }
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        code: 2,
    }
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    let settings = match cli.settings.resolve() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lineage: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    match dispatch(cli.command, settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("lineage: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn print(json_out: bool, value: serde_json::Value, human: impl FnOnce() -> String) {
    if json_out {
        println!("{value}");
    } else {
        println!("{}", human());
    }
}

fn dispatch(command: Command, settings: Settings) -> Result<(), Failure> {
    let now = SystemClock.now();
    match command {
        Command::Serve { demo } => serve(Settings { demo, ..settings }, demo),
        Command::Migrate { revert } => {
            let db = crate::db::Database::open(&settings.database_url, &Default::default())?;
            if revert {
                let v = db.run_sync(|c| Ok(crate::db::revert_last_migration(c)?))?;
                println!("reverted {v}");
            } else {
                let applied = db.migrate()?;
                if applied.is_empty() {
                    println!("database is up to date");
                }
                for v in applied {
                    println!("applied {v}");
                }
            }
            Ok(())
        }
        Command::Client(cmd) => client_command(cmd, &open_backend(&settings)?, now),
        Command::User(cmd) => user_command(cmd, &open_backend(&settings)?, now),
        Command::Keys(cmd) => keys_command(cmd, &settings, &open_backend(&settings)?, now),
        Command::Token(cmd) => token_command(cmd, &settings, &open_backend(&settings)?, now),
        Command::Family(cmd) => family_command(cmd, &settings, &open_backend(&settings)?, now),
        Command::Gc { json } => {
            let backend = open_backend(&settings)?;
            let report = backend
                .db
                .write_sync(|c| housekeeping::collect_all(c, now, settings.access_token_ttl))?;
            print(json, json!(report), || {
                format!(
                    "deleted {} families, {} refresh tokens, {} denylist entries, {} audit events",
                    report.families,
                    report.refresh_tokens,
                    report.revoked_access_tokens,
                    report.audit_events
                )
            });
            Ok(())
        }
    }
}

fn serve(settings: Settings, demo: bool) -> Result<(), Failure> {
    let system = actix_web::rt::System::new();
    system.block_on(async move {
        let app = Application::build(settings.clone()).await?;
        tracing::info!(issuer = app.issuer(), port = app.port(), database = %settings.database_url.redacted(), "lineage is listening");
        if demo {
            let state = app.state();
            demo::prepare(&state).await?;
        }
        app.run_until_stopped().await.map_err(|e| Failure::from(anyhow::Error::from(e)))
    })
}

fn client_command(cmd: ClientCommand, backend: &Backend, now: i64) -> Result<(), Failure> {
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
            json,
        } => {
            let grant_types = grants
                .iter()
                .map(|g| g.trim())
                .filter(|g| !g.is_empty())
                .map(|g| {
                    GrantType::parse(g).ok_or_else(|| usage(format!("unknown grant type `{g}`")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let scopes = Scope::parse(&scopes.join(" ")).map_err(usage)?;
            let redirect_uris = redirect_uris
                .iter()
                .map(|u| RedirectUri::parse(u))
                .collect::<Result<Vec<_>, _>>()
                .map_err(usage)?;
            let spec = NewClient {
                client_id,
                name,
                public,
                grant_types,
                scopes,
                redirect_uris,
                audience,
                first_party,
            };
            let created =
                db.run_sync(|c| clients::create(c, spec, now).map_err(registry_to_store))?;
            let secret = created
                .client_secret
                .as_ref()
                .map(|s| s.expose().to_string());
            print(json, created.to_json(), || {
                let c = &created.client;
                let mut out = format!("client_id:     {}\n", c.client_id);
                match &secret {
                    Some(s) => {
                        out.push_str(&format!("client_secret: {s}\n(shown once: store it now)"))
                    }
                    None => out.push_str("public client: no secret"),
                }
                out
            });
            Ok(())
        }
        ClientCommand::List { json } => {
            let list = db.run_sync(clients::list)?;
            let views: Vec<_> = list.iter().map(|c| c.view()).collect();
            print(json, json!(views), || {
                if views.is_empty() {
                    return "no clients".into();
                }
                views
                    .iter()
                    .map(|v| {
                        format!(
                            "{}  {}  [{}]  scopes: {}",
                            v.client_id,
                            v.name,
                            v.grant_types.join(","),
                            v.scopes.join(" ")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(())
        }
        ClientCommand::Show { client_id, json } => {
            let c =
                db.run_sync(|conn| clients::get(conn, &client_id).map_err(registry_to_store))?;
            let v = c.view();
            print(json, json!(v), || {
                serde_json::to_string_pretty(&v).unwrap_or_default()
            });
            Ok(())
        }
        ClientCommand::Delete { client_id, json } => {
            db.run_sync(|c| clients::delete(c, &client_id, now).map_err(registry_to_store))?;
            print(
                json,
                json!({"client_id": client_id, "deleted": true}),
                || format!("deleted client {client_id}"),
            );
            Ok(())
        }
    }
}

// Keep the registry's message (not found, conflict, invalid) when it travels through `run_sync`.
fn registry_to_store(e: RegistryError) -> StoreError {
    match e {
        RegistryError::Store(s) => s,
        other => StoreError::Other(anyhow::anyhow!(other.to_string())),
    }
}

fn read_password(from_stdin: bool, prompt: &str) -> Result<Password, Failure> {
    let raw = if from_stdin || !std::io::stdin().is_terminal() {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| usage(format!("cannot read the password: {e}")))?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else {
        let first = rpassword::prompt_password(prompt)
            .map_err(|e| usage(format!("cannot read the password: {e}")))?;
        let second = rpassword::prompt_password("Repeat it: ")
            .map_err(|e| usage(format!("cannot read the password: {e}")))?;
        if first != second {
            return Err(usage("the passwords do not match"));
        }
        first
    };
    Password::new(raw).map_err(|m| Failure {
        message: m,
        code: 1,
    })
}

fn user_command(cmd: UserCommand, backend: &Backend, now: i64) -> Result<(), Failure> {
    let db = &backend.db;
    let show = |json_out: bool, v: users::UserView, what: &str| {
        let line = format!("{what} {} ({})", v.username, v.id);
        print(json_out, json!(v), || line);
    };
    match cmd {
        UserCommand::Create {
            username,
            password_stdin,
            json,
        } => {
            let name = Username::parse(&username).map_err(|m| Failure {
                message: m,
                code: 1,
            })?;
            let password = read_password(password_stdin, &format!("Password for {name}: "))?;
            let v = db
                .run_sync(|c| users::create(c, &name, &password, now).map_err(registry_to_store))?;
            show(json, v, "created user");
        }
        UserCommand::SetPassword {
            username,
            password_stdin,
            json,
        } => {
            let password =
                read_password(password_stdin, &format!("New password for {username}: "))?;
            let v = db.run_sync(|c| {
                users::set_password(c, &username, &password, now).map_err(registry_to_store)
            })?;
            show(json, v, "changed the password of");
        }
        UserCommand::Disable { username, json } => {
            let v = db.run_sync(|c| {
                users::set_disabled(c, &username, true, now).map_err(registry_to_store)
            })?;
            show(json, v, "disabled");
        }
        UserCommand::Enable { username, json } => {
            let v = db.run_sync(|c| {
                users::set_disabled(c, &username, false, now).map_err(registry_to_store)
            })?;
            show(json, v, "enabled");
        }
        UserCommand::RevokeAll { username, json } => {
            let ended = db.write_sync(|c| {
                let user = users::get(c, &username).map_err(registry_to_store)?;
                refresh::revoke_all_for_user(c, &user.id, "revoked_by_admin", now)
            })?;
            print(
                json,
                json!({"username": username, "revoked_families": ended}),
                || format!("revoked {} sessions of {username}", ended.len()),
            );
        }
        UserCommand::List { json } => {
            let list = db.run_sync(users::list)?;
            print(json, json!(list), || {
                if list.is_empty() {
                    return "no users".into();
                }
                list.iter()
                    .map(|u| {
                        format!(
                            "{}  {}{}",
                            u.id,
                            u.username,
                            if u.disabled { "  (disabled)" } else { "" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(())
}

fn keys_command(
    cmd: KeysCommand,
    settings: &Settings,
    backend: &Backend,
    now: i64,
) -> Result<(), Failure> {
    let db = &backend.db;
    let ttl = settings.access_token_ttl;
    let describe = |r: &signing_keys::SigningKeyRow| {
        json!({
            "kid": r.kid,
            "algorithm": r.algorithm,
            "state": keys::key_state(r.activates_at, r.retired_at, now, ttl),
            "created_at": r.created_at,
            "activates_at": r.activates_at,
            "retired_at": r.retired_at,
            "published_until": r.retired_at.map(|t| t + ttl + keys::RETIRED_KEY_SKEW),
        })
    };
    match cmd {
        KeysCommand::List { json } => {
            let rows = db.run_sync(signing_keys::list_all)?;
            let out: Vec<_> = rows.iter().map(describe).collect();
            print(json, json!(out), || {
                out.iter()
                    .map(|k| {
                        format!(
                            "{}  {}  activates {}  retired {}",
                            k["kid"].as_str().unwrap_or(""),
                            k["state"].as_str().unwrap_or(""),
                            k["activates_at"],
                            k["retired_at"]
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        KeysCommand::Rotate { lead, json } => {
            let lead = match lead {
                Some(raw) => crate::configuration::parse_duration("lead", &raw)
                    .map_err(|e| usage(e.to_string()))?,
                None => settings.key_publish_lead,
            };
            let enc = KeyEncryption::new(&backend.key_secret);
            let row = db.run_sync(|c| keys::rotate(c, &enc, now, lead))?;
            let v = describe(&row);
            print(json, v, || {
                format!(
                    "new signing key {} published now, signs from unix time {}",
                    row.kid, row.activates_at
                )
            });
        }
    }
    Ok(())
}

/// A user by name, or by id when no user has that name.
fn find_user(
    c: &mut crate::db::DbConnection,
    name_or_id: &str,
) -> Result<user_rows::UserRow, StoreError> {
    if let Some(u) = user_rows::find_by_username(c, name_or_id)? {
        return Ok(u);
    }
    user_rows::find(c, name_or_id)?
        .ok_or_else(|| StoreError::Other(anyhow::anyhow!("no user `{name_or_id}`")))
}

fn token_command(
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
        json,
    } = cmd;
    let db = &backend.db;
    let (user, client) = db.run_sync(|c| {
        let u = find_user(c, &user)?;
        let cl = clients::get(c, &client).map_err(registry_to_store)?;
        Ok((u, cl))
    })?;
    if user.disabled {
        return Err(Failure {
            message: format!("user `{}` is disabled", user.username),
            code: 1,
        });
    }
    if !client.allows_grant(GrantType::RefreshToken) {
        return Err(Failure {
            message: format!(
                "client `{}` is not allowed the refresh_token grant",
                client.client_id
            ),
            code: 1,
        });
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
    // Access tokens only with --json: they need the signing keys and the issuer.
    let signer = if json {
        crate::tokens::crypto::install();
        let enc = KeyEncryption::new(&backend.key_secret);
        let set = db.run_sync(|c| {
            keys::ensure_signing_key(c, &enc, now)?;
            keys::KeySet::load(c, &enc, None, now, settings.access_token_ttl)
        })?;
        let issuer = settings
            .issuer
            .clone()
            .unwrap_or_else(|| format!("http://{}", settings.bind));
        Some((set, issuer))
    } else {
        None
    };
    let policy = RefreshPolicy::from_settings(settings);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for _ in 0..count {
        let spec = NewFamily {
            user_id: user.id.clone(),
            client_id: client.client_id.clone(),
            scope: scope.clone(),
            device_name: device_name.clone(),
            origin: Origin {
                ip: None,
                user_agent: Some("lineage token mint".into()),
            },
        };
        let (family, token) = db.write_sync(|c| refresh::start_family(c, spec, &policy, now))?;
        use std::io::Write;
        let line = match &signer {
            Some((set, issuer)) => {
                let key = set.active(now).ok_or_else(|| Failure {
                    message: "no active signing key".into(),
                    code: 1,
                })?;
                let claims = AccessClaims::new(
                    issuer,
                    &client,
                    &user.id,
                    &scope,
                    now,
                    settings.access_token_ttl,
                )
                .in_family(Some(family.id.clone()))
                .with_claims(jwt::user_claims(&user))
                .capped_at(Some(family.absolute_expires_at));
                let access = jwt::mint(key, &claims).map_err(|e| Failure {
                    message: e.to_string(),
                    code: 1,
                })?;
                json!({"family_id": family.id, "refresh_token": token.expose(), "access_token": access}).to_string()
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

fn family_command(
    cmd: FamilyCommand,
    settings: &Settings,
    backend: &Backend,
    now: i64,
) -> Result<(), Failure> {
    let db = &backend.db;
    let policy = RefreshPolicy::from_settings(settings);
    match cmd {
        FamilyCommand::List { user, json } => {
            let (user, families) = db.run_sync(|c| {
                let u = find_user(c, &user)?;
                let f = refresh_families::list_for_user(c, &u.id)?;
                Ok((u, f))
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
            print(json, json!(views), || {
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
            });
        }
        FamilyCommand::Revoke { family_id, json } => {
            let origin = Origin {
                ip: None,
                user_agent: Some("lineage family revoke".into()),
            };
            let revoked = db.write_sync(|c| {
                if refresh_families::find(c, &family_id)?.is_none() {
                    return Err(StoreError::Other(anyhow::anyhow!(
                        "no family `{family_id}`"
                    )));
                }
                refresh::revoke_family(c, &family_id, "revoked_by_admin", &origin, now)
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
