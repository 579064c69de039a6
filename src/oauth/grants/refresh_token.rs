//! `grant_type=refresh_token` (RFC 6749 §6): rotate the token, mint an access token with the
//! user's current claims. The rules live in `tokens::refresh`.
//!
//! Client authentication runs in the same database job as the rotation: one trip to the (on
//! SQLite, single) writer per refresh instead of a read and then a write.

use super::super::client_auth::{self, Presented};
use super::super::error::OAuthError;
use super::super::form::Form;
use super::super::token::{TokenResponse, issue_access_token};
use crate::clients::Client;
use crate::db::StoreError;
use crate::domain::{GrantType, Scope};
use crate::state::AppState;
use crate::tokens::jwt::user_claims;
use crate::tokens::refresh::{self, Origin, RefreshError, RotateRequest, Rotated};

/// Who is asking: credentials still to check, or a client the caller already knows.
#[derive(Debug)]
pub enum Caller {
    Presented(Presented),
    Known(Client),
}

pub async fn grant(
    state: &AppState,
    caller: Caller,
    form: &Form,
    origin: Origin,
) -> Result<TokenResponse, OAuthError> {
    let token = form.get("refresh_token").map(str::to_string);
    let scope = form.get("scope").map(str::to_string);
    let (key, policy, now) = (
        state.successor_key.clone(),
        state.refresh_policy,
        state.now(),
    );
    let (client, rotated) = state
        .db
        .write(move |c| {
            let client = match caller {
                Caller::Known(client) => client,
                Caller::Presented(p) => match client_auth::verify(c, &p)? {
                    Ok(client) => client,
                    Err(e) => return Ok(Err(e)),
                },
            };
            if !client.allows_grant(GrantType::RefreshToken) {
                return Ok(Err(OAuthError::unauthorized_client(
                    "this client is not allowed to use the refresh_token grant",
                )));
            }
            let presented = match token.as_deref().map(refresh::parse_presented) {
                None => {
                    return Ok(Err(OAuthError::invalid_request(
                        "missing parameter `refresh_token`",
                    )));
                }
                Some(None) => {
                    return Ok(Err(OAuthError::invalid_grant(
                        "the refresh token is invalid",
                    )));
                }
                Some(Some(t)) => t,
            };
            let scope = match scope.as_deref().map(Scope::parse).transpose() {
                Ok(s) => s,
                Err(e) => return Ok(Err(OAuthError::invalid_scope(e))),
            };
            let req = RotateRequest {
                client_id: client.client_id.clone(),
                scope,
                origin,
            };
            Ok::<_, StoreError>(Ok((
                client,
                refresh::rotate(c, &key, &presented, &req, &policy, now),
            )))
        })
        .await??;
    crate::telemetry::request::record_client(&client.client_id);
    let rotated = rotated.map_err(|e| wire_error(state, e))?;
    if rotated.retried {
        state.metrics.grace_retry(rotated.retried_elsewhere);
    } else {
        state.metrics.refresh_rotations.inc();
    }
    respond(state, &client, rotated).await
}

fn wire_error(state: &AppState, e: RefreshError) -> OAuthError {
    match e {
        RefreshError::InvalidGrant(d) => OAuthError::invalid_grant(d),
        RefreshError::ReuseDetected => {
            state.metrics.refresh_reuse_detected.inc();
            OAuthError::invalid_grant(RefreshError::ReuseDetected.to_string())
        }
        RefreshError::InvalidScope(d) => OAuthError::invalid_scope(d),
        RefreshError::Store(s) => s.into(),
    }
}

async fn respond(
    state: &AppState,
    client: &Client,
    rotated: Rotated,
) -> Result<TokenResponse, OAuthError> {
    let (access_token, expires_in) = issue_access_token(
        state,
        client,
        &rotated.user.id,
        &rotated.scope,
        Some(rotated.family.id.clone()),
        user_claims(&rotated.user),
        // Never beyond the family's end: its idle expiry (which is never past the absolute one).
        Some(
            rotated
                .family
                .idle_expires_at
                .min(rotated.family.absolute_expires_at),
        ),
    )
    .await?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in,
        refresh_token: rotated.refresh_token.map(|t| t.expose().to_string()),
        scope: rotated.scope.to_string(),
    })
}
