//! Browser apps calling cross-origin (CORS): `/token` and `/revoke` answer a page only on an
//! origin of the client the request names; preflights are answered for any origin some client
//! redirects to; the metadata and JWKS are open to every origin; the HTML pages send no CORS
//! headers; `Access-Control-Allow-Credentials` is never sent.

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};

use crate::helpers::{
    Backend, TestApp, TestClient, app_client, basic_auth, create_user, form_body, signed_in_tokens,
    spawn_app, spawn_demo_app, web_app_client,
};

both_backends!(
    token_and_revoke_answer_only_the_named_clients_origins,
    preflights_answer_origins_of_registered_clients,
    metadata_and_jwks_are_open_to_every_origin,
    html_pages_send_no_cors_headers,
);

/// The origin of `app_client`'s redirect URI (`APP_REDIRECT`).
const APP_ORIGIN: &str = "http://127.0.0.1:9876";
/// The origin of `web_app_client`'s redirect URI: registered, but another client's.
const WEB_ORIGIN: &str = "https://web.example";
const STRANGER: &str = "https://attacker.example";

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn allowed_origin(headers: &HeaderMap) -> Option<&str> {
    header(headers, "access-control-allow-origin")
}

/// No credentials ever, and no CORS header at all when `cors` is false.
fn assert_cors_headers(headers: &HeaderMap, cors: bool, what: &str) {
    assert!(
        headers.get("access-control-allow-credentials").is_none(),
        "{what}: credentials are never allowed: {headers:?}"
    );
    if !cors {
        let any = headers
            .keys()
            .find(|k| k.as_str().starts_with("access-control-"));
        assert!(any.is_none(), "{what}: no CORS headers: {headers:?}");
    }
}

fn varies_on_origin(headers: &HeaderMap) -> bool {
    headers
        .get_all("vary")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("origin"))
        })
}

async fn post_from(
    app: &TestApp,
    path: &str,
    origin: Option<&str>,
    params: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = app
        .api
        .post(app.url(path))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form_body(params));
    if let Some(origin) = origin {
        req = req.header("Origin", origin);
    }
    req.send().await.expect("POST")
}

async fn preflight(app: &TestApp, path: &str, origin: &str, method: &str) -> reqwest::Response {
    app.api
        .request(Method::OPTIONS, app.url(path))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method)
        .header(
            "Access-Control-Request-Headers",
            "content-type,authorization",
        )
        .send()
        .await
        .expect("OPTIONS")
}

async fn refresh_from(
    app: &TestApp,
    client: &TestClient,
    token: &str,
    origin: &str,
) -> reqwest::Response {
    let params = [
        ("grant_type", "refresh_token"),
        ("client_id", client.id.as_str()),
        ("refresh_token", token),
    ];
    post_from(app, "/token", Some(origin), &params).await
}

async fn token_and_revoke_answer_only_the_named_clients_origins(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let spa = app_client(&app, "notes:read").await;
    let web = web_app_client(&app, "notes:read").await;
    create_user(&app, "alice").await;
    let (_browser, tokens) = signed_in_tokens(&app, &spa, "notes:read", "alice", "laptop").await;

    // The client's own origin: the page may read the new tokens.
    let resp = refresh_from(&app, &spa, &tokens.refresh_token, APP_ORIGIN).await;
    let headers = resp.headers().clone();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(allowed_origin(&headers), Some(APP_ORIGIN));
    assert!(varies_on_origin(&headers), "{headers:?}");
    assert_cors_headers(&headers, true, "token from the client's origin");
    let body: serde_json::Value = resp.json().await.expect("JSON");
    let rotated = body["refresh_token"].as_str().expect("refresh_token");

    // An error is readable too: the page learns why (the spent token is a retry, so use garbage).
    let resp = refresh_from(&app, &spa, "not-a-token", APP_ORIGIN).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(allowed_origin(resp.headers()), Some(APP_ORIGIN));
    // The page may read the DPoP nonce for its next proof and the challenge of a refusal.
    let exposed = header(resp.headers(), "access-control-expose-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        exposed.contains("dpop-nonce") && exposed.contains("www-authenticate"),
        "{exposed}"
    );

    // Another client's origin, an unregistered one, and `null`: the request is answered (the
    // browser sent it), but without CORS headers the browser withholds the answer from the page.
    for origin in [WEB_ORIGIN, STRANGER, "null"] {
        let resp = refresh_from(&app, &spa, "not-a-token", origin).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{origin}");
        assert!(varies_on_origin(resp.headers()), "{origin}");
        assert_cors_headers(resp.headers(), false, origin);
    }
    // The other client from its own origin, named by HTTP Basic; and by nobody at all.
    let resp = app
        .api
        .post(app.url("/token"))
        .header("Origin", WEB_ORIGIN)
        .header("Authorization", basic_auth(&web.id, &web.secret))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form_body(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "not-a-token"),
        ]))
        .send()
        .await
        .expect("POST /token");
    assert_eq!(allowed_origin(resp.headers()), Some(WEB_ORIGIN));
    assert_cors_headers(resp.headers(), true, "Basic from its origin");
    let anonymous = post_from(&app, "/token", Some(APP_ORIGIN), &[("grant_type", "x")]).await;
    assert_cors_headers(anonymous.headers(), false, "no client named");
    // Without `Origin` (not a browser's cross-origin call): no CORS headers.
    let resp = post_from(&app, "/token", None, &[("client_id", &spa.id)]).await;
    assert_cors_headers(resp.headers(), false, "no Origin");

    // /revoke: the same rule.
    let params = [("client_id", spa.id.as_str()), ("token", rotated)];
    let resp = post_from(&app, "/revoke", Some(WEB_ORIGIN), &params).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_cors_headers(resp.headers(), false, "revoke from another client's origin");
    let resp = post_from(&app, "/revoke", Some(APP_ORIGIN), &params).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(allowed_origin(resp.headers()), Some(APP_ORIGIN));
    assert!(varies_on_origin(resp.headers()));
    assert_cors_headers(resp.headers(), true, "revoke from the client's origin");
}

