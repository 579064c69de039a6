//! An unmodified OpenID Connect library, the `openidconnect` crate, against a running lineage,
//! as the issue's "done when" reads: discovery (`/.well-known/openid-configuration`, then the
//! JWKS it names), code + PKCE + nonce, the ID token verified by the library (signature with the
//! discovered JWKS, issuer, audience, expiry, nonce, `at_hash`), with RS256 (the default) and with
//! an EdDSA client, userinfo through the library, a refresh whose new ID token names the same
//! user, carries no nonce and keeps `auth_time`, and finally a back-channel logout: the user
//! revokes the device on /account and the app's logout endpoint receives a logout token that the
//! library verifies with the key set it discovered.
//!
//! The library accepts an http issuer (it checks only that the discovered `issuer` equals the one
//! asked for), so no TLS front is needed here, unlike the `oauth2` crate's RFC 7009 revocation.

use lineage::tokens::keys::KeyAlgorithm;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AccessTokenHash, AdditionalClaims, AuthorizationCode, ClientId, CsrfToken, IdToken, IssuerUrl,
    JsonWebKey, JsonWebTokenType, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl,
    Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::backchannel::{Answer, EVENT, Receiver, quick, set_logout_uri};
use super::{oidc_client, verify_id_token};
use crate::helpers::{
    APP_REDIRECT, Backend, create_user, jwt_claims, library_http, spawn_app_with,
};

both_backends!(
    openidconnect_signs_in_with_rs256_and_refreshes,
    openidconnect_verifies_an_eddsa_client,
);

/// What a logout token carries beside the claims an ID token shares with it (Back-Channel
/// Logout 1.0 §2.4), so the library's JWT verifier can read it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LogoutClaims {
    sid: String,
    events: Value,
}

impl AdditionalClaims for LogoutClaims {}

type LogoutToken = IdToken<
    LogoutClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// Discover, sign in through the library's authorization URL, exchange, verify, read userinfo;
