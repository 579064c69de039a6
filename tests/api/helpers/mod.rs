//! What the feature tests share, one file per concern; everything is re-exported here, so a test
//! imports from `crate::helpers`.
//!
//! * `app`: a fresh database per test and `spawn_app` (the real server on 127.0.0.1:0 with a
//!   manual clock), or the demo server. tests/resource/ compiles this file too.
//! * `accounts`: users (one `create_user`, every user with `PASSWORD`) and clients.
//! * `requests`: HTTP Basic, form bodies, `/token` requests and the RFC 6749 error assertions.
//! * `jwt`: the JWKS, and JWTs checked with ring independently of lineage's signing code.
//! * `browser`, `flow`: a browser with its own cookie jar, the pages it sees, and the
//!   authorization-code flow from the browser to the app's token requests.
//! * `refresh`: refresh-family fixtures, `/revoke`, `/introspect`, the revocation feed, and
//!   direct looks at the tables.
//! * `cli`: the `lineage` binary run against a test app's database.
//! * `dpop`: device keys, DPoP proofs and the token requests that carry them.

/// Generate `<name>::sqlite` and `<name>::postgres` tests for `async fn <name>(backend: Backend)`.
/// A module per test keeps the names apart without an identifier-pasting macro crate.
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::helpers::Backend::Postgres).await;
                }
            }
        )+
    };
}

mod accounts;
mod app;
mod browser;
mod cli;
mod dpop;
mod flow;
mod jwt;
mod refresh;
mod requests;
mod tls;

pub use accounts::*;
pub use app::*;
pub use browser::*;
pub use cli::*;
pub use dpop::*;
pub use flow::*;
pub use jwt::*;
pub use refresh::*;
pub use requests::*;
pub use tls::*;
