//! Lockspire: an embeddable OAuth 2.0 / OpenID Connect authorization server for axum apps.
//!
//! Lockspire owns protocol truth — clients, authorizations, codes, tokens, grants and keys.
//! The host app owns people and product policy — accounts, passwords, sessions, login UI — and
//! tells Lockspire who is signed in through one trait, [`AccountResolver`].
//!
//! ```no_run
//! # use lockspire::*;
//! # struct MyResolver;
//! # impl AccountResolver for MyResolver {
//! #   type Account = ();
//! #   async fn resolve_current_account(&self, _: &mut http::request::Parts, _: &Context) -> Result<Resolution<()>, HostError> { Ok(Resolution::NotSignedIn) }
//! #   async fn resolve_account(&self, _: &Subject, _: &Context) -> Result<Option<()>, HostError> { Ok(None) }
//! #   async fn build_claims(&self, _: &(), _: &Context) -> Result<Claims, HostError> { Ok(Claims::default()) }
//! #   fn redirect_for_login(&self, _: &http::request::Parts, _: &Context) -> InteractionResult { InteractionResult::Redirect("/login".into()) }
//! # }
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let lockspire = Lockspire::builder()
//!     .issuer("https://auth.example.com")?
//!     .database("sqlite://lockspire.db")
//!     .secret_key(SecretKey::from_base64(&std::env::var("LOCKSPIRE_SECRET_KEY")?)?)
//!     .account_resolver(MyResolver)
//!     .build()
//!     .await?;
//! let app: axum::Router = axum::Router::new().merge(lockspire.router());
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod clock;
mod config;
mod error;
mod fetch;
mod file_config;
mod host;
pub mod jose;
mod mtls;
mod operator;
mod protocol;
mod secrets;
pub mod store;
mod web;

use std::sync::{Arc, RwLock};

pub use clock::{Clock, ManualClock, SystemClock, UnixTime};
pub use config::{
    AccessTokenFormat, Config, ConfigError, Issuer, Lifetimes, RegistrationPolicy,
    RegistrationRules,
};
pub use error::{Challenge, ErrorCode, OAuthError};
pub use file_config::{DEFAULT_CONFIG_FILE, FileConfig, RegistrationFile};
pub use host::{
    AccountResolver, Claims, ConsentPage, ConsentRenderer, Context, HostError, InteractionResult,
    Resolution, ScopeRequest, SignedIn, Subject,
};
pub use mtls::{ClientCertificate, MtlsConfig, MtlsError, serve_tls};
pub use operator::{ClientInfo, KeyInfo, KeyState, Operator, OperatorError, PUBLISH_BEFORE_USE};
pub use protocol::client::{AuthMethod, ClientMetadata, GrantType};
pub use protocol::params::Params;
pub use protocol::registration::RegisteredClient;
pub use secrets::{InvalidSecretKey, SecretKey};
/// Re-exported so host code can build [`Claims`] without its own `serde_json` dependency.
pub use serde_json;
/// Re-exported for host code that builds login URLs.
pub use url;

use crate::host::DynResolver;
use crate::jose::{KeyRing, SigningAlg};
use crate::secrets::ServerSecrets;
use crate::store::{ClientStatus, Store};

/// The tenant of a single-issuer host; every row carries a tenant id (SURFACE S29).
const DEFAULT_TENANT: &str = "default";

/// An OAuth 2.0 / OpenID Connect provider. Cheap to clone; mount [`Lockspire::router`].
#[derive(Clone)]
pub struct Lockspire {
    inner: Arc<Provider>,
}

/// Everything one issuer needs per request, passed to protocol code as a value.
pub(crate) struct Provider {
    pub(crate) config: Config,
    pub(crate) tenant: String,
    pub(crate) store: Store,
    pub(crate) secrets: ServerSecrets,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) resolver: Arc<dyn DynResolver>,
    keys: RwLock<Arc<KeyRing>>,
    pub(crate) discovery: Arc<str>,
    pub(crate) consent: Option<Arc<dyn ConsentRenderer>>,
    pub(crate) jwks: protocol::client_keys::JwksCache,
    pub(crate) mtls: Option<mtls::Mtls>,
}

