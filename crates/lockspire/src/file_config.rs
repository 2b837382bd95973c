//! `lockspire.toml`: the settings a host keeps in a file, read by the host app (through
//! [`FileConfig::builder`]) and by the `lockspire` command, so both see the same issuer, database
//! and policies. Secrets never live in the file: it names the environment variables that hold
//! them.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::builder::Builder;
use crate::builder::ConfigError;
use crate::config::{AccessTokenFormat, DatabasePool, Issuer, RegistrationPolicy};
use crate::lockspire::Lockspire;
use crate::secrets::SecretKey;

/// The default file name.
pub const DEFAULT_CONFIG_FILE: &str = "lockspire.toml";

/// The contents of `lockspire.toml`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The issuer identifier (RFC 8414 §2): https, or http on loopback.
    pub issuer: String,
    /// Where the host mounts Lockspire's router; the issuer's path must equal it.
    #[serde(default = "default_mount_path")]
    pub mount_path: String,
    /// The database URL. `database_url_env`, when set in the environment, takes precedence.
    #[serde(default)]
    pub database_url: Option<String>,
    /// Environment variable that may hold the database URL.
    #[serde(default = "default_database_env")]
    pub database_url_env: String,
    /// Environment variable holding the 32-byte secret key (base64).
    #[serde(default = "default_secret_env")]
    pub secret_key_env: String,
    /// `opaque` or `jwt` (RFC 9068).
    #[serde(default = "default_format")]
    pub access_token_format: String,
    /// Scopes of the host's API, offered beside the OIDC scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Resource servers (RFC 8707) tokens may be issued for.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Dynamic client registration (RFC 7591).
    #[serde(default)]
    pub registration: RegistrationFile,
    /// Days audit events are kept (at least 1).
    #[serde(default = "default_audit_retention_days")]
    pub audit_retention_days: u32,
    /// How PostgreSQL connections are held.
    #[serde(default)]
    pub database_pool: DatabasePoolFile,
    /// Every client must push its authorization requests first (RFC 9126 §5).
    #[serde(default)]
    pub require_pushed_authorization_requests: bool,
    /// A confidential client's pushed request may name a redirect URI it did not register
    /// (RFC 9126 §2.4).
    #[serde(default)]
    pub pushed_requests_allow_unregistered_redirect_uris: bool,
    /// Every DPoP proof must carry a nonce the server chose (RFC 9449 §8).
    #[serde(default)]
    pub require_dpop_nonce: bool,
    /// Seconds a pushed request's `request_uri` stays usable (5 to 600; RFC 9126 §2.2).
    #[serde(default = "default_pushed_request_lifetime_secs")]
    pub pushed_request_lifetime_secs: i64,
    /// The security profile every client is held to at least: `none` (default),
    /// `fapi2_security` or `fapi2_message_signing` (FAPI 2.0).
    #[serde(default)]
    pub security_profile: crate::model::profile::SecurityProfile,
}

fn default_pushed_request_lifetime_secs() -> i64 {
    crate::config::Lifetimes::default().pushed_request
}

/// `[database_pool]` in `lockspire.toml` (PostgreSQL; SQLite ignores it).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DatabasePoolFile {
    /// Most connections per process.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Longest wait for one statement's answer, in seconds.
    #[serde(default = "default_statement_timeout_secs")]
    pub statement_timeout_secs: u64,
    /// Seconds after which an idle connection is closed.
    #[serde(default = "default_idle_lifetime_secs")]
    pub idle_lifetime_secs: u64,
}

impl Default for DatabasePoolFile {
    fn default() -> Self {
        Self {
            max_connections: default_max_connections(),
            statement_timeout_secs: default_statement_timeout_secs(),
            idle_lifetime_secs: default_idle_lifetime_secs(),
        }
    }
}

impl DatabasePoolFile {
    fn settings(&self) -> DatabasePool {
        DatabasePool {
            max_connections: self.max_connections,
            statement_timeout: std::time::Duration::from_secs(self.statement_timeout_secs),
            idle_lifetime: std::time::Duration::from_secs(self.idle_lifetime_secs),
        }
    }
}

fn default_max_connections() -> u32 {
    DatabasePool::default().max_connections
}
fn default_statement_timeout_secs() -> u64 {
    DatabasePool::default().statement_timeout.as_secs()
}
fn default_idle_lifetime_secs() -> u64 {
    DatabasePool::default().idle_lifetime.as_secs()
}

