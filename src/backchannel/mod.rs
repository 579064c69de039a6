//! OpenID Connect Back-Channel Logout 1.0: when a refresh family ends early, its client is told
//! at once with a signed logout token POSTed to its `backchannel_logout_uri`, so the app drops
//! its session now rather than at the next refresh.
//!
//! * Queueing: `tokens/refresh/revocation.rs` (and the reuse statement of `rotation_pg.rs`)
//!   insert a `logout_deliveries` row in the transaction that ends the family, so a crash or a
//!   restart loses none; the token request that detected reuse does nothing more.
//! * Delivery (`delivery.rs`): one task per node, woken after each commit that revoked families
//!   and on a periodic tick; it leases due rows, signs each token when it sends it, POSTs with a
//!   short timeout and a bounded number in flight, and retries with back-off.
//! * The token (`token.rs`): §2.4 claims, `typ: logout+jwt`, signed by `sign_logout_token`;
//!   `verify_logout_token` checks one as a receiving app does (§2.6), for the demo app.

mod delivery;
mod token;

pub use self::delivery::{Running, backoff, start};
pub use self::token::{
    BACKCHANNEL_LOGOUT_EVENT, LOGOUT_TOKEN_TTL, LOGOUT_TOKEN_TYP, LogoutClaims, LogoutTokenError,
    sign_logout_token, verify_logout_token,
};
