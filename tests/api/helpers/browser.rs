//! A user's browser for the front-channel tests: reqwest with a cookie jar of its own and no
//! automatic redirects, so every 303 and every `Set-Cookie` can be looked at; pages read with
//! `scraper` (forms, inputs, buttons) and `Set-Cookie` headers with the `cookie` crate.

use std::collections::BTreeMap;
use std::sync::Mutex;

use cookie::Cookie;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use scraper::{ElementRef, Html, Selector};

use super::accounts::PASSWORD;
use super::app::TestApp;
use super::flow::{ClientRedirect, parse_redirect};

/// The browser's user agent: a desktop Chrome on Linux ("Chrome on Linux" on the consent page).
pub const CHROME_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";

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
        select(&Html::parse_document(&self.body), "input")
    }

    pub fn input(&self, name: &str) -> Option<Tag> {
        self.inputs()
            .into_iter()
            .find(|t| t.attr("name") == Some(name))
    }

    /// The value of the first input named `name`.
    pub fn value(&self, name: &str) -> Option<String> {
        self.input(name)
            .and_then(|t| t.attr("value").map(str::to_string))
    }

    /// Every `<form>` of the page.
    pub fn forms(&self) -> Vec<HtmlForm> {
        let document = Html::parse_document(&self.body);
        document
            .select(&selector("form"))
            .map(|form| HtmlForm {
                tag: Tag::of(form),
                html: form.html(),
            })
            .collect()
    }

    /// The first form whose action is `action`.
    pub fn form(&self, action: &str) -> Option<HtmlForm> {
        self.forms()
            .into_iter()
            .find(|f| f.tag.attr("action") == Some(action))
    }

    /// The text of the page without tags (collapsed whitespace, entities decoded).
    pub fn text(&self) -> String {
        let document = Html::parse_document(&self.body);
        let words: Vec<&str> = document
            .root_element()
            .text()
            .flat_map(str::split_whitespace)
            .collect();
        words.join(" ")
    }
}

/// One `<form>`: its start tag and its HTML (the element itself).
pub struct HtmlForm {
    pub tag: Tag,
    pub html: String,
}

impl HtmlForm {
    fn select(&self, name: &str) -> Vec<Tag> {
        select(&Html::parse_fragment(&self.html), name)
    }
    pub fn inputs(&self) -> Vec<Tag> {
        self.select("input")
    }
    pub fn buttons(&self) -> Vec<Tag> {
        self.select("button")
    }
    pub fn value(&self, name: &str) -> Option<String> {
        self.inputs()
            .into_iter()
            .find(|t| t.attr("name") == Some(name))
            .and_then(|t| t.attr("value").map(str::to_string))
    }
}

/// An HTML start tag's attributes (names lowercased, values decoded; bare attributes are empty).
#[derive(Debug, Clone)]
pub struct Tag {
    pub attrs: Vec<(String, String)>,
}

impl Tag {
    fn of(element: ElementRef<'_>) -> Self {
        Self {
            attrs: element
                .value()
                .attrs()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn selector(css: &str) -> Selector {
    Selector::parse(css).unwrap_or_else(|e| panic!("CSS selector {css:?}: {e}"))
}

/// Every element matching `css` in a parsed page or fragment.
fn select(html: &Html, css: &str) -> Vec<Tag> {
    html.select(&selector(css)).map(Tag::of).collect()
}

/// One `Set-Cookie` header, parsed by the `cookie` crate; `attr` and `has` look at the
/// attributes by their lowercased names (`httponly`, `samesite`, `path`, `max-age`, …).
#[derive(Debug, Clone)]
pub struct SetCookie {
    pub name: String,
    pub value: String,
    /// Attribute names lowercased, values as the crate reads them.
    pub attrs: Vec<(String, String)>,
    pub raw: String,
}

impl SetCookie {
    pub fn parse(raw: &str) -> Self {
        let cookie = Cookie::parse(raw).unwrap_or_else(|e| panic!("Set-Cookie {raw:?}: {e}"));
        let mut attrs = Vec::new();
        let mut put = |name: &str, value: String| attrs.push((name.to_string(), value));
        if cookie.http_only() == Some(true) {
            put("httponly", String::new());
        }
        if cookie.secure() == Some(true) {
            put("secure", String::new());
        }
        if let Some(same_site) = cookie.same_site() {
            put("samesite", same_site.to_string());
        }
        if let Some(path) = cookie.path() {
            put("path", path.to_string());
        }
        if let Some(domain) = cookie.domain() {
            put("domain", domain.to_string());
        }
        if let Some(max_age) = cookie.max_age() {
            put("max-age", max_age.whole_seconds().to_string());
        }
        if cookie.expires().is_some() {
            put("expires", String::new());
        }
        Self {
            name: cookie.name().to_string(),
            value: cookie.value().to_string(),
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
        self.value.is_empty() || self.attr("max-age") == Some("0")
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

    /// Revoke the device of family `sid` with its form on /account, as the user would; asserts
    /// the 303.
    pub async fn revoke_device(&self, sid: &str) {
        let action = format!("/account/families/{sid}/revoke");
        let csrf = self
            .get("/account")
            .await
            .form(&action)
            .and_then(|f| f.value("csrf_token"))
            .expect("the device's revoke form");
        let resp = self.post(&action, &[("csrf_token", &csrf)]).await;
        assert_eq!(resp.status, 303, "{}", resp.describe());
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

impl TestApp {
    /// A new browser (its own cookie jar) pointed at this server.
    pub fn browser(&self) -> Browser {
        Browser::new(&self.address, CHROME_UA)
    }
}
