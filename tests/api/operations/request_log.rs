//! Request logs: `lineage serve --log-format json` under `RUST_LOG=debug`, driven through a whole
//! sign-in and token lifecycle, writes one parseable JSON line per request with its request id,
//! method, route pattern, status, latency and client — and not one secret it saw.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{
    Backend, Browser, CHROME_UA, CliDir, Page, TestDatabase, authorize_path, basic_auth,
    cli_with_stdin, decode_segment, form_body, free_port, lineage_command, parse_redirect, pkce,
};

both_backends!(
    a_whole_flow_logs_every_request_and_no_secret,
    log_format_defaults_to_json_off_a_terminal_and_text_on_request,
);

const PASSWORD: &str = "observability-Passw0rd-4471";
const WEB_REDIRECT: &str = "https://web.example/cb";

/// `lineage serve` with its stderr collected line by line.
struct LoggedServer {
    child: Child,
    base: String,
    lines: Arc<Mutex<Vec<String>>>,
    reader: std::thread::JoinHandle<()>,
}

impl LoggedServer {
    async fn start(dir: &CliDir, database: &TestDatabase, args: &[&str]) -> Self {
        let port = free_port();
        let mut child = lineage_command(dir, database)
            .env("RUST_LOG", "debug")
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .args(["--refresh-grace", "0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn lineage serve");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("lines").push(line);
            }
        });
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if reqwest::get(format!("{base}/healthz"))
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                return Self {
                    child,
                    base,
                    lines,
                    reader,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("lineage serve did not come up");
    }

    /// SIGTERM, wait for the exit, and every line it wrote.
    fn stop(mut self) -> Vec<String> {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(killed.success());
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "lineage serve exited with {status}");
        self.reader.join().expect("reader");
        std::mem::take(&mut *self.lines.lock().expect("lines"))
    }
}

/// The secrets one test run used or received, each with what it is.
#[derive(Default)]
struct Secrets(Vec<(String, String)>);

impl Secrets {
    fn add(&mut self, what: &str, value: impl Into<String>) {
        let value = value.into();
        assert!(!value.is_empty(), "{what} is empty");
        self.0.push((what.to_string(), value));
    }

    /// Cookie values long enough to be secrets (session ids, CSRF cookies).
    fn add_cookies(&mut self, browser: &Browser) {
        for value in browser.cookie_values() {
            if value.len() >= 12 {
                self.add("cookie value", value);
            }
        }
    }

    fn add_page(&mut self, page: &Page) {
        for name in ["csrf_token", "request"] {
            if let Some(v) = page.value(name) {
                self.add(&format!("{name} form field"), v);
            }
        }
    }
}

/// The client side of the flow: a browser for the pages, an app for the back channel, and every
/// secret either of them saw.
struct Flow {
    base: String,
    http: reqwest::Client,
    browser: Browser,
    web_secret: String,
    svc_secret: String,
    secrets: Secrets,
}

enum ClientAuth {
    Basic,
    Post,
}

impl Flow {
    fn new(base: &str, web_secret: String, svc_secret: String) -> Self {
        let mut secrets = Secrets::default();
        secrets.add("password", PASSWORD);
        secrets.add("web client secret", &web_secret);
        secrets.add("service client secret", &svc_secret);
        secrets.add(
            "web Authorization header",
            basic_auth("web-app", &web_secret),
        );
        secrets.add(
            "service Authorization header",
            basic_auth("svc", &svc_secret),
        );
        Self {
            base: base.to_string(),
            http: reqwest::Client::new(),
            browser: Browser::new(base, CHROME_UA),
            web_secret,
            svc_secret,
            secrets,
        }
    }

