//! CSP `form-action`: every page's forms post only to this server, and the pages whose form ends
//! in a redirect to the client (consent, confirmation, and a sign-in that returns to an
//! authorization request going straight back) also allow that client's redirect-URI origin,
//! because Chromium applies `form-action` to the redirects after a form submission.

use lineage::clients::NewClient;
use lineage::domain::RedirectUri;

use crate::helpers::{
    APP_REDIRECT, Backend, PASSWORD, Page, app_client, app_spec, code_request, create_user, pkce,
    register, spawn_app, web_app_client,
};

both_backends!(
    pages_allow_forms_to_post_only_to_this_server,
    pages_that_redirect_to_the_client_allow_its_origin,
    sign_in_page_allows_the_client_only_when_it_goes_straight_back,
);

/// The page's one CSP header and its `form-action` directive.
fn form_action(page: &Page) -> String {
    let headers: Vec<_> = page
        .headers
        .get_all("content-security-policy")
        .iter()
        .collect();
    assert_eq!(headers.len(), 1, "one CSP header on {}", page.describe());
    let csp = headers[0].to_str().expect("ASCII");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "the rest of the policy is kept: {csp}"
    );
    csp.split(';')
        .map(str::trim)
        .find(|d| d.starts_with("form-action "))
        .unwrap_or_else(|| panic!("no form-action in {csp}"))
        .to_string()
}

async fn pages_allow_forms_to_post_only_to_this_server(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    create_user(&app, "alice").await;
    let b = app.browser();
    assert_eq!(form_action(&b.get("/login").await), "form-action 'self'");
    b.sign_in("alice", PASSWORD).await;
    assert_eq!(form_action(&b.get("/account").await), "form-action 'self'");
    let error = b.get("/authorize?client_id=nobody").await;
    assert_eq!(error.status, 400);
    assert_eq!(form_action(&error), "form-action 'self'");
}

async fn pages_that_redirect_to_the_client_allow_its_origin(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let web = web_app_client(&app, "notes:read").await;
    let native = app_client(&app, "notes:read").await;
    let mobile = register(
        &app,
        NewClient {
            name: "Notes for Android".into(),
            redirect_uris: vec![
                RedirectUri::parse("com.example.app:/oauth2redirect").expect("uri"),
            ],
            ..app_spec("notes:read")
        },
    )
    .await;
    create_user(&app, "alice").await;
    let b = app.browser();
    b.sign_in("alice", PASSWORD).await;

    // Consent pages.
    let consent = b
        .get(&code_request(
            &web.id,
            "https://web.example/cb",
            "notes:read",
            &pkce(),
        ))
        .await;
    assert_eq!(consent.status, 200, "{}", consent.describe());
    assert_eq!(
        form_action(&consent),
        "form-action 'self' https://web.example"
    );
    let mobile_consent = b
        .get(&code_request(
            &mobile.id,
            "com.example.app:/oauth2redirect",
            "notes:read",
            &pkce(),
        ))
        .await;
    assert_eq!(mobile_consent.status, 200, "{}", mobile_consent.describe());
    assert_eq!(
        form_action(&mobile_consent),
        "form-action 'self' com.example.app:"
    );
    // A loopback redirect URI on another port than the registered one: that port.
    let other_port = "http://127.0.0.1:41234/callback";
    let consent = b
        .get(&code_request(&native.id, other_port, "notes:read", &pkce()))
        .await;
    assert_eq!(
        form_action(&consent),
        "form-action 'self' http://127.0.0.1:41234"
    );

    // The confirmation page.
    b.decide(&consent, "allow", None).await;
    let confirm = b
        .get(&code_request(
            &native.id,
            APP_REDIRECT,
            "notes:read",
            &pkce(),
        ))
        .await;
    assert!(
        confirm.text().contains("Continue to"),
        "{}",
        confirm.describe()
    );
    assert_eq!(
        form_action(&confirm),
        "form-action 'self' http://127.0.0.1:9876"
    );
}

async fn sign_in_page_allows_the_client_only_when_it_goes_straight_back(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let web = web_app_client(&app, "notes:read").await;
    let native = app_client(&app, "notes:read").await;
    let b = app.browser();
    let sign_in_for = |request: String| {
        let b = &b;
        async move {
            let page = b.follow(b.get(&request).await).await;
            assert_eq!(page.status, 200, "{}", page.describe());
            assert!(page.input("password").is_some(), "{}", page.describe());
            page
        }
    };
    // A confidential client may go straight back after the sign-in.
    let web_request = code_request(&web.id, "https://web.example/cb", "notes:read", &pkce());
    let page = sign_in_for(web_request.clone()).await;
    assert_eq!(form_action(&page), "form-action 'self' https://web.example");
    // A public client never does (a consent or confirmation page comes first); nor does a
    // request with prompt=consent.
    let page = sign_in_for(code_request(
        &native.id,
        APP_REDIRECT,
        "notes:read",
        &pkce(),
    ))
    .await;
    assert_eq!(form_action(&page), "form-action 'self'");
    let page = sign_in_for(format!("{web_request}&prompt=consent")).await;
    assert_eq!(form_action(&page), "form-action 'self'");
    // Any other return_to: this server only.
    let page = b.get("/login?return_to=%2Faccount").await;
    assert_eq!(form_action(&page), "form-action 'self'");
}
