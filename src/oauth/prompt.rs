//! The `prompt` parameter of `/authorize` (OpenID Connect Core §3.1.2.1): a space-separated list
//! of `none`, `login`, `consent` and `select_account`.

/// What the client asked the server to show (or not to show) the user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    /// Never show a page: answer `login_required` (no sign-in, or one too old for `max_age`, or
    /// not the user `id_token_hint` names), `consent_required` (the consent page) or
    /// `interaction_required` (any other page: a public client's confirmation) instead (OIDC Core
    /// §3.1.2.6).
    pub none: bool,
    /// Ask for the password again even when the browser is signed in. `select_account` asks
    /// for the same: the sign-in page is where a user chooses which account to use.
    pub login: bool,
    /// Show the consent page even when consent is remembered or the client is first-party.
    pub consent: bool,
}

impl Prompt {
    /// `None` or an empty value is no prompt at all.
    pub fn parse(raw: Option<&str>) -> Result<Self, String> {
        let mut prompt = Prompt::default();
        for value in raw.unwrap_or("").split(' ').filter(|v| !v.is_empty()) {
            match value {
                "none" => prompt.none = true,
                "login" | "select_account" => prompt.login = true,
                "consent" => prompt.consent = true,
                other => return Err(format!("prompt value `{other}` is not supported")),
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return Err("prompt=none cannot be combined with other values".into());
        }
        Ok(prompt)
    }

    /// The `prompt` parameter without `login` and `select_account`, for the request the sign-in
    /// page returns to (`None` when nothing is left).
    pub fn after_sign_in(&self) -> Option<&'static str> {
        self.consent.then_some("consent")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_space_separated_list() {
        assert_eq!(Prompt::parse(None), Ok(Prompt::default()));
        assert_eq!(Prompt::parse(Some("")), Ok(Prompt::default()));
        let both = Prompt::parse(Some("login consent")).unwrap_or_default();
        assert!(both.login && both.consent && !both.none);
        assert!(
            Prompt::parse(Some("select_account"))
                .unwrap_or_default()
                .login
        );
        assert!(Prompt::parse(Some("none")).unwrap_or_default().none);
        assert!(Prompt::parse(Some("none login")).is_err());
        assert!(Prompt::parse(Some("consent none")).is_err());
        assert!(Prompt::parse(Some("always")).is_err());
    }

    #[test]
    fn login_is_dropped_after_sign_in() {
        let p = Prompt::parse(Some("login consent")).unwrap_or_default();
        assert_eq!(p.after_sign_in(), Some("consent"));
        let p = Prompt::parse(Some("login")).unwrap_or_default();
        assert_eq!(p.after_sign_in(), None);
    }
}
