//! Non-OAuth endpoints.

pub mod health;
