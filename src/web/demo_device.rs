//! What the demo app keeps for one browser session, and how it asks for tokens with it.
//!
//! The demo app binds its tokens to a key (DPoP, RFC 9449): when a sign-in starts it makes a P-256
//! key, names its thumbprint in the authorization request (`dpop_jkt`, §10), and signs a proof
//! with it for every token request. Each proof is checked by the code that checks a `DPoP` header
//! at `POST /token` (`token::proof_key`), so the demo shows what the endpoint does, not a shortcut.
//!
//! The key sits in the demo's cookie next to the PKCE verifier, state and nonce, and the whole
//! cookie is encrypted (AES-256-GCM under a key derived from the server's key secret), not only
//! signed: a private key must not travel in clear. A sealed cookie keeps the demo as stateless as
//! the rest of the server — any node, any restart, nothing to store or evict — and the key ends
//! with the cookie, as a browser session's key should.

use actix_web::HttpRequest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lineage_jwt::dpop::{DeviceKey, ProofClaims};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use super::PageError;
use crate::clients::Client;
use crate::oauth::error::OAuthError;
use crate::oauth::issue::TokenResponse;
use crate::oauth::token;
use crate::oauth::token_request::TokenRequest;
use crate::state::AppState;
use crate::tokens::keys::derive_key;
use crate::tokens::refresh::Origin;

/// The demo's cookie; its value is also what the demo's CSRF tokens are bound to.
pub const COOKIE: &str = "lineage_demo";

/// Bound into the cookie's encryption, so a value sealed for anything else does not open here.
const AAD: &[u8] = b"lineage demo cookie v1";

/// One sign-in of the demo app, as its cookie carries it. No `Debug`: it holds a private key.
#[derive(Serialize, Deserialize)]
pub struct DemoState {
    pub verifier: String,
    pub state: String,
    /// OIDC Core §3.1.2.1: echoed in the ID token, binding it to this sign-in.
    pub nonce: String,
    /// The app's DPoP key for this browser session: its PKCS#8 document, base64url.
    device_key: String,
}

/// The cookie's AEAD key.
fn cookie_key(state: &AppState) -> Option<LessSafeKey> {
    let key = derive_key(&state.key_secret, b"demo cookie encryption");
    UnboundKey::new(&AES_256_GCM, &key)
        .ok()
        .map(LessSafeKey::new)
}

impl DemoState {
    /// A sign-in with a new device key.
    pub fn new(verifier: String, state: String, nonce: String) -> Result<Self, PageError> {
        let pkcs8 = DeviceKey::generate_pkcs8("ES256").map_err(|_| PageError::internal())?;
        Ok(Self {
            verifier,
            state,
            nonce,
            device_key: URL_SAFE_NO_PAD.encode(pkcs8),
        })
    }

    /// The app's key for this browser session.
    pub fn device_key(&self) -> Option<DeviceKey> {
        let pkcs8 = URL_SAFE_NO_PAD.decode(&self.device_key).ok()?;
        DeviceKey::es256_from_pkcs8(&pkcs8).ok()
    }

    /// The cookie value: `base64url(nonce ‖ ciphertext ‖ tag)`.
    pub fn seal(&self, state: &AppState) -> Result<String, PageError> {
        let key = cookie_key(state).ok_or_else(PageError::internal)?;
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| PageError::internal())?;
        let mut sealed = serde_json::to_vec(self).map_err(|_| PageError::internal())?;
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(AAD),
            &mut sealed,
        )
        .map_err(|_| PageError::internal())?;
        Ok(URL_SAFE_NO_PAD.encode([nonce.as_slice(), &sealed].concat()))
    }

    /// The state a cookie value holds, if this server sealed it.
    pub fn open(state: &AppState, cookie: &str) -> Option<Self> {
        let raw = URL_SAFE_NO_PAD.decode(cookie).ok()?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = sealed.to_vec();
        let plain = cookie_key(state)?
            .open_in_place(nonce, Aad::from(AAD), &mut buf)
            .ok()?;
        serde_json::from_slice(plain).ok()
    }
}

/// The demo's state in this browser, from its cookie.
pub fn saved(state: &AppState, req: &HttpRequest) -> Option<DemoState> {
    req.cookie(COOKIE)
        .and_then(|c| DemoState::open(state, c.value()))
}

/// A proof for a request to this server's token endpoint, signed by `key` (RFC 9449 §4.2), with
/// the server's current nonce when it asks for one (§8).
fn token_proof(state: &AppState, key: &DeviceKey, now: i64) -> Result<String, OAuthError> {
    let htu = token::token_endpoint(state);
    let jti = uuid::Uuid::new_v4().to_string();
    let nonce = state.dpop.current_nonce(now);
    key.proof(&ProofClaims {
        htm: "POST",
        htu: &htu,
        iat: now,
        jti: &jti,
        access_token: None,
        nonce: nonce.as_deref(),
    })
    .map_err(|e| OAuthError::server_error("the demo app could not sign a DPoP proof", &e))
}

/// A token request as the demo app sends it: with a proof signed by `key`, or with none, checked
/// and then run as `POST /token` would.
pub async fn request_tokens(
    state: &AppState,
    client: &Client,
    req: &HttpRequest,
    request: TokenRequest,
    key: Option<&DeviceKey>,
) -> Result<TokenResponse, OAuthError> {
    let now = state.now();
    let proof = key.map(|k| token_proof(state, k, now)).transpose()?;
    let grant = request.grant_type();
    let jkt = token::proof_key(state, client, grant, proof.as_deref(), now)?;
    token::exchange(state, client, request, Origin::of(req), jkt).await
}
