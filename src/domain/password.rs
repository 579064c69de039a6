use std::fmt;

/// A human password on its way to argon2id. Never printed.
#[derive(Clone)]
pub struct Password(String);

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 1024;

impl Password {
    /// A new password must be 8–1024 characters, none of them NUL (forms refuse NUL, so such a
    /// password could never be typed in at sign-in).
    pub fn new(raw: String) -> Result<Self, String> {
        if raw.contains('\0') {
            return Err("password must not contain a NUL character".into());
        }
        let n = raw.chars().count();
        if n < MIN_PASSWORD_CHARS {
            return Err(format!(
                "password is too short: at least {MIN_PASSWORD_CHARS} characters"
            ));
        }
        if n > MAX_PASSWORD_CHARS {
            return Err(format!(
                "password is too long: at most {MAX_PASSWORD_CHARS} characters"
            ));
        }
        Ok(Self(raw))
    }

    /// A password typed at sign-in: checked against a hash, not against the rules.
    pub fn attempt(raw: String) -> Self {
        Self(raw)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::Password;

    #[test]
    fn a_nul_is_refused_in_a_new_password() {
        assert!(Password::new("long enough\0password".into()).is_err());
        assert!(Password::new("long enough password".into()).is_ok());
    }
}
