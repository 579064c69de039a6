//! What every grant ends with: the scope it may grant, an access token signed for it, an ID token
//! when `openid` is granted to a user (OIDC Core §3.1.3.3, §12.2), and the RFC 6749 §5.1
//! response. Grants import this module; it imports no grant.

use serde::Serialize;

use super::error::OAuthError;
use crate::clients::Client;
use crate::db::models::users::UserRow;
use crate::domain::Scope;
use crate::state::AppState;
use crate::tokens::id_token::{self, IdTokenSpec};
use crate::tokens::jwt::{self, AccessClaims, AccessTokenSpec, user_claims};
use crate::tokens::keys::KeySet;
use crate::tokens::secret::PlainToken;

/// A successful token response (RFC 6749 §5.1).
#[derive(Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub scope: String,
    /// OIDC Core §3.1.3.3: present when `openid` was granted to a user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
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
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// The access token a grant decided to issue.
pub struct AccessGrant<'a> {
    pub client: &'a Client,
    /// The user for a user's token (its id is the `sub`, its profile the claims); `None` for a
    /// client acting for itself (`sub` = client id).
    pub user: Option<&'a UserRow>,
    pub scope: Scope,
    /// The refresh family it belongs to.
    pub sid: Option<String>,
    /// The thumbprint of the DPoP key the token is bound to (`cnf.jkt`); `None` for a bearer
    /// token.
    pub jkt: Option<String>,
    /// Never valid past this (the family's end).
    pub expires_no_later: Option<i64>,
    /// The sign-in behind a user's grant, for an ID token; `None` when there is no family.
    pub sign_in: Option<SignIn>,
}

/// What an ID token says about the sign-in it comes from.
#[derive(Debug, Clone)]
pub struct SignIn {
    /// When the user entered the password.
    pub auth_time: i64,
    /// The authorization request's `nonce` (code exchange only; never on a refresh).
    pub nonce: Option<String>,
}

/// A requested scope: absent = everything `allowed`; present = must be a subset of `allowed`.
pub fn scope_within(requested: Option<&Scope>, allowed: &Scope) -> Result<Scope, OAuthError> {
    match requested {
        None => Ok(allowed.clone()),
        Some(s) if s.is_subset_of(allowed) => Ok(s.clone()),
        Some(_) => Err(OAuthError::invalid_scope(
            "the requested scope exceeds what this client may ask for",
        )),
    }
}

/// Sign the access token of `grant` and build the response, with `refresh_token` if one goes
/// with it.
pub async fn respond(
    state: &AppState,
    grant: AccessGrant<'_>,
    refresh_token: Option<&PlainToken>,
) -> Result<TokenResponse, OAuthError> {
    let now = state.now();
    let keys = state.keys.current(&state.db, now).await;
    let (access_token, expires_at) = sign_access_token(state, &keys, &grant, now)?;
    let id_token = match (&grant.user, &grant.sid, &grant.sign_in) {
        (Some(user), Some(family_id), Some(sign_in)) if id_token::wanted(&grant.scope) => {
            let spec = IdTokenSpec {
                issuer: &state.issuer,
                client: grant.client,
                user,
                scope: &grant.scope,
                family_id,
                auth_time: sign_in.auth_time,
                nonce: sign_in.nonce.as_deref(),
                access_token: &access_token,
                expires_at,
                now,
            };
            let signed = id_token::sign(&keys, spec)
                .map_err(|e| OAuthError::server_error("signing an ID token failed", &e))?;
            Some(signed)
        }
        _ => None,
    };
    Ok(TokenResponse {
        access_token,
        token_type: if grant.jkt.is_some() {
            "DPoP"
        } else {
            "Bearer"
        },
        expires_in: expires_at - now,
        refresh_token: refresh_token.map(|t| t.expose().to_string()),
        scope: grant.scope.to_string(),
        id_token,
    })
}

/// The signed access token of `grant` and when it expires.
fn sign_access_token(
    state: &AppState,
    keys: &KeySet,
    grant: &AccessGrant<'_>,
    now: i64,
) -> Result<(String, i64), OAuthError> {
    let key = keys.active(now).ok_or_else(|| {
        OAuthError::server_error("no active signing key", &"the key set has no active key")
    })?;
    let subject = grant
        .user
        .map_or(grant.client.client_id.as_str(), |u| u.id.as_str());
    let claims = AccessClaims::issue(AccessTokenSpec {
        issuer: &state.issuer,
        client: grant.client,
        subject,
        scope: &grant.scope,
        sid: grant.sid.clone(),
        jkt: grant.jkt.clone(),
        user_claims: grant
            .user
            .map(|u| user_claims(u, &grant.scope))
            .unwrap_or_default(),
        now,
        ttl: state.settings.access_token_ttl,
        expires_no_later: grant.expires_no_later,
    });
    let token = jwt::mint(key, &claims)
        .map_err(|e| OAuthError::server_error("signing an access token failed", &e))?;
    Ok((token, claims.exp))
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
            id_token: Some("eyJhbGciOiJSUzI1NiJ9.id-claims.signature".into()),
        };
        let shown = format!("{response:?}");
        assert!(!shown.contains("secret-claims"), "{shown}");
        assert!(!shown.contains("7d4c3a52"), "{shown}");
        assert!(!shown.contains("id-claims"), "{shown}");
        assert!(shown.contains("notes:read"), "{shown}");
    }
}
