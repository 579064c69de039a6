//! `GET /revocations?since=T`: revoked families (`sid`) and per-user not-before times, so resource
//! servers can drop revoked JWTs within seconds without calling us per request. Entries are kept
//! as long as an access token issued before them can live. ETag / If-None-Match make a poll that
//! finds nothing new a bodiless 304.

use actix_web::http::header;
use actix_web::web::{Data, Query};
use actix_web::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::error::OAuthError;
use crate::db::models::{refresh_families, users};
use crate::state::AppState;
use crate::tokens::keys::RETIRED_KEY_SKEW;

#[derive(Debug, Deserialize)]
pub struct FeedQuery {
    since: Option<String>,
}

#[derive(Serialize)]
struct Family {
    sid: String,
    revoked_at: i64,
}

#[derive(Serialize)]
struct User {
    sub: String,
    not_before: i64,
}

#[derive(Serialize)]
struct Entries {
    families: Vec<Family>,
    users: Vec<User>,
}

/// How long a revocation stays in the feed: the longest an access token can outlive it.
pub fn retention(state: &AppState) -> i64 {
    state.settings.access_token_ttl + RETIRED_KEY_SKEW
}

pub async fn feed(
    state: Data<AppState>,
    req: HttpRequest,
    query: Query<FeedQuery>,
) -> Result<HttpResponse, OAuthError> {
    let now = state.now();
    let kept_from = now - retention(&state);
    let since = match query.since.as_deref().filter(|s| !s.is_empty()) {
        None => kept_from,
        Some(raw) => raw
            .parse::<i64>()
            .map_err(|_| OAuthError::invalid_request("`since` must be unix seconds"))?
            .max(kept_from),
    };
    let (families, users) = state
        .db
        .run(move |c| {
            Ok((
                refresh_families::revoked_since(c, since)?,
                users::not_before_since(c, since)?,
            ))
        })
        .await?;
    let entries = Entries {
        families: families
            .into_iter()
            .map(|(sid, revoked_at)| Family { sid, revoked_at })
            .collect(),
        users: users
            .into_iter()
            .map(|(sub, not_before)| User { sub, not_before })
            .collect(),
    };
    let listed = serde_json::to_vec(&entries).unwrap_or_default();
    let etag = super::etag_of(&listed);
    let not_modified = super::not_modified(&req, &etag);
    if not_modified {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .finish());
    }
    let body =
        serde_json::json!({"families": entries.families, "users": entries.users, "now": now});
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .json(body))
}
