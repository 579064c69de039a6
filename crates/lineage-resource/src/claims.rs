//! The claims of a lineage access token (RFC 9068 profile), as a resource server sees them.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::TokenError;

/// The scopes a token grants (the `scope` claim, space-separated on the wire).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Scopes(Vec<String>);

impl Scopes {
    /// Split an RFC 6749 §3.3 scope string.
    pub fn parse(scope: &str) -> Self {
        Self(scope.split_ascii_whitespace().map(str::to_owned).collect())
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s == scope)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

/// A validated lineage access token.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccessClaims {
    pub iss: String,
    /// The user id, or the client id for `client_credentials` tokens.
    pub sub: String,
    /// Audiences; lineage issues one.
    pub aud: Vec<String>,
    pub client_id: String,
    pub scopes: Scopes,
    /// The refresh family (device login) the token was issued from, if any.
    pub sid: Option<String>,
    pub jti: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: Option<i64>,
    /// The DPoP key the token is bound to (RFC 9449 §6.1), if any: such a token is accepted only
    /// with the DPoP scheme and a proof signed by that key.
    pub cnf: Option<Confirmation>,
    /// Every other claim, e.g. `preferred_username`, read fresh from the user at each refresh.
    pub extra: Map<String, Value>,
}

/// `cnf` (RFC 7800): the key a token is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Confirmation {
    /// The RFC 7638 SHA-256 thumbprint of the client's DPoP public key, base64url.
    pub jkt: String,
}

impl AccessClaims {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }

    /// The thumbprint of the DPoP key the token is bound to (`cnf.jkt`), if it is bound.
    pub fn dpop_jkt(&self) -> Option<&str> {
        self.cnf.as_ref().map(|c| c.jkt.as_str())
    }

    /// A string claim from `extra`, e.g. `claims.extra_str("preferred_username")`.
    pub fn extra_str(&self, name: &str) -> Option<&str> {
        self.extra.get(name).and_then(Value::as_str)
    }
}

/// The payload as sent: every registered claim optional, so a missing one gets its own error.
#[derive(Debug, Default)]
pub(crate) struct RawClaims {
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub aud: Option<Vec<String>>,
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
    pub iat: Option<i64>,
    pub jti: Option<String>,
    pub client_id: Option<String>,
    pub scope: Option<String>,
    pub sid: Option<String>,
    pub cnf: Option<Map<String, Value>>,
    pub extra: Map<String, Value>,
}

impl RawClaims {
    pub fn parse(json: &[u8]) -> Result<Self, TokenError> {
        serde_json::from_slice(json).map_err(|_| TokenError::MalformedClaims)
    }

    /// The claims lineage always sets; their absence means the token is not ours.
    pub fn into_claims(self) -> Result<AccessClaims, TokenError> {
        use TokenError::MissingClaim;
        Ok(AccessClaims {
            iss: self.iss.ok_or(MissingClaim("iss"))?,
            sub: self.sub.ok_or(MissingClaim("sub"))?,
            aud: self.aud.ok_or(MissingClaim("aud"))?,
            exp: self.exp.ok_or(MissingClaim("exp"))?,
            iat: self.iat.ok_or(MissingClaim("iat"))?,
            jti: self.jti.ok_or(MissingClaim("jti"))?,
            client_id: self.client_id.ok_or(MissingClaim("client_id"))?,
            scopes: Scopes::parse(&self.scope.ok_or(MissingClaim("scope"))?),
            sid: self.sid,
            nbf: self.nbf,
            cnf: self.cnf.map(confirmation).transpose()?,
            extra: self.extra,
        })
    }
}

/// `cnf` must hold exactly a `jkt`: a binding this crate cannot check (an mTLS `x5t#S256`, a
/// `jwk`…) must not be ignored, or the token would work for anyone holding it.
fn confirmation(mut cnf: Map<String, Value>) -> Result<Confirmation, TokenError> {
    match cnf.remove("jkt") {
        Some(Value::String(jkt)) if cnf.is_empty() && !jkt.is_empty() => Ok(Confirmation { jkt }),
        _ => Err(TokenError::UnsupportedConfirmation),
    }
}

