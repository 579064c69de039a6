//! The real-browser end-to-end test: headless Chromium driven over WebDriver (chromedriver +
//! fantoccini) through `serve --demo`: sign in, consent (naming the device), the demo callback
//! exchanging the code, a refresh, "Steal the refresh token" (the copy refused without the app's
//! DPoP key, the security event shown, the device refreshing after), then revoking the device on
//! /account and seeing the refresh fail; a second sign-in through the one-click confirmation (the demo app is public), removing
//! the app's access, and forms whose submission ends in a redirect to another origin (which
//! Chromium checks against CSP `form-action`). A second test (`browser/cors.rs`): a single-page
//! app on another origin runs the code + PKCE flow, a refresh and a revocation with `fetch`.
//! Screenshots of each page go to `target/screenshots/`.
//!
//! Run alone with `cargo test --test browser`. Without /usr/bin/chromium or
//! /usr/bin/chromedriver it prints one skip line and passes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use lineage::clients::NewClient;
use lineage::clock::SystemClock;
use lineage::configuration::{KeySecret, Settings};
use lineage::db::DatabaseUrl;
use lineage::domain::{GrantType, Password, RedirectUri, Scope};
use lineage::startup::Application;
use serde_json::{Value, json};

#[path = "browser/second_visit.rs"]
mod second_visit;

#[path = "browser/cors.rs"]
mod cors;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const DEMO_PASSWORD: &str = "browser test password";
const DEVICE: &str = "E2E Chromium laptop";
const WAIT: Duration = Duration::from_secs(20);
/// Clients whose redirect URI is on another origin than the server (`localhost` rather than
/// `127.0.0.1`, served by the same process): a confidential web app and a public native app.
const ELSEWHERE_WEB: &str = "elsewhere-web";
const ELSEWHERE_NATIVE: &str = "elsewhere-native";

