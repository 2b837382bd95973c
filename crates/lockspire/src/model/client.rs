//! Client metadata as registered and stored (RFC 7591 §2, OIDC Registration §2), and how a
//! request's redirect URI is matched against it (RFC 6749 §3.1.2.3, RFC 8252 §7.3). The rules a
//! new registration must pass live with the protocol, in `protocol::client`.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::jose::{ContentEncryptionAlg, KeyManagementAlg, SigningAlg};
use crate::model::profile::SecurityProfile;
use crate::model::uri::is_loopback_host;

/// A client identifier (RFC 6749 §2.2). Its own type so that a client id and the other
/// identifiers passed beside it (a subject, a grant id) cannot be swapped unnoticed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct ClientId(String);

impl ClientId {
    /// An identifier this server issued or a host chose; the caller has checked it.
    pub(crate) fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for ClientId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for ClientId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl From<ClientId> for String {
    fn from(id: ClientId) -> Self {
        id.0
    }
}

/// How a client authenticates at the token endpoint (RFC 7591 §2, OIDC Registration §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A public client: no authentication, identified by `client_id` (RFC 6749 §2.1).
    None,
    /// HTTP Basic with the client id and secret (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body (RFC 6749 §2.3.1).
    ClientSecretPost,
    /// A JWT assertion HMAC-signed with the client secret (OIDC Core §9, RFC 7523; HS256 only).
    ClientSecretJwt,
    /// A JWT assertion signed with the client's private key (OIDC Core §9, RFC 7523).
    PrivateKeyJwt,
    /// A client certificate from a configured CA with a registered subject (RFC 8705 §2.1).
    TlsClientAuth,
    /// A self-signed client certificate whose key is registered (RFC 8705 §2.2).
    SelfSignedTlsClientAuth,
}

impl AuthMethod {
    /// Methods this server accepts, as discovery lists them.
    pub const SUPPORTED: [AuthMethod; 7] = [
        Self::ClientSecretBasic,
        Self::ClientSecretPost,
        Self::ClientSecretJwt,
        Self::PrivateKeyJwt,
        Self::TlsClientAuth,
        Self::SelfSignedTlsClientAuth,
        Self::None,
    ];

    /// The registered name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::ClientSecretJwt => "client_secret_jwt",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::TlsClientAuth => "tls_client_auth",
            Self::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Self::SUPPORTED.into_iter().find(|m| m.as_str() == s)
    }

    /// True for methods that prove possession of a secret or key.
    pub fn is_confidential(self) -> bool {
        self != Self::None
    }

    /// True for the mutual-TLS methods (RFC 8705 §2).
    pub fn is_mtls(self) -> bool {
        matches!(self, Self::TlsClientAuth | Self::SelfSignedTlsClientAuth)
    }

    /// Whether a client may authenticate with this method under `profile` (FAPI 2.0
    /// §5.3.2.1: confidential clients only, with `private_key_jwt` or mutual TLS).
    pub fn allowed_under(self, profile: SecurityProfile) -> bool {
        !profile.is_fapi() || self == Self::PrivateKeyJwt || self.is_mtls()
    }

    /// True for methods whose credential is a shared secret the server issues.
    pub fn uses_secret(self) -> bool {
        matches!(
            self,
            Self::ClientSecretBasic | Self::ClientSecretPost | Self::ClientSecretJwt
        )
    }
}

/// Grant types this server implements (RFC 7591 §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// RFC 6749 §4.1.
    AuthorizationCode,
    /// RFC 6749 §6.
    RefreshToken,
    /// RFC 6749 §4.4.
    ClientCredentials,
    /// RFC 8628 §3.4: the device authorization grant.
    #[serde(rename = "urn:ietf:params:oauth:grant-type:device_code")]
    DeviceCode,
    /// CIBA Core §10.1: client-initiated backchannel authentication.
    #[serde(rename = "urn:openid:params:grant-type:ciba")]
    Ciba,
    /// RFC 8693 §2.1: exchanging a token this server issued for another.
    #[serde(rename = "urn:ietf:params:oauth:grant-type:token-exchange")]
    TokenExchange,
}

