//! Browser sessions of the sign-in page: a random cookie whose SHA-256 is a `browser_sessions` row.
//! Cookies are `HttpOnly`, `SameSite=Lax`, and `Secure` with the `__Host-` prefix when the issuer
//! is https. A fresh id is issued at every sign-in (no session fixation).

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};

use crate::db::StoreError;
use crate::db::models::browser_sessions::{self, BrowserSessionRow};
use crate::db::models::users::{self, UserRow};
use crate::domain::Seconds;
use crate::state::AppState;
use crate::tokens::refresh::Origin;
use crate::tokens::secret::{HashedToken, PlainToken};

/// A browser stays signed in this long after signing in.
pub const SESSION_TTL: Seconds = Seconds::new(12 * 3600);

#[derive(Debug, Clone)]
pub struct CookieNames {
    pub session: &'static str,
    /// Binds the sign-in form's CSRF token before there is a session.
    pub pre_session: &'static str,
    pub secure: bool,
}

impl CookieNames {
    pub fn for_issuer(issuer: &str) -> Self {
        if issuer.starts_with("https://") {
            Self {
                session: "__Host-lineage_session",
                pre_session: "__Host-lineage_pre",
                secure: true,
            }
        } else {
            Self {
                session: "lineage_session",
                pre_session: "lineage_pre",
                secure: false,
            }
        }
    }

    pub fn cookie(
        &self,
        name: &'static str,
        value: String,
        max_age: Option<Seconds>,
    ) -> Cookie<'static> {
        let mut c = Cookie::build(name, value)
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure);
        if let Some(age) = max_age {
            c = c.max_age(CookieDuration::seconds(age.get()));
        }
        c.finish()
    }

    pub fn removal(&self, name: &'static str) -> Cookie<'static> {
        let mut c = self.cookie(name, String::new(), Some(Seconds::ZERO));
        c.make_removal();
        c
    }
}

/// A signed-in browser.
#[derive(Clone)]
pub struct SignedIn {
    /// The cookie value: binds CSRF tokens of this browser's forms.
    pub cookie_value: String,
    pub id_hash: String,
    pub user: UserRow,
    /// When the user entered the password (OIDC Core §2 `auth_time`).
    pub auth_time: i64,
}

// The cookie value is the session's bearer secret, and its hash the key that finds the session.
impl std::fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedIn")
            .field("cookie_value", &"[redacted]")
            .field("id_hash", &"[redacted]")
            .field("user", &self.user)
            .field("auth_time", &self.auth_time)
            .finish()
    }
}

/// The signed-in user of this request, if the session is live and still valid for the user.
pub async fn current(state: &AppState, req: &HttpRequest) -> Result<Option<SignedIn>, StoreError> {
    let Some(cookie) = req.cookie(state.cookies.session) else {
        return Ok(None);
    };
    let value = cookie.value().to_string();
    if value.is_empty() {
        return Ok(None);
    }
    let id_hash = HashedToken::of(value.as_bytes()).into_string();
    let now = state.now();
    let lookup = id_hash.clone();
    let found = state
        .db
        .read(move |c| {
            let Some(s) = browser_sessions::find(c, &lookup)? else {
                return Ok(None);
            };
            let user = users::find(c, &s.user_id)?;
            Ok::<_, StoreError>(user.map(|u| (s, u)))
        })
        .await?;
    Ok(match found {
        Some((s, user))
            if s.expires_at > now
                && !user.disabled
                && s.security_version == user.security_version =>
        {
            Some(SignedIn {
                cookie_value: value,
                id_hash,
                user,
                auth_time: s.auth_time,
            })
        }
        _ => None,
    })
}

/// Start a session for `user`, ending the browser's previous one; returns the cookie to set.
pub async fn start(
    state: &AppState,
    user: &UserRow,
    previous: Option<String>,
    origin: Origin,
) -> Result<Cookie<'static>, StoreError> {
    let value = PlainToken::generate()
        .map_err(|_| StoreError::Other(anyhow::anyhow!("no randomness available")))?;
    let now = state.now();
    let row = BrowserSessionRow {
        id_hash: value.hash().into_string(),
        user_id: user.id.clone(),
        security_version: user.security_version,
        user_agent: origin.user_agent,
        ip: origin.ip,
        created_at: now,
        last_seen_at: now,
        expires_at: now + SESSION_TTL,
        auth_time: now,
    };
    state
        .db
        .write(move |c| {
            if let Some(old) = previous {
                browser_sessions::delete(c, &old)?;
            }
            browser_sessions::insert(c, &row)
        })
        .await?;
    Ok(state.cookies.cookie(
        state.cookies.session,
        value.expose().to_string(),
        Some(SESSION_TTL),
    ))
}

/// The pre-session value binding the sign-in form, and the cookie to set if it is new.
pub fn pre_session(state: &AppState, req: &HttpRequest) -> (String, Option<Cookie<'static>>) {
    if let Some(c) = req.cookie(state.cookies.pre_session)
        && c.value().len() >= 32
    {
        return (c.value().to_string(), None);
    }
    let value = PlainToken::generate()
        .map(|t| t.expose().to_string())
        .unwrap_or_else(|_| uuid::Uuid::new_v4().to_string());
    let cookie = state
        .cookies
        .cookie(state.cookies.pre_session, value.clone(), None);
    (value, Some(cookie))
}

/// The id hash of the session cookie the request carries, live or not.
pub fn presented_session_hash(state: &AppState, req: &HttpRequest) -> Option<String> {
    req.cookie(state.cookies.session)
        .filter(|c| !c.value().is_empty())
        .map(|c| HashedToken::of(c.value().as_bytes()).into_string())
}

#[cfg(test)]
mod tests {
    use super::SignedIn;
    use crate::db::models::users::UserRow;

    #[test]
    fn debug_never_shows_the_session_cookie() {
        let signed_in = SignedIn {
            cookie_value: "Zm9vYmFyLXNlc3Npb24tY29va2llLXZhbHVl".into(),
            id_hash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
            user: UserRow {
                id: "u1".into(),
                username: "alice".into(),
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
                security_version: 1,
                disabled: false,
                not_before: None,
                created_at: 0,
                updated_at: 0,
                display_name: None,
                email: None,
                email_verified: false,
            },
            auth_time: 0,
        };
        let shown = format!("{signed_in:?}");
        assert!(!shown.contains("Zm9vYmFy"), "{shown}");
        assert!(!shown.contains("9f86d081"), "{shown}");
        assert!(!shown.contains("argon2id"), "{shown}");
        assert!(shown.contains("alice"), "{shown}");
    }
}
