//! Scope values (RFC 6749 §3.3): parsed once, where they enter, into a [`ScopeSet`]; written
//! back as the space-delimited string the wire and the database use.

use std::fmt;
use std::ops::Deref;

/// A set of scope tokens, in the order first given, each once (RFC 6749 §3.3: the order does
/// not matter, so repeating a token adds nothing).
///
/// Serialized as a JSON list, the form a pending authorization request is kept in.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(from = "Vec<String>")]
pub(crate) struct ScopeSet(Vec<String>);

/// A scope token outside RFC 6749 §3.3's character set.
#[derive(Debug)]
pub(crate) struct InvalidScopeToken;

impl ScopeSet {
    /// Parses a `scope` value from a request: space-delimited, case-sensitive tokens of
    /// `%x21 / %x23-5B / %x5D-7E`. Empty tokens (doubled spaces) are skipped.
    pub(crate) fn parse(value: &str) -> Result<Self, InvalidScopeToken> {
        let mut out = Self::default();
        for token in value.split(' ').filter(|t| !t.is_empty()) {
            if !token
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
            {
                return Err(InvalidScopeToken);
            }
            out.insert(token);
        }
        Ok(out)
    }

    /// Reads a value this server wrote (the database, its own configuration): it was checked
    /// when it entered, so it is split without checking again.
    pub(crate) fn from_stored(value: &str) -> Self {
        value.split(' ').filter(|t| !t.is_empty()).collect()
    }

    /// Adds `scope` unless present.
    pub(crate) fn insert(&mut self, scope: &str) {
        if !self.contains(scope) {
            self.0.push(scope.to_owned());
        }
    }

    /// Whether `scope` is in the set.
    pub(crate) fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s == scope)
    }

    /// The scopes, for host-facing types that carry them as a list.
    pub(crate) fn into_vec(self) -> Vec<String> {
        self.0
    }
}

impl From<Vec<String>> for ScopeSet {
    fn from(scopes: Vec<String>) -> Self {
        scopes.into_iter().collect()
    }
}

impl Deref for ScopeSet {
    type Target = [String];

    fn deref(&self) -> &[String] {
        &self.0
    }
}

impl<S: AsRef<str>> FromIterator<S> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut out = Self::default();
        for scope in iter {
            out.insert(scope.as_ref());
        }
        out
    }
}

/// The space-delimited form of RFC 6749 §3.3.
impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(scope)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_value_parses_to_its_tokens_once_each_in_order() {
        let set = ScopeSet::parse("openid  profile openid email").expect("valid");
        assert_eq!(&*set, ["openid", "profile", "email"]);
        assert_eq!(set.to_string(), "openid profile email");
        assert_eq!(ScopeSet::from_stored(&set.to_string()), set);
    }

    #[test]
    fn a_token_outside_the_rfc_charset_is_refused() {
        for bad in ["a\"b", "a\\b", "caf\u{e9}", "tab\there", "nul\0"] {
            assert!(ScopeSet::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ScopeSet::parse("").expect("empty").is_empty());
    }
}