/// chromedriver in its own process group; the group (driver and any browser it left) is ended on
/// drop, along with the browser's profile directory.
struct Driver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl Driver {
    fn start() -> Self {
        let port = free_port();
        let profile = std::env::temp_dir().join(format!(
            "lineage-chromium-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&profile).expect("profile dir");
        let mut cmd = Command::new(CHROMEDRIVER);
        cmd.arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().expect("chromedriver starts");
        Self {
            child,
            port,
            profile,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_ready(&self) {
        let deadline = std::time::Instant::now() + WAIT;
        let status = format!("{}/status", self.url());
        loop {
            if let Ok(resp) = reqwest::get(&status).await
                && let Ok(v) = resp.json::<Value>().await
                && v["value"]["ready"] == true
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-TERM", "--", &group])
            .stderr(Stdio::null())
            .status();
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        // In case `kill` is not installed: at least the driver itself.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The demo server on a temporary SQLite database, with a known password for `demo`.
struct Server {
    issuer: String,
    /// The redirect URI of the `ELSEWHERE_*` clients.
    elsewhere: String,
    db_path: PathBuf,
    /// The server's state, to register more clients.
    state: actix_web::web::Data<lineage::state::AppState>,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.handle.abort();
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.db_path.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

async fn start_server() -> Server {
    let db_path = std::env::temp_dir().join(format!(
        "lineage-browser-{}.db",
        uuid::Uuid::new_v4().simple()
    ));
    let url = DatabaseUrl::parse(&format!("sqlite://{}", db_path.display())).expect("db url");
    let mut settings = Settings::for_database(
        url,
        KeySecret::new("browser-test-key-secret-not-for-production".into()),
    );
    settings.demo = true;
    let app = Application::build_with_clock(settings, Arc::new(SystemClock))
        .await
        .expect("the application builds");
    let state = app.state();
    lineage::demo::prepare(&state).await.expect("demo::prepare");
    let now = state.now();
    let pw = Password::new(DEMO_PASSWORD.into()).expect("demo password is valid");
    let hash = lineage::users::hash_password(&pw).expect("hash");
    state
        .db
        .write(move |c| lineage::users::set_password(c, "demo", &hash, now))
        .await
        .expect("demo password");
    let elsewhere = format!("http://localhost:{}/healthz", app.port());
    let redirect = RedirectUri::parse(&elsewhere).expect("redirect URI");
    state
        .db
        .write(move |c| {
            for (id, public) in [(ELSEWHERE_WEB, false), (ELSEWHERE_NATIVE, true)] {
                let spec = NewClient {
                    client_id: Some(id.into()),
                    name: format!("App at {id}"),
                    public,
                    grant_types: vec![GrantType::AuthorizationCode],
                    scopes: Scope::parse("notes:read").expect("scope"),
                    redirect_uris: vec![redirect.clone()],
                    audience: None,
                    first_party: false,
                };
                lineage::clients::create(c, spec, now)?;
            }
            Ok::<_, lineage::clients::RegistryError>(())
        })
        .await
        .expect("clients on another origin");
    let issuer = app.issuer().to_string();
    let handle = tokio::spawn(app.run_until_stopped());
    Server {
        issuer,
        elsewhere,
        db_path,
        state,
        handle,
    }
}

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).expect("target/screenshots");
    dir
}

async fn screenshot(browser: &Client, name: &str) {
    screenshot_named(browser, name).await.expect("screenshot");
}

async fn screenshot_named(browser: &Client, name: &str) -> Result<(), String> {
    let png = browser.screenshot().await.map_err(|e| e.to_string())?;
    let path = screenshot_dir().join(name);
    std::fs::write(&path, png).map_err(|e| e.to_string())?;
    println!("screenshot: {}", path.display());
    Ok(())
}

async fn wait_for(browser: &Client, css: &str) -> Element {
    match browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
    {
        Ok(e) => e,
        Err(e) => {
            let url = browser.current_url().await.ok();
            let _ = screenshot_named(browser, "failure.png").await;
            panic!("no {css} on {url:?}: {e}")
        }
    }
}

/// Poll the page's text until it contains `needle` (a click's navigation may still be under way).
async fn wait_for_text(browser: &Client, needle: &str) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let text = match browser.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text.contains(needle) {
            return text;
        }
        if std::time::Instant::now() > deadline {
            let _ = screenshot_named(browser, "failure.png").await;
            panic!("{needle:?} never appeared; the page says: {text}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn page_text(browser: &Client) -> String {
    browser
        .find(Locator::Css("body"))
        .await
        .expect("body")
        .text()
        .await
        .expect("body text")
}

async fn input_value(browser: &Client, css: &str) -> String {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .prop("value")
        .await
        .expect("value property")
        .unwrap_or_default()
}

/// Whether Chromium and chromedriver are installed; if not, says the test is skipped.
fn chromium_installed() -> bool {
    for binary in [CHROMIUM, CHROMEDRIVER] {
        if !Path::new(binary).exists() {
            println!("skipping the real-browser test: {binary} is not installed");
            return false;
        }
    }
    true
}

/// One browser at a time: the tests of this file would otherwise start several Chromiums at once.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A WebDriver session with headless Chromium, on the driver's fresh profile.
async fn open_chromium(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--window-size=1280,900",
                format!("--user-data-dir={}", driver.profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url())
        .await
        .expect("a WebDriver session with Chromium")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_consent_refresh_and_revoke_in_a_real_browser() {
    if !chromium_installed() {
        return;
    }
    let _one = ONE_BROWSER.lock().await;
    let server = start_server().await;
    let driver = Driver::start();
    driver.wait_ready().await;
    let browser = open_chromium(&driver).await;
    let outcome = run(&browser, &server).await;
    let _ = browser.close().await;
    drop(driver);
    outcome.unwrap_or_else(|e| panic!("{e}"));
}

/// The walk itself; errors are returned so the browser is closed before the test fails.
async fn run(browser: &Client, server: &Server) -> Result<(), String> {
    let issuer = &server.issuer;
    browser
        .set_window_size(1280, 900)
        .await
        .map_err(|e| e.to_string())?;

    // The demo app sends the browser to /authorize, which sends it to sign in.
    browser
        .goto(&format!("{issuer}/demo/start"))
        .await
        .map_err(|e| e.to_string())?;
    let username = wait_for(browser, "form[action='/login'] input[name=username]").await;
    let url = browser.current_url().await.map_err(|e| e.to_string())?;
    if url.path() != "/login" {
        return Err(format!("expected the sign-in page, got {url}"));
    }
    let text = page_text(browser).await;
    if !text.contains("Demo notes app") {
        return Err(format!("the sign-in page does not name the app: {text}"));
    }
    screenshot(browser, "login.png").await;
    username
        .send_keys("demo")
        .await
        .map_err(|e| e.to_string())?;
    browser
        .find(Locator::Css("input[name=password]"))
        .await
        .map_err(|e| e.to_string())?
        .send_keys(DEMO_PASSWORD)
        .await
        .map_err(|e| e.to_string())?;
    browser
        .find(Locator::Css("form[action='/login'] button[type=submit]"))
        .await
        .map_err(|e| e.to_string())?
        .click()
        .await
        .map_err(|e| e.to_string())?;

    // Consent: name the device, allow.
    let device = wait_for(browser, "form[action='/consent'] input[name=device_name]").await;
    let prefilled = input_value(browser, "input[name=device_name]").await;
    if !prefilled.contains("Chrome") {
        return Err(format!(
            "device name not prefilled from the user agent: {prefilled:?}"
        ));
    }
    device.clear().await.map_err(|e| e.to_string())?;
    device.send_keys(DEVICE).await.map_err(|e| e.to_string())?;
    screenshot(browser, "consent.png").await;
    browser
        .find(Locator::Css("button[name=decision][value=allow]"))
        .await
        .map_err(|e| e.to_string())?
        .click()
        .await
        .map_err(|e| e.to_string())?;

    // The callback exchanged the code.
    wait_for(browser, "form[action='/demo/refresh']").await;
    let url = browser.current_url().await.map_err(|e| e.to_string())?;
    if url.path() != "/demo/callback" || !url.query().unwrap_or("").contains("code=") {
        return Err(format!("expected the demo callback with a code, got {url}"));
    }
    let text = page_text(browser).await;
    if !text.contains("Signed in: the app has its tokens") {
        return Err(format!("the code exchange failed: {text}"));
    }
    let first = input_value(
        browser,
        "form[action='/demo/refresh'] input[name=refresh_token]",
    )
    .await;

    // Refresh: the token rotates.
    browser
        .find(Locator::Css(
            "form[action='/demo/refresh'] button[type=submit]",
        ))
        .await
        .map_err(|e| e.to_string())?
        .click()
        .await
        .map_err(|e| e.to_string())?;
    wait_for(browser, "form[action='/demo/replay']").await;
    let rotated = input_value(
        browser,
        "form[action='/demo/refresh'] input[name=refresh_token]",
    )
    .await;
    if rotated.is_empty() || rotated == first {
        return Err(format!("the refresh did not rotate: {first} → {rotated}"));
    }
    screenshot(browser, "demo.png").await;
    let text = page_text(browser).await;
    if !text.contains("token_type DPoP") || !text.contains("cnf.jkt — the same key") {
        return Err(format!(
            "the demo's tokens are not bound to its key: {text}"
        ));
    }

    // Steal the refresh token: a copy without the app's key is refused, the page shows the
    // security event, and the device refreshes with the same token right after.
    click(browser, "form[action='/demo/steal'] button[type=submit]").await?;
    let text = wait_for_text(browser, "The stolen refresh token was refused").await;
    if !text.contains("invalid_grant — the refresh token is bound to another DPoP key")
        || !text.contains("signed with another key than the one that device holds")
    {
        return Err(format!(
            "the steal's refusal or its event is missing: {text}"
        ));
    }
    screenshot(browser, "demo-steal.png").await;
    let stolen = rotated;
    let rotated = input_value(
        browser,
        "form[action='/demo/refresh'] input[name=refresh_token]",
    )
    .await;
    if rotated.is_empty() || rotated == stolen {
        return Err(format!(
            "the device did not refresh after the steal: {text}"
        ));
    }

    // The account page, in a second tab, lists the device; revoke it there.
    let demo_tab = browser.window().await.map_err(|e| e.to_string())?;
    let account_tab = browser.new_window(true).await.map_err(|e| e.to_string())?;
    browser
        .switch_to_window(account_tab.handle)
        .await
        .map_err(|e| e.to_string())?;
    browser
        .goto(&format!("{issuer}/account"))
        .await
        .map_err(|e| e.to_string())?;
    wait_for(browser, "table.devices").await;
    let text = page_text(browser).await;
    if !text.contains(DEVICE) || !text.contains("Demo notes app") {
        return Err(format!("the account page does not list the device: {text}"));
    }
    screenshot(browser, "account.png").await;
    // The same page on a phone-sized window (the table turns into stacked rows).
    browser
        .set_window_size(412, 900)
        .await
        .map_err(|e| e.to_string())?;
    screenshot(browser, "account-phone.png").await;
    browser
        .set_window_size(1280, 900)
        .await
        .map_err(|e| e.to_string())?;
    let rows = browser
        .find_all(Locator::Css("table.devices tbody tr"))
        .await
        .map_err(|e| e.to_string())?;
    let mut revoke = None;
    for row in rows {
        if row
            .text()
            .await
            .map_err(|e| e.to_string())?
            .contains(DEVICE)
        {
            revoke = Some(
                row.find(Locator::Css("form[action$='/revoke'] button"))
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
    }
    revoke
        .ok_or("no revoke button in the device's row")?
        .click()
        .await
        .map_err(|e| e.to_string())?;
    wait_for(browser, ".notice").await;
    for row in browser
        .find_all(Locator::Css("table.devices tbody tr"))
        .await
        .map_err(|e| e.to_string())?
    {
        let text = row.text().await.map_err(|e| e.to_string())?;
        if text.contains(DEVICE) {
            return Err(format!("the revoked device is still listed: {text}"));
        }
    }
    let text = page_text(browser).await;
    if !text.contains(&format!("{DEVICE} was signed out from the account page")) {
        return Err(format!("no security event for the revocation: {text}"));
    }

    // The token alone is refused at the token endpoint (the demo app must prove its key)…
    let resp = reqwest::Client::new()
        .post(format!("{issuer}/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "demo-app"),
            ("refresh_token", rotated.as_str()),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let body: Value = resp.json().await.map_err(|e| e.to_string())?;
    if status != 400 || body["error"] != "invalid_dpop_proof" {
        return Err(format!(
            "a refresh without the key succeeded? {status} {body}"
        ));
    }
    // …and the app's own refresh, with its key, fails now: back to its tab, press Refresh again.
    browser
        .switch_to_window(demo_tab)
        .await
        .map_err(|e| e.to_string())?;
    browser
        .find(Locator::Css(
            "form[action='/demo/refresh'] button[type=submit]",
        ))
        .await
        .map_err(|e| e.to_string())?
        .click()
        .await
        .map_err(|e| e.to_string())?;
    let text = wait_for_text(browser, "The refresh failed").await;
    if !text.contains("invalid_grant") {
        return Err(format!("the demo's refresh after revoking: {text}"));
    }
    second_visit::sign_in_again_and_remove_access(browser, issuer).await?;
    second_visit::forms_that_end_on_another_origin(browser, server).await
}

async fn click(browser: &Client, css: &str) -> Result<(), String> {
    browser
        .find(Locator::Css(css))
        .await
        .map_err(|e| format!("{css}: {e}"))?
        .click()
        .await
        .map_err(|e| e.to_string())
}
