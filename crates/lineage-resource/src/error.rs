//! Why a request was refused, and how that maps to RFC 6750 §3 and RFC 9449 §7.1: the status
//! code and the `WWW-Authenticate: Bearer …` or `DPoP …` challenge.

use std::sync::Arc;

use lineage_jwt::dpop::ALGORITHMS;
pub use lineage_jwt::dpop::ProofError;

/// Why a token is not accepted. `Display` is the `error_description` sent to the client: it never
/// echoes token contents beyond a short, sanitised `alg`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    #[error("the access token is not a compact JWS")]
    Malformed,
    #[error("the access token header is malformed")]
    MalformedHeader,
    #[error("alg {0} is not accepted; access tokens are signed with EdDSA")]
    UnsupportedAlgorithm(String),
    #[error("the token is not an access token (typ must be at+jwt)")]
    WrongType,
    #[error("the access token header has no kid")]
    MissingKeyId,
    #[error("the access token uses a critical header extension this server does not support")]
    CriticalHeader,
    #[error("the access token was signed by an unknown key")]
    UnknownKey,
    #[error("the access token signature is invalid")]
    BadSignature,
    #[error("the access token claims are malformed")]
    MalformedClaims,
    #[error("the access token has no {0} claim")]
    MissingClaim(&'static str),
    #[error("the access token was issued by another authorization server")]
    WrongIssuer,
    #[error("the access token is meant for another audience")]
    WrongAudience,
    #[error("the access token expired")]
    Expired,
    #[error("the access token is not valid yet")]
    NotYetValid,
    #[error("the access token's session was revoked")]
    Revoked,
    #[error("the access token was issued before the user's sessions were revoked")]
    IssuedBeforeUserRevocation,
    #[error("the access token was revoked")]
    AccessTokenRevoked,
    #[error("the access token's client was deleted")]
    ClientDeleted,
    /// RFC 9449 §7.2: a DPoP-bound token presented as a bearer token.
    #[error(
        "the access token is bound to a DPoP key: send it with the DPoP scheme and a DPoP proof"
    )]
    BoundToDpopKey,
    /// A token without `cnf.jkt` presented with the DPoP scheme.
    #[error("the access token is not bound to a DPoP key: send it with the Bearer scheme")]
    NotDpopBound,
    /// `cnf` holds a confirmation method other than `jkt`, which this server cannot check.
    #[error("the access token is bound by a confirmation method this server does not support")]
    UnsupportedConfirmation,
}

/// Why the DPoP proof of a request was refused: `invalid_dpop_proof` (RFC 9449 §7.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DpopError {
    /// The DPoP scheme without a `DPoP` header.
    #[error("no DPoP proof was sent: the DPoP scheme needs a DPoP header")]
    Missing,
    /// §4.3 item 1: exactly one `DPoP` header.
    #[error("more than one DPoP header")]
    Multiple,
    /// The proof itself: form, key, signature, `htm`, `htu`, `iat`, `ath`, or a replayed `jti`.
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// §4.3 item 12: the proof's key is not the one the access token is bound to.
    #[error("the DPoP proof is signed by another key than the one the access token is bound to")]
    KeyMismatch,
}

/// The `Authorization` scheme a request used, which is the scheme its challenge names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scheme {
    /// RFC 6750.
    #[default]
    Bearer,
    /// RFC 9449.
    Dpop,
}

impl Scheme {
    /// The scheme as written in `Authorization` and `WWW-Authenticate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Bearer => "Bearer",
            Scheme::Dpop => "DPoP",
        }
    }
}

impl TokenError {
    /// An `alg` value fit to be repeated in a header: short, no quotes or control characters.
    pub(crate) fn unsupported_alg(alg: &str) -> Self {
        let shown: String = alg
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '.'))
            .take(16)
            .collect();
        Self::UnsupportedAlgorithm(if shown.is_empty() {
            "(empty)".into()
        } else {
            shown
        })
    }
}

