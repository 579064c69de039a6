//! Time as a dependency: every expiry rule reads `now` from a [`Clock`], so tests can move time
//! instead of sleeping. The clock is lineage-jwt's, the one the lineage server reads too.

pub use lineage_jwt::clock::{Clock, SystemClock};

pub(crate) use lineage_jwt::clock::SharedClock;