impl Provider {
    pub(crate) fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// The current key ring (cheap: an `Arc` clone).
    pub(crate) fn keys(&self) -> Arc<KeyRing> {
        match self.keys.read() {
            Ok(k) => k.clone(),
            // A panic while swapping the ring cannot leave it half-written: it is one Arc.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// A security event at this issuer, now: what an actor did, how it ended and why.
    pub(crate) fn security_event(
        &self,
        action: &str,
        actor: store::Actor<'_>,
        outcome: store::Outcome,
        client_id: Option<&str>,
        subject: Option<&str>,
        reason: &str,
    ) -> store::AuditEvent {
        store::AuditEvent::security(
            &self.tenant,
            self.now(),
            action,
            actor,
            outcome,
            client_id,
            subject,
            reason,
        )
    }

    /// Deletes what has expired, and audit events past their retention.
    async fn prune(&self) -> Result<u64, store::StoreError> {
        let now = self.now();
        let audit_before = now.saturating_sub(self.config.audit_retention);
        self.store.prune_expired(now, audit_before).await
    }

    pub(crate) fn replace_keys(&self, ring: KeyRing) {
        let ring = Arc::new(ring);
        match self.keys.write() {
            Ok(mut k) => *k = ring,
            Err(poisoned) => *poisoned.into_inner() = ring,
        }
    }

    pub(crate) fn issuer(&self) -> &str {
        self.config.issuer.as_str()
    }

    /// The `sub` a client sees: the local subject, or its pairwise form (OIDC Core §8).
    pub(crate) fn subject_for(&self, client: &ClientMetadata, local: &str) -> String {
        match client.sector() {
            Some(sector) => self.secrets.pairwise_subject(&sector, local),
            None => local.to_owned(),
        }
    }

    pub(crate) fn context(&self, client_id: &str, scopes: &[String]) -> Context {
        Context {
            issuer: self.issuer().to_owned(),
            client_id: client_id.to_owned(),
            scopes: scopes.to_vec(),
            ..Context::default()
        }
    }
}

impl std::fmt::Debug for Lockspire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lockspire")
            .field("issuer", &self.inner.config.issuer)
            .finish_non_exhaustive()
    }
}

/// An application a user has authorized, as a "connected apps" page lists it.
#[derive(Clone, Debug)]
pub struct Authorization {
    /// The client.
    pub client_id: String,
    /// Its registered name.
    pub client_name: Option<String>,
    /// Scopes the user consented to.
    pub scopes: Vec<String>,
    /// Resources the user consented to (RFC 8707).
    pub resources: Vec<String>,
    /// When consent was last given.
    pub updated_at: UnixTime,
}

/// Builds a [`Lockspire`]. Issuer, database, secret key and account resolver are required;
/// everything else has a secure default. All settings are checked once, in [`Builder::build`].
pub struct Builder {
    issuer: Option<Issuer>,
    database: Option<DatabaseSource>,
    secret_key: Option<SecretKey>,
    resolver: Option<Arc<dyn DynResolver>>,
    registration: RegistrationPolicy,
    access_token_format: AccessTokenFormat,
    extra_scopes: Vec<String>,
    resources: Vec<String>,
    offline_access_required: bool,
    dev_mode: bool,
    registration_rules: RegistrationRules,
    mtls: Option<MtlsConfig>,
    lifetimes: Lifetimes,
    clock: Arc<dyn Clock>,
    key_refresh: std::time::Duration,
    consent: Option<Arc<dyn ConsentRenderer>>,
    audit_retention: std::time::Duration,
}

enum DatabaseSource {
    Url(String),
    Store(Store),
}

impl Lockspire {
    /// Starts building a provider.
    pub fn builder() -> Builder {
        Builder {
            issuer: None,
            database: None,
            secret_key: None,
            resolver: None,
            registration: RegistrationPolicy::Disabled,
            access_token_format: AccessTokenFormat::Opaque,
            extra_scopes: Vec::new(),
            resources: Vec::new(),
            offline_access_required: true,
            dev_mode: false,
            registration_rules: RegistrationRules::default(),
            mtls: None,
            lifetimes: Lifetimes::default(),
            clock: Arc::new(SystemClock),
            key_refresh: KEY_REFRESH,
            consent: None,
            audit_retention: AUDIT_RETENTION,
        }
    }

