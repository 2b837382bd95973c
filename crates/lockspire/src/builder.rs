//! Building a [`Lockspire`]: every setting checked once, the database opened and migrated, and
//! a signing key for every supported alg made sure of.

use std::sync::{Arc, RwLock};

use crate::clock::{Clock, SystemClock};
use crate::config::{
    AccessTokenFormat, Config, DatabasePool, InvalidIssuer, Issuer, Lifetimes, RegistrationPolicy,
    RegistrationRules,
};
use crate::database::Database;
use crate::exchange::{DynExchangePolicy, TokenExchangePolicy};
use crate::fetch::Fetcher;
use crate::host::{
    self, AccountResolver, AuthorizationDetailsType, BackchannelAuthenticator, ConsentRenderer,
    DetailTypes, DeviceRenderer, DynBackchannel, DynResolver,
};
use crate::jose::{KeyRing, SigningAlg};
use crate::lockspire::Lockspire;
use crate::model::profile::{FAPI_CODE_LIFETIME, FAPI_PUSHED_LIFETIME, SecurityProfile};
use crate::mtls::{self, MtlsConfig};
use crate::operator::Operator;
use crate::protocol::outbox::{self, handle::Outbox};
use crate::protocol::provider::{AUTHORIZATION_SERVER_NONCES, DEFAULT_TENANT, Provider};
use crate::protocol::{discovery, jwks_cache, maintenance, scope, signing_keys};
use crate::secrets::{SecretKey, ServerSecrets};
use crate::store::Store;

