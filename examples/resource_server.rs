//! A tiny "notes" API protected by lineage access tokens.
//!
//! ```text
//! NOTES_CLIENT_SECRET=… cargo run --example resource_server -- --issuer http://127.0.0.1:8080 \
//!     --bind 127.0.0.1:8081 --audience notes-api --client-id notes-api
//! ```
//! (or `NOTES_ISSUER`, `NOTES_BIND`, `NOTES_AUDIENCE`, `NOTES_CLIENT_ID`). `GET /notes` needs
//! scope `notes:read`, `POST /notes` (`{"text": "…"}`) needs `notes:write`, `GET /healthz` is
//! open. Each caller (`sub`) sees its own notes. Tokens are checked locally against lineage's
//! JWKS; revoked sessions are refused within one poll of the revocation feed
//! (`--revocation-poll`, 5 s), which the API reads as a lineage client holding the
//! `revocations` permission (`lineage client create … --permission revocations`).
//!
//! A plain token is sent as a bearer token; a token bound to the client's DPoP key (`cnf.jkt`,
//! RFC 9449) with the DPoP scheme and a fresh proof per request, signed by that key:
//!
//! ```text
//! curl -H "Authorization: Bearer $ACCESS" http://127.0.0.1:8081/notes
//! # proof: a JWT with typ dpop+jwt, alg ES256 or EdDSA and the public key as jwk in its header,
//! # and {"jti": <unique>, "htm": "GET", "htu": "http://127.0.0.1:8081/notes", "iat": <now>,
//! #      "ath": base64url(SHA-256($ACCESS))} as payload
//! curl -H "Authorization: DPoP $ACCESS" -H "DPoP: $PROOF" http://127.0.0.1:8081/notes
//! ```
//!
//! The proof's `htu` is this API's URL as the client called it: behind a proxy, pass
//! `--public-url https://notes.example.com` so the API does not take it from the request.
//!
//! `tests/resource/` compiles this file as a module and starts [`serve`] on port 0.

use std::net::{SocketAddr, TcpListener};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use clap::Parser;
use lineage_resource::{Authenticated, RequireScope, Validator};
use serde::{Deserialize, Serialize};

#[derive(Debug, Parser)]
#[command(about = "A notes API that accepts lineage access tokens")]
struct Args {
    /// The authorization server's issuer URL.
    #[arg(long, env = "NOTES_ISSUER", default_value = "http://127.0.0.1:8080")]
    issuer: String,
    /// Address to listen on.
    #[arg(long, env = "NOTES_BIND", default_value = "127.0.0.1:8081")]
    bind: SocketAddr,
    /// The audience (`aud`) tokens must be issued for: the clients' configured audience.
    #[arg(long, env = "NOTES_AUDIENCE", default_value = "notes-api")]
    audience: String,
    /// The URL clients call this API at, when it differs from what the request shows (behind a
    /// proxy): the base of DPoP proofs' `htu`.
    #[arg(long, env = "NOTES_PUBLIC_URL")]
    public_url: Option<String>,
    /// Seconds between polls of the revocation feed; 0 turns revocation checks off.
    #[arg(long, env = "NOTES_REVOCATION_POLL", default_value_t = 5)]
    revocation_poll: u64,
    /// This API's own lineage client, which reads the revocation feed (`--permission revocations`).
    #[arg(long, env = "NOTES_CLIENT_ID", requires = "client_secret")]
    client_id: Option<String>,
    /// Its secret (prefer the environment variable: flags show up in `ps`).
    #[arg(
        long,
        env = "NOTES_CLIENT_SECRET",
        hide_env_values = true,
        requires = "client_id"
    )]
    client_secret: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Note {
    pub id: u64,
    pub author: String,
    pub text: String,
    pub created_at: u64,
}

#[derive(Debug, Deserialize)]
pub struct NewNote {
    pub text: String,
}

/// The whole "database": notes in memory, lost at exit.
#[derive(Debug, Default)]
pub struct Notes(Mutex<Vec<Note>>);

const MAX_NOTE_CHARS: usize = 10_000;

async fn list(auth: Authenticated, notes: web::Data<Notes>) -> HttpResponse {
    let mine: Vec<Note> = match notes.0.lock() {
        Ok(all) => all
            .iter()
            .filter(|n| n.author == auth.sub)
            .cloned()
            .collect(),
        Err(_) => return HttpResponse::InternalServerError().finish(),
    };
    HttpResponse::Ok().json(mine)
}

async fn create(
    auth: Authenticated,
    notes: web::Data<Notes>,
    body: web::Json<NewNote>,
) -> HttpResponse {
    let text = body.into_inner().text;
    if text.trim().is_empty() || text.chars().count() > MAX_NOTE_CHARS {
        return HttpResponse::BadRequest().json(serde_json::json!({
            "error": "invalid_note",
            "error_description": format!("text must be 1 to {MAX_NOTE_CHARS} characters"),
        }));
    }
    let Ok(mut all) = notes.0.lock() else {
        return HttpResponse::InternalServerError().finish();
    };
    let note = Note {
        id: all.len() as u64 + 1,
        author: auth.sub.clone(),
        text,
        created_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    all.push(note.clone());
    HttpResponse::Created().json(note)
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

/// The routes: scopes are declared where the route is, handlers only read the claims.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz)).service(
        web::resource("/notes")
            .route(web::get().to(list).wrap(RequireScope("notes:read")))
            .route(web::post().to(create).wrap(RequireScope("notes:write"))),
    );
}

/// Serve the notes API on `listener` (bind port 0 in tests).
pub fn serve(listener: TcpListener, validator: Validator) -> std::io::Result<Server> {
    let validator = web::Data::new(validator);
    let notes = web::Data::new(Notes::default());
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(validator.clone())
            .app_data(notes.clone())
            .configure(routes)
    })
    .listen(listener)?
    .run())
}

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("resource_server: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let poll = (args.revocation_poll > 0).then(|| Duration::from_secs(args.revocation_poll));
    let mut builder = Validator::builder(&args.issuer)
        .audience(&args.audience)
        .revocation_poll(poll);
    if let Some(url) = &args.public_url {
        builder = builder.public_url(url);
    }
    if let (Some(id), Some(secret)) = (args.client_id, args.client_secret) {
        builder = builder.client_credentials(id, secret);
    } else if poll.is_some() {
        tracing::warn!(
            "no --client-id/--client-secret: the revocation feed will refuse this API unless lineage \
             runs with --revocations-public"
        );
    }
    let validator = builder.build().await?;
    let listener = TcpListener::bind(args.bind)?;
    println!(
        "notes API listening on http://{} (issuer {}, audience {})",
        listener.local_addr()?,
        args.issuer,
        args.audience
    );
    serve(listener, validator)?.await?;
    Ok(())
}
