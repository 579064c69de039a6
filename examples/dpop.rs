//! A device key and DPoP proofs (RFC 9449) from the command line, for trying lineage's DPoP with
//! curl and for the load benchmark's `refresh_dpop` scenario.
//!
//! ```text
//! cargo run --example dpop -- key --out device.key          # prints the key's thumbprint (jkt)
//! cargo run --example dpop -- jkt --key device.key
//! cargo run --example dpop -- proof --key device.key --htu http://127.0.0.1:8080/token
//! cargo run --example dpop -- proof --key device.key --htm GET \
//!     --htu http://127.0.0.1:8080/userinfo --access-token "$ACCESS_TOKEN"
//! cargo run --release --example dpop -- proof --key device.key --htu … --count 100000 > proofs
//! ```
//!
//! The key file holds the private key (`ALG:base64url(PKCS#8)`), created with mode 0600: on a
//! real device it would live in the platform keystore, never leave it, and never be exported.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use clap::{Parser, Subcommand};
use lineage_jwt::dpop::{DeviceKey, ProofClaims};

#[derive(Debug, Parser)]
#[command(about = "Make a DPoP device key and sign proofs with it")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a key into a new file and print its thumbprint.
    Key {
        #[arg(long)]
        out: PathBuf,
        /// `ES256` (what browsers and phone keystores offer) or `EdDSA`.
        #[arg(long, default_value = "ES256")]
        alg: String,
    },
    /// Print the thumbprint (`jkt`) of a key: what `dpop_jkt` and `cnf.jkt` carry.
    Jkt {
        #[arg(long)]
        key: PathBuf,
    },
    /// Print proofs for one request, each with a fresh `jti`, one per line.
    Proof {
        #[arg(long)]
        key: PathBuf,
        /// The request's URI (query and fragment are ignored by the server).
        #[arg(long)]
        htu: String,
        #[arg(long, default_value = "POST")]
        htm: String,
        /// The access token the request carries (sets `ath`), for a resource server.
        #[arg(long)]
        access_token: Option<String>,
        /// The server's `DPoP-Nonce`, when it asks for one.
        #[arg(long)]
        nonce: Option<String>,
        #[arg(long, default_value_t = 1)]
        count: u64,
    },
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("dpop: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), String> {
    match args.command {
        Command::Key { out, alg } => {
            let pkcs8 = DeviceKey::generate_pkcs8(&alg).map_err(|e| e.to_string())?;
            write_private(&out, &format!("{alg}:{}\n", B64.encode(&pkcs8)))?;
            println!("{}", load(&out)?.jkt());
        }
        Command::Jkt { key } => println!("{}", load(&key)?.jkt()),
        Command::Proof {
            key,
            htu,
            htm,
            access_token,
            nonce,
            count,
        } => {
            let key = load(&key)?;
            let iat = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_err(|e| e.to_string())?
                .as_secs();
            let iat = i64::try_from(iat).map_err(|e| e.to_string())?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for _ in 0..count {
                let jti = uuid::Uuid::new_v4().to_string();
                let claims = ProofClaims {
                    htm: &htm,
                    htu: &htu,
                    iat,
                    jti: &jti,
                    access_token: access_token.as_deref(),
                    nonce: nonce.as_deref(),
                };
                let proof = key.proof(&claims).map_err(|e| e.to_string())?;
                writeln!(out, "{proof}").map_err(|e| e.to_string())?;
            }
            out.flush().map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

fn load(path: &Path) -> Result<DeviceKey, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (alg, encoded) = text
        .trim()
        .split_once(':')
        .ok_or_else(|| format!("{} is not a key file made by `dpop key`", path.display()))?;
    let pkcs8 = B64
        .decode(encoded)
        .map_err(|_| format!("{} is not a key file made by `dpop key`", path.display()))?;
    DeviceKey::from_pkcs8(alg, &pkcs8).map_err(|e| e.to_string())
}

/// A new file only the owner can read.
fn write_private(path: &Path, contents: &str) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(contents.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