    /// The protocol endpoints, to `merge` into the host's router (of any state type) at the
    /// issuer's path.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        web::router(self.inner.clone())
    }

    /// RFC 8414 §3.1: for an issuer with a path (`https://host/oauth`), the metadata lives at
    /// `/.well-known/oauth-authorization-server/oauth` on the host's root, outside the path the
    /// protocol router is nested under. Merge this router at the root; it is empty for issuers
    /// without a path, whose metadata [`Lockspire::router`] already serves.
    pub fn well_known_router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        web::well_known_router(self.inner.clone())
    }

    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The store, for operators' tooling.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Operator actions: clients and signing keys.
    pub fn operator(&self) -> Operator {
        Operator {
            inner: self.inner.clone(),
        }
    }

    /// Registers a client through the library API, applying the same metadata rules as
    /// RFC 7591 registration. `client_id` may be chosen by the host (e.g. a well-known demo
    /// client); otherwise one is generated. The secret, for confidential clients, is returned
    /// once and stored only as a keyed digest.
    pub async fn create_client(
        &self,
        client_id: Option<&str>,
        metadata: serde_json::Value,
    ) -> Result<RegisteredClient, OAuthError> {
        protocol::registration::create(&self.inner, client_id, metadata).await
    }

    /// Replaces a client's metadata, with the same validation as registration.
    pub async fn update_client(
        &self,
        client_id: &str,
        metadata: serde_json::Value,
    ) -> Result<ClientMetadata, OAuthError> {
        protocol::registration::update(&self.inner, client_id, metadata).await
    }

    /// A client's registered metadata and status, if it exists.
    pub async fn client(
        &self,
        client_id: &str,
    ) -> Result<Option<(ClientMetadata, bool)>, OAuthError> {
        Ok(self
            .inner
            .store
            .client(&self.inner.tenant, client_id)
            .await?
            .map(|c| (c.metadata, c.status == ClientStatus::Active)))
    }

    /// Disables a client: it is refused at every endpoint and its tokens are suspended. This is
    /// reversible: [`Lockspire::enable_client`] makes the client and its unexpired, unrevoked
    /// tokens work again. To end a client for good, [`Lockspire::delete_client`].
    pub async fn disable_client(&self, client_id: &str) -> Result<bool, OAuthError> {
        found(self.operator().set_client_enabled(client_id, false).await)
    }

    /// The applications `subject` has authorized, for a host's "connected apps" page
    /// (SURFACE S5).
    pub async fn authorizations(
        &self,
        subject: &Subject,
    ) -> Result<Vec<Authorization>, OAuthError> {
        let p = &self.inner;
        let mut out = Vec::new();
        for (client_id, consent, updated_at) in
            p.store.consents_of(&p.tenant, subject.as_str()).await?
        {
            let client = p.store.client(&p.tenant, &client_id).await?;
            out.push(Authorization {
                client_name: client.and_then(|c| c.metadata.client_name),
                client_id,
                scopes: consent.scopes,
                resources: consent.resources,
                updated_at,
            });
        }
        Ok(out)
    }

    /// Withdraws `subject`'s authorization of `client_id`: the standing consent goes, and every
    /// grant between them is revoked with all its codes and tokens (SURFACE S5).
    pub async fn revoke_authorization(
        &self,
        subject: &Subject,
        client_id: &str,
    ) -> Result<bool, OAuthError> {
        let p = &self.inner;
        let event = p.security_event(
            "consent_revoked",
            store::Actor::User(subject.as_str()),
            store::Outcome::Done,
            Some(client_id),
            Some(subject.as_str()),
            "the user withdrew the authorization",
        );
        Ok(p.store
            .revoke_authorization(&p.tenant, subject.as_str(), client_id, p.now(), &event)
            .await?)
    }

    /// Deletes expired codes, tokens, interactions and grants, and audit events older than the
    /// retention period ([`Builder::audit_retention`]), now. [`Builder::build`] also starts a
    /// background task that does this every ten minutes.
    pub async fn prune_expired(&self) -> Result<u64, OAuthError> {
        Ok(self.inner.prune().await?)
    }

    /// Deletes a client for good (RFC 7592 §2.3): refused everywhere, every grant and token of
    /// it revoked, and its id never issued again. False when there was no such client.
    pub async fn delete_client(&self, client_id: &str) -> Result<bool, OAuthError> {
        found(self.operator().delete_client(client_id).await)
    }

    /// Re-enables a disabled client, and with it its suspended tokens. A deleted client stays
    /// deleted (false).
    pub async fn enable_client(&self, client_id: &str) -> Result<bool, OAuthError> {
        found(self.operator().set_client_enabled(client_id, true).await)
    }
}

