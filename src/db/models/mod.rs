//! One file per table: the row types and the queries on that table.

pub mod audit_events;
pub mod auth_codes;
pub mod browser_sessions;
pub mod clients;
pub mod consents;
pub mod logout_deliveries;
pub mod refresh_families;
pub mod refresh_tokens;
pub mod revocation_feed;
pub mod revoked_access_tokens;
pub mod sign_in_throttles;
pub mod signing_keys;
pub mod users;
