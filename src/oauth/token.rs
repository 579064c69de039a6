//! `POST /token` (RFC 6749 §3.2): read the form, authenticate the client, dispatch on grant type.

use actix_web::web::{Data, Payload};
use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;

use super::client_auth;
use super::error::{ErrorCode, OAuthError};
use super::form::Form;
use super::grants;
use crate::clients::Client;
use crate::domain::{GrantType, Scope};
use crate::state::AppState;
use crate::tokens::jwt::{self, AccessClaims};
use crate::tokens::refresh::Origin;

#[derive(Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub scope: String,
}

// The tokens are bearer secrets: `Debug` shows that they are there, never what they are.
impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("scope", &self.scope)
            .finish()
    }
}

pub async fn token(
    state: Data<AppState>,
    req: HttpRequest,
    payload: Payload,
) -> Result<HttpResponse, OAuthError> {
    let form = Form::read(&req, payload).await?;
    let grant_label = form
        .get("grant_type")
        .unwrap_or("none")
        .chars()
        .take(40)
        .collect::<String>();
    match dispatch(&state, &req, &form).await {
        Ok(response) => {
            state.metrics.issued(&grant_label);
            Ok(HttpResponse::Ok().json(response))
        }
        Err(e) => {
            let label = if GrantType::parse(&grant_label).is_some() {
                grant_label.as_str()
            } else {
                "other"
            };
            state.metrics.error(label, e.code.as_str());
            Err(e)
        }
    }
}

async fn dispatch(
    state: &AppState,
    req: &HttpRequest,
    form: &Form,
) -> Result<TokenResponse, OAuthError> {
    let grant_name = form.require("grant_type")?;
    let grant = GrantType::parse(grant_name)
        .filter(|g| state.supports_grant(*g))
        .ok_or_else(|| {
            OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                format!("grant_type `{grant_name}` is not supported"),
            )
        })?;
    if grant == GrantType::RefreshToken {
        let presented = client_auth::presented(req, form)?;
        let guard = client_auth::FailureGuard::check(req, &presented)?;
        let caller = grants::refresh_token::Caller::Presented(presented);
        let result = grants::refresh_token::grant(state, caller, form, Origin::of(req)).await;
        // The refresh grant authenticates the client inside its database job; count its failures.
        if matches!(&result, Err(e) if e.code == ErrorCode::InvalidClient) {
            guard.failed();
        }
        return result;
    }
    let client = client_auth::authenticate(&state.db, req, form).await?;
    if !client.allows_grant(grant) {
        return Err(OAuthError::unauthorized_client(format!(
            "this client is not allowed to use the {grant} grant"
        )));
    }
    match grant {
        GrantType::ClientCredentials => {
            grants::client_credentials::grant(state, &client, form).await
        }
        GrantType::AuthorizationCode => {
            grants::authorization_code::grant(state, &client, form, Origin::of(req)).await
        }
        // Not reached (refreshes authenticate inside their database job above), but correct.
        GrantType::RefreshToken => {
            let caller = grants::refresh_token::Caller::Known(client);
            grants::refresh_token::grant(state, caller, form, Origin::of(req)).await
        }
    }
}

impl AppState {
    /// The grant types this server version serves at the token endpoint.
    pub fn supports_grant(&self, grant: GrantType) -> bool {
        SUPPORTED_GRANTS.contains(&grant)
    }
}

pub const SUPPORTED_GRANTS: &[GrantType] = &[
    GrantType::AuthorizationCode,
    GrantType::RefreshToken,
    GrantType::ClientCredentials,
];

/// `scope` parameter: absent → everything `allowed`; present → must be a subset of `allowed`.
pub fn requested_scope(form: &Form, allowed: &Scope) -> Result<Scope, OAuthError> {
    let Some(raw) = form.get("scope") else {
        return Ok(allowed.clone());
    };
    let scope = Scope::parse(raw).map_err(OAuthError::invalid_scope)?;
    if scope.is_empty() {
        return Ok(allowed.clone());
    }
    if !scope.is_subset_of(allowed) {
        return Err(OAuthError::invalid_scope(
            "the requested scope exceeds what this client may ask for",
        ));
    }
    Ok(scope)
}

/// Sign an access token for `subject`. `expires_no_later` caps its life (a refresh family's end).
pub async fn issue_access_token(
    state: &AppState,
    client: &Client,
    subject: &str,
    scope: &Scope,
    sid: Option<String>,
    extra: serde_json::Map<String, serde_json::Value>,
    expires_no_later: Option<i64>,
) -> Result<(String, i64), OAuthError> {
    let now = state.now();
    let keys = state.keys.current(&state.db, now).await;
    let key = keys.active(now).ok_or_else(|| {
        OAuthError::server_error("no active signing key", &"the key set has no active key")
    })?;
    let claims = AccessClaims::issue(jwt::AccessTokenSpec {
        issuer: &state.issuer,
        client,
        subject,
        scope,
        sid,
        user_claims: extra,
        now,
        ttl: state.settings.access_token_ttl,
        expires_no_later,
    });
    let token = jwt::mint(key, &claims)
        .map_err(|e| OAuthError::server_error("signing an access token failed", &e))?;
    Ok((token, claims.exp - now))
}

impl Origin {
    /// The client's address (the peer, or what a trusted proxy forwarded: `limits::client_ip`)
    /// and the user agent, trimmed.
    pub fn of(req: &HttpRequest) -> Origin {
        let ip = crate::limits::client_ip::of(req).map(|a| a.to_string());
        let user_agent = req
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect());
        Origin { ip, user_agent }
    }
}

#[cfg(test)]
mod tests {
    use super::TokenResponse;

    #[test]
    fn debug_never_shows_the_tokens() {
        let response = TokenResponse {
            access_token: "eyJhbGciOiJFZERTQSJ9.secret-claims.signature".into(),
            token_type: "Bearer",
            expires_in: 600,
            refresh_token: Some("7d4c3a52-9c1e-4b7a-8f0e-2d6b1c9a0e11".into()),
            scope: "notes:read".into(),
        };
        let shown = format!("{response:?}");
        assert!(!shown.contains("secret-claims"), "{shown}");
        assert!(!shown.contains("7d4c3a52"), "{shown}");
        assert!(shown.contains("notes:read"), "{shown}");
    }
}
