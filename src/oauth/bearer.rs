//! An access token presented to lineage itself — at `/introspect` by a resource server, at
//! `/userinfo` by an app — checked one way for both: the signature by a published key, `typ`,
//! `iss`, `exp`/`nbf` (`tokens::jwt`), then everything that can end a token early: the
//! access-token denylist, its client deleted (or registered again), its family revoked, its user
//! disabled or signed out everywhere (not-before).

use crate::db::models::users::{self, UserRow};
use crate::db::{DbConnection, StoreError};
use crate::state::AppState;
use crate::tokens::jwt::{self, AccessClaims, VerifyError};

/// Whether the caller needs the user's row of a user's token (`/userinfo` does, introspection
/// does not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WithUser {
    Yes,
    No,
}

/// A token that passed every check, with its user's row when it is a user's token and the caller
/// asked for it (read in the same job, right after the check).
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
    with_user: WithUser,
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
    let user_wanted = with_user == WithUser::Yes && claims.sid.is_some();
    let answer = state
        .db
        .read(move |c| {
            let standing = standing(c, &checked)?;
            // Read in the same job, after the check: `/userinfo` answers from this row.
            let user = match standing {
                Standing::Live if user_wanted => users::find(c, &checked.sub)?,
                _ => None,
            };
            Ok::<_, StoreError>((standing, user))
        })
        .await?;
    Ok(match answer {
        (Standing::Live, user) if user.is_some() || !user_wanted => Ok(LiveToken { claims, user }),
        // The user went between the check and the read.
        (Standing::Live, _) => Err(Rejected {
            claims: Some(claims),
            why: "the access token's user no longer exists",
        }),
        (Standing::Ended(why), _) => Err(Rejected {
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
    Live,
    Ended(&'static str),
}

/// What decides a verified token's standing, read in one statement of scalar subqueries (one
/// round trip on PostgreSQL, where each lookup on its own would be one).
#[derive(Debug, Default)]
struct Facts {
    revoked: bool,
    client_created_at: Option<i64>,
    family_found: bool,
    family_revoked_at: Option<i64>,
    user_found: bool,
    user_disabled: Option<bool>,
    user_not_before: Option<i64>,
}

fn facts(c: &mut DbConnection, claims: &AccessClaims) -> Result<Facts, StoreError> {
    use crate::db::on_backend;
    use crate::db::schema::{
        clients, refresh_families as f, revoked_access_tokens as r, users as u,
    };
    use diesel::dsl::exists;
    use diesel::prelude::*;
    // A client's own token (client_credentials) has no family and the client id as `sub`, never
    // a user id: no family or user to read. A user's token always has a family.
    let sid = claims.sid.as_deref().unwrap_or_default();
    let user = if claims.sid.is_some() {
        claims.sub.as_str()
    } else {
        ""
    };
    let user_row = || u::table.filter(u::id.eq(user));
    let family_row = || f::table.filter(f::id.eq(sid));
    // On the backend's own connection: it runs on every introspection and `/userinfo` call.
    let (revoked, client_created_at, family_found, family_revoked_at, user_found, disabled, nb) =
        on_backend!(c, |c| diesel::select((
            exists(r::table.filter(r::jti.eq(&claims.jti))),
            clients::table
                .filter(clients::client_id.eq(&claims.client_id))
                .select(clients::created_at)
                .single_value(),
            exists(family_row()),
            family_row().select(f::revoked_at).single_value(),
            exists(user_row()),
            user_row().select(u::disabled).single_value(),
            user_row().select(u::not_before).single_value(),
        ))
        .get_result::<(
            bool,
            Option<i64>,
            bool,
            Option<i64>,
            bool,
            Option<bool>,
            Option<i64>,
        )>(c))?;
    Ok(Facts {
        revoked,
        client_created_at,
        family_found,
        family_revoked_at,
        user_found,
        user_disabled: disabled,
        user_not_before: nb,
    })
}

/// Whether a verified token has been ended early.
fn standing(c: &mut DbConnection, claims: &AccessClaims) -> Result<Standing, StoreError> {
    let facts = facts(c, claims)?;
    if facts.revoked {
        return Ok(Standing::Ended("the access token was revoked"));
    }
    // A client deleted and registered again under the same id does not revive its old tokens
    // (the same rule `lineage-resource` applies with the feed's deleted-client entries).
    if facts.client_created_at.is_none_or(|at| at > claims.iat) {
        return Ok(Standing::Ended(
            "the access token's client no longer exists",
        ));
    }
    if claims.sid.is_none() {
        return Ok(Standing::Live);
    }
    if !facts.family_found || facts.family_revoked_at.is_some() {
        return Ok(Standing::Ended("the access token's session was revoked"));
    }
    if !facts.user_found {
        return Ok(Standing::Ended("the access token's user no longer exists"));
    }
    if facts.user_disabled == Some(true) {
        return Ok(Standing::Ended("the user is disabled"));
    }
    if facts.user_not_before.is_some_and(|nb| claims.iat < nb) {
        return Ok(Standing::Ended("the user's sessions were revoked"));
    }
    Ok(Standing::Live)
}
