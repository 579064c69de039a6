//! One file per table: the row types and the queries on that table.

pub mod audit_events;
pub mod clients;
pub mod refresh_families;
pub mod refresh_tokens;
pub mod revoked_access_tokens;
pub mod signing_keys;
pub mod users;
