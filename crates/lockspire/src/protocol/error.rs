//! OAuth 2.0 errors (RFC 6749 §4.1.2.1, §5.2; RFC 6750 §3; RFC 7591 §3.2.2).
//!
//! Protocol code names the precise rule that failed in a private `reason` that is only logged;
//! the wire gets the RFC's error code and a short public description. How an error becomes an
//! HTTP response — its status, headers and body — is decided once, at the edge (`web::error`).

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;

/// Error codes defined by RFC 6749, RFC 6750, RFC 7591, RFC 8707 and OpenID Connect Core §3.1.2.6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// RFC 6749 §5.2: malformed, missing, duplicated or unsupported parameter.
    InvalidRequest,
    /// RFC 6749 §5.2: client authentication failed (401).
    InvalidClient,
    /// RFC 6749 §5.2: code, refresh token or credentials invalid, expired, revoked or mismatched.
    InvalidGrant,
    /// RFC 6749 §5.2: the client may not use this grant or response type.
    UnauthorizedClient,
    /// RFC 6749 §5.2: the grant type is not supported by this server.
    UnsupportedGrantType,
    /// RFC 6749 §4.1.2.1: the response type is not supported.
    UnsupportedResponseType,
    /// RFC 6749 §5.2: the requested scope is invalid, unknown or exceeds what was granted.
    InvalidScope,
    /// RFC 6749 §4.1.2.1: the resource owner or server denied the request.
    AccessDenied,
    /// RFC 6749 §4.1.2.1: an unexpected condition prevented fulfilling the request (500 on direct endpoints).
    ServerError,
    /// RFC 6749 §4.1.2.1: the server is temporarily unable to handle the request (503).
    TemporarilyUnavailable,
    /// RFC 8707 §2: the requested resource is invalid or not allowed.
    InvalidTarget,
    /// RFC 6750 §3.1: the access token is expired, revoked, malformed or invalid.
    InvalidToken,
    /// RFC 6750 §3.1: the token lacks the scope the resource requires.
    InsufficientScope,
    /// RFC 7009 §2.2.1: the server does not support revoking this token type.
    UnsupportedTokenType,
    /// RFC 7591 §3.2.2: a redirect URI in a registration request is invalid.
    InvalidRedirectUri,
    /// RFC 7591 §3.2.2: a client metadata field is invalid.
    InvalidClientMetadata,
    /// OIDC Core §3.1.2.6: `prompt=none` and the user is not signed in.
    LoginRequired,
    /// OIDC Core §3.1.2.6: `prompt=none` and consent is needed.
    ConsentRequired,
    /// OIDC Core §3.1.2.6: `prompt=none` and some user interaction is needed.
    InteractionRequired,
    /// OIDC Core §3.1.2.6: the `request` parameter is not supported.
    RequestNotSupported,
    /// OIDC Core §3.1.2.6: the `request_uri` parameter is not supported.
    RequestUriNotSupported,
    /// OIDC Core §3.1.2.6: the `registration` parameter is not supported.
    RegistrationNotSupported,
    /// RFC 9101 §6.2, OIDC Core §3.1.2.6: the `request_uri` is unknown, expired, used, or was
    /// pushed by another client.
    InvalidRequestUri,
    /// RFC 9101 §6.2, OIDC Core §3.1.2.6: the request object is invalid.
    InvalidRequestObject,
    /// RFC 9396 §5: `authorization_details` is malformed, names an unknown type, or fails the
    /// host's checks of its type.
    InvalidAuthorizationDetails,
    /// RFC 9449 §5, §7.1: the DPoP proof is missing where required, malformed or fails a check.
    InvalidDpopProof,
    /// RFC 9449 §8, §9: the server requires a nonce in DPoP proofs; the one to use comes in the
    /// `DPoP-Nonce` header of the answer.
    UseDpopNonce,
    /// RFC 8628 §3.5: the user has not decided yet; poll again after the interval.
    AuthorizationPending,
    /// RFC 8628 §3.5: still pending, and the client polled too early: its interval is now 5
    /// seconds longer.
    SlowDown,
    /// RFC 8628 §3.5, CIBA Core §11: the device code or `auth_req_id` expired; the client must
    /// start again.
    ExpiredToken,
    /// CIBA Core §13: the hint names no user the host knows.
    UnknownUserId,
    /// CIBA Core §13: the `login_hint_token` has expired.
    ExpiredLoginHintToken,
    /// CIBA Core §13: the client must send `user_code` and did not.
    MissingUserCode,
    /// CIBA Core §13: the `user_code` is wrong.
    InvalidUserCode,
    /// CIBA Core §13: the `binding_message` is too long or not plain text.
    InvalidBindingMessage,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::AccessDenied => "access_denied",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::InvalidTarget => "invalid_target",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::InteractionRequired => "interaction_required",
            Self::RequestNotSupported => "request_not_supported",
            Self::RequestUriNotSupported => "request_uri_not_supported",
            Self::RegistrationNotSupported => "registration_not_supported",
            Self::InvalidRequestUri => "invalid_request_uri",
            Self::InvalidRequestObject => "invalid_request_object",
            Self::InvalidAuthorizationDetails => "invalid_authorization_details",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::ExpiredToken => "expired_token",
            Self::UnknownUserId => "unknown_user_id",
            Self::ExpiredLoginHintToken => "expired_login_hint_token",
            Self::MissingUserCode => "missing_user_code",
            Self::InvalidUserCode => "invalid_user_code",
            Self::InvalidBindingMessage => "invalid_binding_message",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a 401 announces the authentication scheme (RFC 6749 §5.2, RFC 6750 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// No `WWW-Authenticate` header.
    None,
    /// `Basic realm=…`: the client authenticated with the Authorization header.
    Basic,
    /// `Bearer …`: a protected resource such as `/userinfo`.
    Bearer,
    /// `DPoP …` (RFC 9449 §7.1): a protected resource called with the DPoP scheme.
    Dpop,
}

