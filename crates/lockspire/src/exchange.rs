//! The host's say in token exchange (RFC 8693): which client may exchange which token, for
//! which audience, and whether the result names the caller as an actor (delegation) or simply
//! stands for the subject (impersonation).
//!
//! Lockspire checks everything the protocol decides before asking: the tokens are live and this
//! server's, sender-constrained ones are presented with their key, the scopes and audiences asked
//! for lie within the subject token's (an exchange never widens them, whatever the policy says),
//! and the calling client is registered for the grant. The policy then only decides what is
//! product policy.

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

use crate::host::{HostError, Subject};

/// What kind of token was presented, by its RFC 8693 §3 token type identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PresentedKind {
    /// `urn:ietf:params:oauth:token-type:access_token`.
    AccessToken,
    /// `urn:ietf:params:oauth:token-type:refresh_token`, presented by the client it was issued
    /// to (RFC 6749 §6). Lockspire's default policy never exchanges one: a refresh token stands
    /// for a whole grant, not for one call.
    RefreshToken,
    /// `urn:ietf:params:oauth:token-type:id_token`: it stands for the sign-in it tells of, in the
    /// browser session it was issued in, and authorizes only its identity scopes (`openid`,
    /// `profile`, `email`, `address`, `phone`), for no audience.
    IdToken,
}

impl PresentedKind {
    /// The token type identifier (RFC 8693 §3).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessToken => ACCESS_TOKEN_TYPE,
            Self::RefreshToken => REFRESH_TOKEN_TYPE,
            Self::IdToken => ID_TOKEN_TYPE,
        }
    }
}

/// RFC 8693 §3: an OAuth 2.0 access token.
pub(crate) const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 8693 §3: an OAuth 2.0 refresh token.
pub(crate) const REFRESH_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:refresh_token";
/// RFC 8693 §3: an OIDC ID token.
pub(crate) const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
/// RFC 8693 §3: a JWT.
pub(crate) const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// A token presented in an exchange, as this server issued it.
#[derive(Clone, Debug)]
pub struct PresentedToken {
    /// What it is.
    pub kind: PresentedKind,
    /// The client it was issued to.
    pub client_id: String,
    /// The user it stands for; `None` for a client's own token (client credentials), which
    /// can only be an actor token.
    pub subject: Option<Subject>,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Its audiences (RFC 8707 resource indicators); empty when it is for this server's
    /// default audience.
    pub audiences: Vec<String>,
    /// Its `act` claim (RFC 8693 §4.1) when it was itself issued by a delegation.
    pub act: Option<Value>,
    /// True when it is bound to a DPoP key or a certificate (RFC 9449, RFC 8705). The request
    /// proved possession, and the exchanged token is bound to the same.
    pub sender_constrained: bool,
}

/// One exchange, for the policy to decide.
#[derive(Debug)]
pub struct ExchangeRequest<'a> {
    /// The authenticated client asking.
    pub client_id: &'a str,
    /// `subject_token`: whom the new token will stand for.
    pub subject_token: &'a PresentedToken,
    /// `actor_token`: who will act for the subject, when one was presented. Always a token of
    /// the calling client: its own (client credentials) or one of its users'.
    pub actor_token: Option<&'a PresentedToken>,
    /// The scopes the new token will carry: those asked for, already within the subject
    /// token's.
    pub scopes: &'a [String],
    /// The audiences the new token will be for (`audience` and `resource`), already within the
    /// subject token's.
    pub audiences: &'a [String],
}

/// The policy's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExchangeDecision {
    /// Issue a token for the subject naming the actor token's holder in `act` (RFC 8693 §4.1),
    /// nested under the subject token's own `act` for a chain. Needs an actor token.
    Delegate,
    /// Issue a token that stands for the subject, with no new actor (RFC 8693 §1.1).
    Impersonate,
    /// Refuse the exchange: the client gets `invalid_request` (RFC 8693 §2.2.2).
    Deny,
}

/// Decides token exchanges (RFC 8693). Register one with
/// [`crate::Builder::token_exchange_policy`]. Without one, Lockspire allows only the exchange
/// that is safe without configuration: a client exchanging an access token issued to it, with
/// no actor token, for one no wider.
pub trait TokenExchangePolicy: Send + Sync + 'static {
    /// Decides `request`. An error answers the client `server_error`.
    fn decide(
        &self,
        request: &ExchangeRequest<'_>,
    ) -> impl Future<Output = Result<ExchangeDecision, HostError>> + Send;
}

/// The policy of a server configured with none.
pub(crate) fn default_decision(request: &ExchangeRequest<'_>) -> ExchangeDecision {
    let subject = request.subject_token;
    if subject.kind == PresentedKind::AccessToken
        && subject.client_id == request.client_id
        && request.actor_token.is_none()
    {
        ExchangeDecision::Impersonate
    } else {
        ExchangeDecision::Deny
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Object-safe view of a [`TokenExchangePolicy`].
pub(crate) trait DynExchangePolicy: Send + Sync + 'static {
    fn decide<'a>(
        &'a self,
        request: &'a ExchangeRequest<'a>,
    ) -> BoxFuture<'a, Result<ExchangeDecision, HostError>>;
}

impl<P: TokenExchangePolicy> DynExchangePolicy for P {
    fn decide<'a>(
        &'a self,
        request: &'a ExchangeRequest<'a>,
    ) -> BoxFuture<'a, Result<ExchangeDecision, HostError>> {
        Box::pin(TokenExchangePolicy::decide(self, request))
    }
}
