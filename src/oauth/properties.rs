//! Properties of what `/token`, `/revoke` and `/introspect` read before any database work: the
//! form parser (`form.rs`), the typed token request (`token_request.rs`) and the credentials a
//! request presents (`client_auth.rs::presented`). On arbitrary bodies and `Authorization`
//! headers: never a panic, and whatever is accepted is exactly what was sent.
//!
//! `PROPTEST_CASES` raises the number of cases for a longer local run (BENCHMARKS.md).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use actix_web::http::header::{AUTHORIZATION, HeaderValue};
use actix_web::test::TestRequest;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use proptest::test_runner::Config;
use std::collections::BTreeMap;

use super::client_auth::{Presented, presented};
use super::error::ErrorCode;
use super::form::Form;
use super::token_request::{TokenRequest, grant_type};
use crate::domain::GrantType;

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Pieces a hostile or confused client puts in a form: separators, bare and broken escapes,
/// escapes of bytes that are not UTF-8, multi-byte characters, and the parameter names that matter.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("&".to_string()),
        Just("=".to_string()),
        Just("+".to_string()),
        Just("%".to_string()),
        Just("%2".to_string()),
        Just("%FF".to_string()),
        Just("%C3%A9".to_string()),
        Just("%C3".to_string()),
        Just("%00".to_string()),
        Just("%26".to_string()),
        Just("%3D".to_string()),
        Just("é".to_string()),
        Just("grant_type".to_string()),
        Just("refresh_token".to_string()),
        Just("client_id".to_string()),
        Just("scope".to_string()),
        "[a-zA-Z0-9_.~-]{0,12}",
    ]
}

/// The auth-scheme is case-insensitive (RFC 9110 §11.1).
const BASIC_SPELLINGS: [&str; 4] = ["Basic", "basic", "BASIC", "bAsIc"];

/// Parameters with names and values of anything but NUL (refused outright: see the tests below).
fn params(sizes: std::ops::Range<usize>) -> impl Strategy<Value = BTreeMap<String, String>> {
    proptest::collection::btree_map("[^\\x00]{0,12}", "[^\\x00]{0,24}", sizes)
}

/// `Authorization` headers: raw bytes, scheme-like text, and well-formed Basic credentials.
fn any_authorization() -> impl Strategy<Value = Option<HeaderValue>> {
    let basic = ("[^\\x00]{0,10}", "[^\\x00]{0,10}").prop_map(|(i, s)| {
        HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(format!("{i}:{s}")))).ok()
    });
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| HeaderValue::from_bytes(&b).ok()),
        "(?i:basic|bearer|digest)? ?[A-Za-z0-9+/=:%é ]{0,40}"
            .prop_map(|s| HeaderValue::from_str(&s).ok()),
        basic,
    ]
}

fn odd_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        proptest::collection::vec(fragment(), 0..24).prop_map(|parts| parts.concat().into_bytes()),
    ]
}

/// `s` with every byte percent-encoded: another spelling of the same text.
fn escape_all(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// What a parameter should read as: an empty value is absent (RFC 6749 §3.1).
fn expected(v: &str) -> Option<&str> {
    (!v.is_empty()).then_some(v)
}

fn request_with(authorization: Option<HeaderValue>) -> actix_web::HttpRequest {
    let mut req = TestRequest::post();
    if let Some(value) = authorization {
        req = req.insert_header((AUTHORIZATION, value));
    }
    req.to_http_request()
}

fn basic(scheme: &str, id: &str, secret: &str) -> HeaderValue {
    let credentials = STANDARD.encode(format!("{}:{}", encode(id), encode(secret)));
    HeaderValue::from_str(&format!("{scheme} {credentials}")).unwrap()
}

fn is_code(result: &Result<Presented, super::error::OAuthError>, code: ErrorCode) -> bool {
    matches!(result, Err(e) if e.code == code)
}

/// A lowercase hyphenated UUID, the only refresh-token spelling lineage issues.
fn is_canonical_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_digit() || ('a'..='f').contains(&c),
        })
}

