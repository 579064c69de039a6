//! The sign-in page: the form, failures (401, generic, username kept), CSRF, `return_to`, the
//! session cookie's attributes and rotation, sign-out, and administrators ending sessions.

use reqwest::StatusCode;

use crate::helpers::{
    APP_REDIRECT, Backend, Browser, PASSWORD, app_client, assert_html_security_headers,
    code_request, create_user, is_signed_in, pkce, refresh, set_disabled, set_password,
    signed_in_tokens, spawn_app, spawn_app_with, tokens_in,
};

both_backends!(
    sign_in_page_has_the_form_clients_rely_on,
    wrong_password_is_401_with_a_generic_message_and_the_username_kept,
    unknown_user_gets_the_same_answer_as_a_wrong_password,
    sign_in_without_a_valid_csrf_token_is_refused,
    return_to_accepts_only_local_paths,
    session_cookie_is_httponly_and_samesite_lax,
    https_issuer_uses_host_prefixed_secure_cookies,
    session_id_changes_at_sign_in,
    logout_ends_the_browser_session,
    logout_with_end_sessions_revokes_the_families_it_started,
    admin_set_password_ends_browser_sessions_and_families,
    disabling_a_user_ends_sessions_and_refuses_sign_in,
    browser_session_ends_after_twelve_hours,
    values_from_the_request_are_escaped_on_the_sign_in_page,
);

const GENERIC: &str = "The username or password is incorrect.";

async fn sign_in_page_has_the_form_clients_rely_on(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let b = app.browser();
    let page = b.get("/login").await;
    assert_eq!(page.status, 200, "{}", page.describe());
    assert_html_security_headers(&page);
    assert!(
        !page.body.to_ascii_lowercase().contains("<script"),
        "no JavaScript needed"
    );
    let form = page.form("/login").expect("a form posting to /login");
    assert_eq!(
        form.tag
            .attr("method")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("post")
    );
    let input = |name: &str| {
        form.inputs()
            .into_iter()
            .find(|t| t.attr("name") == Some(name))
            .unwrap_or_else(|| panic!("input {name} in the sign-in form"))
    };
    assert_eq!(input("username").attr("type"), Some("text"));
    assert_eq!(input("password").attr("type"), Some("password"));
    assert_eq!(input("csrf_token").attr("type"), Some("hidden"));
    assert!(!input("csrf_token").attr("value").unwrap_or("").is_empty());
    assert_eq!(input("return_to").attr("type"), Some("hidden"));
    assert_eq!(input("return_to").attr("value"), Some("/account"));
    assert!(
        form.buttons()
            .iter()
            .any(|t| t.attr("type") == Some("submit")),
        "a submit button"
    );
    // The CSRF token is bound to a pre-session cookie, itself HttpOnly and SameSite=Lax.
    let pre = page
        .set_cookies()
        .into_iter()
        .find(|c| !c.is_removal())
        .expect("a pre-session cookie binds the form");
    assert!(pre.has("httponly"), "{}", pre.raw);
    assert_eq!(
        pre.attr("samesite").map(str::to_ascii_lowercase).as_deref(),
        Some("lax")
    );
    // The stylesheet the page links is served.
    let css = b.get("/static/lineage.css").await;
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").starts_with("text/css"));
}

