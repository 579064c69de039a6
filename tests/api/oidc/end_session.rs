//! OpenID Connect RP-Initiated Logout 1.0: the app sends the browser to the
//! `end_session_endpoint`; lineage asks the user to confirm, ends the browser session (and on
//! request the app's sign-in on this device, published to the feed and to back-channel logout),
//! and returns only to a registered `post_logout_redirect_uri`, with `state`.

use lineage::domain::{LogoutUri, RedirectUri};
use lineage::tokens::keys::KeyAlgorithm;

use super::{oidc_client, oidc_tokens};
use crate::helpers::{
    Backend, Browser, CliDir, Page, TestApp, TestClient, Tokens, cli_json, create_user, feed_json,
    feed_sids, is_signed_in, refresh, spawn_app,
};

both_backends!(
    the_user_confirms_and_returns_to_the_app_with_state,
    the_confirmation_needs_the_csrf_token,
    cancel_returns_to_the_app_still_signed_in,
    only_a_registered_uri_is_returned_to,
    a_hint_for_another_user_is_said_and_ends_only_this_browser,
    a_hint_that_is_not_ours_is_refused,
    the_apps_sign_in_is_revoked_when_asked_and_published,
    without_a_session_the_browser_goes_straight_on,
    the_cli_registers_post_logout_redirect_uris,
);

/// Where the test app returns after signing out.
const AFTER_LOGOUT: &str = "http://127.0.0.1:7777/signed-out";
const STATE: &str = "bye-state";

/// A server, alice signed in on a browser, an app she allowed, and its ID token.
struct Fixture {
    app: TestApp,
    client: TestClient,
    browser: Browser,
    tokens: Tokens,
}

impl Fixture {
    async fn new(app: TestApp) -> Self {
        create_user(&app, "alice").await;
        let client = oidc_client(&app, KeyAlgorithm::RS256).await;
        register_return(&app, &client.id, AFTER_LOGOUT).await;
        let browser = app.browser();
        let tokens = oidc_tokens(&app, &browser, &client, "alice", &[]).await;
        Self {
            app,
            client,
            browser,
            tokens,
        }
    }

    fn id_token(&self) -> String {
        self.tokens.body["id_token"]
            .as_str()
            .expect("an ID token")
            .to_string()
    }

    /// The end-session request with the ID token as hint, the registered URI and `state`.
    fn request(&self) -> String {
        end_session_path(&[
            ("id_token_hint", &self.id_token()),
            ("post_logout_redirect_uri", AFTER_LOGOUT),
            ("state", STATE),
        ])
    }

    /// Whether the app's refresh token still works.
    async fn app_signed_in(&self) -> bool {
        let resp = refresh(&self.app, &self.client.id, &self.tokens.refresh_token).await;
        resp.status() == 200
    }
}

async fn register_return(app: &TestApp, client_id: &str, uri: &str) {
    let (id, uri) = (
        client_id.to_string(),
        RedirectUri::parse(uri).expect("a URI"),
    );
    let now = app.now();
    app.db
        .write(move |c| lineage::clients::set_post_logout_redirect_uris(c, &id, &[uri], now))
        .await
        .expect("register the post-logout redirect URI");
}

fn end_session_path(params: &[(&str, &str)]) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    format!("/logout/end-session?{query}")
}

/// Submit the confirmation page's form with `decision` and the extra fields.
async fn answer(browser: &Browser, page: &Page, decision: &str, extra: &[(&str, &str)]) -> Page {
    let form = page
        .form("/logout/end-session/confirm")
        .unwrap_or_else(|| panic!("no confirmation form: {}", page.describe()));
    let csrf = form.value("csrf_token").expect("csrf_token");
    let request = form.value("request").expect("request");
    let mut fields = vec![
        ("csrf_token", csrf.as_str()),
        ("request", request.as_str()),
        ("decision", decision),
    ];
    fields.extend_from_slice(extra);
    browser.post("/logout/end-session/confirm", &fields).await
}

fn with_state() -> String {
    format!("{AFTER_LOGOUT}?state={STATE}")
}

