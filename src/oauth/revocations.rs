//! `GET /revocations` (or `POST` with a form body): the revocation feed. Resource servers page
//! through it with an opaque cursor and drop revoked JWTs within seconds, without calling us per
//! request: revoked families (`sid`), users' not-before times, access tokens revoked one by one
//! (`jti`) and deleted clients.
//!
//! The cursor is an entry's number, and numbers follow commit order (see
//! `db::models::revocation_feed`): a revocation that commits late still comes after every cursor
//! handed out before it, so a poller never skips it, however long its transaction took.
//! Entries are kept as long as an access token issued before them can live.

use actix_web::http::{Method, StatusCode, header};
use actix_web::web::{Data, Payload};
use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;

use super::client_auth;
use super::error::{ErrorCode, OAuthError};
use super::form::Form;
use crate::db::StoreError;
use crate::db::models::revocation_feed::{self, FeedRow, Kind};
use crate::domain::{Permission, Seconds};
use crate::state::AppState;
use crate::tokens::keys::RETIRED_KEY_SKEW;

/// Entries per page unless the request asks for fewer; larger requests get this many.
pub const MAX_PAGE: i64 = 1000;

/// How long a revocation stays in the feed: the longest an access token issued before it can live.
pub fn retention(state: &AppState) -> Seconds {
    state.settings.access_token_ttl + RETIRED_KEY_SKEW
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
struct AccessToken {
    jti: String,
    revoked_at: i64,
    expires_at: i64,
}

#[derive(Serialize)]
struct Client {
    client_id: String,
    deleted_at: i64,
}

#[derive(Serialize, Default)]
struct Page {
    families: Vec<Family>,
    users: Vec<User>,
    access_tokens: Vec<AccessToken>,
    clients: Vec<Client>,
    /// Pass back as `after` for the next page (or the next poll).
    cursor: String,
    has_more: bool,
    /// How long each entry is kept after it happened (a number of seconds).
    retention: Seconds,
}

/// The request, from the query string (GET) or the form body (POST).
struct PageRequest {
    /// `(epoch, seq)` of the cursor passed back, if any.
    after: Option<(String, i64)>,
    limit: i64,
}

impl PageRequest {
    fn parse(params: &Form) -> Result<Self, OAuthError> {
        if params.get("since").is_some() {
            return Err(OAuthError::invalid_request(
                "`since` is no longer supported: \
                 page with `after`, the `cursor` of the previous response",
            ));
        }
        let after = match params.get("after") {
            None => None,
            Some(raw) => Some(
                raw.split_once('.')
                    .and_then(|(epoch, seq)| {
                        let seq = seq.parse::<i64>().ok().filter(|n| *n >= 0)?;
                        Some((epoch.to_string(), seq))
                    })
                    .ok_or_else(|| {
                        OAuthError::invalid_request("`after` must be a cursor this feed returned")
                    })?,
            ),
        };
        let limit = match params.get("limit") {
            None => MAX_PAGE,
            Some(raw) => raw
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    OAuthError::invalid_request("`limit` must be a whole number of at least 1")
                })?
                .min(MAX_PAGE),
        };
        Ok(Self { after, limit })
    }
}

pub async fn feed(
    state: Data<AppState>,
    req: HttpRequest,
    payload: Payload,
) -> Result<HttpResponse, OAuthError> {
    // GET carries the parameters in the query and authenticates with HTTP Basic only; POST
    // carries them in a form body, which also allows client_secret_post (no secret in a URL).
    let form;
    let no_credentials = Form::default();
    let (params, credentials) = if req.method() == Method::POST {
        form = Form::read(&req, payload).await?;
        (&form, &form)
    } else {
        form = Form::parse(req.query_string().as_bytes())?;
        (&form, &no_credentials)
    };
    if !state.settings.revocations_public {
        authorize_reader(&state, &req, credentials).await?;
    }
    let request = PageRequest::parse(params)?;
    let page = read_page(&state, request).await?;
    let body = serde_json::to_vec(&page)
        .map_err(|e| OAuthError::server_error("cannot encode the revocation feed", &e))?;
    let etag = super::etag_of(&body);
    // A poll that finds nothing new gets the same body, hence the same ETag: a bodiless 304.
    if req.method() == Method::GET && super::not_modified(&req, &etag) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .finish());
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .content_type("application/json")
        .body(body))
}

/// A confidential client holding the `revocations` permission: the feed lists user ids and when
/// they changed their password, which is not for everyone.
async fn authorize_reader(
    state: &AppState,
    req: &HttpRequest,
    credentials: &Form,
) -> Result<(), OAuthError> {
    let client = client_auth::authenticate(state, req, credentials).await?;
    if client.is_public {
        return Err(OAuthError::invalid_client(
            "the revocation feed needs a confidential client's credentials",
        ));
    }
    if !client.has_permission(Permission::Revocations) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client may not read the revocation feed (it lacks the `revocations` permission)",
        )
        .with_status(StatusCode::FORBIDDEN));
    }
    Ok(())
}

async fn read_page(state: &AppState, request: PageRequest) -> Result<Page, OAuthError> {
    let retention = retention(state);
    let kept_from = state.now() - retention;
    let (rows, after, epoch) = state
        .db
        .read(move |c| {
            // A cursor of another epoch (the server restarted, perhaps on a database restored
            // from a backup whose numbers run below it) or beyond the newest entry starts over
            // from the oldest entry kept: duplicates are harmless, a skipped entry is not.
            let (newest, epoch) = revocation_feed::head(c)?;
            let after = match request.after {
                Some((e, seq)) if e == epoch && seq <= newest => seq,
                _ => 0,
            };
            let rows = revocation_feed::page(c, after, kept_from, request.limit + 1)?;
            Ok::<_, StoreError>((rows, after, epoch))
        })
        .await?;
    let mut page = Page {
        retention,
        has_more: rows.len() as i64 > request.limit,
        ..Page::default()
    };
    let mut cursor = after;
    for row in rows.into_iter().take(request.limit as usize) {
        cursor = row.seq;
        add_entry(&mut page, row);
    }
    page.cursor = format!("{epoch}.{cursor}");
    Ok(page)
}

fn add_entry(page: &mut Page, row: FeedRow) {
    let FeedRow {
        kind,
        subject,
        at,
        expires_at,
        ..
    } = row;
    match Kind::parse(&kind) {
        Some(Kind::Family) => page.families.push(Family {
            sid: subject,
            revoked_at: at,
        }),
        Some(Kind::User) => page.users.push(User {
            sub: subject,
            not_before: at,
        }),
        Some(Kind::AccessToken) => page.access_tokens.push(AccessToken {
            jti: subject,
            revoked_at: at,
            expires_at: expires_at.unwrap_or(at),
        }),
        Some(Kind::Client) => page.clients.push(Client {
            client_id: subject,
            deleted_at: at,
        }),
        // Written by a newer node of a cluster being upgraded: skipped, not an error.
        None => {}
    }
}