impl GrantType {
    /// Every grant `/token` accepts; discovery lists exactly these.
    pub const SUPPORTED: [GrantType; 6] = [
        Self::AuthorizationCode,
        Self::RefreshToken,
        Self::ClientCredentials,
        Self::DeviceCode,
        Self::Ciba,
        Self::TokenExchange,
    ];

    /// The `grant_type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
            Self::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
            Self::Ciba => "urn:openid:params:grant-type:ciba",
            Self::TokenExchange => "urn:ietf:params:oauth:grant-type:token-exchange",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Self::SUPPORTED.into_iter().find(|g| g.as_str() == s)
    }
}

/// How a client gets the result of a backchannel authentication (CIBA Core §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryMode {
    /// The client polls the token endpoint.
    Poll,
    /// The server calls the client's notification endpoint when the user decided; the client
    /// then polls once.
    Ping,
    /// The server sends the tokens (or the error) to the client's notification endpoint.
    Push,
}

impl DeliveryMode {
    /// Every mode, as discovery lists them.
    pub const ALL: [DeliveryMode; 3] = [Self::Poll, Self::Ping, Self::Push];

    /// The registered name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Poll => "poll",
            Self::Ping => "ping",
            Self::Push => "push",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// Registered client metadata, as stored and echoed (RFC 7591 §3.2.1).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClientMetadata {
    /// Exact redirect URIs (RFC 6749 §3.1.2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
    /// Token endpoint authentication method.
    pub token_endpoint_auth_method: AuthMethod,
    /// Grant types the client may use.
    pub grant_types: Vec<GrantType>,
    /// Response types (only `code`).
    pub response_types: Vec<String>,
    /// `web` or `native` (OIDC Registration §2).
    #[serde(default = "default_application_type")]
    pub application_type: String,
    /// Human-readable name shown on the consent page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// Home page of the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    /// Logo shown on the consent page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    /// Terms of service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tos_uri: Option<String>,
    /// Privacy policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_uri: Option<String>,
    /// Contacts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<String>,
    /// Scopes the client may request; `None` means every scope the issuer knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// ID token signing alg (OIDC Registration §2; RS256 when absent).
    pub id_token_signed_response_alg: String,
    /// `public` or `pairwise` (OIDC Core §8).
    #[serde(default = "default_subject_type")]
    pub subject_type: String,
    /// Sign `/userinfo` responses with this alg (OIDC Registration §2); JSON when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_signed_response_alg: Option<String>,
    /// Alg of JWT introspection responses (RFC 9701 §6); RS256 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_signed_response_alg: Option<String>,
    /// The client's public keys, inline (RFC 7591 §2); never together with `jwks_uri`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    /// Where the client publishes its public keys (RFC 7591 §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// RFC 8705 §2.1.2: the one certificate attribute a `tls_client_auth` client is known by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_subject_dn: Option<String>,
    /// A dNSName SAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_dns: Option<String>,
    /// A uniformResourceIdentifier SAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_uri: Option<String>,
    /// An iPAddress SAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_ip: Option<String>,
    /// An rfc822Name SAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_email: Option<String>,
    /// RFC 8705 §3.4: bind this client's access tokens to its certificate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tls_client_certificate_bound_access_tokens: bool,
    /// RFC 9449 §5.2: every token request of this client must carry a DPoP proof.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dpop_bound_access_tokens: bool,
    /// RFC 9449 §8: this client's DPoP proofs must carry a nonce the server chose (Lockspire
    /// extension; the server may also require it of every client).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_dpop_nonce: bool,
    /// JARM §3: the alg of its JWT-secured authorization responses (RS256 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_signed_response_alg: Option<String>,
    /// RFC 9396 §10.1: the `authorization_details` types this client may ask for; any type the
    /// server supports when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_details_types: Vec<String>,
    /// JARM §3: encrypt its JWT-secured authorization responses to its key with this JWE
    /// `alg` (RFC 7518 §4.1); not encrypted when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_encrypted_response_alg: Option<String>,
    /// JARM §3: the JWE `enc` of those responses; A128CBC-HS256 when only the `alg` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_encrypted_response_enc: Option<String>,
    /// RFC 9101 §10.5, OIDC Registration §2: the only alg its request objects may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_object_signing_alg: Option<String>,
    /// OIDC Registration §2: the JWE `alg` the client declares it may encrypt request objects
    /// with. A declaration only: any supported algorithm, or none, is still accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_object_encryption_alg: Option<String>,
    /// OIDC Registration §2: the JWE `enc` declared beside `request_object_encryption_alg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_object_encryption_enc: Option<String>,
    /// RFC 9126 §6: this client's authorization requests must be pushed first.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_pushed_authorization_requests: bool,
    /// The only alg the client's assertions may use, when registered (OIDC Registration §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_signing_alg: Option<String>,
    /// The resource identifiers (RFC 8707) this client serves as a resource server: it may
    /// introspect tokens whose audience includes one of them (RFC 7662 §2.1, §4). Set by the
    /// host or an operator, never by dynamic registration (Lockspire extension).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_server_for: Vec<String>,
    /// CIBA Core §4: how this client gets the result of a backchannel authentication: `poll`,
    /// `ping` or `push`. Set exactly when the client registered the CIBA grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_token_delivery_mode: Option<DeliveryMode>,
    /// CIBA Core §4: where `ping` and `push` notifications go (https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_client_notification_endpoint: Option<String>,
    /// CIBA Core §4: this client sends `user_code` with its backchannel requests.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backchannel_user_code_parameter: bool,
    /// CIBA Core §4: the alg of this client's signed backchannel authentication requests
    /// (§7.1.1); without it, its requests are not signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_authentication_request_signing_alg: Option<String>,
    /// Access token format override (Lockspire extension; the server default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_format: Option<String>,
    /// OIDC RP-Initiated Logout 1.0 §3.1: where the browser may be sent after logout, matched
    /// exactly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<String>,
    /// OIDC Back-Channel Logout 1.0 §2.2: where logout tokens are POSTed (https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    /// OIDC Back-Channel Logout 1.0 §2.2: logout tokens must carry `sid` (they always do here
    /// when the session is known).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backchannel_logout_session_required: bool,
    /// OIDC Front-Channel Logout 1.0 §2: the page the signed-out page loads in an iframe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontchannel_logout_uri: Option<String>,
    /// OIDC Front-Channel Logout 1.0 §2: `iss` and `sid` are added to the iframe's URL.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub frontchannel_logout_session_required: bool,
    /// Logout revokes also this client's grants that include `offline_access`, which otherwise
    /// outlive the browser session by design (OIDC Core §11) (Lockspire extension).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub logout_revokes_offline_access: bool,
    /// The security profile this client is held to, when stricter than the server's (FAPI 2.0
    /// Security Profile, FAPI 2.0 Message Signing); the server's when absent (Lockspire
    /// extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_profile: Option<SecurityProfile>,
    /// Software identifier (RFC 7591 §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    /// Software version (RFC 7591 §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
}