proptest! {
    #![proptest_config(config())]

    /// Any body: no panic; an accepted one holds exactly what the urlencoded parser reads, and a
    /// refused one really had a repeated name or a name or value that is not UTF-8.
    #[test]
    fn form_accepts_exactly_what_was_sent(body in odd_body()) {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let distinct: std::collections::HashSet<&String> = pairs.iter().map(|(k, _)| k).collect();
        // The lossy parser patches what is not UTF-8 with U+FFFD: only the strict one knows.
        let lossless = body
            .split(|b| *b == b'&')
            .flat_map(|p| p.splitn(2, |b| *b == b'='))
            .all(|c| super::form::decode_component(c).is_some());
        match Form::parse(&body) {
            Ok(form) => {
                prop_assert!(lossless, "a body that is not UTF-8 was accepted");
                prop_assert_eq!(distinct.len(), pairs.len(), "a repeated parameter was accepted");
                for (k, v) in &pairs {
                    prop_assert_eq!(form.get(k), expected(v));
                }
            }
            Err(e) => {
                prop_assert_eq!(e.code, ErrorCode::InvalidRequest);
                prop_assert!(!lossless || distinct.len() < pairs.len(), "refused a good body");
            }
        }
    }

    /// Distinct parameters, however spelt, come back as sent.
    #[test]
    fn form_round_trips(params in params(0..8), escape in any::<bool>()) {
        let body = params
            .iter()
            .map(|(k, v)| if escape {
                format!("{}={}", escape_all(k), escape_all(v))
            } else {
                format!("{}={}", encode(k), encode(v))
            })
            .collect::<Vec<_>>()
            .join("&");
        let form = Form::parse(body.as_bytes()).unwrap();
        for (k, v) in &params {
            prop_assert_eq!(form.get(k), expected(v));
        }
    }

    /// A parameter sent twice is refused, also when its second spelling differs (RFC 6749 §3.2).
    #[test]
    fn form_refuses_a_repeated_parameter(params in params(1..6),
                                         pick in any::<prop::sample::Index>(),
                                         again in "[^\\x00]{0,24}") {
        let (name, _) = params.iter().nth(pick.index(params.len())).unwrap();
        let mut body = url::form_urlencoded::Serializer::new(String::new());
        body.extend_pairs(&params);
        let body = format!("{}&{}={}", body.finish(), escape_all(name), encode(&again));
        let refused = Form::parse(body.as_bytes()).err().unwrap();
        prop_assert_eq!(refused.code, ErrorCode::InvalidRequest);
    }

    /// The grant and its parameters: no panic, and what is accepted is what was sent.
    #[test]
    fn token_request_holds_what_was_sent(
        grant in prop_oneof![
            Just("authorization_code".to_string()),
            Just("refresh_token".to_string()),
            Just("client_credentials".to_string()),
            Just("password".to_string()),
            Just("Refresh_Token".to_string()),
            "[^\\x00]{0,20}",
        ],
        fields in proptest::collection::btree_map(
            prop_oneof![
                Just("code".to_string()),
                Just("redirect_uri".to_string()),
                Just("code_verifier".to_string()),
                Just("refresh_token".to_string()),
                Just("scope".to_string()),
                "[^\\x00]{0,8}",
            ],
            prop_oneof![
                "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                "[0-9A-Fa-f{}-]{32,38}",
                "[a-z:]{1,10}( [a-z:]{1,10}){0,3}",
                "[^\\x00]{0,40}",
            ],
            0..6,
        ),
    ) {
        let mut params: BTreeMap<String, String> = fields;
        params.insert("grant_type".into(), grant.clone());
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&params)
            .finish();
        let form = Form::parse(body.as_bytes()).unwrap();
        let sent = |name: &str| params.get(name).map(String::as_str).and_then(expected);
        let Ok(named) = grant_type(&form) else {
            prop_assert!(GrantType::parse(&grant).is_none());
            return Ok(());
        };
        prop_assert_eq!(Some(named), GrantType::parse(&grant));
        let Ok(request) = TokenRequest::parse(named, &form) else { return Ok(()) };
        prop_assert_eq!(request.grant_type(), named);
        let scope_sent = |scope: &Option<crate::domain::Scope>| match scope {
            None => sent("scope").is_none_or(|s| s.split(' ').all(str::is_empty)),
            Some(s) => sent("scope").is_some_and(|raw| {
                s.to_string().split(' ').all(|t| raw.split(' ').any(|r| r == t))
            }),
        };
        match &request {
            TokenRequest::AuthorizationCode { code, redirect_uri, code_verifier } => {
                prop_assert_eq!(Some(code.expose()), sent("code"));
                prop_assert_eq!(redirect_uri.as_deref(), sent("redirect_uri"));
                prop_assert_eq!(code_verifier.as_deref(), sent("code_verifier"));
            }
            TokenRequest::RefreshToken { refresh_token, scope } => {
                prop_assert_eq!(Some(refresh_token.expose()), sent("refresh_token"));
                prop_assert!(is_canonical_uuid(refresh_token.expose()));
                prop_assert!(scope_sent(scope));
            }
            TokenRequest::ClientCredentials { scope } => prop_assert!(scope_sent(scope)),
        }
    }

    /// Any `Authorization` header with any body credentials: no panic; credentials taken from a
    /// header only from a well-formed `Basic` one.
    #[test]
    fn presented_never_panics(
        header in any_authorization(),
        body in odd_body(),
    ) {
        let Ok(form) = Form::parse(&body) else { return Ok(()) };
        let header_text = header
            .as_ref()
            .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned());
        let result = presented(&request_with(header), &form);
        if let (Ok(Presented::Secret { .. }), Some(text)) = (&result, &header_text) {
            let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
            prop_assert!(scheme.eq_ignore_ascii_case("basic"));
            let decoded = STANDARD.decode(rest.trim()).unwrap();
            prop_assert!(decoded.contains(&b':'));
        }
        if header_text.is_none() && form.get("client_id").is_none() {
            prop_assert!(result.is_err());
        }
    }

    /// Basic credentials, encoded as RFC 6749 §2.3.1 says, come back exactly; so do body ones.
    #[test]
    fn presented_round_trips(id in "[^\\x00]{0,24}",
                             secret in "[^\\x00]{1,40}",
                             scheme in prop::sample::select(BASIC_SPELLINGS.to_vec()),
                             in_body in any::<bool>()) {
        let (result, id_sent) = if in_body {
            let body = format!("client_id={}&client_secret={}", encode(&id), encode(&secret));
            let form = Form::parse(body.as_bytes()).unwrap();
            (presented(&request_with(None), &form), expected(&id).map(str::to_string))
        } else {
            let header = basic(scheme, &id, &secret);
            (presented(&request_with(Some(header)), &Form::default()), Some(id.clone()))
        };
        match (result, id_sent) {
            (Ok(Presented::Secret { client_id, secret: got }), Some(id)) => {
                prop_assert_eq!(client_id, id);
                prop_assert_eq!(got.expose(), secret.as_str());
            }
            (Err(e), None) => prop_assert_eq!(e.code, ErrorCode::InvalidRequest),
            (other, _) => {
                let other = other.map(|p| p.client_id().to_string());
                prop_assert!(false, "unexpected {:?}", other)
            }
        }
    }

    /// A Basic header whose credentials are not Base64, not UTF-8, have no colon, or do not
    /// form-decode to UTF-8 is refused, whatever the body says.
    #[test]
    fn presented_refuses_malformed_basic(
        credentials in prop_oneof![
            "[A-Za-z0-9+/]{1,30}[!#$%&*,.:;<>?@^_|~-][A-Za-z0-9+/=]{0,10}",
            "[A-Za-z0-9+/]{1}",
            "[A-Za-z0-9+/]{4,20}={3}",
            "[^:]{0,30}".prop_map(|s| STANDARD.encode(s)),
            proptest::collection::vec(0x80u8..=0xFF, 1..16).prop_map(|b| STANDARD.encode(b)),
            "[a-z]{0,8}(%FF|%C3|%80)[a-z]{0,8}:[a-z]{1,8}".prop_map(|s| STANDARD.encode(s)),
        ],
        body_id in proptest::option::of("[a-z]{1,8}"),
    ) {
        let header = HeaderValue::from_str(&format!("Basic {credentials}")).unwrap();
        let body = body_id.map(|id| format!("client_id={id}")).unwrap_or_default();
        let form = Form::parse(body.as_bytes()).unwrap();
        let result = presented(&request_with(Some(header)), &form);
        prop_assert!(is_code(&result, ErrorCode::InvalidClient), "accepted Basic {}", credentials);
    }
}

