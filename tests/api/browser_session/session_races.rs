//! PostgreSQL: a code exchange that overlaps "sign out everywhere", a password change, signing
//! out with its devices, or "Remove access" must not leave a family alive afterwards. A trigger
//! that sleeps inside the exchange's family insert widens the window so the overlap is certain.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::sql_types::BigInt;
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};

use crate::helpers::{
    APP_REDIRECT, Backend, PASSWORD, TestApp, app_client, code_request, create_user, exchange,
    expect_tokens, pkce, refresh, spawn_app,
};

#[derive(QueryableByName)]
struct Waiting {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn slow_family_inserts(app: &TestApp) {
    let mut c = PgConnection::establish(&app.database.url_string()).expect("connect");
    c.batch_execute(
        "CREATE FUNCTION race_slow() RETURNS trigger AS $$ \
         BEGIN PERFORM pg_sleep(1); RETURN NEW; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER race_slow BEFORE INSERT ON refresh_families \
         FOR EACH ROW EXECUTE FUNCTION race_slow();",
    )
    .expect("trigger");
}

/// Wait until the exchange sits inside its family insert.
async fn exchange_in_flight(app: &TestApp) {
    let (name, mut admin) = app.database.postgres_admin().expect("PostgreSQL");
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let w: Waiting = diesel::sql_query(format!(
                "SELECT count(*) AS n FROM pg_stat_activity \
                 WHERE datname = '{name}' AND wait_event = 'PgSleep'"
            ))
            .get_result(&mut admin)
            .expect("pg_stat_activity");
            if w.n > 0 {
                return;
            }
            assert!(Instant::now() < deadline, "the exchange never started");
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .expect("join");
}

/// `action` = (path, extra form fields) posted from the browser that approved the code.
async fn race(path: &str, fields: &[(&str, &str)]) {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    let b = app.browser();
    let p = pkce();
    let code = b
        .code(
            &code_request(&client.id, APP_REDIRECT, "notes:read", &p),
            "alice",
            Some("laptop"),
        )
        .await;
    let csrf = b.account_csrf().await;
    slow_family_inserts(&app);
    let path = path.replace("{client}", &client.id);
    let mut form = vec![("csrf_token", csrf.as_str())];
    form.extend_from_slice(fields);
    let (exchanged, ()) = tokio::join!(
        exchange(&app, &client.id, &code, APP_REDIRECT, Some(&p.verifier)),
        async {
            exchange_in_flight(&app).await;
            let page = b.post(&path, &form).await;
            assert_eq!(page.status, 303, "{path}: {}", page.describe());
        }
    );
    if exchanged.status() == 200 {
        let tokens = expect_tokens(exchanged).await;
        let resp = refresh(&app, &client.id, &tokens.refresh_token).await;
        assert_ne!(
            resp.status(),
            200,
            "a refresh token issued in a race with {path} still works afterwards"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_racing_sign_out_everywhere_does_not_survive_it() {
    race("/account/sign-out-everywhere", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_racing_a_password_change_does_not_survive_it() {
    race(
        "/account/password",
        &[
            ("current_password", PASSWORD),
            ("new_password", "a brand new passphrase"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_racing_remove_access_does_not_survive_it() {
    race("/account/apps/{client}/remove", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_racing_sign_out_with_its_devices_does_not_survive_it() {
    race("/logout", &[("end_sessions", "on")]).await;
}