/// An OAuth error as it leaves the server: code, public description, and a private reason
/// that goes to the logs only.
#[derive(Clone, Debug)]
pub struct OAuthError {
    code: ErrorCode,
    description: Cow<'static, str>,
    reason: Cow<'static, str>,
    challenge: Challenge,
    circumstance: Circumstance,
}

/// What, beyond its code, decides how an error is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Circumstance {
    /// Nothing: the code decides.
    Ordinary,
    /// A protected resource was called without any token (RFC 6750 §3.1): a bare challenge.
    NoToken,
    /// The request body exceeded what the endpoint reads (RFC 9110 §15.5.14).
    TooLarge,
    /// The answer to a poll at the token endpoint (RFC 8628 §3.5): a token error response,
    /// 400 whatever its code (RFC 6749 §5.2).
    Poll,
}

impl OAuthError {
    /// An error whose description is also the logged reason. What reaches the wire is kept to
    /// the characters RFC 6749 §4.1.2.1 allows in `error_description` (%x20-21 / %x23-5B /
    /// %x5D-7E; anything else becomes `?`) and to 200 of them.
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        let reason = description.into();
        let description = public_description(reason.clone());
        Self {
            code,
            reason,
            description,
            challenge: Challenge::None,
            circumstance: Circumstance::Ordinary,
        }
    }

    /// RFC 6750 §3.1: a request to a protected resource without any token is answered with a
    /// bare `Bearer` challenge and no error code.
    pub(crate) fn no_token() -> Self {
        let mut e = Self::new(ErrorCode::InvalidRequest, "").with_challenge(Challenge::Bearer);
        e.circumstance = Circumstance::NoToken;
        e
    }

    /// A request body larger than the endpoint reads.
    pub(crate) fn too_large() -> Self {
        let mut e = Self::invalid_request("the request body is too large");
        e.circumstance = Circumstance::TooLarge;
        e
    }

    /// An answer to a poll of a decoupled authorization that issues no token yet (RFC 8628
    /// §3.5): `authorization_pending`, `slow_down`, `access_denied` or `expired_token`.
    pub(crate) fn poll(code: ErrorCode, description: &'static str) -> Self {
        let mut e = Self::new(code, description);
        e.circumstance = Circumstance::Poll;
        e
    }

    /// `invalid_request` with a description.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    /// `server_error` whose internal cause is logged and never sent.
    pub fn internal(reason: impl Into<Cow<'static, str>>) -> Self {
        let mut e = Self::new(
            ErrorCode::ServerError,
            "the server could not complete the request",
        );
        e.reason = reason.into();
        e
    }

    /// Replaces the private reason (logged, never sent).
    pub fn with_reason(mut self, reason: impl Into<Cow<'static, str>>) -> Self {
        self.reason = reason.into();
        self
    }

    /// Sets the `WWW-Authenticate` challenge.
    pub fn with_challenge(mut self, challenge: Challenge) -> Self {
        self.challenge = challenge;
        self
    }

    /// The RFC error code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The public description.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The private reason, for logs.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// How a 401 names its authentication scheme.
    pub(crate) fn challenge(&self) -> Challenge {
        self.challenge
    }

    /// What beyond the code decides the answer.
    pub(crate) fn circumstance(&self) -> Circumstance {
        self.circumstance
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.reason)
    }
}

impl std::error::Error for OAuthError {}

/// The longest `error_description` sent, in characters.
pub const MAX_DESCRIPTION: usize = 200;

/// RFC 6749 §4.1.2.1: `error_description` is limited to %x20-21 / %x23-5B / %x5D-7E, which
/// also keeps it safe inside a `WWW-Authenticate` quoted string (RFC 6750 §3).
fn allowed_in_description(c: char) -> bool {
    matches!(c, '\x20'..='\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E')
}

fn public_description(text: Cow<'static, str>) -> Cow<'static, str> {
    if text.len() <= MAX_DESCRIPTION && text.chars().all(allowed_in_description) {
        return text;
    }
    Cow::Owned(
        text.chars()
            .take(MAX_DESCRIPTION)
            .map(|c| if allowed_in_description(c) { c } else { '?' })
            .collect(),
    )
}

/// A failure in storage or host code; never shown to the client beyond its error code.
#[derive(Debug, thiserror::Error)]
pub enum InternalError {
    /// The database failed or is unreachable.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The host's `AccountResolver` failed.
    #[error("host: {0}")]
    Host(#[from] crate::host::HostError),
    /// Key material could not be used.
    #[error("keys: {0}")]
    Keys(#[from] crate::jose::KeyError),
}

impl From<InternalError> for OAuthError {
    fn from(e: InternalError) -> Self {
        match &e {
            InternalError::Store(s) if s.is_unavailable() => OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "the service is temporarily unavailable",
            )
            .with_reason(e.to_string()),
            _ => OAuthError::internal(e.to_string()),
        }
    }
}

impl From<crate::store::StoreError> for OAuthError {
    fn from(e: crate::store::StoreError) -> Self {
        InternalError::from(e).into()
    }
}

impl From<crate::host::HostError> for OAuthError {
    fn from(e: crate::host::HostError) -> Self {
        InternalError::from(e).into()
    }
}

impl From<crate::jose::KeyError> for OAuthError {
    fn from(e: crate::jose::KeyError) -> Self {
        InternalError::from(e).into()
    }
}