/// refresh and verify again; revoke the device and verify the logout token. `alg` is the
/// algorithm the client registered for its ID tokens (and so its logout tokens).
async fn sign_in_and_refresh(backend: Backend, alg: KeyAlgorithm) {
    // The outbox is also read every second, as in the back-channel tests.
    let Some(app) = spawn_app_with(backend, quick).await else {
        return;
    };
    let registered = oidc_client(&app, alg).await;
    let receiver = Receiver::start(&[], Answer::Status(200)).await;
    set_logout_uri(&app, &registered.id, &receiver.url).await;
    let alice = create_user(&app, "alice").await;
    let http = library_http();
    // OIDC Discovery §4: the metadata from the issuer's well-known URL, then its JWKS.
    let issuer = IssuerUrl::new(app.issuer.clone()).expect("issuer URL");
    let provider = CoreProviderMetadata::discover_async(issuer, &http)
        .await
        .expect("the library reads lineage's discovery document and JWKS");
    let signing_algs = provider
        .id_token_signing_alg_values_supported()
        .iter()
        .map(|a| serde_json::to_value(a).expect("alg"))
        .collect::<Vec<_>>();
    assert!(signing_algs.contains(&json!("RS256")), "{signing_algs:?}");
    assert!(provider.userinfo_endpoint().is_some());
    let jwks = provider.jwks().clone();
    let client =
        CoreClient::from_provider_metadata(provider, ClientId::new(registered.id.clone()), None)
            .set_redirect_uri(RedirectUrl::new(APP_REDIRECT.into()).expect("redirect URL"));

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize_url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("notes:read".into()))
        .set_pkce_challenge(challenge)
        .url();
    let path = authorize_url
        .as_str()
        .strip_prefix(app.address.as_str())
        .expect("the authorization URL is lineage's");
    let browser = app.browser();
    let back = browser
        .authorize(path, "alice", Some("openidconnect-rs"))
        .await;
    assert_eq!(back.get("state"), Some(csrf.secret().as_str()));
    let code = back.get("code").expect("a code").to_string();

    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .expect("a token endpoint")
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("the code exchange succeeds");
    let id_token = tokens.id_token().expect("an ID token with openid granted");
    let id_verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&id_verifier, &nonce)
        .expect("the library accepts the ID token");
    assert_eq!(claims.subject().as_str(), alice.id);
    assert_eq!(
        claims.preferred_username().map(|u| u.as_str()),
        Some("alice")
    );
    let auth_time = claims.auth_time().expect("auth_time");
    // at_hash (OIDC Core §3.1.3.6), checked the way the library documents.
    let signing_alg = id_token.signing_alg().expect("signing alg");
    let expected_alg = match alg {
        KeyAlgorithm::RS256 => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        KeyAlgorithm::EdDSA => CoreJwsSigningAlgorithm::EdDsa,
    };
    assert_eq!(signing_alg, &expected_alg);
    let actual_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        signing_alg,
        id_token.signing_key(&id_verifier).expect("signing key"),
    )
    .expect("hash the access token");
    assert_eq!(claims.access_token_hash(), Some(&actual_hash));
    // Checked by this file's own code too.
    let raw = id_token.to_string();
    let (header, _) = verify_id_token(&raw, &app.jwks().await).expect("verifies with the JWKS");
    assert_eq!(header["alg"], alg.as_str());

    // Userinfo through the library (OIDC Core §5.3), the subject checked against the ID token's.
    let userinfo: openidconnect::core::CoreUserInfoClaims = client
        .user_info(
            tokens.access_token().clone(),
            Some(claims.subject().clone()),
        )
        .expect("a userinfo endpoint from discovery")
        .request_async(&http)
        .await
        .expect("the library reads userinfo");
    assert_eq!(userinfo.subject().as_str(), alice.id);
    assert_eq!(
        userinfo.preferred_username().map(|u| u.as_str()),
        Some("alice")
    );

    // A refresh (OIDC Core §12.2): a new ID token, same user, no nonce, the same auth_time.
    app.clock.advance(30);
    let refresh_token = tokens.refresh_token().expect("a refresh token");
    let refreshed = client
        .exchange_refresh_token(refresh_token)
        .expect("a token endpoint")
        .request_async(&http)
        .await
        .expect("the refresh succeeds");
    let new_id_token = refreshed.id_token().expect("an ID token from the refresh");
    assert_ne!(new_id_token.to_string(), raw);
    let new_claims = new_id_token
        .claims(&id_verifier, |n: Option<&Nonce>| match n {
            None => Ok(()),
            Some(_) => Err("a refreshed ID token carries no nonce".to_string()),
        })
        .expect("the library accepts the refreshed ID token");
    assert_eq!(new_claims.subject(), claims.subject());
    assert_eq!(new_claims.auth_time(), Some(auth_time));
    assert!(new_claims.issue_time() > claims.issue_time());
    let sid = jwt_claims(&new_id_token.to_string())["sid"].clone();
    assert_eq!(sid, jwt_claims(refreshed.access_token().secret())["sid"]);
    assert_eq!(sid, jwt_claims(&raw)["sid"], "a refresh keeps the session");
    let sid = sid.as_str().expect("sid").to_string();

    // Back-Channel Logout 1.0: the user revokes this device on /account; the app is told.
    browser.revoke_device(&sid).await;
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].content_type, "application/x-www-form-urlencoded");
    // The library verifies it with the key set it discovered: signature, issuer, audience,
    // expiry, and `typ` logout+jwt (§2.4 recommends explicit typing) instead of an ID token's.
    let logout_token: LogoutToken = got[0].logout_token().parse().expect("a JWT");
    let logout_verifier =
        client
            .id_token_verifier()
            .set_allowed_jose_types([JsonWebTokenType::new("logout+jwt".into())
                .normalize()
                .expect("a JOSE type")]);
    let logout = logout_token
        .claims(&logout_verifier, |n: Option<&Nonce>| match n {
            None => Ok(()),
            Some(_) => Err("a logout token carries no nonce".to_string()),
        })
        .expect("the library accepts the logout token");
    assert_eq!(logout.subject(), claims.subject());
    assert_eq!(logout.additional_claims().sid, sid);
    assert_eq!(logout.additional_claims().events, json!({ EVENT: {} }));
    assert!(logout.nonce().is_none());
    assert_eq!(logout_token.signing_alg().expect("alg"), &expected_alg);
    // The key that signed it is one the library discovered.
    let kid = jwt_header_kid(&got[0].logout_token());
    assert!(
        jwks.keys()
            .iter()
            .any(|k| k.key_id().map(|id| id.as_str()) == Some(kid.as_str())),
        "kid {kid} is in the discovered JWKS"
    );
}

/// The `kid` of a JWS's header.
fn jwt_header_kid(token: &str) -> String {
    let header = crate::helpers::decode_segment(token.split('.').next().unwrap_or_default());
    header["kid"].as_str().unwrap_or_default().to_string()
}

async fn openidconnect_signs_in_with_rs256_and_refreshes(backend: Backend) {
    sign_in_and_refresh(backend, KeyAlgorithm::RS256).await;
}

async fn openidconnect_verifies_an_eddsa_client(backend: Backend) {
    sign_in_and_refresh(backend, KeyAlgorithm::EdDSA).await;
}
