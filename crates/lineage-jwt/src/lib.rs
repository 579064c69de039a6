//! The JWT groundwork the lineage server and `lineage-resource` share, in one place: the
//! jsonwebtoken crypto provider (Ed25519 over ring), the clock every expiry rule reads, and DPoP proofs (RFC 9449).
//!
//! It has no HTTP client and no database: both sides depend on it without pulling in the other's
//! stack.

pub mod clock;
pub mod crypto;
pub mod dpop;