async fn wrong_password_is_401_with_a_generic_message_and_the_username_kept(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    create_user(&app, "alice").await;
    let b = app.browser();
    let form = b.get("/login?return_to=%2Faccount%3Ftab%3D1").await;
    let resp = b
        .post(
            "/login",
            &[
                ("csrf_token", &form.value("csrf_token").expect("csrf")),
                ("return_to", "/account?tab=1"),
                ("username", "alice"),
                ("password", "not the password"),
            ],
        )
        .await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{}", resp.describe());
    assert_html_security_headers(&resp);
    assert!(resp.text().contains(GENERIC), "{}", resp.text());
    assert_eq!(
        resp.value("username").as_deref(),
        Some("alice"),
        "username kept"
    );
    assert_eq!(
        resp.value("password").unwrap_or_default(),
        "",
        "password not echoed"
    );
    assert!(!resp.body.contains("not the password"));
    assert_eq!(
        resp.value("return_to").as_deref(),
        Some("/account?tab=1"),
        "return_to kept"
    );
    assert!(
        resp.set_cookies()
            .iter()
            .all(|c| c.name != "lineage_session" || c.is_removal()),
        "no session on failure"
    );
    // The page is usable again: sign in with the right password from it.
    b.submit_login(&resp, "alice", PASSWORD).await;
    assert!(is_signed_in(&b).await);
    // The failed attempt is a security event on the account page.
    let account = b.get("/account").await;
    assert!(
        account.text().contains("wrong password"),
        "{}",
        account.text()
    );
}

async fn unknown_user_gets_the_same_answer_as_a_wrong_password(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    create_user(&app, "alice").await;
    let b = app.browser();
    let mut answers = Vec::new();
    for username in ["alice", "mallory"] {
        let form = b.get("/login").await;
        let resp = b
            .post(
                "/login",
                &[
                    ("csrf_token", &form.value("csrf_token").expect("csrf")),
                    ("return_to", "/account"),
                    ("username", username),
                    ("password", "wrong-password-1"),
                ],
            )
            .await;
        assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{}", resp.describe());
        assert!(resp.text().contains(GENERIC), "{username}: {}", resp.text());
        assert_eq!(resp.value("username").as_deref(), Some(username));
        // The pages differ only in the username and the per-request CSRF token.
        let normalised = resp
            .text()
            .replace(username, "USER")
            .replace(&resp.value("csrf_token").unwrap_or_default(), "CSRF");
        answers.push(normalised);
    }
    assert_eq!(
        answers[0], answers[1],
        "no user enumeration through the page"
    );
}

async fn sign_in_without_a_valid_csrf_token_is_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    create_user(&app, "alice").await;
    let b = app.browser();
    let form = b.get("/login").await;
    let good = form.value("csrf_token").expect("csrf");
    let credentials = [("username", "alice"), ("password", PASSWORD)];

    let attempts: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        (
            "wrong",
            Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into()),
        ),
        ("garbage", Some("not base64 !!".into())),
    ];
    for (what, token) in attempts {
        let mut fields = credentials.to_vec();
        if let Some(t) = &token {
            fields.push(("csrf_token", t));
        }
        let resp = b.post("/login", &fields).await;
        assert!(
            resp.status.is_client_error(),
            "{what} CSRF token: {}",
            resp.describe()
        );
        assert!(
            !is_signed_in(&b).await,
            "{what} CSRF token signed the browser in"
        );
    }

    // A token from another browser does not fit this browser's pre-session cookie.
    let other = app.browser();
    let theirs = other.get("/login").await.value("csrf_token").expect("csrf");
    let mut fields = credentials.to_vec();
    fields.push(("csrf_token", &theirs));
    let resp = b.post("/login", &fields).await;
    assert!(resp.status.is_client_error(), "{}", resp.describe());
    assert!(!is_signed_in(&b).await);

    // Nor does a good token without its cookie (a cross-site post from a fresh context).
    let fresh = app.browser();
    let mut fields = credentials.to_vec();
    fields.push(("csrf_token", &good));
    let resp = fresh.post("/login", &fields).await;
    assert!(resp.status.is_client_error(), "{}", resp.describe());
    assert!(!is_signed_in(&fresh).await);

    // The right token still works.
    let form = b.get("/login").await;
    b.submit_login(&form, "alice", PASSWORD).await;
    assert!(is_signed_in(&b).await);
}

