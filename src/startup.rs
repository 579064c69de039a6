//! `Application::build(settings)`: storage ready, keys loaded, listener bound (port 0 in tests).

use std::net::TcpListener;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use actix_web::dev::{Server, Service};
use actix_web::http::header;
use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::web::{self, Data};
use actix_web::{App, HttpServer, Resource};
use anyhow::Context;
use futures_util::FutureExt;

use crate::clock::{SharedClock, SystemClock};
use crate::configuration::{KeySecret, Settings};
use crate::db::models::revocation_feed;
use crate::db::{Database, PoolOptions};
use crate::domain::Seconds;
use crate::hashing::HashingPool;
use crate::limits::sign_in::{SignInPolicy, UsernameKeys};
use crate::limits::{self, Limits};
use crate::metrics::Metrics;
use crate::oauth::client_auth::ClientCache;
use crate::oauth::dpop::DpopCheck;
use crate::oauth::error::OAuthError;
use crate::oauth::{
    authorize, cors, discovery, introspect, jwks, revocations, revoke, token, userinfo,
};
use crate::state::AppState;
use crate::telemetry::request::{self, RoutePattern};
use crate::tokens::key_ring::KeyRing;
use crate::tokens::refresh::{RefreshPolicy, SuccessorKey};
use crate::tokens::{crypto, jwt, keys};
use crate::web::csrf::FormSigner;
use crate::web::session::CookieNames;
use crate::web::{account, consent, demo, demo_logout, end_session, health, html_headers, login};

pub struct Application {
    port: u16,
    server: Server,
    /// The separate `/metrics` listener, when `metrics_bind` is set.
    metrics: Option<(u16, Server)>,
    state: Data<AppState>,
    /// The back-channel logout task; stopped when the server stops (or is dropped).
    backchannel: Option<crate::backchannel::Running>,
}

/// Everything the server needs before it listens; also what the CLI opens.
pub struct Backend {
    pub db: Database,
    pub key_secret: KeySecret,
}

/// Open the database, apply migrations and load the key secret. Blocking: call off the executor.
pub fn open_backend(settings: &Settings) -> anyhow::Result<Backend> {
    let key_secret = settings.key_secret.load()?;
    let options = PoolOptions {
        max_size: settings.db_pool_size,
        writer_queue: settings.writer_queue,
        ..PoolOptions::default()
    };
    let db = Database::open(&settings.database_url, &options)?;
    db.migrate()?;
    Ok(Backend { db, key_secret })
}