    async fn post(
        &self,
        path: &str,
        auth: Option<&str>,
        request_id: &str,
        params: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("X-Request-Id", request_id)
            .body(form_body(params));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let resp = req.send().await.expect("POST");
        let status = resp.status().as_u16();
        assert_eq!(resp.headers()["x-request-id"], request_id, "echoed");
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// POST /token, asserting 200; the tokens it answers are secrets.
    async fn token(&mut self, auth: Option<&str>, id: &str, params: &[(&str, &str)]) -> Value {
        let (status, body) = self.post("/token", auth, id, params).await;
        assert_eq!(status, 200, "{id}: {body}");
        let access = body["access_token"].as_str().expect("access_token");
        self.secrets.add("access token", access);
        self.secrets.add(
            "access token signature",
            access.rsplit('.').next().expect("signature"),
        );
        if let Some(refresh) = body["refresh_token"].as_str() {
            self.secrets.add("refresh token", refresh);
        }
        body
    }

    fn web_auth(&self) -> String {
        basic_auth("web-app", &self.web_secret)
    }

    /// The browser signs in (if it must) and consents, the app exchanges the code with PKCE.
    async fn sign_in(&mut self, id: &str, auth: ClientAuth) -> Value {
        let (code, verifier) = self.authorize().await;
        let mut params = vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code),
            ("redirect_uri", WEB_REDIRECT.to_string()),
            ("code_verifier", verifier),
        ];
        let basic = match auth {
            ClientAuth::Basic => Some(self.web_auth()),
            ClientAuth::Post => {
                params.push(("client_id", "web-app".into()));
                params.push(("client_secret", self.web_secret.clone()));
                None
            }
        };
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.token(basic.as_deref(), id, &params).await
    }

    /// One authorization request from the browser to the code; signs in and consents on the way
    /// when a page asks. Returns the code and the PKCE verifier.
    async fn authorize(&mut self) -> (String, String) {
        let pkce = pkce();
        let state = format!("state-{}", uuid::Uuid::new_v4().simple());
        self.secrets.add("state", &state);
        self.secrets.add("code_verifier", &pkce.verifier);
        self.secrets.add("code_challenge", &pkce.challenge);
        let path = authorize_path(&[
            ("response_type", "code"),
            ("client_id", "web-app"),
            ("redirect_uri", WEB_REDIRECT),
            ("scope", "notes:read"),
            ("state", &state),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
        ]);
        let browser = &self.browser;
        let mut page = browser.follow(browser.get(&path).await).await;
        if page.url.contains("/login") && page.status == 200 {
            self.secrets.add_page(&page);
            let signed_in = browser.submit_login(&page, "alice", PASSWORD).await;
            self.secrets.add_cookies(browser);
            page = browser.follow(signed_in).await;
        }
        if page.status == 200 && page.input("request").is_some() {
            self.secrets.add_page(&page);
            page = browser.decide(&page, "allow", Some("Laptop")).await;
        }
        self.secrets.add_cookies(browser);
        assert_eq!(page.status, 303, "{}", page.describe());
        let back = parse_redirect(page.location().expect("Location"));
        assert_eq!(back.get("state"), Some(state.as_str()));
        let code = back.get("code").expect("code").to_string();
        self.secrets.add("authorization code", &code);
        (code, pkce.verifier)
    }

    /// Two rotations, then the first token again: reuse detected, the family revoked.
    async fn rotate_and_replay(&mut self, first: &str) {
        let mut refresh = first.to_string();
        for i in 0..2 {
            let auth = self.web_auth();
            let params = [("grant_type", "refresh_token"), ("refresh_token", &refresh)];
            let next = self
                .token(Some(&auth), &format!("flow-rotate-{i}"), &params)
                .await;
            refresh = next["refresh_token"].as_str().expect("rt").to_string();
        }
        let params = [("grant_type", "refresh_token"), ("refresh_token", first)];
        let (status, body) = self
            .post("/token", Some(&self.web_auth()), "flow-reuse", &params)
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
    }

    /// A resource server introspects the access token; the app then revokes its refresh token.
    async fn introspect_and_revoke(&mut self, tokens: &Value) {
        let access = tokens["access_token"].as_str().expect("at");
        let refresh = tokens["refresh_token"].as_str().expect("rt");
        let svc = basic_auth("svc", &self.svc_secret);
        let (status, body) = self
            .post(
                "/introspect",
                Some(&svc),
                "flow-introspect",
                &[("token", access)],
            )
            .await;
        assert_eq!((status, &body["active"]), (200, &Value::Bool(true)));
        let (status, _) = self
            .post(
                "/revoke",
                Some(&self.web_auth()),
                "flow-revoke",
                &[("token", refresh)],
            )
            .await;
        assert_eq!(status, 200);
    }

    async fn client_credentials(&mut self) {
        let secret = self.svc_secret.clone();
        let params = [
            ("grant_type", "client_credentials"),
            ("client_id", "svc"),
            ("client_secret", secret.as_str()),
        ];
        self.token(None, "flow-client-credentials", &params).await;
    }

    /// The user signs the device of `tokens` out on the account page, then signs out; returns the
    /// path of the first (it has the family id in it).
    async fn sign_out_on_account_page(&mut self, tokens: &Value) -> String {
        let access = tokens["access_token"].as_str().expect("at");
        let payload = access.split('.').nth(1).expect("payload");
        let family = decode_segment(payload)["sid"]
            .as_str()
            .expect("sid")
            .to_string();
        let account = self.browser.get("/account").await;
        assert_eq!(account.status, 200, "{}", account.describe());
        self.secrets.add_page(&account);
        let csrf = account.value("csrf_token").expect("csrf");
        let revoke_path = format!("/account/families/{family}/revoke");
        let revoked = self
            .browser
            .post(&revoke_path, &[("csrf_token", &csrf)])
            .await;
        assert_eq!(revoked.status, 303, "{}", revoked.describe());
        self.secrets.add_cookies(&self.browser);
        let out = self.browser.post("/logout", &[("csrf_token", &csrf)]).await;
        assert_eq!(out.status, 303, "{}", out.describe());
        revoke_path
    }
}