async fn preflights_answer_origins_of_registered_clients(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    for path in ["/token", "/revoke"] {
        // Before any client redirects there, nobody's origin is allowed.
        let resp = preflight(&app, path, APP_ORIGIN, "POST").await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{path}");
        assert_cors_headers(resp.headers(), false, path);
    }
    // Registered while the server runs: answered at once.
    app_client(&app, "notes:read").await;
    web_app_client(&app, "notes:read").await;
    for path in ["/token", "/revoke"] {
        for origin in [APP_ORIGIN, WEB_ORIGIN] {
            let resp = preflight(&app, path, origin, "POST").await;
            let headers = resp.headers();
            let what = format!("{path} from {origin}");
            assert_eq!(resp.status(), StatusCode::NO_CONTENT, "{what}");
            assert_eq!(allowed_origin(headers), Some(origin), "{what}");
            assert_eq!(
                header(headers, "access-control-allow-methods"),
                Some("POST")
            );
            let allowed = header(headers, "access-control-allow-headers")
                .unwrap_or_default()
                .to_ascii_lowercase();
            assert!(
                allowed.contains("content-type")
                    && allowed.contains("authorization")
                    && allowed.contains("dpop"),
                "{what}: {allowed}"
            );
            assert!(
                header(headers, "access-control-max-age").is_some(),
                "{what}"
            );
            assert!(
                header(headers, "access-control-expose-headers").is_none(),
                "{what}: nothing exposed"
            );
            assert!(varies_on_origin(headers), "{what}");
            assert_cors_headers(headers, true, &what);
        }
        for origin in [STRANGER, "null", "http://127.0.0.1:9877"] {
            let resp = preflight(&app, path, origin, "POST").await;
            assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{path} from {origin}");
            assert!(varies_on_origin(resp.headers()));
            assert_cors_headers(resp.headers(), false, origin);
        }
    }
    // Introspection is for confidential servers, not pages: no preflight answer.
    let resp = preflight(&app, "/introspect", APP_ORIGIN, "POST").await;
    assert_cors_headers(resp.headers(), false, "/introspect");
}

async fn metadata_and_jwks_are_open_to_every_origin(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/jwks.json",
    ] {
        for origin in [Some(STRANGER), Some("null"), None] {
            let mut req = app.api.get(app.url(path));
            if let Some(origin) = origin {
                req = req.header("Origin", origin);
            }
            let resp = req.send().await.expect("GET");
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            assert_eq!(allowed_origin(resp.headers()), Some("*"), "{path}");
            assert_cors_headers(resp.headers(), true, path);
        }
        let resp = preflight(&app, path, STRANGER, "GET").await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT, "{path}");
        assert_eq!(allowed_origin(resp.headers()), Some("*"), "{path}");
        assert_eq!(
            header(resp.headers(), "access-control-allow-methods"),
            Some("GET")
        );
        assert_cors_headers(resp.headers(), true, path);
    }
}

async fn html_pages_send_no_cors_headers(backend: Backend) {
    let Some(app) = spawn_demo_app(backend).await else {
        return;
    };
    // The demo app's redirect URI is on the issuer's origin: a registered origin, still no CORS.
    let origin = app.issuer.clone();
    let client = app_client(&app, "notes:read").await;
    let authorize = format!(
        "/authorize?response_type=code&client_id={}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9876%2Fcallback",
        client.id
    );
    for path in [
        "/",
        "/login",
        authorize.as_str(),
        "/account",
        "/demo",
        "/demo/start",
    ] {
        for from in [origin.as_str(), APP_ORIGIN] {
            let resp = app
                .api
                .get(app.url(path))
                .header("Origin", from)
                .send()
                .await
                .expect("GET");
            assert_cors_headers(resp.headers(), false, path);
            let resp = preflight(&app, path, from, "POST").await;
            assert_cors_headers(resp.headers(), false, path);
        }
    }
    for path in ["/login", "/consent", "/logout", "/account/password"] {
        let resp = app
            .api
            .post(app.url(path))
            .header("Origin", APP_ORIGIN)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("username=alice")
            .send()
            .await
            .expect("POST");
        assert_cors_headers(resp.headers(), false, path);
    }
}
