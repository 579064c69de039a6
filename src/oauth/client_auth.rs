//! Client authentication at the token, revocation and introspection endpoints:
//! HTTP Basic (RFC 6749 §2.3.1, credentials form-urlencoded before Base64), `client_secret_post`,
//! or `none` (a public client names itself with `client_id`). Exactly one method per request.

use actix_web::HttpRequest;
use actix_web::http::header;
use actix_web::web::Data;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::error::OAuthError;
use super::form::Form;
use crate::clients::{self, Client};
use crate::db::{Database, DbConnection, StoreError};
use crate::limits::{ClientAttempt, client_ip, endpoint};
use crate::state::AppState;
use crate::tokens::secret::PlainToken;

/// How the request presented its client, before the database is asked.
#[derive(Debug)]
pub enum Presented {
    Secret {
        client_id: String,
        secret: PlainToken,
    },
    PublicOnly {
        client_id: String,
    },
}

impl Presented {
    pub fn client_id(&self) -> &str {
        match self {
            Presented::Secret { client_id, .. } | Presented::PublicOnly { client_id } => client_id,
        }
    }
}

/// This node's limits on failed client authentication (secret guessing), for one request: per
/// client id at the client's address, and per address whatever the client id. A client id alone
/// is not limited, so nobody can lock a client out from everywhere by failing in its name.
pub struct FailureGuard {
    state: Option<Data<AppState>>,
    attempt: Option<ClientAttempt>,
}

impl FailureGuard {
    /// `429` when this client id at this address, or this address, has failed too often.
    pub fn check(req: &HttpRequest, presented: &Presented) -> Result<Self, OAuthError> {
        let Some(state) = req.app_data::<Data<AppState>>().cloned() else {
            return Ok(Self {
                state: None,
                attempt: None,
            });
        };
        let address = client_ip::of(req);
        match state
            .limits
            .client_auth_allowed(presented.client_id(), address)
        {
            Ok(attempt) => Ok(Self {
                state: Some(state),
                attempt: Some(attempt),
            }),
            Err((kind, wait)) => Err(endpoint::too_many_requests(&state, req, kind, wait)),
        }
    }

    /// The client failed to authenticate: counts against both limits.
    pub fn failed(&self) {
        if let (Some(state), Some(attempt)) = (&self.state, self.attempt) {
            state.limits.client_auth_failed(attempt);
        }
    }
}

fn form_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

pub fn presented(req: &HttpRequest, form: &Form) -> Result<Presented, OAuthError> {
    let basic = match req.headers().get(header::AUTHORIZATION) {
        None => None,
        Some(value) => {
            let value = value
                .to_str()
                .map_err(|_| OAuthError::invalid_client("malformed Authorization header"))?;
            let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(OAuthError::invalid_client(
                    "only HTTP Basic client authentication is accepted in the Authorization header",
                ));
            }
            let decoded = STANDARD
                .decode(rest.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| OAuthError::invalid_client("malformed HTTP Basic credentials"))?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| OAuthError::invalid_client("malformed HTTP Basic credentials"))?;
            Some((form_decode(id), form_decode(secret)))
        }
    };
    let body_id = form.get("client_id");
    let body_secret = form.get("client_secret");
    match (basic, body_secret) {
        (Some(_), Some(_)) => Err(OAuthError::invalid_request(
            "use one client authentication method: HTTP Basic or client_secret in the body, not both",
        )),
        (Some((id, secret)), None) => {
            if body_id.is_some_and(|b| b != id) {
                return Err(OAuthError::invalid_request(
                    "client_id in the body differs from the authenticated client",
                ));
            }
            Ok(Presented::Secret {
                client_id: id,
                secret: PlainToken::new(secret),
            })
        }
        (None, Some(secret)) => {
            let id = body_id.ok_or_else(|| {
                OAuthError::invalid_request("client_secret given without client_id")
            })?;
            Ok(Presented::Secret {
                client_id: id.to_string(),
                secret: PlainToken::new(secret),
            })
        }
        (None, None) => match body_id {
            Some(id) => Ok(Presented::PublicOnly {
                client_id: id.to_string(),
            }),
            None => Err(OAuthError::invalid_client(
                "client authentication is required",
            )),
        },
    }
}

/// Authenticate the client the request presents. Unknown client, wrong secret, a confidential
/// client without its secret, or a public client with one → `invalid_client`.
pub async fn authenticate(
    db: &Database,
    req: &HttpRequest,
    form: &Form,
) -> Result<Client, OAuthError> {
    let presented = presented(req, form)?;
    let guard = FailureGuard::check(req, &presented)?;
    let verified = db.read(move |c| verify(c, &presented)).await?;
    match &verified {
        Ok(client) => crate::telemetry::request::record_client(&client.client_id),
        Err(_) => guard.failed(),
    }
    verified
}

/// The database half of client authentication, for callers already on a database thread.
pub fn verify(
    conn: &mut DbConnection,
    presented: &Presented,
) -> Result<Result<Client, OAuthError>, StoreError> {
    let client_id = presented.client_id();
    let failed = || OAuthError::invalid_client("client authentication failed");
    let Some(client) = clients::find(conn, client_id)? else {
        return Ok(Err(failed()));
    };
    Ok(match presented {
        Presented::Secret { secret, .. } if !client.is_public && client.secret_matches(secret) => {
            Ok(client)
        }
        Presented::PublicOnly { .. } if client.is_public => Ok(client),
        _ => Err(failed()),
    })
}