/// The user and two clients, through the CLI: returns the web app's and the service's secrets.
fn register_clients(dir: &CliDir, database: &TestDatabase) -> (String, String) {
    cli_with_stdin(
        dir,
        database,
        &["user", "create", "alice", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    let secret_of = |args: &[&str]| -> String {
        let created: Value =
            serde_json::from_str(&cli_with_stdin(dir, database, args, "")).expect("client JSON");
        created["client_secret"]
            .as_str()
            .expect("client_secret")
            .to_string()
    };
    let create = ["client", "create", "--json", "--name"];
    let web = secret_of(
        &[
            &create[..],
            &[
                "Web app",
                "--client-id",
                "web-app",
                "--redirect-uri",
                WEB_REDIRECT,
            ],
            &[
                "--grant",
                "authorization_code,refresh_token",
                "--scope",
                "notes:read",
            ],
            &["--audience", "notes-api"],
        ]
        .concat(),
    );
    let svc = secret_of(
        &[
            &create[..],
            &[
                "Service",
                "--client-id",
                "svc",
                "--grant",
                "client_credentials",
            ],
            &["--scope", "api:read", "--audience", "api"],
        ]
        .concat(),
    );
    (web, svc)
}

async fn a_whole_flow_logs_every_request_and_no_secret(backend: Backend) {
    let Some(database) = TestDatabase::create(backend) else {
        return;
    };
    let dir = CliDir::new();
    let (web_secret, svc_secret) = register_clients(&dir, &database);
    let server = LoggedServer::start(&dir, &database, &["--log-format", "json"]).await;
    let mut flow = Flow::new(&server.base, web_secret, svc_secret);

    let first = flow.sign_in("flow-exchange", ClientAuth::Basic).await;
    flow.rotate_and_replay(first["refresh_token"].as_str().expect("rt"))
        .await;
    // A second sign-in (consent remembered, so no page), with client_secret_post.
    let second = flow.sign_in("flow-exchange-post", ClientAuth::Post).await;
    flow.introspect_and_revoke(&second).await;
    flow.client_credentials().await;
    let third = flow.sign_in("flow-exchange-3", ClientAuth::Basic).await;
    let revoke_path = flow.sign_out_on_account_page(&third).await;

    let lines = server.stop();
    assert!(lines.len() > 20, "the server logged: {lines:#?}");
    assert_no_secret_in(&lines, &flow.secrets, &revoke_path);
    let events: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_request_lines(&events);

    // The handler's own event carries the id of the request it happened in.
    let reuse: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("reuse detected"))
        })
        .collect();
    assert_eq!(reuse.len(), 1, "{reuse:#?}");
    assert_eq!(reuse[0]["level"], "WARN");
    assert_eq!(reuse[0]["span"]["request_id"], "flow-reuse", "{}", reuse[0]);
}

