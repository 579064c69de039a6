//! `/authorize` with arbitrary queries, signed in or not: never a 5xx, and a redirect leaves the
//! server only for a redirect URI registered for the client the query names (a loopback one in
//! any port, RFC 8252 §7.3), carrying `iss`.

use lineage::clients::NewClient;
use lineage::domain::{GrantType, RedirectUri, Scope};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use url::Url;

use super::run_cases;
use crate::helpers::*;

const NATIVE: &str = "fuzz-native";
const WEB: &str = "fuzz-web";
const SERVICE: &str = "fuzz-service";
const WEB_REDIRECTS: [&str; 2] = [
    "https://web.example/cb",
    "https://web.example/other?tenant=1",
];

/// Which redirect URIs each client registered.
fn registered(client_id: &str) -> &'static [&'static str] {
    match client_id {
        NATIVE => &[APP_REDIRECT],
        WEB => &WEB_REDIRECTS,
        _ => &[],
    }
}

async fn register_clients(app: &TestApp) {
    let uris = |list: &[&str]| {
        list.iter()
            .map(|u| RedirectUri::parse(u).unwrap())
            .collect()
    };
    register(
        app,
        NewClient {
            client_id: Some(NATIVE.into()),
            ..app_spec("notes:read profile")
        },
    )
    .await;
    register(
        app,
        NewClient {
            client_id: Some(WEB.into()),
            public: false,
            first_party: true,
            redirect_uris: uris(&WEB_REDIRECTS),
            ..app_spec("notes:read profile")
        },
    )
    .await;
    register(
        app,
        NewClient {
            client_id: Some(SERVICE.into()),
            grant_types: vec![GrantType::ClientCredentials],
            scopes: Scope::parse("notes:read").unwrap(),
            ..service_client("notes:read")
        },
    )
    .await;
}

fn one_of(values: &[&'static str]) -> BoxedStrategy<String> {
    prop::sample::select(values.to_vec())
        .prop_map(str::to_string)
        .boxed()
}

/// Redirect URIs an attacker or a confused client tries: the registered ones, near misses of
/// them, and anything at all.
fn redirect_uri() -> BoxedStrategy<String> {
    prop_oneof![
        3 => one_of(&[APP_REDIRECT, WEB_REDIRECTS[0], WEB_REDIRECTS[1]]),
        1 => (1u16..=65535).prop_map(|p| format!("http://127.0.0.1:{p}/callback")),
        4 => one_of(&[
            "http://localhost:9876/callback", "http://127.0.0.2:9876/callback",
            "https://127.0.0.1:9876/callback", "http://127.0.0.1:9876/callback/../evil",
            "http://127.0.0.1:9876/Callback", "http://evil@127.0.0.1:9876/callback",
            "http://127.0.0.1:9876/callback?x=1", "http://127.0.0.1:9876/callback#f",
            "http://[::1]:9876/callback", "http://0x7f.1:9876/callback", "http://127.1/callback",
            "https://web.example/cb/", "https://web.example/cb?", "https://WEB.example/cb",
            "https://web.example.evil/cb", "https://web.example/cb%2F..", "//web.example/cb",
            "https://web.example:443/cb", "https://web.example/other?tenant=2",
            "https://web.example/other?tenant=1&x=y", "javascript:alert(1)", "https://web.example/cb\\@evil",
        ]),
        2 => ".{0,40}",
    ]
    .boxed()
}

/// One authorization request: each parameter present or not, from values that matter and
/// garbage, then extra and repeated parameters, spelt plainly, fully escaped, or with odd bytes.
#[derive(Debug, Clone)]
struct Query {
    params: Vec<(String, String)>,
    spelling: u8,
    signed_in: bool,
}

fn param(
    name: &'static str,
    values: BoxedStrategy<String>,
) -> BoxedStrategy<Option<(String, String)>> {
    proptest::option::weighted(0.8, values.prop_map(move |v| (name.to_string(), v))).boxed()
}

fn query() -> impl Strategy<Value = Query> {
    let garbage = || ".{0,30}".boxed();
    let known = (
        param("client_id", prop_oneof![4 => one_of(&[NATIVE, WEB, SERVICE, "unknown"]), 1 => garbage()].boxed()),
        param("redirect_uri", redirect_uri()),
        param("response_type", prop_oneof![4 => one_of(&["code", "token", "code id_token", "CODE"]), 1 => garbage()].boxed()),
        param("scope", prop_oneof![4 => one_of(&["notes:read", "notes:read profile", "admin", " ", "notes:read\"x"]), 1 => garbage()].boxed()),
        param("state", garbage()),
        param("code_challenge", prop_oneof!["[A-Za-z0-9_-]{43}", garbage()].boxed()),
        param("code_challenge_method", one_of(&["S256", "plain", "s256", ""])),
        param("prompt", prop_oneof![one_of(&["none", "login", "consent", "select_account", "none login"]), garbage()].boxed()),
    );
    let extra = proptest::collection::vec(("[a-z_]{0,12}", ".{0,20}"), 0..3);
    (
        known,
        extra,
        proptest::option::of(0usize..8),
        0u8..4,
        any::<bool>(),
    )
        .prop_map(
            |((a, b, c, d, e, f, g, h), extra, repeat, spelling, signed_in)| {
                let mut params: Vec<(String, String)> =
                    [a, b, c, d, e, f, g, h].into_iter().flatten().collect();
                params.extend(extra);
                if let Some(i) = repeat.filter(|_| !params.is_empty()) {
                    let again = params[i % params.len()].clone();
                    params.push(again);
                }
                Query {
                    params,
                    spelling,
                    signed_in,
                }
            },
        )
}

impl Query {
    fn to_query_string(&self) -> String {
        let escape_all = |s: &str| s.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
        let encode =
            |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let pairs: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| match self.spelling {
                0 | 1 => format!("{}={}", encode(k), encode(v)),
                2 => format!("{}={}", escape_all(k), escape_all(v)),
                // Odd bytes: a stray `%`, an escape of a byte that is not UTF-8, a `+`.
                _ => format!("{}={}%FF+%", encode(k), encode(v)),
            })
            .collect();
        pairs.join("&")
    }
}

