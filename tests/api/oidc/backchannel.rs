//! OpenID Connect Back-Channel Logout 1.0: a family that ends early makes lineage POST a signed
//! logout token to its client's `backchannel_logout_uri`, from a durable outbox, retried with
//! back-off, never in the way of a token request. A receiver on port 0 inside the test records
//! what arrives.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use lineage::clients;
use lineage::configuration::Settings;
use lineage::db::models::logout_deliveries;
use lineage::domain::{LogoutUri, Seconds};
use serde_json::{Value, json};

use crate::helpers::{
    Backend, CliDir, Fixture, TestApp, TestClient, app_client, assert_cli_ok, assert_oauth_error,
    cli_json, cli_stderr, create_user, decode_segment, family, lineage_cli, refresh_client,
    signed_in_tokens, spawn_app_on, spawn_app_with, start_family,
};

both_backends!(
    reuse_detection_sends_a_logout_token_that_verifies,
    device_revoke_and_admin_revoke_are_delivered,
    natural_expiry_and_deleted_clients_send_nothing,
    a_failed_delivery_is_retried_after_the_back_off,
    a_delivery_that_keeps_failing_is_given_up_and_collected,
    a_queued_logout_survives_a_restart,
    a_receiver_that_never_answers_holds_up_nothing,
    the_cli_sets_shows_and_clears_the_logout_uri,
);

/// The event a logout token carries (Back-Channel Logout 1.0 §2.4).
pub(super) const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// How long a test waits for the background task to send something.
const PATIENCE: Duration = Duration::from_secs(15);

