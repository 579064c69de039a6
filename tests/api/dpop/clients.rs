//! Clients and DPoP: a client that requires proofs (set through the library, or by the command
//! line, where public clients require them by default), and a confidential client's
//! `client_credentials` token bound to a key.

use serde_json::{Value, json};

use super::SCOPE;
use crate::helpers::{
    APP_REDIRECT, Backend, CliDir, TestApp, TestClient, app_client, assert_bound,
    assert_oauth_error, assert_unbound, authorized_code, cli_json, create_user, ed25519_key,
    es256_key, exchange_with_key, expect_bound_tokens, expect_tokens, family, introspect,
    refresh_with_key, resource_server, spawn_app, start_family, token_with_key,
};

both_backends!(
    a_client_that_requires_dpop_needs_a_proof_on_every_token_request,
    client_credentials_with_a_proof_gets_a_bound_token,
    public_clients_from_the_command_line_require_dpop_by_default,
);

/// `lineage client update ID --dpop required|optional`, as the library call behind it.
async fn set_require_dpop(app: &TestApp, client_id: &str, required: bool) {
    let (id, now) = (client_id.to_string(), app.now());
    app.db
        .write(move |c| lineage::clients::set_require_dpop(c, &id, required, now))
        .await
        .expect("set_require_dpop");
}

async fn a_client_that_requires_dpop_needs_a_proof_on_every_token_request(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let alice = create_user(&app, "alice").await;
    let client = app_client(&app, SCOPE).await;
    // A session from before the client required proofs: not bound.
    let (older_sid, older) = start_family(&app, &alice.id, &client.id, SCOPE).await;
    set_require_dpop(&app, &client.id, true).await;
    let key = es256_key();

    let browser = app.browser();
    let code = authorized_code(
        &browser,
        &client,
        APP_REDIRECT,
        SCOPE,
        ("alice", "phone"),
        &[],
    )
    .await;
    let resp = exchange_with_key(&app, &client, &code, None).await;
    assert_oauth_error(resp, 400, "invalid_dpop_proof").await;
    // Refused before the grant: the code is not spent, and redeems with a proof.
    let resp = exchange_with_key(&app, &client, &code, Some(&key)).await;
    let tokens = expect_bound_tokens(&app, resp, &key).await;

    // The older session refreshes only with a proof too, and (a public client's) is bound to
    // that key from then on (RFC 9449 §5).
    let resp = refresh_with_key(&app, &client, &older, None).await;
    assert_oauth_error(resp, 400, "invalid_dpop_proof").await;
    let resp = refresh_with_key(&app, &client, &older, Some(&key)).await;
    let older = expect_bound_tokens(&app, resp, &key).await;
    assert_eq!(family(&app, &older_sid).await.dpop_jkt, Some(key.jkt()));

    // Once proofs are optional again, an unbound session refreshes without one; the bound ones
    // still need their key.
    let (_, unbound) = start_family(&app, &alice.id, &client.id, SCOPE).await;
    set_require_dpop(&app, &client.id, false).await;
    let resp = refresh_with_key(&app, &client, &unbound, None).await;
    assert_unbound(&app, &expect_tokens(resp).await.body).await;
    for bound in [&tokens.refresh_token, &older.refresh_token] {
        let resp = refresh_with_key(&app, &client, bound, None).await;
        assert_oauth_error(resp, 400, "invalid_dpop_proof").await;
    }
    let resp = refresh_with_key(&app, &client, &tokens.refresh_token, Some(&key)).await;
    expect_bound_tokens(&app, resp, &key).await;
}

async fn client_credentials_with_a_proof_gets_a_bound_token(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let service = app.create_client("reports:read").await;
    let rs = resource_server(&app).await;
    let key = ed25519_key();
    let grant = [("grant_type", "client_credentials")];

    let body = token_body(token_with_key(&app, &service, &grant, Some(&key)).await).await;
    let claims = assert_bound(&app, &body, &key).await;
    assert_eq!(claims["sub"], service.id.as_str());
    assert!(body.get("refresh_token").is_none(), "{body}");
    let token = body["access_token"].as_str().expect("access_token");
    let shown = introspect(&app, &rs, token).await;
    assert_eq!(shown["active"], true, "{shown}");
    assert_eq!(shown["token_type"], "DPoP", "{shown}");
    assert_eq!(shown["cnf"], json!({ "jkt": key.jkt() }), "{shown}");

    // Without a proof, the same client gets a bearer token.
    let body = token_body(token_with_key(&app, &service, &grant, None).await).await;
    assert_unbound(&app, &body).await;
    let token = body["access_token"].as_str().expect("access_token");
    let shown = introspect(&app, &rs, token).await;
    assert_eq!(shown["token_type"], "Bearer", "{shown}");
    assert!(shown.get("cnf").is_none(), "{shown}");
}

/// The body of a 200 token response.
async fn token_body(resp: reqwest::Response) -> Value {
    let status = resp.status();
    let body: Value = resp.json().await.expect("token response is JSON");
    assert_eq!(status, 200, "{body}");
    body
}

async fn public_clients_from_the_command_line_require_dpop_by_default(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let alice = create_user(&app, "alice").await;
    let dir = CliDir::new();
    let create = |extra: &[&str]| {
        let mut args = vec![
            "client",
            "create",
            "--name",
            "Notes",
            "--grant",
            "authorization_code,refresh_token",
            "--scope",
            "notes:read",
            "--redirect-uri",
            APP_REDIRECT,
            "--json",
        ];
        args.extend_from_slice(extra);
        cli_json(&app, &dir, &args)
    };

    let created = create(&["--public"]);
    assert_eq!(created["require_dpop"], true, "{created}");
    let client = TestClient {
        id: created["client_id"].as_str().expect("client_id").into(),
        secret: String::new(),
    };
    let (_, token) = start_family(&app, &alice.id, &client.id, "notes:read").await;
    let resp = refresh_with_key(&app, &client, &token, None).await;
    assert_oauth_error(resp, 400, "invalid_dpop_proof").await;

    let updated = cli_json(
        &app,
        &dir,
        &[
            "client", "update", &client.id, "--dpop", "optional", "--json",
        ],
    );
    assert_eq!(updated["require_dpop"], false, "{updated}");
    let resp = refresh_with_key(&app, &client, &token, None).await;
    assert_unbound(&app, &expect_tokens(resp).await.body).await;

    // Confidential clients may use bearer tokens unless told otherwise; either kind can be told.
    assert_eq!(create(&[])["require_dpop"], false);
    assert_eq!(create(&["--dpop", "required"])["require_dpop"], true);
    assert_eq!(
        create(&["--public", "--dpop", "optional"])["require_dpop"],
        false
    );
}
