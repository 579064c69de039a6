//! An access token presented to lineage itself — at `/introspect` by a resource server, at
//! `/userinfo` by an app — checked one way for both: the signature by a published key, `typ`,
//! `iss`, `exp`/`nbf` (`tokens::jwt`), then everything that can end a token early: the
//! access-token denylist, its client deleted (or registered again), its family revoked, its user
//! disabled or signed out everywhere (not-before).

use crate::clients;
use crate::db::models::users::UserRow;
use crate::db::models::{refresh_families, revoked_access_tokens, users};
use crate::db::{DbConnection, StoreError};
use crate::state::AppState;
use crate::tokens::jwt::{self, AccessClaims, VerifyError};

/// A token that passed every check, with its user's row when it is a user's token (read in the
/// same job, so `/userinfo` answers from the row the check saw).
#[derive(Debug)]
pub struct LiveToken {
    pub claims: AccessClaims,
    pub user: Option<UserRow>,
}

/// Why a presented token is not (or no longer) good. The descriptions are for RFC 6750
/// `error_description`s: they name the reason, never the token.
#[derive(Debug, Clone)]
pub struct Rejected {
    /// The claims, when the token is one this server signed (expired or revoked, say), so the
    /// caller still knows which client it was issued to.
    pub claims: Option<AccessClaims>,
    pub why: &'static str,
}

/// Check `token` as of the server's clock. Storage failures are errors; every reason the token
/// is not good is a [`Rejected`].
pub async fn check(
    state: &AppState,
    token: &str,
) -> Result<Result<LiveToken, Rejected>, StoreError> {
    let now = state.now();
    let keys = state.keys.for_token(&state.db, token, now).await?;
    let claims = match jwt::verify_signed(&keys, token, &state.issuer) {
        Ok(claims) => claims,
        Err(e) => {
            return Ok(Err(Rejected {
                claims: None,
                why: signature_words(&e),
            }));
        }
    };
    if let Err(e) = claims.check_time(now) {
        let why = match e {
            VerifyError::NotYetValid => "the access token is not valid yet",
            _ => "the access token has expired",
        };
        return Ok(Err(Rejected {
            claims: Some(claims),
            why,
        }));
    }
    let checked = claims.clone();
    let standing = state.db.read(move |c| standing(c, &checked)).await?;
    Ok(match standing {
        Standing::Live(user) => Ok(LiveToken { claims, user }),
        Standing::Ended(why) => Err(Rejected {
            claims: Some(claims),
            why,
        }),
    })
}

fn signature_words(e: &VerifyError) -> &'static str {
    match e {
        VerifyError::WrongIssuer => "the access token was issued by another server",
        VerifyError::UnknownKey => "the access token is signed by an unknown key",
        _ => "the access token is not a valid access token of this server",
    }
}

enum Standing {
    Live(Option<UserRow>),
    Ended(&'static str),
}

/// Whether a verified token has been ended early, and its user's row if it has a user.
fn standing(c: &mut DbConnection, claims: &AccessClaims) -> Result<Standing, StoreError> {
    if revoked_access_tokens::is_revoked(c, &claims.jti)? {
        return Ok(Standing::Ended("the access token was revoked"));
    }
    // A client deleted and registered again under the same id does not revive its old tokens
    // (the same rule `lineage-resource` applies with the feed's deleted-client entries).
    match clients::find(c, &claims.client_id)? {
        Some(client) if client.created_at <= claims.iat => {}
        _ => {
            return Ok(Standing::Ended(
                "the access token's client no longer exists",
            ));
        }
    }
    // A client's own token (client_credentials) has no family and the client id as `sub`, never
    // a user id: no user to read. A user's token always has a family.
    let Some(sid) = &claims.sid else {
        return Ok(Standing::Live(None));
    };
    match refresh_families::find(c, sid)? {
        Some(f) if f.revoked_at.is_none() => {}
        _ => return Ok(Standing::Ended("the access token's session was revoked")),
    }
    let user = match users::find(c, &claims.sub)? {
        None => return Ok(Standing::Ended("the access token's user no longer exists")),
        Some(u) if u.disabled => return Ok(Standing::Ended("the user is disabled")),
        Some(u) if u.not_before.is_some_and(|nb| claims.iat < nb) => {
            return Ok(Standing::Ended("the user's sessions were revoked"));
        }
        Some(u) => u,
    };
    Ok(Standing::Live(Some(user)))
}