/// `[registration]` in `lockspire.toml`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RegistrationFile {
    /// `disabled`, `initial-access-token` or `open`.
    pub policy: String,
    /// Environment variable holding the initial access token (policy `initial-access-token`).
    #[serde(default = "default_iat_env")]
    pub initial_access_token_env: String,
}

impl Default for RegistrationFile {
    fn default() -> Self {
        Self {
            policy: "disabled".into(),
            initial_access_token_env: default_iat_env(),
        }
    }
}

fn default_mount_path() -> String {
    "/".into()
}
fn default_database_env() -> String {
    "DATABASE_URL".into()
}
fn default_secret_env() -> String {
    "LOCKSPIRE_SECRET_KEY".into()
}
fn default_format() -> String {
    "opaque".into()
}
fn default_audit_retention_days() -> u32 {
    u32::try_from(crate::builder::AUDIT_RETENTION.as_secs() / 86_400).unwrap_or(90)
}
fn default_iat_env() -> String {
    "LOCKSPIRE_INITIAL_ACCESS_TOKEN".into()
}

fn invalid(field: &'static str, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(field, why.into())
}

impl FileConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid("config file", format!("{}: {e}", path.display())))?;
        Self::parse(&text)
    }

    /// Reads a configuration file as TOML without checking its values, for tools that report
    /// each problem separately (`lockspire verify`).
    pub fn read_unchecked(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid("config file", format!("{}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| invalid("config file", e.to_string()))
    }

    /// Parses and checks configuration text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Self =
            toml::from_str(text).map_err(|e| invalid("config file", e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    /// Checks every value that can be checked without the environment.
    pub fn check(&self) -> Result<(), ConfigError> {
        let issuer = Issuer::parse(&self.issuer)?;
        if !self.mount_path.starts_with('/') || self.mount_path.contains(['?', '#']) {
            return Err(invalid(
                "mount_path",
                "must be an absolute path such as /oauth",
            ));
        }
        let issuer_path = url::Url::parse(issuer.as_str())
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        if issuer_path != self.mount_path.trim_end_matches('/') {
            return Err(invalid(
                "mount_path",
                format!(
                    "the issuer's path is {:?} but mount_path is {:?}; endpoints are served under the issuer",
                    issuer_path, self.mount_path
                ),
            ));
        }
        AccessTokenFormat::parse(&self.access_token_format)
            .ok_or_else(|| invalid("access_token_format", "must be opaque or jwt"))?;
        if self.audit_retention_days == 0 {
            return Err(invalid("audit_retention_days", "must be at least 1"));
        }
        if let Some(why) = self.database_pool.settings().check() {
            return Err(invalid("database_pool", why));
        }
        if self.security_profile.is_fapi() {
            // The builder's rule, reported under the file's own names for the settings.
            crate::builder::check_profile(
                self.security_profile,
                &crate::config::Lifetimes {
                    pushed_request: self.pushed_request_lifetime_secs,
                    ..Default::default()
                },
                self.pushed_requests_allow_unregistered_redirect_uris,
            )
            .map_err(|e| match e {
                ConfigError::Invalid("lifetimes", why) => invalid(
                    "pushed_request_lifetime_secs",
                    format!(
                        "{} is too long ({why}): use 5 to 599",
                        self.pushed_request_lifetime_secs
                    ),
                ),
                ConfigError::Invalid(_, why) => invalid(
                    "pushed_requests_allow_unregistered_redirect_uris",
                    format!("must be false ({why})"),
                ),
                other => other,
            })?;
        }
        match self.registration.policy.as_str() {
            "disabled" | "open" | "initial-access-token" => Ok(()),
            other => Err(invalid(
                "registration.policy",
                format!("{other:?}: use disabled, initial-access-token or open"),
            )),
        }
    }

    /// The database URL: the environment variable when set, else the file's value.
    pub fn database_url(&self) -> Result<String, ConfigError> {
        match std::env::var(&self.database_url_env) {
            Ok(url) if !url.is_empty() => Ok(url),
            _ => self.database_url.clone().ok_or_else(|| {
                invalid(
                    "database_url",
                    format!(
                        "set database_url in the file or {} in the environment",
                        self.database_url_env
                    ),
                )
            }),
        }
    }

    /// The secret key from its environment variable.
    pub fn secret_key(&self) -> Result<SecretKey, ConfigError> {
        let value = std::env::var(&self.secret_key_env).map_err(|_| {
            invalid(
                "secret key",
                format!("{} is not set in the environment", self.secret_key_env),
            )
        })?;
        SecretKey::from_base64(&value)
            .map_err(|e| invalid("secret key", format!("{}: {e}", self.secret_key_env)))
    }

    /// The registration policy. Under `initial-access-token`, tokens minted with
    /// `lockspire registration token create` are accepted, and so is a fixed token when the
    /// environment variable named by `initial_access_token_env` is set.
    pub fn registration_policy(&self) -> Result<RegistrationPolicy, ConfigError> {
        Ok(match self.registration.policy.as_str() {
            "open" => RegistrationPolicy::Open,
            "initial-access-token" => {
                let fixed = std::env::var(&self.registration.initial_access_token_env)
                    .ok()
                    .filter(|t| !t.is_empty());
                RegistrationPolicy::InitialAccessToken(fixed)
            }
            _ => RegistrationPolicy::Disabled,
        })
    }

    /// A builder with everything the file says: issuer, database, secret key, registration,
    /// token format and scopes. The host adds its account resolver.
    pub fn builder(&self) -> Result<Builder, ConfigError> {
        self.check()?;
        let format = AccessTokenFormat::parse(&self.access_token_format)
            .unwrap_or(AccessTokenFormat::Opaque);
        Ok(Lockspire::builder()
            .issuer(&self.issuer)?
            .database(&self.database_url()?)
            .secret_key(self.secret_key()?)
            .registration(self.registration_policy()?)
            .access_token_format(format)
            .scopes(self.scopes.clone())
            .resources(self.resources.clone())
            .audit_retention(std::time::Duration::from_secs(
                u64::from(self.audit_retention_days) * 86_400,
            ))
            .database_pool(self.database_pool.settings())
            .require_pushed_authorization_requests(self.require_pushed_authorization_requests)
            .allow_unregistered_redirect_uris_in_pushed_requests(
                self.pushed_requests_allow_unregistered_redirect_uris,
            )
            .require_dpop_nonce(self.require_dpop_nonce)
            .security_profile(self.security_profile)
            .lifetimes(crate::config::Lifetimes {
                pushed_request: self.pushed_request_lifetime_secs,
                ..Default::default()
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_file_gets_secure_defaults() {
        let c =
            FileConfig::parse("issuer = \"https://auth.example.com\"").map_err(|e| e.to_string());
        let Ok(c) = c else { panic!("{c:?}") };
        assert_eq!(c.registration.policy, "disabled");
        assert_eq!(c.access_token_format, "opaque");
        assert_eq!(c.mount_path, "/");
        assert_eq!(c.audit_retention_days, 90);
        assert_eq!(c.database_pool.settings(), DatabasePool::default());
    }

    #[test]
    fn mount_path_must_match_the_issuer_path() {
        assert!(
            FileConfig::parse("issuer = \"https://a.example/oauth\"\nmount_path = \"/oauth\"")
                .is_ok()
        );
        assert!(
            FileConfig::parse("issuer = \"https://a.example/oauth\"\nmount_path = \"/\"").is_err()
        );
        assert!(
            FileConfig::parse("issuer = \"https://a.example\"\nmount_path = \"/oauth\"").is_err()
        );
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        assert!(FileConfig::parse("issuer = \"https://a.example\"\nissuer_typo = 1").is_err());
        assert!(FileConfig::parse("issuer = \"http://a.example\"").is_err());
        assert!(
            FileConfig::parse("issuer = \"https://a.example\"\naudit_retention_days = 0").is_err()
        );
        assert!(
            FileConfig::parse("issuer = \"https://a.example\"\naccess_token_format = \"x\"")
                .is_err()
        );
        assert!(
            FileConfig::parse(
                "issuer = \"https://a.example\"\n[registration]\npolicy = \"sometimes\""
            )
            .is_err()
        );
        assert!(
            FileConfig::parse(
                "issuer = \"https://a.example\"\n[database_pool]\nmax_connections = 0"
            )
            .is_err()
        );
    }
}
