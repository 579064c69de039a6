//! actix-web integration: the [`Authenticated`] extractor and the [`RequireScope`] middleware.
//!
//! Register the validator once with `App::new().app_data(web::Data::new(validator))` (a plain
//! `.app_data(validator)` works too), then take [`Authenticated`] in a handler. It accepts
//! `Authorization: Bearer <token>` for unbound tokens and `Authorization: DPoP <token>` with one
//! `DPoP: <proof>` header for tokens bound to a key (RFC 9449 §7.1), the proof's `htu` being
//! the request's URL ([`ValidatorBuilder::public_url`](crate::ValidatorBuilder::public_url)
//! behind a proxy).
//!
//! ```text
//! async fn list(auth: Authenticated) -> Result<HttpResponse, AuthError> {
//!     auth.require_scope("notes:read")?;
//!     Ok(HttpResponse::Ok().json(notes_of(&auth.sub)))
//! }
//! // or declare the scope on the route:
//! web::resource("/notes").route(web::get().to(list).wrap(RequireScope("notes:read")))
//! ```

use std::future::{Future, Ready, ready};
use std::ops::Deref;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{BoxBody, EitherBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};

use crate::claims::{AccessClaims, Scopes};
use crate::error::{AuthError, AuthErrorKind, DpopError, ProofError, Scheme};
use crate::validator::{Credentials, Validator};

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(AuthError::status_code(self)).unwrap_or(StatusCode::UNAUTHORIZED)
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        if let AuthErrorKind::Misconfigured(why) = self.kind() {
            tracing::error!(%why, "rejecting a request: the resource server is misconfigured");
        }
        let mut resp = HttpResponse::build(ResponseError::status_code(self));
        // One header per challenge (RFC 9110 §11.6.1 allows either form; this one is easier
        // for clients to parse).
        for challenge in self.challenges() {
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                resp.append_header((header::WWW_AUTHENTICATE, value));
            }
        }
        resp.insert_header((header::CACHE_CONTROL, "no-store"));
        match self.body() {
            Some(body) => resp.json(body),
            None => resp.finish(),
        }
    }
}

/// Claims types an [`Authenticated`] extractor can produce from a validated token.
pub trait FromAccessClaims: Sized {
    fn from_access_claims(claims: AccessClaims) -> Result<Self, AuthError>;
}

impl FromAccessClaims for AccessClaims {
    fn from_access_claims(claims: AccessClaims) -> Result<Self, AuthError> {
        Ok(claims)
    }
}

/// A request carrying a valid lineage access token: a bearer token, or a DPoP-bound token with
/// a valid proof. Derefs to the claims.
///
/// Rejects the request (401, or 400 for a malformed header) before the handler runs when the
/// token is missing or invalid. `Option<Authenticated>` makes authentication optional.
#[derive(Debug, Clone)]
pub struct Authenticated<C = AccessClaims> {
    claims: C,
    scopes: Scopes,
    realm: Option<Arc<str>>,
    scheme: Scheme,
}

impl<C> Authenticated<C> {
    pub fn claims(&self) -> &C {
        &self.claims
    }

    pub fn into_inner(self) -> C {
        self.claims
    }

    pub fn scopes(&self) -> &Scopes {
        &self.scopes
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }

    /// How the token was presented: `Bearer`, or `DPoP` with a proof.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// `Err` (403 `insufficient_scope` naming `scope`) unless the token grants `scope`.
    pub fn require_scope(&self, scope: &str) -> Result<(), AuthError> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(AuthError::insufficient_scope(scope)
                .with_realm(self.realm.clone())
                .with_scheme(self.scheme))
        }
    }
}

impl<C> Deref for Authenticated<C> {
    type Target = C;

    fn deref(&self) -> &C {
        &self.claims
    }
}

/// What a request authenticated with: the claims, and the realm and scheme a later refusal
/// names.
#[derive(Clone)]
struct Authentication {
    claims: AccessClaims,
    realm: Option<Arc<str>>,
    scheme: Scheme,
}

/// A request already authenticated (by [`RequireScope`] or another extractor), so it is not
/// verified a second time: a second check would also see the DPoP proof's `jti` as a replay.
#[derive(Clone)]
struct Validated(Authentication);