/// Not one secret in any line (request lines, handler events, libraries at debug), and neither
/// a query string nor a path with an id.
fn assert_no_secret_in(lines: &[String], secrets: &Secrets, raw_path: &str) {
    for line in lines {
        for (what, secret) in &secrets.0 {
            assert!(
                !line.contains(secret.as_str()),
                "a {what} was logged: {line}"
            );
        }
        assert!(
            !line.contains("/authorize?"),
            "a query string was logged: {line}"
        );
        assert!(!line.contains(raw_path), "a raw path was logged: {line}");
    }
}

/// Every request line has its fields; the flow's back-channel requests name their client.
fn assert_request_lines(events: &[Value]) {
    let requests: Vec<&Value> = events
        .iter()
        .filter(|e| e["target"] == "lineage::http")
        .collect();
    for r in &requests {
        assert_eq!(
            (&r["level"], &r["message"]),
            (&"INFO".into(), &"request".into()),
            "{r}"
        );
        assert!(r["method"].is_string() && r["route"].is_string(), "{r}");
        assert!(r["status"].is_u64() && r["latency_ms"].is_number(), "{r}");
        assert!(r["span"]["request_id"].is_string(), "{r}");
        let route = r["route"].as_str().unwrap_or_default();
        assert!(route.starts_with('/') && !route.contains('?'), "{r}");
    }
    for (id, route, status, client) in [
        ("flow-exchange", "/token", 200, "web-app"),
        ("flow-rotate-0", "/token", 200, "web-app"),
        ("flow-reuse", "/token", 400, "web-app"),
        ("flow-exchange-post", "/token", 200, "web-app"),
        ("flow-introspect", "/introspect", 200, "svc"),
        ("flow-revoke", "/revoke", 200, "web-app"),
        ("flow-client-credentials", "/token", 200, "svc"),
    ] {
        let found: Vec<&&Value> = requests
            .iter()
            .filter(|r| r["span"]["request_id"] == id)
            .collect();
        assert_eq!(found.len(), 1, "one request line for {id}: {requests:#?}");
        let line = found[0];
        assert_eq!(line["method"], "POST", "{line}");
        assert_eq!(
            (&line["route"], &line["status"]),
            (&route.into(), &status.into()),
            "{line}"
        );
        assert_eq!(line["span"]["client_id"], client, "{line}");
    }
    let routes: Vec<&str> = requests
        .iter()
        .filter_map(|r| r["route"].as_str())
        .collect();
    for route in [
        "/authorize",
        "/login",
        "/consent",
        "/account",
        "/account/families/{family_id}/revoke",
        "/logout",
        "/healthz",
    ] {
        assert!(routes.contains(&route), "{route} in {routes:?}");
    }
    let pages = requests
        .iter()
        .filter(|r| r["route"] == "/login" || r["route"] == "/account");
    for page in pages {
        assert!(
            page["span"].get("client_id").is_none(),
            "no client on a page: {page}"
        );
    }
}

async fn log_format_defaults_to_json_off_a_terminal_and_text_on_request(backend: Backend) {
    let Some(database) = TestDatabase::create(backend) else {
        return;
    };
    let dir = CliDir::new();
    for (args, json) in [(&[][..], true), (&["--log-format", "text"][..], false)] {
        let server = LoggedServer::start(&dir, &database, args).await;
        let resp = reqwest::Client::new()
            .get(format!("{}/jwks.json", server.base))
            .header("X-Request-Id", "format-probe")
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status(), 200);
        let lines = server.stop();
        let request = lines
            .iter()
            .find(|l| l.contains("format-probe"))
            .unwrap_or_else(|| panic!("no request line: {lines:#?}"));
        assert_eq!(
            lines
                .iter()
                .all(|l| serde_json::from_str::<Value>(l).is_ok()),
            json,
            "{args:?}: {lines:#?}"
        );
        if !json {
            for part in [
                "request_id=format-probe",
                "method=\"GET\"",
                "route=\"/jwks.json\"",
                "status=200",
                "latency_ms=",
            ] {
                assert!(request.contains(part), "{part} in {request}");
            }
        }
    }
}
