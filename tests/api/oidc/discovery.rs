//! The OpenID Provider document (OpenID Connect Discovery 1.0 §3): every field OpenID Connect
//! needs, and every endpoint it names answers.

use serde_json::Value;

use super::Oidc;
use crate::helpers::{Backend, spawn_app};

both_backends!(
    the_openid_configuration_is_complete,
    every_endpoint_it_names_answers,
    the_oauth_document_stays_oauth
);

fn strings(doc: &Value, field: &str) -> Vec<String> {
    doc[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} is an array: {doc}"))
        .iter()
        .map(|v| v.as_str().expect("a string").to_string())
        .collect()
}

async fn the_openid_configuration_is_complete(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let oidc = Oidc::new(app).await;
    let (status, headers, doc) = oidc.app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(status, 200);
    assert_eq!(
        headers
            .get("access-control-allow-origin")
            .map(|v| v.as_bytes()),
        Some(&b"*"[..])
    );
    let issuer = &oidc.app.issuer;
    // §4.3: the issuer is exactly the URL the document was fetched under, less the path.
    assert_eq!(doc["issuer"], issuer.as_str());
    assert_eq!(doc["userinfo_endpoint"], format!("{issuer}/userinfo"));
    assert_eq!(doc["authorization_endpoint"], format!("{issuer}/authorize"));
    assert_eq!(doc["token_endpoint"], format!("{issuer}/token"));
    assert_eq!(strings(&doc, "response_types_supported"), ["code"]);
    assert_eq!(strings(&doc, "subject_types_supported"), ["public"]);
    let algs = strings(&doc, "id_token_signing_alg_values_supported");
    assert!(algs.contains(&"RS256".to_string()), "{algs:?}");
    assert!(algs.contains(&"EdDSA".to_string()), "{algs:?}");
    let scopes = strings(&doc, "scopes_supported");
    for s in ["openid", "profile", "email", "notes:read"] {
        assert!(scopes.contains(&s.to_string()), "{s} in {scopes:?}");
    }
    let claims = strings(&doc, "claims_supported");
    for c in [
        "sub",
        "iss",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "nonce",
        "at_hash",
        "azp",
        "sid",
        "amr",
        "name",
        "preferred_username",
        "updated_at",
        "email",
        "email_verified",
    ] {
        assert!(claims.contains(&c.to_string()), "{c} in {claims:?}");
    }
    for c in [
        "given_name",
        "family_name",
        "picture",
        "phone_number",
        "address",
    ] {
        assert!(!claims.contains(&c.to_string()), "{c} is never emitted");
    }
    let prompts = strings(&doc, "prompt_values_supported");
    for p in ["none", "login", "consent"] {
        assert!(prompts.contains(&p.to_string()), "{p} in {prompts:?}");
    }
    for flag in [
        "claims_parameter_supported",
        "request_parameter_supported",
        "request_uri_parameter_supported",
    ] {
        assert_eq!(doc[flag], false, "{flag}");
    }
    // Back-channel logout, with `sid` in every logout token.
    assert_eq!(doc["backchannel_logout_supported"], true);
    assert_eq!(doc["backchannel_logout_session_supported"], true);
    // RP-initiated logout.
    assert_eq!(
        doc["end_session_endpoint"],
        format!("{issuer}/logout/end-session")
    );
    // Userinfo answers are plain JSON.
    assert!(
        doc.get("userinfo_signing_alg_values_supported").is_none(),
        "userinfo_signing_alg_values_supported must not be listed"
    );
}

async fn every_endpoint_it_names_answers(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let oidc = Oidc::new(app).await;
    let (_, _, doc) = oidc.app.get_json("/.well-known/openid-configuration").await;
    let endpoints: Vec<(&str, String)> = doc
        .as_object()
        .expect("an object")
        .iter()
        .filter(|(k, _)| k.ends_with("_endpoint") || k.as_str() == "jwks_uri")
        .map(|(k, v)| (k.as_str(), v.as_str().expect("a URL").to_string()))
        .collect();
    assert!(endpoints.len() >= 7, "{endpoints:?}");
    for (field, url) in endpoints {
        assert!(url.starts_with(&oidc.app.issuer), "{field}: {url}");
        let get = oidc.app.api.get(&url).send().await.expect("GET");
        let post = oidc.app.api.post(&url).send().await.expect("POST");
        // A route exists: one of the methods is served (a 4xx for a request without
        // parameters is an answer; 404 and 405 on both are not).
        let served = |s: reqwest::StatusCode| s != 404 && s != 405;
        assert!(
            served(get.status()) || served(post.status()),
            "{field} {url}: GET {} POST {}",
            get.status(),
            post.status()
        );
    }
    // The userinfo endpoint answers a real token.
    let token = oidc.access_token("openid").await;
    let url = doc["userinfo_endpoint"]
        .as_str()
        .expect("userinfo_endpoint");
    let resp = oidc
        .app
        .api
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 200);
}

async fn the_oauth_document_stays_oauth(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let oidc = Oidc::new(app).await;
    let (status, _, oauth) = oidc
        .app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(status, 200);
    assert_eq!(oauth["issuer"], oidc.app.issuer.as_str());
    assert_eq!(
        oauth["userinfo_endpoint"],
        format!("{}/userinfo", oidc.app.issuer)
    );
    assert_eq!(oauth["code_challenge_methods_supported"][0], "S256");
    for oidc_only in [
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
        "claims_supported",
    ] {
        assert!(oauth.get(oidc_only).is_none(), "{oidc_only}");
    }
}
