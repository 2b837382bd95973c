//! Issuer settings, validated once when the provider is built.

use std::fmt;

use url::Url;

use crate::jose::SigningAlg;
use crate::model::client::{AuthMethod, ClientMetadata, GrantType};
use crate::model::profile::{FAPI_CODE_LIFETIME, FAPI_PUSHED_LIFETIME, SecurityProfile};
use crate::model::scope::ScopeSet;
use crate::model::uri::is_loopback_host;

/// How Lockspire holds its PostgreSQL connections, per process. SQLite, embedded, has one
/// writer and a reader per worker thread, and ignores these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatabasePool {
    /// Most connections open at once. Size PostgreSQL's `max_connections` for this per
    /// process, plus one per process for change announcements. Default: 16.
    pub max_connections: u32,
    /// Longest wait for the answer to one statement; a longer one means a database that
    /// stopped answering, and the request gets `temporarily_unavailable`. Default: 10 s.
    pub statement_timeout: std::time::Duration,
    /// A connection idle this long is closed, giving its server process back. Default: 10 min.
    pub idle_lifetime: std::time::Duration,
}

impl Default for DatabasePool {
    fn default() -> Self {
        Self {
            max_connections: 16,
            statement_timeout: std::time::Duration::from_secs(10),
            idle_lifetime: std::time::Duration::from_secs(600),
        }
    }
}

impl DatabasePool {
    /// `None` when a value is out of range: at least one connection (at most 1,000), and
    /// timeouts of at least a second.
    pub(crate) fn check(&self) -> Option<&'static str> {
        if !(1..=1000).contains(&self.max_connections) {
            return Some("max_connections must be between 1 and 1000");
        }
        if self.statement_timeout < std::time::Duration::from_secs(1)
            || self.idle_lifetime < std::time::Duration::from_secs(1)
        {
            return Some("timeouts must be at least one second");
        }
        None
    }
}

/// The issuer identifier (RFC 8414 §2, OIDC Discovery §3): an absolute https URL without query
/// or fragment; http only on a loopback host, for development. Compared as an exact string.
#[derive(Clone, PartialEq, Eq)]
pub struct Issuer(String);

/// Why an issuer identifier was refused (RFC 8414 §2).
#[derive(Debug, thiserror::Error)]
#[error("issuer {text:?} is invalid: {why}")]
pub struct InvalidIssuer {
    pub(crate) text: String,
    pub(crate) why: &'static str,
}

impl Issuer {
    /// Parses and checks an issuer identifier. A trailing slash is removed so that endpoint
    /// URLs are built by plain concatenation.
    pub fn parse(text: &str) -> Result<Self, InvalidIssuer> {
        let bad = |why| InvalidIssuer {
            text: text.to_owned(),
            why,
        };
        let trimmed = text.strip_suffix('/').unwrap_or(text);
        let url = Url::parse(trimmed).map_err(|_| bad("not an absolute URL"))?;
        if url.query().is_some() || url.fragment().is_some() || trimmed.contains(['?', '#']) {
            return Err(bad("must not have a query or fragment"));
        }
        if url.username() != "" || url.password().is_some() {
            return Err(bad("must not carry credentials"));
        }
        match url.scheme() {
            "https" => {}
            "http" if is_loopback_host(&url) => {}
            "http" => return Err(bad("must use https unless the host is loopback")),
            _ => return Err(bad("must be an https URL")),
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The identifier as configured.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An endpoint URL under the issuer.
    pub(crate) fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.0, path)
    }

    /// True when the issuer is served over http on loopback (development).
    pub(crate) fn is_insecure(&self) -> bool {
        self.0.starts_with("http://")
    }
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Issuer({})", self.0)
    }
}

