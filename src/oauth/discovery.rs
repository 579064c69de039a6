//! The two discovery documents, from one set of fields: RFC 8414 authorization-server metadata
//! at `/.well-known/oauth-authorization-server`, and the OpenID Provider metadata of OpenID
//! Connect Discovery 1.0 §3 at `/.well-known/openid-configuration` — the same fields plus what
//! OpenID Connect requires. Both list only what this server really does.

use actix_web::web::Data;
use actix_web::{HttpResponse, http::header};
use serde_json::{Map, Value, json};

use super::error::OAuthError;
use super::token_request::SUPPORTED_GRANTS;
use crate::clients;
use crate::profile::{EMAIL_SCOPE, PROFILE_SCOPE};
use crate::state::AppState;

/// How clients authenticate (`client_auth`); introspection takes the first two only.
const CLIENT_AUTH_METHODS: [&str; 3] = ["client_secret_basic", "client_secret_post", "none"];

/// The scopes OpenID Connect defines that lineage answers, whether or not a client registered them.
const OIDC_SCOPES: [&str; 3] = ["openid", PROFILE_SCOPE, EMAIL_SCOPE];

/// Every claim lineage puts in an ID token, an access token's user claims or a userinfo answer.
const CLAIMS_SUPPORTED: [&str; 16] = [
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
];

/// ID tokens are signed with RS256 (which OIDC Core §15.1 requires a provider to offer) by
/// default, or EdDSA when a client registers for it.
const ID_TOKEN_SIGNING_ALGS: [&str; 2] = ["RS256", "EdDSA"];

/// `/authorize`'s `prompt` values (`oauth::prompt`).
const PROMPT_VALUES: [&str; 4] = ["none", "login", "consent", "select_account"];

/// The fields both documents share. `scopes_supported` is every scope some registered client
/// may request.
async fn shared(state: &AppState) -> Result<Map<String, Value>, OAuthError> {
    let scopes = state.db.read(clients::all_scopes).await?;
    let issuer = &state.issuer;
    let grants: Vec<&str> = SUPPORTED_GRANTS.iter().map(|g| g.as_str()).collect();
    let doc = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks.json"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "grant_types_supported": grants,
        "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "revocation_endpoint": format!("{issuer}/revoke"),
        "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "introspection_endpoint": format!("{issuer}/introspect"),
        "introspection_endpoint_auth_methods_supported": &CLIENT_AUTH_METHODS[..2],
        "scopes_supported": scopes,
        // RFC 9449 §5.1.
        "dpop_signing_alg_values_supported": lineage_jwt::dpop::ALGORITHMS,
        // Not an RFC 8414 name: lineage's revocation feed for resource servers (README).
        "lineage_revocation_feed_endpoint": format!("{issuer}/revocations"),
        "service_documentation": format!("{issuer}/"),
    });
    match doc {
        Value::Object(fields) => Ok(fields),
        _ => Ok(Map::new()),
    }
}

fn document(fields: Map<String, Value>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
        .json(Value::Object(fields))
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414 §3).
pub async fn oauth_metadata(state: Data<AppState>) -> Result<HttpResponse, OAuthError> {
    Ok(document(shared(&state).await?))
}

/// `GET /.well-known/openid-configuration` (OpenID Connect Discovery 1.0 §3).
pub async fn openid_configuration(state: Data<AppState>) -> Result<HttpResponse, OAuthError> {
    let mut fields = shared(&state).await?;
    let mut scopes: Vec<String> = OIDC_SCOPES.iter().map(|s| s.to_string()).collect();
    if let Some(Value::Array(registered)) = fields.get("scopes_supported") {
        for scope in registered.iter().filter_map(Value::as_str) {
            if !scopes.iter().any(|s| s == scope) {
                scopes.push(scope.to_string());
            }
        }
    }
    let oidc = json!({
        "scopes_supported": scopes,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ID_TOKEN_SIGNING_ALGS,
        "claims_supported": CLAIMS_SUPPORTED,
        "prompt_values_supported": PROMPT_VALUES,
        // Every claim is asked for by scope: no `claims` parameter (OIDC Core §5.5), no request
        // objects (§6). `request_uri_parameter_supported` defaults to true, so it is said.
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        // Back-Channel Logout 1.0 §2.1: clients may register a `backchannel_logout_uri`, and
        // every logout token carries `sid` (the refresh family, as in the ID and access tokens).
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        // RP-Initiated Logout 1.0 §2.1: where an app sends the browser to sign the user out.
        "end_session_endpoint": format!("{}/logout/end-session", state.issuer),
    });
    if let Value::Object(extra) = oidc {
        fields.extend(extra);
    }
    Ok(document(fields))
}
