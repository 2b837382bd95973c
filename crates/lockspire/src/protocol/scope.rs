//! Scopes (RFC 6749 §3.3) and the OIDC standard claims each one releases (OIDC Core §5.4).

use serde_json::{Map, Value};

use crate::model::scope::ScopeSet;
use crate::protocol::error::{ErrorCode, OAuthError};

/// OIDC Core §5.4: the claims each standard scope requests.
const SCOPE_CLAIMS: &[(&str, &[&str])] = &[
    (
        "profile",
        &[
            "name",
            "family_name",
            "given_name",
            "middle_name",
            "nickname",
            "preferred_username",
            "profile",
            "picture",
            "website",
            "gender",
            "birthdate",
            "zoneinfo",
            "locale",
            "updated_at",
        ],
    ),
    ("email", &["email", "email_verified"]),
    ("address", &["address"]),
    ("phone", &["phone_number", "phone_number_verified"]),
];

/// Claims Lockspire alone sets (OIDC Core §2, §5.1); a host value for any of them is dropped.
pub(crate) const PROTOCOL_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "nonce",
    "at_hash",
    "c_hash",
    "s_hash",
    "auth_time",
    "azp",
    "acr",
    "amr",
    "sid",
    "cnf",
    "client_id",
    "scope",
    "typ",
    "events",
];

/// Every standard claim name, for discovery's `claims_supported`.
pub(crate) fn standard_claims() -> impl Iterator<Item = &'static str> {
    SCOPE_CLAIMS
        .iter()
        .flat_map(|(_, claims)| claims.iter().copied())
}

fn scope_of_claim(claim: &str) -> Option<&'static str> {
    SCOPE_CLAIMS
        .iter()
        .find(|(_, claims)| claims.contains(&claim))
        .map(|(scope, _)| *scope)
}

/// An error about one requested scope. The description names the scope only when it is one
/// this issuer offers; anything else a request sent is not echoed (it would reach the client's
/// error page), and goes to the logged reason instead.
pub(crate) fn scope_error(
    config: &crate::config::Config,
    code: ErrorCode,
    scope: &str,
    what: &str,
) -> OAuthError {
    let description = if config.is_known_scope(scope) {
        format!("scope {scope} {what}")
    } else {
        format!("a requested scope {what}")
    };
    OAuthError::new(code, description).with_reason(format!("scope {scope:?} {what}"))
}

/// The scopes a page asks the user to approve, each with what it grants in plain words (the
/// standard scopes, OIDC Core §5.4, §11; the host's own scopes have none).
pub(crate) fn scope_requests(scopes: Vec<String>) -> Vec<crate::host::ScopeRequest> {
    scopes
        .into_iter()
        .map(|name| {
            let description = match name.as_str() {
                "openid" => "confirm who you are",
                "profile" => "your basic profile: name, picture, locale",
                "email" => "your email address",
                "address" => "your postal address",
                "phone" => "your phone number",
                "offline_access" => "keep access while you are not using the application",
                _ => "",
            };
            crate::host::ScopeRequest {
                description: description.to_owned(),
                name,
            }
        })
        .collect()
}

/// Parses a request's `scope` parameter (RFC 6749 §3.3); absent is empty.
pub(crate) fn parse_scope(value: Option<&str>) -> Result<ScopeSet, OAuthError> {
    value.map_or(Ok(ScopeSet::default()), |v| {
        ScopeSet::parse(v).map_err(|_| {
            OAuthError::new(ErrorCode::InvalidScope, "scope contains invalid characters")
        })
    })
}

/// The standard claims a `claims` request (OIDC Core §5.5) names, in either member, that the
/// `scopes` do not already release: what the user must approve beyond the scopes. Sorted, once
/// each. Host-specific claims are the host's policy and not listed; protocol claims are never
/// released from the host's values.
pub(crate) fn claims_beyond_scopes(request: Option<&Value>, scopes: &[String]) -> Vec<String> {
    let mut out: Vec<String> = ["id_token", "userinfo"]
        .iter()
        .filter_map(|member| request?.get(member)?.as_object())
        .flat_map(|members| members.keys())
        .filter(|name| scope_of_claim(name).is_some_and(|scope| !scopes.iter().any(|s| s == scope)))
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Keeps the host claims the grant releases: standard claims only under their scope or when
/// named in the `claims` request; protocol claims never; host-specific claims as given (the host
/// saw the granted scopes when it built them).
pub(crate) fn release_claims(
    host: &Map<String, Value>,
    scopes: &[String],
    requested: Option<&Value>,
) -> Map<String, Value> {
    host.iter()
        .filter(|(name, _)| !PROTOCOL_CLAIMS.contains(&name.as_str()))
        .filter(|(name, _)| match scope_of_claim(name) {
            Some(scope) => {
                scopes.iter().any(|s| s == scope)
                    || requested.and_then(|r| r.get(name.as_str())).is_some()
            }
            None => true,
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn host_cannot_override_protocol_claims_and_scope_filters_standard_claims() {
        let Value::Object(host) =
            json!({"sub": "evil", "iss": "x", "email": "a@b", "name": "A", "roles": ["admin"]})
        else {
            unreachable!()
        };
        let out = release_claims(&host, &["openid".into(), "email".into()], None);
        assert!(out.get("sub").is_none() && out.get("iss").is_none());
        assert_eq!(out.get("email"), Some(&json!("a@b")));
        assert!(out.get("name").is_none());
        assert_eq!(out.get("roles"), Some(&json!(["admin"])));
        let out = release_claims(&host, &["openid".into()], Some(&json!({"name": null})));
        assert_eq!(out.get("name"), Some(&json!("A")));
    }

    #[test]
    fn claims_beyond_scopes_lists_standard_claims_the_scopes_do_not_release() {
        let request = json!({
            "userinfo": {"email": null, "address": {"essential": true}, "name": null, "roles": null},
            "id_token": {"email": null, "phone_number": null, "sub": {"value": "x"}}
        });
        let scopes = ["openid".to_owned(), "profile".to_owned()];
        assert_eq!(
            claims_beyond_scopes(Some(&request), &scopes),
            ["address", "email", "phone_number"]
        );
        assert!(claims_beyond_scopes(None, &scopes).is_empty());
        assert!(
            claims_beyond_scopes(Some(&json!({"userinfo": {"name": null}})), &scopes).is_empty()
        );
    }

    #[test]
    fn scope_parsing_rejects_bad_characters_and_dedupes() {
        assert_eq!(
            parse_scope(Some("openid  email openid")).ok(),
            Some(ScopeSet::from_stored("openid email"))
        );
        assert!(parse_scope(Some("open\"id")).is_err());
    }
}
