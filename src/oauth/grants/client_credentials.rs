//! `grant_type=client_credentials` (RFC 6749 §4.4): a confidential client acting for itself.

use super::super::error::OAuthError;
use super::super::issue::{self, AccessGrant, TokenResponse, scope_within};
use crate::clients::Client;
use crate::domain::Scope;
use crate::state::AppState;

pub async fn grant(
    state: &AppState,
    client: &Client,
    scope: Option<&Scope>,
    dpop_jkt: Option<String>,
) -> Result<TokenResponse, OAuthError> {
    if client.is_public {
        return Err(OAuthError::unauthorized_client(
            "a public client cannot use client_credentials",
        ));
    }
    let access = AccessGrant {
        client,
        user: None,
        scope: scope_within(scope, &client.scopes)?,
        sid: None,
        jkt: dpop_jkt,
        expires_no_later: None,
        sign_in: None,
    };
    issue::respond(state, access, None).await
}
