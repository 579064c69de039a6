//! What the front-channel tests (sign-in, consent, codes, account page, demo) share: a `Browser`
//! (reqwest with a cookie jar of its own and no automatic redirects, so every 303 and every
//! `Set-Cookie` can be looked at), a tiny HTML reader for form fields, PKCE pairs, and the steps
//! of the authorization-code flow. `Front` lets these run against a `TestApp` or a `DemoApp`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lineage::clients::{self, NewClient};
use lineage::clock::{Clock, ManualClock};
use lineage::configuration::{KeySecret, Settings};
use lineage::db::Database;
use lineage::db::models::refresh_families::{self, FamilyRow};
use lineage::domain::{GrantType, Password, RedirectUri, Scope, Username};
use lineage::startup::Application;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::Value;

use crate::helpers::{Backend, KEY_SECRET, TestApp, TestClient, TestDatabase};

/// The browser's user agent: a desktop Chrome on Linux ("Chrome on Linux" on the consent page).
pub const CHROME_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";
/// The user agent of the app exchanging codes and refreshing (not the browser).
pub const APP_UA: &str = "notes-app/2.1 (test)";
/// Every test user's password.
pub const PASSWORD: &str = "correct horse battery staple";
/// The registered redirect URI of `app_client` (a native app's loopback URI).
pub const APP_REDIRECT: &str = "http://127.0.0.1:9876/callback";
pub const APP_NAME: &str = "Notes for Linux";

// ---------------------------------------------------------------------------------------------
// A server the helpers can talk to.

pub trait Front {
    /// `http://127.0.0.1:PORT`
    fn base(&self) -> &str;
    fn database(&self) -> &Database;
    fn manual_clock(&self) -> &ManualClock;

