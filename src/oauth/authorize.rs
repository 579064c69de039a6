//! `GET /authorize` (RFC 6749 §4.1.1 with PKCE and RFC 9207 `iss`), with the OpenID Connect
//! request parameters (OIDC Core §3.1.2.1): `nonce`, `prompt`, `max_age`, `login_hint` (read by
//! the sign-in page) and `id_token_hint`.
//!
//! The client and redirect URI are checked first: until both are trusted, errors are an HTML page
//! and never a redirect. After that, errors go back to the client as `error=…&state=…&iss=…`.

use actix_web::http::header;
use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::approval::{self, Approval};
use super::form::Form;
use super::pkce;
use super::prompt::Prompt;
use crate::clients::{self, Client};
use crate::db::models::auth_codes::{self, AuthCodeRow};
use crate::domain::{GrantType, Scope};
use crate::state::AppState;
use crate::tokens::id_token;
use crate::tokens::refresh::Origin;
use crate::tokens::secret::PlainToken;
use crate::web::PageError;
use crate::web::pages::device_name_from_user_agent;
use crate::web::session::{self, SignedIn};

/// Authorization codes live this long (RFC 6749 §4.1.2 recommends at most 10 minutes).
pub const CODE_TTL: i64 = 60;

/// The longest `nonce` kept with a code: far more than any library sends (a few dozen
/// characters), small enough that a code row stays small.
pub const MAX_NONCE_CHARS: usize = 512;

/// The longest `id_token_hint` looked at; an ID token of ours is well under this.
const MAX_ID_TOKEN_HINT_CHARS: usize = 8192;

/// A validated authorization request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    /// Whether the request named `redirect_uri` (optional with one registered, RFC 6749 §3.1.2.3).
    pub redirect_uri_given: bool,
    pub scope: String,
    pub state: Option<String>,
    /// The PKCE challenge as stored with the code.
    pub pkce: Option<String>,
    /// The OIDC `nonce`, echoed in the ID token.
    #[serde(default)]
    pub nonce: Option<String>,
    /// RFC 9449 §10: the thumbprint of the DPoP key the code is bound to.
    #[serde(default)]
    pub dpop_jkt: Option<String>,
}

/// A redirect back to the client (RFC 6749 §4.1.2 / §4.1.2.1, RFC 9207).
pub fn redirect_to_client(
    state: &AppState,
    redirect_uri: &str,
    params: &[(&str, &str)],
    client_state: Option<&str>,
) -> HttpResponse {
    let mut url = match url::Url::parse(redirect_uri) {
        Ok(u) => u,
        Err(_) => {
            return PageError::bad_request(
                "Invalid redirect URI",
                "The app's redirect URI is not valid.",
            )
            .into();
        }
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
        if let Some(s) = client_state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", &state.issuer);
    }
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, url.to_string()))
        .finish()
}

impl From<PageError> for HttpResponse {
    fn from(e: PageError) -> Self {
        actix_web::ResponseError::error_response(&e)
    }
}

fn error_redirect(
    state: &AppState,
    areq_uri: &str,
    client_state: Option<&str>,
    code: &str,
    description: &str,
) -> HttpResponse {
    redirect_to_client(
        state,
        areq_uri,
        &[
            ("error", code),
            (
                "error_description",
                &crate::oauth::error::description_chars(description),
            ),
        ],
        client_state,
    )
}

/// RFC 8252 §7.3: a native app's loopback redirect URI may use any port.
fn loopback_without_port(u: &url::Url) -> Option<String> {
    let loopback = match u.host()? {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(_) => false,
    };
    if !loopback || u.scheme() != "http" {
        return None;
    }
    let mut v = u.clone();
    v.set_port(None).ok()?;
    Some(v.to_string())
}

