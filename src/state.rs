//! What every request handler shares.

use crate::clock::SharedClock;
use crate::configuration::{KeySecret, Settings};
use crate::db::Database;
use crate::hashing::HashingPool;
use crate::limits::Limits;
use crate::limits::sign_in::{SignInPolicy, UsernameKeys};
use crate::metrics::Metrics;
use crate::oauth::client_auth::ClientCache;
use crate::oauth::dpop::DpopCheck;
use crate::tokens::key_ring::KeyRing;
use crate::tokens::refresh::{RefreshPolicy, SuccessorKey};
use crate::web::csrf::FormSigner;
use crate::web::session::CookieNames;

// Kept here for callers that read it from `state` (tests move the clock past it).
pub use crate::tokens::key_ring::KEY_RELOAD_SECONDS;

pub struct AppState {
    pub settings: Settings,
    /// Public base URL, no trailing slash.
    pub issuer: String,
    pub db: Database,
    pub clock: SharedClock,
    pub keys: KeyRing,
    /// Root of the server's derived secrets (demo client secret, refresh successor HMAC).
    pub key_secret: KeySecret,
    pub successor_key: SuccessorKey,
    /// DPoP proof checks: replay cache and nonces of this node.
    pub dpop: DpopCheck,
    pub refresh_policy: RefreshPolicy,
    /// Signs CSRF tokens and the consent page's request handle.
    pub form_signer: FormSigner,
    pub cookies: CookieNames,
    pub metrics: Metrics,
    /// In-memory rate limits of this node.
    pub limits: Limits,
    /// The per-username sign-in back-off (kept in the database).
    pub sign_in_policy: SignInPolicy,
    pub username_keys: UsernameKeys,
    /// Password hashing and verification, bounded.
    pub hashing: HashingPool,
    /// Clients that authenticated a moment ago (`client_auth`).
    pub clients: ClientCache,
}

impl AppState {
    pub fn now(&self) -> i64 {
        self.clock.now()
    }
}