    fn at(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    fn browser(&self) -> Browser {
        Browser::new(self.base(), CHROME_UA)
    }

    fn clock_now(&self) -> i64 {
        self.manual_clock().now()
    }
}

impl Front for TestApp {
    fn base(&self) -> &str {
        &self.address
    }
    fn database(&self) -> &Database {
        &self.db
    }
    fn manual_clock(&self) -> &ManualClock {
        &self.clock
    }
}

/// A server started with `Settings.demo = true` after `lineage::demo::prepare` ran on it, as
/// `lineage serve --demo` does.
pub struct DemoApp {
    pub address: String,
    pub issuer: String,
    pub db: Database,
    pub clock: ManualClock,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _database: Arc<TestDatabase>,
}

impl Drop for DemoApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Front for DemoApp {
    fn base(&self) -> &str {
        &self.address
    }
    fn database(&self) -> &Database {
        &self.db
    }
    fn manual_clock(&self) -> &ManualClock {
        &self.clock
    }
}

/// `None` = skipped (PostgreSQL without `TEST_DATABASE_URL`).
pub async fn spawn_demo_app(backend: Backend) -> Option<DemoApp> {
    let database = Arc::new(TestDatabase::create(backend)?);
    let clock = ManualClock::starting_now();
    let mut settings = Settings::for_database(database.url(), KeySecret::new(KEY_SECRET.into()));
    settings.demo = true;
    let app = Application::build_with_clock(settings, Arc::new(clock.clone()))
        .await
        .expect("the application builds");
    lineage::demo::prepare(&app.state())
        .await
        .expect("demo::prepare");
    let (port, issuer, db) = (app.port(), app.issuer().to_string(), app.state().db.clone());
    let server = tokio::spawn(app.run_until_stopped());
    Some(DemoApp {
        address: format!("http://127.0.0.1:{port}"),
        issuer,
        db,
        clock,
        server,
        _database: database,
    })
}

/// The stored form of `password`, computed before any database job (as the server does).
fn hash(password: &str) -> lineage::users::HashedPassword {
    let password = Password::new(password.to_string()).expect("a valid password");
    lineage::users::hash_password(&password).expect("hashing")
}

/// Create a user with `PASSWORD`; returns the user id.
pub async fn create_user(app: &impl Front, name: &str) -> String {
    create_user_with(app, name, PASSWORD).await
}

pub async fn create_user_with(app: &impl Front, name: &str, password: &str) -> String {
    let (name, now) = (name.to_string(), app.clock_now());
    let hash = hash(password);
    let username = Username::parse(&name).expect("a valid username");
    app.database()
        .write(move |c| lineage::users::create(c, &username, &hash, now))
        .await
        .expect("user creation")
        .id
}

/// `lineage user set-password NAME` (the library call behind it).
pub async fn set_password(app: &impl Front, name: &str, password: &str) {
    let (name, now) = (name.to_string(), app.clock_now());
    let hash = hash(password);
    app.database()
        .write(move |c| lineage::users::set_password(c, &name, &hash, now))
        .await
        .expect("set_password");
}

/// `lineage user disable NAME` / `enable`.
pub async fn set_disabled(app: &impl Front, name: &str, disabled: bool) {
    let (name, now) = (name.to_string(), app.clock_now());
    app.database()
        .write(move |c| lineage::users::set_disabled(c, &name, disabled, now))
        .await
        .expect("set_disabled");
}

pub async fn register(app: &impl Front, spec: NewClient) -> TestClient {
    let now = app.clock_now();
    let created = app
        .database()
        .write(move |c| clients::create(c, spec, now))
        .await
        .expect("client registration");
    TestClient {
        id: created.client.client_id.to_string(),
        secret: created
            .client_secret
            .as_ref()
            .map(|s| s.expose().to_string())
            .unwrap_or_default(),
    }
}

/// A public native app (PKCE required) with a loopback redirect URI and refresh tokens.
pub fn app_spec(scopes: &str) -> NewClient {
    NewClient {
        client_id: None,
        name: APP_NAME.into(),
        public: true,
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scopes: Scope::parse(scopes).expect("valid scopes"),
        redirect_uris: vec![RedirectUri::parse(APP_REDIRECT).expect("redirect uri")],
        audience: Some("https://notes.example".into()),
        first_party: false,
    }
}

pub async fn app_client(app: &impl Front, scopes: &str) -> TestClient {
    register(app, app_spec(scopes)).await
}

/// A confidential web app at `https://web.example/cb` (PKCE optional, enforced if sent).
pub async fn web_app_client(app: &impl Front, scopes: &str) -> TestClient {
    register(
        app,
        NewClient {
            name: "Web dashboard".into(),
            public: false,
            redirect_uris: vec![RedirectUri::parse("https://web.example/cb").expect("uri")],
            ..app_spec(scopes)
        },
    )
    .await
}

pub async fn family(app: &impl Front, id: &str) -> FamilyRow {
    let id = id.to_string();
    app.database()
        .read(move |c| refresh_families::find(c, &id))
        .await
        .expect("family lookup")
        .expect("the family exists")
}

// ---------------------------------------------------------------------------------------------
// PKCE and authorization requests.

pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

/// A fresh S256 pair (64-character verifier).
pub fn pkce() -> Pkce {
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    Pkce {
        challenge: s256(&verifier),
        verifier,
    }
}

pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

/// `/authorize?…` with exactly these parameters.
pub fn authorize_path(params: &[(&str, &str)]) -> String {
    format!(
        "/authorize?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish()
    )
}

/// A well-formed request: response_type=code, S256 challenge, state `xyz-state`.
pub fn code_request(client_id: &str, redirect_uri: &str, scope: &str, pkce: &Pkce) -> String {
    authorize_path(&[
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("scope", scope),
        ("state", "xyz-state"),
        ("code_challenge", &pkce.challenge),
        ("code_challenge_method", "S256"),
    ])
}

/// The parameters of a redirect back to a client, and the URI without its query.
pub struct ClientRedirect {
    pub target: String,
    pub params: BTreeMap<String, String>,
}

impl ClientRedirect {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

pub fn parse_redirect(location: &str) -> ClientRedirect {
    let url = url::Url::parse(location)
        .unwrap_or_else(|e| panic!("Location {location:?} is not an absolute URL: {e}"));
    let params = url.query_pairs().into_owned().collect();
    let mut target = url.clone();
    target.set_query(None);
    ClientRedirect {
        target: target.to_string(),
        params,
    }
}

/// Assert a 303 back to `redirect_uri` carrying `error` (with a description, the state and iss).
pub fn assert_error_redirect(
    page: &Page,
    redirect_uri: &str,
    error: &str,
    state: Option<&str>,
    issuer: &str,
) -> ClientRedirect {
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.describe());
    let r = parse_redirect(page.location().expect("Location"));
    assert_eq!(r.target, redirect_uri, "redirected to the client's URI");
    assert_eq!(r.get("error"), Some(error), "error in {:?}", r.params);
    assert!(
        r.get("error_description").is_some_and(|d| !d.is_empty()),
        "error_description in {:?}",
        r.params
    );
    assert_eq!(
        r.get("state"),
        state,
        "state passed through: {:?}",
        r.params
    );
    assert_eq!(r.get("iss"), Some(issuer), "RFC 9207 iss: {:?}", r.params);
    assert!(r.get("code").is_none(), "no code with an error");
    r
}

// ---------------------------------------------------------------------------------------------
// The browser.

/// A response as a browser sees it.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
    pub url: String,
}

