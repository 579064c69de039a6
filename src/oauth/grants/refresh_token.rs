//! `grant_type=refresh_token` (RFC 6749 §6): rotate the token, mint an access token with the
//! user's current claims. The rules live in `tokens::refresh`.

use super::super::error::OAuthError;
use super::super::issue::{self, AccessGrant, SignIn, TokenResponse};
use crate::clients::Client;
use crate::domain::Scope;
use crate::state::AppState;
use crate::tokens::refresh::{self, Origin, Refusal, RotateRequest, Rotation};
use crate::tokens::secret::PlainToken;

pub async fn grant(
    state: &AppState,
    client: &Client,
    refresh_token: PlainToken,
    scope: Option<Scope>,
    origin: Origin,
    dpop_jkt: Option<String>,
) -> Result<TokenResponse, OAuthError> {
    let presented = refresh::Presentation::new(&state.successor_key, &refresh_token);
    let (policy, now) = (state.refresh_policy, state.now());
    let request = RotateRequest {
        client_id: client.client_id.clone(),
        scope,
        origin,
        dpop_jkt: dpop_jkt.clone(),
        proof_required: client.require_dpop,
        bind_on_proof: client.is_public,
    };
    let rotation = state
        .db
        .write(move |c| refresh::rotate(c, &presented, &request, &policy, now))
        .await?;
    let rotated = match rotation {
        Rotation::Issued(rotated) => rotated,
        Rotation::Refused(refusal) => return Err(wire_error(state, refusal)),
    };
    if rotated.retried {
        state.metrics.grace_retry(rotated.retried_elsewhere);
    } else {
        state.metrics.refresh_rotations.inc();
    }
    let family = &rotated.family;
    let access = AccessGrant {
        client,
        user: Some(&rotated.user),
        scope: rotated.scope.clone(),
        sid: Some(family.id.clone()),
        // A bound family's proof is by its key; an unbound family refreshed with a proof gets an
        // access token bound to that proof's key (and, a public client's, is bound from now on).
        jkt: dpop_jkt,
        // Never beyond the family's end: its idle expiry (which is never past the absolute one).
        expires_no_later: Some(family.idle_expires_at.min(family.absolute_expires_at)),
        // OIDC Core §12.2: the family's sign-in time, and no nonce.
        sign_in: Some(SignIn {
            auth_time: family.auth_time,
            nonce: None,
        }),
    };
    issue::respond(state, access, rotated.refresh_token.as_ref()).await
}

fn wire_error(state: &AppState, refusal: Refusal) -> OAuthError {
    match refusal {
        Refusal::InvalidGrant(d) => OAuthError::invalid_grant(d),
        Refusal::ReuseDetected => {
            state.metrics.refresh_reuse_detected.inc();
            OAuthError::invalid_grant(Refusal::ReuseDetected.to_string())
        }
        Refusal::InvalidScope(d) => OAuthError::invalid_scope(d),
        Refusal::ProofRequired => OAuthError::invalid_dpop_proof(refresh::PROOF_REQUIRED),
        Refusal::WrongDpopKey { proof_given } => {
            state.metrics.refresh_wrong_dpop_key.inc();
            let why = Refusal::WrongDpopKey { proof_given }.to_string();
            if proof_given {
                OAuthError::invalid_grant(why)
            } else {
                OAuthError::invalid_dpop_proof(why)
            }
        }
    }
}
