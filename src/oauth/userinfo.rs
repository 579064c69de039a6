//! `/userinfo` (OpenID Connect Core §5.3): the signed-in user's claims for an access token that
//! was granted `openid`, by the scopes it was granted (`Profile::claims`).
//!
//! The token comes as an RFC 6750 bearer token, in the `Authorization` header (§2.1) or, on a
//! POST, as `access_token` in a form body (§2.2) — never in the URL (§2.3), where it would end
//! up in logs and histories. It is checked exactly as introspection checks it (`bearer::check`).
//! Errors follow RFC 6750 §3: a `WWW-Authenticate: Bearer` challenge, and the same `error` in a
//! JSON body. A token bound to a DPoP key (RFC 9449) comes as `Authorization: DPoP …` with a
//! proof instead, and is refused as a bearer token.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::web::{Data, Payload};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde_json::{Map, Value, json};

use super::bearer::{self, LiveToken, Rejected};
use super::cors;
use super::dpop::Target;
use super::error::{ErrorCode, OAuthError, description_chars};
use super::form::Form;
use crate::domain::Scope;
use crate::profile::Profile;
use crate::state::AppState;

/// The scope an access token needs here (OIDC Core §5.3).
const OPENID: &str = "openid";

pub async fn userinfo(
    state: Data<AppState>,
    req: HttpRequest,
    payload: Payload,
) -> Result<HttpResponse, UserinfoError> {
    let Some((scheme, token)) = presented_token(&req, payload).await? else {
        return Err(UserinfoError::NoToken);
    };
    let live = match bearer::check(&state, &token, bearer::WithUser::Yes)
        .await
        .map_err(OAuthError::from)?
    {
        Ok(live) => live,
        Err(Rejected { claims, why }) => {
            // A page on the client's origin may read why its own token was refused.
            if let Some(claims) = claims {
                cors::name_token_client(&req, &claims.client_id);
            }
            return Err(match scheme {
                Scheme::Bearer => UserinfoError::InvalidToken(why),
                Scheme::Dpop => UserinfoError::dpop("invalid_token", why),
            });
        }
    };
    cors::name_token_client(&req, &live.claims.client_id);
    possession(&state, &req, scheme, &token, &live)?;
    let answer = answer(live)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(answer))
}