pub(crate) fn default_application_type() -> String {
    "web".to_owned()
}

pub(crate) fn default_subject_type() -> String {
    "public".to_owned()
}

impl ClientMetadata {
    /// The alg of this client's ID tokens.
    pub fn id_token_alg(&self) -> SigningAlg {
        self.id_token_signed_response_alg
            .parse()
            .unwrap_or(SigningAlg::RS256)
    }

    /// The pairwise sector (OIDC Core §8.1): the host of the redirect URIs, which registration
    /// requires to be one host. `None` for public-subject clients.
    pub fn sector(&self) -> Option<String> {
        if self.subject_type != "pairwise" {
            return None;
        }
        let first = self.redirect_uris.first()?;
        let url = Url::parse(first).ok()?;
        Some(url.host_str().unwrap_or(url.scheme()).to_owned())
    }

    /// The alg for signed userinfo responses, if the client asked for them.
    pub fn userinfo_alg(&self) -> Option<SigningAlg> {
        self.userinfo_signed_response_alg
            .as_deref()
            .and_then(|a| a.parse().ok())
    }

    /// The alg of JARM responses (JARM §3: RS256 unless registered).
    pub fn authorization_alg(&self) -> SigningAlg {
        self.authorization_signed_response_alg
            .as_deref()
            .and_then(|a| a.parse().ok())
            .unwrap_or(SigningAlg::RS256)
    }

