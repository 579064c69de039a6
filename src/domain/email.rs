use std::fmt;

/// A plausible email address: one `@` between a non-empty local part (at most 64 characters) and
/// a domain of dot-separated non-empty labels, no whitespace or control characters, at most 254
/// characters in all (RFC 5321 §4.5.3.1). Whether it reaches anyone is another matter: that is
/// what `email_verified` records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

pub const MAX_EMAIL_CHARS: usize = 254;

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let invalid = || format!("`{raw}` is not a valid email address");
        if raw.is_empty() || raw.chars().count() > MAX_EMAIL_CHARS {
            return Err(invalid());
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let Some((local, domain)) = raw.split_once('@') else {
            return Err(invalid());
        };
        let local_ok = (1..=64).contains(&local.chars().count());
        let domain_ok = !domain.contains('@') && domain.split('.').all(|label| !label.is_empty());
        if !local_ok || !domain_ok {
            return Err(invalid());
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Email;

    #[test]
    fn plausible_addresses_only() {
        for good in [
            "alice@example.com",
            "a.b+tag@sub.example.org",
            "x@localhost",
            "ü@bücher.de",
        ] {
            assert!(Email::parse(good).is_ok(), "{good:?}");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        let too_long = format!("a@{}.com", "b".repeat(250));
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "a@b@c",
            "a b@example.com",
            "a@exa mple.com",
            "a\n@example.com",
            "a@example..com",
            "a@.example.com",
            "a@example.com.",
            long_local.as_str(),
            too_long.as_str(),
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }
}
