//! A user's profile and the one place its OpenID Connect claims are built: access tokens
//! (`tokens::jwt::user_claims`), `/userinfo` and ID tokens all take their user claims from
//! [`Profile::claims`], so a claim reads the same wherever an app meets it.

use serde_json::{Map, Value};

use crate::db::models::users::UserRow;
use crate::domain::{DisplayName, Email, Scope};

/// The scope that asks for `name`, `preferred_username` and `updated_at` (OIDC Core §5.4).
pub const PROFILE_SCOPE: &str = "profile";
/// The scope that asks for `email` and `email_verified` (OIDC Core §5.4).
pub const EMAIL_SCOPE: &str = "email";

/// What lineage knows about a user that apps may be told, read from the user row at the moment
/// a token or a userinfo answer is made, so a change shows at the next refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The user id: `sub` wherever this user is the subject.
    pub subject: String,
    pub username: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
    /// When the user row last changed (unix seconds): OIDC's `updated_at`.
    pub updated_at: i64,
}

impl From<&UserRow> for Profile {
    fn from(user: &UserRow) -> Self {
        Self {
            subject: user.id.clone(),
            username: user.username.clone(),
            display_name: user.display_name.clone(),
            email: user.email.clone(),
            email_verified: user.email_verified,
            updated_at: user.updated_at,
        }
    }
}

impl Profile {
    /// The standard claims (OIDC Core §5.1) the granted `scope` asks for (§5.4): `profile` gives
    /// `name`, `preferred_username` and `updated_at`; `email` gives `email` and
    /// `email_verified`. A claim without a value is left out rather than sent as null (§5.3.2),
    /// and so is `email_verified` without an email.
    pub fn claims(&self, scope: &Scope) -> Map<String, Value> {
        let mut claims = Map::new();
        if scope.contains(PROFILE_SCOPE) {
            if let Some(name) = &self.display_name {
                claims.insert("name".into(), name.clone().into());
            }
            claims.insert("preferred_username".into(), self.username.clone().into());
            claims.insert("updated_at".into(), self.updated_at.into());
        }
        if scope.contains(EMAIL_SCOPE)
            && let Some(email) = &self.email
        {
            claims.insert("email".into(), email.clone().into());
            claims.insert("email_verified".into(), self.email_verified.into());
        }
        claims
    }
}

/// A change to a profile, field by field: `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileChange {
    pub display_name: Option<Option<DisplayName>>,
    pub email: Option<Option<Email>>,
    pub email_verified: Option<bool>,
}

/// A profile's stored columns after a [`ProfileChange`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileColumns {
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
}

impl ProfileChange {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// The columns of `user` with this change made. A new (or no) email address is unverified
    /// unless the change says otherwise: a verification belongs to an address. An address that
    /// is not there cannot be verified.
    pub fn apply(&self, user: &UserRow) -> Result<ProfileColumns, String> {
        let display_name = match &self.display_name {
            Some(name) => name.as_ref().map(|n| n.as_str().to_string()),
            None => user.display_name.clone(),
        };
        let email = match &self.email {
            Some(email) => email.as_ref().map(|e| e.as_str().to_string()),
            None => user.email.clone(),
        };
        let same_email = email == user.email;
        let email_verified = match self.email_verified {
            Some(verified) => verified,
            None => same_email && user.email_verified,
        };
        if email_verified && email.is_none() {
            return Err("there is no email address to mark as verified".into());
        }
        Ok(ProfileColumns {
            display_name,
            email,
            email_verified,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{Profile, ProfileChange};
    use crate::db::models::users::UserRow;
    use crate::domain::{DisplayName, Email, Scope};

    fn alice() -> Profile {
        Profile {
            subject: "u1".into(),
            username: "alice".into(),
            display_name: Some("Alice Liddell".into()),
            email: Some("alice@example.com".into()),
            email_verified: true,
            updated_at: 1_795_000_000,
        }
    }

    fn claims(profile: &Profile, scope: &str) -> serde_json::Value {
        let scope = Scope::parse(scope).unwrap_or_default();
        serde_json::Value::Object(profile.claims(&scope))
    }

    #[test]
    fn claims_follow_the_scope() {
        let p = alice();
        assert_eq!(claims(&p, "openid notes:read"), json!({}));
        assert_eq!(
            claims(&p, "openid profile"),
            json!({
                "name": "Alice Liddell",
                "preferred_username": "alice",
                "updated_at": 1_795_000_000,
            })
        );
        assert_eq!(
            claims(&p, "email"),
            json!({"email": "alice@example.com", "email_verified": true})
        );
    }

    #[test]
    fn claims_without_a_value_are_left_out() {
        let p = Profile {
            display_name: None,
            email: None,
            ..alice()
        };
        assert_eq!(
            claims(&p, "openid profile email"),
            json!({"preferred_username": "alice", "updated_at": 1_795_000_000})
        );
    }

    fn row() -> UserRow {
        UserRow {
            id: "u1".into(),
            username: "alice".into(),
            password_hash: String::new(),
            security_version: 1,
            disabled: false,
            not_before: None,
            created_at: 0,
            updated_at: 0,
            display_name: Some("Alice".into()),
            email: Some("alice@example.com".into()),
            email_verified: true,
        }
    }

    #[test]
    fn a_new_email_address_is_unverified_unless_said() {
        let Ok(other) = Email::parse("alice@example.org") else {
            panic!("a valid address");
        };
        let change = ProfileChange {
            email: Some(Some(other.clone())),
            ..Default::default()
        };
        let columns = change.apply(&row()).map(|c| (c.email, c.email_verified));
        assert_eq!(columns, Ok((Some("alice@example.org".into()), false)));
        let verified = ProfileChange {
            email_verified: Some(true),
            ..change
        };
        assert_eq!(verified.apply(&row()).map(|c| c.email_verified), Ok(true));
        // The display name alone leaves the address and its verification as they are.
        let renamed = ProfileChange {
            display_name: Some(DisplayName::parse("Alice L.").ok()),
            ..Default::default()
        };
        let columns = renamed
            .apply(&row())
            .map(|c| (c.display_name, c.email_verified));
        assert_eq!(columns, Ok((Some("Alice L.".into()), true)));
    }

    #[test]
    fn no_address_cannot_be_verified() {
        let cleared = ProfileChange {
            email: Some(None),
            ..Default::default()
        };
        assert_eq!(cleared.apply(&row()).map(|c| c.email_verified), Ok(false));
        let contradiction = ProfileChange {
            email_verified: Some(true),
            ..cleared
        };
        assert!(contradiction.apply(&row()).is_err());
    }
}
