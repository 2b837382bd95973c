//! Command-line flags (each with an environment variable) and the secret key's storage.

use std::fs;
use std::io::{ErrorKind, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};
use lockspire::{Issuer, RegistrationPolicy, SecretKey};

use crate::{DEMO_PASSWORD, DEMO_USERNAME, Settings};

/// The environment variable holding the secret key. Deliberately not a flag: command lines
/// are visible to every user of the machine.
pub const SECRET_KEY_ENV: &str = "LOCKSPIRE_SECRET_KEY";

/// Runs the Lockspire demo: an OpenID Connect provider embedded in a small axum app that
/// owns its users, sessions and login page.
#[derive(Debug, Parser)]
#[command(
    name = "lockspire-demo",
    version,
    after_help = "The secret key is read from LOCKSPIRE_SECRET_KEY (32 random bytes, base64). \
                  Without it the demo generates one and keeps it in <DATA_DIR>/secret.key."
)]
pub struct Cli {
    /// Address to listen on.
    #[arg(long, env = "LOCKSPIRE_ADDR", default_value = "127.0.0.1:4000")]
    pub addr: SocketAddr,

    /// Issuer identifier [default: http://ADDR]. Must be https unless the host is loopback.
    #[arg(long, env = "LOCKSPIRE_ISSUER")]
    pub issuer: Option<String>,

    /// Database URL, sqlite://… or postgres://… [default: sqlite://DATA_DIR/demo.db].
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Who may register clients at POST /register (RFC 7591).
    #[arg(long, env = "LOCKSPIRE_REGISTRATION", value_enum, default_value_t = Registration::Open)]
    pub registration: Registration,

    /// The Bearer token registrations must present with --registration initial-access-token.
    #[arg(long, env = "LOCKSPIRE_INITIAL_ACCESS_TOKEN", hide_env_values = true)]
    pub initial_access_token: Option<String>,

    /// Serve HTTPS with this PEM certificate chain (with --tls-key); the issuer defaults to
    /// https. Lockspire then requests client certificates (RFC 8705 mutual TLS).
    #[arg(long, env = "LOCKSPIRE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long, env = "LOCKSPIRE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA certificates that `tls_client_auth` client certificates must chain to.
    #[arg(long, env = "LOCKSPIRE_CLIENT_CA", requires = "tls_cert")]
    pub client_ca: Option<PathBuf>,

    /// The security profile every client is held to. Under a FAPI 2.0 profile the demo's
    /// relying party pushes its requests (signed under message signing, with JARM responses),
    /// authenticates with private_key_jwt and binds its tokens with DPoP; the device, CIBA and
    /// forum demos, whose clients the profile does not allow, are off.
    #[arg(long, env = "LOCKSPIRE_SECURITY_PROFILE", value_enum, default_value_t = Profile::None)]
    pub security_profile: Profile,

    /// Directory for the SQLite database and the generated secret key.
    #[arg(
        long,
        env = "LOCKSPIRE_DATA_DIR",
        default_value = "lockspire-demo-data"
    )]
    pub data_dir: PathBuf,

    /// Seconds between re-reads of the signing keys, which bounds how long a key rotated by
    /// another process takes to be published and used here [default: Lockspire's, 30].
    #[arg(long, env = "LOCKSPIRE_KEY_REFRESH_SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub key_refresh_secs: Option<u64>,

    /// Seconds this process holds a client notification (CIBA ping or push) it is delivering
    /// before another process may take it over [default: Lockspire's, 30].
    #[arg(long, env = "LOCKSPIRE_OUTBOX_LEASE_SECS", value_parser = clap::value_parser!(u64).range(10..=3600))]
    pub outbox_lease_secs: Option<u64>,

    /// Another resource identifier tokens may be issued for (RFC 8707), such as an API served
    /// elsewhere (repeat, or comma-separate in the variable). The demo's own `ISSUER/api` is
    /// always one.
    #[arg(long = "resource", env = "LOCKSPIRE_RESOURCES", value_delimiter = ',')]
    pub resources: Vec<String>,
}

/// `--security-profile` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    /// OAuth 2.0 and OpenID Connect with Lockspire's defaults.
    None,
    /// FAPI 2.0 Security Profile.
    Fapi2Security,
    /// FAPI 2.0 Message Signing.
    Fapi2MessageSigning,
}

impl From<Profile> for lockspire::SecurityProfile {
    fn from(p: Profile) -> Self {
        match p {
            Profile::None => Self::None,
            Profile::Fapi2Security => Self::Fapi2Security,
            Profile::Fapi2MessageSigning => Self::Fapi2MessageSigning,
        }
    }
}

/// `--registration` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Registration {
    /// Anyone may register a client.
    Open,
    /// Registrations must carry --initial-access-token.
    InitialAccessToken,
    /// No dynamic registration.
    Disabled,
}

