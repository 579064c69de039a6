//! The askama templates and the data each one shows.

use askama::Template;

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub status: u16,
    pub title: &'a str,
    pub message: &'a str,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub csrf_token: String,
    pub return_to: String,
    pub username: String,
    pub error: Option<String>,
    pub app_name: Option<String>,
}

pub struct ScopeLine {
    pub name: String,
    pub title: String,
}

#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage {
    pub username: String,
    pub client_name: String,
    pub scopes: Vec<ScopeLine>,
    pub csrf_token: String,
    pub request_handle: String,
    pub device_name: String,
    pub redirect_host: String,
}

/// The one-click confirmation for a public client the user already allowed.
#[derive(Template)]
#[template(path = "confirm.html")]
pub struct ConfirmPage {
    pub username: String,
    pub client_name: String,
    pub scopes: Vec<ScopeLine>,
    pub csrf_token: String,
    pub request_handle: String,
    pub redirect_host: String,
}

/// RP-initiated logout: "Sign out of lineage?" (OpenID Connect RP-Initiated Logout 1.0 §2).
#[derive(Template)]
#[template(path = "end_session.html")]
pub struct EndSessionPage {
    pub username: String,
    /// The app that sent the browser here, when the request names it.
    pub app_name: Option<String>,
    /// The app's `id_token_hint` names another account than the signed-in one.
    pub other_account: bool,
    /// The app's sign-in on this device can be ended too.
    pub can_end_app: bool,
    pub csrf_token: String,
    pub request_handle: String,
    /// Where the browser goes afterwards, when it goes back to the app.
    pub return_host: Option<String>,
}

/// After RP-initiated logout without a registered address to return to.
#[derive(Template)]
#[template(path = "signed_out.html")]
pub struct SignedOutPage {
    pub app_name: Option<String>,
}

/// An app the user allowed, on the account page.
pub struct AppLine {
    pub client_id: String,
    pub name: String,
    pub scopes: Vec<ScopeLine>,
    pub allowed: String,
    /// The names of its live devices for this user.
    pub devices: Vec<String>,
}

pub struct FamilyLine {
    pub id: String,
    pub client_name: String,
    pub device_name: String,
    pub user_agent: String,
    pub created: String,
    pub last_used: String,
    pub ip: String,
    pub expires: String,
}

pub struct EventLine {
    pub at: String,
    pub text: String,
    pub alarming: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    pub username: String,
    pub csrf_token: String,
    /// The display name in the profile form: the stored one, or what was just typed when it
    /// was refused.
    pub display_name: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub apps: Vec<AppLine>,
    pub families: Vec<FamilyLine>,
    pub events: Vec<EventLine>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

/// A scope in words for the consent page: `notes:read` → "Read your notes".
pub fn describe_scope(scope: &str) -> String {
    let (resource, action) = match scope.split_once(':') {
        Some((r, a)) => (r.replace(['_', '-'], " "), a),
        None => {
            return match scope {
                "openid" => "Confirm who you are".into(),
                "profile" => "See your name and username".into(),
                "email" => "See your email address".into(),
                "offline_access" => "Stay signed in when you are not using it".into(),
                other => format!("Use “{other}” on your behalf"),
            };
        }
    };
    match action {
        "read" => format!("Read your {resource}"),
        "write" => format!("Create and change your {resource}"),
        "delete" => format!("Delete your {resource}"),
        "admin" => format!("Administer your {resource}"),
        other => format!("{} your {resource}", capitalise(other)),
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A friendly default device name from a user agent: "Firefox on Linux".
pub fn device_name_from_user_agent(ua: Option<&str>) -> String {
    let Some(ua) = ua else {
        return "Unnamed device".into();
    };
    let browser = if ua.contains("Edg/") {
        "Edge"
    } else if ua.contains("Firefox/") {
        "Firefox"
    } else if ua.contains("Chrome/") || ua.contains("Chromium/") {
        "Chrome"
    } else if ua.contains("Safari/") {
        "Safari"
    } else if ua.starts_with("curl/") {
        "curl"
    } else {
        "Browser"
    };
    let os = if ua.contains("Android") {
        "Android"
    } else if ua.contains("iPhone") || ua.contains("iPad") {
        "iOS"
    } else if ua.contains("Windows") {
        "Windows"
    } else if ua.contains("Mac OS X") || ua.contains("Macintosh") {
        "macOS"
    } else if ua.contains("Linux") || ua.contains("X11") {
        "Linux"
    } else {
        ""
    };
    if os.is_empty() {
        browser.to_string()
    } else {
        format!("{browser} on {os}")
    }
}

pub struct DemoTokens {
    pub header: String,
    pub claims: String,
    /// The ID token decoded (OIDC Core §2), when `openid` was granted.
    pub id_token: Option<DemoJwt>,
    /// The session (`sid`, the refresh family) these tokens belong to.
    pub sid: String,
    /// `DPoP` for tokens bound to the app's key (RFC 9449 §5), `Bearer` otherwise.
    pub token_type: String,
    /// The access token's `cnf.jkt`: the thumbprint of the key it is bound to.
    pub cnf_jkt: Option<String>,
    pub expires_in: i64,
    pub refresh_token: String,
    pub previous_refresh_token: Option<String>,
    pub generation: u32,
}

/// A JWT as the demo shows it: header and claims, pretty-printed.
pub struct DemoJwt {
    pub header: String,
    pub claims: String,
}

/// A back-channel logout the demo app received.
pub struct DemoLogout {
    pub sid: String,
    pub reason: String,
    pub alg: String,
    /// The session the page is showing tokens of.
    pub current: bool,
}

pub struct DemoOutcome {
    pub what: String,
    pub answer: String,
    pub ok: bool,
}

#[derive(Template)]
#[template(path = "demo.html")]
pub struct DemoPage {
    pub heading: String,
    pub lead: String,
    pub demo_user: String,
    pub csrf_token: String,
    pub tokens: Option<DemoTokens>,
    /// The thumbprint (`jkt`) of the app's DPoP key in this browser session.
    pub device_jkt: Option<String>,
    pub outcomes: Vec<DemoOutcome>,
    /// Security events a demonstration caused, as the account page lists them.
    pub events: Vec<EventLine>,
    /// Logout tokens the demo app received, newest first.
    pub logouts: Vec<DemoLogout>,
    /// Why the demo app has no back-channel logout URI, when it has none.
    pub backchannel_note: Option<String>,
    pub notice: Option<String>,
    pub error: Option<String>,
}
