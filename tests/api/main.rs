//! HTTP-level tests: the real server on port 0 with a fresh database per test, spoken to with reqwest.
//! Behavioural tests run on SQLite and, when `TEST_DATABASE_URL` is set, on PostgreSQL too.

// A failed expectation in a test should panic with a message; the crate-wide lint is for src/.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod helpers;

mod backup;
mod cli;
mod client_auth;
mod database_unavailable;
mod discovery;
mod health;
mod jwks;
mod key_rotation;
mod lifecycle;
mod metrics;
mod multi_node;
mod oauth2_client;
mod token_client_credentials;
mod token_errors;
mod writer;

// Issue 5: the front channel (sign-in, consent, codes with PKCE, account page, demo).
mod account;
mod authorize;
mod browser_helpers;
mod code_exchange;
mod consent;
mod demo;
mod login;

// Issue 4: refresh-token families (rotation, reuse, lifetimes, revocation, introspection, feed, gc).
mod admin_cli_families;
mod gc;
mod refresh_concurrency;
mod refresh_helpers;
mod refresh_lifetimes;
mod refresh_proptest;
mod refresh_reuse;
mod refresh_rotation;
mod refresh_users;
mod revocation_feed;
mod revocation_feed_auth;
mod revocation_feed_order;
mod revocation_feed_poller;
mod revoke_introspect;
mod session_races;

// Consent a user can see and withdraw, confirmation for public clients, prompt, form-action.
mod apps_with_access;
mod confirmation;
mod form_action;
mod prompt;

// Request logs, request ids and metrics.
mod request_id;
mod request_log;
mod request_metrics;

// Abuse limits: sign-in back-off, failure limits, trusted proxies, bounded password hashing.
mod client_auth_limits;
mod password_hashing;
mod sign_in_limits;
mod trusted_proxies;
