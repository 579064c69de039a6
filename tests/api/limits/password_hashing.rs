//! Password hashing runs in a bounded pool: when every worker and queue place is taken, a
//! sign-in is answered at once with 503 and `Retry-After` (the sign-in page, username kept)
//! instead of piling up threads and memory.

use reqwest::StatusCode;

use crate::helpers::{Backend, Browser, PASSWORD, create_user, spawn_app_with};

both_backends!(a_saturated_hashing_pool_answers_503_with_retry_after);

async fn a_saturated_hashing_pool_answers_503_with_retry_after(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| {
        s.limits.password_hash_workers = 1;
        s.limits.password_hash_queue = 0;
        s.limits.sign_in_ip_failures = None;
        s.metrics_bind = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await
    else {
        return;
    };
    create_user(&app, "alice").await;
    // Concurrent sign-ins (each a different username, so no back-off interferes) until one finds
    // the single worker busy. Bounded rounds: no timing is asserted, only that it happens.
    let mut busy = None;
    for round in 0..5 {
        let browsers: Vec<(Browser, String, String)> = {
            let mut v = Vec::new();
            for i in 0..16 {
                let b = app.browser();
                let csrf = b.get("/login").await.value("csrf_token").expect("csrf");
                v.push((b, format!("user-{round}-{i}"), csrf));
            }
            v
        };
        let attempts = browsers.iter().map(|(b, name, csrf)| async move {
            let form = [
                ("csrf_token", csrf.as_str()),
                ("return_to", "/account"),
                ("username", name.as_str()),
                ("password", "wrong password!"),
            ];
            b.post("/login", &form).await
        });
        let pages = futures_util::future::join_all(attempts).await;
        for page in &pages {
            assert!(
                page.status == StatusCode::UNAUTHORIZED
                    || page.status == StatusCode::SERVICE_UNAVAILABLE,
                "{}",
                page.describe()
            );
        }
        busy = pages
            .into_iter()
            .find(|p| p.status == StatusCode::SERVICE_UNAVAILABLE);
        if busy.is_some() {
            break;
        }
    }
    let page = busy.expect("a sign-in found every hashing place taken");
    assert_eq!(page.header("retry-after"), "1");
    assert!(page.text().contains("busy"), "{}", page.text());
    assert!(
        page.value("username")
            .is_some_and(|u| u.starts_with("user-"))
    );
    assert!(page.form("/login").is_some());
    let metrics = app.metrics_text().await;
    assert!(
        !metrics.contains("lineage_password_hashing_busy_total 0"),
        "{metrics}"
    );
    // Once the pool is free again, sign-ins work.
    let b = app.browser();
    b.sign_in("alice", PASSWORD).await;
}
