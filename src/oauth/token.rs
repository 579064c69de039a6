//! `POST /token` (RFC 6749 §3.2): read the form, authenticate the client, parse the grant's
//! parameters into a `TokenRequest`, and hand it to its grant.

use actix_web::web::{Data, Payload};
use actix_web::{HttpRequest, HttpResponse};

use super::client_auth;
use super::dpop::{self, Target};
use super::error::OAuthError;
use super::form::Form;
use super::grants;
use super::issue::TokenResponse;
use super::token_request::{self, TokenRequest};
use crate::clients::Client;
use crate::domain::GrantType;
use crate::state::AppState;
use crate::tokens::refresh::{self, Origin};

pub async fn token(
    state: Data<AppState>,
    req: HttpRequest,
    payload: Payload,
) -> Result<HttpResponse, OAuthError> {
    let form = Form::read(&req, payload).await?;
    super::cors::name_client(&req, &form);
    let result = async {
        let grant = token_request::grant_type(&form)?;
        let client = client_auth::authenticate(&state, &req, &form).await?;
        if !client.allows_grant(grant) {
            return Err(OAuthError::unauthorized_client(format!(
                "this client is not allowed to use the {grant} grant"
            )));
        }
        let request = TokenRequest::parse(grant, &form)?;
        let jkt = proof_key(
            &state,
            &client,
            grant,
            dpop::proof_header(&req)?,
            state.now(),
        )?;
        exchange(&state, &client, request, Origin::of(&req), jkt).await
    }
    .await;
    let grant_label = form
        .get("grant_type")
        .filter(|g| GrantType::parse(g).is_some())
        .unwrap_or("other");
    match result {
        Ok(response) => {
            state.metrics.issued(grant_label);
            let mut ok = HttpResponse::Ok();
            // RFC 9449 §8.2: the nonce for the next proof may come with any response.
            if let Some(nonce) = state.dpop.current_nonce(state.now()) {
                ok.insert_header((super::dpop::NONCE_HEADER, nonce));
            }
            Ok(ok.json(response))
        }
        Err(e) => {
            state.metrics.error(grant_label, e.code.as_str());
            Err(e)
        }
    }
}

/// The DPoP part of a token request (RFC 9449 §5): `proof`, the `DPoP` header's value, checked
/// against `POST {issuer}/token`, and required when the client must bind its tokens. The
/// thumbprint of the key the tokens are to be bound to, if any. The demo app's requests go
/// through here too, with the proofs it signs.
///
/// A refresh without a proof goes on to the rotation even when the client requires DPoP: it
/// refuses it without spending the token and, for a family bound to a key, records the attempt
/// for the user to see.
pub fn proof_key(
    state: &AppState,
    client: &Client,
    grant: GrantType,
    proof: Option<&str>,
    now: i64,
) -> Result<Option<String>, OAuthError> {
    let proof = proof
        .map(|p| {
            let htu = token_endpoint(state);
            let target = Target {
                htm: "POST",
                htu: &htu,
            };
            state.dpop.check(p, target, None, now)
        })
        .transpose()?;
    if client.require_dpop && proof.is_none() && grant != GrantType::RefreshToken {
        return Err(OAuthError::invalid_dpop_proof(refresh::PROOF_REQUIRED)
            .with_dpop_nonce(state.dpop.current_nonce(now)));
    }
    Ok(proof.map(|p| p.jkt))
}

/// This server's token endpoint: the `htu` of every proof sent to it.
pub fn token_endpoint(state: &AppState) -> String {
    format!("{}/token", state.issuer)
}

/// Run a token request for a client already authenticated and allowed its grant: what
/// `POST /token` does once the form is read, and what the built-in demo app calls directly.
pub async fn exchange(
    state: &AppState,
    client: &Client,
    request: TokenRequest,
    origin: Origin,
    dpop_jkt: Option<String>,
) -> Result<TokenResponse, OAuthError> {
    match request {
        TokenRequest::AuthorizationCode {
            code,
            redirect_uri,
            code_verifier,
        } => {
            let redemption = grants::authorization_code::Redemption {
                code,
                redirect_uri,
                code_verifier,
                dpop_jkt,
            };
            grants::authorization_code::grant(state, client, redemption, origin).await
        }
        TokenRequest::RefreshToken {
            refresh_token,
            scope,
        } => {
            grants::refresh_token::grant(state, client, refresh_token, scope, origin, dpop_jkt)
                .await
        }
        TokenRequest::ClientCredentials { scope } => {
            grants::client_credentials::grant(state, client, scope.as_ref(), dpop_jkt).await
        }
    }
}

impl Origin {
    /// The client's address (the peer, or what a trusted proxy forwarded: `limits::client_ip`)
    /// and the user agent, trimmed.
    pub fn of(req: &HttpRequest) -> Origin {
        let ip = crate::limits::client_ip::of(req).map(|a| a.to_string());
        let user_agent = req
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect());
        Origin { ip, user_agent }
    }
}