async fn the_user_confirms_and_returns_to_the_app_with_state(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let f = Fixture::new(app).await;
    let page = f.browser.get(&f.request()).await;
    assert_eq!(page.status, 200, "{}", page.describe());
    assert!(page.contains("Sign out of lineage?"), "{}", page.describe());
    assert!(page.contains(crate::helpers::APP_NAME), "names the app");
    assert!(
        page.contains("Also sign"),
        "offers to end the app's sign-in"
    );
    // Showing the page ends nothing.
    assert!(is_signed_in(&f.browser).await);
    let done = answer(&f.browser, &page, "sign_out", &[]).await;
    assert_eq!(done.status, 303, "{}", done.describe());
    assert_eq!(done.location(), Some(with_state().as_str()));
    assert!(
        done.set_cookie("lineage_session")
            .is_some_and(|c| c.is_removal()),
        "the session cookie is removed"
    );
    assert!(
        !is_signed_in(&f.browser).await,
        "the account page asks to sign in"
    );
    // Not asked to: the app's own sign-in on this device lives on.
    assert!(f.app_signed_in().await);
}

async fn the_confirmation_needs_the_csrf_token(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let f = Fixture::new(app).await;
    let page = f.browser.get(&f.request()).await;
    let form = page.form("/logout/end-session/confirm").expect("form");
    let request = form.value("request").expect("request");
    for csrf in [None, Some("forged")] {
        let mut fields = vec![("request", request.as_str()), ("decision", "sign_out")];
        if let Some(t) = csrf {
            fields.push(("csrf_token", t));
        }
        let resp = f.browser.post("/logout/end-session/confirm", &fields).await;
        assert_eq!(resp.status, 400, "{}", resp.describe());
        assert!(resp.location().is_none());
        assert!(is_signed_in(&f.browser).await, "still signed in");
    }
    // A request handle altered by the page's reader is refused too.
    let csrf = form.value("csrf_token").expect("csrf");
    let fields = [
        ("csrf_token", csrf.as_str()),
        ("request", "eyJyZWRpcmVjdF91cmkiOiJodHRwczovL2V2aWwifQ.AAAA"),
        ("decision", "sign_out"),
    ];
    let resp = f.browser.post("/logout/end-session/confirm", &fields).await;
    assert_eq!(resp.status, 400, "{}", resp.describe());
    assert!(is_signed_in(&f.browser).await);
}

async fn cancel_returns_to_the_app_still_signed_in(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let f = Fixture::new(app).await;
    let page = f.browser.get(&f.request()).await;
    let back = answer(&f.browser, &page, "cancel", &[("end_app", "on")]).await;
    assert_eq!(back.status, 303, "{}", back.describe());
    assert_eq!(back.location(), Some(with_state().as_str()));
    assert!(is_signed_in(&f.browser).await);
    assert!(f.app_signed_in().await);
    // Without an address to return to, cancel goes to the account page.
    let page = f
        .browser
        .get(&end_session_path(&[("id_token_hint", &f.id_token())]))
        .await;
    let back = answer(&f.browser, &page, "cancel", &[]).await;
    assert_eq!(back.location(), Some("/account"));
}

async fn only_a_registered_uri_is_returned_to(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let f = Fixture::new(app).await;
    let other = oidc_client(&f.app, KeyAlgorithm::RS256).await;
    let theirs = "http://127.0.0.1:7777/other-app";
    register_return(&f.app, &other.id, theirs).await;
    let hint = f.id_token();
    let refused = [
        // Not registered by anyone.
        vec![
            ("id_token_hint", hint.as_str()),
            ("post_logout_redirect_uri", "https://evil.example/"),
        ],
        // A prefix of the registered one is not it.
        vec![
            ("client_id", f.client.id.as_str()),
            ("post_logout_redirect_uri", "http://127.0.0.1:7777/signed"),
        ],
        // Registered, but for another client than the hint's.
        vec![
            ("id_token_hint", hint.as_str()),
            ("post_logout_redirect_uri", theirs),
        ],
        // No client named at all.
        vec![("post_logout_redirect_uri", AFTER_LOGOUT)],
        // A client_id that disagrees with the hint's audience.
        vec![
            ("id_token_hint", hint.as_str()),
            ("client_id", other.id.as_str()),
            ("post_logout_redirect_uri", theirs),
        ],
    ];
    for params in refused {
        for browser in [&f.browser, &f.app.browser()] {
            let page = browser.get(&end_session_path(&params)).await;
            assert_eq!(page.status, 400, "{params:?}: {}", page.describe());
            assert!(page.location().is_none(), "never a redirect: {params:?}");
        }
    }
    // A POSTed request is checked the same way.
    let page = f
        .browser
        .post(
            "/logout/end-session",
            &[
                ("client_id", f.client.id.as_str()),
                ("post_logout_redirect_uri", "https://evil.example/"),
            ],
        )
        .await;
    assert_eq!(page.status, 400, "{}", page.describe());
    assert!(is_signed_in(&f.browser).await);
    // By client_id alone, the registered URI is fine (POST, as a form would send it).
    let page = f
        .browser
        .post(
            "/logout/end-session",
            &[
                ("client_id", f.client.id.as_str()),
                ("post_logout_redirect_uri", AFTER_LOGOUT),
                ("state", STATE),
            ],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.describe());
    let done = answer(&f.browser, &page, "sign_out", &[]).await;
    assert_eq!(done.location(), Some(with_state().as_str()));
}

