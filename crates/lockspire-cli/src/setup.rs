//! Opening the configured instance: `lockspire.toml`, its database and its secret key.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;
use lockspire::Database;
use lockspire::{FileConfig, Operator, OperatorError};

use crate::Outcome;

/// Where the configuration is.
#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    /// The configuration file.
    #[arg(long, env = "LOCKSPIRE_CONFIG", default_value_os_t = crate::default_config())]
    pub(crate) config: PathBuf,
}

impl ConfigArgs {
    pub(crate) fn load(&self) -> anyhow::Result<FileConfig> {
        if !self.config.exists() {
            bail!(
                "no {} here: run the command in your app's folder (where `lockspire install` wrote it) or pass --config PATH",
                self.config.display()
            );
        }
        Ok(FileConfig::load(&self.config)?)
    }

    /// The operator API on the configured database, refusing to work on an unmigrated one.
    /// Needs the secret key: creating clients and keys seals and peppers with it.
    pub(crate) async fn operator(&self) -> anyhow::Result<Operator> {
        let config = self.load()?;
        open(config.builder()?).await
    }

    /// The operator API for commands that only read (lists, shows): they touch no secret, so
    /// they work without the secret key in the environment.
    pub(crate) async fn reader(&self) -> anyhow::Result<Operator> {
        let config = self.load()?;
        let key = config
            .secret_key()
            .unwrap_or_else(|_| lockspire::SecretKey::generate());
        let builder = lockspire::Lockspire::builder()
            .issuer(&config.issuer)?
            .database(&config.database_url()?)
            .secret_key(key);
        open(builder).await
    }
}

async fn open(builder: lockspire::Builder) -> anyhow::Result<Operator> {
    let operator = builder
        .build_operator()
        .await
        .context("opening the database")?;
    let pending = operator.pending_migrations().await?;
    if !pending.is_empty() {
        bail!(
            "the database has {} pending migration(s): run `lockspire migrate` first",
            pending.len()
        );
    }
    Ok(operator)
}

/// `lockspire migrate`.
pub(crate) async fn migrate(args: ConfigArgs) -> anyhow::Result<Outcome> {
    let config = args.load()?;
    let database = Database::open(&config.database_url()?)
        .await
        .context("opening the database")?;
    let pending = database.pending_migrations().await?;
    if pending.is_empty() {
        out!("The database is up to date.");
        return Ok(Outcome::Done);
    }
    database.migrate().await.context("migrating")?;
    for migration in pending {
        out!("applied {} {}", migration.version, migration.description);
    }
    Ok(Outcome::Done)
}

/// Prints `value` as pretty JSON.
pub(crate) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    out!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints an operator refusal (unknown id, broken rule, invalid input) and makes it a failed
/// outcome; storage and key errors propagate.
pub(crate) fn refused(e: OperatorError) -> anyhow::Result<Outcome> {
    match e {
        OperatorError::NotFound(_) | OperatorError::Refused(_) | OperatorError::Invalid(_) => {
            eprintln!("error: {e}");
            Ok(Outcome::Failed)
        }
        other => Err(other.into()),
    }
}