/// What runs beside the requests: the dummy password hash (so unknown users cost as much as
/// known ones from the first sign-in), WAL checkpoints and housekeeping.
async fn start_background_work(state: &Data<AppState>) {
    let warm = state.clone();
    tokio::spawn(async move {
        let _ = warm.hashing.run(crate::users::prepare_dummy_hash).await;
    });
    if let Err(e) = state.db.start_background_checkpoints().await {
        tracing::warn!(
            error = %e,
            "could not start background WAL checkpoints; SQLite will checkpoint inside commits"
        );
    }
    let settings = &state.settings;
    if settings.gc_interval > Seconds::ZERO {
        tokio::spawn(crate::housekeeping::run_periodically(
            state.db.clone(),
            state.clock.clone(),
            settings.access_token_ttl,
            settings.gc_interval.to_std(),
        ));
    }
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(settings: Settings, clock: SharedClock) -> anyhow::Result<Self> {
        settings.check_transport()?;
        crypto::install();
        let now = clock.now();
        let ttl = settings.access_token_ttl;
        let (db, key_set, enc, key_secret) = {
            let settings = settings.clone();
            tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let backend = open_backend(&settings)?;
                let enc = Arc::new(keys::KeyEncryption::new(&backend.key_secret));
                let set = backend.db.write_sync(|c| {
                    for kid in keys::ensure_signing_keys(c, &enc, now)? {
                        tracing::info!(%kid, "generated the first signing key of its algorithm");
                    }
                    keys::check_secret(c, &enc)?;
                    revocation_feed::new_epoch(c)?;
                    keys::KeySet::load(c, &enc, None, now, ttl)
                })?;
                Ok((backend.db, set, enc, backend.key_secret))
            })
            .await
            .context("start-up task failed")??
        };

        let listener = TcpListener::bind(settings.bind)
            .with_context(|| format!("cannot listen on {}", settings.bind))?;
        let addr = listener.local_addr()?;
        let issuer = jwt::issuer(settings.issuer.as_deref(), addr);
        let app_metrics = Metrics::with_storage(&db);
        let hashing = HashingPool::start(
            settings.limits.password_hash_workers,
            settings.limits.password_hash_queue,
            app_metrics.password_hashing_busy.clone(),
        )?;
        let state = Data::new(AppState {
            limits: Limits::from_settings(&settings),
            sign_in_policy: SignInPolicy::from_settings(&settings),
            username_keys: UsernameKeys::new(&key_secret),
            hashing,
            clients: ClientCache::new(settings.client_cache_ttl),
            keys: KeyRing::new(key_set, now, enc, ttl),
            settings: settings.clone(),
            successor_key: SuccessorKey::new(&key_secret),
            dpop: DpopCheck::new(settings.dpop, &key_secret),
            form_signer: FormSigner::new(&key_secret),
            metrics: app_metrics,
            cookies: CookieNames::for_issuer(&issuer),
            refresh_policy: RefreshPolicy::from_settings(&settings),
            key_secret,
            issuer,
            db,
            clock,
        });
        start_background_work(&state).await;
        let backchannel = crate::backchannel::start(state.clone())?;
        let server = run(listener, state.clone(), &settings)?;
        let metrics = settings
            .metrics_bind
            .map(|addr| serve_metrics(addr, state.clone()))
            .transpose()?;
        Ok(Self {
            port: addr.port(),
            server,
            metrics,
            state,
            backchannel: Some(backchannel),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn issuer(&self) -> &str {
        &self.state.issuer
    }

    pub fn state(&self) -> Data<AppState> {
        self.state.clone()
    }

    /// The port of the `/metrics` listener, if there is one.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }

    /// `serve`: run until SIGTERM or SIGINT, then stop accepting, let in-flight requests finish
    /// (at most `shutdown_timeout`), let back-channel logouts in flight finish (at most their
    /// timeout) and commit every queued write before returning.
    pub async fn run_until_signalled(mut self) -> anyhow::Result<()> {
        let handles: Vec<_> = std::iter::once(self.server.handle())
            .chain(self.metrics.as_ref().map(|(_, m)| m.handle()))
            .collect();
        let timeout = self.state.settings.shutdown_timeout;
        tokio::spawn(async move {
            let signal = shutdown_signal().await;
            tracing::info!(
                signal,
                timeout_seconds = timeout.get(),
                "shutting down: no new connections; in-flight requests finish"
            );
            for handle in handles {
                handle.stop(true).await;
            }
        });
        let state = self.state.clone();
        let backchannel = self.backchannel.take();
        self.run_until_stopped().await?;
        if let Some(backchannel) = backchannel {
            backchannel.finish().await;
        }
        state.db.flush().await?;
        tracing::info!("stopped: every accepted request was answered and every write committed");
        Ok(())
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        // Held until the server ends, or until this future is dropped (an embedder or a test
        // aborting it): either way the back-channel logout task stops with the server.
        let _backchannel = self.backchannel;
        match self.metrics {
            Some((_, metrics)) => futures_util::future::try_join(self.server, metrics)
                .await
                .map(|_| ()),
            None => self.server.await,
        }
    }
}

/// Prometheus `/metrics` on its own listener, so scrapers reach it on an internal address while
/// the public port never shows it.
fn serve_metrics(
    addr: std::net::SocketAddr,
    state: Data<AppState>,
) -> anyhow::Result<(u16, Server)> {
    let listener =
        TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr} for metrics"))?;
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/metrics", web::get().to(crate::metrics::endpoint))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    Ok((port, server))
}

fn no_store() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::CACHE_CONTROL, "no-store"))
        .add((header::PRAGMA, "no-cache"))
}

fn run(
    listener: TcpListener,
    state: Data<AppState>,
    settings: &Settings,
) -> anyhow::Result<Server> {
    let workers = settings.workers;
    // The demo app's received back-channel logouts, one store for all workers.
    let demo_logouts = Data::new(demo_logout::DemoLogouts::default());
    let server = HttpServer::new(move || {
        let demo = state.settings.demo;
        let observed = state.clone();
        App::new()
            .app_data(state.clone())
            .app_data(demo_logouts.clone())
            // A panic in a handler becomes a logged 500 `server_error`, never a dropped connection.
            .wrap_fn(|req, srv| {
                let fut = srv.call(req);
                async move {
                    match AssertUnwindSafe(fut).catch_unwind().await {
                        Ok(result) => result,
                        Err(_) => Err(OAuthError::server_error(
                            "request handler panicked",
                            &"panic",
                        )
                        .into()),
                    }
                }
            })
            // Outermost: request id, span, log line and metrics for every request.
            .wrap_fn(move |req, srv| request::observe(&observed, req, srv))
            .configure(|cfg| routes(cfg, demo))
    })
    .workers(workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())))
    .shutdown_timeout(settings.shutdown_timeout.to_std().as_secs())
    // `serve` handles SIGTERM and SIGINT itself (`run_until_signalled`): both drain in-flight
    // requests, where actix would stop at once on SIGINT. Embedders and tests stop it themselves.
    .disable_signals()
    .listen(listener)?
    .run();
    Ok(server)
}