async fn a_hint_for_another_user_is_said_and_ends_only_this_browser(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let f = Fixture::new(app).await;
    create_user(&f.app, "bob").await;
    let bobs = f.app.browser();
    bobs.sign_in("bob", crate::helpers::PASSWORD).await;
    assert!(is_signed_in(&bobs).await);
    // Alice's app sends bob's browser to sign out with alice's ID token.
    let page = bobs.get(&f.request()).await;
    assert_eq!(page.status, 200, "{}", page.describe());
    assert!(
        page.contains("different lineage account"),
        "{}",
        page.describe()
    );
    assert!(
        !page.contains("Also sign"),
        "alice's app sign-in is not offered"
    );
    let done = answer(&bobs, &page, "sign_out", &[("end_app", "on")]).await;
    assert_eq!(done.location(), Some(with_state().as_str()));
    assert!(!is_signed_in(&bobs).await, "bob chose to sign out");
    // Alice is untouched, in her browser and in her app.
    assert!(is_signed_in(&f.browser).await);
    assert!(f.app_signed_in().await);
}

async fn a_hint_that_is_not_ours_is_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let f = Fixture::new(app).await;
    // An ID token from another lineage (another issuer and keys), for a client of that name.
    let Some(elsewhere) = spawn_app(backend).await else {
        return;
    };
    create_user(&elsewhere, "alice").await;
    let client = oidc_client(&elsewhere, KeyAlgorithm::RS256).await;
    let foreign = oidc_tokens(&elsewhere, &elsewhere.browser(), &client, "alice", &[]).await;
    let foreign = foreign.body["id_token"].as_str().expect("id token");
    // Ours, with one character of its claims changed.
    let hint = f.id_token();
    let mut parts: Vec<String> = hint.split('.').map(str::to_string).collect();
    let flipped = if parts[1].ends_with('A') { 'B' } else { 'A' };
    parts[1].pop();
    parts[1].push(flipped);
    let tampered = parts.join(".");
    for bad in [
        foreign,
        tampered.as_str(),
        "not-a-jwt",
        f.tokens.access_token.as_str(),
    ] {
        let page = f
            .browser
            .get(&end_session_path(&[
                ("id_token_hint", bad),
                ("post_logout_redirect_uri", AFTER_LOGOUT),
            ]))
            .await;
        assert_eq!(page.status, 400, "{}", page.describe());
        assert!(page.location().is_none());
    }
    assert!(is_signed_in(&f.browser).await);
    // An expired hint of ours is fine (§2: the OP ignores its expiry).
    f.app.clock.advance(2 * 3600);
    let page = f.browser.get(&f.request()).await;
    assert_eq!(page.status, 200, "{}", page.describe());
}