/// Test settings: the outbox is also read every second (a revocation committed by the CLI, or
/// a retry made due by moving the clock, is found on that tick), and metrics are served.
pub(super) fn quick(s: &mut Settings) {
    s.backchannel.interval = Seconds::new(1);
    s.metrics_bind = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Answer {
    Status(u16),
    /// Never answer.
    Hang,
}

#[derive(Debug, Clone)]
pub(super) struct Received {
    pub(super) content_type: String,
    body: String,
}

impl Received {
    /// The `logout_token` form parameter.
    pub(super) fn logout_token(&self) -> String {
        let params: Vec<(String, String)> = url::form_urlencoded::parse(self.body.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(params.len(), 1, "one parameter: {}", self.body);
        assert_eq!(params[0].0, "logout_token", "{}", self.body);
        params[0].1.clone()
    }

    pub(super) fn claims(&self) -> Value {
        let token = self.logout_token();
        decode_segment(token.split('.').nth(1).expect("a JWS"))
    }
}

/// An app's back-channel logout endpoint: records every POST and answers from its script, then
/// with its default answer.
#[derive(Clone)]
pub(super) struct Receiver {
    pub(super) url: String,
    got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    default: Arc<Mutex<Answer>>,
}

impl Receiver {
    pub(super) async fn start(script: &[Answer], default: Answer) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        let port = listener.local_addr().expect("receiver address").port();
        let receiver = Self {
            url: format!("http://127.0.0.1:{port}/backchannel-logout"),
            got: Arc::default(),
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            default: Arc::new(Mutex::new(default)),
        };
        let shared = receiver.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(shared.clone()))
                .default_service(web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        tokio::spawn(server);
        receiver
    }

    fn answer_from_now(&self, answer: Answer) {
        *self.default.lock().unwrap() = answer;
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Wait (bounded) until at least `n` POSTs have arrived.
    pub(super) async fn wait_for(&self, n: usize) -> Vec<Received> {
        let started = std::time::Instant::now();
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "expected {n} logout POSTs, got {}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn receive(req: HttpRequest, body: web::Bytes, r: web::Data<Receiver>) -> HttpResponse {
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    r.got.lock().unwrap().push(Received {
        content_type,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let next = r.script.lock().unwrap().pop_front();
    let answer = next.unwrap_or_else(|| *r.default.lock().unwrap());
    match answer {
        Answer::Status(code) => {
            HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap()).finish()
        }
        Answer::Hang => {
            std::future::pending::<()>().await;
            HttpResponse::Ok().finish()
        }
    }
}

/// Register `uri` as the client's back-channel logout URI through the library.
pub(super) async fn set_logout_uri(app: &TestApp, client_id: &str, uri: &str) {
    let (id, uri, now) = (
        client_id.to_string(),
        LogoutUri::parse(uri).unwrap(),
        app.now(),
    );
    app.db
        .write(move |c| clients::set_backchannel_logout_uri(c, &id, Some(&uri), now))
        .await
        .expect("set the logout URI");
}

async fn counts(app: &TestApp, client_id: &str) -> logout_deliveries::DeliveryCounts {
    let id = client_id.to_string();
    app.db
        .read(move |c| logout_deliveries::counts_for_client(c, &id))
        .await
        .expect("delivery counts")
}

/// Rotate twice and present the first token again: reuse, the family is revoked.
async fn detect_reuse(app: &TestApp, client: &TestClient, user_id: &str) -> String {
    let (family_id, first) = start_family(app, user_id, &client.id, "read").await;
    let second = crate::helpers::refresh_ok(app, client, &first).await;
    crate::helpers::refresh_ok(app, client, &second.refresh_token).await;
    let resp = crate::helpers::refresh_as(app, client, &first, None).await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
    assert_eq!(
        family(app, &family_id).await.revoked_reason.as_deref(),
        Some("reuse_detected")
    );
    family_id
}

/// Verify a logout token's signature against the server's JWKS and return its header.
async fn verify_logout_token(app: &TestApp, token: &str) -> Value {
    let (header, _) = super::verify_jws(token, &app.jwks().await, "logout+jwt")
        .unwrap_or_else(|e| panic!("the logout token verifies with a published key: {e}"));
    header
}

async fn reuse_detection_sends_a_logout_token_that_verifies(backend: Backend) {
    let Some(fx) = Fixture::new(backend, quick).await else {
        return;
    };
    let app = &fx.app;
    let receiver = Receiver::start(&[], Answer::Status(200)).await;
    set_logout_uri(app, &fx.client.id, &receiver.url).await;
    let family_id = detect_reuse(app, &fx.client, &fx.user.id).await;

    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].content_type, "application/x-www-form-urlencoded");
    let token = got[0].logout_token();
    let header = verify_logout_token(app, &token).await;
    assert_eq!(header["alg"], "RS256", "signed like the client's ID tokens");
    assert_eq!(header["typ"], "logout+jwt");
    let claims = got[0].claims();
    assert_eq!(claims["iss"], app.issuer.as_str());
    assert_eq!(claims["aud"], fx.client.id.as_str());
    assert_eq!(claims["sub"], fx.user.id.as_str());
    assert_eq!(claims["sid"], family_id.as_str());
    assert_eq!(claims["events"], json!({ EVENT: {} }));
    assert!(claims.get("nonce").is_none(), "never a nonce: {claims}");
    let iat = claims["iat"].as_i64().expect("iat");
    assert_eq!(iat, app.now());
    let exp = claims["exp"].as_i64().expect("exp");
    assert!(exp > iat && exp - iat <= 300, "a short lifetime: {claims}");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));

    // Recorded as delivered, once.
    let started = std::time::Instant::now();
    while counts(app, &fx.client.id).await.delivered < 1 {
        assert!(started.elapsed() < PATIENCE, "the delivery is recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let c = counts(app, &fx.client.id).await;
    assert_eq!((c.pending, c.delivered, c.given_up), (0, 1, 0));
    assert_eq!(receiver.received().len(), 1);
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("lineage_backchannel_logout_deliveries_total{outcome=\"delivered\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lineage_backchannel_logout_pending 0"),
        "{metrics}"
    );
}

async fn device_revoke_and_admin_revoke_are_delivered(backend: Backend) {
    let Some(app) = spawn_app_with(backend, quick).await else {
        return;
    };
    let receiver = Receiver::start(&[], Answer::Status(200)).await;
    let client = app_client(&app, "notes:read").await;
    set_logout_uri(&app, &client.id, &receiver.url).await;
    let alice = create_user(&app, "alice").await;

    // The user revokes a device on /account.
    let (b, laptop) = signed_in_tokens(&app, &client, "notes:read", "alice", "Laptop").await;
    b.revoke_device(&laptop.sid()).await;
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].claims()["sid"], laptop.sid().as_str());
    assert_eq!(got[0].claims()["sub"], alice.id.as_str());

    // An administrator revokes a family from the command line (another process): the server
    // finds the queued row on its periodic look at the outbox.
    let (phone, _) = start_family(&app, &alice.id, &client.id, "notes:read").await;
    let dir = CliDir::new();
    let revoked = cli_json(&app, &dir, &["family", "revoke", &phone, "--json"]);
    assert!(revoked.is_object(), "{revoked}");
    // The CLI queued it at the system clock's time, which runs ahead of the server's manual
    // clock: bring the server's clock past it, as in a deployment where both read one clock.
    app.clock.advance(60);
    let got = receiver.wait_for(2).await;
    assert_eq!(got[1].claims()["sid"], phone.as_str());
    assert_eq!(
        family(&app, &phone).await.revoked_reason.as_deref(),
        Some("revoked_by_admin")
    );
}

