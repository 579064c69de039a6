//! `lineage keys …`

use clap::Subcommand;
use serde_json::json;

use super::{Failure, print, usage};
use crate::configuration::Settings;
use crate::db::models::signing_keys;
use crate::startup::Backend;
use crate::tokens::keys::{self, KeyAlgorithm, KeyEncryption};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    List {
        #[arg(long)]
        json: bool,
    },
    /// Add a new signing key per algorithm (or of `--alg` only); it is published now and signs
    /// after the lead time.
    Rotate {
        /// Rotate only this algorithm's key: `RS256` (ID tokens) or `EdDSA` (access tokens, and
        /// ID tokens of clients that ask for it).
        #[arg(long, value_parser = clap::builder::ValueParser::new(parse_alg))]
        alg: Option<KeyAlgorithm>,
        /// Override the configured key-publish lead time (`0` signs at once).
        #[arg(long)]
        lead: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

fn parse_alg(raw: &str) -> Result<KeyAlgorithm, String> {
    raw.parse()
}

pub fn run(
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
            let rows = db.read_sync(signing_keys::list_all)?;
            let out: Vec<_> = rows.iter().map(describe).collect();
            print(json, json!(out), || {
                out.iter()
                    .map(|k| {
                        format!(
                            "{}  {:<5}  {}  activates {}  retired {}",
                            k["kid"].as_str().unwrap_or(""),
                            k["algorithm"].as_str().unwrap_or(""),
                            k["state"].as_str().unwrap_or(""),
                            k["activates_at"],
                            k["retired_at"]
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        KeysCommand::Rotate { alg, lead, json } => {
            let lead = match lead {
                Some(raw) => crate::configuration::parse_duration("lead", &raw)
                    .map_err(|e| usage(e.to_string()))?,
                None => settings.key_publish_lead,
            };
            let enc = KeyEncryption::new(&backend.key_secret);
            let algs = match alg {
                Some(a) => vec![a],
                None => KeyAlgorithm::ALL.to_vec(),
            };
            let mut rows = Vec::with_capacity(algs.len());
            for alg in algs {
                rows.push(db.write_sync(|c| keys::rotate(c, &enc, alg, now, lead))?);
            }
            // One object for one algorithm (as before there were two), an array for both.
            let out: Vec<_> = rows.iter().map(describe).collect();
            let v = match out.as_slice() {
                [one] => one.clone(),
                _ => json!(out),
            };
            print(json, v, || {
                rows.iter()
                    .map(|row| {
                        format!(
                            "new {} signing key {} published now, signs from unix time {}",
                            row.algorithm, row.kid, row.activates_at
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(())
}
