//! `GET /jwks.json` (RFC 7517): every published Ed25519 public key — the signing one, one being
//! rotated in, and retired ones whose tokens may still be alive.

use actix_web::http::header;
use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;

use crate::state::AppState;

#[derive(Serialize)]
struct Jwk<'a> {
    kty: &'static str,
    crv: &'static str,
    x: &'a str,
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
            .map(|k| Jwk {
                kty: "OKP",
                crv: "Ed25519",
                x: &k.x,
                kid: &k.kid,
                use_: "sig",
                alg: "EdDSA",
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
