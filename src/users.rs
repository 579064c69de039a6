//! Users: argon2id password hashes, a security version, and a disabled flag.

use std::cell::RefCell;
use std::sync::LazyLock;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use diesel::Connection;
use serde::Serialize;

use crate::clients::RegistryError;
use crate::db::models::audit_events::{self, AuditEventRow};
use crate::db::models::browser_sessions;
use crate::db::models::users::{self as user_rows, UserRow};
use crate::db::{DbConnection, StoreError};
use crate::domain::{Password, Username};
use crate::profile::ProfileChange;
use crate::tokens::refresh;

/// argon2id with OWASP's recommended parameters (19 MiB, 2 passes, 1 lane).
fn params() -> Params {
    Params::new(19 * 1024, 2, 1, None).unwrap_or_default()
}

thread_local! {
    /// This thread's argon2 working memory, allocated at its first hash and reused. Allocating
    /// and freeing 19 MiB per hash fragments the allocator's heap: two hashing threads grew the
    /// server to ~330 MB after a few hundred sign-ins; with the memory kept it stays ~40 MB.
    static WORK_MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// The raw argon2 output for `password` and `salt`, into `out`.
fn argon2_output(
    algorithm: Algorithm,
    version: Version,
    params: Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    let blocks = params.block_count();
    let argon = Argon2::new(algorithm, version, params);
    // Parameters far above ours (a hash imported from elsewhere) get memory of their own.
    if blocks > 2 * self::params().block_count() {
        return argon.hash_password_into(password, salt, out);
    }
    WORK_MEMORY.with(|memory| match memory.try_borrow_mut() {
        Ok(mut memory) => {
            if memory.len() < blocks {
                memory.resize(blocks, Block::default());
            }
            argon.hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
        }
        Err(_) => argon.hash_password_into(password, salt, out),
    })
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
    let failed = |e: &dyn std::fmt::Display| anyhow::anyhow!("hashing the password failed: {e}");
    let mut salt_bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt_bytes)
        .map_err(|_| anyhow::anyhow!("no randomness available"))?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| failed(&e))?;
    let params = params();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let (algorithm, version) = (Algorithm::Argon2id, Version::V0x13);
    let phc_params = ParamsString::try_from(&params).map_err(|e| failed(&e))?;
    argon2_output(
        algorithm,
        version,
        params,
        password.expose().as_bytes(),
        &salt_bytes,
        &mut out,
    )
    .map_err(|e| failed(&e))?;
    let phc = PasswordHash {
        algorithm: algorithm.ident(),
        version: Some(version.into()),
        params: phc_params,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
    };
    Ok(HashedPassword(phc.to_string()))
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
    matches_phc(hash, password.expose().as_bytes()) && real
}

/// Whether `password` gives the stored PHC hash (any argon2 variant and parameters).
fn matches_phc(phc: &str, password: &[u8]) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    if argon2_output(algorithm, version, params, password, salt, &mut out).is_err() {
        return false;
    }
    // `Output`'s equality is constant-time.
    Output::new(&out).is_ok_and(|computed| computed == expected)
}

#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
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
            display_name: u.display_name.clone(),
            email: u.email.clone(),
            email_verified: u.email_verified,
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
    audit_events::insert(
        conn,
        &AuditEventRow::new(now, kind, detail).for_user(&user.id),
    )
}

/// Create a user with a password hashed beforehand (`hash_password`, outside any database job).
pub fn create(
    conn: &mut DbConnection,
    name: &Username,
    hash: &HashedPassword,
    now: i64,
) -> Result<UserView, RegistryError> {
    create_with_profile(conn, name, hash, &ProfileChange::default(), now)
}

