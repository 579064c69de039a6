//! `/userinfo` (OIDC Core §5.3) as an app calls it: GET and POST, the token in the header or a
//! form body, claims by scope, and every RFC 6750 §3 error.

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::Oidc;
use crate::helpers::{Backend, assert_no_store, form_body, revoke, set_disabled, spawn_app};

both_backends!(
    userinfo_answers_the_claims_the_scope_grants,
    the_token_may_come_in_a_form_body,
    no_token_is_a_bare_challenge,
    a_bad_or_expired_token_is_invalid_token,
    revoked_tokens_are_refused_as_introspection_refuses_them,
    a_token_without_openid_is_insufficient_scope,
    malformed_requests_are_invalid_request,
    browser_apps_read_it_from_their_own_origin
);

/// What the tests look at in an answer.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

async fn read(resp: reqwest::Response) -> Answer {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

async fn get_with(oidc: &Oidc, token: &str) -> Answer {
    let resp = oidc
        .app
        .api
        .get(oidc.app.url("/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /userinfo");
    read(resp).await
}

/// Assert an RFC 6750 error: status, `WWW-Authenticate` with the code, the same code in JSON.
fn assert_bearer_error(answer: &Answer, status: u16, error: &str, why: &str) {
    assert_eq!(answer.status, status, "{why}: {}", answer.body);
    let challenge = answer.header("www-authenticate");
    assert!(
        challenge.starts_with("Bearer realm=\"lineage\""),
        "{why}: {challenge}"
    );
    assert!(
        challenge.contains(&format!("error=\"{error}\"")),
        "{why}: {challenge}"
    );
    assert!(
        challenge.contains("error_description=\""),
        "{why}: {challenge}"
    );
    assert_eq!(answer.body["error"], error, "{why}");
    assert_no_store(&answer.headers);
}

async fn userinfo_answers_the_claims_the_scope_grants(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let oidc = Oidc::new(app).await;
    oidc.set_full_profile().await;
    let updated_at = oidc.app.now();

    let token = oidc.access_token("openid profile email").await;
    let answer = get_with(&oidc, &token).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        answer
            .header("content-type")
            .starts_with("application/json")
    );
    assert_no_store(&answer.headers);
    assert_eq!(
        answer.body,
        json!({
            "sub": oidc.user.id,
            "name": "Alice Liddell",
            "preferred_username": "alice",
            "updated_at": updated_at,
            "email": "alice@example.com",
            "email_verified": true,
        })
    );

    // POST with the header answers the same.
    let resp = oidc
        .app
        .api
        .post(oidc.app.url("/userinfo"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("POST /userinfo");
    let posted = read(resp).await;
    assert_eq!(posted.status, 200, "{}", posted.body);
    assert_eq!(posted.body, answer.body);

    let only_openid = get_with(&oidc, &oidc.access_token("openid").await).await;
    assert_eq!(only_openid.body, json!({"sub": oidc.user.id}));
    let with_email = get_with(&oidc, &oidc.access_token("openid email").await).await;
    assert_eq!(
        with_email.body,
        json!({"sub": oidc.user.id, "email": "alice@example.com", "email_verified": true})
    );
    // The scheme name is case-insensitive (RFC 9110 §11.1).
    let resp = oidc
        .app
        .api
        .get(oidc.app.url("/userinfo"))
        .header("Authorization", format!("bearer {token}"))
        .send()
        .await
        .expect("GET /userinfo");
    assert_eq!(resp.status(), 200);
}

async fn the_token_may_come_in_a_form_body(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let oidc = Oidc::new(app).await;
    let token = oidc.access_token("openid profile").await;
    let resp = oidc
        .app
        .api
        .post(oidc.app.url("/userinfo"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form_body(&[("access_token", &token)]))
        .send()
        .await
        .expect("POST /userinfo");
    let answer = read(resp).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["sub"], oidc.user.id.as_str());
    assert_eq!(answer.body["preferred_username"], "alice");

    // A GET's body is never read for a token.
    let resp = oidc
        .app
        .api
        .get(oidc.app.url("/userinfo"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form_body(&[("access_token", &token)]))
        .send()
        .await
        .expect("GET /userinfo");
    assert_eq!(resp.status(), 401);
}

async fn no_token_is_a_bare_challenge(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let oidc = Oidc::new(app).await;
    let requests = [
        oidc.app.api.get(oidc.app.url("/userinfo")),
        oidc.app.api.post(oidc.app.url("/userinfo")),
        // Another scheme is not a bearer token.
        oidc.app
            .api
            .get(oidc.app.url("/userinfo"))
            .basic_auth("someone", Some("secret")),
    ];
    for req in requests {
        let answer = read(req.send().await.expect("userinfo")).await;
        assert_eq!(answer.status, 401);
        // RFC 6750 §3.1: no error code when the request had no authentication at all.
        assert_eq!(
            answer.header("www-authenticate"),
            "Bearer realm=\"lineage\""
        );
        assert_no_store(&answer.headers);
    }
}

async fn a_bad_or_expired_token_is_invalid_token(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let oidc = Oidc::new(app).await;
    let token = oidc.access_token("openid profile").await;

    let answer = get_with(&oidc, "not-a-token").await;
    assert_bearer_error(&answer, 401, "invalid_token", "garbage");

    // One changed character at the start of the signature.
    let at = token.rfind('.').expect("a JWS") + 1;
    let first = &token[at..=at];
    let forged = format!(
        "{}{}{}",
        &token[..at],
        if first == "A" { "B" } else { "A" },
        &token[at + 1..]
    );
    let answer = get_with(&oidc, &forged).await;
    assert_bearer_error(&answer, 401, "invalid_token", "bad signature");

    assert_eq!(get_with(&oidc, &token).await.status, 200);
    oidc.app
        .clock
        .advance(oidc.app.settings.access_token_ttl.get() + 1);
    let answer = get_with(&oidc, &token).await;
    assert_bearer_error(&answer, 401, "invalid_token", "expired");
    assert!(
        answer.header("www-authenticate").contains("expired"),
        "{}",
        answer.header("www-authenticate")
    );
}

async fn revoked_tokens_are_refused_as_introspection_refuses_them(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let oidc = Oidc::new(app).await;

    // The access token itself revoked (the denylist).
    let token = oidc.access_token("openid").await;
    assert_eq!(get_with(&oidc, &token).await.status, 200);
    revoke(&oidc.app, &oidc.client, &token, Some("access_token")).await;
    let answer = get_with(&oidc, &token).await;
    assert_bearer_error(&answer, 401, "invalid_token", "denylisted");

    // Its family revoked (the device signed out).
    let (_, refresh_token) = oidc.family("openid").await;
    let refreshed = crate::helpers::refresh_ok(&oidc.app, &oidc.client, &refresh_token).await;
    assert_eq!(get_with(&oidc, &refreshed.access_token).await.status, 200);
    revoke(&oidc.app, &oidc.client, &refreshed.refresh_token, None).await;
    let answer = get_with(&oidc, &refreshed.access_token).await;
    assert_bearer_error(&answer, 401, "invalid_token", "family revoked");

    // The user signed out everywhere by an operator (families ended, not-before published).
    let token = oidc.access_token("openid").await;
    let (name, now) = (oidc.user.username.clone(), oidc.app.now());
    oidc.app
        .db
        .write(move |c| {
            let user = lineage::users::get(c, &name)?;
            lineage::tokens::refresh::revoke_all_for_user(
                c,
                &user.id,
                lineage::tokens::refresh::RevocationReason::RevokedByAdmin,
                now,
            )?;
            Ok::<_, lineage::clients::RegistryError>(())
        })
        .await
        .expect("revoke all");
    let answer = get_with(&oidc, &token).await;
    assert_bearer_error(&answer, 401, "invalid_token", "user revoked");

    // The user disabled.
    oidc.app.clock.advance(1);
    let token = oidc.access_token("openid").await;
    assert_eq!(get_with(&oidc, &token).await.status, 200);
    set_disabled(&oidc.app, &oidc.user.username, true).await;
    let answer = get_with(&oidc, &token).await;
    assert_bearer_error(&answer, 401, "invalid_token", "user disabled");
}

async fn a_token_without_openid_is_insufficient_scope(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let oidc = Oidc::new(app).await;
    let token = oidc.access_token("profile email notes:read").await;
    let answer = get_with(&oidc, &token).await;
    assert_bearer_error(&answer, 403, "insufficient_scope", "no openid");
    assert!(
        answer
            .header("www-authenticate")
            .contains("scope=\"openid\""),
        "{}",
        answer.header("www-authenticate")
    );

    // A client's own token (client_credentials) has no user, whatever its scope.
    let service = oidc.app.create_client("openid").await;
    let service_token = oidc.app.client_credentials_token(&service).await;
    let answer = get_with(&oidc, &service_token).await;
    assert_bearer_error(&answer, 401, "invalid_token", "no user");
}

async fn malformed_requests_are_invalid_request(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let oidc = Oidc::new(app).await;
    let token = oidc.access_token("openid").await;

    // In the header and the body at once (RFC 6750 §2: one method only).
    let resp = oidc
        .app
        .api
        .post(oidc.app.url("/userinfo"))
        .bearer_auth(&token)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form_body(&[("access_token", &token)]))
        .send()
        .await
        .expect("POST /userinfo");
    assert_bearer_error(&read(resp).await, 400, "invalid_request", "two places");

    // Never from the URL, whatever else the request carries.
    for with_header in [false, true] {
        let mut req = oidc
            .app
            .api
            .get(oidc.app.url(&format!("/userinfo?access_token={token}")));
        if with_header {
            req = req.bearer_auth(&token);
        }
        let answer = read(req.send().await.expect("GET /userinfo")).await;
        assert_bearer_error(&answer, 400, "invalid_request", "query string");
    }

    // `Bearer` without a token.
    let resp = oidc
        .app
        .api
        .get(oidc.app.url("/userinfo"))
        .header("Authorization", "Bearer ")
        .send()
        .await
        .expect("GET /userinfo");
    assert_bearer_error(&read(resp).await, 400, "invalid_request", "empty bearer");
}

async fn browser_apps_read_it_from_their_own_origin(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let oidc = Oidc::new(app).await;
    let token = oidc.access_token("openid profile").await;
    // The client's redirect URI is https://app.example/cb.
    let own = "https://app.example";
    let call = |origin: &'static str| {
        oidc.app
            .api
            .get(oidc.app.url("/userinfo"))
            .bearer_auth(&token)
            .header("Origin", origin)
            .send()
    };
    let answer = read(call(own).await.expect("GET /userinfo")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("access-control-allow-origin"), own);
    assert!(
        answer
            .headers
            .get("access-control-allow-credentials")
            .is_none()
    );
    let other = read(call("https://evil.example").await.expect("GET /userinfo")).await;
    assert!(other.headers.get("access-control-allow-origin").is_none());

    // The preflight of a GET with an Authorization header.
    let resp = oidc
        .app
        .api
        .request(reqwest::Method::OPTIONS, oidc.app.url("/userinfo"))
        .header("Origin", own)
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .await
        .expect("OPTIONS /userinfo");
    let preflight = read(resp).await;
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.header("access-control-allow-origin"), own);
    assert!(
        preflight
            .header("access-control-allow-headers")
            .contains("Authorization"),
        "{:?}",
        preflight.headers
    );

    // An expired token of this client: the page may still read why.
    oidc.app
        .clock
        .advance(oidc.app.settings.access_token_ttl.get() + 1);
    let expired = read(call(own).await.expect("GET /userinfo")).await;
    assert_eq!(expired.status, 401);
    assert_eq!(expired.header("access-control-allow-origin"), own);
}
