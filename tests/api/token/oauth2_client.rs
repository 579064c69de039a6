//! A widely used client library, the `oauth2` crate, against a running lineage: authorization
//! code with PKCE (the sign-in form driven over HTTP), refresh rotation and reuse, and
//! RFC 7009 revocation (over https, as the crate requires: through a TLS front), and
//! client_credentials with both client authentication methods.

use oauth2::basic::{BasicClient, BasicErrorResponseType, BasicTokenType};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    RedirectUrl, RequestTokenError, RevocationUrl, Scope, StandardRevocableToken, TokenResponse,
    TokenUrl,
};

use crate::helpers::{
    APP_REDIRECT, Backend, TestApp, app_client, create_user, library_http, spawn_app, tls_front,
    verify_jwt,
};

both_backends!(
    the_oauth2_crate_signs_in_refreshes_and_revokes,
    the_oauth2_crate_gets_client_credentials_tokens,
);

fn url<T>(app: &TestApp, path: &str, make: impl FnOnce(String) -> Result<T, url::ParseError>) -> T {
    make(app.url(path)).expect("endpoint URL")
}

async fn the_oauth2_crate_signs_in_refreshes_and_revokes(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let registered = app_client(&app, "notes:read notes:write").await;
    create_user(&app, "alice").await;
    let http = library_http();
    let client = BasicClient::new(ClientId::new(registered.id.clone()))
        .set_auth_uri(url(&app, "/authorize", AuthUrl::new))
        .set_token_uri(url(&app, "/token", TokenUrl::new))
        .set_revocation_url(url(&app, "/revoke", RevocationUrl::new))
        .set_redirect_uri(RedirectUrl::new(APP_REDIRECT.into()).expect("redirect URL"));

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize_url, csrf) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("notes:read".into()))
        .set_pkce_challenge(challenge)
        .url();
    let path = authorize_url
        .as_str()
        .strip_prefix(app.address.as_str())
        .expect("the authorization URL is lineage's");
    let back = app
        .browser()
        .authorize(path, "alice", Some("oauth2-rs"))
        .await;
    assert_eq!(back.get("state"), Some(csrf.secret().as_str()));
    assert_eq!(back.get("iss"), Some(app.issuer.as_str()), "RFC 9207");
    let code = back.get("code").expect("a code").to_string();

    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("the code exchange succeeds");
    assert_eq!(tokens.token_type(), &BasicTokenType::Bearer);
    assert_eq!(
        tokens
            .scopes()
            .map(|s| s.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
        Some(vec!["notes:read".to_string()])
    );
    let jwks = app.jwks().await;
    verify_jwt(tokens.access_token().secret(), &jwks).expect("the access token verifies");
    let first = tokens.refresh_token().expect("a refresh token").clone();

    let rotated = client
        .exchange_refresh_token(&first)
        .request_async(&http)
        .await
        .expect("the refresh succeeds");
    let second = rotated
        .refresh_token()
        .expect("a rotated refresh token")
        .clone();
    assert_ne!(
        second.secret(),
        first.secret(),
        "every use rotates the token"
    );

    // After the retry grace, the used token is reuse: the library sees invalid_grant.
    app.clock.advance(app.settings.refresh_grace.get() + 1);
    match client
        .exchange_refresh_token(&first)
        .request_async(&http)
        .await
    {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert_eq!(e.error(), &BasicErrorResponseType::InvalidGrant)
        }
        other => panic!("reuse must be invalid_grant, got {other:?}"),
    }

    // Revocation through the library: a fresh family, revoked, can no longer refresh.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize_url, _) = client
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge)
        .url();
    let path = authorize_url
        .as_str()
        .strip_prefix(app.address.as_str())
        .expect("path");
    let back = app.browser().authorize(path, "alice", Some("tablet")).await;
    let tokens = client
        .exchange_code(AuthorizationCode::new(
            back.get("code").expect("code").into(),
        ))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("second sign-in");
    let refresh = tokens.refresh_token().expect("refresh token").clone();
    // The crate builds RFC 7009 revocations only for https URLs (RFC 7009 §2 requires TLS): over
    // this plain-http test server it says so; through a TLS front it revokes.
    assert!(matches!(
        client.revoke_token(StandardRevocableToken::RefreshToken(refresh.clone())),
        Err(oauth2::ConfigurationError::InsecureUrl("revocation"))
    ));
    let front = tls_front(app.port).await;
    let https = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(front.certificate)
        .build()
        .expect("https client");
    let revocation = RevocationUrl::new(format!("{}/revoke", front.address)).expect("URL");
    client
        .clone()
        .set_revocation_url(revocation)
        .revoke_token(StandardRevocableToken::RefreshToken(refresh.clone()))
        .expect("an https revocation URL")
        .request_async(&https)
        .await
        .expect("the crate revokes the refresh token");
    match client
        .exchange_refresh_token(&refresh)
        .request_async(&http)
        .await
    {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert_eq!(e.error(), &BasicErrorResponseType::InvalidGrant)
        }
        other => panic!("a revoked family must not refresh, got {other:?}"),
    }
}

async fn the_oauth2_crate_gets_client_credentials_tokens(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let service = app.create_client("invoices:read invoices:write").await;
    let http = library_http();
    let jwks = app.jwks().await;
    for auth in [AuthType::BasicAuth, AuthType::RequestBody] {
        let client = BasicClient::new(ClientId::new(service.id.clone()))
            .set_client_secret(ClientSecret::new(service.secret.clone()))
            .set_auth_type(auth.clone())
            .set_token_uri(url(&app, "/token", TokenUrl::new));
        let tokens = client
            .exchange_client_credentials()
            .add_scope(Scope::new("invoices:read".into()))
            .request_async(&http)
            .await
            .unwrap_or_else(|e| panic!("{auth:?}: {e:?}"));
        assert!(tokens.refresh_token().is_none());
        let claims = verify_jwt(tokens.access_token().secret(), &jwks)
            .expect("verifies")
            .claims;
        assert_eq!(claims["sub"], service.id);
        assert_eq!(claims["scope"], "invoices:read");
    }
    // A wrong secret is invalid_client to the library too.
    let wrong = BasicClient::new(ClientId::new(service.id.clone()))
        .set_client_secret(ClientSecret::new("not-the-secret".into()))
        .set_token_uri(url(&app, "/token", TokenUrl::new));
    match wrong
        .exchange_client_credentials()
        .request_async(&http)
        .await
    {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert_eq!(e.error(), &BasicErrorResponseType::InvalidClient)
        }
        other => panic!("a wrong secret must be invalid_client, got {other:?}"),
    }
}
