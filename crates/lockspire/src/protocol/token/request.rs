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
        })
    }
}
