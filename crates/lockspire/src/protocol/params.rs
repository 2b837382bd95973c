//! Request parameters as RFC 6749 §3.1 and §3.2 define them: parameters without a value are
//! treated as omitted, and a parameter may appear at most once (except `resource`, RFC 8707 §2).

use std::collections::HashSet;

use crate::protocol::error::OAuthError;

/// Largest accepted value of a single parameter; bounds storage and work per request.
pub(crate) const MAX_PARAM_LEN: usize = 8 * 1024;

/// Most parameters one request may carry. The richest request defined here (an OpenID Connect
/// authorization request with every optional parameter and several `resource` values) needs
/// a few dozen; the cap bounds the work of decoding and checking a request by its parameter
/// count as well as by its size.
pub const MAX_PARAMS: usize = 64;

/// The parameters this server reads, the only names an error description may repeat.
const KNOWN: &[&str] = &[
    "access_token",
    "acr_values",
    "claims",
    "claims_locales",
    "client_assertion",
    "client_assertion_type",
    "client_id",
    "client_secret",
    "code",
    "code_challenge",
    "code_challenge_method",
    "code_verifier",
    "csrf",
    "decision",
    "grant_type",
    "id_token_hint",
    "interaction",
    "login_hint",
    "max_age",
    "nonce",
    "prompt",
    "redirect_uri",
    "refresh_token",
    "registration",
    "request",
    "request_uri",
    "resource",
    "response_mode",
    "response_type",
    "scope",
    "state",
    "token",
    "token_type_hint",
    "ui_locales",
];

/// Decoded `application/x-www-form-urlencoded` parameters, in order. Its `Debug` shows the
/// names only: values include client secrets, codes and tokens.
#[derive(Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Params")
            .field(&self.0.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
            .finish()
    }
}

impl Params {
    /// Decodes a query string or form body; `invalid_request` past 64 parameters
    /// (empty ones included), without decoding the rest.
    pub fn parse(raw: &[u8]) -> Result<Self, OAuthError> {
        let mut pairs = Vec::new();
        for (count, (k, v)) in form_urlencoded::parse(raw).enumerate() {
            if count == MAX_PARAMS {
                return Err(OAuthError::invalid_request(
                    "the request has too many parameters",
                ));
            }
            if !v.is_empty() {
                pairs.push((k.into_owned(), v.into_owned()));
            }
        }
        Ok(Self(pairs))
    }

    /// The decoded pairs, in order.
    pub(crate) fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// Parameters this server kept itself (a pushed request's): already decoded and capped.
    pub(crate) fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }

    /// `invalid_request` when a parameter other than those allowed to repeat appears twice
    /// (RFC 6749 §3.1, §3.2); one pass. The description names the parameter only if it is one
    /// this server defines: a request's own text is never echoed.
    pub(crate) fn refuse_repeats(&self, may_repeat: &[&str]) -> Result<(), OAuthError> {
        let names = || {
            self.0
                .iter()
                .map(|(k, _)| k.as_str())
                .filter(|k| !may_repeat.contains(k))
        };
        // A typical request has a handful of parameters: comparing them pairwise costs less
        // than building a set. Past that, a set keeps the check linear.
        let repeated = if self.0.len() <= 16 {
            names()
                .enumerate()
                .find(|(i, k)| names().skip(i + 1).any(|later| later == *k))
                .map(|(_, k)| k)
        } else {
            let mut seen = HashSet::with_capacity(self.0.len());
            names().find(|k| !seen.insert(*k))
        };
        let Some(name) = repeated else {
            return Ok(());
        };
        let description = match KNOWN.iter().find(|known| **known == name) {
            Some(known) => format!("parameter {known} is repeated"),
            None => "a parameter is repeated".to_owned(),
        };
        Err(OAuthError::invalid_request(description)
            .with_reason(format!("repeated parameter {name:?}")))
    }

    /// The single value of `name`: absent, or `invalid_request` when repeated or oversized.
    pub(crate) fn get(&self, name: &str) -> Result<Option<&str>, OAuthError> {
        let mut values = self
            .0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(OAuthError::invalid_request(format!(
                "parameter {name} is repeated"
            )));
        }
        match first {
            Some(v) if v.len() > MAX_PARAM_LEN => Err(OAuthError::invalid_request(format!(
                "parameter {name} is too long"
            ))),
            other => Ok(other),
        }
    }

    /// The value of `name`, or `invalid_request` when it is missing.
    pub(crate) fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)?
            .ok_or_else(|| OAuthError::invalid_request(format!("parameter {name} is required")))
    }

    /// The parameters as a query string (`application/x-www-form-urlencoded`), in their order:
    /// to send a posted request on as a `GET`.
    pub(crate) fn to_query(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.0)
            .finish()
    }

    /// Every value of `name` (for parameters that may repeat).
    pub(crate) fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Where an authorization request's parameters come from: the query or form of `/authorize`
/// (RFC 6749 §4.1.1), and, as they are added, a pushed request (RFC 9126) or the claims of a
/// verified request object (RFC 9101 §4). Authorization validation reads only through this, so
/// every source gets the same rules in the same order.
pub(crate) trait ParameterSource: Sync {
    /// The single value of `name`: absent, or `invalid_request` when repeated or oversized.
    fn get(&self, name: &str) -> Result<Option<&str>, OAuthError>;
    /// Every value of `name`, for the parameters that may repeat.
    fn all(&self, name: &str) -> Vec<&str>;
    /// `invalid_request` when a parameter other than `may_repeat` appears more than once.
    fn refuse_repeats(&self, may_repeat: &[&str]) -> Result<(), OAuthError>;
}

impl ParameterSource for Params {
    fn get(&self, name: &str) -> Result<Option<&str>, OAuthError> {
        Params::get(self, name)
    }

    fn all(&self, name: &str) -> Vec<&str> {
        Params::all(self, name).collect()
    }

    fn refuse_repeats(&self, may_repeat: &[&str]) -> Result<(), OAuthError> {
        Params::refuse_repeats(self, may_repeat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_parameter_names_but_never_values() {
        let Ok(p) = Params::parse(b"client_id=c&client_secret=s3cr3t&code=the-code") else {
            panic!("parses")
        };
        let printed = format!("{p:?}");
        assert!(printed.contains("client_secret"), "{printed}");
        assert!(
            !printed.contains("s3cr3t") && !printed.contains("the-code"),
            "{printed}"
        );
    }

    #[test]
    fn empty_values_are_omitted_and_repeats_refused() {
        let Ok(p) = Params::parse(b"a=1&b=&c=2&c=3&resource=x&resource=y") else {
            panic!("parses")
        };
        assert_eq!(p.get("a").ok().flatten(), Some("1"));
        assert_eq!(p.get("b").ok().flatten(), None);
        assert!(p.get("c").is_err());
        assert!(p.refuse_repeats(&["resource"]).is_err());
        assert!(p.refuse_repeats(&["resource", "c"]).is_ok());
        assert_eq!(p.all("resource").count(), 2);
    }

    #[test]
    fn more_parameters_than_the_cap_are_refused_empty_ones_included() {
        let at_cap = vec!["a=1"; MAX_PARAMS].join("&");
        assert!(Params::parse(at_cap.as_bytes()).is_ok());
        let over = vec!["a="; MAX_PARAMS + 1].join("&");
        assert!(Params::parse(over.as_bytes()).is_err());
    }
}
