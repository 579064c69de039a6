//! `lineage user …`

use std::io::{IsTerminal, Read};

use clap::{Args, Subcommand};
use serde_json::json;

use super::{Failure, print, usage};
use crate::domain::{DisplayName, Email, Password, Username};
use crate::profile::ProfileChange;
use crate::startup::Backend;
use crate::tokens::refresh;
use crate::users;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is prompted for, or read from standard input.
    Create {
        username: String,
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        profile: ProfileArgs,
        #[arg(long)]
        json: bool,
    },
    /// Change a user's profile: display name, email address, whether the address is verified.
    Update {
        username: String,
        #[command(flatten)]
        profile: ProfileArgs,
        #[arg(long)]
        json: bool,
    },
    /// Show one user, with their profile.
    Show {
        username: String,
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

/// The profile flags of `user create` and `user update`.
#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// The name shown to people and apps (the OpenID Connect `name` claim).
    #[arg(long, conflicts_with = "clear_display_name")]
    display_name: Option<String>,
    #[arg(long)]
    clear_display_name: bool,
    /// The email address (`email`); a new address is unverified unless `--email-verified true`.
    #[arg(long, conflicts_with = "clear_email")]
    email: Option<String>,
    #[arg(long)]
    clear_email: bool,
    /// Whether the address is known to reach the user (`email_verified`): true or false.
    #[arg(long, value_name = "true|false")]
    email_verified: Option<bool>,
}

impl ProfileArgs {
    fn change(&self) -> Result<ProfileChange, Failure> {
        let invalid = |message: String| Failure { message, code: 1 };
        let display_name = match (&self.display_name, self.clear_display_name) {
            (Some(raw), _) => Some(Some(DisplayName::parse(raw).map_err(invalid)?)),
            (None, true) => Some(None),
            (None, false) => None,
        };
        let email = match (&self.email, self.clear_email) {
            (Some(raw), _) => Some(Some(Email::parse(raw).map_err(invalid)?)),
            (None, true) => Some(None),
            (None, false) => None,
        };
        Ok(ProfileChange {
            display_name,
            email,
            email_verified: self.email_verified,
        })
    }
}

/// A user's profile in words, for `user show` and after `user update`.
fn describe(v: &users::UserView) -> String {
    let email = match &v.email {
        Some(e) if v.email_verified => format!("{e} (verified)"),
        Some(e) => format!("{e} (not verified)"),
        None => "—".into(),
    };
    format!(
        "{} ({})\n  display name: {}\n  email:        {email}\n  disabled:     {}",
        v.username,
        v.id,
        v.display_name.as_deref().unwrap_or("—"),
        v.disabled
    )
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

pub fn run(cmd: UserCommand, backend: &Backend, now: i64) -> Result<(), Failure> {
    let db = &backend.db;
    let show = |json_out: bool, v: users::UserView, what: &str| {
        let line = format!("{what} {} ({})", v.username, v.id);
        print(json_out, json!(v), || line);
    };
    match cmd {
        UserCommand::Create {
            username,
            password_stdin,
            profile,
            json,
        } => {
            let name = Username::parse(&username).map_err(|m| Failure {
                message: m,
                code: 1,
            })?;
            let profile = profile.change()?;
            let password = read_password(password_stdin, &format!("Password for {name}: "))?;
            let hash = users::hash_password(&password)?;
            let v =
                db.write_sync(|c| users::create_with_profile(c, &name, &hash, &profile, now))?;
            show(json, v, "created user");
        }
        UserCommand::Update {
            username,
            profile,
            json,
        } => {
            let change = profile.change()?;
            if change.is_empty() {
                return Err(usage(
                    "nothing to change: give --display-name, --clear-display-name, --email, \
                     --clear-email or --email-verified",
                ));
            }
            let v = db.write_sync(|c| users::update_profile(c, &username, &change, now))?;
            print(json, json!(v), || format!("updated {}", describe(&v)));
        }
        UserCommand::Show { username, json } => {
            let v =
                db.read_sync(|c| users::get(c, &username).map(|u| users::UserView::from(&u)))?;
            print(json, json!(v), || describe(&v));
        }
        UserCommand::SetPassword {
            username,
            password_stdin,
            json,
        } => {
            let password =
                read_password(password_stdin, &format!("New password for {username}: "))?;
            let hash = users::hash_password(&password)?;
            let v = db.write_sync(|c| users::set_password(c, &username, &hash, now))?;
            show(json, v, "changed the password of");
        }
        UserCommand::Disable { username, json } => {
            let v = db.write_sync(|c| users::set_disabled(c, &username, true, now))?;
            show(json, v, "disabled");
        }
        UserCommand::Enable { username, json } => {
            let v = db.write_sync(|c| users::set_disabled(c, &username, false, now))?;
            show(json, v, "enabled");
        }
        UserCommand::RevokeAll { username, json } => {
            let ended = db.write_sync(|c| {
                let user = users::get(c, &username)?;
                let ended = refresh::revoke_all_for_user(
                    c,
                    &user.id,
                    refresh::RevocationReason::RevokedByAdmin,
                    now,
                )?;
                crate::db::models::browser_sessions::delete_for_user(c, &user.id, None)?;
                Ok::<_, Failure>(ended)
            })?;
            print(
                json,
                json!({"username": username, "revoked_families": ended}),
                || format!("revoked {} sessions of {username}", ended.len()),
            );
        }
        UserCommand::List { json } => {
            let list = db.read_sync(users::list)?;
            print(json, json!(list), || {
                if list.is_empty() {
                    return "no users".into();
                }
                list.iter()
                    .map(|u| {
                        let name = u
                            .display_name
                            .as_ref()
                            .map(|n| format!("  \"{n}\""))
                            .unwrap_or_default();
                        let email = u
                            .email
                            .as_ref()
                            .map(|e| format!("  <{e}>"))
                            .unwrap_or_default();
                        format!(
                            "{}  {}{name}{email}{}",
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
