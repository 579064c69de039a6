//! HTTP-level tests: the real server on port 0 with a fresh database per test, spoken to with reqwest.
//! Behavioural tests run on SQLite and, when `TEST_DATABASE_URL` is set, on PostgreSQL too.
//!
//! One folder per feature; what they share (spawning the server, users and clients, the browser,
//! refresh fixtures, the command line) is in `helpers/`.

// A failed expectation in a test should panic with a message; the crate-wide lint is for src/.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod helpers;

/// `/token` as a client sees it: client authentication, each grant, errors, a client library,
/// browser apps calling it (and the other endpoints they use) cross-origin.
mod token;

/// Signing keys and the metadata that publishes them: JWKS, rotation, discovery, several nodes.
mod keys;

/// Refresh-token families: rotation, reuse detection, lifetimes, concurrency, users' standing.
mod refresh;

/// Ending tokens and telling resource servers: `/revoke`, `/introspect`, the revocation feed.
mod revocation;

/// The front channel in a browser: sign-in, `/authorize`, consent, prompt, the account page, demo.
mod browser_session;

/// The operator's tools: the command line, backups, housekeeping.
mod admin;

/// Running the server: health, metrics, request logs and ids, shutdown, the writer, outages.
mod operations;

/// Abuse limits: sign-in back-off, client-authentication failures, trusted proxies, hashing pool.
mod limits;

/// DPoP (RFC 9449): tokens and refresh families bound to a key, the proofs `/token` and
/// `/userinfo` check, `dpop_jkt`, clients that require proofs, server nonces.
mod dpop;

/// OpenID Connect: profile claims, `/userinfo`, discovery, ID tokens, back-channel logout.
mod oidc;

/// Properties over HTTP on arbitrary input: `/authorize` queries and sign-in forms.
mod fuzz;
