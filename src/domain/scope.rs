use std::collections::BTreeSet;
use std::fmt;

/// A set of scope tokens (RFC 6749 §3.3): space-delimited, each `1*( %x21 / %x23-5B / %x5D-7E )`.
/// Kept sorted and de-duplicated so equal sets compare and print equal.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope(BTreeSet<String>);

impl Scope {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut set = BTreeSet::new();
        for token in raw.split(' ').filter(|t| !t.is_empty()) {
            if !token
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
            {
                return Err(format!(
                    "`{token}` is not a valid scope token (RFC 6749 section 3.3)"
                ));
            }
            set.insert(token.to_string());
        }
        Ok(Self(set))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn is_subset_of(&self, other: &Scope) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn contains(&self, token: &str) -> bool {
        self.0.contains(token)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for t in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(t)?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sorts_and_dedups() {
        // `let … else` rather than a default: an empty scope is a subset of every scope, so a
        // parse failure must not be able to pass the subset checks below.
        let Ok(s) = Scope::parse("b a  b") else {
            panic!("\"b a  b\" is a valid scope");
        };
        assert_eq!(s.to_string(), "a b");
        assert!(Scope::parse("a\"b").is_err());
        assert!(Scope::parse("a\\b").is_err());
        assert_eq!(Scope::parse("a").map(|a| a.is_subset_of(&s)), Ok(true));
        assert_eq!(Scope::parse("a c").map(|a| a.is_subset_of(&s)), Ok(false));
    }
}
