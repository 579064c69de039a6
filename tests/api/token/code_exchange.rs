//! `grant_type=authorization_code`: the exchange (exact redirect URI, S256 verifier), the family
//! it starts, and every way a code is refused; a replayed code revokes its family.

use serde_json::Value;

use crate::helpers::{
    APP_REDIRECT, APP_UA, Backend, app_client, app_spec, assert_no_store, authorize_path,
    basic_auth, code_request, create_user, exchange, expect_invalid_grant, expect_tokens, family,
    pkce, refresh, register, signed_in_tokens, spawn_app, token_request, verify_jwt,
    web_app_client,
};

both_backends!(
    code_exchange_returns_tokens_and_starts_a_named_family,
    wrong_or_missing_verifier_is_invalid_grant,
    wrong_redirect_uri_is_invalid_grant,
    expired_code_is_invalid_grant,
    code_of_another_client_is_invalid_grant,
    failed_exchange_spends_the_code,
    replayed_code_revokes_the_family_it_started,
    confidential_client_pkce_is_optional_but_enforced_if_sent,
    garbage_code_is_invalid_grant,
    code_issued_before_sign_out_everywhere_is_refused,
    code_issued_before_a_password_change_is_refused,
    a_client_without_the_refresh_grant_gets_no_refresh_token,
);

async fn code_exchange_returns_tokens_and_starts_a_named_family(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read notes:write").await;
    let user_id = create_user(&app, "alice").await.id;
    let b = app.browser();
    let p = pkce();
    let code = b
        .code(
            &code_request(&client.id, APP_REDIRECT, "notes:read", &p),
            "alice",
            Some("Alice's work laptop"),
        )
        .await;
    let resp = exchange(&app, &client.id, &code, APP_REDIRECT, Some(&p.verifier)).await;
    assert_no_store(resp.headers());
    let tokens = expect_tokens(resp).await;
    let body = &tokens.body;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(
        body["scope"], "notes:read",
        "the scope asked for, not all the client may have"
    );
    assert_eq!(body["expires_in"], app.settings.access_token_ttl.get());
    uuid::Uuid::parse_str(&tokens.refresh_token).expect("the refresh token is a UUID");

    let jwt = verify_jwt(&tokens.access_token, &app.jwks().await)
        .unwrap_or_else(|e| panic!("access token does not verify: {e}"));
    let c = &jwt.claims;
    assert_eq!(c["iss"], app.issuer);
    assert_eq!(c["sub"], user_id, "sub is the user");
    assert_eq!(c["client_id"], client.id);
    assert_eq!(c["aud"], "https://notes.example");
    assert_eq!(c["scope"], "notes:read");
    assert_eq!(c["preferred_username"], "alice");
    let sid = c["sid"].as_str().expect("sid").to_string();

    // The family: user, client, the device name typed on the consent page, and the user agent
    // and address of the exchange (the app's, not the browser's).
    let f = family(&app, &sid).await;
    assert_eq!(f.user_id, user_id);
    assert_eq!(f.client_id, client.id);
    assert_eq!(f.scope, "notes:read");
    assert_eq!(f.device_name.as_deref(), Some("Alice's work laptop"));
    assert_eq!(f.user_agent.as_deref(), Some(APP_UA));
    assert_eq!(f.ip.as_deref(), Some("127.0.0.1"));
    assert!(f.revoked_at.is_none());

    // The refresh token rotates.
    let next = expect_tokens(refresh(&app, &client.id, &tokens.refresh_token).await).await;
    assert_ne!(next.refresh_token, tokens.refresh_token);
    assert_eq!(next.sid(), sid, "same family");
}

