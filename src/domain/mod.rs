//! Parse-don't-validate types: a value of one of these is known to be well-formed.

mod client_id;
mod display_name;
mod email;
mod origin;
mod password;
mod redirect_uri;
mod scope;
mod seconds;
mod username;

pub use client_id::ClientId;
pub use display_name::DisplayName;
pub use email::Email;
pub use origin::Origin;
pub use password::Password;
pub use redirect_uri::{LogoutUri, RedirectUri};
pub use scope::Scope;
pub use seconds::Seconds;
pub use username::Username;

/// A grant type lineage knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum GrantType {
    #[serde(rename = "authorization_code")]
    AuthorizationCode,
    #[serde(rename = "refresh_token")]
    RefreshToken,
    #[serde(rename = "client_credentials")]
    ClientCredentials,
}

impl GrantType {
    pub const ALL: [GrantType; 3] = [
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

impl std::fmt::Display for GrantType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something a client may do beyond asking for tokens, granted by an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Permission {
    /// Read the revocation feed (`GET /revocations`): what a resource server needs.
    #[serde(rename = "revocations")]
    Revocations,
}

impl Permission {
    pub const ALL: [Permission; 1] = [Permission::Revocations];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Revocations => "revocations",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
