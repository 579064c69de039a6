//! `POST /demo/backchannel-logout` (only with `serve --demo`): the demo app's back-channel logout
//! endpoint (OpenID Connect Back-Channel Logout 1.0 §2.5). lineage POSTs a logout token here when
//! one of the demo app's sessions (refresh families) ends early; the endpoint validates it as a
//! real app must (§2.6: signature by a key of this server's key set, issuer, audience, times,
//! event, no nonce) and remembers the last few in memory, so the demo page can show that the app
//! was told at once. An app would end its own session for that `sid` here.

use std::collections::VecDeque;
use std::sync::Mutex;

use actix_web::web::{Data, Payload};
use actix_web::{HttpRequest, HttpResponse};

use crate::backchannel::{LogoutTokenError, verify_logout_token};
use crate::db::models::refresh_families;
use crate::demo::DEMO_APP_CLIENT;
use crate::oauth::error::OAuthError;
use crate::oauth::form::Form;
use crate::state::AppState;
use crate::tokens::refresh::RevocationReason;

/// How many received logouts the demo keeps: enough to show, bounded whatever arrives.
const KEPT: usize = 10;

/// A logout the demo app was told about.
#[derive(Debug, Clone)]
pub struct ReceivedLogout {
    /// The session (refresh family) that ended: the `sid` of the app's tokens.
    pub sid: String,
    /// Why, in words, as lineage recorded it (the token itself carries no reason; the demo, living
    /// inside the server, looks it up to explain what happened).
    pub reason: String,
    /// The algorithm the token was signed with (`alg` of its header).
    pub alg: String,
    /// When it arrived (the server's clock).
    pub at: i64,
}

/// The logouts received by this node's demo app, newest first, at most [`KEPT`].
#[derive(Debug, Default)]
pub struct DemoLogouts {
    got: Mutex<VecDeque<ReceivedLogout>>,
}

impl DemoLogouts {
    fn record(&self, logout: ReceivedLogout) {
        let mut got = match self.got.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        got.push_front(logout);
        got.truncate(KEPT);
    }

    /// What has arrived, newest first.
    pub fn list(&self) -> Vec<ReceivedLogout> {
        match self.got.lock() {
            Ok(g) => g.iter().cloned().collect(),
            Err(poisoned) => poisoned.into_inner().iter().cloned().collect(),
        }
    }
}

/// §2.8: 200 when the logout was accepted, 400 with an OAuth error body when the token is not
/// valid (the route adds `Cache-Control: no-store`).
pub async fn receive(
    state: Data<AppState>,
    logouts: Data<DemoLogouts>,
    req: HttpRequest,
    payload: Payload,
) -> Result<HttpResponse, OAuthError> {
    let form = Form::read(&req, payload).await?;
    let token = form
        .get("logout_token")
        .ok_or_else(|| OAuthError::invalid_request("logout_token is missing"))?
        .to_string();
    let now = state.now();
    let keys = state.keys.for_token(&state.db, &token, now).await?;
    let claims = verify_logout_token(&keys, &token, &state.issuer, DEMO_APP_CLIENT, now)
        .map_err(|e: LogoutTokenError| OAuthError::invalid_request(e.to_string()))?;
    let alg = jsonwebtoken::decode_header(&token)
        .map(|h| format!("{:?}", h.alg))
        .unwrap_or_default();
    let sid = claims.sid.clone();
    let family = state
        .db
        .read(move |c| refresh_families::find(c, &sid))
        .await?;
    let reason = family
        .and_then(|f| f.revoked_reason)
        .and_then(|code| RevocationReason::parse(&code))
        .map_or("reason not recorded", RevocationReason::in_words)
        .to_string();
    logouts.record(ReceivedLogout {
        sid: claims.sid,
        reason,
        alg,
        at: now,
    });
    Ok(HttpResponse::Ok().finish())
}