/// Whether `location` is the registered `uri`, but for the parameters lineage appended (and the
/// port, for a loopback URI).
fn is_registered_target(location: &Url, uri: &str) -> bool {
    let r = Url::parse(uri).unwrap();
    let loopback = r.scheme() == "http" && r.host_str() == Some("127.0.0.1");
    location.scheme() == r.scheme()
        && location.host_str() == r.host_str()
        && (loopback || location.port_or_known_default() == r.port_or_known_default())
        && location.username().is_empty()
        && location.password().is_none()
        && location.path() == r.path()
        && location.fragment().is_none()
        && location
            .query()
            .unwrap_or("")
            .starts_with(r.query().unwrap_or(""))
}

async fn check(
    app: &TestApp,
    browser: &Browser,
    anonymous: &Browser,
    q: Query,
) -> Result<(), TestCaseError> {
    let query = q.to_query_string();
    let page = if q.signed_in { browser } else { anonymous }
        .get(&format!("/authorize?{query}"))
        .await;
    prop_assert!(!page.status.is_server_error(), "{}", page.describe());
    let Some(location) = page.location().filter(|_| page.status.is_redirection()) else {
        return Ok(());
    };
    if location.starts_with("/login?") {
        return Ok(());
    }
    let target =
        Url::parse(location).map_err(|e| TestCaseError::fail(format!("{location}: {e}")))?;
    // The one client the query names (a repeated client_id is refused before any redirect).
    let client_id = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "client_id")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    prop_assert!(
        registered(&client_id)
            .iter()
            .any(|uri| is_registered_target(&target, uri)),
        "redirected to {} for client {:?}",
        location,
        client_id
    );
    let iss = target
        .query_pairs()
        .find(|(k, _)| k == "iss")
        .map(|(_, v)| v.into_owned());
    prop_assert_eq!(iss.as_deref(), Some(app.issuer.as_str()));
    Ok(())
}

async fn authorize_queries(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    register_clients(&app).await;
    create_user(&app, "alice").await;
    let browser = app.browser();
    browser.sign_in("alice", PASSWORD).await;
    let anonymous = app.browser();
    run_cases(64, query(), |q| check(&app, &browser, &anonymous, q)).await;
}

both_backends!(authorize_queries);
