//! `POST /login` with arbitrary fields: any username, any password but the right one, a valid,
//! stale or missing CSRF token, any `return_to`, extra and repeated fields, odd encodings. Never a
//! 5xx, and never a session cookie; the right password with the same form does get one, so the
//! property is not true merely because every request is refused.

use lineage::domain::Seconds;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use reqwest::StatusCode;

use super::run_cases;
use crate::helpers::*;

#[derive(Debug, Clone)]
struct Attempt {
    username: Option<String>,
    password: Option<String>,
    /// 0: the page's token, 1: another browser's, 2: garbage, 3: none.
    csrf: u8,
    return_to: Option<String>,
    extra: Vec<(String, String)>,
    /// Repeat the field at this index.
    repeat: Option<usize>,
    /// Append a stray `%` and an escape of a byte that is not UTF-8 to every value.
    odd_bytes: bool,
}

fn attempt() -> impl Strategy<Value = Attempt> {
    let username = prop_oneof![
        prop::sample::select(vec![
            "alice",
            "ALICE",
            " alice ",
            "alice\u{0}",
            "alice%",
            "bob",
            ""
        ])
        .prop_map(str::to_string),
        ".{0,40}",
    ];
    let password = prop_oneof![
        prop::sample::select(vec![
            "correct horse battery staple ",
            " correct horse battery staple",
            "Correct horse battery staple",
            "correct+horse+battery+staple",
            "",
        ])
        .prop_map(str::to_string),
        ".{0,80}",
    ]
    .prop_filter("not the password", |p| p != PASSWORD);
    let return_to = prop_oneof![
        prop::sample::select(vec![
            "/account",
            "//evil.example",
            "https://evil.example/",
            "/\\evil",
            "javascript:x"
        ])
        .prop_map(str::to_string),
        ".{0,40}",
    ];
    (
        proptest::option::weighted(0.9, username),
        proptest::option::weighted(0.9, password),
        0u8..4,
        proptest::option::of(return_to),
        proptest::collection::vec(("[a-z_]{0,10}", ".{0,20}"), 0..3),
        proptest::option::weighted(0.15, 0usize..6),
        proptest::bool::weighted(0.15),
    )
        .prop_map(
            |(username, password, csrf, return_to, extra, repeat, odd_bytes)| Attempt {
                username,
                password,
                csrf,
                return_to,
                extra,
                repeat,
                odd_bytes,
            },
        )
}

impl Attempt {
    fn body(&self, page_csrf: &str, other_csrf: &str) -> String {
        let csrf = match self.csrf {
            0 => Some(page_csrf.to_string()),
            1 => Some(other_csrf.to_string()),
            2 => Some("x".repeat(43)),
            _ => None,
        };
        let mut fields: Vec<(String, String)> = [
            csrf.map(|c| ("csrf_token".to_string(), c)),
            self.username.clone().map(|u| ("username".to_string(), u)),
            self.password.clone().map(|p| ("password".to_string(), p)),
            self.return_to.clone().map(|r| ("return_to".to_string(), r)),
        ]
        .into_iter()
        .flatten()
        .chain(self.extra.iter().cloned())
        .collect();
        if let Some(i) = self.repeat.filter(|_| !fields.is_empty()) {
            let again = fields[i % fields.len()].clone();
            fields.push(again);
        }
        let encode =
            |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let odd = if self.odd_bytes { "%FF%" } else { "" };
        fields
            .iter()
            .map(|(k, v)| format!("{}={}{odd}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// A fresh sign-in page: its CSRF token and the pre-session cookie that binds it.
async fn sign_in_page(app: &TestApp) -> (String, String) {
    let browser = app.browser();
    let page = browser.get("/login").await;
    let cookie = browser
        .cookie(app.state.cookies.pre_session)
        .expect("pre-session cookie");
    (page.value("csrf_token").expect("csrf_token"), cookie)
}

async fn post_login(app: &TestApp, pre_session: &str, body: String) -> reqwest::Response {
    app.api
        .post(app.url("/login"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header(
            "Cookie",
            format!("{}={pre_session}", app.state.cookies.pre_session),
        )
        .body(body)
        .send()
        .await
        .expect("POST /login")
}

fn session_cookie_set(app: &TestApp, resp: &reqwest::Response) -> bool {
    resp.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| cookie::Cookie::parse(v.to_str().ok()?.to_string()).ok())
        .any(|c| c.name() == app.state.cookies.session && !c.value().is_empty())
}

async fn check(app: &TestApp, a: Attempt) -> Result<(), TestCaseError> {
    let (csrf, pre_session) = sign_in_page(app).await;
    let (other_csrf, _) = sign_in_page(app).await;
    let resp = post_login(app, &pre_session, a.body(&csrf, &other_csrf)).await;
    let status = resp.status();
    prop_assert!(!status.is_server_error(), "{status}");
    prop_assert!(
        !session_cookie_set(app, &resp),
        "a session for a wrong sign-in ({status})"
    );
    Ok(())
}

async fn sign_in_forms(backend: Backend) {
    // No back-off and no per-address limit: every case reaches the password check.
    let Some(app) = spawn_app_with(backend, |s| {
        s.limits.sign_in_backoff = Seconds::ZERO;
        s.limits.sign_in_ip_failures = None;
    })
    .await
    else {
        return;
    };
    create_user(&app, "alice").await;
    run_cases(32, attempt(), |a| check(&app, a)).await;

    // The same request with the right password signs in.
    let (csrf, pre_session) = sign_in_page(&app).await;
    let body = format!(
        "csrf_token={csrf}&username=alice&password={}",
        PASSWORD.replace(' ', "+")
    );
    let resp = post_login(&app, &pre_session, body).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(session_cookie_set(&app, &resp));
}

both_backends!(sign_in_forms);