async fn return_to_accepts_only_local_paths(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    create_user(&app, "alice").await;
    for (asked, expected) in [
        ("//evil.example/x", "/account"),
        ("https://evil.example/", "/account"),
        ("/\\evil.example", "/account"),
        ("javascript:alert(1)", "/account"),
        ("evil", "/account"),
        ("", "/account"),
        ("/account\r\nSet-Cookie: evil=1", "/account"),
        ("/%2F%2Fevil.example", "/%2F%2Fevil.example"),
        ("/account?x=1", "/account?x=1"),
        ("/authorize?client_id=c", "/authorize?client_id=c"),
    ] {
        let b = app.browser();
        // What the form offers…
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("return_to", asked)
            .finish();
        let form = b.get(&format!("/login?{query}")).await;
        assert_eq!(
            form.value("return_to").as_deref(),
            Some(expected),
            "form for {asked:?}"
        );
        // …and what the server does with a posted value, whatever the form said.
        let resp = b
            .post(
                "/login",
                &[
                    ("csrf_token", &form.value("csrf_token").expect("csrf")),
                    ("return_to", asked),
                    ("username", "alice"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.describe());
        assert_eq!(
            resp.location(),
            Some(expected),
            "after sign-in for {asked:?}"
        );
        // A signed-in browser visiting /login is sent on, by the same rule.
        let again = b.get(&format!("/login?{query}")).await;
        assert_eq!(again.status, StatusCode::SEE_OTHER);
        assert_eq!(again.location(), Some(expected), "signed in, {asked:?}");
    }
}

async fn session_cookie_is_httponly_and_samesite_lax(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    create_user(&app, "alice").await;
    let b = app.browser();
    let resp = b.sign_in("alice", PASSWORD).await;
    let session = resp
        .set_cookie("lineage_session")
        .unwrap_or_else(|| panic!("session cookie: {:?}", resp.set_cookies()));
    assert!(
        session.value.len() >= 32,
        "a long random id: {}",
        session.raw
    );
    assert!(session.has("httponly"), "{}", session.raw);
    assert_eq!(
        session
            .attr("samesite")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("lax"),
        "{}",
        session.raw
    );
    assert_eq!(session.attr("path"), Some("/"), "{}", session.raw);
    assert!(!session.has("secure"), "plain-http issuer: {}", session.raw);
    assert!(!session.has("domain"), "{}", session.raw);
    // The pre-session cookie of the form is removed at sign-in.
    let pre = resp.set_cookie("lineage_pre").expect("pre-session removal");
    assert!(pre.is_removal(), "{}", pre.raw);
    assert!(is_signed_in(&b).await);
    // The session lives in the database: a copy of the value alone does not survive the row.
    let copy = app.browser();
    copy.set_cookie("lineage_session", &session.value);
    assert!(is_signed_in(&copy).await, "the cookie value is the session");
    copy.set_cookie(
        "lineage_session",
        "forged-session-value-forged-session-value",
    );
    assert!(!is_signed_in(&copy).await);
}

async fn https_issuer_uses_host_prefixed_secure_cookies(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |s| {
        s.issuer = Some("https://auth.example".into());
    })
    .await
    else {
        return;
    };
    create_user(&app, "alice").await;
    let b = app.browser();
    let form = b.get("/login").await;
    let pre = form
        .set_cookie("__Host-lineage_pre")
        .unwrap_or_else(|| panic!("pre-session cookie: {:?}", form.set_cookies()));
    assert!(pre.has("secure") && pre.has("httponly"), "{}", pre.raw);
    let resp = b.submit_login(&form, "alice", PASSWORD).await;
    let session = resp
        .set_cookie("__Host-lineage_session")
        .unwrap_or_else(|| panic!("session cookie: {:?}", resp.set_cookies()));
    assert!(session.has("secure"), "{}", session.raw);
    assert!(session.has("httponly"), "{}", session.raw);
    assert_eq!(
        session
            .attr("samesite")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("lax")
    );
    // __Host- requires Path=/ and no Domain.
    assert_eq!(session.attr("path"), Some("/"), "{}", session.raw);
    assert!(!session.has("domain"), "{}", session.raw);
    assert!(
        resp.set_cookie("lineage_session").is_none(),
        "no unprefixed cookie"
    );
    assert!(is_signed_in(&b).await);
}

async fn session_id_changes_at_sign_in(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    create_user(&app, "alice").await;
    create_user(&app, "bob").await;
    // Fixation: a value planted before sign-in is not the one issued.
    let b = app.browser();
    let planted = "attacker-planted-session-value-0123456789";
    b.set_cookie("lineage_session", planted);
    b.sign_in("alice", PASSWORD).await;
    let first = b.cookie("lineage_session").expect("session");
    assert_ne!(first, planted);
    assert!(is_signed_in(&b).await);

    // Signing in again (here as someone else) issues a new id and ends the previous session.
    b.remove_cookie("lineage_session");
    let form = b.get("/login").await;
    b.set_cookie("lineage_session", &first);
    b.submit_login(&form, "bob", PASSWORD).await;
    let second = b.cookie("lineage_session").expect("session");
    assert_ne!(second, first, "a fresh id at every sign-in");
    let page = b.get("/account").await;
    assert!(page.text().contains("bob"), "{}", page.text());
    let old = app.browser();
    old.set_cookie("lineage_session", &first);
    assert!(!is_signed_in(&old).await, "the previous session ended");
}

async fn logout_ends_the_browser_session(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    create_user(&app, "alice").await;
    let b = app.browser();
    b.sign_in("alice", PASSWORD).await;
    let value = b.cookie("lineage_session").expect("session");
    let account = b.get("/account").await;
    let logout_form = account
        .form("/logout")
        .expect("a sign-out form on /account");
    let csrf = logout_form
        .value("csrf_token")
        .expect("csrf in the sign-out form");

    // Without the CSRF token nothing happens.
    let resp = b.post("/logout", &[]).await;
    assert!(resp.status.is_client_error(), "{}", resp.describe());
    assert!(is_signed_in(&b).await);

    let resp = b.post("/logout", &[("csrf_token", &csrf)]).await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.describe());
    assert_eq!(resp.location(), Some("/login"));
    let removal = resp
        .set_cookie("lineage_session")
        .expect("the session cookie is removed");
    assert!(removal.is_removal(), "{}", removal.raw);
    assert!(!is_signed_in(&b).await);
    // The server forgot the session: replaying the old cookie does not sign in.
    let replay = app.browser();
    replay.set_cookie("lineage_session", &value);
    assert!(!is_signed_in(&replay).await);
    // Signing out when not signed in is harmless.
    let resp = b.post("/logout", &[("csrf_token", &csrf)]).await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER);
}