/// An operator result as the facade reports it: false for a client that does not exist.
fn found(result: Result<(), OperatorError>) -> Result<bool, OAuthError> {
    match result {
        Ok(()) => Ok(true),
        Err(OperatorError::NotFound(_)) => Ok(false),
        Err(OperatorError::Invalid(e)) => Err(e),
        Err(e) => Err(OAuthError::internal(e.to_string())),
    }
}

impl Builder {
    /// The issuer identifier (RFC 8414 §2): https, or http on a loopback host for development.
    pub fn issuer(mut self, issuer: &str) -> Result<Self, ConfigError> {
        self.issuer = Some(Issuer::parse(issuer)?);
        Ok(self)
    }

    /// The database: `sqlite://path`, `sqlite::memory:` or `postgres://…`. Opened and migrated
    /// in [`Builder::build`].
    pub fn database(mut self, url: &str) -> Self {
        self.database = Some(DatabaseSource::Url(url.to_owned()));
        self
    }

    /// An already opened store, shared with other parts of the host.
    pub fn store(mut self, store: Store) -> Self {
        self.database = Some(DatabaseSource::Store(store));
        self
    }

    /// The key that seals private keys at rest and peppers client-secret digests. Keep it out
    /// of the database; losing it makes stored keys and secrets unusable.
    pub fn secret_key(mut self, key: SecretKey) -> Self {
        self.secret_key = Some(key);
        self
    }

    /// The host's [`AccountResolver`].
    pub fn account_resolver<R: AccountResolver>(mut self, resolver: R) -> Self {
        self.resolver = Some(Arc::new(resolver));
        self
    }

    /// Who may use dynamic client registration (RFC 7591). Default: disabled.
    pub fn registration(mut self, policy: RegistrationPolicy) -> Self {
        self.registration = policy;
        self
    }

    /// The default access token format (SURFACE S10). Default: opaque.
    pub fn access_token_format(mut self, format: AccessTokenFormat) -> Self {
        self.access_token_format = format;
        self
    }

    /// Scopes of the host's API, offered beside the OIDC scopes.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// The resource servers (RFC 8707 resource indicators, absolute URIs) tokens may be issued
    /// for; a `resource` parameter naming anything else is `invalid_target`. Without any, tokens
    /// carry the issuer as audience and `resource` is refused.
    pub fn resources<I, S>(mut self, resources: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.resources = resources.into_iter().map(Into::into).collect();
        self
    }

    /// Whether OpenID requests need the `offline_access` scope to receive a refresh token
    /// (OIDC Core §11). Default: true. Plain OAuth requests (no `openid`) are unaffected.
    pub fn offline_access_required(mut self, required: bool) -> Self {
        self.offline_access_required = required;
        self
    }

    /// The host's consent page (the built-in one is used otherwise).
    pub fn consent_renderer(mut self, renderer: impl ConsentRenderer) -> Self {
        self.consent = Some(Arc::new(renderer));
        self
    }

    /// Allow-lists for dynamic registration (RFC 7591): scopes, grant types, authentication
    /// methods, redirect URI schemes and hosts.
    pub fn registration_rules(mut self, rules: RegistrationRules) -> Self {
        self.registration_rules = rules;
        self
    }

    /// Mutual TLS (RFC 8705): where client certificates come from and which CAs
    /// `tls_client_auth` trusts. Serve with [`serve_tls`] or behind a proxy listed here.
    pub fn mtls(mut self, config: MtlsConfig) -> Self {
        self.mtls = Some(config);
        self
    }

    /// Development mode: the server may fetch client JWKS from loopback addresses (never
    /// private, link-local or metadata ones). Off by default; never enable it in production.
    pub fn dev_mode(mut self, on: bool) -> Self {
        self.dev_mode = on;
        self
    }

