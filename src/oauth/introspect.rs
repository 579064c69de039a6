//! `POST /introspect` (RFC 7662), for confidential clients (resource servers).
//! A refresh token is active while it is its family's current token and the family is live; it is
//! only described to the client it was issued to. An access token is active while its signature,
//! `exp`, `nbf`, its family, its user's not-before and the denylist all say so.
//! Inactive is `{"active":false}` and nothing else.

use actix_web::web::{Data, Payload};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{Value, json};

use super::error::OAuthError;
use super::{bearer, client_auth};
use crate::db::StoreError;
use crate::db::models::users;
use crate::state::AppState;
use crate::tokens::refresh;

pub async fn introspect(
    state: Data<AppState>,
    req: HttpRequest,
    payload: Payload,
) -> Result<HttpResponse, OAuthError> {
    let (client, form) = client_auth::authenticated_form(&state, &req, payload).await?;
    if client.is_public {
        return Err(OAuthError::invalid_client(
            "public clients cannot use introspection",
        ));
    }
    let token = form.require("token")?.to_string();
    let answer = if let Some(presented) = refresh::parse_presented(&token) {
        let (policy, now, issuer, client_id) = (
            state.refresh_policy,
            state.now(),
            state.issuer.clone(),
            client.client_id.clone(),
        );
        state
            .db
            .read(move |c| {
                let Some((family, token)) = refresh::inspect(c, &presented, &policy, now)? else {
                    return Ok(None);
                };
                if family.client_id != client_id {
                    return Ok(None);
                }
                let username = users::find(c, &family.user_id)?.map(|u| u.username);
                let mut answer = json!({
                    "active": true,
                    "token_type": "refresh_token",
                    "scope": family.scope,
                    "client_id": family.client_id,
                    "sub": family.user_id,
                    "username": username,
                    "iat": token.created_at,
                    "exp": family.idle_expires_at.min(family.absolute_expires_at),
                    "iss": issuer,
                    "sid": family.id,
                });
                // RFC 7800 §3.1: `cnf` is an object; an unbound family has none, not `null`.
                if let (Some(jkt), Some(o)) = (family.dpop_jkt, answer.as_object_mut()) {
                    o.insert("cnf".into(), json!({ "jkt": jkt }));
                }
                Ok::<_, StoreError>(Some(answer))
            })
            .await?
    } else {
        inspect_access(&state, &token).await?
    };
    Ok(HttpResponse::Ok().json(answer.unwrap_or_else(|| json!({"active": false}))))
}

async fn inspect_access(state: &AppState, token: &str) -> Result<Option<Value>, OAuthError> {
    let Ok(live) = bearer::check(state, token, bearer::WithUser::No).await? else {
        return Ok(None);
    };
    let claims = live.claims;
    let mut v = serde_json::to_value(&claims).unwrap_or_else(|_| json!({}));
    if let Some(o) = v.as_object_mut() {
        o.insert("active".into(), true.into());
        // RFC 9449 §6.2: a bound token is a DPoP token, and `cnf` (in the claims) says to what.
        let token_type = if claims.cnf.is_some() {
            "DPoP"
        } else {
            "Bearer"
        };
        o.insert("token_type".into(), token_type.into());
        if let Some(name) = claims.extra.get("preferred_username") {
            o.insert("username".into(), name.clone());
        }
    }
    Ok(Some(v))
}
