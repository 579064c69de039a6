//! `GET /jwks.json` (RFC 7517): every published public key of each algorithm — Ed25519 (`EdDSA`,
//! RFC 8037) and RSA (`RS256`, RFC 7518 §6.3) — the signing one, one being rotated in, and retired
//! ones whose tokens may still be alive. Each names its `alg`, so a client picks by `kid` and
//! `alg` alike.

use actix_web::http::header;
use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;

use crate::state::AppState;

use crate::tokens::keys::PublicJwk;

#[derive(Serialize)]
struct Jwk<'a> {
    kty: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    crv: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    x: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    e: Option<&'a str>,
    kid: &'a str,
    #[serde(rename = "use")]
    use_: &'static str,
    alg: &'static str,
}

#[derive(Serialize)]
struct JwkSet<'a> {
    keys: Vec<Jwk<'a>>,
}

pub async fn jwks(state: Data<AppState>, req: HttpRequest) -> HttpResponse {
    let now = state.now();
    let set = state.keys.current(&state.db, now).await;
    let body = JwkSet {
        keys: set
            .published(now, state.settings.access_token_ttl)
            .map(|k| {
                let (kty, crv, x, n, e) = match &k.public {
                    PublicJwk::Okp { x } => ("OKP", Some("Ed25519"), Some(x.as_str()), None, None),
                    PublicJwk::Rsa { n, e } => {
                        ("RSA", None, None, Some(n.as_str()), Some(e.as_str()))
                    }
                };
                Jwk {
                    kty,
                    crv,
                    x,
                    n,
                    e,
                    kid: &k.kid,
                    use_: "sig",
                    alg: k.algorithm.as_str(),
                }
            })
            .collect(),
    };
    let json = serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"keys\":[]}".to_vec());
    let etag = super::etag_of(&json);
    let cache = format!("public, max-age={}", state.settings.jwks_max_age.get());
    let not_modified = super::not_modified(&req, &etag);
    let mut resp = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    resp.insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::ETAG, etag));
    if not_modified {
        resp.finish()
    } else {
        resp.content_type("application/json").body(json)
    }
}
