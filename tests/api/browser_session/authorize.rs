//! `GET /authorize`: the client and redirect URI are checked first (an HTML page, never a
//! redirect); every later error goes back to the client with `error`, `error_description`,
//! `state` and `iss`; PKCE S256 rules; loopback redirect URIs on any port; the sign-in redirect.

use lineage::domain::RedirectUri;
use reqwest::StatusCode;

use crate::helpers::{
    APP_NAME, APP_REDIRECT, Backend, Page, app_client, app_spec, assert_error_redirect,
    assert_html_security_headers, authorize_path, code_request, create_user, pkce, register,
    spawn_app, web_app_client,
};

both_backends!(
    unknown_client_gets_an_html_page_never_a_redirect,
    unregistered_redirect_uri_gets_an_html_page_never_a_redirect,
    client_and_redirect_are_checked_before_anything_else,
    unsupported_response_type_goes_back_to_the_client,
    scope_beyond_the_clients_is_invalid_scope,
    public_client_without_code_challenge_is_invalid_request,
    plain_or_missing_code_challenge_method_is_invalid_request,
    confidential_client_may_omit_pkce_but_not_send_plain,
    loopback_redirect_uri_accepts_any_port,
    not_signed_in_goes_to_the_sign_in_page,
    code_redirect_keeps_the_registered_query,
);

/// The 400 page for an untrusted client or redirect URI: HTML, no Location, security headers.
fn assert_error_page(page: &Page, what: &str) {
    assert_eq!(
        page.status,
        StatusCode::BAD_REQUEST,
        "{what}: {}",
        page.describe()
    );
    assert!(
        page.location().is_none(),
        "{what}: must never redirect ({:?})",
        page.location()
    );
    assert_html_security_headers(page);
    assert!(page.contains("<html"), "{what}: an HTML page");
    assert!(
        !page.body.contains("evil.example"),
        "{what}: the page does not link to the untrusted URI"
    );
}

async fn unknown_client_gets_an_html_page_never_a_redirect(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let b = app.browser();
    let p = pkce();
    let page = b
        .get(&code_request(
            "no-such-client",
            "https://evil.example/cb",
            "notes:read",
            &p,
        ))
        .await;
    assert_error_page(&page, "unknown client");
    assert!(page.contains("not registered"), "{}", page.describe());

    let page = b
        .get(&authorize_path(&[
            ("response_type", "code"),
            ("redirect_uri", "https://evil.example/cb"),
        ]))
        .await;
    assert_error_page(&page, "no client_id");
}

async fn unregistered_redirect_uri_gets_an_html_page_never_a_redirect(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    let b = app.browser();
    let p = pkce();
    for redirect in [
        "https://evil.example/cb",
        // Same host and port, another path.
        "http://127.0.0.1:9876/callback/../evil.example",
        "http://127.0.0.1:9876/other",
        // Loopback with another port is fine (see below), but not another scheme.
        "https://127.0.0.1:9876/callback",
        "http://127.0.0.1:9876/callback?x=evil.example",
    ] {
        let page = b
            .get(&code_request(&client.id, redirect, "notes:read", &p))
            .await;
        assert_error_page(&page, redirect);
    }

    // A client with two redirect URIs must name one.
    let mut spec = app_spec("notes:read");
    spec.redirect_uris
        .push(RedirectUri::parse("http://127.0.0.1:9876/second").expect("uri"));
    let two = register(&app, spec).await;
    let page = b
        .get(&authorize_path(&[
            ("response_type", "code"),
            ("client_id", &two.id),
            ("code_challenge", &p.challenge),
            ("code_challenge_method", "S256"),
        ]))
        .await;
    assert_error_page(&page, "no redirect_uri with two registered");

    // A web app's https redirect must match exactly, port included.
    let web = web_app_client(&app, "notes:read").await;
    let page = b
        .get(&code_request(
            &web.id,
            "https://web.example:8443/cb",
            "notes:read",
            &p,
        ))
        .await;
    assert_error_page(&page, "https redirect with another port");
}

async fn client_and_redirect_are_checked_before_anything_else(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    let b = app.browser();
    // Everything else is wrong too, but the redirect URI is not trusted: a page, not a redirect.
    let page = b
        .get(&authorize_path(&[
            ("response_type", "token"),
            ("client_id", &client.id),
            ("redirect_uri", "https://evil.example/cb"),
            ("scope", "admin"),
            ("code_challenge_method", "plain"),
            ("state", "s"),
        ]))
        .await;
    assert_error_page(&page, "bad redirect plus other errors");

    let page = b
        .get(&authorize_path(&[
            ("response_type", "token"),
            ("client_id", "nobody"),
            ("redirect_uri", APP_REDIRECT),
        ]))
        .await;
    assert_error_page(&page, "unknown client plus other errors");
}

