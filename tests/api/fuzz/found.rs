//! What the properties found, kept as plain tests. A NUL in a client id or a username reached a
//! PostgreSQL lookup, which refuses it: a 500 there (SQLite merely found nothing). Form fields
//! and Basic credentials holding a NUL are now refused before any lookup, on both databases.

use reqwest::StatusCode;

use crate::helpers::*;

async fn a_nul_is_a_bad_request_not_a_server_error(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let page = app.browser().get("/authorize?client_id=%00").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.describe());

    let browser = app.browser();
    let login = browser.get("/login").await;
    let csrf = login.value("csrf_token").expect("csrf_token");
    let page = browser
        .post(
            "/login",
            &[
                ("csrf_token", &csrf),
                ("username", "alice\0"),
                ("password", "x"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.describe());

    let body = [("grant_type", "client_credentials"), ("client_id", "a\0")];
    assert_oauth_error(app.post_token(&body, None).await, 400, "invalid_request").await;
    let basic = basic_auth("a\0", "secret");
    let body = [("grant_type", "client_credentials")];
    assert_oauth_error(
        app.post_token(&body, Some(&basic)).await,
        401,
        "invalid_client",
    )
    .await;
}

both_backends!(a_nul_is_a_bad_request_not_a_server_error);