impl fmt::Display for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who may register clients at `POST /register` (RFC 7591 §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistrationPolicy {
    /// Anyone may register (RFC 7591 §3: open registration).
    Open,
    /// A caller must present an initial access token as a Bearer token (RFC 7591 §3): one
    /// minted through [`crate::Operator::mint_initial_access_token`], or this fixed token when
    /// one is configured.
    InitialAccessToken(Option<String>),
    /// The endpoint is not served and not advertised.
    Disabled,
}

/// What dynamic registration may ask for (RFC 7591 §2). `None` leaves a dimension open;
/// operators registering through the library or the `lockspire` command are not limited.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistrationRules {
    /// Scopes dynamic clients may register.
    pub scopes: Option<Vec<String>>,
    /// Grant types dynamic clients may register.
    pub grant_types: Option<Vec<GrantType>>,
    /// Authentication methods dynamic clients may register.
    pub auth_methods: Option<Vec<AuthMethod>>,
    /// Redirect URI schemes (e.g. `https`).
    pub redirect_schemes: Option<Vec<String>>,
    /// Redirect URI hosts, exact.
    pub redirect_hosts: Option<Vec<String>>,
    /// Lifetime in seconds of the secrets of dynamically registered clients
    /// (`client_secret_expires_at`, RFC 7591 §3.2.1); `None`: they do not expire.
    pub client_secret_lifetime: Option<i64>,
}

/// The format of access tokens: opaque, or JWT (RFC 9068).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessTokenFormat {
    /// Random opaque strings, validated by lookup or introspection.
    Opaque,
    /// JWT access tokens per RFC 9068, signed with the access-token alg (ES256 by default).
    Jwt,
}

impl AccessTokenFormat {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "opaque" => Some(Self::Opaque),
            "jwt" => Some(Self::Jwt),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Opaque => "opaque",
            Self::Jwt => "jwt",
        }
    }
}

/// Lifetimes in seconds.
#[derive(Clone, Copy, Debug)]
pub struct Lifetimes {
    /// Authorization code; RFC 6749 §4.1.2 recommends at most 10 minutes, FAPI 2.0 60 s.
    pub authorization_code: i64,
    /// Access tokens.
    pub access_token: i64,
    /// ID tokens.
    pub id_token: i64,
    /// Refresh tokens (each rotation starts a new lifetime; the grant bounds the family).
    pub refresh_token: i64,
    /// A pending authorization waiting for login and consent.
    pub interaction: i64,
    /// A pushed authorization request's `request_uri` (RFC 9126 §2.2: short; 5 to 600 s).
    pub pushed_request: i64,
    /// A device code and its user code (RFC 8628 §3.2 `expires_in`): how long the user has to
    /// enter the code and decide.
    pub device_code: i64,
    /// The longest a backchannel authentication request (CIBA Core §7.3 `expires_in`) waits
    /// for the user; a client's `requested_expiry` may shorten it.
    pub backchannel_request: i64,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            authorization_code: 60,
            access_token: 3600,
            id_token: 3600,
            refresh_token: 30 * 24 * 3600,
            interaction: 900,
            pushed_request: 60,
            device_code: 600,
            backchannel_request: 600,
        }
    }
}

/// The validated settings of one issuer.
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) issuer: Issuer,
    pub(crate) lifetimes: Lifetimes,
    pub(crate) registration: RegistrationPolicy,
    pub(crate) access_token_format: AccessTokenFormat,
    pub(crate) access_token_alg: SigningAlg,
    pub(crate) extra_scopes: Vec<String>,
    pub(crate) offline_access_required: bool,
    /// Development mode: outbound fetches may reach loopback addresses.
    pub(crate) dev_mode: bool,
    pub(crate) registration_rules: RegistrationRules,
    /// True when client certificates can reach Lockspire (RFC 8705).
    pub(crate) mtls_enabled: bool,
    /// Base URL of the mTLS endpoint aliases (RFC 8705 §5).
    pub(crate) mtls_endpoint_base: Option<String>,
    /// Resource indicators (RFC 8707) tokens may be issued for.
    pub(crate) resources: Vec<String>,
    /// Seconds audit events are kept.
    pub(crate) audit_retention: i64,
    /// The `authorization_details` types the host registered (RFC 9396), by name: what a
    /// client may register in `authorization_details_types`.
    pub(crate) authorization_details_types: Vec<String>,
    /// Every client must push its authorization requests (RFC 9126 §5).
    pub(crate) require_pushed_requests: bool,
    /// A pushed request of a confidential client may name a redirect URI it did not register
    /// (RFC 9126 §2.4).
    pub(crate) pushed_unregistered_redirect_uris: bool,
    /// DPoP proofs must carry a server nonce (RFC 9449 §8).
    pub(crate) require_dpop_nonce: bool,
    /// Seconds a client of a decoupled flow waits between polls at first (RFC 8628 §3.2, CIBA
    /// Core §7.3 `interval`).
    pub(crate) poll_interval: i64,
    /// Proxies whose `X-Forwarded-For` is believed for a request's source address.
    pub(crate) trusted_proxies: Vec<std::net::IpAddr>,
    /// Seconds an outbox worker holds the calls it leased before another may take them.
    pub(crate) outbox_lease: i64,
    /// The host reaches users for backchannel authentication (CIBA): the endpoint is served.
    pub(crate) backchannel_enabled: bool,
    /// The host checks backchannel user codes (CIBA Core §7.1).
    pub(crate) backchannel_user_codes: bool,
    /// An operator tool's instance (the `lockspire` command), which knows nothing of the host's
    /// code: it registers clients of features the host offers (CIBA) without knowing whether
    /// it does, and the serving processes refuse what they do not offer.
    pub(crate) operator_tool: bool,
    /// The profile every client is held to at least (FAPI 2.0).
    pub(crate) security_profile: SecurityProfile,
}