async fn wrong_or_missing_verifier_is_invalid_grant(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    let b = app.browser();
    let other = pkce();
    let cases: [(&str, Option<&str>); 4] = [
        ("another verifier", Some(other.verifier.as_str())),
        ("missing verifier", None),
        ("the challenge itself", None),
        ("a malformed verifier", Some("short")),
    ];
    for (what, verifier) in cases {
        let p = pkce();
        let code = b
            .code(
                &code_request(&client.id, APP_REDIRECT, "notes:read", &p),
                "alice",
                None,
            )
            .await;
        let verifier = if what == "the challenge itself" {
            Some(p.challenge.as_str())
        } else {
            verifier
        };
        expect_invalid_grant(
            exchange(&app, &client.id, &code, APP_REDIRECT, verifier).await,
            what,
        )
        .await;
    }
}

async fn wrong_redirect_uri_is_invalid_grant(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    let b = app.browser();
    for redirect in [
        "http://127.0.0.1:9876/callback/",
        "http://127.0.0.1:9877/callback",
        "http://127.0.0.1/callback",
        "https://app.example/cb",
    ] {
        let p = pkce();
        let code = b
            .code(
                &code_request(&client.id, APP_REDIRECT, "notes:read", &p),
                "alice",
                None,
            )
            .await;
        expect_invalid_grant(
            exchange(&app, &client.id, &code, redirect, Some(&p.verifier)).await,
            redirect,
        )
        .await;
    }
    // redirect_uri is required at the token endpoint.
    let p = pkce();
    let code = b
        .code(
            &code_request(&client.id, APP_REDIRECT, "notes:read", &p),
            "alice",
            None,
        )
        .await;
    let resp = token_request(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client.id),
            ("code", &code),
            ("code_verifier", &p.verifier),
        ],
    )
    .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("JSON");
    assert_eq!(body["error"], "invalid_request", "{body}");
    // Refused before anything was spent: with the redirect_uri the code still works.
    expect_tokens(exchange(&app, &client.id, &code, APP_REDIRECT, Some(&p.verifier)).await).await;

    // RFC 6749 §4.1.3: an authorization request without redirect_uri (one is registered) needs
    // none at the token endpoint either.
    let p = pkce();
    let params = [
        ("response_type", "code"),
        ("client_id", client.id.as_str()),
        ("scope", "notes:read"),
        ("state", "xyz-state"),
        ("code_challenge", p.challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let code = b.code(&authorize_path(&params), "alice", None).await;
    expect_tokens(
        token_request(
            &app,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", &client.id),
                ("code", &code),
                ("code_verifier", &p.verifier),
            ],
        )
        .await,
    )
    .await;
}

async fn expired_code_is_invalid_grant(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    let b = app.browser();
    // Just inside the 60 s lifetime: fine.
    let p = pkce();
    let code = b
        .code(
            &code_request(&client.id, APP_REDIRECT, "notes:read", &p),
            "alice",
            None,
        )
        .await;
    app.clock.advance(59);
    expect_tokens(exchange(&app, &client.id, &code, APP_REDIRECT, Some(&p.verifier)).await).await;
    // Past it: refused.
    let p = pkce();
    let code = b
        .code(
            &code_request(&client.id, APP_REDIRECT, "notes:read", &p),
            "alice",
            None,
        )
        .await;
    app.clock.advance(61);
    expect_invalid_grant(
        exchange(&app, &client.id, &code, APP_REDIRECT, Some(&p.verifier)).await,
        "code older than 60 s",
    )
    .await;
}

async fn code_of_another_client_is_invalid_grant(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    let thief = app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    let b = app.browser();
    let p = pkce();
    let code = b
        .code(
            &code_request(&client.id, APP_REDIRECT, "notes:read", &p),
            "alice",
            None,
        )
        .await;
    expect_invalid_grant(
        exchange(&app, &thief.id, &code, APP_REDIRECT, Some(&p.verifier)).await,
        "code issued to another client",
    )
    .await;
    // Another client's attempt spent nothing: the code still works for its own client.
    let tokens =
        expect_tokens(exchange(&app, &client.id, &code, APP_REDIRECT, Some(&p.verifier)).await)
            .await;
    // A replay by another client does not revoke the family; only the right client's does.
    expect_invalid_grant(
        exchange(&app, &thief.id, &code, APP_REDIRECT, Some(&p.verifier)).await,
        "used code presented by another client",
    )
    .await;
    let f = family(&app, &tokens.sid()).await;
    assert!(f.revoked_at.is_none(), "{f:?}");
    expect_tokens(refresh(&app, &client.id, &tokens.refresh_token).await).await;
}

