//! The JWT groundwork the lineage server and `lineage-resource` share, in one place: the
//! jsonwebtoken crypto provider (Ed25519 over ring) and the clock every expiry rule reads.
//!
//! It has no HTTP client and no database: both sides depend on it without pulling in the other's
//! stack.

pub mod clock;
pub mod crypto;