impl Cli {
    /// Resolves defaults, loads (or creates) the secret key and checks the combination.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let scheme = if self.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        let issuer = match &self.issuer {
            Some(issuer) => issuer.clone(),
            None => format!("{scheme}://{}", self.addr),
        };
        let issuer = Issuer::parse(&issuer)
            .context("set --issuer (LOCKSPIRE_ISSUER) to the URL browsers use to reach the demo")?;
        let registration = match self.registration {
            Registration::Open => RegistrationPolicy::Open,
            Registration::Disabled => RegistrationPolicy::Disabled,
            Registration::InitialAccessToken => match &self.initial_access_token {
                Some(token) => RegistrationPolicy::InitialAccessToken(Some(token.clone())),
                None => bail!(
                    "--registration initial-access-token needs --initial-access-token \
                     (or LOCKSPIRE_INITIAL_ACCESS_TOKEN)"
                ),
            },
        };
        let database_url = match &self.database_url {
            Some(url) => url.clone(),
            None => {
                create_private_dir(&self.data_dir)?;
                format!("sqlite://{}/demo.db", self.data_dir.display())
            }
        };
        let mtls = match &self.tls_cert {
            None => None,
            Some(_) => Some(lockspire::MtlsConfig {
                client_ca_pem: match &self.client_ca {
                    Some(path) => Some(
                        fs::read(path).with_context(|| format!("reading {}", path.display()))?,
                    ),
                    None => None,
                },
                ..lockspire::MtlsConfig::default()
            }),
        };
        // A demo on this machine may fetch client JWKS from loopback; nothing else relaxes.
        let dev_mode = url::Url::parse(issuer.as_str())
            .ok()
            .and_then(|u| {
                u.host_str()
                    .map(|h| h == "127.0.0.1" || h == "localhost" || h == "[::1]")
            })
            .unwrap_or(false);
        Ok(Settings {
            mtls,
            dev_mode,
            issuer: issuer.as_str().to_owned(),
            database_url,
            registration,
            secret_key: load_secret_key(&self.data_dir)?,
            key_refresh_interval: self.key_refresh_secs.map(std::time::Duration::from_secs),
            outbox_lease: self.outbox_lease_secs.map(std::time::Duration::from_secs),
            extra_resources: self.resources.clone(),
            security_profile: self.security_profile.into(),
        })
    }
}

/// The secret key from [`SECRET_KEY_ENV`], or else from `<data_dir>/secret.key`, generated on
/// first start.
pub fn load_secret_key(data_dir: &Path) -> anyhow::Result<SecretKey> {
    match std::env::var(SECRET_KEY_ENV) {
        Ok(text) => {
            return SecretKey::from_base64(&text)
                .with_context(|| format!("reading {SECRET_KEY_ENV}"));
        }
        Err(std::env::VarError::NotPresent) => {}
        Err(std::env::VarError::NotUnicode(_)) => bail!("{SECRET_KEY_ENV} is not valid UTF-8"),
    }
    let path = data_dir.join("secret.key");
    let key = match fs::read_to_string(&path) {
        Ok(text) => {
            warn_if_readable_by_others(&path);
            SecretKey::from_base64(&text).with_context(|| format!("reading {}", path.display()))?
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            create_private_dir(data_dir)?;
            let key = SecretKey::generate();
            write_private(&path, &key.to_base64())?;
            key
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    tracing::warn!(
        path = %path.display(),
        "{SECRET_KEY_ENV} is not set: using a key kept next to the database. Production hosts \
         must supply {SECRET_KEY_ENV} from a secret store; whoever holds the database and this \
         file can forge tokens."
    );
    Ok(key)
}

/// Creates `dir` (owner-only on Unix: it holds the key and the database).
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Writes a new file readable only by its owner; never overwrites.
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(file, "{contents}").with_context(|| format!("writing {}", path.display()))
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "the secret key file is readable by other users; chmod 600 it");
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

/// What the binary prints once it is listening.
pub fn banner(issuer: &str, profile: lockspire::SecurityProfile) -> String {
    let others = if profile.is_fapi() {
        format!("security profile: {profile} (the device, CIBA and forum demos are off)\n  ")
    } else {
        format!(
            "{issuer}/demo/device for a device without a browser, {issuer}/demo/ciba for CIBA\n  \
             {issuer}/demo/forum for a second client, told of every sign-out (logout)\n  "
        )
    };
    format!(
        "\n  Lockspire demo is running at {issuer}\n\n  \
         demo account:  {DEMO_USERNAME} / {DEMO_PASSWORD}\n  \
         open {issuer}/demo to run a full code + PKCE flow\n  \
         {others}discovery:     curl {issuer}/.well-known/openid-configuration\n"
    )
}
