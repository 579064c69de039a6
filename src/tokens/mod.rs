//! Token material: secrets and their hashes, Ed25519 signing keys, and access-token JWTs.

pub mod crypto;
pub mod jwt;
pub mod keys;
pub mod refresh;
pub mod secret;
