//! The checks of an authorization request, one parameter (or one rule) each, in the order
//! [`super::validate`] runs them (RFC 6749 §4.1.1, §4.1.2.1; OIDC Core §3.1.2.1, §3.1.2.2).

use serde_json::Value;
use url::Url;

use super::{MAX_CLAIMS, Prompt};
use crate::host::DetailTypes;
use crate::model::authorization_details::AuthorizationDetails;
use crate::model::client::GrantType;
use crate::model::scope::ScopeSet;
use crate::protocol::error::{ErrorCode, OAuthError};
use crate::protocol::params::ParameterSource;
use crate::protocol::provider::Provider;
use crate::protocol::scope::parse_scope;
use crate::store::ClientRecord;

/// Cap for one `resource` (RFC 8707 §2).
const MAX_RESOURCE: usize = 2048;

/// Whether a request object may be passed by value (`request`, RFC 9101 §2.1, OIDC Core
/// §6.1). Discovery's `request_parameter_supported` says exactly this.
pub(crate) const REQUEST_BY_VALUE: bool = true;
/// Whether a request object may be passed by reference (`request_uri`, RFC 9101 §2.2, RFC
/// 9126). Discovery's `request_uri_parameter_supported` says exactly this.
pub(crate) const REQUEST_BY_REFERENCE: bool = false;

/// Request objects (unless offered above) and OIDC registration by value are refused with the
/// errors OIDC Core §3.1.2.6 names.
pub(super) fn check_unsupported_parameters(params: &dyn ParameterSource) -> Result<(), OAuthError> {
    if !REQUEST_BY_VALUE && params.get("request")?.is_some() {
        return Err(OAuthError::new(
            ErrorCode::RequestNotSupported,
            "request objects are not supported",
        ));
    }
    if !REQUEST_BY_REFERENCE && params.get("request_uri")?.is_some() {
        return Err(OAuthError::new(
            ErrorCode::RequestUriNotSupported,
            "request_uri is not supported",
        ));
    }
    if params.get("registration")?.is_some() {
        return Err(OAuthError::new(
            ErrorCode::RegistrationNotSupported,
            "the registration parameter is not supported",
        ));
    }
    Ok(())
}

/// Only `code` (no implicit or hybrid: RFC 9700 §2.1.2), and only for clients that registered
/// the authorization_code grant.
pub(super) fn check_response_type(
    client: &ClientRecord,
    params: &dyn ParameterSource,
) -> Result<(), OAuthError> {
    match params.get("response_type")? {
        None => Err(OAuthError::invalid_request("response_type is required")),
        Some("code") if client.metadata.allows_grant(GrantType::AuthorizationCode) => Ok(()),
        Some("code") => Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client may not use the authorization code grant",
        )),
        Some(_) => Err(OAuthError::new(
            ErrorCode::UnsupportedResponseType,
            "only response_type=code is supported",
        )),
    }
}

/// Every scope is known and allowed for the client (RFC 6749 §3.3).
pub(crate) fn check_scope(
    p: &Provider,
    client: &ClientRecord,
    params: &dyn ParameterSource,
) -> Result<ScopeSet, OAuthError> {
    let scopes = parse_scope(params.get("scope")?)?;
    if let Some(bad) = scopes
        .iter()
        .find(|s| !p.config.allows_scope(&client.metadata, s))
    {
        return Err(crate::protocol::scope::scope_error(
            &p.config,
            ErrorCode::InvalidScope,
            bad,
            "is not allowed for this client",
        ));
    }
    Ok(scopes)
}

/// OIDC Core §3.1.2.1: `prompt` values; `none` excludes every other value.
pub(super) fn check_prompt(params: &dyn ParameterSource) -> Result<Prompt, OAuthError> {
    let mut prompt = Prompt::default();
    let Some(value) = params.get("prompt")? else {
        return Ok(prompt);
    };
    for v in value.split(' ').filter(|v| !v.is_empty()) {
        match v {
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            "consent" => prompt.consent = true,
            "select_account" => prompt.select_account = true,
            "create" => prompt.create = true,
            _ => {
                return Err(OAuthError::invalid_request(
                    "prompt has a value that is not supported",
                )
                .with_reason(format!("prompt value {v:?}")));
            }
        }
    }
    if prompt.none && (prompt.login || prompt.consent || prompt.select_account || prompt.create) {
        return Err(OAuthError::invalid_request(
            "prompt=none cannot be combined with other values",
        ));
    }
    Ok(prompt)
}

/// OIDC Core §3.1.2.1: `max_age` is a non-negative number of seconds.
pub(super) fn check_max_age(params: &dyn ParameterSource) -> Result<Option<i64>, OAuthError> {
    match params.get("max_age")? {
        None => Ok(None),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 && v.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(n)),
            _ => Err(OAuthError::invalid_request(
                "max_age must be a non-negative integer",
            )),
        },
    }
}