async fn unsupported_response_type_goes_back_to_the_client(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    let b = app.browser();
    let p = pkce();
    for response_type in ["token", "code token", "id_token"] {
        let page = b
            .get(&authorize_path(&[
                ("response_type", response_type),
                ("client_id", &client.id),
                ("redirect_uri", APP_REDIRECT),
                ("state", "st 1&x=y/é+%"),
                ("code_challenge", &p.challenge),
                ("code_challenge_method", "S256"),
            ]))
            .await;
        assert_error_redirect(
            &page,
            APP_REDIRECT,
            "unsupported_response_type",
            Some("st 1&x=y/é+%"),
            &app.issuer,
        );
    }
    // No response_type at all: invalid_request; without a state, none is sent back.
    let page = b
        .get(&authorize_path(&[
            ("client_id", &client.id),
            ("redirect_uri", APP_REDIRECT),
            ("code_challenge", &p.challenge),
            ("code_challenge_method", "S256"),
        ]))
        .await;
    assert_error_redirect(&page, APP_REDIRECT, "invalid_request", None, &app.issuer);
}

async fn scope_beyond_the_clients_is_invalid_scope(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read notes:write").await;
    let b = app.browser();
    let p = pkce();
    for scope in ["notes:read admin", "admin", "notes:delete"] {
        let page = b
            .get(&code_request(&client.id, APP_REDIRECT, scope, &p))
            .await;
        assert_error_redirect(
            &page,
            APP_REDIRECT,
            "invalid_scope",
            Some("xyz-state"),
            &app.issuer,
        );
    }
    // A subset is fine: the browser is sent to sign in.
    let page = b
        .get(&code_request(&client.id, APP_REDIRECT, "notes:read", &p))
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.describe());
    assert!(page.location().unwrap_or("").starts_with("/login?"));
}

async fn public_client_without_code_challenge_is_invalid_request(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    let b = app.browser();
    let page = b
        .get(&authorize_path(&[
            ("response_type", "code"),
            ("client_id", &client.id),
            ("redirect_uri", APP_REDIRECT),
            ("scope", "notes:read"),
            ("state", "abc"),
        ]))
        .await;
    assert_error_redirect(
        &page,
        APP_REDIRECT,
        "invalid_request",
        Some("abc"),
        &app.issuer,
    );

    // Also when signed in: the rule does not depend on the session.
    create_user(&app, "alice").await;
    b.sign_in("alice", crate::helpers::PASSWORD).await;
    let page = b
        .get(&authorize_path(&[
            ("response_type", "code"),
            ("client_id", &client.id),
            ("redirect_uri", APP_REDIRECT),
            ("state", "abc"),
        ]))
        .await;
    assert_error_redirect(
        &page,
        APP_REDIRECT,
        "invalid_request",
        Some("abc"),
        &app.issuer,
    );
}

async fn plain_or_missing_code_challenge_method_is_invalid_request(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    let b = app.browser();
    let p = pkce();
    let long_challenge = format!("{}A", p.challenge);
    let dotted_challenge = format!("{}.", &p.challenge[..42]);
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "plain",
            vec![
                ("code_challenge", &p.verifier),
                ("code_challenge_method", "plain"),
            ],
        ),
        ("method missing", vec![("code_challenge", &p.challenge)]),
        (
            "unknown method",
            vec![
                ("code_challenge", &p.challenge),
                ("code_challenge_method", "S512"),
            ],
        ),
        (
            "method without challenge",
            vec![("code_challenge_method", "S256")],
        ),
        (
            "malformed challenge",
            vec![
                ("code_challenge", "too-short"),
                ("code_challenge_method", "S256"),
            ],
        ),
        // An S256 challenge is BASE64URL(SHA-256(verifier)): exactly 43 characters of the
        // base64url alphabet (RFC 7636 §4.2), not any 43-128 character string.
        (
            "S256 challenge one character too long",
            vec![
                ("code_challenge", &long_challenge),
                ("code_challenge_method", "S256"),
            ],
        ),
        (
            "S256 challenge outside the base64url alphabet",
            vec![
                ("code_challenge", &dotted_challenge),
                ("code_challenge_method", "S256"),
            ],
        ),
    ];
    for (what, extra) in cases {
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", client.id.as_str()),
            ("redirect_uri", APP_REDIRECT),
            ("state", "pk"),
        ];
        params.extend(extra);
        let page = b.get(&authorize_path(&params)).await;
        let r = assert_error_redirect(
            &page,
            APP_REDIRECT,
            "invalid_request",
            Some("pk"),
            &app.issuer,
        );
        assert!(!r.params.is_empty(), "{what}");
    }
}