    /// How JARM responses are encrypted to the client (JARM §3), when it registered that.
    pub fn authorization_encryption(&self) -> Option<(KeyManagementAlg, ContentEncryptionAlg)> {
        let alg = KeyManagementAlg::parse(self.authorization_encrypted_response_alg.as_deref()?)?;
        let enc = self
            .authorization_encrypted_response_enc
            .as_deref()
            .map_or(
                Some(ContentEncryptionAlg::A128CbcHs256),
                ContentEncryptionAlg::parse,
            )?;
        Some((alg, enc))
    }

    /// The alg for JWT introspection responses (RFC 9701).
    pub fn introspection_alg(&self) -> SigningAlg {
        self.introspection_signed_response_alg
            .as_deref()
            .and_then(|a| a.parse().ok())
            .unwrap_or(SigningAlg::RS256)
    }

    /// True when the client registered `grant`.
    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// Finds the registered redirect URI a request names (RFC 6749 §3.1.2.3, RFC 9700 §2.1:
    /// exact string comparison). The one exception is RFC 8252 §7.3, for native apps only
    /// (`application_type: native`), which get ephemeral ports: for a registered loopback IP
    /// literal over http, any port matches. A web client's loopback redirect URI matches
    /// exactly, port included (RFC 9700 §4.1.3).
    pub fn match_redirect_uri<'a>(&'a self, requested: &'a str) -> Option<&'a str> {
        if let Some(exact) = self.redirect_uris.iter().find(|r| *r == requested) {
            return Some(exact);
        }
        if self.application_type != "native" {
            return None;
        }
        let req = Url::parse(requested).ok()?;
        // Only a URI already in normal form: the value is kept and echoed as sent, so it must be
        // the registered one with another port, not a longer spelling of it (dot segments,
        // escapes) that parses to the same thing.
        if req.as_str() != requested {
            return None;
        }
        if req.scheme() != "http"
            || !matches!(req.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)))
        {
            return None;
        }
        self.redirect_uris
            .iter()
            .find(|registered| {
                Url::parse(registered).is_ok_and(|mut reg| {
                    reg.scheme() == "http"
                        && matches!(reg.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)))
                        && is_loopback_host(&reg)
                        && reg.set_port(req.port()).is_ok()
                        && reg.as_str() == req.as_str()
                })
            })
            .map(|_| requested)
    }
}

