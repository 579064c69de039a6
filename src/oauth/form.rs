//! `application/x-www-form-urlencoded` request bodies, read with a size limit and parsed strictly:
//! a parameter sent twice is an error (RFC 6749 §3.2).

use std::collections::HashMap;

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use actix_web::web::{BytesMut, Payload};
use futures_util::StreamExt;

use super::error::OAuthError;

/// Bodies above this are refused with 413 before parsing.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

#[derive(Default)]
pub struct Form(HashMap<String, String>);

// Forms carry secrets (client_secret, tokens, codes): only the parameter names are printable.
impl std::fmt::Debug for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Form {
    /// Read and parse the body of a POST to an OAuth endpoint.
    pub async fn read(req: &HttpRequest, mut payload: Payload) -> Result<Form, OAuthError> {
        let content_type = req
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = content_type.split(';').next().unwrap_or("").trim();
        if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(OAuthError::invalid_request(
                "the request body must be application/x-www-form-urlencoded",
            ));
        }
        let too_large = || {
            OAuthError::invalid_request(format!(
                "the request body is larger than {} KiB",
                MAX_BODY_BYTES / 1024
            ))
            .with_status(StatusCode::PAYLOAD_TOO_LARGE)
        };
        if let Some(len) = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            && len > MAX_BODY_BYTES
        {
            return Err(too_large());
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk
                .map_err(|_| OAuthError::invalid_request("the request body could not be read"))?;
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Self::parse(&body)
    }

    /// Parse a body or query string as the WHATWG urlencoded parser does (`&`-separated pairs,
    /// `+` is a space, percent-decoding), except that a name or value that does not decode to
    /// UTF-8 is refused rather than patched with U+FFFD (the server must act on what was sent),
    /// and so is one with a NUL (see `decode_component`).
    pub fn parse(body: &[u8]) -> Result<Form, OAuthError> {
        let mut map = HashMap::new();
        for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (raw_name, raw_value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            let (Some(k), Some(v)) = (decode_component(raw_name), decode_component(raw_value))
            else {
                return Err(OAuthError::invalid_request(
                    "a parameter is not valid UTF-8 or holds a NUL once percent-decoded",
                ));
            };
            if map.contains_key(&k) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter `{k}` is repeated"
                )));
            }
            map.insert(k, v);
        }
        Ok(Form(map))
    }

    /// A parameter; an empty value counts as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("missing parameter `{name}`")))
    }
}

/// One name or value of `application/x-www-form-urlencoded` text: `+` is a space, `%XX` a byte
/// (a `%` not followed by two hex digits stays as it is). `None` when the bytes are not UTF-8 or
/// hold a NUL: no parameter lineage reads has one, and PostgreSQL text cannot store it, so a
/// lookup of such a value would fail there while SQLite merely finds nothing.
pub fn decode_component(raw: &[u8]) -> Option<String> {
    let spaced: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    String::from_utf8(percent_encoding::percent_decode(&spaced).collect())
        .ok()
        .filter(|s| !s.contains('\0'))
}