/// [`create`] with a profile from the start.
pub fn create_with_profile(
    conn: &mut DbConnection,
    name: &Username,
    hash: &HashedPassword,
    profile: &ProfileChange,
    now: i64,
) -> Result<UserView, RegistryError> {
    let mut row = UserRow {
        id: uuid::Uuid::new_v4().to_string(),
        username: name.as_str().to_string(),
        password_hash: hash.0.clone(),
        security_version: 1,
        disabled: false,
        not_before: None,
        created_at: now,
        updated_at: now,
        display_name: None,
        email: None,
        email_verified: false,
    };
    let columns = profile.apply(&row).map_err(RegistryError::Invalid)?;
    row.display_name = columns.display_name;
    row.email = columns.email;
    row.email_verified = columns.email_verified;
    conn.transaction(|conn| {
        if user_rows::find_by_username(conn, name.as_str())?.is_some() {
            return Err(RegistryError::Conflict(format!(
                "user `{name}` already exists"
            )));
        }
        user_rows::insert(conn, &row)?;
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
    user_rows::find_by_username(conn, name)?
        .ok_or_else(|| RegistryError::NotFound(format!("no user `{name}`")))
}

pub fn list(conn: &mut DbConnection) -> Result<Vec<UserView>, StoreError> {
    Ok(user_rows::list(conn)?.iter().map(UserView::from).collect())
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
        user_rows::set_password(conn, &user.id, hash.as_str(), now)?;
        refresh::revoke_all_for_user(
            conn,
            &user.id,
            refresh::RevocationReason::PasswordChanged,
            now,
        )?;
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
        user_rows::set_disabled(conn, &user.id, disabled, now)?;
        if disabled {
            refresh::revoke_all_for_user(
                conn,
                &user.id,
                refresh::RevocationReason::UserDisabled,
                now,
            )?;
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

/// Change a user's profile (`lineage user update`, and the display name on `/account`). The next
/// access token, ID token or userinfo answer shows it; tokens already issued keep what they say.
pub fn update_profile(
    conn: &mut DbConnection,
    name: &str,
    change: &ProfileChange,
    now: i64,
) -> Result<UserView, RegistryError> {
    conn.transaction(|conn| {
        let user = get(conn, name)?;
        let columns = change.apply(&user).map_err(RegistryError::Invalid)?;
        user_rows::set_profile(
            conn,
            &user.id,
            columns.display_name.as_deref(),
            columns.email.as_deref(),
            columns.email_verified,
            now,
        )?;
        audit(
            conn,
            now,
            "profile_updated",
            &user,
            format!("profile of {name} changed"),
        )?;
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
        user_rows::set_password(conn, user_id, new_hash.as_str(), now)?;
        refresh::revoke_all_for_user(
            conn,
            user_id,
            refresh::RevocationReason::PasswordChanged,
            now,
        )?;
        browser_sessions::delete_for_user(conn, user_id, Some(keep_session))?;
        let user = user_rows::find(conn, user_id)?
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

#[cfg(test)]
mod tests {
    use argon2::PasswordHasher;

    use super::*;

    #[test]
    fn hashes_verify_and_read_like_the_crates_own() {
        let Ok(hash) = hash_password(&Password::attempt("correct horse".into())) else {
            panic!("hashing works");
        };
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password(
            Some(hash.as_str()),
            &Password::attempt("correct horse".into())
        ));
        assert!(!verify_password(
            Some(hash.as_str()),
            &Password::attempt("wrong horse".into())
        ));
        assert!(!verify_password(
            None,
            &Password::attempt("correct horse".into())
        ));
        // A hash made by the argon2 crate's own PHC path (other parameters) verifies too.
        let Ok(salt) = SaltString::encode_b64(b"sixteen byte slt") else {
            panic!("salt");
        };
        let other = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default());
        let Ok(theirs) = other.hash_password(b"correct horse", &salt) else {
            panic!("argon2 hashes");
        };
        let theirs = theirs.to_string();
        assert!(verify_password(
            Some(&theirs),
            &Password::attempt("correct horse".into())
        ));
        assert!(!verify_password(
            Some(&theirs),
            &Password::attempt("x".into())
        ));
    }
}