fn validator_of(req: &HttpRequest) -> Option<Validator> {
    req.app_data::<web::Data<Validator>>()
        .map(|d| d.get_ref().clone())
        .or_else(|| req.app_data::<Validator>().cloned())
}

/// Validate the request's access token (and DPoP proof) with the app's validator.
async fn authenticate(req: &HttpRequest) -> Result<Authentication, AuthError> {
    let Some(validator) = validator_of(req) else {
        return Err(
            AuthErrorKind::Misconfigured("no lineage_resource::Validator in app_data").into(),
        );
    };
    let realm = validator.realm_arc();
    if let Some(Validated(done)) = req.extensions().get::<Validated>().cloned() {
        return Ok(done);
    }
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let first = values.next();
    if values.next().is_some() {
        return Err(validator.error(AuthErrorKind::InvalidRequest(
            "more than one Authorization header",
        )));
    }
    let value = match first.map(|v| v.to_str()) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => {
            return Err(validator.error(AuthErrorKind::InvalidRequest(
                "the Authorization header is not ASCII",
            )));
        }
    };
    let credentials = Credentials::parse(value).map_err(|e| e.with_realm(realm.clone()))?;
    let claims = match credentials {
        Credentials::Bearer(token) => validator.validate(token).await?,
        Credentials::Dpop(token) => {
            let proof =
                dpop_proof(req).map_err(|e| AuthError::from(e).with_realm(realm.clone()))?;
            let htu = {
                let connection = req.connection_info();
                validator.expected_htu(connection.scheme(), connection.host(), req.uri().path())
            };
            validator
                .validate_dpop(token, proof, req.method().as_str(), &htu)
                .await?
        }
    };
    let done = Authentication {
        claims,
        realm,
        scheme: credentials.scheme(),
    };
    req.extensions_mut().insert(Validated(done.clone()));
    Ok(done)
}

/// The value of the request's one `DPoP` header (RFC 9449 §4.3 item 1).
fn dpop_proof(req: &HttpRequest) -> Result<&str, DpopError> {
    let mut values = req.headers().get_all("dpop");
    let first = values.next().ok_or(DpopError::Missing)?;
    if values.next().is_some() {
        return Err(DpopError::Multiple);
    }
    first
        .to_str()
        .map_err(|_| ProofError::Malformed("the DPoP header is not ASCII").into())
}

impl<C: FromAccessClaims + 'static> FromRequest for Authenticated<C> {
    type Error = AuthError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AuthError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let Authentication {
                claims,
                realm,
                scheme,
            } = authenticate(&req).await?;
            let scopes = claims.scopes.clone();
            let claims = C::from_access_claims(claims)
                .map_err(|e| e.with_realm(realm.clone()).with_scheme(scheme))?;
            Ok(Authenticated {
                claims,
                scopes,
                realm,
                scheme,
            })
        })
    }
}

/// Middleware for a route, resource or scope: the request needs a valid token granting this
/// scope, else 401 / 403 before the handler runs. Handlers behind it can still take
/// [`Authenticated`] (the token is not verified twice).
#[derive(Debug, Clone, Copy)]
pub struct RequireScope(pub &'static str);

impl<S, B> Transform<S, ServiceRequest> for RequireScope
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = RequireScopeMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequireScopeMiddleware {
            service: Rc::new(service),
            scope: self.0,
        }))
    }
}

#[doc(hidden)]
pub struct RequireScopeMiddleware<S> {
    service: Rc<S>,
    scope: &'static str,
}

impl<S, B> Service<ServiceRequest> for RequireScopeMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, actix_web::Error>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let scope = self.scope;
        Box::pin(async move {
            // Refusals are responses, not `Err`, so outer middleware sees an ordinary 401/403.
            // A success is kept in the request's extensions for the handler's extractor.
            let refusal = match authenticate(req.request()).await {
                Ok(done) if done.claims.has_scope(scope) => None,
                Ok(Authentication { realm, scheme, .. }) => Some(
                    AuthError::insufficient_scope(scope)
                        .with_realm(realm)
                        .with_scheme(scheme),
                ),
                Err(refusal) => Some(refusal),
            };
            if let Some(refusal) = refusal {
                return Ok(req
                    .into_response(refusal.error_response())
                    .map_into_right_body());
            }
            Ok(service.call(req).await?.map_into_left_body())
        })
    }
}
