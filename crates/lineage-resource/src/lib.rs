//! Validate lineage access tokens in a resource server.
//!
//! lineage issues short-lived JWT access tokens (RFC 9068, Ed25519). A resource server checks
//! them locally with the issuer's published keys — no call to the authorization server per
//! request — and learns about revoked sessions, access tokens and clients from lineage's
//! revocation feed within seconds.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use lineage_resource::Validator;
//!
//! let validator = Validator::builder("http://127.0.0.1:8080")
//!     .audience("notes-api")
//!     // this API's client at lineage, with `--permission revocations`, to read the feed
//!     .client_credentials("notes-api", std::env::var("NOTES_CLIENT_SECRET")?)
//!     .build()
//!     .await?;
//! let claims = validator.validate("eyJ…").await?;
//! println!("{} may {}", claims.sub, claims.scopes);
//! # Ok(()) }
//! ```
//!
//! A token bound to a client's key (DPoP, RFC 9449: `cnf.jkt`) is accepted only as
//! `Authorization: DPoP <token>` with a `DPoP` proof header, through
//! [`Validator::validate_dpop`]; `validate` refuses it.
//!
//! With the `actix` feature (on by default), [`Authenticated`] is an extractor (Bearer and
//! DPoP) and [`RequireScope`] a middleware.

#[cfg(feature = "actix")]
mod actix;
mod claims;
pub mod clock;
mod error;
mod jwks;
mod revocation;
mod validator;

#[cfg(feature = "actix")]
pub use actix::{Authenticated, FromAccessClaims, RequireScope};
pub use claims::{AccessClaims, Confirmation, Scopes};
pub use clock::{Clock, SystemClock};
pub use error::{
    AuthError, AuthErrorKind, BuildError, DpopError, FeedError, ProofError, Scheme, TokenError,
};
/// The `alg` values accepted for DPoP proofs, as `WWW-Authenticate: DPoP algs="…"` lists them.
pub use lineage_jwt::dpop::ALGORITHMS as DPOP_ALGORITHMS;
pub use revocation::{PollOutcome, RevocationStatus};
pub use validator::{
    Credentials, METADATA_PATH, REVOCATIONS_PATH, Validator, ValidatorBuilder, bearer_token,
};

/// A reqwest error with its causes ("error sending request …: connection refused").
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Install the jsonwebtoken crypto provider (lineage-jwt's, Ed25519 over ring, the one the
/// lineage server uses too) unless another is already installed. [`ValidatorBuilder::build`]
/// calls it; call it yourself only if you use jsonwebtoken directly before building a validator.
pub fn install_crypto_provider() {
    lineage_jwt::crypto::install();
}
