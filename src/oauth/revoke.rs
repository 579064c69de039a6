//! `POST /revoke` (RFC 7009). A refresh token ends its whole family; an access token goes on a
//! denylist until it expires, and into the revocation feed for resource servers. Unknown tokens,
//! tokens of other clients and repeated revocations all answer 200 and change nothing
//! (RFC 7009 §2.2).

use actix_web::web::{Data, Payload};
use actix_web::{HttpRequest, HttpResponse};
use diesel::Connection;

use super::client_auth;
use super::error::OAuthError;
use super::form::Form;
use crate::db::StoreError;
use crate::db::models::revocation_feed::{self, Revocation};
use crate::db::models::revoked_access_tokens::{self, RevokedAccessTokenRow};
use crate::state::AppState;
use crate::tokens::jwt;
use crate::tokens::refresh::{self, Origin, RevocationReason};

pub async fn revoke(
    state: Data<AppState>,
    req: HttpRequest,
    payload: Payload,
) -> Result<HttpResponse, OAuthError> {
    let form = Form::read(&req, payload).await?;
    super::cors::name_client(&req, &form);
    let client = client_auth::authenticate(&state, &req, &form).await?;
    let token = form.require("token")?.to_string();
    // The hint only decides which kind is tried first (RFC 7009 §2.1); both are always tried.
    let access_first = form.get("token_type_hint") == Some("access_token");
    let origin = Origin::of(&req);
    for kind in if access_first {
        [Kind::Access, Kind::Refresh]
    } else {
        [Kind::Refresh, Kind::Access]
    } {
        let found = match kind {
            Kind::Refresh => revoke_refresh(&state, &client.client_id, &token, &origin).await?,
            Kind::Access => revoke_access(&state, &client.client_id, &token).await?,
        };
        if found {
            break;
        }
    }
    Ok(HttpResponse::Ok().finish())
}

#[derive(Clone, Copy)]
enum Kind {
    Refresh,
    Access,
}

/// Whether the token is a refresh token of ours (revoked or not).
async fn revoke_refresh(
    state: &AppState,
    client_id: &str,
    token: &str,
    origin: &Origin,
) -> Result<bool, OAuthError> {
    let Some(presented) = refresh::parse_presented(token) else {
        return Ok(false);
    };
    let (client_id, origin, now) = (client_id.to_string(), origin.clone(), state.now());
    let found = state
        .db
        .write(move |c| {
            let Some(family) = refresh::family_of(c, &presented)? else {
                return Ok(false);
            };
            if family.client_id == client_id {
                refresh::revoke_family(
                    c,
                    &family.id,
                    RevocationReason::RevokedByClient,
                    &origin,
                    now,
                )?;
            }
            Ok::<_, StoreError>(true)
        })
        .await?;
    Ok(found)
}

/// Whether the token is an access token signed by us.
async fn revoke_access(state: &AppState, client_id: &str, token: &str) -> Result<bool, OAuthError> {
    let now = state.now();
    let keys = state.keys.for_token(&state.db, token, now).await?;
    let claims = match jwt::verify(&keys, token, &state.issuer, now) {
        Ok(c) => c,
        Err(jwt::VerifyError::Expired) => return Ok(true),
        Err(_) => return Ok(false),
    };
    if claims.client_id != client_id {
        return Ok(true);
    }
    let row = RevokedAccessTokenRow {
        jti: claims.jti,
        client_id: claims.client_id,
        revoked_at: now,
        expires_at: claims.exp,
    };
    state
        .db
        .write(move |c| {
            c.transaction(|c| {
                if revoked_access_tokens::insert(c, &row)? {
                    let revoked = Revocation::access_token(&row.jti, now, row.expires_at);
                    revocation_feed::publish(c, &[revoked])?;
                }
                Ok::<_, StoreError>(())
            })
        })
        .await?;
    Ok(true)
}