/// The registered redirect URI this request may use: an exact match, or a loopback URI that
/// differs only in port. (oxide-auth's `IgnoreLocalPortUrl` ignores ports only for the name
/// `localhost`, which RFC 8252 §8.3 advises against; loopback IP literals need this rule.)
pub fn match_redirect_uri(client: &Client, requested: Option<&str>) -> Option<String> {
    let Some(requested) = requested else {
        // Optional only when exactly one is registered (RFC 6749 §3.1.2.3).
        return match client.redirect_uris.as_slice() {
            [only] => Some(only.as_str().to_string()),
            _ => None,
        };
    };
    if client.redirect_uris.iter().any(|r| r.as_str() == requested) {
        return Some(requested.to_string());
    }
    let req_url = url::Url::parse(requested).ok()?;
    let wanted = loopback_without_port(&req_url)?;
    client
        .redirect_uris
        .iter()
        .filter_map(|r| url::Url::parse(r.as_str()).ok())
        .any(|r| loopback_without_port(&r).as_deref() == Some(wanted.as_str()))
        .then(|| requested.to_string())
}

enum Rejection {
    Page(PageError),
    Redirect(HttpResponse),
}

/// A validated request, its client, and what the client asked the server to show.
struct Validated {
    request: AuthorizationRequest,
    client: Client,
    prompt: Prompt,
    /// OIDC `max_age`: the most seconds since the user entered the password.
    max_age: Option<i64>,
    id_token_hint: Option<String>,
}

/// Validate the query of `/authorize`.
/// The client and the redirect URI it registered: until both are known, errors are shown to
/// the user (RFC 6749 §4.1.2.1), never sent to an address that may not be the client's.
async fn trusted_redirect(
    state: &AppState,
    form: &Form,
) -> Result<(String, Client, String), PageError> {
    let Some(client_id) = form.get("client_id").map(str::to_string) else {
        return Err(PageError::bad_request(
            "Invalid authorization request",
            "The request does not name an app (client_id is missing).",
        ));
    };
    let lookup = client_id.clone();
    let client = state
        .db
        .read(move |c| clients::find(c, &lookup))
        .await
        .map_err(PageError::from)?
        .ok_or_else(|| {
            PageError::bad_request(
                "Unknown app",
                "The app that sent you here is not registered with this server.",
            )
        })?;
    let redirect_uri = match_redirect_uri(&client, form.get("redirect_uri")).ok_or_else(|| {
        PageError::bad_request(
            "Invalid redirect URI",
            "The app asked to send you to an address it has not registered, \
             so this request was stopped.",
        )
    })?;
    Ok((client_id, client, redirect_uri))
}