/// A native public client with these redirect URIs, for tests and fuzz targets.
#[cfg(any(test, fuzzing))]
pub(crate) fn example_metadata(uris: &[&str]) -> ClientMetadata {
    ClientMetadata {
        redirect_uris: uris.iter().map(|s| s.to_string()).collect(),
        token_endpoint_auth_method: AuthMethod::None,
        grant_types: vec![GrantType::AuthorizationCode],
        response_types: vec!["code".into()],
        application_type: "native".into(),
        client_name: None,
        client_uri: None,
        logo_uri: None,
        tos_uri: None,
        policy_uri: None,
        contacts: vec![],
        scope: None,
        id_token_signed_response_alg: "RS256".into(),
        subject_type: "public".into(),
        userinfo_signed_response_alg: None,
        introspection_signed_response_alg: None,
        jwks: None,
        jwks_uri: None,
        tls_client_auth_subject_dn: None,
        tls_client_auth_san_dns: None,
        tls_client_auth_san_uri: None,
        tls_client_auth_san_ip: None,
        tls_client_auth_san_email: None,
        tls_client_certificate_bound_access_tokens: false,
        dpop_bound_access_tokens: false,
        require_dpop_nonce: false,
        require_pushed_authorization_requests: false,
        request_object_signing_alg: None,
        request_object_encryption_alg: None,
        request_object_encryption_enc: None,
        authorization_signed_response_alg: None,
        authorization_encrypted_response_alg: None,
        authorization_encrypted_response_enc: None,
        authorization_details_types: Vec::new(),
        token_endpoint_auth_signing_alg: None,
        access_token_format: None,
        post_logout_redirect_uris: Vec::new(),
        backchannel_logout_uri: None,
        backchannel_logout_session_required: false,
        frontchannel_logout_uri: None,
        frontchannel_logout_session_required: false,
        logout_revokes_offline_access: false,
        backchannel_token_delivery_mode: None,
        backchannel_client_notification_endpoint: None,
        backchannel_user_code_parameter: false,
        backchannel_authentication_request_signing_alg: None,
        resource_server_for: Vec::new(),
        security_profile: None,
        software_id: None,
        software_version: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fapi_allows_only_private_key_jwt_and_mutual_tls() {
        for m in AuthMethod::SUPPORTED {
            let expected = matches!(
                m,
                AuthMethod::PrivateKeyJwt
                    | AuthMethod::TlsClientAuth
                    | AuthMethod::SelfSignedTlsClientAuth
            );
            assert_eq!(
                m.allowed_under(SecurityProfile::Fapi2Security),
                expected,
                "{m:?}"
            );
            assert!(m.allowed_under(SecurityProfile::None));
        }
    }

    #[test]
    fn redirect_uri_must_match_exactly() {
        let c = example_metadata(&["https://app.example/cb"]);
        assert!(c.match_redirect_uri("https://app.example/cb").is_some());
        for near in [
            "https://app.example/cb/",
            "https://app.example/cb?x=1",
            "https://APP.example/cb",
            "https://app.example/cb#f",
            "https://app.example:443/cb",
            "http://app.example/cb",
        ] {
            assert!(c.match_redirect_uri(near).is_none(), "{near} matched");
        }
    }

    #[test]
    fn loopback_ip_redirect_of_a_web_client_matches_only_exactly() {
        let mut c = example_metadata(&["http://127.0.0.1:8080/cb"]);
        c.application_type = "web".into();
        assert!(c.match_redirect_uri("http://127.0.0.1:8080/cb").is_some());
        assert!(c.match_redirect_uri("http://127.0.0.1:8081/cb").is_none());
        assert!(c.match_redirect_uri("http://127.0.0.1/cb").is_none());
    }

    #[test]
    fn loopback_ip_redirect_of_a_native_client_matches_any_port_only() {
        let c = example_metadata(&["http://127.0.0.1/cb", "http://localhost/cb"]);
        assert!(c.match_redirect_uri("http://127.0.0.1:51234/cb").is_some());
        assert!(
            c.match_redirect_uri("http://127.0.0.1:51234/other")
                .is_none()
        );
        // RFC 8252 §8.3: the port exception is for IP literals, not "localhost".
        assert!(c.match_redirect_uri("http://localhost:51234/cb").is_none());
        // Another spelling of the same path is not the registered URI.
        for longer in [
            "http://127.0.0.1:51234/x/../cb",
            "http://127.0.0.1:51234/%63b",
            "http://127.0.0.1:051234/cb",
        ] {
            assert!(c.match_redirect_uri(longer).is_none(), "{longer}");
        }
    }
}