/// Scopes every issuer knows: OpenID Connect's (OIDC Core §5.4, §11).
const STANDARD_SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "address",
    "phone",
    "offline_access",
];

impl Config {
    /// The issuer.
    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    /// Every scope this issuer knows: the OIDC scopes and the host's own.
    pub(crate) fn scopes_supported(&self) -> impl Iterator<Item = &str> {
        STANDARD_SCOPES
            .iter()
            .copied()
            .chain(self.extra_scopes.iter().map(String::as_str))
    }

    pub(crate) fn is_known_scope(&self, scope: &str) -> bool {
        self.scopes_supported().any(|s| s == scope)
    }

    /// True when `client` may ask for `scope`: the issuer knows it, and the client registered
    /// it or registered no scope list (RFC 7591 §2 `scope`).
    pub(crate) fn allows_scope(&self, client: &ClientMetadata, scope: &str) -> bool {
        self.is_known_scope(scope)
            && match &client.scope {
                Some(allowed) => ScopeSet::from_stored(allowed).contains(scope),
                None => true,
            }
    }

    /// The security profile the server holds every client to, at least.
    pub fn security_profile(&self) -> SecurityProfile {
        self.security_profile
    }

    /// The profile `client` is held to: the stricter of its own and the server's.
    pub(crate) fn profile_for(&self, client: &ClientMetadata) -> SecurityProfile {
        client
            .security_profile
            .map_or(self.security_profile, |own| own.max(self.security_profile))
    }

    /// How long an authorization code of `client` lives (FAPI 2.0 §5.3.2.1: at most 60 s).
    pub(crate) fn code_lifetime_for(&self, client: &ClientMetadata) -> i64 {
        self.capped_for(
            client,
            self.lifetimes.authorization_code,
            FAPI_CODE_LIFETIME,
        )
    }

    /// How long a pushed request of `client` waits for the browser (FAPI 2.0 §5.3.2.2: less
    /// than 600 s).
    pub(crate) fn pushed_lifetime_for(&self, client: &ClientMetadata) -> i64 {
        self.capped_for(client, self.lifetimes.pushed_request, FAPI_PUSHED_LIFETIME)
    }

    /// `configured`, or at most `fapi_cap` for a client held to a FAPI 2.0 profile.
    fn capped_for(&self, client: &ClientMetadata, configured: i64, fapi_cap: i64) -> i64 {
        if self.profile_for(client).is_fapi() {
            configured.min(fapi_cap)
        } else {
            configured
        }
    }

    /// The access token format for `client`: its own setting, or the issuer's default.
    pub(crate) fn access_token_format_for(&self, client: &ClientMetadata) -> AccessTokenFormat {
        client
            .access_token_format
            .as_deref()
            .and_then(AccessTokenFormat::parse)
            .unwrap_or(self.access_token_format)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_requires_https_except_loopback() {
        assert!(Issuer::parse("https://auth.example.com").is_ok());
        assert!(Issuer::parse("http://127.0.0.1:4000").is_ok());
        assert!(Issuer::parse("http://localhost:4000/").is_ok());
        assert!(Issuer::parse("http://auth.example.com").is_err());
        assert!(Issuer::parse("https://auth.example.com/?a=b").is_err());
        assert!(Issuer::parse("https://auth.example.com/#x").is_err());
        assert!(Issuer::parse("auth.example.com").is_err());
        assert_eq!(
            Issuer::parse("https://a.example/")
                .map(|i| i.0)
                .ok()
                .as_deref(),
            Some("https://a.example")
        );
    }
}
