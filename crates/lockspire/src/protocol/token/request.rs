//! Token requests as typed values (RFC 6749 §4.1.3, §6, §4.4; RFC 7636 §4.5; RFC 8707 §2.2):
//! each grant gets exactly the parameters it allows, read once from the request. Whether a
//! value is acceptable (a known scope, a served resource, a matching code) is for the grant to
//! decide; this only says what was asked.

use crate::model::client::GrantType;
use crate::protocol::error::OAuthError;
use crate::protocol::params::Params;
use crate::protocol::pkce::check_verifier;

/// One token request, by grant.
pub(crate) enum TokenRequest<'a> {
    /// RFC 6749 §4.1.3.
    AuthorizationCode(CodeRequest<'a>),
    /// RFC 6749 §6.
    RefreshToken(RefreshRequest<'a>),
    /// RFC 6749 §4.4.
    ClientCredentials(CredentialsRequest<'a>),
    /// RFC 8628 §3.4.
    DeviceCode(DeviceCodeRequest<'a>),
    /// CIBA Core §10.1.
    Ciba(CibaRequest<'a>),
    /// RFC 8693 §2.1.
    TokenExchange(ExchangeRequest<'a>),
}

/// Exchanging a token for another (RFC 8693 §2.1).
pub(crate) struct ExchangeRequest<'a> {
    /// `subject_token` with its `subject_token_type`.
    pub(crate) subject: (&'a str, &'a str),
    /// `actor_token` with its `actor_token_type`.
    pub(crate) actor: Option<(&'a str, &'a str)>,
    pub(crate) requested_token_type: Option<&'a str>,
    /// `audience` values (logical names of the target services).
    pub(crate) audiences: Vec<&'a str>,
    /// `resource` values (RFC 8707 resource indicators).
    pub(crate) resources: Vec<&'a str>,
    pub(crate) scope: Option<&'a str>,
}

/// Polling (or, after a ping, asking once) with an `auth_req_id` (CIBA Core §10.1).
pub(crate) struct CibaRequest<'a> {
    pub(crate) auth_req_id: &'a str,
}

/// Polling with a device code (RFC 8628 §3.4).
pub(crate) struct DeviceCodeRequest<'a> {
    pub(crate) device_code: &'a str,
}

/// Redeeming an authorization code.
pub(crate) struct CodeRequest<'a> {
    pub(crate) code: &'a str,
    /// RFC 7636 §4.5, already checked for its syntax (§4.1).
    pub(crate) code_verifier: &'a str,
    pub(crate) redirect_uri: Option<&'a str>,
    /// Token-time resource indicators, narrowing what was granted (RFC 8707 §2.2).
    pub(crate) resources: Vec<&'a str>,
    /// Token-time `authorization_details`, narrowing what was granted (RFC 9396 §6.2).
    pub(crate) authorization_details: Option<&'a str>,
}

/// Using a refresh token.
pub(crate) struct RefreshRequest<'a> {
    pub(crate) refresh_token: &'a str,
    /// A narrower scope than the grant's (RFC 6749 §6).
    pub(crate) scope: Option<&'a str>,
    pub(crate) resources: Vec<&'a str>,
    /// Narrower `authorization_details` than the grant's (RFC 9396 §6.2).
    pub(crate) authorization_details: Option<&'a str>,
}

/// A client acting on its own behalf.
pub(crate) struct CredentialsRequest<'a> {
    pub(crate) scope: Option<&'a str>,
    pub(crate) resources: Vec<&'a str>,
}

impl<'a> TokenRequest<'a> {
    /// Reads the parameters of `grant` from `params`; `invalid_request` when one it requires is
    /// missing or malformed.
    pub(crate) fn parse(grant: GrantType, params: &'a Params) -> Result<Self, OAuthError> {
        let resources = || params.all("resource").collect();
        Ok(match grant {
            GrantType::AuthorizationCode => {
                let code = params.require("code")?;
                let code_verifier = params.require("code_verifier")?;
                check_verifier(code_verifier)?;
                Self::AuthorizationCode(CodeRequest {
                    code,
                    code_verifier,
                    redirect_uri: params.get("redirect_uri")?,
                    resources: resources(),
                    authorization_details: params.get("authorization_details")?,
                })
            }
            GrantType::RefreshToken => Self::RefreshToken(RefreshRequest {
                refresh_token: params.require("refresh_token")?,
                scope: params.get("scope")?,
                resources: resources(),
                authorization_details: params.get("authorization_details")?,
            }),
            GrantType::ClientCredentials => Self::ClientCredentials(CredentialsRequest {
                scope: params.get("scope")?,
                resources: resources(),
            }),
            GrantType::DeviceCode => Self::DeviceCode(DeviceCodeRequest {
                device_code: params.require("device_code")?,
            }),
            GrantType::Ciba => Self::Ciba(CibaRequest {
                auth_req_id: params.require("auth_req_id")?,
            }),
            GrantType::TokenExchange => {
                let subject = (
                    params.require("subject_token")?,
                    params.require("subject_token_type")?,
                );
                // RFC 8693 §2.1: actor_token_type is required with an actor_token and must
                // not be sent without one.
                let actor = match (params.get("actor_token")?, params.get("actor_token_type")?) {
                    (Some(token), Some(kind)) => Some((token, kind)),
                    (None, None) => None,
                    (Some(_), None) => {
                        return Err(OAuthError::invalid_request(
                            "actor_token_type is required with actor_token",
                        ));
                    }
                    (None, Some(_)) => {
                        return Err(OAuthError::invalid_request(
                            "actor_token_type must not be sent without actor_token",
                        ));
                    }
                };
                Self::TokenExchange(ExchangeRequest {
                    subject,
                    actor,
                    requested_token_type: params.get("requested_token_type")?,
                    audiences: params.all("audience").collect(),
                    resources: resources(),
                    scope: params.get("scope")?,
                })
            }
        })
    }
}
