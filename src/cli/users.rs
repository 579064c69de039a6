//! `lineage user …`

use std::io::{IsTerminal, Read};

use clap::Subcommand;
use serde_json::json;

use super::{Failure, print, usage};
use crate::domain::{Password, Username};
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
            json,
        } => {
            let name = Username::parse(&username).map_err(|m| Failure {
                message: m,
                code: 1,
            })?;
            let password = read_password(password_stdin, &format!("Password for {name}: "))?;
            let hash = users::hash_password(&password)?;
            let v = db.write_sync(|c| users::create(c, &name, &hash, now))?;
            show(json, v, "created user");
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