async fn validate(state: &AppState, query: &str) -> Result<Validated, Rejection> {
    let form = Form::parse(query.as_bytes()).map_err(|e| {
        Rejection::Page(PageError::bad_request(
            "Invalid authorization request",
            e.description.unwrap_or_default(),
        ))
    })?;
    let (client_id, client, redirect_uri) = trusted_redirect(state, &form)
        .await
        .map_err(Rejection::Page)?;
    // From here on the redirect URI is trusted: errors go back to the client.
    let client_state = form.get("state").map(str::to_string);
    let fail = |code: &str, description: &str| {
        Rejection::Redirect(error_redirect(
            state,
            &redirect_uri,
            client_state.as_deref(),
            code,
            description,
        ))
    };
    match form.get("response_type") {
        Some("code") => {}
        None => return Err(fail("invalid_request", "response_type is required")),
        Some(_) => {
            return Err(fail(
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
    }
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(fail(
            "unauthorized_client",
            "this client may not use the authorization code flow",
        ));
    }
    let scope = match form.get("scope") {
        None => client.scopes.clone(),
        Some(raw) => Scope::parse(raw).map_err(|e| fail("invalid_scope", &e))?,
    };
    if scope.is_empty() || !scope.is_subset_of(&client.scopes) {
        return Err(fail(
            "invalid_scope",
            "the requested scope exceeds what this client may ask for",
        ));
    }
    let pkce = pkce::challenge(
        client.is_public,
        form.get("code_challenge_method"),
        form.get("code_challenge"),
    )
    .map_err(|e| fail("invalid_request", &e))?;
    let prompt = Prompt::parse(form.get("prompt")).map_err(|e| fail("invalid_request", &e))?;
    let nonce = form.get("nonce").map(str::to_string);
    if nonce
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NONCE_CHARS)
    {
        return Err(fail("invalid_request", "nonce is too long"));
    }
    // RFC 9449 §10: a SHA-256 JWK thumbprint, base64url (43 characters).
    let dpop_jkt = form.get("dpop_jkt").map(str::to_string);
    if dpop_jkt
        .as_deref()
        .is_some_and(|j| !lineage_jwt::dpop::is_thumbprint(j))
    {
        return Err(fail(
            "invalid_request",
            "dpop_jkt must be the base64url SHA-256 thumbprint of a JWK",
        ));
    }
    let max_age = match form.get("max_age") {
        None => None,
        Some(raw) => Some(i64::from(raw.parse::<u32>().map_err(|_| {
            fail("invalid_request", "max_age must be a non-negative integer")
        })?)),
    };
    let id_token_hint = form.get("id_token_hint").map(str::to_string);
    if id_token_hint
        .as_ref()
        .is_some_and(|h| h.len() > MAX_ID_TOKEN_HINT_CHARS)
    {
        return Err(fail("invalid_request", "id_token_hint is too long"));
    }
    Ok(Validated {
        request: AuthorizationRequest {
            client_id,
            redirect_uri,
            redirect_uri_given: form.get("redirect_uri").is_some(),
            scope: scope.to_string(),
            state: client_state,
            pkce,
            nonce,
            dpop_jkt,
        },
        client,
        prompt,
        max_age,
        id_token_hint,
    })
}

pub async fn authorize(state: Data<AppState>, req: HttpRequest) -> Result<HttpResponse, PageError> {
    let Validated {
        request: areq,
        client,
        prompt,
        max_age,
        id_token_hint,
    } = match validate(&state, req.query_string()).await {
        Ok(v) => v,
        Err(Rejection::Page(p)) => return Err(p),
        Err(Rejection::Redirect(r)) => return Ok(r),
    };
    let refuse = |code: &str, description: &str| {
        error_redirect(
            &state,
            &areq.redirect_uri,
            areq.state.as_deref(),
            code,
            description,
        )
    };
    let signed_in = session::current(&state, &req).await?;
    let hinted = match &id_token_hint {
        Some(hint) => match hinted_subject(&state, hint, &areq.client_id).await? {
            Ok(sub) => Some(sub),
            Err(e) => return Ok(refuse("invalid_request", &e.to_string())),
        },
        None => None,
    };
    let now = state.now();
    let signed_in = match signed_in {
        // OIDC Core §3.1.2.1: prompt=none never shows a page.
        None if prompt.none => {
            return Ok(refuse("login_required", "the user is not signed in"));
        }
        None => return Ok(to_sign_in(&req, &prompt, false)),
        Some(_) if prompt.login => return Ok(to_sign_in(&req, &prompt, true)),
        // `max_age` (OIDC Core §3.1.2.1): an older sign-in asks for the password again; `0`
        // always does, like `prompt=login`.
        Some(s) if max_age.is_some_and(|m| m == 0 || now - s.auth_time > m) => {
            if prompt.none {
                return Ok(refuse(
                    "login_required",
                    "the sign-in is older than max_age",
                ));
            }
            return Ok(to_sign_in(&req, &prompt, true));
        }
        // The hint names another user than the one signed in.
        Some(s) if hinted.as_ref().is_some_and(|sub| *sub != s.user.id) => {
            if prompt.none {
                return Ok(refuse(
                    "login_required",
                    "the signed-in user is not the one id_token_hint names",
                ));
            }
            return Ok(to_sign_in(&req, &prompt, true));
        }
        Some(s) => s,
    };
    let covers = approval::consent_covers(&state, &signed_in.user.id, &areq).await?;
    let origin = Origin::of(&req);
    match approval::decide(&client, covers, &prompt) {
        Approval::Issue => {
            let device = device_name_from_user_agent(origin.user_agent.as_deref());
            issue_code(&state, &signed_in, &areq, Some(device)).await
        }
        Approval::Consent if prompt.none => Ok(refuse(
            "consent_required",
            "the user must approve this request on a page",
        )),
        // A page that is not consent: the one-click confirmation of a public client.
        Approval::Confirm if prompt.none => Ok(refuse(
            "interaction_required",
            "the user must confirm this request on a page",
        )),
        Approval::Confirm => approval::confirmation_page(&state, &signed_in, &areq, &client),
        Approval::Consent => approval::consent_page(&state, &signed_in, &areq, &client, &origin),
    }
}

/// The `sub` an `id_token_hint` names, or why it is not acceptable.
async fn hinted_subject(
    state: &AppState,
    hint: &str,
    client_id: &str,
) -> Result<Result<String, id_token::HintError>, PageError> {
    let now = state.now();
    let keys = state.keys.for_token(&state.db, hint, now).await?;
    Ok(id_token::hinted_subject(
        &keys,
        hint,
        &state.issuer,
        client_id,
    ))
}

/// The sign-in page, returning to this request afterwards; `again` asks it for the password even
/// though the browser is signed in. `prompt=login` (and `select_account`), `max_age` and
/// `id_token_hint` are dropped from the request it returns to: by then the fresh sign-in has
/// happened, and keeping them would send the browser back to the sign-in page for ever
/// (`max_age=0` at once, another `max_age` after a slow sign-in, a hint naming an account the
/// user chose not to use). Binding them to the sign-in time instead would need a signed time in
/// the URL and buys nothing: the browser could as well have removed them from the client's
/// request before it ever reached us, and the ID token's `sub` and `auth_time` tell the client.
fn to_sign_in(req: &HttpRequest, prompt: &Prompt, again: bool) -> HttpResponse {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        if !matches!(k.as_ref(), "prompt" | "max_age" | "id_token_hint") {
            query.append_pair(&k, &v);
        }
    }
    if let Some(p) = prompt.after_sign_in() {
        query.append_pair("prompt", p);
    }
    let return_to = format!("/authorize?{}", query.finish());
    let mut login = url::form_urlencoded::Serializer::new(String::new());
    login.append_pair("return_to", &return_to);
    if again {
        login.append_pair("prompt", "login");
    }
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/login?{}", login.finish())))
        .finish()
}

