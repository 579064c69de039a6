//! `grant_type=authorization_code` (RFC 6749 §4.1.3): redeem a code once, check the redirect URI
//! and the PKCE verifier, start a refresh family. A code presented again revokes the family it
//! started (§4.1.2).

use diesel::Connection;

use super::super::error::OAuthError;
use super::super::issue::{self, AccessGrant, SignIn, TokenResponse};
use super::super::pkce;
use crate::clients::Client;
use crate::db::models::audit_events::{self, AuditEventRow};
use crate::db::models::{auth_codes, browser_sessions, users};
use crate::db::{DbConnection, StoreError};
use crate::domain::{GrantType, Scope};
use crate::state::AppState;
use crate::tokens::refresh::{self, NewFamily, Origin, RefreshPolicy, RevocationReason};
use crate::tokens::secret::PlainToken;

/// What the client presents to redeem a code.
#[derive(Debug)]
pub struct Redemption {
    pub code: PlainToken,
    /// Required when the authorization request named one (checked against the code).
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    /// The thumbprint of the DPoP key that signed the request's proof, if it carried one: the
    /// family is bound to it.
    pub dpop_jkt: Option<String>,
}

/// The outcome of the exchange's transaction, which commits in every case: a failed attempt by
/// the client the code was issued to still spends the code.
enum Exchange {
    Started {
        family: Box<crate::db::models::refresh_families::FamilyRow>,
        token: PlainToken,
        user: Box<users::UserRow>,
        scope: Scope,
        /// The authorization request's `nonce`, for the ID token.
        nonce: Option<String>,
    },
    Rejected(String),
    /// A malformed request: refused before the code is spent.
    Invalid(String),
}

pub async fn grant(
    state: &AppState,
    client: &Client,
    redemption: Redemption,
    origin: Origin,
) -> Result<TokenResponse, OAuthError> {
    let (client_id, mut policy, now) =
        (client.client_id.clone(), state.refresh_policy, state.now());
    // A client not allowed the refresh_token grant gets no refresh token. Its sign-in is still a
    // family (the device list, revocation and code-replay detection work on it), one that ends
    // when its access token does.
    let issue_refresh = client.allows_grant(GrantType::RefreshToken);
    if !issue_refresh {
        policy.idle_ttl = policy.idle_ttl.min(state.settings.access_token_ttl);
    }
    let outcome = state
        .db
        .write(move |c| exchange(c, &redemption, &client_id, origin, &policy, now))
        .await?;
    let (family, token, user, scope, nonce) = match outcome {
        Exchange::Started {
            family,
            token,
            user,
            scope,
            nonce,
        } => (family, token, user, scope, nonce),
        Exchange::Rejected(why) => return Err(OAuthError::invalid_grant(why)),
        Exchange::Invalid(why) => return Err(OAuthError::invalid_request(why)),
    };
    let access = AccessGrant {
        client,
        user: Some(&user),
        scope,
        sid: Some(family.id.clone()),
        jkt: family.dpop_jkt.clone(),
        expires_no_later: Some(family.absolute_expires_at),
        sign_in: Some(SignIn {
            auth_time: family.auth_time,
            nonce,
        }),
    };
    issue::respond(state, access, issue_refresh.then_some(&token)).await
}

