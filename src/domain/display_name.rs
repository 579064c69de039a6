use std::fmt;

/// The name a user shows to people and apps (the OIDC `name` claim): 1 to 100 characters once
/// trimmed, with no control characters and no bidirectional overrides (which can make a name
/// read as something else on a consent page or in an app).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

pub const MAX_DISPLAY_NAME_CHARS: usize = 100;

/// U+202A–U+202E and U+2066–U+2069: the Unicode bidirectional embeddings, overrides and isolates.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim();
        if name.is_empty() {
            return Err("the display name is empty".into());
        }
        if name.chars().count() > MAX_DISPLAY_NAME_CHARS {
            return Err(format!(
                "the display name is too long: at most {MAX_DISPLAY_NAME_CHARS} characters"
            ));
        }
        if name.chars().any(|c| c.is_control() || is_bidi_control(c)) {
            return Err("the display name must not contain control characters".into());
        }
        Ok(Self(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::DisplayName;

    #[test]
    fn trimmed_bounded_and_printable() {
        assert_eq!(
            DisplayName::parse("  Alice Liddell ").map(|n| n.to_string()),
            Ok("Alice Liddell".to_string())
        );
        assert!(DisplayName::parse("Ærøskøbing 李").is_ok());
        assert!(DisplayName::parse(&"é".repeat(100)).is_ok());
        for bad in ["", "   ", "a\nb", "a\tb", "a\u{7f}", "evil\u{202e}txt.exe"] {
            assert!(DisplayName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(DisplayName::parse(&"é".repeat(101)).is_err());
    }
}