// A hand-written map visitor instead of `#[serde(flatten)]`: flatten buffers the whole payload
// into an intermediate tree first, which shows up next to a 60 µs signature check. It also
// rejects a registered claim that appears twice (RFC 7519 §4 lets us choose; ambiguity is unsafe).
impl<'de> Deserialize<'de> for RawClaims {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RawClaimsVisitor)
    }
}

struct RawClaimsVisitor;

fn set<T, E: de::Error>(
    slot: &mut Option<T>,
    value: Option<T>,
    name: &'static str,
) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::custom(format_args!("duplicate claim `{name}`")));
    }
    *slot = value;
    Ok(())
}

impl<'de> Visitor<'de> for RawClaimsVisitor {
    type Value = RawClaims;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JWT claims object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawClaims, A::Error> {
        let mut c = RawClaims::default();
        while let Some(key) = map.next_key::<ClaimName>()? {
            match key {
                ClaimName::Iss => set(&mut c.iss, map.next_value()?, "iss")?,
                ClaimName::Sub => set(&mut c.sub, map.next_value()?, "sub")?,
                ClaimName::Aud => set(
                    &mut c.aud,
                    map.next_value::<Option<Audience>>()?.map(|a| a.0),
                    "aud",
                )?,
                ClaimName::Exp => set(
                    &mut c.exp,
                    map.next_value::<Option<NumericDate>>()?.map(|n| n.0),
                    "exp",
                )?,
                ClaimName::Nbf => set(
                    &mut c.nbf,
                    map.next_value::<Option<NumericDate>>()?.map(|n| n.0),
                    "nbf",
                )?,
                ClaimName::Iat => set(
                    &mut c.iat,
                    map.next_value::<Option<NumericDate>>()?.map(|n| n.0),
                    "iat",
                )?,
                ClaimName::Jti => set(&mut c.jti, map.next_value()?, "jti")?,
                ClaimName::ClientId => set(&mut c.client_id, map.next_value()?, "client_id")?,
                ClaimName::Scope => set(&mut c.scope, map.next_value()?, "scope")?,
                ClaimName::Sid => set(&mut c.sid, map.next_value()?, "sid")?,
                ClaimName::Cnf => set(&mut c.cnf, map.next_value()?, "cnf")?,
                ClaimName::Other(name) => {
                    let value: Value = map.next_value()?;
                    c.extra.insert(name, value);
                }
            }
        }
        Ok(c)
    }
}

enum ClaimName {
    Iss,
    Sub,
    Aud,
    Exp,
    Nbf,
    Iat,
    Jti,
    ClientId,
    Scope,
    Sid,
    Cnf,
    Other(String),
}

impl<'de> Deserialize<'de> for ClaimName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ClaimName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a claim name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ClaimName, E> {
                Ok(match v {
                    "iss" => ClaimName::Iss,
                    "sub" => ClaimName::Sub,
                    "aud" => ClaimName::Aud,
                    "exp" => ClaimName::Exp,
                    "nbf" => ClaimName::Nbf,
                    "iat" => ClaimName::Iat,
                    "jti" => ClaimName::Jti,
                    "client_id" => ClaimName::ClientId,
                    "scope" => ClaimName::Scope,
                    "sid" => ClaimName::Sid,
                    "cnf" => ClaimName::Cnf,
                    other => ClaimName::Other(other.to_owned()),
                })
            }
        }
        d.deserialize_str(V)
    }
}

/// RFC 7519 `aud`: one string or an array of strings.
struct Audience(Vec<String>);

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Audience;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Audience, E> {
                Ok(Audience(vec![v.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Audience, A::Error> {
                let mut all = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(8));
                while let Some(a) = seq.next_element::<String>()? {
                    all.push(a);
                }
                Ok(Audience(all))
            }
        }
        d.deserialize_any(V)
    }
}

