//! The resource-server toolkit: protects a host's own API with the access tokens an issuer
//! grants, as one tower layer and one extractor.
//!
//! A [`ResourceServer`] is one protected resource, named by its resource identifier (RFC 8707
//! §2, RFC 9728 §1.2): the `resource` clients ask tokens for, and the audience those tokens
//! carry. It verifies tokens either **in process**, beside the issuer it was made from
//! ([`Lockspire::resource_server`](crate::Lockspire::resource_server)): JWT access tokens
//! against the issuer's key ring, opaque ones by one read of the store; or **remotely**, in a
//! separate service ([`ResourceServer::remote`]): JWT access tokens against the issuer's JWKS,
//! fetched and cached, opaque ones by introspection (RFC 7662), cached for a bounded time.
//!
//! Every request to a route behind [`RequireToken`] must carry an access token in the
//! `Authorization` header (RFC 6750 §2.1; the `DPoP` scheme with a proof for DPoP-bound
//! tokens, RFC 9449 §7.1) that is unexpired, issued by the issuer for this resource (`aud`),
//! granted the route's scopes, and presented by the holder of the key or certificate it is
//! bound to (RFC 9449 §7, RFC 8705 §3). Refusals follow RFC 6750 §3 and RFC 9449 §7.1: `401`
//! with a `Bearer` or `DPoP` challenge naming `invalid_token`, `403 insufficient_scope` with
//! the `scope` needed, and `resource_metadata` pointing at the RFC 9728 document
//! [`ResourceServer::metadata_router`] serves. Handlers receive the verified token through the
//! [`AccessToken`] extractor.
//!
//! ```no_run
//! # async fn run(lockspire: lockspire::Lockspire) -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{Json, Router, routing::get};
//! use lockspire::resource::AccessToken;
//!
//! async fn me(token: AccessToken) -> Json<serde_json::Value> {
//!     Json(serde_json::json!({ "sub": token.subject(), "scopes": token.scopes() }))
//! }
//!
//! let api = lockspire.resource_server("https://app.example.com/api")?.build();
//! let app: Router = Router::new()
//!     .route("/api/me", get(me))
//!     .route_layer(api.require_token().scopes(["profile"]))
//!     .merge(api.metadata_router())
//!     .merge(lockspire.router());
//! # Ok(()) }
//! ```

mod cache;
mod layer;
mod metadata;
mod refusal;
mod remote;
mod token;
mod verify;

use std::sync::Arc;

use url::Url;

use crate::protocol::provider::Provider;
use crate::secrets::RotatingNonces;

#[cfg(any(test, fuzzing))]
pub(crate) use cache::jwt_kid;
pub use layer::{RequireToken, RequireTokenService};
pub use remote::Remote;
pub use token::{AccessToken, MissingLayer, TokenBinding};

/// Why a [`ResourceServer`] could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResourceServerError {
    /// The resource identifier is not an absolute `https` URI without query and fragment
    /// (RFC 8707 §2; `http` is allowed on loopback hosts, for development).
    #[error("resource identifier {0:?} refused: {1}")]
    InvalidResource(String, &'static str),
    /// The in-process issuer does not issue tokens for this resource: it is not among the
    /// builder's `resources`.
    #[error("the issuer does not issue tokens for {0:?}: add it to the builder's resources")]
    UnknownResource(String),
    /// The remote issuer's metadata could not be fetched or is unusable (RFC 8414 §3).
    #[error("issuer metadata: {0}")]
    Issuer(String),
    /// The settings contradict each other.
    #[error("resource server settings: {0}")]
    Misconfigured(&'static str),
}

/// One protected resource: how its tokens are verified and what it requires of them. Made by a
/// [`ResourceServerBuilder`]; cheap to clone.
#[derive(Clone)]
pub struct ResourceServer {
    inner: Arc<Settings>,
}

impl std::fmt::Debug for ResourceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceServer")
            .field("resource", &self.inner.resource)
            .field("issuer", &self.inner.issuer)
            .finish_non_exhaustive()
    }
}

