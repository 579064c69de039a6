//! Token material: secrets and their hashes, Ed25519 and RSA signing keys, access-token JWTs and
//! OpenID Connect ID tokens.

pub mod id_token;
pub mod jwt;
pub mod key_material;
pub mod key_ring;
pub mod keys;
pub mod refresh;
pub mod secret;

// The EdDSA and RS256 jsonwebtoken provider, shared with lineage-resource.
pub use lineage_jwt::crypto;
