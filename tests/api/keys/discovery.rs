//! RFC 8414 metadata at both well-known paths (the OpenID fields: tests/api/oidc/discovery.rs).

use crate::helpers::{Backend, spawn_app};

both_backends!(
    metadata_is_served_at_both_well_known_paths,
    metadata_lists_client_scopes
);

async fn metadata_is_served_at_both_well_known_paths(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (status, headers, oauth) = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(status, 200);
    assert!(
        headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"))
    );
    let (status, _, openid) = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(status, 200);
    // The OpenID document is the OAuth one plus what OpenID Connect adds (tests/api/oidc/);
    // only `scopes_supported` grows (by `openid profile email`).
    for (field, value) in oauth.as_object().expect("metadata object") {
        if field != "scopes_supported" {
            assert_eq!(
                &openid[field], value,
                "{field} differs between the documents"
            );
        }
    }

    // The issuer is the server's own base URL, with no trailing slash.
    assert_eq!(app.issuer, format!("http://127.0.0.1:{}", app.port));
    assert_eq!(oauth["issuer"], app.issuer);
    assert_eq!(oauth["token_endpoint"], format!("{}/token", app.issuer));
    assert_eq!(oauth["jwks_uri"], format!("{}/jwks.json", app.issuer));

    let grants: Vec<&str> = oauth["grant_types_supported"]
        .as_array()
        .expect("grant_types_supported")
        .iter()
        .map(|g| g.as_str().expect("grant type string"))
        .collect();
    assert!(grants.contains(&"client_credentials"), "{grants:?}");
    for g in &grants {
        assert!(
            ["authorization_code", "refresh_token", "client_credentials"].contains(g),
            "unexpected grant type {g}"
        );
    }
    let methods = oauth["token_endpoint_auth_methods_supported"]
        .as_array()
        .expect("token_endpoint_auth_methods_supported");
    assert!(methods.contains(&"client_secret_basic".into()));
    assert!(methods.contains(&"client_secret_post".into()));

    // The advertised JWKS is the one the server serves.
    let jwks_uri = oauth["jwks_uri"].as_str().expect("jwks_uri");
    let served: serde_json::Value = app
        .api
        .get(jwks_uri)
        .send()
        .await
        .expect("GET jwks_uri")
        .json()
        .await
        .expect("JWKS JSON");
    assert_eq!(served, app.jwks().await);
}

async fn metadata_lists_client_scopes(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_client("invoices:read invoices:write").await;
    app.create_client("reports:read").await;
    let (status, _, doc) = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(status, 200);
    let scopes: Vec<&str> = doc["scopes_supported"]
        .as_array()
        .expect("scopes_supported")
        .iter()
        .map(|s| s.as_str().expect("scope string"))
        .collect();
    for s in ["invoices:read", "invoices:write", "reports:read"] {
        assert!(scopes.contains(&s), "{s} missing from {scopes:?}");
    }
    let (_, _, openid) = app.get_json("/.well-known/openid-configuration").await;
    let openid_scopes = openid["scopes_supported"]
        .as_array()
        .expect("scopes_supported");
    for s in scopes {
        assert!(
            openid_scopes.contains(&s.into()),
            "{s} missing from {openid_scopes:?}"
        );
    }
}