fn exchange(
    c: &mut DbConnection,
    redemption: &Redemption,
    client_id: &str,
    origin: Origin,
    policy: &RefreshPolicy,
    now: i64,
) -> Result<Exchange, StoreError> {
    let hash = redemption.code.hash();
    // Every outcome commits: a failed attempt by the client the code was issued to still spends
    // the code, so it cannot be retried with other verifiers.
    c.transaction(|c| {
        let Some(row) = auth_codes::find(c, hash.as_str())? else {
            return Ok(Exchange::Rejected(
                "the authorization code is invalid".into(),
            ));
        };
        // Before anything is spent: a leaked code presented by another client must neither burn
        // the code nor revoke the session it started.
        if row.client_id != client_id {
            return Ok(Exchange::Rejected(
                "the authorization code was issued to another client".into(),
            ));
        }
        // RFC 6749 §4.1.3: required if the authorization request named it.
        if redemption.redirect_uri.is_none() && row.redirect_uri_given {
            return Ok(Exchange::Invalid(
                "missing parameter `redirect_uri` (the authorization request named one)".into(),
            ));
        }
        // The user's row lock orders this exchange with sign-outs, password changes and consent
        // withdrawals: each either sees the family started here, or is seen by the checks below.
        users::lock(c, &row.user_id)?;
        if !auth_codes::mark_used(c, hash.as_str(), now)? {
            return replayed(c, hash.as_str(), &row, &origin, now);
        }
        // Read again under the lock: a withdrawal of consent may have just expired the code.
        let Some(row) = auth_codes::find(c, hash.as_str())? else {
            return Ok(Exchange::Rejected(
                "the authorization code is invalid".into(),
            ));
        };
        let user = match redeemable(c, &row, redemption, now)? {
            Verdict::Redeem(user) => user,
            Verdict::Reject(why) => return Ok(Exchange::Rejected(why)),
        };
        let scope = Scope::parse(&row.scope).unwrap_or_default();
        let spec = NewFamily {
            user_id: user.id.clone(),
            client_id: client_id.to_string(),
            scope: scope.clone(),
            device_name: row.device_name.clone(),
            origin,
            dpop_jkt: redemption.dpop_jkt.clone(),
        };
        let (family, token) =
            refresh::start_family_signed_in_at(c, spec, row.auth_time, policy, now)?;
        auth_codes::set_family(c, hash.as_str(), &family.id)?;
        Ok(Exchange::Started {
            family: Box::new(family),
            token,
            user,
            scope,
            nonce: row.nonce,
        })
    })
}

/// A code presented again (RFC 6749 §4.1.2): the family it started is revoked.
fn replayed(
    c: &mut DbConnection,
    hash: &str,
    row: &auth_codes::AuthCodeRow,
    origin: &Origin,
    now: i64,
) -> Result<Exchange, StoreError> {
    // Read again: a concurrent exchange that won may have just recorded its family.
    let family_id = auth_codes::find(c, hash)?.and_then(|r| r.family_id);
    if let Some(family) = &family_id
        && refresh::revoke_family(c, family, RevocationReason::CodeReplayed, origin, now)?
    {
        let event = AuditEventRow::new(
            now,
            "code_replayed",
            "an authorization code was used twice; the session it started was revoked",
        )
        .for_user(&row.user_id)
        .for_client(&row.client_id)
        .for_family_id(family)
        .from_origin(origin);
        audit_events::insert(c, &event)?;
    }
    Ok(Exchange::Rejected(
        "the authorization code was already used".into(),
    ))
}

/// Whether a code this request has just spent gives tokens.
enum Verdict {
    Redeem(Box<users::UserRow>),
    /// The reason, for `invalid_grant`.
    Reject(String),
}

/// The checks of a code this request has just spent: still within its lifetime, the same
/// redirect URI, the PKCE verifier, an active user, and the browser sign-in that approved it.
fn redeemable(
    c: &mut DbConnection,
    row: &auth_codes::AuthCodeRow,
    redemption: &Redemption,
    now: i64,
) -> Result<Verdict, StoreError> {
    if now >= row.expires_at {
        return Ok(Verdict::Reject("the authorization code has expired".into()));
    }
    // If given it must be the one of the authorization request (as must a redirect_uri the
    // request did not name: the client's only registered one).
    if redemption
        .redirect_uri
        .as_deref()
        .is_some_and(|given| given != row.redirect_uri)
    {
        return Ok(Verdict::Reject(
            "redirect_uri does not match the authorization request".into(),
        ));
    }
    let verifier = redemption.code_verifier.as_deref();
    if let Err(why) = pkce::verify(row.pkce_challenge.as_deref(), verifier) {
        return Ok(Verdict::Reject(why));
    }
    // RFC 9449 §10: a code whose authorization request named `dpop_jkt` is redeemed only with a
    // proof by that key.
    if let Some(bound) = &row.dpop_jkt
        && redemption.dpop_jkt.as_ref() != Some(bound)
    {
        return Ok(Verdict::Reject(
            "the authorization request bound this code to another DPoP key (dpop_jkt)".into(),
        ));
    }
    let user = match users::find(c, &row.user_id)? {
        Some(u) if !u.disabled => u,
        _ => return Ok(Verdict::Reject("the user is no longer active".into())),
    };
    // The browser session that approved the code must still exist: signing out (everywhere,
    // or by a password change) also ends codes it approved that were not yet redeemed.
    if let Some(session) = &row.session_hash
        && browser_sessions::find(c, session)?.is_none()
    {
        return Ok(Verdict::Reject(
            "the sign-in that approved this code has ended".into(),
        ));
    }
    Ok(Verdict::Redeem(Box::new(user)))
}