async fn natural_expiry_and_deleted_clients_send_nothing(backend: Backend) {
    let Some(fx) = Fixture::new(backend, quick).await else {
        return;
    };
    let app = &fx.app;
    let receiver = Receiver::start(&[], Answer::Status(200)).await;
    set_logout_uri(app, &fx.client.id, &receiver.url).await;
    let (expired, token) = fx.start().await;

    // A client that is deleted: its families end (client_deleted), and it is told nothing.
    let doomed = refresh_client(app, "read").await;
    set_logout_uri(app, &doomed.id, &receiver.url).await;
    let (orphan, _) = start_family(app, &fx.user.id, &doomed.id, "read").await;
    app.delete_client(&doomed.id).await;
    assert_eq!(
        family(app, &orphan).await.revoked_reason.as_deref(),
        Some("client_deleted")
    );

    // The idle timeout passes: the family ends by itself, which is not a logout to announce.
    app.clock.advance(app.settings.refresh_idle_ttl.get() + 1);
    let resp = fx.refresh(&token).await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
    let now = app.now();
    let ttl = app.settings.access_token_ttl;
    app.db
        .write(move |c| lineage::housekeeping::collect_all(c, now, ttl))
        .await
        .expect("housekeeping");

    // A reuse afterwards is delivered, and is the only thing that ever was.
    let marker = detect_reuse(app, &fx.client, &fx.user.id).await;
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].claims()["sid"], marker.as_str());
    for (id, why) in [(&expired, "expiry"), (&orphan, "a deleted client")] {
        let id = id.clone();
        let queued: i64 = app
            .db
            .read(move |c| {
                use diesel::prelude::*;
                use lineage::db::schema::logout_deliveries::dsl as d;
                d::logout_deliveries
                    .filter(d::family_id.eq(id))
                    .count()
                    .get_result::<i64>(c)
                    .map_err(lineage::db::StoreError::from)
            })
            .await
            .unwrap();
        assert_eq!(queued, 0, "nothing queued for {why}");
    }
    assert_eq!(counts(app, &doomed.id).await.pending, 0);
    assert_eq!(receiver.received().len(), 1);
}