impl Page {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn location(&self) -> Option<&str> {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok())
    }

    pub fn set_cookies(&self) -> Vec<SetCookie> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(SetCookie::parse)
            .collect()
    }

    pub fn set_cookie(&self, name: &str) -> Option<SetCookie> {
        self.set_cookies().into_iter().find(|c| c.name == name)
    }

    /// For assertion messages.
    pub fn describe(&self) -> String {
        let snippet: String = self.body.chars().take(600).collect();
        format!(
            "{} {} Location={:?} body: {snippet}",
            self.url,
            self.status,
            self.location()
        )
    }

    pub fn contains(&self, text: &str) -> bool {
        self.body.contains(text)
    }

    pub fn inputs(&self) -> Vec<Tag> {
        tags(&self.body, "input")
    }

    pub fn input(&self, name: &str) -> Option<Tag> {
        self.inputs()
            .into_iter()
            .find(|t| t.attr("name") == Some(name))
    }

    /// The value of the first input named `name`, HTML-unescaped.
    pub fn value(&self, name: &str) -> Option<String> {
        self.input(name)
            .and_then(|t| t.attr("value").map(str::to_string))
    }

    /// `<form>` elements: the opening tag and the HTML inside.
    pub fn forms(&self) -> Vec<HtmlForm> {
        let mut out = Vec::new();
        let lower = self.body.to_ascii_lowercase();
        let mut from = 0;
        while let Some(start) = lower[from..].find("<form").map(|i| i + from) {
            let Some(end) = lower[start..].find("</form>").map(|i| i + start) else {
                break;
            };
            let inner = &self.body[start..end];
            if let Some(tag) = tags(inner, "form").into_iter().next() {
                out.push(HtmlForm {
                    tag,
                    html: inner.to_string(),
                });
            }
            from = end;
        }
        out
    }

    /// The first form whose action is `action`.
    pub fn form(&self, action: &str) -> Option<HtmlForm> {
        self.forms()
            .into_iter()
            .find(|f| f.tag.attr("action") == Some(action))
    }

    /// The text of the page without tags (collapsed whitespace, entities decoded).
    pub fn text(&self) -> String {
        let mut out = String::new();
        let mut in_tag = false;
        for ch in self.body.chars() {
            match ch {
                '<' => in_tag = true,
                '>' => {
                    in_tag = false;
                    out.push(' ');
                }
                c if !in_tag => out.push(c),
                _ => {}
            }
        }
        unescape(&out.split_whitespace().collect::<Vec<_>>().join(" "))
    }
}

pub struct HtmlForm {
    pub tag: Tag,
    pub html: String,
}

impl HtmlForm {
    pub fn inputs(&self) -> Vec<Tag> {
        tags(&self.html, "input")
    }
    pub fn buttons(&self) -> Vec<Tag> {
        tags(&self.html, "button")
    }
    pub fn value(&self, name: &str) -> Option<String> {
        self.inputs()
            .into_iter()
            .find(|t| t.attr("name") == Some(name))
            .and_then(|t| t.attr("value").map(str::to_string))
    }
}

/// An HTML start tag's attributes (values unescaped; bare attributes have an empty value).
#[derive(Debug, Clone)]
pub struct Tag {
    pub attrs: Vec<(String, String)>,
}