/// A resource that names its pattern for request logs and metrics without an allocation per
/// request; every route here is registered through this.
fn resource(pattern: &'static str) -> Resource {
    web::resource(pattern).app_data(RoutePattern(pattern))
}

/// The HTTP contract of DESIGN.md.
fn routes(cfg: &mut web::ServiceConfig, demo: bool) {
    cfg.service(resource("/").route(web::get().to(health::index)))
        .service(resource("/healthz").route(web::get().to(health::healthz)))
        .service(
            resource("/.well-known/oauth-authorization-server")
                .wrap(from_fn(cors::open))
                .route(web::get().to(discovery::oauth_metadata)),
        )
        .service(
            resource("/.well-known/openid-configuration")
                .wrap(from_fn(cors::open))
                .route(web::get().to(discovery::openid_configuration)),
        )
        .service(
            resource("/jwks.json")
                .wrap(from_fn(cors::open))
                .route(web::get().to(jwks::jwks)),
        )
        .service(
            resource("/revocations")
                .route(web::get().to(revocations::feed))
                .route(web::post().to(revocations::feed)),
        )
        .service(resource("/static/lineage.css").route(web::get().to(stylesheet)))
        .service(
            resource("/token")
                .wrap(no_store())
                .wrap(from_fn(cors::per_client))
                .wrap(from_fn(limits::endpoint::guard))
                .route(web::post().to(token::token)),
        )
        .service(
            resource("/revoke")
                .wrap(no_store())
                .wrap(from_fn(cors::per_client))
                .wrap(from_fn(limits::endpoint::guard))
                .route(web::post().to(revoke::revoke)),
        )
        .service(
            resource("/userinfo")
                .wrap(no_store())
                .wrap(from_fn(cors::per_client))
                .wrap(from_fn(limits::endpoint::guard))
                .route(web::get().to(userinfo::userinfo))
                .route(web::post().to(userinfo::userinfo)),
        )
        .service(
            resource("/introspect")
                .wrap(no_store())
                .wrap(from_fn(limits::endpoint::guard))
                .route(web::post().to(introspect::introspect)),
        );
    let html = |pattern: &'static str| resource(pattern).wrap(html_headers());
    cfg.service(html("/authorize").route(web::get().to(authorize::authorize)))
        .service(
            html("/login")
                .route(web::get().to(login::login_page))
                .route(web::post().to(login::login)),
        )
        .service(html("/logout").route(web::post().to(login::logout)))
        .service(
            html("/logout/end-session")
                .route(web::get().to(end_session::start))
                .route(web::post().to(end_session::start)),
        )
        .service(html("/logout/end-session/confirm").route(web::post().to(end_session::confirm)))
        .service(html("/consent").route(web::post().to(consent::decide)))
        .service(html("/account").route(web::get().to(account::page)))
        .service(
            html("/account/families/{family_id}/revoke")
                .route(web::post().to(account::revoke_family)),
        )
        .service(
            html("/account/apps/{client_id}/remove").route(web::post().to(account::remove_app)),
        )
        .service(
            html("/account/sign-out-everywhere")
                .route(web::post().to(account::sign_out_everywhere)),
        )
        .service(html("/account/password").route(web::post().to(account::change_password)))
        .service(html("/account/profile").route(web::post().to(account::update_profile)));
    if demo {
        cfg.service(html("/demo").route(web::get().to(demo::index)))
            .service(html("/demo/start").route(web::get().to(demo::start)))
            .service(html("/demo/callback").route(web::get().to(demo::callback)))
            .service(html("/demo/refresh").route(web::post().to(demo::refresh)))
            .service(html("/demo/replay").route(web::post().to(demo::replay)))
            .service(html("/demo/steal").route(web::post().to(demo::steal)))
            .service(
                resource("/demo/backchannel-logout")
                    .wrap(no_store())
                    .route(web::post().to(demo_logout::receive)),
            );
    }
}

async fn stylesheet() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!("../static/lineage.css"))
}

/// The first of SIGTERM (service managers, `docker stop`, Kubernetes) or SIGINT (Ctrl-C).
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            },
            _ => {
                tracing::warn!("cannot listen for SIGTERM/SIGINT; stop the server by killing it");
                std::future::pending().await
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
