//! Every endpoint the provider serves, in one table: its path under the issuer, whether
//! browsers on other origins may call it, and the metadata field that advertises it (RFC 8414
//! §2, OIDC Discovery §3, RFC 7591 §3, RFC 8705 §5). The router and the discovery document are
//! both built from this table, so a new endpoint is one entry and discovery cannot disagree with
//! the routes.

use crate::config::{Config, Issuer, RegistrationPolicy};

/// One endpoint of the provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// OIDC Discovery §4.
    OpenIdConfiguration,
    /// RFC 8414 §3, for an issuer without a path.
    AuthorizationServerMetadata,
    /// The server's public keys (RFC 7517 §5).
    Jwks,
    /// RFC 6749 §3.1.
    Authorize,
    /// Where the host sends the browser back after its sign-in page.
    AuthorizeResume,
    /// The consent page and its form.
    Consent,
    /// RFC 6749 §3.2.
    Token,
    /// RFC 9126 §2: pushed authorization requests.
    PushedAuthorization,
    /// OIDC Core §5.3.
    Userinfo,
    /// RFC 7662 §2.
    Introspect,
    /// RFC 7009 §2.
    Revoke,
    /// RFC 7591 §3.
    Register,
    /// RFC 7592 §2: one client's registration, read, updated and deleted by the client.
    RegistrationManagement,
    /// RFC 8628 §3.1: device authorization requests.
    DeviceAuthorization,
    /// RFC 8628 §3.3: the page where the user enters the device's code and decides.
    DeviceVerification,
    /// CIBA Core §7: backchannel authentication requests.
    BackchannelAuthentication,
    /// OpenID Connect RP-Initiated Logout 1.0 §2.
    EndSession,
}

/// Who may call an endpoint from a browser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Any origin (CORS): browser-based clients call it with no cookies involved.
    CrossOrigin,
    /// Pages of the provider's own origin, and servers: no CORS.
    SameOrigin,
}

impl Endpoint {
    /// Every endpoint, in the order the router mounts them.
    pub(crate) const ALL: [Endpoint; 17] = [
        Self::OpenIdConfiguration,
        Self::AuthorizationServerMetadata,
        Self::Jwks,
        Self::Authorize,
        Self::AuthorizeResume,
        Self::Consent,
        Self::Token,
        Self::PushedAuthorization,
        Self::Userinfo,
        Self::Introspect,
        Self::Revoke,
        Self::Register,
        Self::RegistrationManagement,
        Self::DeviceAuthorization,
        Self::DeviceVerification,
        Self::BackchannelAuthentication,
        Self::EndSession,
    ];

    /// The route under the issuer's path (axum syntax for the one with a parameter).
    pub(crate) fn path(self) -> &'static str {
        match self {
            Self::OpenIdConfiguration => "/.well-known/openid-configuration",
            Self::AuthorizationServerMetadata => "/.well-known/oauth-authorization-server",
            Self::Jwks => "/jwks",
            Self::Authorize => "/authorize",
            Self::AuthorizeResume => "/authorize/resume",
            Self::Consent => "/consent",
            Self::Token => "/token",
            Self::PushedAuthorization => "/par",
            Self::Userinfo => "/userinfo",
            Self::Introspect => "/introspect",
            Self::Revoke => "/revoke",
            Self::Register => "/register",
            Self::RegistrationManagement => "/register/{client_id}",
            Self::DeviceAuthorization => "/device_authorization",
            Self::DeviceVerification => "/device",
            Self::BackchannelAuthentication => "/bc-authorize",
            Self::EndSession => "/end_session",
        }
    }

    /// Who may call it from a browser. Introspection is for resource servers, never pages.
    pub(crate) fn access(self) -> Access {
        match self {
            Self::Authorize
            | Self::AuthorizeResume
            | Self::Consent
            | Self::Introspect
            | Self::DeviceVerification
            | Self::EndSession => Access::SameOrigin,
            _ => Access::CrossOrigin,
        }
    }

    /// The metadata field that names its URL (RFC 8414 §2, OIDC Discovery §3), if any.
    pub(crate) fn metadata_field(self) -> Option<&'static str> {
        Some(match self {
            Self::Jwks => "jwks_uri",
            Self::Authorize => "authorization_endpoint",
            Self::Token => "token_endpoint",
            Self::PushedAuthorization => "pushed_authorization_request_endpoint",
            Self::Userinfo => "userinfo_endpoint",
            Self::Introspect => "introspection_endpoint",
            Self::Revoke => "revocation_endpoint",
            Self::Register => "registration_endpoint",
            Self::DeviceAuthorization => "device_authorization_endpoint",
            Self::BackchannelAuthentication => "backchannel_authentication_endpoint",
            Self::EndSession => "end_session_endpoint",
            _ => return None,
        })
    }

    /// Whether discovery advertises it under this configuration: registration only when it
    /// is open to someone (the route answers either way, refusing when disabled).
    pub(crate) fn advertised(self, config: &Config) -> bool {
        match self {
            Self::Register => config.registration != RegistrationPolicy::Disabled,
            // Grants no client of a FAPI 2.0 server may register.
            Self::BackchannelAuthentication => {
                config.backchannel_enabled && !config.security_profile.is_fapi()
            }
            Self::DeviceAuthorization => !config.security_profile.is_fapi(),
            _ => self.metadata_field().is_some(),
        }
    }

    /// True for the endpoints a client may reach with its certificate at the mTLS alias base
    /// (RFC 8705 §5).
    pub(crate) fn has_mtls_alias(self) -> bool {
        matches!(
            self,
            Self::Token
                | Self::PushedAuthorization
                | Self::DeviceAuthorization
                | Self::BackchannelAuthentication
                | Self::Introspect
                | Self::Revoke
                | Self::Userinfo
        )
    }

    /// The parameters a request to it may repeat (RFC 8707 §2: `resource`); every other one
    /// appears at most once (RFC 6749 §3.1, §3.2).
    pub(crate) fn repeatable(self) -> &'static [&'static str] {
        match self {
            Self::Authorize | Self::PushedAuthorization | Self::DeviceAuthorization => {
                &["resource"]
            }
            // RFC 8693 §2.1: a token exchange may name several audiences.
            Self::Token => &["resource", "audience"],
            _ => &[],
        }
    }

    /// Its absolute URL at `issuer`.
    pub(crate) fn url(self, issuer: &Issuer) -> String {
        issuer.endpoint(self.path())
    }

    /// Every URL a request to this endpoint may arrive at: its URL under the issuer, and its
    /// mTLS alias when one is configured (RFC 8705 §5). What a DPoP proof's `htu` may name.
    pub(crate) fn urls(self, config: &Config) -> Vec<String> {
        let mut urls = vec![self.url(&config.issuer)];
        if let (true, Some(base)) = (self.has_mtls_alias(), &config.mtls_endpoint_base) {
            urls.push(format!("{}{}", base.trim_end_matches('/'), self.path()));
        }
        urls
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_has_its_own_path_and_every_advertised_field_is_unique() {
        for (i, a) in Endpoint::ALL.iter().enumerate() {
            for b in &Endpoint::ALL[i + 1..] {
                assert_ne!(a.path(), b.path());
                if a.metadata_field().is_some() {
                    assert_ne!(a.metadata_field(), b.metadata_field());
                }
            }
        }
    }
}
