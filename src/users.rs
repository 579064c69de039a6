//! Users: argon2id password hashes, a security version, and a disabled flag.

use std::sync::LazyLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use diesel::Connection;
use serde::Serialize;

use crate::clients::RegistryError;
use crate::db::models::audit_events::{self, AuditEventRow};
use crate::db::models::browser_sessions;
use crate::db::models::users::{self as store, UserRow};
use crate::db::{DbConnection, StoreError};
use crate::domain::{Password, Username};
use crate::tokens::refresh;

/// argon2id with OWASP's recommended parameters (19 MiB, 2 passes, 1 lane).
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// An argon2id hash in PHC string form: what is stored for a password.
#[derive(Clone, PartialEq, Eq)]
pub struct HashedPassword(String);

impl HashedPassword {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for HashedPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashedPassword([redacted])")
    }
}

/// CPU- and memory-heavy: the server calls it through `HashingPool`, the CLI on its own thread;
/// never inside a database job (it would hold the connection, on SQLite the one writer, ~20 ms).
pub fn hash_password(password: &Password) -> anyhow::Result<HashedPassword> {
    let mut salt_bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt_bytes)
        .map_err(|_| anyhow::anyhow!("no randomness available"))?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Ok(HashedPassword(
        argon2()
            .hash_password(password.expose().as_bytes(), &salt)
            .map_err(|e| anyhow::anyhow!("hashing the password failed: {e}"))?
            .to_string(),
    ))
}

/// A hash of a random password, checked against when the user does not exist, so an unknown
/// username costs the same time as a wrong password.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    hash_password(&Password::attempt("lineage-timing-equaliser".into()))
        .map(|h| h.0)
        .unwrap_or_default()
});

/// Compute the dummy hash now, so the first unknown username costs no more than later ones.
pub fn prepare_dummy_hash() {
    LazyLock::force(&DUMMY_HASH);
}

/// CPU-heavy: call through `HashingPool` (or from the CLI's own thread).
pub fn verify_password(hash: Option<&str>, password: &Password) -> bool {
    let (hash, real) = match hash {
        Some(h) => (h, true),
        None => (DUMMY_HASH.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    argon2()
        .verify_password(password.expose().as_bytes(), &parsed)
        .is_ok()
        && real
}

#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub disabled: bool,
    pub security_version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<&UserRow> for UserView {
    fn from(u: &UserRow) -> Self {
        Self {
            id: u.id.clone(),
            username: u.username.clone(),
            disabled: u.disabled,
            security_version: u.security_version,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

fn audit(
    conn: &mut DbConnection,
    now: i64,
    kind: &str,
    user: &UserRow,
    detail: String,
) -> Result<(), StoreError> {
    let mut event = AuditEventRow::new(now, kind, detail);
    event.user_id = Some(user.id.clone());
    audit_events::insert(conn, &event)
}

/// Create a user with a password hashed beforehand (`hash_password`, outside any database job).
pub fn create(
    conn: &mut DbConnection,
    name: &Username,
    hash: &HashedPassword,
    now: i64,
) -> Result<UserView, RegistryError> {
    let row = UserRow {
        id: uuid::Uuid::new_v4().to_string(),
        username: name.as_str().to_string(),
        password_hash: hash.0.clone(),
        security_version: 1,
        disabled: false,
        not_before: None,
        created_at: now,
        updated_at: now,
    };
    conn.transaction(|conn| {
        if store::find_by_username(conn, name.as_str())?.is_some() {
            return Err(RegistryError::Conflict(format!(
                "user `{name}` already exists"
            )));
        }
        store::insert(conn, &row)?;
        audit(
            conn,
            now,
            "user_created",
            &row,
            format!("user {name} created"),
        )?;
        Ok(())
    })?;
    Ok(UserView::from(&row))
}

pub fn get(conn: &mut DbConnection, name: &str) -> Result<UserRow, RegistryError> {
    store::find_by_username(conn, name)?
        .ok_or_else(|| RegistryError::NotFound(format!("no user `{name}`")))
}

pub fn list(conn: &mut DbConnection) -> Result<Vec<UserView>, StoreError> {
    Ok(store::list(conn)?.iter().map(UserView::from).collect())
}

/// Set a password hashed beforehand (`hash_password`, outside any database job).
pub fn set_password(
    conn: &mut DbConnection,
    name: &str,
    hash: &HashedPassword,
    now: i64,
) -> Result<UserView, RegistryError> {
    let user = get(conn, name)?;
    conn.transaction(|conn| {
        store::set_password(conn, &user.id, hash.as_str(), now)?;
        refresh::revoke_all_for_user(conn, &user.id, "password_changed", now)?;
        browser_sessions::delete_for_user(conn, &user.id, None)?;
        audit(
            conn,
            now,
            "password_changed",
            &user,
            format!("password of {name} changed by an administrator"),
        )?;
        Ok::<_, RegistryError>(())
    })?;
    Ok(UserView::from(&get(conn, name)?))
}

pub fn set_disabled(
    conn: &mut DbConnection,
    name: &str,
    disabled: bool,
    now: i64,
) -> Result<UserView, RegistryError> {
    let user = get(conn, name)?;
    conn.transaction(|conn| {
        store::set_disabled(conn, &user.id, disabled, now)?;
        if disabled {
            refresh::revoke_all_for_user(conn, &user.id, "user_disabled", now)?;
            browser_sessions::delete_for_user(conn, &user.id, None)?;
        }
        let (kind, verb) = if disabled {
            ("user_disabled", "disabled")
        } else {
            ("user_enabled", "enabled")
        };
        audit(conn, now, kind, &user, format!("user {name} {verb}"))?;
        Ok::<_, RegistryError>(())
    })?;
    Ok(UserView::from(&get(conn, name)?))
}

/// A user changes their own password: every refresh family and every other browser session
/// ends; `keep_session` (the browser doing it) stays signed in.
pub fn change_own_password(
    conn: &mut DbConnection,
    user_id: &str,
    new_hash: &HashedPassword,
    keep_session: &str,
    now: i64,
) -> Result<(), StoreError> {
    conn.transaction(|conn| {
        store::set_password(conn, user_id, new_hash.as_str(), now)?;
        refresh::revoke_all_for_user(conn, user_id, "password_changed", now)?;
        browser_sessions::delete_for_user(conn, user_id, Some(keep_session))?;
        let user = store::find(conn, user_id)?
            .ok_or_else(|| StoreError::Other(anyhow::anyhow!("user vanished")))?;
        browser_sessions::set_security_version(conn, keep_session, user.security_version)?;
        audit(
            conn,
            now,
            "password_changed",
            &user,
            "password changed on the account page; every other session was signed out".into(),
        )?;
        Ok(())
    })
}