/// Found by `form_accepts_exactly_what_was_sent`: bytes that are not UTF-8 used to be replaced
/// with U+FFFD, so the server acted on a value the client never sent.
#[test]
fn form_refuses_what_is_not_utf8() {
    for body in [
        &b"client_id=%FF"[..],
        b"%C3=x",
        b"state=\xff",
        b"a=%C3%A9&b=%E9",
    ] {
        let refused = Form::parse(body).err().unwrap();
        assert_eq!(refused.code, ErrorCode::InvalidRequest);
    }
    assert_eq!(Form::parse(b"a=%C3%A9").unwrap().get("a"), Some("é"));
}

/// Found by `presented_round_trips`' sibling on raw headers: Basic credentials were decoded as
/// the first pair of a form, so `id&anything:secret` authenticated as `id`.
#[test]
fn basic_credentials_are_decoded_whole() {
    let header =
        |raw: &str| HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(raw))).unwrap();
    let result = presented(
        &request_with(Some(header("client&junk=1:s3cret"))),
        &Form::default(),
    );
    match result {
        Ok(Presented::Secret { client_id, .. }) => assert_eq!(client_id, "client&junk=1"),
        other => panic!("{:?}", other.map(|p| p.client_id().to_string())),
    }
    let result = presented(
        &request_with(Some(header("client%FF:s3cret"))),
        &Form::default(),
    );
    assert!(is_code(&result, ErrorCode::InvalidClient));
}

/// Found by the HTTP-level properties on PostgreSQL (`tests/api/fuzz/`): a NUL in `client_id` or
/// a username reached a lookup that PostgreSQL refuses, and the request was answered with a 500.
#[test]
fn a_nul_is_refused_in_forms_and_basic_credentials() {
    for body in [&b"client_id=%00"[..], b"username=alice\0", b"a%00=1"] {
        let refused = Form::parse(body).err().unwrap();
        assert_eq!(refused.code, ErrorCode::InvalidRequest);
    }
    let header = HeaderValue::from_str(&format!("Basic {}", STANDARD.encode("a%00:b"))).unwrap();
    let result = presented(&request_with(Some(header)), &Form::default());
    assert!(is_code(&result, ErrorCode::InvalidClient));
}