    /// Token and interaction lifetimes.
    pub fn lifetimes(mut self, lifetimes: Lifetimes) -> Self {
        self.lifetimes = lifetimes;
        self
    }

    /// How often each process re-reads the published signing keys, bounding how long a key
    /// rotated through another process takes to be used and published here. Default:
    /// [`KEY_REFRESH`].
    pub fn key_refresh_interval(mut self, every: std::time::Duration) -> Self {
        self.key_refresh = every.max(std::time::Duration::from_millis(100));
        self
    }

    /// How long audit events are kept before the maintenance task deletes them. Default:
    /// [`AUDIT_RETENTION`] (90 days). Whole seconds, at least one.
    pub fn audit_retention(mut self, keep: std::time::Duration) -> Self {
        self.audit_retention = keep;
        self
    }

    /// The clock (tests move time with [`ManualClock`]).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Checks every setting, opens and migrates the database, and makes sure an active signing
    /// key exists for every supported alg (SURFACE S2: a first key is created on first start).
    pub async fn build(self) -> Result<Lockspire, ConfigError> {
        let mut parts = self.into_parts()?;
        let secrets = parts.secrets()?;
        let resolver = parts
            .resolver
            .take()
            .ok_or(ConfigError::Missing("account_resolver"))?;
        let store = match parts
            .database
            .take()
            .ok_or(ConfigError::Missing("database"))?
        {
            DatabaseSource::Url(url) => Store::connect(&url).await?,
            DatabaseSource::Store(store) => store,
        };
        let tenant = DEFAULT_TENANT.to_owned();
        let now = parts.clock.now();
        operator::ensure_active_keys(&store, &secrets, &tenant, now).await?;
        let ring = operator::load_ring(&store, &secrets, &tenant, now).await?;
        let key_refresh = parts.key_refresh;
        let lockspire = Lockspire {
            inner: Arc::new(parts.provider(store, secrets, resolver, ring)?),
        };
        spawn_maintenance(Arc::downgrade(&lockspire.inner), key_refresh);
        Ok(lockspire)
    }

    /// Builds only the operator API (clients and keys) — for tools such as the `lockspire`
    /// command. Needs issuer, database and secret key; no account resolver. Unlike
    /// [`Builder::build`], it neither migrates the database nor creates keys.
    pub async fn build_operator(self) -> Result<Operator, ConfigError> {
        let mut parts = self.into_parts()?;
        let secrets = parts.secrets()?;
        let store = match parts
            .database
            .take()
            .ok_or(ConfigError::Missing("database"))?
        {
            DatabaseSource::Url(url) => Store::open(&url).await?,
            DatabaseSource::Store(store) => store,
        };
        let provider = parts.provider(
            store,
            secrets,
            Arc::new(host::NoHost),
            KeyRing::new(Vec::new()),
        )?;
        Ok(Operator {
            inner: Arc::new(provider),
        })
    }

    /// Checks the settings both builds share and turns them into a [`Config`].
    fn into_parts(self) -> Result<Parts, ConfigError> {
        let issuer = self.issuer.ok_or(ConfigError::Missing("issuer"))?;
        for scope in &self.extra_scopes {
            if protocol::scope::parse_scope(Some(scope))
                .map(|s| s.len() != 1)
                .unwrap_or(true)
            {
                return Err(ConfigError::Invalid(
                    "scopes",
                    format!("{scope:?} is not a single scope token"),
                ));
            }
        }
        let l = self.lifetimes;
        if [
            l.authorization_code,
            l.access_token,
            l.id_token,
            l.refresh_token,
            l.interaction,
        ]
        .iter()
        .any(|s| *s <= 0)
        {
            return Err(ConfigError::Invalid(
                "lifetimes",
                "every lifetime must be positive".into(),
            ));
        }
        if l.authorization_code > 600 {
            return Err(ConfigError::Invalid(
                "lifetimes",
                "RFC 6749 §4.1.2: codes live at most 10 minutes".into(),
            ));
        }
        let audit_retention = i64::try_from(self.audit_retention.as_secs())
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| {
                ConfigError::Invalid(
                    "audit_retention",
                    "must be at least one second and fit in 64 bits".into(),
                )
            })?;
        if let RegistrationPolicy::InitialAccessToken(Some(t)) = &self.registration
            && t.len() < 16
        {
            return Err(ConfigError::Invalid(
                "registration",
                "initial access tokens need at least 16 characters".into(),
            ));
        }
        let config = Config {
            issuer,
            lifetimes: self.lifetimes,
            registration: self.registration,
            access_token_format: self.access_token_format,
            access_token_alg: SigningAlg::ES256,
            extra_scopes: self.extra_scopes,
            offline_access_required: self.offline_access_required,
            dev_mode: self.dev_mode,
            registration_rules: self.registration_rules,
            mtls_enabled: self.mtls.is_some(),
            mtls_endpoint_base: self.mtls.as_ref().and_then(|m| m.endpoint_base.clone()),
            resources: self.resources,
            audit_retention,
        };
        Ok(Parts {
            mtls: self.mtls.as_ref().map(mtls::Mtls::new).transpose()?,
            config,
            database: self.database,
            secret_key: self.secret_key,
            resolver: self.resolver,
            clock: self.clock,
            key_refresh: self.key_refresh,
            consent: self.consent,
        })
    }
}