async fn logout_with_end_sessions_revokes_the_families_it_started(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    // Browser A starts two families; browser B one.
    let (a, first) = signed_in_tokens(&app, &client, "notes:read", "alice", "laptop A").await;
    let second = tokens_in(&app, &a, &client, "notes:read", "alice", "laptop A again").await;
    let (b, other) = signed_in_tokens(&app, &client, "notes:read", "alice", "phone B").await;

    // A plain sign-out of B leaves its family alone.
    let csrf = b.account_csrf().await;
    let resp = b.post("/logout", &[("csrf_token", &csrf)]).await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER);
    let resp = refresh(&app, &client.id, &other.refresh_token).await;
    assert_eq!(
        resp.status(),
        200,
        "sign-out without end_sessions keeps apps signed in"
    );

    // A sign-out of A with end_sessions=on ends both families A started.
    let csrf = a.account_csrf().await;
    let resp = a
        .post("/logout", &[("csrf_token", &csrf), ("end_sessions", "on")])
        .await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER);
    assert!(!is_signed_in(&a).await);
    for t in [&first, &second] {
        crate::helpers::expect_invalid_grant(
            refresh(&app, &client.id, &t.refresh_token).await,
            "family started by the signed-out browser",
        )
        .await;
    }
    let f = crate::helpers::family(&app, &first.sid()).await;
    assert!(f.revoked_at.is_some(), "{f:?}");
}

