//! Client authentication at the token, revocation and introspection endpoints:
//! HTTP Basic (RFC 6749 §2.3.1, credentials form-urlencoded before Base64), `client_secret_post`,
//! or `none` (a public client names itself with `client_id`). Exactly one method per request.

use std::collections::HashMap;
use std::sync::RwLock;

use actix_web::HttpRequest;
use actix_web::http::header;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::error::OAuthError;
use super::form::{Form, decode_component};
use crate::clients::{self, Client};
use crate::domain::{ClientId, Seconds};
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
struct FailureGuard<'a> {
    state: &'a AppState,
    attempt: ClientAttempt,
}

impl<'a> FailureGuard<'a> {
    /// `429` when this client id at this address, or this address, has failed too often.
    fn check(
        state: &'a AppState,
        req: &HttpRequest,
        presented: &Presented,
    ) -> Result<Self, OAuthError> {
        let address = client_ip::of(req);
        match state
            .limits
            .client_auth_allowed(presented.client_id(), address)
        {
            Ok(attempt) => Ok(Self { state, attempt }),
            Err((kind, wait)) => Err(endpoint::too_many_requests(state, req, kind, wait)),
        }
    }

    /// The client failed to authenticate: counts against both limits.
    fn failed(&self) {
        self.state.limits.client_auth_failed(self.attempt);
    }
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
            // RFC 6749 §2.3.1: each part form-urlencoded; one that does not decode is refused.
            let credentials = decoded.split_once(':').and_then(|(id, secret)| {
                Some((
                    decode_component(id.as_bytes())?,
                    decode_component(secret.as_bytes())?,
                ))
            });
            Some(
                credentials.ok_or_else(|| {
                    OAuthError::invalid_client("malformed HTTP Basic credentials")
                })?,
            )
        }
    };
    let body_id = form.get("client_id");
    let body_secret = form.get("client_secret");
    match (basic, body_secret) {
        (Some(_), Some(_)) => Err(OAuthError::invalid_request(
            "use one client authentication method: \
             HTTP Basic or client_secret in the body, not both",
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

/// Authenticate the client the request presents: the one step `/token`, `/revoke`,
/// `/introspect` and `/revocations` share. Unknown client, wrong secret, a confidential client
/// without its secret, or a public client with one → `invalid_client`; failures count against
/// this node's limits.
pub async fn authenticate(
    state: &AppState,
    req: &HttpRequest,
    form: &Form,
) -> Result<Client, OAuthError> {
    let presented = presented(req, form)?;
    let guard = FailureGuard::check(state, req, &presented)?;
    let now = state.now();
    let client = match state.clients.get(presented.client_id(), now) {
        Some(client) if accepts(&client, &presented) => Some(client),
        // Not cached, or the cached row refuses: the database decides (a secret changed a
        // moment ago must work at once).
        _ => read_row(state, presented.client_id())
            .await?
            .filter(|client| accepts(client, &presented))
            .inspect(|client| state.clients.put(client, now)),
    };
    let verified = client.ok_or_else(|| OAuthError::invalid_client("client authentication failed"));
    match &verified {
        Ok(client) => crate::telemetry::request::record_client(&client.client_id),
        Err(_) => guard.failed(),
    }
    verified
}

/// Read a form body and authenticate the client it comes from (`/introspect`).
pub async fn authenticated_form(
    state: &AppState,
    req: &HttpRequest,
    payload: actix_web::web::Payload,
) -> Result<(Client, Form), OAuthError> {
    let form = Form::read(req, payload).await?;
    let client = authenticate(state, req, &form).await?;
    Ok((client, form))
}

/// The registered client `client_id`, from this node's cache or else its row, whoever presents
/// it: for answers that depend on a client's registration, not on its authentication (the
/// origins `/token` and `/revoke` answer cross-origin).
pub async fn registered(state: &AppState, client_id: &str) -> Result<Option<Client>, OAuthError> {
    let now = state.now();
    if let Some(client) = state.clients.get(client_id, now) {
        return Ok(Some(client));
    }
    let found = read_row(state, client_id).await?;
    if let Some(client) = &found {
        state.clients.put(client, now);
    }
    Ok(found)
}

/// The client's row as it is now, bypassing the cache (callers fill it with what they use).
async fn read_row(state: &AppState, client_id: &str) -> Result<Option<Client>, OAuthError> {
    let id = client_id.to_string();
    Ok(state.db.read(move |c| clients::find(c, &id)).await?)
}

/// Whether `client` is the one `presented` proves: a confidential client by its secret, a
/// public client by its id alone.
fn accepts(client: &Client, presented: &Presented) -> bool {
    match presented {
        Presented::Secret { secret, .. } => !client.is_public && client.secret_matches(secret),
        Presented::PublicOnly { .. } => client.is_public,
    }
}

/// Clients that authenticated, or were looked up (`registered`), on this node in the last `ttl`
/// seconds, so a client's every request does not read its row again. Only rows that exist are
/// kept (one per registered client), and a presented secret is still checked against the cached
/// hash. A client deleted, changed or given a new secret elsewhere (the CLI, another node) is
/// seen here within `ttl`; a new secret works at once, since a mismatch falls through to the
/// database.
pub struct ClientCache {
    ttl: Seconds,
    entries: RwLock<HashMap<ClientId, (Client, i64)>>,
}

/// Above this many entries, expired ones are dropped on the next insert.
const CACHE_PRUNE_ABOVE: usize = 4096;

impl ClientCache {
    /// `ttl` 0 turns the cache off.
    pub fn new(ttl: Seconds) -> Self {
        Self {
            ttl,
            entries: RwLock::default(),
        }
    }

    fn get(&self, client_id: &str, now: i64) -> Option<Client> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        match entries.get(client_id) {
            Some((client, fetched)) if now < *fetched + self.ttl => Some(client.clone()),
            _ => None,
        }
    }

    fn put(&self, client: &Client, now: i64) {
        if self.ttl <= Seconds::ZERO {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CACHE_PRUNE_ABOVE {
            let ttl = self.ttl;
            entries.retain(|_, (_, fetched)| now < *fetched + ttl);
        }
        entries.insert(client.client_id.clone(), (client.clone(), now));
    }
}