/// What the sign-in page needs to know about the authorization request it returns to: the app's
/// name, and the redirect URI to allow in its `form-action` when the request, once signed in,
/// goes straight back to the client (a confidential client the user may already have allowed).
pub struct SignInFor {
    pub app_name: String,
    pub straight_to: Option<String>,
}

pub async fn sign_in_for(state: &AppState, return_to: &str) -> Option<SignInFor> {
    let query = return_to.strip_prefix("/authorize?")?;
    let v = validate(state, query).await.ok()?;
    let straight = approval::decide(&v.client, true, &v.prompt) == Approval::Issue;
    Some(SignInFor {
        app_name: v.client.name,
        straight_to: straight.then_some(v.request.redirect_uri),
    })
}

/// Issue a code for an approved request and send the browser back to the client.
pub async fn issue_code(
    state: &AppState,
    signed_in: &SignedIn,
    areq: &AuthorizationRequest,
    device_name: Option<String>,
) -> Result<HttpResponse, PageError> {
    let code = PlainToken::generate().map_err(|_| PageError::internal())?;
    let now = state.now();
    let row = AuthCodeRow {
        code_hash: code.hash().into_string(),
        client_id: areq.client_id.clone(),
        user_id: signed_in.user.id.clone(),
        redirect_uri: areq.redirect_uri.clone(),
        scope: areq.scope.clone(),
        pkce_challenge: areq.pkce.clone(),
        device_name,
        session_hash: Some(signed_in.id_hash.clone()),
        created_at: now,
        expires_at: now + CODE_TTL,
        used_at: None,
        family_id: None,
        redirect_uri_given: areq.redirect_uri_given,
        nonce: areq.nonce.clone(),
        auth_time: signed_in.auth_time,
        dpop_jkt: areq.dpop_jkt.clone(),
    };
    state.db.write(move |c| auth_codes::insert(c, &row)).await?;
    Ok(redirect_to_client(
        state,
        &areq.redirect_uri,
        &[("code", code.expose())],
        areq.state.as_deref(),
    ))
}