async fn confidential_client_may_omit_pkce_but_not_send_plain(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let web = web_app_client(&app, "notes:read").await;
    let b = app.browser();
    let page = b
        .get(&authorize_path(&[
            ("response_type", "code"),
            ("client_id", &web.id),
            ("redirect_uri", "https://web.example/cb"),
            ("state", "w"),
        ]))
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.describe());
    assert!(
        page.location().unwrap_or("").starts_with("/login?"),
        "no PKCE is fine for a confidential client: {}",
        page.describe()
    );
    let page = b
        .get(&authorize_path(&[
            ("response_type", "code"),
            ("client_id", &web.id),
            ("redirect_uri", "https://web.example/cb"),
            ("state", "w"),
            (
                "code_challenge",
                "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopq",
            ),
            ("code_challenge_method", "plain"),
        ]))
        .await;
    assert_error_redirect(
        &page,
        "https://web.example/cb",
        "invalid_request",
        Some("w"),
        &app.issuer,
    );
}

async fn loopback_redirect_uri_accepts_any_port(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    let b = app.browser();
    let p = pkce();
    let other_port = "http://127.0.0.1:51234/callback";
    // Errors go back to the port the app is listening on now.
    let page = b
        .get(&authorize_path(&[
            ("response_type", "token"),
            ("client_id", &client.id),
            ("redirect_uri", other_port),
            ("state", "lb"),
        ]))
        .await;
    assert_error_redirect(
        &page,
        other_port,
        "unsupported_response_type",
        Some("lb"),
        &app.issuer,
    );
    // A port-less loopback URI is the same host too.
    let page = b
        .get(&code_request(
            &client.id,
            "http://127.0.0.1/callback",
            "notes:read",
            &p,
        ))
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.describe());
    // And the code comes back to that port, exchangeable with that exact URI.
    let code = b
        .code(
            &code_request(&client.id, other_port, "notes:read", &p),
            "alice",
            Some("laptop"),
        )
        .await;
    let resp =
        crate::helpers::exchange(&app, &client.id, &code, other_port, Some(&p.verifier)).await;
    crate::helpers::expect_tokens(resp).await;
}

async fn not_signed_in_goes_to_the_sign_in_page(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app_client(&app, "notes:read").await;
    let b = app.browser();
    let p = pkce();
    let request = code_request(&client.id, APP_REDIRECT, "notes:read", &p);
    let page = b.get(&request).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.describe());
    let location = page.location().expect("Location").to_string();
    let login = url::Url::parse(&app.url(&location)).expect("login URL");
    assert_eq!(login.path(), "/login");
    let return_to = login
        .query_pairs()
        .find(|(k, _)| k == "return_to")
        .map(|(_, v)| v.into_owned())
        .expect("return_to");
    assert_eq!(
        return_to, request,
        "return_to is the whole authorization request"
    );

    let form = b.get(&location).await;
    assert_eq!(form.status, 200, "{}", form.describe());
    assert_html_security_headers(&form);
    assert_eq!(form.value("return_to").as_deref(), Some(request.as_str()));
    assert!(
        form.text().contains(APP_NAME),
        "the sign-in page names the app: {}",
        form.text()
    );
}

async fn code_redirect_keeps_the_registered_query(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut spec = app_spec("notes:read");
    spec.redirect_uris = vec![RedirectUri::parse("https://app.example/cb?tenant=7").expect("uri")];
    let client = register(&app, spec).await;
    create_user(&app, "alice").await;
    let b = app.browser();
    let p = pkce();
    let r = b
        .authorize(
            &code_request(
                &client.id,
                "https://app.example/cb?tenant=7",
                "notes:read",
                &p,
            ),
            "alice",
            Some("phone"),
        )
        .await;
    assert_eq!(r.target, "https://app.example/cb");
    assert_eq!(r.get("tenant"), Some("7"), "{:?}", r.params);
    assert!(r.get("code").is_some(), "{:?}", r.params);
    assert_eq!(r.get("state"), Some("xyz-state"));
    assert_eq!(r.get("iss"), Some(app.issuer.as_str()));
}
