//! An unmodified OpenID Connect library, the `openidconnect` crate, against a running lineage:
//! code + PKCE + nonce, the ID token verified by the library (signature with the JWKS, issuer,
//! audience, expiry, nonce, `at_hash`), with RS256 (the default) and with an EdDSA client, then a
//! refresh whose new ID token names the same user, carries no nonce and keeps `auth_time`.
//!
//! The provider metadata is built here by hand from lineage's endpoints (the library would read
//! the same from `/.well-known/openid-configuration`).

use lineage::tokens::keys::KeyAlgorithm;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJsonWebKeySet, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AccessTokenHash, AuthUrl, AuthorizationCode, ClientId, CsrfToken,
    EmptyAdditionalProviderMetadata, IssuerUrl, JsonWebKeySetUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, RedirectUrl, ResponseTypes, Scope, TokenResponse, TokenUrl,
};

use super::{oidc_client, verify_id_token};
use crate::helpers::{APP_REDIRECT, Backend, TestApp, create_user, jwt_claims, spawn_app};

both_backends!(
    openidconnect_signs_in_with_rs256_and_refreshes,
    openidconnect_verifies_an_eddsa_client,
);

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

/// lineage's provider metadata, with its JWKS fetched as the library does.
async fn provider(app: &TestApp, http: &reqwest::Client) -> CoreProviderMetadata {
    let jwks_url = JsonWebKeySetUrl::new(app.url("/jwks.json")).expect("JWKS URL");
    let jwks = CoreJsonWebKeySet::fetch_async(&jwks_url, http)
        .await
        .expect("the library reads lineage's JWKS");
    CoreProviderMetadata::new(
        IssuerUrl::new(app.issuer.clone()).expect("issuer URL"),
        AuthUrl::new(app.url("/authorize")).expect("authorization URL"),
        jwks_url,
        vec![ResponseTypes::new(vec![CoreResponseType::Code])],
        vec![CoreSubjectIdentifierType::Public],
        vec![
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            CoreJwsSigningAlgorithm::EdDsa,
        ],
        EmptyAdditionalProviderMetadata {},
    )
    .set_token_endpoint(Some(TokenUrl::new(app.url("/token")).expect("token URL")))
    .set_jwks(jwks)
}

/// Sign in through the library's authorization URL, exchange, verify; then refresh and verify
/// again. `alg` is the algorithm the client registered for its ID tokens.
async fn sign_in_and_refresh(backend: Backend, alg: KeyAlgorithm) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let registered = oidc_client(&app, alg).await;
    let alice = create_user(&app, "alice").await;
    let http = http();
    let client = CoreClient::from_provider_metadata(
        provider(&app, &http).await,
        ClientId::new(registered.id.clone()),
        None,
    )
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
    let back = app
        .browser()
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
}

async fn openidconnect_signs_in_with_rs256_and_refreshes(backend: Backend) {
    sign_in_and_refresh(backend, KeyAlgorithm::RS256).await;
}

async fn openidconnect_verifies_an_eddsa_client(backend: Backend) {
    sign_in_and_refresh(backend, KeyAlgorithm::EdDSA).await;
}
