//! Token material: secrets and their hashes, Ed25519 signing keys, and access-token JWTs.

pub mod jwt;
pub mod key_ring;
pub mod key_material;
pub mod keys;
pub mod refresh;
pub mod secret;

// The EdDSA and RS256 jsonwebtoken provider, shared with lineage-resource.
pub use lineage_jwt::crypto;
