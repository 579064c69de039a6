//! The OAuth 2.0 endpoints lineage owns.

pub mod authorize;
pub mod client_auth;
pub mod discovery;
pub mod error;
pub mod form;
pub mod grants;
pub mod introspect;
pub mod jwks;
pub mod pkce;
pub mod revocations;
pub mod revoke;
pub mod token;