impl Tag {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every `<name …>` start tag in `html`.
pub fn tags(html: &str, name: &str) -> Vec<Tag> {
    let lower = html.to_ascii_lowercase();
    let open = format!("<{name}");
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(start) = lower[from..].find(&open).map(|i| i + from) {
        let after = start + open.len();
        let boundary = lower[after..].chars().next();
        if !matches!(boundary, Some(c) if c.is_whitespace() || c == '>' || c == '/') {
            from = after;
            continue;
        }
        let Some(end) = find_tag_end(&html[after..]).map(|i| i + after) else {
            break;
        };
        out.push(Tag {
            attrs: parse_attrs(&html[after..end]),
        });
        from = end;
    }
    out
}

/// The index of the `>` closing a start tag, skipping quoted values.
fn find_tag_end(s: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

fn parse_attrs(s: &str) -> Vec<(String, String)> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        while i < chars.len() && (chars[i].is_whitespace() || chars[i] == '/') {
            i += 1;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '=' && chars[i] != '/' {
            i += 1;
        }
        if start == i {
            break;
        }
        let key: String = chars[start..i].iter().collect::<String>().to_lowercase();
        let mut value = String::new();
        if i < chars.len() && chars[i] == '=' {
            i += 1;
            if i < chars.len() && (chars[i] == '"' || chars[i] == '\'') {
                let q = chars[i];
                i += 1;
                let vs = i;
                while i < chars.len() && chars[i] != q {
                    i += 1;
                }
                value = chars[vs..i].iter().collect();
                i += 1;
            } else {
                let vs = i;
                while i < chars.len() && !chars[i].is_whitespace() {
                    i += 1;
                }
                value = chars[vs..i].iter().collect();
            }
        }
        out.push((key, unescape(&value)));
    }
    out
}

/// Decode the character references a template engine writes.
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp..];
        let Some(semi) = tail.find(';').filter(|&i| i <= 10) else {
            out.push('&');
            rest = &tail[1..];
            continue;
        };
        let entity = &tail[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") || e.starts_with("#X") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse::<u32>().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &tail[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// One `Set-Cookie` header.
#[derive(Debug, Clone)]
pub struct SetCookie {
    pub name: String,
    pub value: String,
    /// Attribute names lowercased, values as sent.
    pub attrs: Vec<(String, String)>,
    pub raw: String,
}

impl SetCookie {
    pub fn parse(raw: &str) -> Self {
        let mut parts = raw.split(';');
        let (name, value) = parts
            .next()
            .and_then(|nv| nv.split_once('='))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .unwrap_or_default();
        let attrs = parts
            .map(|a| {
                let (k, v) = a.split_once('=').unwrap_or((a, ""));
                (k.trim().to_ascii_lowercase(), v.trim().to_string())
            })
            .collect();
        Self {
            name,
            value,
            attrs,
            raw: raw.to_string(),
        }
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.attr(name).is_some()
    }

    /// A cookie that deletes itself.
    pub fn is_removal(&self) -> bool {
        self.value.is_empty() || self.attr("max-age").is_some_and(|a| a.trim() == "0")
    }
}

/// A user's browser: keeps cookies (any path, any scheme: the tests look at the attributes
/// themselves), never follows redirects on its own.
pub struct Browser {
    base: String,
    http: reqwest::Client,
    jar: Mutex<BTreeMap<String, String>>,
}

impl Browser {
    pub fn new(base: &str, user_agent: &str) -> Self {
        Self {
            base: base.to_string(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(user_agent)
                .build()
                .expect("reqwest client"),
            jar: Mutex::new(BTreeMap::new()),
        }
    }

    /// A browser behind a proxy that forwards it as `address` (`X-Forwarded-For`), for servers
    /// that trust 127.0.0.1 as a proxy: distinct client addresses from one test.
    pub fn forwarded_as(base: &str, address: &str) -> Self {
        Self::with_headers(base, &[("x-forwarded-for", address)])
    }

    /// A browser that sends these headers with every request.
    pub fn with_headers(base: &str, extra: &[(&str, &str)]) -> Self {
        let mut headers = HeaderMap::new();
        for (name, value) in extra {
            headers.append(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
                value.parse().expect("a header value"),
            );
        }
        Self {
            base: base.to_string(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(CHROME_UA)
                .default_headers(headers)
                .build()
                .expect("reqwest client"),
            jar: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar.lock().expect("jar").get(name).cloned()
    }

    pub fn set_cookie(&self, name: &str, value: &str) {
        self.jar
            .lock()
            .expect("jar")
            .insert(name.to_string(), value.to_string());
    }

    /// Every cookie value the browser holds now.
    pub fn cookie_values(&self) -> Vec<String> {
        self.jar.lock().expect("jar").values().cloned().collect()
    }

    pub fn remove_cookie(&self, name: &str) {
        self.jar.lock().expect("jar").remove(name);
    }

    fn absolute(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    async fn send(&self, url: String, req: reqwest::RequestBuilder) -> Page {
        let cookies = {
            let jar = self.jar.lock().expect("jar");
            jar.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let req = if cookies.is_empty() {
            req
        } else {
            req.header(reqwest::header::COOKIE, cookies)
        };
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("request to {url}: {e}"));
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        let page = Page {
            status,
            headers,
            body,
            url,
        };
        let mut jar = self.jar.lock().expect("jar");
        for c in page.set_cookies() {
            if c.is_removal() {
                jar.remove(&c.name);
            } else {
                jar.insert(c.name.clone(), c.value.clone());
            }
        }
        page
    }

    pub async fn get(&self, path: &str) -> Page {
        let url = self.absolute(path);
        self.send(url.clone(), self.http.get(&url)).await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let url = self.absolute(path);
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let req = self
            .http
            .post(&url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(url.clone(), req).await
    }

    /// Follow 303s while they stay on this server; returns the first other response (which may
    /// be a redirect to a client).
    pub async fn follow(&self, mut page: Page) -> Page {
        for _ in 0..10 {
            let Some(next) = page.location().map(str::to_string) else {
                return page;
            };
            if !page.status.is_redirection() {
                return page;
            }
            let local = next.starts_with('/') && !next.starts_with("//");
            if !local && !next.starts_with(&self.base) {
                return page;
            }
            page = self.get(&next).await;
        }
        panic!("too many redirects");
    }

    /// Sign in through the form at /login; asserts the 303 and returns it.
    pub async fn sign_in(&self, username: &str, password: &str) -> Page {
        let form = self.get("/login").await;
        assert_eq!(form.status, 200, "{}", form.describe());
        self.submit_login(&form, username, password).await
    }

    /// Submit a sign-in page's form (its csrf_token and return_to) with these credentials.
    pub async fn submit_login(&self, login_page: &Page, username: &str, password: &str) -> Page {
        let csrf = login_page.value("csrf_token").expect("csrf_token input");
        let return_to = login_page.value("return_to").expect("return_to input");
        let resp = self
            .post(
                "/login",
                &[
                    ("csrf_token", &csrf),
                    ("return_to", &return_to),
                    ("username", username),
                    ("password", password),
                ],
            )
            .await;
        assert_eq!(
            resp.status,
            StatusCode::SEE_OTHER,
            "sign-in failed: {}",
            resp.describe()
        );
        resp
    }

    /// Answer a consent page.
    pub async fn decide(&self, consent: &Page, decision: &str, device_name: Option<&str>) -> Page {
        let csrf = consent.value("csrf_token").expect("csrf_token on consent");
        let request = consent.value("request").expect("request on consent");
        let mut form = vec![
            ("csrf_token", csrf.as_str()),
            ("request", request.as_str()),
            ("decision", decision),
        ];
        if let Some(d) = device_name {
            form.push(("device_name", d));
        }
        self.post("/consent", &form).await
    }

    /// Any form's hidden csrf_token on the account page.
    pub async fn account_csrf(&self) -> String {
        let page = self.get("/account").await;
        assert_eq!(page.status, 200, "{}", page.describe());
        page.value("csrf_token").expect("csrf_token on /account")
    }

    /// Run an authorization request to its redirect back to the client, signing in and allowing
    /// consent (with `device_name`) on the way as needed.
    pub async fn authorize(
        &self,
        path: &str,
        username: &str,
        device_name: Option<&str>,
    ) -> ClientRedirect {
        let mut page = self.follow(self.get(path).await).await;
        if page.url.contains("/login") && page.status == 200 {
            let after = self.submit_login(&page, username, PASSWORD).await;
            page = self.follow(after).await;
        }
        if page.status == 200 && page.input("request").is_some() {
            page = self.decide(&page, "allow", device_name).await;
        }
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.describe());
        parse_redirect(page.location().expect("Location"))
    }

    /// `authorize` that expects a code with state `xyz-state`; returns the code.
    pub async fn code(&self, path: &str, username: &str, device_name: Option<&str>) -> String {
        let r = self.authorize(path, username, device_name).await;
        assert_eq!(r.get("state"), Some("xyz-state"), "{:?}", r.params);
        r.get("code")
            .unwrap_or_else(|| panic!("no code in {:?}", r.params))
            .to_string()
    }
}

/// Assert the security headers of an HTML response.
pub fn assert_html_security_headers(page: &Page) {
    let what = format!("{} {}", page.url, page.status);
    assert!(
        page.header("content-type").starts_with("text/html"),
        "{what}: content type {:?}",
        page.header("content-type")
    );
    let csp = page.header("content-security-policy");
    let directive = |name: &str| {
        csp.split(';')
            .map(str::trim)
            .find(|d| d.split_whitespace().next() == Some(name))
            .map(str::to_string)
    };
    let scripts = directive("script-src")
        .or_else(|| directive("default-src"))
        .unwrap_or_else(|| panic!("{what}: CSP {csp:?} restricts no scripts"));
    assert!(
        !scripts.contains("'unsafe-inline'") && !scripts.contains('*'),
        "{what}: CSP allows inline or any script: {csp:?}"
    );
    assert!(
        directive("frame-ancestors").as_deref() == Some("frame-ancestors 'none'"),
        "{what}: CSP without frame-ancestors 'none': {csp:?}"
    );
    assert_eq!(page.header("x-frame-options"), "DENY", "{what}");
    assert_eq!(page.header("referrer-policy"), "no-referrer", "{what}");
    assert_eq!(page.header("cache-control"), "no-store", "{what}");
}

// ---------------------------------------------------------------------------------------------
// The app's side: token requests.

pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    pub body: Value,
}

impl Tokens {
    /// The `sid` (family id) of the access token (unverified decode).
    pub fn sid(&self) -> String {
        let payload = self.access_token.split('.').nth(1).expect("JWT payload");
        crate::helpers::decode_segment(payload)["sid"]
            .as_str()
            .expect("sid claim")
            .to_string()
    }
}

/// POST /token as the app (user agent `APP_UA`) with these form fields.
pub async fn token_request(app: &impl Front, params: &[(&str, &str)]) -> reqwest::Response {
    reqwest::Client::builder()
        .user_agent(APP_UA)
        .build()
        .expect("client")
        .post(app.at("/token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(params)
                .finish(),
        )
        .send()
        .await
        .expect("POST /token")
}

/// Exchange a public client's code.
pub async fn exchange(
    app: &impl Front,
    client_id: &str,
    code: &str,
    redirect_uri: &str,
    verifier: Option<&str>,
) -> reqwest::Response {
    let mut params = vec![
        ("grant_type", "authorization_code"),
        ("client_id", client_id),
        ("code", code),
        ("redirect_uri", redirect_uri),
    ];
    if let Some(v) = verifier {
        params.push(("code_verifier", v));
    }
    token_request(app, &params).await
}

pub async fn expect_tokens(resp: reqwest::Response) -> Tokens {
    let status = resp.status();
    let body: Value = resp.json().await.expect("token response is JSON");
    assert_eq!(status, 200, "token request failed: {body}");
    Tokens {
        access_token: body["access_token"].as_str().expect("access_token").into(),
        refresh_token: body["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .into(),
        body,
    }
}

/// Assert `invalid_grant` (400, JSON).
pub async fn expect_invalid_grant(resp: reqwest::Response, why: &str) {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 400, "{why}: {body}");
    assert_eq!(body["error"], "invalid_grant", "{why}: {body}");
}

/// Rotate a public client's refresh token.
pub async fn refresh(app: &impl Front, client_id: &str, refresh_token: &str) -> reqwest::Response {
    token_request(
        app,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", client_id),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// Sign `user` in on a new browser, authorize `client` (allowing consent, naming the device) and
/// exchange the code: the browser and the tokens of a new family.
pub async fn signed_in_tokens(
    app: &impl Front,
    client: &TestClient,
    scope: &str,
    user: &str,
    device: &str,
) -> (Browser, Tokens) {
    let browser = app.browser();
    let tokens = tokens_in(app, &browser, client, scope, user, device).await;
    (browser, tokens)
}

/// The same in an existing browser.
pub async fn tokens_in(
    app: &impl Front,
    browser: &Browser,
    client: &TestClient,
    scope: &str,
    user: &str,
    device: &str,
) -> Tokens {
    let p = pkce();
    let code = browser
        .code(
            &code_request(&client.id, APP_REDIRECT, scope, &p),
            user,
            Some(device),
        )
        .await;
    expect_tokens(exchange(app, &client.id, &code, APP_REDIRECT, Some(&p.verifier)).await).await
}

/// Is the browser signed in (does /account show the page rather than send it to /login)?
pub async fn is_signed_in(browser: &Browser) -> bool {
    let page = browser.get("/account").await;
    match page.status.as_u16() {
        200 => true,
        303 => {
            assert!(
                page.location().is_some_and(|l| l.starts_with("/login")),
                "{}",
                page.describe()
            );
            false
        }
        _ => panic!("unexpected /account response: {}", page.describe()),
    }
}