/// Where tokens are verified.
pub(crate) enum Source {
    /// Beside the issuer: its key ring and store.
    InProcess(Arc<Provider>),
    /// Against a remote issuer's JWKS and introspection endpoint.
    Remote(Arc<remote::Issuer>),
}

pub(crate) struct Settings {
    /// The resource identifier: the audience tokens must carry.
    pub(crate) resource: String,
    /// The scheme, host and port DPoP proofs name in `htu` (RFC 9449 §4.3).
    pub(crate) origin: String,
    pub(crate) issuer: String,
    pub(crate) source: Source,
    /// Only DPoP-bound tokens are accepted (RFC 9728 §2 `dpop_bound_access_tokens_required`).
    pub(crate) dpop_required: bool,
    /// Only tokens bound to a DPoP key or a certificate are accepted (FAPI 2.0 §5.3.3).
    pub(crate) sender_constrained: bool,
    /// The issuer's security profile, which limits the algs of DPoP proofs (FAPI 2.0 §5.4.1);
    /// `None` for a remote issuer, whose profile this process does not know.
    pub(crate) profile: crate::model::profile::SecurityProfile,
    /// The nonces proofs must carry, when required (RFC 9449 §9).
    pub(crate) nonces: Option<RotatingNonces>,
    /// JWT access tokens are also checked for revocation.
    pub(crate) check_revocation: bool,
    pub(crate) scopes_supported: Vec<String>,
    pub(crate) resource_name: Option<String>,
    /// The path of the RFC 9728 metadata document on this host.
    pub(crate) metadata_path: String,
    /// Its full URL, the `resource_metadata` of challenges.
    pub(crate) metadata_url: String,
    /// JWTs verified before.
    pub(crate) verified: cache::VerifiedJwts,
}

impl Settings {
    /// The time tokens and proofs are judged at.
    pub(crate) fn now(&self) -> i64 {
        match &self.source {
            Source::InProcess(p) => p.now(),
            Source::Remote(issuer) => issuer.now(),
        }
    }

    /// True while the issuer publishes the signing key `kid`.
    pub(crate) fn publishes(&self, kid: &str) -> bool {
        match &self.source {
            Source::InProcess(p) => p.keys().get(kid).is_some(),
            Source::Remote(issuer) => issuer.publishes(kid),
        }
    }
}

/// Where a resource server's DPoP nonces come from.
enum NonceKey {
    /// The issuer's secret key (in process), or a key the host gave: every process that
    /// holds it issues and accepts the same nonces.
    Shared(Arc<[u8; 32]>),
    /// None given: a random key of this process.
    Process,
}

/// The scope of a resource server's DPoP nonces: apart from the issuer's and from every other
/// resource's (RFC 9449 §9).
fn nonce_scope(resource: &str) -> String {
    format!("resource\u{0}{resource}")
}

/// Checks a resource identifier (RFC 8707 §2, RFC 9728 §1.2) and derives the origin DPoP
/// proofs name and the RFC 9728 §3.1 metadata path and URL.
fn parse_resource(
    resource: &str,
    allow_http_loopback: bool,
) -> Result<ParsedResource, ResourceServerError> {
    let bad = |why| ResourceServerError::InvalidResource(resource.to_owned(), why);
    let url = Url::parse(resource).map_err(|_| bad("not an absolute URI"))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a resource identifier has no query or fragment"));
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(bad("a resource identifier names a host")),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback && allow_http_loopback => {}
        _ => return Err(bad("a resource identifier is an https URI")),
    }
    // The metadata path becomes a route: a segment the router would read as a parameter
    // cannot be served.
    if url
        .path_segments()
        .into_iter()
        .flatten()
        .any(|s| s.starts_with(':') || s.starts_with('*'))
    {
        return Err(bad(
            "a path segment of the identifier begins with ':' or '*'",
        ));
    }
    let origin = url.origin().ascii_serialization();
    // §3.1: the well-known segment goes between the host and the path, the path's terminating
    // slash removed.
    let path = url.path().trim_end_matches('/');
    let metadata_path = format!("/.well-known/oauth-protected-resource{path}");
    let metadata_url = format!("{origin}{metadata_path}");
    Ok(ParsedResource {
        origin,
        metadata_path,
        metadata_url,
    })
}