/// RFC 9449 §7: a token bound to a DPoP key comes with the DPoP scheme and a proof by that key
/// (`ath` its hash, `htm`/`htu` this request); an unbound token comes as a bearer token.
fn possession(
    state: &AppState,
    req: &HttpRequest,
    scheme: Scheme,
    token: &str,
    live: &LiveToken,
) -> Result<(), UserinfoError> {
    let bound = live.claims.cnf.as_ref().map(|c| c.jkt.as_str());
    let jkt = match (scheme, bound) {
        (Scheme::Bearer, None) => return Ok(()),
        (Scheme::Bearer, Some(_)) => {
            return Err(UserinfoError::InvalidToken(
                "the access token is bound to a DPoP key: send it with the DPoP scheme and a proof",
            ));
        }
        (Scheme::Dpop, None) => {
            return Err(UserinfoError::dpop(
                "invalid_token",
                "the access token is not bound to a DPoP key: send it as a Bearer token",
            ));
        }
        (Scheme::Dpop, Some(jkt)) => jkt,
    };
    let htu = format!("{}/userinfo", state.issuer);
    let target = Target {
        htm: req.method().as_str(),
        htu: &htu,
    };
    let proof = match state.dpop.proof_of(req, target, Some(token), state.now()) {
        Ok(Some(proof)) => proof,
        Ok(None) => {
            return Err(UserinfoError::dpop(
                "invalid_dpop_proof",
                "the DPoP scheme needs a DPoP proof header",
            ));
        }
        Err(e) if e.code == ErrorCode::UseDpopNonce => {
            return Err(UserinfoError::Dpop {
                code: "use_dpop_nonce",
                description: e.description.unwrap_or_default(),
                nonce: e.dpop_nonce,
            });
        }
        Err(e) if e.code == ErrorCode::InvalidDpopProof => {
            return Err(UserinfoError::dpop(
                "invalid_dpop_proof",
                e.description.unwrap_or_default(),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    if proof.jkt != jkt {
        return Err(UserinfoError::dpop(
            "invalid_dpop_proof",
            "the DPoP proof is signed by another key than the one the token is bound to",
        ));
    }
    Ok(())
}

/// How the token was presented (RFC 6750 §2, RFC 9449 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Bearer,
    Dpop,
}

/// `{"sub": …}` and the profile claims the token's scope grants.
fn answer(live: LiveToken) -> Result<Map<String, Value>, UserinfoError> {
    // The scope was written by this server when it signed the token; one that does not parse
    // grants nothing.
    let scope = Scope::parse(&live.claims.scope).unwrap_or_default();
    if !scope.contains(OPENID) {
        return Err(UserinfoError::InsufficientScope);
    }
    let Some(user) = live.user else {
        return Err(UserinfoError::InvalidToken(
            "the access token was not issued for a user",
        ));
    };
    let profile = Profile::from(&user);
    let mut claims = Map::new();
    claims.insert("sub".into(), profile.subject.clone().into());
    claims.extend(profile.claims(&scope));
    Ok(claims)
}

/// The bearer token of the request: from `Authorization: Bearer …` or, on a POST with a form
/// body, its `access_token`. `None` when the request carries none (the 401 without an error
/// code); sent twice, in the URL, or malformed is `invalid_request`.
async fn presented_token(
    req: &HttpRequest,
    payload: Payload,
) -> Result<Option<(Scheme, String)>, UserinfoError> {
    let in_query = url::form_urlencoded::parse(req.query_string().as_bytes())
        .any(|(name, _)| name == "access_token");
    if in_query {
        return Err(UserinfoError::InvalidRequest(
            "the access token must be sent in the Authorization header or a form body, \
             never in the URL",
        ));
    }
    let from_header = header_token(req)?;
    let from_body = if req.method() == Method::POST && is_form(req) {
        let form = Form::read(req, payload)
            .await
            .map_err(|_| UserinfoError::InvalidRequest("the form body could not be read"))?;
        form.get("access_token")
            .map(|t| (Scheme::Bearer, t.to_string()))
    } else {
        None
    };
    match (from_header, from_body) {
        (Some(_), Some(_)) => Err(UserinfoError::InvalidRequest(
            "the access token was sent in more than one way",
        )),
        (token, None) | (None, token) => Ok(token),
    }
}

fn is_form(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// `Authorization: Bearer <b64token>` (RFC 6750 §2.1) or `DPoP <b64token>` (RFC 9449 §7.1); the
/// scheme is case-insensitive, RFC 9110 §11.1. Another scheme is no access token at all.
fn header_token(req: &HttpRequest) -> Result<Option<(Scheme, String)>, UserinfoError> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let malformed = UserinfoError::InvalidRequest("the Authorization header is malformed");
    if values.next().is_some() {
        return Err(malformed);
    }
    let value = value.to_str().map_err(|_| malformed.clone())?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return Ok(None);
    };
    let token = rest.trim_matches(' ');
    if !is_b64token(token) {
        return Err(malformed);
    }
    Ok(Some((scheme, token.to_string())))
}

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="` (RFC 6750 §2.1).
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// What `/userinfo` answers instead of claims (RFC 6750 §3.1).
#[derive(Debug, Clone, thiserror::Error)]
pub enum UserinfoError {
    /// No bearer token at all: 401 with a bare challenge (RFC 6750 §3.1, "SHOULD NOT include an
    /// error code").
    #[error("no access token")]
    NoToken,
    #[error("invalid_request: {0}")]
    InvalidRequest(&'static str),
    #[error("invalid_token: {0}")]
    InvalidToken(&'static str),
    #[error("insufficient_scope")]
    InsufficientScope,
    /// A DPoP-scheme request refused (RFC 9449 §7.1): a `DPoP` challenge with the supported
    /// algorithms, and the nonce to use when the code is `use_dpop_nonce`.
    #[error("{code}: {description}")]
    Dpop {
        code: &'static str,
        description: String,
        nonce: Option<String>,
    },
    /// The server could not answer (storage): RFC 6749 JSON as on every other endpoint.
    #[error("{0}")]
    Server(#[from] OAuthError),
}

impl UserinfoError {
    fn dpop(code: &'static str, description: impl Into<String>) -> Self {
        Self::Dpop {
            code,
            description: description.into(),
            nonce: None,
        }
    }

    fn code_and_description(&self) -> Option<(&'static str, &str)> {
        match self {
            Self::NoToken | Self::Server(_) => None,
            Self::Dpop {
                code, description, ..
            } => Some((code, description)),
            Self::InvalidRequest(d) => Some(("invalid_request", d)),
            Self::InvalidToken(d) => Some(("invalid_token", d)),
            Self::InsufficientScope => Some((
                "insufficient_scope",
                "the access token was not granted the openid scope",
            )),
        }
    }
}

impl ResponseError for UserinfoError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::NoToken | Self::InvalidToken(_) | Self::Dpop { .. } => StatusCode::UNAUTHORIZED,
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::InsufficientScope => StatusCode::FORBIDDEN,
            Self::Server(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Server(e) = self {
            return e.error_response();
        }
        let mut challenge = String::from("Bearer realm=\"lineage\"");
        let algs = format!("algs=\"{}\"", lineage_jwt::dpop::ALGORITHMS.join(" "));
        let mut resp = HttpResponse::build(self.status_code());
        resp.insert_header((header::CACHE_CONTROL, "no-store"));
        let Some((code, description)) = self.code_and_description() else {
            // Either scheme will do (RFC 9449 §7.1): one challenge for each.
            resp.append_header((header::WWW_AUTHENTICATE, challenge));
            resp.append_header((header::WWW_AUTHENTICATE, format!("DPoP {algs}")));
            return resp.finish();
        };
        if let Self::Dpop { nonce, .. } = self {
            challenge = format!("DPoP {algs}");
            if let Some(value) = nonce.as_deref().and_then(|n| HeaderValue::from_str(n).ok()) {
                resp.insert_header((super::dpop::NONCE_HEADER, value));
            }
        }
        // The descriptions are fixed texts; `description_chars` keeps the quoted-string safe
        // should one ever carry a quote.
        let description = description_chars(description);
        challenge.push_str(&format!(
            ", error=\"{code}\", error_description=\"{description}\""
        ));
        if matches!(self, Self::InsufficientScope) {
            challenge.push_str(&format!(", scope=\"{OPENID}\""));
        }
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            resp.insert_header((header::WWW_AUTHENTICATE, value));
        }
        resp.json(json!({"error": code, "error_description": description}))
    }
}

#[cfg(test)]
mod tests {
    use super::is_b64token;

    #[test]
    fn bearer_token_syntax() {
        assert!(is_b64token("eyJhbGciOiJFZERTQSJ9.e30.c2ln"));
        assert!(is_b64token("abc+/=="));
        for bad in ["", "==", "a b", "a\"b", "a,b", "a=b"] {
            assert!(!is_b64token(bad), "{bad:?}");
        }
    }
}