/// Why a configuration value was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The issuer is not an acceptable URL.
    #[error("issuer {0:?} is invalid: {1}")]
    Issuer(String, &'static str),
    /// A required builder setting was not given.
    #[error("missing builder setting: {0}")]
    Missing(&'static str),
    /// Another setting is invalid.
    #[error("invalid setting {0}: {1}")]
    Invalid(&'static str, String),
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Database(#[from] crate::store::StoreError),
    /// Signing keys could not be loaded or created.
    #[error("keys: {0}")]
    Keys(#[from] crate::jose::KeyError),
    /// Mutual TLS settings are unusable.
    #[error(transparent)]
    Mtls(#[from] crate::mtls::MtlsError),
    /// The outbound HTTP client could not be built.
    #[error("outbound HTTP: {0}")]
    Fetch(#[from] crate::fetch::FetchError),
}

impl From<InvalidIssuer> for ConfigError {
    fn from(e: InvalidIssuer) -> Self {
        let InvalidIssuer { text, why } = e;
        Self::Issuer(text, why)
    }
}

impl From<signing_keys::LifecycleError> for ConfigError {
    fn from(e: signing_keys::LifecycleError) -> Self {
        match e {
            signing_keys::LifecycleError::Store(e) => Self::Database(e),
            signing_keys::LifecycleError::Keys(e) => Self::Keys(e),
        }
    }
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
    require_pushed_requests: bool,
    pushed_unregistered_redirect_uris: bool,
    require_dpop_nonce: bool,
    dev_mode: bool,
    registration_rules: RegistrationRules,
    mtls: Option<MtlsConfig>,
    lifetimes: Lifetimes,
    clock: Arc<dyn Clock>,
    key_refresh: std::time::Duration,
    consent: Option<Arc<dyn ConsentRenderer>>,
    device_page: Option<Arc<dyn DeviceRenderer>>,
    backchannel: Option<Arc<dyn DynBackchannel>>,
    exchange_policy: Option<Arc<dyn DynExchangePolicy>>,
    detail_types: DetailTypes,
    audit_retention: std::time::Duration,
    pool: DatabasePool,
    poll_interval: std::time::Duration,
    trusted_proxies: Vec<std::net::IpAddr>,
    outbox_lease: std::time::Duration,
    security_profile: SecurityProfile,
}

enum DatabaseSource {
    Url(String),
    Opened(Database),
}

impl Lockspire {
    /// Starts building a provider.
    pub fn builder() -> Builder {
        Builder::new()
    }
}

impl Builder {
    pub(crate) fn new() -> Self {
        Self {
            issuer: None,
            database: None,
            secret_key: None,
            resolver: None,
            registration: RegistrationPolicy::Disabled,
            access_token_format: AccessTokenFormat::Opaque,
            extra_scopes: Vec::new(),
            resources: Vec::new(),
            offline_access_required: true,
            require_pushed_requests: false,
            pushed_unregistered_redirect_uris: false,
            require_dpop_nonce: false,
            dev_mode: false,
            registration_rules: RegistrationRules::default(),
            mtls: None,
            lifetimes: Lifetimes::default(),
            clock: Arc::new(SystemClock),
            key_refresh: KEY_REFRESH,
            consent: None,
            device_page: None,
            backchannel: None,
            exchange_policy: None,
            detail_types: DetailTypes::default(),
            audit_retention: AUDIT_RETENTION,
            pool: DatabasePool::default(),
            poll_interval: std::time::Duration::from_secs(5),
            trusted_proxies: Vec::new(),
            outbox_lease: std::time::Duration::from_secs(30),
            security_profile: SecurityProfile::None,
        }
    }

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

    /// A database already opened (by deployment tooling that checked its migrations, say).
    /// [`Builder::build`] migrates it; [`Builder::build_operator`] uses it as it is.
    pub fn opened_database(mut self, database: Database) -> Self {
        self.database = Some(DatabaseSource::Opened(database));
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

    /// The default access token format (opaque, or RFC 9068 JWT). Default: opaque.
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

    /// Accepts `authorization_details` objects of type `name` (RFC 9396 §2), checked and
    /// described on the consent page by `handler`. Discovery lists every registered type
    /// (`authorization_details_types_supported`); other types are refused.
    pub fn authorization_details_type(
        mut self,
        name: impl Into<String>,
        handler: impl AuthorizationDetailsType,
    ) -> Self {
        self.detail_types.insert(name.into(), Arc::new(handler));
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
    /// `tls_client_auth` trusts. Serve with [`serve_tls`](crate::serve_tls) or behind a proxy listed here.
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

    /// Every client must push its authorization requests first (RFC 9126 §5): `/authorize`
    /// then accepts only a `request_uri` from the pushed authorization request endpoint.
    /// Default: off (a client can still require it for itself in its metadata, §6).
    pub fn require_pushed_authorization_requests(mut self, required: bool) -> Self {
        self.require_pushed_requests = required;
        self
    }

    /// The security profile every client is held to, at least (a client may register a
    /// stricter one in its `security_profile` metadata, never a weaker one):
    /// [`SecurityProfile::Fapi2Security`] (FAPI 2.0 Security Profile) or
    /// [`SecurityProfile::Fapi2MessageSigning`] (FAPI 2.0 Message Signing). Under either,
    /// every authorization request is pushed (RFC 9126), and [`Builder::build`] refuses
    /// lifetimes the profile does not allow (codes over 60 s, pushed requests of 600 s) and
    /// unregistered redirect URIs in pushed requests. Default: [`SecurityProfile::None`].
    pub fn security_profile(mut self, profile: SecurityProfile) -> Self {
        self.security_profile = profile;
        self
    }

    /// Lets a confidential client's pushed request name a redirect URI it did not register
    /// (RFC 9126 §2.4): the client authenticated when it pushed, so the URI is its own word, and
    /// it still has to be a well-formed redirect URI (https, loopback http, or a reverse-domain
    /// scheme; no fragment, no wildcard). Requests sent through the browser, and public
    /// clients' pushes, still match registered URIs exactly. Default: off.
    pub fn allow_unregistered_redirect_uris_in_pushed_requests(mut self, allowed: bool) -> Self {
        self.pushed_unregistered_redirect_uris = allowed;
        self
    }

    /// Every DPoP proof sent to this server (`/token`, `/par`, `/userinfo`) must carry a nonce
    /// the server chose (RFC 9449 §8): a proof made in advance, by someone who once held the
    /// key, is then useless. A proof without a current nonce is answered `use_dpop_nonce` with
    /// the nonce to use in the `DPoP-Nonce` header; every answer to a request with a proof
    /// carries the current nonce, so clients rarely pay the extra round trip. Nonces are
    /// stateless (derived from the secret key and the time) and change every two minutes.
    /// Default: off (a client can require it for itself with the `require_dpop_nonce`
    /// metadata).
    pub fn require_dpop_nonce(mut self, required: bool) -> Self {
        self.require_dpop_nonce = required;
        self
    }

    /// How long a client of a decoupled flow — a device (RFC 8628 §3.2), a CIBA client of the
    /// poll or ping mode (CIBA Core §7.3) — waits between polls of the token endpoint at first
    /// (`interval`); a client that polls sooner is told `slow_down` and must wait 5 s longer
    /// from then on. Whole seconds, 1 to 60. Default: 5 s.
    pub fn poll_interval(mut self, every: std::time::Duration) -> Self {
        self.poll_interval = every;
        self
    }

    /// Offers backchannel authentication (CIBA Core): `authenticator` finds the users clients
    /// name and reaches their authentication devices. The host answers each request with
    /// [`Lockspire::approve_backchannel`] or [`Lockspire::deny_backchannel`].
    pub fn backchannel_authenticator(
        mut self,
        authenticator: impl BackchannelAuthenticator,
    ) -> Self {
        self.backchannel = Some(Arc::new(authenticator));
        self
    }

    /// Decides token exchanges (RFC 8693) by the host's `policy`: who may exchange which token
    /// for which audience, as a delegate or impersonating. Without one, a client may exchange
    /// only an access token issued to it, with no actor, for one no wider. Either way an
    /// exchange never widens the subject token's scopes or audiences.
    pub fn token_exchange_policy(mut self, policy: impl TokenExchangePolicy) -> Self {
        self.exchange_policy = Some(Arc::new(policy));
        self
    }

    /// Renders the device verification page (RFC 8628 §3.3) as the host wants it to look;
    /// Lockspire's own page is used otherwise.
    pub fn device_page(mut self, renderer: impl DeviceRenderer) -> Self {
        self.device_page = Some(Arc::new(renderer));
        self
    }

    /// Reverse proxies in front of Lockspire whose `X-Forwarded-For` header is believed: a
    /// request arriving from one of these addresses counts as coming from the nearest address
    /// the header names that is not one of them (read from the right, as each proxy appends
    /// the address it saw), for the limits on guessing user codes (RFC 8628 §5.1). Other
    /// requests count by their peer address, which needs the host to serve with
    /// `into_make_service_with_connect_info::<SocketAddr>()`. Default: none.
    pub fn trusted_proxies(mut self, proxies: impl IntoIterator<Item = std::net::IpAddr>) -> Self {
        self.trusted_proxies = proxies.into_iter().collect();
        self
    }

    /// How long a process's outbox worker holds a call it is delivering (a CIBA notification)
    /// before another process may take it over: longer than a delivery takes (at most a few
    /// seconds), short enough that a call held by a process that died is soon sent by another.
    /// Whole seconds, at least 10. Default: 30 s.
    pub fn outbox_lease(mut self, lease: std::time::Duration) -> Self {
        self.outbox_lease = lease;
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

    /// How PostgreSQL connections are held: pool size, statement timeout, idle lifetime.
    /// Default: [`DatabasePool::default`].
    pub fn database_pool(mut self, pool: DatabasePool) -> Self {
        self.pool = pool;
        self
    }

    /// The clock (tests move time with [`ManualClock`](crate::ManualClock)).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Checks every setting, opens and migrates the database, and makes sure an active signing
    /// key exists for every supported alg (a first key is created on first start).
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
            DatabaseSource::Url(url) => Store::connect_with(&url, &parts.pool).await?,
            DatabaseSource::Opened(database) => {
                database.migrate().await?;
                database.store
            }
        };
        let tenant = DEFAULT_TENANT.to_owned();
        let now = parts.clock.now();
        signing_keys::ensure_active_keys(&store, &secrets, &tenant, now).await?;
        let ring = signing_keys::load_ring(&store, &secrets, &tenant, now).await?;
        let key_refresh = parts.key_refresh;
        let lockspire = Lockspire {
            inner: Arc::new(parts.provider(store, secrets, resolver, ring)?),
        };
        maintenance::spawn(Arc::downgrade(&lockspire.inner), key_refresh);
        // Every process may end a browser session, whose logout tokens go through the outbox.
        outbox::spawn(Arc::downgrade(&lockspire.inner));
        Ok(lockspire)
    }

    /// Builds only the operator API (clients and keys) — for tools such as the `lockspire`
    /// command. Needs issuer, database and secret key; no account resolver. Unlike
    /// [`Builder::build`], it neither migrates the database nor creates keys.
    pub async fn build_operator(self) -> Result<Operator, ConfigError> {
        let mut parts = self.into_parts()?;
        parts.config.operator_tool = true;
        let secrets = parts.secrets()?;
        let store = match parts
            .database
            .take()
            .ok_or(ConfigError::Missing("database"))?
        {
            DatabaseSource::Url(url) => Store::open_with(&url, &parts.pool).await?,
            DatabaseSource::Opened(database) => database.store,
        };
        let provider = parts.provider(
            store,
            secrets,
            Arc::new(host::NoHost),
            KeyRing::new(Vec::<(crate::jose::ServerKey, crate::jose::KeyStatus)>::new()),
        )?;
        Ok(Operator {
            inner: Arc::new(provider),
        })
    }

    /// Checks the settings both builds share and turns them into a [`Config`].
    fn into_parts(self) -> Result<Parts, ConfigError> {
        let issuer = self.issuer.ok_or(ConfigError::Missing("issuer"))?;
        for scope in &self.extra_scopes {
            if scope::parse_scope(Some(scope))
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
            l.pushed_request,
            l.device_code,
            l.backchannel_request,
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
        if !(5..=600).contains(&l.pushed_request) {
            return Err(ConfigError::Invalid(
                "lifetimes",
                "RFC 9126 §2.2: a pushed request lives 5 to 600 seconds".into(),
            ));
        }
        if self.security_profile.is_fapi() {
            check_profile(
                self.security_profile,
                &l,
                self.pushed_unregistered_redirect_uris,
            )?;
        }
        let poll_interval = i64::try_from(self.poll_interval.as_secs())
            .ok()
            .filter(|s| (1..=60).contains(s))
            .ok_or_else(|| {
                ConfigError::Invalid("poll_interval", "must be 1 to 60 seconds".into())
            })?;
        let outbox_lease = i64::try_from(self.outbox_lease.as_secs())
            .ok()
            .filter(|s| *s >= 10)
            .ok_or_else(|| {
                ConfigError::Invalid("outbox_lease", "must be at least 10 seconds".into())
            })?;
        let audit_retention = i64::try_from(self.audit_retention.as_secs())
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| {
                ConfigError::Invalid(
                    "audit_retention",
                    "must be at least one second and fit in 64 bits".into(),
                )
            })?;
        if let Some(why) = self.pool.check() {
            return Err(ConfigError::Invalid("database_pool", why.into()));
        }
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
            // FAPI 2.0 §5.3.2.2: authorization requests are pushed.
            require_pushed_requests: self.require_pushed_requests
                || self.security_profile.is_fapi(),
            security_profile: self.security_profile,
            pushed_unregistered_redirect_uris: self.pushed_unregistered_redirect_uris,
            require_dpop_nonce: self.require_dpop_nonce,
            poll_interval,
            trusted_proxies: self.trusted_proxies,
            outbox_lease,
            backchannel_enabled: self.backchannel.is_some(),
            operator_tool: false,
            backchannel_user_codes: self.backchannel.as_ref().is_some_and(|b| b.user_codes()),
            dev_mode: self.dev_mode,
            registration_rules: self.registration_rules,
            mtls_enabled: self.mtls.is_some(),
            mtls_endpoint_base: self.mtls.as_ref().and_then(|m| m.endpoint_base.clone()),
            resources: self.resources,
            audit_retention,
            authorization_details_types: self.detail_types.names().map(str::to_owned).collect(),
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
            device_page: self.device_page,
            backchannel: self.backchannel,
            exchange_policy: self.exchange_policy,
            detail_types: self.detail_types,
            pool: self.pool,
        })
    }
}

/// The settings a server-wide FAPI 2.0 profile cannot run with (FAPI 2.0 Security Profile
/// §5.3.2.1, §5.3.2.2): they would be cut silently otherwise, and an operator should hear of it.
pub(crate) fn check_profile(
    profile: SecurityProfile,
    l: &Lifetimes,
    unregistered_redirects: bool,
) -> Result<(), ConfigError> {
    let refuse = |field, why: String| Err(ConfigError::Invalid(field, format!("{profile}: {why}")));
    if l.authorization_code > FAPI_CODE_LIFETIME {
        return refuse(
            "lifetimes",
            format!("authorization codes live at most {FAPI_CODE_LIFETIME} s"),
        );
    }
    if l.pushed_request > FAPI_PUSHED_LIFETIME {
        return refuse(
            "lifetimes",
            "a pushed request's request_uri expires in less than 600 s".into(),
        );
    }
    if unregistered_redirects {
        return refuse(
            "allow_unregistered_redirect_uris_in_pushed_requests",
            "redirect URIs are matched exactly against the registered ones".into(),
        );
    }
    Ok(())
}

/// A checked builder, before the database is opened.
struct Parts {
    pool: DatabasePool,
    config: Config,
    database: Option<DatabaseSource>,
    secret_key: Option<SecretKey>,
    resolver: Option<Arc<dyn DynResolver>>,
    clock: Arc<dyn Clock>,
    key_refresh: std::time::Duration,
    consent: Option<Arc<dyn ConsentRenderer>>,
    device_page: Option<Arc<dyn DeviceRenderer>>,
    backchannel: Option<Arc<dyn DynBackchannel>>,
    exchange_policy: Option<Arc<dyn DynExchangePolicy>>,
    detail_types: DetailTypes,
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
        let discovery = discovery::document(&self.config, &ring, &self.detail_types)
            .to_string()
            .into();
        Ok(Provider {
            jwks: jwks_cache::JwksCache::new(Fetcher::new(self.config.dev_mode)?),
            dpop_nonces: secrets.dpop_nonces(AUTHORIZATION_SERVER_NONCES),
            outbox: Outbox::new(self.config.dev_mode)?,
            config: self.config,
            tenant: DEFAULT_TENANT.to_owned(),
            store,
            secrets,
            clock: self.clock,
            resolver,
            keys: RwLock::new(Arc::new(ring)),
            key_reads: Default::default(),
            discovery,
            consent: self.consent,
            device_page: self.device_page,
            backchannel: self.backchannel,
            exchange_policy: self.exchange_policy,
            detail_types: self.detail_types,
            mtls: self.mtls,
        })
    }
}

/// How often each process re-reads the published signing keys, by default.
pub const KEY_REFRESH: std::time::Duration = std::time::Duration::from_secs(30);

/// How long audit events are kept, by default: 90 days.
pub const AUDIT_RETENTION: std::time::Duration = std::time::Duration::from_secs(90 * 24 * 3600);