/// A checked builder, before the database is opened.
struct Parts {
    config: Config,
    database: Option<DatabaseSource>,
    secret_key: Option<SecretKey>,
    resolver: Option<Arc<dyn DynResolver>>,
    clock: Arc<dyn Clock>,
    key_refresh: std::time::Duration,
    consent: Option<Arc<dyn ConsentRenderer>>,
    mtls: Option<mtls::Mtls>,
}

impl Parts {
    fn secrets(&mut self) -> Result<ServerSecrets, ConfigError> {
        let key = self
            .secret_key
            .take()
            .ok_or(ConfigError::Missing("secret_key"))?;
        Ok(ServerSecrets::new(&key))
    }

    fn provider(
        self,
        store: Store,
        secrets: ServerSecrets,
        resolver: Arc<dyn DynResolver>,
        ring: KeyRing,
    ) -> Result<Provider, ConfigError> {
        let discovery = protocol::discovery::document(&self.config, &ring)
            .to_string()
            .into();
        Ok(Provider {
            jwks: protocol::client_keys::JwksCache::new(fetch::Fetcher::new(self.config.dev_mode)?),
            config: self.config,
            tenant: DEFAULT_TENANT.to_owned(),
            store,
            secrets,
            clock: self.clock,
            resolver,
            keys: RwLock::new(Arc::new(ring)),
            discovery,
            consent: self.consent,
            mtls: self.mtls,
        })
    }
}

/// Keeps a provider current for as long as it lives: re-reads the published keys when any
/// process sharing a PostgreSQL database announces a key change, and every `every` in any case
/// (a backstop, and the only way on SQLite, whose other writers are operator tools), and prunes
/// expired rows every [`PRUNE_EVERY`]. Several processes may all prune: the deletes are
/// idempotent.
fn spawn_maintenance(provider: std::sync::Weak<Provider>, every: std::time::Duration) {
    let Some(mut key_changes) = provider.upgrade().map(|p| p.store.key_changes()) else {
        return;
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut last_prune = tokio::time::Instant::now();
        loop {
            let announced = tokio::select! {
                _ = tick.tick() => false,
                changed = key_changes.changed() => {
                    if changed.is_err() {
                        return; // The store is gone.
                    }
                    true
                }
            };
            let Some(p) = provider.upgrade() else { return };
            let operator = Operator { inner: p.clone() };
            if let Err(e) = operator.reload_keys().await {
                tracing::warn!(error = %e, "reloading signing keys failed; keeping the current ones");
            }
            if !announced && last_prune.elapsed() >= PRUNE_EVERY {
                last_prune = tokio::time::Instant::now();
                if let Err(e) = p.prune().await {
                    tracing::warn!(error = %e, "pruning expired rows failed; will retry");
                }
            }
        }
    });
}

/// How often each process re-reads the published signing keys, by default.
pub const KEY_REFRESH: std::time::Duration = std::time::Duration::from_secs(30);

/// How long audit events are kept, by default: 90 days.
pub const AUDIT_RETENTION: std::time::Duration = std::time::Duration::from_secs(90 * 24 * 3600);

/// How often each process deletes expired rows.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);
