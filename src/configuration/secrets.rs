//! The secrets among the settings: `Debug` never shows them, and the key secret, when none is
//! configured, lives in a 0600 file created on first use.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::db::DatabaseUrl;

/// The secret that encrypts signing keys at rest and keys the refresh-token successor HMAC.
#[derive(Clone, PartialEq, Eq)]
pub struct KeySecret(String);

impl KeySecret {
    pub fn new(value: String) -> Self {
        Self(value)
    }
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeySecret([redacted])")
    }
}

/// A setting as typed (flag, environment or file) that may hold a secret: the key secret, or a
/// database URL with a password. `Debug` never shows the secret.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct SensitiveSetting(String);

impl SensitiveSetting {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub(super) fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for SensitiveSetting {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_string()))
    }
}

impl fmt::Debug for SensitiveSetting {
    // A database URL shows with its password masked; anything else not at all.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match DatabaseUrl::parse(&self.0) {
            Ok(url @ DatabaseUrl::Postgres { .. }) => f.write_str(&url.redacted()),
            _ => f.write_str("[redacted]"),
        }
    }
}

/// Where the key secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySecretSource {
    Configured(KeySecret),
    /// Not configured: read or create this 0600 file.
    File(PathBuf),
}

impl KeySecretSource {
    /// The configured secret, or else the file beside the database: `lineage.db` →
    /// `lineage.db.key`; for PostgreSQL, `lineage.key` in the working directory.
    pub(super) fn new(configured: Option<KeySecret>, database: &DatabaseUrl) -> Self {
        let Some(secret) = configured else {
            return Self::File(default_key_secret_path(database));
        };
        Self::Configured(secret)
    }

    /// The configured secret, or the one in the key file — created (0600) on first use.
    pub fn load(&self) -> anyhow::Result<KeySecret> {
        use anyhow::Context;
        let path = match self {
            KeySecretSource::Configured(s) => return Ok(s.clone()),
            KeySecretSource::File(p) => p,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let secret = text.trim().to_string();
                if secret.len() < 16 {
                    anyhow::bail!("the key secret in {} is too short", path.display());
                }
                warn_if_readable_by_others(path);
                return Ok(KeySecret::new(secret));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read the key secret {}", path.display()));
            }
        }
        let mut bytes = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| anyhow::anyhow!("no randomness available"))?;
        use base64::Engine;
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        write_private_file(path, &secret)
            .with_context(|| format!("cannot create the key secret file {}", path.display()))?;
        tracing::warn!(
            path = %path.display(),
            "no key secret configured: generated one into this file (mode 0600). Back it up with \
             the database, or set LINEAGE_KEY_SECRET; without it the signing keys cannot be \
             decrypted"
        );
        Ok(KeySecret::new(secret))
    }
}

fn default_key_secret_path(url: &DatabaseUrl) -> PathBuf {
    match url {
        DatabaseUrl::Sqlite { path } => {
            let p = Path::new(path);
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            p.with_file_name(format!("{name}.key"))
        }
        DatabaseUrl::Postgres { .. } => PathBuf::from("lineage.key"),
    }
}

#[cfg(unix)]
fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, format!("{contents}\n"))
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                "the key secret file is readable by other users; chmod 600 it"
            );
        }
    }
}
