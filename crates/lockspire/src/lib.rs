//! Lockspire: an embeddable OAuth 2.0 / OpenID Connect authorization server for axum apps.
//!
//! Lockspire owns protocol truth — clients, authorizations, codes, tokens, grants and keys.
//! The host app owns people and product policy — accounts, passwords, sessions, login UI — and
//! tells Lockspire who is signed in through one trait, [`AccountResolver`].
//!
//! ```no_run
//! use lockspire::http::request::Parts;
//! use lockspire::*;
//!
//! /// Who is signed in, as the host's own sessions say. This one never signs anybody in, which
//! /// is enough for clients that get tokens for themselves (client credentials); a real host
//! /// reads its session here (the demo host's `resolver.rs` does it with axum-login).
//! struct MyResolver;
//!
//! impl AccountResolver for MyResolver {
//!     type Account = ();
//!     async fn resolve_current_account(&self, _: &mut Parts, _: &Context) -> Result<Resolution<()>, HostError> {
//!         Ok(Resolution::NotSignedIn)
//!     }
//!     async fn resolve_account(&self, _: &Subject, _: &Context) -> Result<Option<()>, HostError> {
//!         Ok(None)
//!     }
//!     async fn build_claims(&self, _: &(), _: &Context) -> Result<Claims, HostError> {
//!         Ok(Claims::default())
//!     }
//!     fn redirect_for_login(&self, _: &Parts, _: &Context) -> InteractionResult {
//!         InteractionResult::Redirect("/login".into())
//!     }
//!     async fn sign_out(&self, _: &mut Parts, _: &Context) -> Result<http::HeaderMap, HostError> {
//!         Ok(http::HeaderMap::new())
//!     }
//! }
//!
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

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
compile_error!(
    "Lockspire needs a database: enable its `sqlite` or `postgres` feature (both are on by default)."
);

mod builder;
mod clock;
mod config;
mod database;
mod exchange;
mod fetch;
mod file_config;
/// Entry points of the fuzz targets (built only for tests and `cargo fuzz`).
#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub mod fuzz;
mod host;
pub mod jose;
mod lockspire;
mod model;
mod mtls;
mod operator;
mod protocol;
pub mod resource;
mod secrets;
mod store;
mod web;

pub use builder::{AUDIT_RETENTION, Builder, ConfigError, KEY_REFRESH};
pub use clock::{Clock, ManualClock, SystemClock, UnixTime};
pub use config::{
    AccessTokenFormat, Config, DatabasePool, InvalidIssuer, Issuer, Lifetimes, RegistrationPolicy,
    RegistrationRules,
};
pub use database::{Database, DatabaseKind, Migration};
pub use exchange::{
    ExchangeDecision, ExchangeRequest, PresentedKind, PresentedToken, TokenExchangePolicy,
};
pub use fetch::FetchError;
pub use file_config::{DEFAULT_CONFIG_FILE, DatabasePoolFile, FileConfig, RegistrationFile};
pub use host::{
    AccountResolver, AuthorizationDetailsType, BackchannelApproval, BackchannelAuthenticator,
    BackchannelRequest, Claims, ConsentPage, ConsentRenderer, Context, DeviceConfirmation,
    DevicePage, DeviceRenderer, HintResolution, HostError, InteractionResult, LoginHint,
    Resolution, ScopeRequest, SignedIn, Subject,
};
/// Re-exported so an [`AccountResolver`] can name `http::request::Parts` without its own `http`
/// dependency.
pub use http;
pub use lockspire::{Authorization, Lockspire};
pub use model::authorization_details::{AuthorizationDetail, AuthorizationDetails};
pub use model::client::{AuthMethod, ClientMetadata, DeliveryMode, GrantType};
pub use model::profile::SecurityProfile;
pub use mtls::{ClientCertificate, MtlsConfig, MtlsError, serve_tls};
pub use operator::{ClientInfo, KeyInfo, KeyState, Operator, OperatorError};
pub use protocol::error::{Challenge, ErrorCode, InternalError, OAuthError};
pub use protocol::params::Params;
pub use protocol::registration::RegisteredClient;
pub use protocol::signing_keys::PUBLISH_BEFORE_USE;
pub use secrets::{InvalidSecretKey, SecretKey};
/// Re-exported so host code can build [`Claims`] without its own `serde_json` dependency.
pub use serde_json;
pub use store::{
    AuditEvent, DatabaseError, InitialAccessTokenRecord, OutboxEntry, OutboxKind, OutboxStatus,
    StoreError,
};
/// Re-exported for host code that builds login URLs.
pub use url;
