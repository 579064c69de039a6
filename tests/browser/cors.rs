//! A single-page app on another origin (`http://localhost:SPA`, the issuer being
//! `http://127.0.0.1:ISSUER`) in the real browser: its script makes the PKCE pair and sends the
//! browser to /authorize; after sign-in and consent, the callback page exchanges the code,
//! refreshes, revokes and refreshes again, all with cross-origin `fetch`. The same page on an
//! origin the client did not register cannot read `/token`, but can read the JWKS.

use std::net::TcpListener;

use actix_web::{App, HttpResponse, HttpServer, web};
use fantoccini::{Client, Locator};
use lineage::clients::NewClient;
use lineage::domain::{GrantType, RedirectUri, Scope};
use serde_json::Value;

use super::{
    DEMO_PASSWORD, Driver, ONE_BROWSER, Server, WAIT, chromium_installed, click, open_chromium,
    screenshot, screenshot_named, start_server, wait_for,
};

const SPA_CLIENT: &str = "browser-spa";

/// The app's only page; its script does what the path asks (see the module comment).
const SPA_SCRIPT: &str = r#"
const out = (v) => { document.getElementById('result').textContent = JSON.stringify(v); };
const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
  .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const REDIRECT = 'http://localhost:' + location.port + '/callback';
async function call(path, init) {
  try {
    const r = await fetch(ISSUER + path, init);
    const text = await r.text();
    let body = null;
    try { body = JSON.parse(text); } catch (e) {}
    return { status: r.status, body };
  } catch (e) {
    return { error: String(e) };
  }
}
const post = (path, params, headers) => call(path, {
  method: 'POST',
  headers: Object.assign({ 'Content-Type': 'application/x-www-form-urlencoded' }, headers || {}),
  body: new URLSearchParams(params),
});
async function start() {
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  const state = b64url(crypto.getRandomValues(new Uint8Array(16)));
  sessionStorage.setItem('pkce', JSON.stringify({ verifier, state }));
  location.assign(ISSUER + '/authorize?' + new URLSearchParams({
    response_type: 'code', client_id: CLIENT, redirect_uri: REDIRECT, scope: 'notes:read',
    state, code_challenge: b64url(digest), code_challenge_method: 'S256',
  }));
}
async function callback() {
  const q = new URLSearchParams(location.search);
  const saved = JSON.parse(sessionStorage.getItem('pkce') || '{}');
  const r = { state_ok: q.get('state') === saved.state };
  r.metadata = await call('/.well-known/oauth-authorization-server');
  r.exchange = await post('/token', {
    grant_type: 'authorization_code', client_id: CLIENT, code: q.get('code'),
    redirect_uri: REDIRECT, code_verifier: saved.verifier,
  });
  const first = (r.exchange.body || {}).refresh_token;
  r.refresh = await post('/token', { grant_type: 'refresh_token', client_id: CLIENT, refresh_token: first });
  const second = (r.refresh.body || {}).refresh_token;
  // Authorization is not a CORS-safelisted header: this one goes through a preflight. A public
  // client has no secret, so the answer is invalid_client, and the page can read it.
  r.preflighted = await post('/revoke', { token: second }, { Authorization: 'Basic ' + btoa(CLIENT + ':') });
  r.revoke = await post('/revoke', { client_id: CLIENT, token: second });
  r.after_revoke = await post('/token', { grant_type: 'refresh_token', client_id: CLIENT, refresh_token: second });
  out(r);
}
async function probe() {
  out({
    token: await post('/token', { grant_type: 'refresh_token', client_id: CLIENT, refresh_token: 'x' }),
    jwks: await call('/jwks.json'),
  });
}
({ '/': start, '/callback': callback, '/probe': probe })[location.pathname]();
"#;

fn spa_page(issuer: &str) -> String {
    format!(
        "<!doctype html><html><head><title>SPA</title></head><body><pre id=result></pre>\
         <script>const ISSUER = '{issuer}'; const CLIENT = '{SPA_CLIENT}';{SPA_SCRIPT}</script>\
         </body></html>"
    )
}

