//! One file per grant type.

pub mod client_credentials;
pub mod refresh_token;
