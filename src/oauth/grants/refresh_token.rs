//! `grant_type=refresh_token` (RFC 6749 §6): rotate the token, mint an access token with the
//! user's current claims. The rules live in `tokens::refresh`.

use super::super::error::OAuthError;
use super::super::form::Form;
use super::super::token::{TokenResponse, issue_access_token};
use crate::clients::Client;
use crate::domain::Scope;
use crate::state::AppState;
use crate::tokens::jwt::user_claims;
use crate::tokens::refresh::{self, Origin, RefreshError, RotateRequest};

pub async fn grant(
    state: &AppState,
    client: &Client,
    form: &Form,
    origin: Origin,
) -> Result<TokenResponse, OAuthError> {
    let presented = refresh::parse_presented(form.require("refresh_token")?)
        .ok_or_else(|| OAuthError::invalid_grant("the refresh token is invalid"))?;
    let scope = form
        .get("scope")
        .map(Scope::parse)
        .transpose()
        .map_err(OAuthError::invalid_scope)?;
    let req = RotateRequest {
        client_id: client.client_id.clone(),
        scope,
        origin,
    };
    let (key, policy, now) = (
        state.successor_key.clone(),
        state.refresh_policy,
        state.now(),
    );
    let rotated = state
        .db
        .write(move |c| Ok(refresh::rotate(c, &key, &presented, &req, &policy, now)))
        .await?
        .map_err(|e| match e {
            RefreshError::InvalidGrant(d) => OAuthError::invalid_grant(d),
            RefreshError::ReuseDetected => {
                state.metrics.refresh_reuse_detected.inc();
                OAuthError::invalid_grant(RefreshError::ReuseDetected.to_string())
            }
            RefreshError::InvalidScope(d) => OAuthError::invalid_scope(d),
            RefreshError::Store(s) => s.into(),
        })?;
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
        refresh_token: Some(rotated.refresh_token.expose().to_string()),
        scope: rotated.scope.to_string(),
    })
}