/// RFC 8707 §2: each `resource` is an absolute URI without a fragment, and one this issuer
/// serves.
pub(crate) fn check_resources<'a>(
    config: &crate::config::Config,
    values: impl Iterator<Item = &'a str>,
) -> Result<Vec<String>, OAuthError> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        let ok = v.len() <= MAX_RESOURCE
            && Url::parse(v).is_ok_and(|u| u.fragment().is_none())
            && !v.contains('#');
        if !ok {
            return Err(OAuthError::new(
                ErrorCode::InvalidTarget,
                "resource must be an absolute URI without a fragment",
            ));
        }
        // RFC 8707 §2 / RFC 9700 §2.3: the server decides which audiences it issues tokens for;
        // only the resources the host declared are served.
        if !config.resources.iter().any(|r| r == v) {
            return Err(OAuthError::new(
                ErrorCode::InvalidTarget,
                "a requested resource is not served by this issuer",
            )
            .with_reason(format!("resource {v:?} is not served by this issuer")));
        }
        if !out.iter().any(|r| r == v) {
            out.push(v.to_owned());
        }
        if out.len() > 16 {
            return Err(OAuthError::new(
                ErrorCode::InvalidTarget,
                "too many resources",
            ));
        }
    }
    Ok(out)
}

/// OIDC Core §5.5: `claims` is a JSON object with optional `userinfo` and `id_token` objects.
pub(super) fn check_claims(params: &dyn ParameterSource) -> Result<Option<Value>, OAuthError> {
    let Some(raw) = params.get("claims")? else {
        return Ok(None);
    };
    if raw.len() > MAX_CLAIMS {
        return Err(OAuthError::invalid_request("claims is too long"));
    }
    let value: Value = serde_json::from_str(raw)
        .map_err(|_| OAuthError::invalid_request("claims is not valid JSON"))?;
    let Value::Object(map) = &value else {
        return Err(OAuthError::invalid_request("claims must be a JSON object"));
    };
    // What is stored is the parsed value written out again, which can be longer than what was
    // sent (a number such as 9e15 is written in full): the cap holds for that too.
    if value.to_string().len() > MAX_CLAIMS {
        return Err(OAuthError::invalid_request("claims is too long"));
    }
    for (member, v) in map {
        if !matches!(member.as_str(), "userinfo" | "id_token") {
            continue;
        }
        if !v.is_object() {
            return Err(OAuthError::invalid_request(format!(
                "claims.{member} must be an object"
            )));
        }
    }
    Ok(Some(value))
}

/// RFC 9396 §2, §5: `authorization_details` is a JSON array of objects of types the host
/// registered (and, when the client registered `authorization_details_types`, of those), each
/// passing the common-field checks and its type's own.
pub(super) fn check_authorization_details(
    types: &DetailTypes,
    client: &ClientRecord,
    params: &dyn ParameterSource,
) -> Result<AuthorizationDetails, OAuthError> {
    let Some(raw) = params.get("authorization_details")? else {
        return Ok(AuthorizationDetails::default());
    };
    let invalid = |why: String| OAuthError::new(ErrorCode::InvalidAuthorizationDetails, why);
    if raw.len() > MAX_CLAIMS {
        return Err(invalid("authorization_details is too long".into()));
    }
    let details = AuthorizationDetails::parse(raw).map_err(invalid)?;
    let allowed = &client.metadata.authorization_details_types;
    for detail in details.iter() {
        let kind = detail.kind();
        let handler = types.get(kind).ok_or_else(|| {
            invalid(format!(
                "authorization_details type {kind} is not supported"
            ))
        })?;
        if !allowed.is_empty() && !allowed.iter().any(|t| t == kind) {
            return Err(invalid(format!(
                "this client did not register authorization_details type {kind}"
            )));
        }
        handler.validate(detail).map_err(invalid)?;
    }
    Ok(details)
}

/// RFC 9449 §10: `dpop_jkt` is the base64url SHA-256 thumbprint (RFC 7638) of a key.
pub(super) fn check_dpop_jkt(params: &dyn ParameterSource) -> Result<Option<String>, OAuthError> {
    let Some(jkt) = params.get("dpop_jkt")? else {
        return Ok(None);
    };
    let decoded = crate::secrets::b64_decode(jkt);
    if jkt.len() != 43 || decoded.is_none_or(|d| d.len() != 32) {
        return Err(OAuthError::invalid_request(
            "dpop_jkt must be the base64url SHA-256 thumbprint of a key",
        ));
    }
    Ok(Some(jkt.to_owned()))
}

/// OIDC Core §3.1.2.1: an `id_token_hint` must be an ID token this issuer signed for this client
/// (expired ones are fine) — not another of the JWTs it signs; its `sub` must then be the
/// signed-in user.
pub(crate) fn check_id_token_hint(
    p: &Provider,
    client: &ClientRecord,
    params: &dyn ParameterSource,
) -> Result<Option<String>, OAuthError> {
    let Some(hint) = params.get("id_token_hint")? else {
        return Ok(None);
    };
    crate::protocol::id_token::verify(p, hint)
        .filter(|id| client.client_id == *id.client_id)
        .map(|id| Some(id.sub))
        .ok_or_else(|| {
            OAuthError::invalid_request("id_token_hint is not a valid ID token from this issuer")
        })
}