async fn failed_exchange_spends_the_code(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
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
            None,
        )
        .await;
    expect_invalid_grant(
        exchange(
            &app,
            &client.id,
            &code,
            APP_REDIRECT,
            Some(&pkce().verifier),
        )
        .await,
        "wrong verifier",
    )
    .await;
    // No second guess: the right verifier no longer helps.
    expect_invalid_grant(
        exchange(&app, &client.id, &code, APP_REDIRECT, Some(&p.verifier)).await,
        "right verifier after a wrong one",
    )
    .await;
}

async fn replayed_code_revokes_the_family_it_started(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
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
            Some("tablet"),
        )
        .await;
    let first =
        expect_tokens(exchange(&app, &client.id, &code, APP_REDIRECT, Some(&p.verifier)).await)
            .await;
    // The same code again, even with everything right.
    expect_invalid_grant(
        exchange(&app, &client.id, &code, APP_REDIRECT, Some(&p.verifier)).await,
        "code presented twice",
    )
    .await;
    // The family the code started is revoked: its refresh token fails.
    expect_invalid_grant(
        refresh(&app, &client.id, &first.refresh_token).await,
        "refresh of a family whose code was replayed",
    )
    .await;
    let f = family(&app, &first.sid()).await;
    assert!(f.revoked_at.is_some(), "{f:?}");
    // The access token is inactive at introspection too (the service client authenticates).
    let service = app.create_client("notes:read").await;
    let resp = app
        .api
        .post(app.url("/introspect"))
        .header("Authorization", basic_auth(&service.id, &service.secret))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("token={}", first.access_token))
        .send()
        .await
        .expect("introspect");
    let body: Value = resp.json().await.expect("JSON");
    assert_eq!(body["active"], false, "{body}");
    // The user sees why on the account page.
    let account = b.get("/account").await;
    assert!(
        account.text().contains("authorization code was used twice"),
        "{}",
        account.text()
    );
    // Another family of the same user and client is not affected.
    let (_, other) = signed_in_tokens(&app, &client, "notes:read", "alice", "phone").await;
    expect_tokens(refresh(&app, &client.id, &other.refresh_token).await).await;
}

async fn confidential_client_pkce_is_optional_but_enforced_if_sent(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let web = web_app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    let b = app.browser();
    let redirect = "https://web.example/cb";
    let secret_exchange = |code: String, verifier: Option<String>| {
        let (app, web) = (&app, &web);
        async move {
            let mut params = vec![
                ("grant_type", "authorization_code".to_string()),
                ("code", code),
                ("redirect_uri", redirect.to_string()),
            ];
            if let Some(v) = verifier {
                params.push(("code_verifier", v));
            }
            let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.token_basic(web, &pairs).await
        }
    };
    let without = |state: &str| {
        authorize_path(&[
            ("response_type", "code"),
            ("client_id", &web.id),
            ("redirect_uri", redirect),
            ("scope", "notes:read"),
            ("state", state),
        ])
    };
    // No challenge, no verifier: fine for a confidential client.
    let code = b.code(&without("xyz-state"), "alice", Some("desk")).await;
    expect_tokens(secret_exchange(code, None).await).await;
    // No challenge but a verifier: refused (RFC 9700 §2.1.1).
    let code = b.code(&without("xyz-state"), "alice", None).await;
    expect_invalid_grant(
        secret_exchange(code, Some(pkce().verifier)).await,
        "verifier for a code without a challenge",
    )
    .await;
    // A challenge was sent: the verifier is required and checked.
    let p = pkce();
    let code = b
        .code(
            &code_request(&web.id, redirect, "notes:read", &p),
            "alice",
            None,
        )
        .await;
    expect_invalid_grant(
        secret_exchange(code, None).await,
        "challenge sent, no verifier",
    )
    .await;
    let p = pkce();
    let code = b
        .code(
            &code_request(&web.id, redirect, "notes:read", &p),
            "alice",
            None,
        )
        .await;
    expect_tokens(secret_exchange(code, Some(p.verifier.clone())).await).await;
    // And the client must authenticate: without its secret the code is not redeemed.
    let p = pkce();
    let code = b
        .code(
            &code_request(&web.id, redirect, "notes:read", &p),
            "alice",
            None,
        )
        .await;
    let resp = exchange(&app, &web.id, &code, redirect, Some(&p.verifier)).await;
    assert_eq!(
        resp.status(),
        401,
        "a confidential client must authenticate"
    );
}