async fn admin_set_password_ends_browser_sessions_and_families(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    create_user(&app, "bob").await;
    let (alice, tokens) = signed_in_tokens(&app, &client, "notes:read", "alice", "laptop").await;
    let bob = app.browser();
    bob.sign_in("bob", PASSWORD).await;

    set_password(&app, "alice", "a brand new password").await;
    assert!(
        !is_signed_in(&alice).await,
        "set-password ends browser sessions"
    );
    crate::helpers::expect_invalid_grant(
        refresh(&app, &client.id, &tokens.refresh_token).await,
        "set-password ends refresh families",
    )
    .await;
    assert!(is_signed_in(&bob).await, "other users are untouched");

    let again = app.browser();
    let form = again.get("/login").await;
    let resp = again
        .post(
            "/login",
            &[
                ("csrf_token", &form.value("csrf_token").expect("csrf")),
                ("return_to", "/account"),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        resp.status,
        StatusCode::UNAUTHORIZED,
        "the old password no longer works"
    );
    again
        .submit_login(&resp, "alice", "a brand new password")
        .await;
    assert!(is_signed_in(&again).await);
}

async fn disabling_a_user_ends_sessions_and_refuses_sign_in(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    let (alice, tokens) = signed_in_tokens(&app, &client, "notes:read", "alice", "laptop").await;
    // A code issued before the user was disabled is not exchangeable afterwards.
    let p = pkce();
    let pending = alice
        .code(
            &code_request(&client.id, APP_REDIRECT, "notes:read", &p),
            "alice",
            None,
        )
        .await;

    set_disabled(&app, "alice", true).await;
    assert!(!is_signed_in(&alice).await, "disable ends browser sessions");
    crate::helpers::expect_invalid_grant(
        refresh(&app, &client.id, &tokens.refresh_token).await,
        "disable ends refresh families",
    )
    .await;
    crate::helpers::expect_invalid_grant(
        crate::helpers::exchange(&app, &client.id, &pending, APP_REDIRECT, Some(&p.verifier)).await,
        "a disabled user's code",
    )
    .await;
    let b = Browser::new(&app.address, crate::helpers::CHROME_UA);
    let form = b.get("/login").await;
    let resp = b
        .post(
            "/login",
            &[
                ("csrf_token", &form.value("csrf_token").expect("csrf")),
                ("return_to", "/account"),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{}", resp.describe());
    assert!(resp.text().contains(GENERIC));

    set_disabled(&app, "alice", false).await;
    b.sign_in("alice", PASSWORD).await;
    assert!(
        is_signed_in(&b).await,
        "enabled again, the user can sign in"
    );
}

async fn browser_session_ends_after_twelve_hours(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    create_user(&app, "alice").await;
    let b = app.browser();
    let resp = b.sign_in("alice", PASSWORD).await;
    let cookie = resp.set_cookie("lineage_session").expect("session cookie");
    assert_eq!(cookie.attr("max-age"), Some("43200"), "{}", cookie.raw);
    app.clock.advance(12 * 3600 - 10);
    assert!(is_signed_in(&b).await);
    app.clock.advance(11);
    assert!(!is_signed_in(&b).await, "the session ended server-side too");
}

async fn values_from_the_request_are_escaped_on_the_sign_in_page(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let b = app.browser();
    let evil = "/x\"><script>alert(1)</script>";
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", evil)
        .finish();
    let page = b.get(&format!("/login?{query}")).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("<script>"), "{}", page.body);
    assert_eq!(
        page.value("return_to").as_deref(),
        Some(evil),
        "kept, escaped"
    );
    let resp = b
        .post(
            "/login",
            &[
                ("csrf_token", &page.value("csrf_token").expect("csrf")),
                ("return_to", "/account"),
                ("username", "<img src=x onerror=alert(1)>"),
                ("password", "whatever"),
            ],
        )
        .await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    assert!(!resp.body.contains("<img src=x"), "{}", resp.body);
    assert_eq!(
        resp.value("username").as_deref(),
        Some("<img src=x onerror=alert(1)>")
    );
}