/// Register the app (public, code + refresh) with its redirect URI on the app's origin.
async fn register_spa(server: &Server, redirect: &str) {
    let redirect = RedirectUri::parse(redirect).expect("redirect URI");
    let now = server.state.now();
    server
        .state
        .db
        .write(move |c| {
            let spec = NewClient {
                client_id: Some(SPA_CLIENT.into()),
                name: "Notes in the browser".into(),
                public: true,
                grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
                scopes: Scope::parse("notes:read").expect("scope"),
                redirect_uris: vec![redirect],
                audience: None,
                first_party: false,
            };
            lineage::clients::create(c, spec, now)
        })
        .await
        .expect("the browser app is registered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_on_another_origin_signs_in_refreshes_and_revokes_with_fetch() {
    if !chromium_installed() {
        return;
    }
    let _one = ONE_BROWSER.lock().await;
    let server = start_server().await;
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port for the app");
    let spa_port = listener.local_addr().expect("address").port();
    register_spa(&server, &format!("http://localhost:{spa_port}/callback")).await;
    let page = spa_page(&server.issuer);
    let spa = HttpServer::new(move || {
        let page = page.clone();
        App::new().default_service(web::to(move || {
            let page = page.clone();
            async move {
                HttpResponse::Ok()
                    .content_type("text/html; charset=utf-8")
                    .body(page)
            }
        }))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .expect("the app listens")
    .run();
    let spa = tokio::spawn(spa);

    let driver = Driver::start();
    driver.wait_ready().await;
    let browser = open_chromium(&driver).await;
    let outcome = walk(&browser, spa_port).await;
    let _ = browser.close().await;
    drop(driver);
    spa.abort();
    outcome.unwrap_or_else(|e| panic!("{e}"));
}

/// What the page wrote into `#result`, once it has.
async fn result(browser: &Client) -> Result<Value, String> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Ok(pre) = browser.find(Locator::Css("#result")).await {
            let text = pre.text().await.unwrap_or_default();
            if !text.is_empty() {
                return serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"));
            }
        }
        if std::time::Instant::now() > deadline {
            let _ = screenshot_named(browser, "spa-failure.png").await;
            let url = browser.current_url().await.ok();
            return Err(format!("the app page at {url:?} wrote no result"));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn walk(browser: &Client, spa_port: u16) -> Result<(), String> {
    let err = |e: fantoccini::error::CmdError| e.to_string();
    browser
        .goto(&format!("http://localhost:{spa_port}/"))
        .await
        .map_err(err)?;
    // The app's script sent the browser to /authorize, which asks to sign in.
    let username = wait_for(browser, "form[action='/login'] input[name=username]").await;
    username.send_keys("demo").await.map_err(err)?;
    browser
        .find(Locator::Css("input[name=password]"))
        .await
        .map_err(err)?
        .send_keys(DEMO_PASSWORD)
        .await
        .map_err(err)?;
    click(browser, "form[action='/login'] button[type=submit]").await?;
    wait_for(browser, "button[name=decision][value=allow]").await;
    screenshot(browser, "spa-consent.png").await;
    click(browser, "button[name=decision][value=allow]").await?;

    let r = result(browser).await?;
    let url = browser.current_url().await.map_err(err)?;
    screenshot(browser, "spa-callback.png").await;
    let fail = |what: &str| format!("{what}: {r:#}");
    if url.host_str() != Some("localhost") || url.path() != "/callback" {
        return Err(fail(&format!("expected the app's callback, got {url}")));
    }
    if r["state_ok"] != true || r["metadata"]["status"] != 200 {
        return Err(fail("state or metadata"));
    }
    let exchange = &r["exchange"];
    if exchange["status"] != 200 || !exchange["body"]["access_token"].is_string() {
        return Err(fail("the code exchange by fetch"));
    }
    let refresh = &r["refresh"];
    if refresh["status"] != 200
        || !refresh["body"]["refresh_token"].is_string()
        || refresh["body"]["refresh_token"] == exchange["body"]["refresh_token"]
    {
        return Err(fail("the refresh by fetch did not rotate"));
    }
    if r["preflighted"]["status"] != 401 || r["preflighted"]["body"]["error"] != "invalid_client" {
        return Err(fail("the preflighted call"));
    }
    if r["revoke"]["status"] != 200
        || r["after_revoke"]["status"] != 400
        || r["after_revoke"]["body"]["error"] != "invalid_grant"
    {
        return Err(fail("revoking by fetch"));
    }

    // The same page on 127.0.0.1: an origin this client never registered.
    browser
        .goto(&format!("http://127.0.0.1:{spa_port}/probe"))
        .await
        .map_err(err)?;
    let r = result(browser).await?;
    if r["token"]["error"].as_str().is_none_or(|e| e.is_empty()) {
        return Err(format!("another origin read the token endpoint: {r:#}"));
    }
    if r["jwks"]["status"] != 200 || !r["jwks"]["body"]["keys"].is_array() {
        return Err(format!("the JWKS is not readable from any origin: {r:#}"));
    }
    Ok(())
}