async fn garbage_code_is_invalid_grant(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    let p = pkce();
    for code in [
        "nope",
        "0c5b5a4e-0000-4000-8000-000000000000",
        &"x".repeat(300),
    ] {
        expect_invalid_grant(
            exchange(&app, &client.id, code, APP_REDIRECT, Some(&p.verifier)).await,
            "unknown code",
        )
        .await;
    }
}

/// Sign in, get a code (consent given), and return it with its verifier.
async fn pending_code(
    client: &crate::helpers::TestClient,
    b: &crate::helpers::Browser,
) -> (String, crate::helpers::Pkce) {
    let p = pkce();
    let code = b
        .code(
            &code_request(&client.id, APP_REDIRECT, "notes:read", &p),
            "alice",
            Some("laptop"),
        )
        .await;
    (code, p)
}

// "Sign out everywhere" revokes every family; a code the browser got a moment before must not
// start a new one afterwards (the user's not-before is set; the code predates it).
async fn code_issued_before_sign_out_everywhere_is_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    let b = app.browser();
    let (code, p) = pending_code(&client, &b).await;
    let csrf = b.account_csrf().await;
    app.clock.advance(1);
    let resp = b
        .post("/account/sign-out-everywhere", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(resp.status, 303);
    app.clock.advance(1);
    expect_invalid_grant(
        exchange(&app, &client.id, &code, APP_REDIRECT, Some(&p.verifier)).await,
        "a code issued before sign out everywhere",
    )
    .await;
}

async fn code_issued_before_a_password_change_is_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    let b = app.browser();
    let (code, p) = pending_code(&client, &b).await;
    app.clock.advance(1);
    crate::helpers::set_password(&app, "alice", "a new password entirely").await;
    app.clock.advance(1);
    expect_invalid_grant(
        exchange(&app, &client.id, &code, APP_REDIRECT, Some(&p.verifier)).await,
        "a code issued before an administrator reset the password",
    )
    .await;
}

async fn a_client_without_the_refresh_grant_gets_no_refresh_token(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = register(
        &app,
        lineage::clients::NewClient {
            grant_types: vec![lineage::domain::GrantType::AuthorizationCode],
            ..app_spec("notes:read")
        },
    )
    .await;
    create_user(&app, "alice").await;
    let b = app.browser();
    let p = pkce();
    let code = b
        .code(
            &code_request(&client.id, APP_REDIRECT, "notes:read", &p),
            "alice",
            Some("kiosk"),
        )
        .await;
    let resp = exchange(&app, &client.id, &code, APP_REDIRECT, Some(&p.verifier)).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("JSON");
    assert!(body["access_token"].is_string(), "{body}");
    assert!(body.get("refresh_token").is_none(), "{body}");
    // The sign-in is still a family the user can see and end, living as long as the access token.
    let claims = verify_jwt(
        body["access_token"].as_str().unwrap_or_default(),
        &app.jwks().await,
    )
    .expect("the access token verifies")
    .claims;
    let sid = claims["sid"].as_str().expect("sid").to_string();
    let f = family(&app, &sid).await;
    assert_eq!(f.idle_expires_at, app.now() + app.settings.access_token_ttl);
}