/// RFC 7519 NumericDate: seconds, possibly fractional; fractions are dropped.
struct NumericDate(i64);

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NumericDate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a NumericDate")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumericDate, E> {
                Ok(NumericDate(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumericDate, E> {
                i64::try_from(v)
                    .map(NumericDate)
                    .map_err(|_| E::custom("NumericDate out of range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumericDate, E> {
                if v.is_finite() && v.abs() < 9.0e15 {
                    #[allow(clippy::cast_possible_truncation)]
                    Ok(NumericDate(v.floor() as i64))
                } else {
                    Err(E::custom("NumericDate out of range"))
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn parses_lineage_claims() {
        let raw = br#"{"iss":"http://as","sub":"u1","aud":"notes","exp":20,"iat":10,"nbf":10,
            "jti":"j","client_id":"c","scope":"notes:read  notes:write","sid":"f1",
            "preferred_username":"alice"}"#;
        let c = RawClaims::parse(raw).unwrap().into_claims().unwrap();
        assert_eq!(c.aud, vec!["notes"]);
        assert!(c.has_scope("notes:write"));
        assert!(!c.has_scope("notes"));
        assert_eq!(c.scopes.to_string(), "notes:read notes:write");
        assert_eq!(c.sid.as_deref(), Some("f1"));
        assert_eq!(c.extra_str("preferred_username"), Some("alice"));
        assert_eq!(c.nbf, Some(10));
    }

    #[test]
    fn audience_array_fractional_dates_and_null_sid() {
        let raw = br#"{"iss":"i","sub":"s","aud":["a","b"],"exp":20.9,"iat":10,"jti":"j",
            "client_id":"c","scope":"","sid":null}"#;
        let c = RawClaims::parse(raw).unwrap().into_claims().unwrap();
        assert_eq!(c.aud, vec!["a", "b"]);
        assert_eq!(c.exp, 20);
        assert_eq!(c.sid, None);
        assert!(c.scopes.is_empty());
    }

    #[test]
    fn missing_duplicate_and_mistyped_claims_are_rejected() {
        let missing =
            br#"{"iss":"i","sub":"s","aud":"a","exp":20,"iat":10,"client_id":"c","scope":""}"#;
        assert_eq!(
            RawClaims::parse(missing).unwrap().into_claims().err(),
            Some(TokenError::MissingClaim("jti"))
        );
        let dup = br#"{"sub":"a","sub":"b"}"#;
        assert_eq!(
            RawClaims::parse(dup).err(),
            Some(TokenError::MalformedClaims)
        );
        let mistyped = br#"{"exp":"tomorrow"}"#;
        assert_eq!(
            RawClaims::parse(mistyped).err(),
            Some(TokenError::MalformedClaims)
        );
        assert_eq!(
            RawClaims::parse(b"[1]").err(),
            Some(TokenError::MalformedClaims)
        );
    }

    #[test]
    fn cnf_holds_exactly_a_jkt() {
        let base = r#""iss":"i","sub":"s","aud":"a","exp":20,"iat":10,"jti":"j","client_id":"c","scope":"""#;
        let parse = |cnf: &str| {
            RawClaims::parse(format!("{{{base}{cnf}}}").as_bytes()).and_then(RawClaims::into_claims)
        };
        let bound =
            parse(r#","cnf":{"jkt":"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}"#).unwrap();
        assert_eq!(
            bound.dpop_jkt(),
            Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
        );
        assert!(!bound.extra.contains_key("cnf"));
        assert_eq!(parse("").unwrap().dpop_jkt(), None);
        assert_eq!(parse(r#","cnf":null"#).unwrap().cnf, None);
        for other in [r#"{}"#, r#"{"jkt":1}"#, r#"{"jkt":"k","jwk":{}}"#] {
            assert_eq!(
                parse(&format!(r#","cnf":{other}"#)).err(),
                Some(TokenError::UnsupportedConfirmation),
                "{other}"
            );
        }
        assert_eq!(
            parse(r#","cnf":"k""#).err(),
            Some(TokenError::MalformedClaims)
        );
        assert_eq!(
            parse(r#","cnf":{"jkt":"a"},"cnf":{"jkt":"b"}"#).err(),
            Some(TokenError::MalformedClaims)
        );
    }
}
