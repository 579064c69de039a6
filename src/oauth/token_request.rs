//! A `POST /token` body parsed once into the grant it asks for (RFC 6749 §4.1.3, §4.4.2, §6),
//! after the client has been authenticated: grants take these typed values, never the form.

use super::error::{ErrorCode, OAuthError};
use super::form::Form;
use crate::domain::{GrantType, Scope};
use crate::tokens::refresh;
use crate::tokens::secret::PlainToken;

#[derive(Debug)]
pub enum TokenRequest {
    AuthorizationCode {
        code: PlainToken,
        /// Required when the authorization request named one (checked against the code).
        redirect_uri: Option<String>,
        code_verifier: Option<String>,
    },
    RefreshToken {
        /// Well-formed (a lowercase hyphenated UUID); whether it exists is the rotation's call.
        refresh_token: PlainToken,
        /// A narrower scope for this access token; the family keeps its own.
        scope: Option<Scope>,
    },
    ClientCredentials {
        scope: Option<Scope>,
    },
}

/// The grant a request names, before anything else is read: an unknown or unsupported one is
/// refused before client authentication, as it costs nothing to say so.
pub fn grant_type(form: &Form) -> Result<GrantType, OAuthError> {
    let name = form.require("grant_type")?;
    GrantType::parse(name)
        .filter(|g| SUPPORTED_GRANTS.contains(g))
        .ok_or_else(|| {
            OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                format!("grant_type `{name}` is not supported"),
            )
        })
}

/// The grant types the token endpoint serves (also what discovery lists).
pub const SUPPORTED_GRANTS: &[GrantType] = &[
    GrantType::AuthorizationCode,
    GrantType::RefreshToken,
    GrantType::ClientCredentials,
];

impl TokenRequest {
    /// The parameters of `grant` from the form.
    pub fn parse(grant: GrantType, form: &Form) -> Result<Self, OAuthError> {
        Ok(match grant {
            GrantType::AuthorizationCode => Self::AuthorizationCode {
                code: PlainToken::new(form.require("code")?),
                redirect_uri: form.get("redirect_uri").map(str::to_string),
                code_verifier: form.get("code_verifier").map(str::to_string),
            },
            GrantType::RefreshToken => Self::refresh(form.require("refresh_token")?, scope(form)?)?,
            GrantType::ClientCredentials => Self::ClientCredentials {
                scope: scope(form)?,
            },
        })
    }

    /// A refresh of `token`; one that is not even well-formed is `invalid_grant` at once.
    pub fn refresh(token: &str, scope: Option<Scope>) -> Result<Self, OAuthError> {
        Ok(Self::RefreshToken {
            refresh_token: refresh::parse_presented(token)
                .ok_or_else(|| OAuthError::invalid_grant("the refresh token is invalid"))?,
            scope,
        })
    }

    pub fn grant_type(&self) -> GrantType {
        match self {
            Self::AuthorizationCode { .. } => GrantType::AuthorizationCode,
            Self::RefreshToken { .. } => GrantType::RefreshToken,
            Self::ClientCredentials { .. } => GrantType::ClientCredentials,
        }
    }
}

/// `scope`: absent or empty (RFC 6749 §3.1) is `None`.
fn scope(form: &Form) -> Result<Option<Scope>, OAuthError> {
    match form.get("scope").map(Scope::parse).transpose() {
        Ok(s) => Ok(s.filter(|s| !s.is_empty())),
        Err(e) => Err(OAuthError::invalid_scope(e)),
    }
}