/// A resource server's policy, the same in process and remotely.
#[derive(Default)]
struct Policy {
    dpop_required: bool,
    sender_constrained: bool,
    profile: crate::model::profile::SecurityProfile,
    dpop_nonce: bool,
    check_revocation: bool,
    scopes_supported: Option<Vec<String>>,
    resource_name: Option<String>,
}

/// The settings of a resource server before it is made; `Mode` is [`InProcess`] or
/// [`Remote`]. Made by [`Lockspire::resource_server`](crate::Lockspire::resource_server) or
/// [`ResourceServer::remote`]; `build` makes the [`ResourceServer`], whose settings then never
/// change, so every layer and metadata document made from it agrees.
#[must_use = "build() makes the resource server"]
pub struct ResourceServerBuilder<Mode> {
    policy: Policy,
    mode: Mode,
}

impl<Mode> std::fmt::Debug for ResourceServerBuilder<Mode> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceServerBuilder")
            .finish_non_exhaustive()
    }
}

/// Verifying beside the issuer (see [`ResourceServerBuilder`]).
pub struct InProcess {
    p: Arc<Provider>,
    resource: String,
    parsed: ParsedResource,
}

/// A resource identifier, checked, with what derives from it.
struct ParsedResource {
    origin: String,
    metadata_path: String,
    metadata_url: String,
}

impl<Mode> ResourceServerBuilder<Mode> {
    /// Accept only DPoP-bound access tokens (RFC 9449 §7.1): bearer tokens, and tokens bound
    /// to a certificate, are refused. Announced in the metadata as
    /// `dpop_bound_access_tokens_required` (RFC 9728 §2). Default: off.
    pub fn require_dpop(mut self, required: bool) -> Self {
        self.policy.dpop_required = required;
        self
    }

    /// Accept only sender-constrained access tokens: bound to a DPoP key (RFC 9449) or to a
    /// client certificate (RFC 8705), used with their proof. Bearer tokens bound to nothing are
    /// refused with `invalid_token`, as FAPI 2.0 Security Profile §5.3.3 requires of its
    /// resource servers. Default: in process, on when the issuer's security profile is FAPI
    /// 2.0; remotely, off.
    pub fn require_sender_constrained(mut self, required: bool) -> Self {
        self.policy.sender_constrained = required;
        self
    }

    /// DPoP proofs sent to this resource must carry a nonce it chose (RFC 9449 §9); a proof
    /// without one is answered `401` with `error="use_dpop_nonce"` and the nonce in the
    /// `DPoP-Nonce` header, and every answer to a request with a proof carries the current
    /// nonce. Nonces are stateless and change every two minutes; they are this resource's own,
    /// never good at the issuer or another resource, whatever the issuer or a client requires
    /// there. In process they derive from the issuer's secret key; a remote resource server run
    /// as several processes gives them all the same [`ResourceServerBuilder::secret_key`].
    /// Default: off.
    pub fn require_dpop_nonce(mut self, required: bool) -> Self {
        self.policy.dpop_nonce = required;
        self
    }

    /// Also refuse JWT access tokens that were revoked before they expired (RFC 7009): in
    /// process one read of the store, remotely an introspection call (cached like those of
    /// opaque tokens, and so needing an introspection client). Opaque tokens are always
    /// checked. Default: off, so a JWT is verified with no call at all, and a revoked one works
    /// until it expires (keep access token lifetimes short).
    pub fn check_revocation(mut self, on: bool) -> Self {
        self.policy.check_revocation = on;
        self
    }