async fn a_failed_delivery_is_retried_after_the_back_off(backend: Backend) {
    let Some(fx) = Fixture::new(backend, quick).await else {
        return;
    };
    let app = &fx.app;
    let receiver = Receiver::start(&[Answer::Status(500)], Answer::Status(200)).await;
    set_logout_uri(app, &fx.client.id, &receiver.url).await;
    let family_id = detect_reuse(app, &fx.client, &fx.user.id).await;
    receiver.wait_for(1).await;
    let started = std::time::Instant::now();
    loop {
        let c = counts(app, &fx.client.id).await;
        if c.last_error.is_some() {
            assert_eq!((c.pending, c.delivered, c.given_up), (1, 0, 0));
            assert!(
                c.last_error.as_deref().unwrap_or("").contains("500"),
                "{c:?}"
            );
            break;
        }
        assert!(started.elapsed() < PATIENCE, "the failure is recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Before the first back-off (10 s) has passed on the server's clock, nothing is sent again,
    // however many times the task looks (every second here).
    app.clock.advance(9);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(receiver.received().len(), 1, "no retry before the back-off");

    app.clock.advance(2);
    let got = receiver.wait_for(2).await;
    assert_eq!(got[1].claims()["sid"], family_id.as_str());
    // Signed when sent: a fresh token for the retry.
    assert_eq!(got[1].claims()["iat"].as_i64(), Some(app.now()));
    assert_ne!(got[0].claims()["jti"], got[1].claims()["jti"]);
    let started = std::time::Instant::now();
    while counts(app, &fx.client.id).await.delivered < 1 {
        assert!(started.elapsed() < PATIENCE, "the retry is recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let c = counts(app, &fx.client.id).await;
    assert_eq!((c.pending, c.delivered, c.given_up), (0, 1, 0));
    let metrics = app.metrics_text().await;
    for outcome in ["failed", "delivered"] {
        let line =
            format!("lineage_backchannel_logout_deliveries_total{{outcome=\"{outcome}\"}} 1");
        assert!(metrics.contains(&line), "{line}: {metrics}");
    }
}

async fn a_delivery_that_keeps_failing_is_given_up_and_collected(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |s| {
        quick(s);
        s.backchannel.max_attempts = 2;
    })
    .await
    else {
        return;
    };
    let app = &fx.app;
    let receiver = Receiver::start(&[], Answer::Status(500)).await;
    set_logout_uri(app, &fx.client.id, &receiver.url).await;
    detect_reuse(app, &fx.client, &fx.user.id).await;
    receiver.wait_for(1).await;
    let started = std::time::Instant::now();
    while counts(app, &fx.client.id).await.last_error.is_none() {
        assert!(started.elapsed() < PATIENCE, "the failure is recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.clock.advance(11);
    receiver.wait_for(2).await;
    let started = std::time::Instant::now();
    let c = loop {
        let c = counts(app, &fx.client.id).await;
        if c.given_up == 1 {
            break c;
        }
        assert!(started.elapsed() < PATIENCE, "given up: {c:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!((c.pending, c.delivered), (0, 0));
    assert!(
        c.last_error.as_deref().unwrap_or("").contains("500"),
        "{c:?}"
    );
    let metrics = app.metrics_text().await;
    for outcome in ["failed", "given_up"] {
        let line =
            format!("lineage_backchannel_logout_deliveries_total{{outcome=\"{outcome}\"}} 1");
        assert!(metrics.contains(&line), "{line}: {metrics}");
    }
    // No third attempt, however long one waits.
    app.clock.advance(3600);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(receiver.received().len(), 2);

    // Housekeeping collects the finished row after its retention (a week).
    let collect = |now: i64| {
        let ttl = app.settings.access_token_ttl;
        app.db
            .write(move |c| lineage::housekeeping::collect_all(c, now, ttl))
    };
    let report = collect(app.now()).await.expect("housekeeping");
    assert_eq!(report.logout_deliveries, 0, "kept for a week");
    let week = lineage::housekeeping::LOGOUT_DELIVERY_RETENTION.get();
    let report = collect(app.now() + week + 1).await.expect("housekeeping");
    assert_eq!(report.logout_deliveries, 1);
    assert_eq!(counts(app, &fx.client.id).await, Default::default());
}

async fn a_queued_logout_survives_a_restart(backend: Backend) {
    let Some(fx) = Fixture::new(backend, quick).await else {
        return;
    };
    let receiver = Receiver::start(&[], Answer::Status(503)).await;
    set_logout_uri(&fx.app, &fx.client.id, &receiver.url).await;
    let family_id = detect_reuse(&fx.app, &fx.client, &fx.user.id).await;
    receiver.wait_for(1).await;
    let started = std::time::Instant::now();
    while counts(&fx.app, &fx.client.id).await.last_error.is_none() {
        assert!(started.elapsed() < PATIENCE, "the failure is recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Stop the server; the row waits in the database. A new server on the same database (on
    // another port, so another issuer) delivers it once it is due.
    let (database, clock) = (fx.app.database.clone(), fx.app.clock.clone());
    let old_issuer = fx.app.issuer.clone();
    drop(fx.app);
    receiver.answer_from_now(Answer::Status(200));
    let app = spawn_app_on(database, clock, quick).await;
    assert_ne!(app.issuer, old_issuer);
    app.clock.advance(11);
    let got = receiver.wait_for(2).await;
    let claims = got[1].claims();
    assert_eq!(claims["sid"], family_id.as_str());
    assert_eq!(claims["iss"], app.issuer.as_str(), "sent by the new server");
    verify_logout_token(&app, &got[1].logout_token()).await;
}

async fn a_receiver_that_never_answers_holds_up_nothing(backend: Backend) {
    let Some(fx) = Fixture::new(backend, |s| {
        quick(s);
        s.backchannel.timeout = Seconds::new(60);
    })
    .await
    else {
        return;
    };
    let app = &fx.app;
    let dead = Receiver::start(&[], Answer::Hang).await;
    let alive = Receiver::start(&[], Answer::Status(200)).await;
    set_logout_uri(app, &fx.client.id, &dead.url).await;
    let other = refresh_client(app, "read").await;
    set_logout_uri(app, &other.id, &alive.url).await;

    // The reuse is answered although its client's logout endpoint never answers.
    let started = std::time::Instant::now();
    detect_reuse(app, &fx.client, &fx.user.id).await;
    dead.wait_for(1).await;
    // Token requests go on while that POST hangs …
    let (_, token) = fx.start().await;
    fx.rotate(&token).await;
    // … and another client's logout is delivered meanwhile.
    let sid = detect_reuse(app, &other, &fx.user.id).await;
    let got = alive.wait_for(1).await;
    assert_eq!(got[0].claims()["sid"], sid.as_str());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "nothing waited for the hanging receiver ({:?})",
        started.elapsed()
    );
    let c = counts(app, &fx.client.id).await;
    assert_eq!((c.pending, c.delivered), (1, 0), "still in flight: {c:?}");
}

async fn the_cli_sets_shows_and_clears_the_logout_uri(backend: Backend) {
    let Some(app) = spawn_app_with(backend, quick).await else {
        return;
    };
    let dir = CliDir::new();
    let receiver = Receiver::start(&[], Answer::Status(200)).await;
    let created = cli_json(
        &app,
        &dir,
        &[
            "client",
            "create",
            "--name",
            "notes",
            "--grant",
            "authorization_code,refresh_token",
            "--redirect-uri",
            "https://notes.example/cb",
            "--scope",
            "read",
            "--backchannel-logout-uri",
            &receiver.url,
            "--json",
        ],
    );
    let id = created["client_id"]
        .as_str()
        .expect("client_id")
        .to_string();
    assert_eq!(created["backchannel_logout_uri"], receiver.url.as_str());

    let alice = create_user(&app, "alice").await;
    let client = TestClient {
        id: id.clone(),
        secret: created["client_secret"].as_str().unwrap().to_string(),
    };
    detect_reuse(&app, &client, &alice.id).await;
    receiver.wait_for(1).await;
    let started = std::time::Instant::now();
    let shown = loop {
        let shown = cli_json(&app, &dir, &["client", "show", &id, "--json"]);
        if shown["backchannel_logout"]["delivered"] == 1 {
            break shown;
        }
        assert!(started.elapsed() < PATIENCE, "delivered: {shown}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(shown["backchannel_logout_uri"], receiver.url.as_str());
    assert_eq!(shown["backchannel_logout"]["pending"], 0);
    assert_eq!(shown["backchannel_logout"]["given_up"], 0);
    assert_eq!(shown["backchannel_logout"]["last_error"], Value::Null);

    // Plain http to another host, and fragments, are refused.
    for bad in [
        "http://notes.example/logout",
        "https://notes.example/logout#x",
    ] {
        let out = lineage_cli(
            &app,
            &dir,
            &["client", "update", &id, "--backchannel-logout-uri", bad],
        );
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", cli_stderr(&out));
        assert!(cli_stderr(&out).contains("back-channel logout URI"));
    }
    let https = "https://notes.example/backchannel-logout";
    let updated = cli_json(
        &app,
        &dir,
        &[
            "client",
            "update",
            &id,
            "--backchannel-logout-uri",
            https,
            "--json",
        ],
    );
    assert_eq!(updated["backchannel_logout_uri"], https);
    let out = lineage_cli(
        &app,
        &dir,
        &["client", "update", &id, "--no-backchannel-logout-uri"],
    );
    assert_cli_ok(&out);
    let shown = cli_json(&app, &dir, &["client", "show", &id, "--json"]);
    assert_eq!(shown["backchannel_logout_uri"], Value::Null);
    assert_eq!(shown["backchannel_logout"]["delivered"], 1);

    // Without a URI, a revocation queues nothing.
    detect_reuse(&app, &client, &alice.id).await;
    assert_eq!(counts(&app, &id).await.pending, 0);
}