/// The kinds of refusal, one per RFC 6750 / RFC 9449 outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthErrorKind {
    /// No access token was sent (no `Authorization` header, or another scheme): 401 with bare
    /// `Bearer` and `DPoP` challenges and no error code (RFC 6750 §3.1, RFC 9449 §7.1).
    #[error("no access token was sent")]
    MissingToken,
    /// A malformed `Authorization` header: 400 `invalid_request`.
    #[error("{0}")]
    InvalidRequest(&'static str),
    /// 401 `invalid_token`.
    #[error(transparent)]
    InvalidToken(#[from] TokenError),
    /// 401 `invalid_dpop_proof` (RFC 9449 §7.1).
    #[error(transparent)]
    InvalidDpopProof(#[from] DpopError),
    /// 403 `insufficient_scope`, naming the scope needed.
    #[error("the access token lacks the {scope} scope")]
    InsufficientScope { scope: String },
    /// The application did not register a `Validator` (a programming error): 500.
    #[error("the resource server is misconfigured: {0}")]
    Misconfigured(&'static str),
}

/// A refused request: what went wrong, the realm to name in the challenge, and the scheme the
/// request used (the scheme the challenge answers with).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct AuthError {
    kind: AuthErrorKind,
    realm: Option<Arc<str>>,
    scheme: Scheme,
}

impl From<AuthErrorKind> for AuthError {
    fn from(kind: AuthErrorKind) -> Self {
        Self {
            kind,
            realm: None,
            scheme: Scheme::default(),
        }
    }
}

impl From<TokenError> for AuthError {
    fn from(e: TokenError) -> Self {
        AuthErrorKind::InvalidToken(e).into()
    }
}

impl From<DpopError> for AuthError {
    fn from(e: DpopError) -> Self {
        // A proof only ever comes with the DPoP scheme.
        AuthError::from(AuthErrorKind::InvalidDpopProof(e)).with_scheme(Scheme::Dpop)
    }
}

impl AuthError {
    pub fn missing_token() -> Self {
        AuthErrorKind::MissingToken.into()
    }

    pub fn insufficient_scope(scope: impl Into<String>) -> Self {
        AuthErrorKind::InsufficientScope {
            scope: scope.into(),
        }
        .into()
    }

    pub fn kind(&self) -> &AuthErrorKind {
        &self.kind
    }

    /// The token problem, for `invalid_token` refusals.
    pub fn token_error(&self) -> Option<&TokenError> {
        match &self.kind {
            AuthErrorKind::InvalidToken(e) => Some(e),
            _ => None,
        }
    }

    /// The proof problem, for `invalid_dpop_proof` refusals.
    pub fn dpop_error(&self) -> Option<&DpopError> {
        match &self.kind {
            AuthErrorKind::InvalidDpopProof(e) => Some(e),
            _ => None,
        }
    }

    pub fn with_realm(mut self, realm: Option<Arc<str>>) -> Self {
        self.realm = realm;
        self
    }

    pub fn realm(&self) -> Option<&str> {
        self.realm.as_deref()
    }

    /// Answer with a challenge of this scheme: the one the request's `Authorization` used.
    pub fn with_scheme(mut self, scheme: Scheme) -> Self {
        self.scheme = scheme;
        self
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The RFC 6750 §3.1 / RFC 9449 §7.1 error code, if any.
    pub fn error_code(&self) -> Option<&'static str> {
        match self.kind {
            AuthErrorKind::MissingToken | AuthErrorKind::Misconfigured(_) => None,
            AuthErrorKind::InvalidRequest(_) => Some("invalid_request"),
            AuthErrorKind::InvalidToken(_) => Some("invalid_token"),
            AuthErrorKind::InvalidDpopProof(_) => Some("invalid_dpop_proof"),
            AuthErrorKind::InsufficientScope { .. } => Some("insufficient_scope"),
        }
    }

    pub fn status_code(&self) -> u16 {
        match self.kind {
            AuthErrorKind::MissingToken
            | AuthErrorKind::InvalidToken(_)
            | AuthErrorKind::InvalidDpopProof(_) => 401,
            AuthErrorKind::InvalidRequest(_) => 400,
            AuthErrorKind::InsufficientScope { .. } => 403,
            AuthErrorKind::Misconfigured(_) => 500,
        }
    }

    /// The `WWW-Authenticate` challenges, one per element: none for a server-side failure; a
    /// bare `Bearer` and a bare `DPoP` one when no token was sent, so the client learns both
    /// schemes work; else one challenge in the scheme the request used, carrying the error. A
    /// `DPoP` challenge lists the proof algorithms accepted (`algs`, RFC 9449 §7.1).
    pub fn challenges(&self) -> Vec<String> {
        let realm = self
            .realm
            .as_ref()
            .map(|r| format!("realm=\"{}\"", quotable(r)));
        let challenge = |scheme: Scheme, mut params: Vec<String>| {
            if scheme == Scheme::Dpop {
                params.push(format!("algs=\"{}\"", ALGORITHMS.join(" ")));
            }
            if params.is_empty() {
                scheme.as_str().to_string()
            } else {
                format!("{} {}", scheme.as_str(), params.join(", "))
            }
        };
        match &self.kind {
            AuthErrorKind::Misconfigured(_) => Vec::new(),
            AuthErrorKind::MissingToken => [Scheme::Bearer, Scheme::Dpop]
                .into_iter()
                .map(|scheme| challenge(scheme, realm.iter().cloned().collect()))
                .collect(),
            kind => {
                let mut params: Vec<String> = realm.into_iter().collect();
                if let Some(code) = self.error_code() {
                    params.push(format!("error=\"{code}\""));
                }
                params.push(format!(
                    "error_description=\"{}\"",
                    quotable(&kind.to_string())
                ));
                if let AuthErrorKind::InsufficientScope { scope } = kind {
                    params.push(format!("scope=\"{}\"", quotable(scope)));
                }
                vec![challenge(self.scheme, params)]
            }
        }
    }

    /// The challenges as one `WWW-Authenticate` value (RFC 9110 §11.6.1 allows a
    /// comma-separated list), or `None` for a server-side failure. The actix integration sends
    /// one header per challenge instead, which clients parse more reliably.
    pub fn www_authenticate(&self) -> Option<String> {
        let challenges = self.challenges();
        (!challenges.is_empty()).then(|| challenges.join(", "))
    }

    /// The JSON body sent with the challenge: `{"error", "error_description"}`, or `None` when
    /// no token was sent (RFC 6750 §3.1: no error information then).
    pub fn body(&self) -> Option<serde_json::Value> {
        match &self.kind {
            AuthErrorKind::MissingToken => None,
            AuthErrorKind::Misconfigured(_) => Some(serde_json::json!({
                "error": "server_error",
                "error_description": "internal error",
            })),
            kind => Some(serde_json::json!({
                "error": self.error_code(),
                "error_description": kind.to_string(),
            })),
        }
    }
}

/// RFC 6750 §3: `error_description` and `scope` values exclude `"` and `\` and anything outside
/// printable ASCII.
fn quotable(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

/// Why `ValidatorBuilder::build` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    #[error("no audience configured: call `.audience(..)` with this API's identifier")]
    NoAudience,
    #[error("the issuer must be an http(s) URL, got {0}")]
    InvalidIssuer(String),
    #[error("the public URL must be an absolute http(s) URL without query or fragment, got {0}")]
    InvalidPublicUrl(String),
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
    #[error("cannot read the authorization server metadata at {url}: {reason}")]
    Discovery { url: String, reason: String },
    #[error("the metadata at {url} names issuer {found}, but this validator expects {expected}")]
    IssuerMismatch {
        url: String,
        found: String,
        expected: String,
    },
    #[error("cannot load the JWKS from {url}: {reason}")]
    Jwks { url: String, reason: String },
}

/// Why a poll of the revocation feed failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FeedError {
    #[error("revocation polling is not enabled on this validator")]
    Disabled,
    #[error("the revocation feed at {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the revocation feed at {url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error(
        "the revocation feed at {url} refused this API's credentials (HTTP {status}): register a \
         confidential client with `--permission revocations` \
         and pass it to `.client_credentials(..)`"
    )]
    Refused { url: String, status: u16 },
    #[error("the revocation feed at {url} sent a malformed document: {reason}")]
    Malformed { url: String, reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_follow_rfc_6750() {
        let realm: Option<Arc<str>> = Some("notes".into());
        let missing = AuthError::missing_token().with_realm(realm.clone());
        assert_eq!(missing.status_code(), 401);
        assert_eq!(
            missing.challenges(),
            [
                r#"Bearer realm="notes""#,
                r#"DPoP realm="notes", algs="ES256 EdDSA""#
            ]
        );
        assert_eq!(
            missing.www_authenticate().as_deref(),
            Some(r#"Bearer realm="notes", DPoP realm="notes", algs="ES256 EdDSA""#)
        );
        assert!(missing.body().is_none());
        assert_eq!(
            AuthError::missing_token().challenges(),
            ["Bearer", r#"DPoP algs="ES256 EdDSA""#]
        );

        let expired = AuthError::from(TokenError::Expired).with_realm(realm.clone());
        assert_eq!(expired.status_code(), 401);
        assert_eq!(
            expired.www_authenticate().as_deref(),
            Some(concat!(
                r#"Bearer realm="notes", error="invalid_token", "#,
                r#"error_description="the access token expired""#
            ))
        );

        let scope = AuthError::insufficient_scope("notes:write").with_realm(realm);
        assert_eq!(scope.status_code(), 403);
        let header = scope.www_authenticate().unwrap_or_default();
        assert!(header.contains(r#"error="insufficient_scope""#), "{header}");
        assert!(header.ends_with(r#"scope="notes:write""#), "{header}");

        let bad = AuthError::from(AuthErrorKind::InvalidRequest("two Authorization headers"));
        assert_eq!(bad.status_code(), 400);
        assert_eq!(bad.error_code(), Some("invalid_request"));
        assert!(
            AuthError::from(AuthErrorKind::Misconfigured("x"))
                .www_authenticate()
                .is_none()
        );
    }

    #[test]
    fn dpop_refusals_answer_with_the_dpop_scheme_per_rfc_9449() {
        let realm: Option<Arc<str>> = Some("notes".into());
        let proof =
            AuthError::from(DpopError::Proof(ProofError::Replayed)).with_realm(realm.clone());
        assert_eq!((proof.status_code(), proof.scheme()), (401, Scheme::Dpop));
        assert_eq!(
            proof.www_authenticate().as_deref(),
            Some(concat!(
                r#"DPoP realm="notes", error="invalid_dpop_proof", "#,
                r#"error_description="the DPoP proof was used before (same jti)", "#,
                r#"algs="ES256 EdDSA""#
            ))
        );
        assert_eq!(
            proof.body(),
            Some(serde_json::json!({
                "error": "invalid_dpop_proof",
                "error_description": "the DPoP proof was used before (same jti)",
            }))
        );

        let token = AuthError::from(TokenError::Expired)
            .with_realm(realm.clone())
            .with_scheme(Scheme::Dpop);
        assert_eq!(
            token.challenges(),
            [concat!(
                r#"DPoP realm="notes", error="invalid_token", "#,
                r#"error_description="the access token expired", algs="ES256 EdDSA""#
            )]
        );

        let scope = AuthError::insufficient_scope("notes:write")
            .with_realm(realm)
            .with_scheme(Scheme::Dpop);
        let header = scope.www_authenticate().unwrap_or_default();
        assert!(header.starts_with("DPoP realm="), "{header}");
        assert!(header.contains(r#"scope="notes:write""#), "{header}");
    }

    #[test]
    fn attacker_chosen_alg_cannot_break_the_header() {
        let e = AuthError::from(TokenError::unsupported_alg("HS256\", error=\"x\r\n"));
        let header = e.www_authenticate().unwrap_or_default();
        assert_eq!(header.matches('"').count(), 4, "{header}");
        assert!(
            header.contains("alg HS256errorx is not accepted"),
            "{header}"
        );
    }
}
