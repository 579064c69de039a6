use std::fmt;

/// A registered redirect URI: absolute, no fragment (RFC 6749 §3.1.2), compared exactly.
/// Plain http is allowed only for loopback hosts (native apps, RFC 8252 §7.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUri(String);

impl RedirectUri {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let u = url::Url::parse(raw)
            .map_err(|e| format!("redirect URI `{raw}` is not an absolute URL: {e}"))?;
        if u.fragment().is_some() || raw.contains('#') {
            return Err(format!("redirect URI `{raw}` must not contain a fragment"));
        }
        if u.cannot_be_a_base() && u.scheme() != "urn" {
            return Err(format!("redirect URI `{raw}` is not a hierarchical URL"));
        }
        if u.scheme() == "http" && !is_loopback(&u) {
            return Err(format!(
                "redirect URI `{raw}` uses http on a non-loopback host; use https"
            ));
        }
        if matches!(u.scheme(), "javascript" | "data" | "file") {
            return Err(format!("redirect URI `{raw}` uses a forbidden scheme"));
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A client's `backchannel_logout_uri` (Back-Channel Logout 1.0 §2.2): an absolute URL without
/// a fragment that lineage POSTs logout tokens to, so https except for a loopback host (an app
/// on the same machine), like redirect URIs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutUri(String);

impl LogoutUri {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let u = url::Url::parse(raw)
            .map_err(|e| format!("back-channel logout URI `{raw}` is not an absolute URL: {e}"))?;
        if u.fragment().is_some() || raw.contains('#') {
            return Err(format!(
                "back-channel logout URI `{raw}` must not contain a fragment"
            ));
        }
        match u.scheme() {
            "https" if u.host().is_some() => Ok(Self(raw.to_string())),
            "http" if is_loopback(&u) => Ok(Self(raw.to_string())),
            "http" => Err(format!(
                "back-channel logout URI `{raw}` uses http on a non-loopback host; use https"
            )),
            _ => Err(format!(
                "back-channel logout URI `{raw}` must be an https URL"
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LogoutUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(RedirectUri::parse("https://app.example/cb").is_ok());
        assert!(RedirectUri::parse("http://127.0.0.1:8080/demo/callback").is_ok());
        assert!(RedirectUri::parse("com.example.app:/oauth2redirect").is_ok());
        assert!(RedirectUri::parse("/relative").is_err());
        assert!(RedirectUri::parse("https://app.example/cb#frag").is_err());
        assert!(RedirectUri::parse("http://app.example/cb").is_err());
    }

    #[test]
    fn logout_uris() {
        assert!(LogoutUri::parse("https://app.example/backchannel-logout").is_ok());
        assert!(LogoutUri::parse("http://127.0.0.1:9000/logout").is_ok());
        assert!(LogoutUri::parse("http://localhost/logout").is_ok());
        assert!(LogoutUri::parse("http://app.example/logout").is_err());
        assert!(LogoutUri::parse("https://app.example/logout#x").is_err());
        assert!(LogoutUri::parse("com.example.app:/logout").is_err());
        assert!(LogoutUri::parse("/logout").is_err());
    }
}