async fn the_apps_sign_in_is_revoked_when_asked_and_published(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let f = Fixture::new(app).await;
    // The app listens for back-channel logout (nothing answers there; the row is what counts).
    let (id, now) = (f.client.id.clone(), f.app.now());
    let uri = LogoutUri::parse("http://127.0.0.1:9/backchannel").expect("a logout URI");
    f.app
        .db
        .write(move |c| lineage::clients::set_backchannel_logout_uri(c, &id, Some(&uri), now))
        .await
        .expect("set the logout URI");
    let sid = f.tokens.sid();
    assert!(!feed_sids(&feed_json(&f.app).await).contains(&sid));
    let page = f.browser.get(&f.request()).await;
    let done = answer(&f.browser, &page, "sign_out", &[("end_app", "on")]).await;
    assert_eq!(done.location(), Some(with_state().as_str()));
    assert!(!is_signed_in(&f.browser).await);
    assert!(
        !f.app_signed_in().await,
        "the app's refresh token is revoked"
    );
    assert!(feed_sids(&feed_json(&f.app).await).contains(&sid));
    let client_id = f.client.id.clone();
    let counts = f
        .app
        .db
        .read(move |c| lineage::db::models::logout_deliveries::counts_for_client(c, &client_id))
        .await
        .expect("delivery counts");
    assert_eq!(
        counts.pending + counts.delivered + counts.given_up,
        1,
        "one logout token queued for the app: {counts:?}"
    );
}

async fn without_a_session_the_browser_goes_straight_on(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let f = Fixture::new(app).await;
    let stranger = f.app.browser();
    let page = stranger.get(&f.request()).await;
    assert_eq!(page.status, 303, "{}", page.describe());
    assert_eq!(page.location(), Some(with_state().as_str()));
    // Without an address to return to: lineage's own page.
    let page = stranger
        .get(&end_session_path(&[("client_id", &f.client.id)]))
        .await;
    assert_eq!(page.status, 200, "{}", page.describe());
    assert!(page.contains("You are signed out"), "{}", page.describe());
    // Nothing of alice's ended.
    assert!(is_signed_in(&f.browser).await);
    assert!(f.app_signed_in().await);
}

async fn the_cli_registers_post_logout_redirect_uris(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let dir = CliDir::new();
    let created = cli_json(
        &app,
        &dir,
        &[
            "client",
            "create",
            "--name",
            "Notes",
            "--public",
            "--scope",
            "openid",
            "--redirect-uri",
            "http://127.0.0.1:7777/cb",
            "--post-logout-redirect-uri",
            AFTER_LOGOUT,
            "--post-logout-redirect-uri",
            "com.example.notes:/bye",
            "--json",
        ],
    );
    let id = created["client_id"]
        .as_str()
        .expect("client_id")
        .to_string();
    let both = [AFTER_LOGOUT, "com.example.notes:/bye"];
    assert_eq!(
        created["post_logout_redirect_uris"],
        serde_json::json!(both)
    );
    let shown = cli_json(&app, &dir, &["client", "show", &id, "--json"]);
    assert_eq!(shown["post_logout_redirect_uris"], serde_json::json!(both));
    // Honoured by the endpoint.
    let page = app
        .browser()
        .get(&end_session_path(&[
            ("client_id", &id),
            ("post_logout_redirect_uri", "com.example.notes:/bye"),
        ]))
        .await;
    assert_eq!(page.location(), Some("com.example.notes:/bye"));
    let args = ["client", "update", &id, "--post-logout-redirect-uri"];
    let replaced = cli_json(&app, &dir, &[&args[..], &[AFTER_LOGOUT, "--json"]].concat());
    assert_eq!(
        replaced["post_logout_redirect_uris"],
        serde_json::json!([AFTER_LOGOUT])
    );
    let cleared = cli_json(
        &app,
        &dir,
        &[
            "client",
            "update",
            &id,
            "--no-post-logout-redirect-uris",
            "--json",
        ],
    );
    assert_eq!(cleared["post_logout_redirect_uris"], serde_json::json!([]));
    let page = app
        .browser()
        .get(&end_session_path(&[
            ("client_id", &id),
            ("post_logout_redirect_uri", AFTER_LOGOUT),
        ]))
        .await;
    assert_eq!(page.status, 400, "{}", page.describe());
    // The same rules as redirect URIs: a fragment is refused.
    let out = crate::helpers::lineage_cli(
        &app,
        &dir,
        &[
            "client",
            "update",
            &id,
            "--post-logout-redirect-uri",
            "https://a.example/#x",
        ],
    );
    assert!(!out.status.success());
}
