//! `lockspire`: adopt Lockspire in an axum app and operate it.
//!
//! Exit codes scripts can rely on: 0 when the command did everything it was asked (for
//! `verify`: every check passed), 1 when it failed or refused (a failed check, an edited file it
//! would not overwrite, an unknown client), 2 for usage errors.

/// `println!` for the command's output. A reader that stops early (`lockspire client list --json
/// | head`) ends the command quietly, as other Unix tools do, instead of a panic.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            $crate::output_failed(e);
        }
    }};
}

mod clients;
mod install;
mod keys;
mod outbox;
mod registration;
mod setup;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Install Lockspire into an axum app, check it, and operate it.
#[derive(Debug, Parser)]
#[command(name = "lockspire", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the host glue into an axum crate: resolver, consent template, config, wiring.
    Install(install::InstallArgs),
    /// Re-render the managed files of an installation; never touches host-owned files.
    Upgrade(install::UpgradeArgs),
    /// Check configuration, database, migrations and keys, and optionally a running instance.
    Verify(verify::VerifyArgs),
    /// Apply pending database migrations.
    Migrate(setup::ConfigArgs),
    /// Manage OAuth clients.
    #[command(subcommand)]
    Client(clients::ClientCommand),
    /// Manage the server's signing and encryption keys: list, generate, activate, retire.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Manage dynamic registration: initial access tokens.
    #[command(subcommand)]
    Registration(registration::RegistrationCommand),
    /// Print the newest audit events (JSON lines).
    Audit(registration::AuditArgs),
    /// Calls to clients (CIBA notifications, back-channel logout tokens): list them, send a
    /// dead letter again.
    #[command(subcommand)]
    Outbox(outbox::OutboxCommand),
}

/// How a command ended.
pub(crate) enum Outcome {
    /// Everything asked was done.
    Done,
    /// Something failed or was refused; details were printed.
    Failed,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Install(args) => install::install(args),
        Command::Upgrade(args) => install::upgrade(args),
        Command::Verify(args) => verify::run(args).await,
        Command::Migrate(args) => setup::migrate(args).await,
        Command::Client(cmd) => clients::run(cmd).await,
        Command::Keys(cmd) => keys::run(cmd).await,
        Command::Registration(cmd) => registration::run(cmd).await,
        Command::Audit(args) => registration::audit(args).await,
        Command::Outbox(cmd) => outbox::run(cmd).await,
    };
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The default config path, also settable with `LOCKSPIRE_CONFIG`.
pub(crate) fn default_config() -> PathBuf {
    PathBuf::from(lockspire::DEFAULT_CONFIG_FILE)
}

/// Writing the output failed: a closed pipe ends the command successfully (its reader has what
/// it wanted); anything else is an error.
fn output_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: writing the output: {e}");
    std::process::exit(1);
}
