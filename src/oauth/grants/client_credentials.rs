//! `grant_type=client_credentials` (RFC 6749 §4.4): a confidential client acting for itself.

use super::super::error::OAuthError;
use super::super::form::Form;
use super::super::token::{TokenResponse, issue_access_token, requested_scope};
use crate::clients::Client;
use crate::state::AppState;

pub async fn grant(
    state: &AppState,
    client: &Client,
    form: &Form,
) -> Result<TokenResponse, OAuthError> {
    if client.is_public {
        return Err(OAuthError::unauthorized_client(
            "a public client cannot use client_credentials",
        ));
    }
    let scope = requested_scope(form, &client.scopes)?;
    let (access_token, expires_in) = issue_access_token(
        state,
        client,
        &client.client_id,
        &scope,
        None,
        Default::default(),
        None,
    )
    .await?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in,
        refresh_token: None,
        scope: scope.to_string(),
    })
}