    /// The scopes the metadata lists as used by this resource (RFC 9728 §2
    /// `scopes_supported`). Default: in process, every scope the issuer knows but `openid` and
    /// `offline_access`; remotely, none.
    pub fn scopes_supported<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.policy.scopes_supported = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// The human-readable name the metadata gives (RFC 9728 §2 `resource_name`).
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.policy.resource_name = Some(name.into());
        self
    }
}

impl ResourceServerBuilder<InProcess> {
    pub(crate) fn in_process(
        p: Arc<Provider>,
        resource: &str,
    ) -> Result<Self, ResourceServerError> {
        let parsed = parse_resource(resource, true)?;
        if !p.config.resources.iter().any(|r| r == resource) {
            return Err(ResourceServerError::UnknownResource(resource.to_owned()));
        }
        Ok(Self {
            policy: Policy {
                sender_constrained: p.config.security_profile.is_fapi(),
                profile: p.config.security_profile,
                ..Policy::default()
            },
            mode: InProcess {
                p,
                resource: resource.to_owned(),
                parsed,
            },
        })
    }

    /// Makes the resource server.
    pub fn build(self) -> ResourceServer {
        let InProcess {
            p,
            resource,
            parsed,
        } = self.mode;
        let key = NonceKey::Shared(Arc::new(p.secrets.dpop_nonce_key()));
        // Scopes about the sign-in itself (OIDC Core §3.1.2.1, §11) say nothing of a resource.
        let default_scopes = p
            .config
            .scopes_supported()
            .filter(|s| !matches!(*s, "openid" | "offline_access"))
            .map(str::to_owned)
            .collect();
        let issuer = p.issuer().to_owned();
        finish(
            self.policy,
            resource,
            parsed,
            issuer,
            Source::InProcess(p),
            &key,
            default_scopes,
        )
    }
}

/// The resource server `policy` and the rest describe.
fn finish(
    policy: Policy,
    resource: String,
    parsed: ParsedResource,
    issuer: String,
    source: Source,
    nonce_key: &NonceKey,
    default_scopes: Vec<String>,
) -> ResourceServer {
    let nonces = policy.dpop_nonce.then(|| {
        let scope = nonce_scope(&resource);
        match nonce_key {
            NonceKey::Shared(key) => RotatingNonces::new(&key[..], &scope),
            NonceKey::Process => RotatingNonces::new(&crate::secrets::random_bytes::<32>(), &scope),
        }
    });
    ResourceServer {
        inner: Arc::new(Settings {
            resource,
            origin: parsed.origin,
            issuer,
            source,
            dpop_required: policy.dpop_required,
            sender_constrained: policy.sender_constrained || policy.dpop_required,
            profile: policy.profile,
            nonces,
            check_revocation: policy.check_revocation,
            scopes_supported: policy.scopes_supported.unwrap_or(default_scopes),
            resource_name: policy.resource_name,
            metadata_path: parsed.metadata_path,
            metadata_url: parsed.metadata_url,
            verified: cache::VerifiedJwts::default(),
        }),
    }
}

impl ResourceServer {
    /// A resource server in a separate service, trusting the issuer at `issuer` (its RFC 8414
    /// metadata is fetched at [`ResourceServerBuilder::<Remote>::build`]) for the resource
    /// `resource`.
    pub fn remote(issuer: &str, resource: &str) -> ResourceServerBuilder<Remote> {
        ResourceServerBuilder {
            policy: Policy::default(),
            mode: Remote::new(issuer, resource),
        }
    }

    /// The layer that authenticates requests to the routes it wraps; add the scopes each
    /// route needs with [`RequireToken::scopes`].
    pub fn require_token(&self) -> RequireToken {
        RequireToken::new(self.clone())
    }

    /// The resource identifier.
    pub fn resource(&self) -> &str {
        &self.inner.resource
    }

    /// The URL of this resource's RFC 9728 metadata document.
    pub fn metadata_url(&self) -> &str {
        &self.inner.metadata_url
    }
}
