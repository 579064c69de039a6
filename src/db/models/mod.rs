//! One file per table: the row types and the queries on that table.

pub mod audit_events;
pub mod clients;
pub mod signing_keys;
pub mod users;
