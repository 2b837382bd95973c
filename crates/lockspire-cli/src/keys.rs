//! `lockspire keys …`: the lifecycle of the server's signing and encryption keys.

use clap::{Args, Subcommand};
use lockspire::jose::KeyAlg;
use lockspire::{KeyState, PUBLISH_BEFORE_USE};
use serde_json::json;

use crate::Outcome;
use crate::setup::{ConfigArgs, print_json, refused};

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// List keys with their state.
    List(ListArgs),
    /// Generate a key. It is published at once; a signing key may sign once it has been
    /// published for the JWKS cache time (PUBLISH_BEFORE_USE seconds), an encryption key
    /// decrypts at once.
    Generate(GenerateArgs),
    /// Make an upcoming key the active one of its alg; the previous key starts retiring.
    Activate(KidArgs),
    /// Retire a key. It stays in JWKS for the longest token lifetime plus the JWKS cache time: a
    /// signing key no longer signs, an encryption key still decrypts until it leaves JWKS.
    Retire(KidArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// A signing key for RS256, PS256, ES256 or EdDSA, or an encryption key for clients to
    /// encrypt request objects to: RSA-OAEP-256 (also decrypts RSA-OAEP) or ECDH-ES (also
    /// ECDH-ES+A128KW and ECDH-ES+A256KW).
    #[arg(long, default_value = "ES256")]
    alg: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct KidArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The key id.
    // Ids are base64url and may begin with '-': never read one as a flag.
    #[arg(allow_hyphen_values = true)]
    kid: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// A key's state for people: relative times, since epoch seconds mean nothing at a glance.
fn state_text(state: KeyState, now: i64) -> String {
    let when = |at: i64| {
        if at > now {
            format!("in {} s", at - now)
        } else {
            "now".to_owned()
        }
    };
    match state {
        KeyState::Upcoming { activatable_at } => {
            format!("upcoming, activatable {}", when(activatable_at))
        }
        KeyState::Active => "active".into(),
        KeyState::Retiring { until } => format!("retiring, leaves JWKS {}", when(until)),
        KeyState::Retired => "retired".into(),
    }
}

fn now() -> i64 {
    lockspire::Clock::now(&lockspire::SystemClock)
}

pub(crate) async fn run(cmd: KeysCommand) -> anyhow::Result<Outcome> {
    match cmd {
        KeysCommand::List(a) => {
            let keys = a.config.reader().await?.keys().await?;
            if a.json {
                print_json(&keys)?;
            } else {
                out!("{:<44} {:<12} STATE", "KID", "ALG");
                for k in keys {
                    out!("{:<44} {:<12} {}", k.kid, k.alg, state_text(k.state, now()));
                }
            }
            Ok(Outcome::Done)
        }
        KeysCommand::Generate(a) => {
            let Ok(alg) = a.alg.parse::<KeyAlg>() else {
                eprintln!(
                    "error: --alg must be RS256, PS256, ES256, EdDSA, RSA-OAEP-256 or ECDH-ES"
                );
                return Ok(Outcome::Failed);
            };
            let key = a.config.operator().await?.generate_key(alg).await?;
            if a.json {
                print_json(&key)?;
            } else {
                out!(
                    "generated {} key {}: {}",
                    key.alg,
                    key.kid,
                    state_text(key.state, now())
                );
                out!(
                    "activate it in {PUBLISH_BEFORE_USE} s or later: lockspire keys activate {}",
                    key.kid
                );
            }
            Ok(Outcome::Done)
        }
        KeysCommand::Activate(a) => match a.config.operator().await?.activate_key(&a.kid).await {
            Ok(()) => {
                if a.json {
                    print_json(&json!({"kid": a.kid, "state": "active"}))?;
                } else {
                    out!(
                        "{} is active; the previous key of its alg is retiring",
                        a.kid
                    );
                }
                Ok(Outcome::Done)
            }
            Err(e) => refused(e),
        },
        KeysCommand::Retire(a) => match a.config.operator().await?.retire_key(&a.kid).await {
            Ok(()) => {
                if a.json {
                    print_json(&json!({"kid": a.kid, "state": "retiring"}))?;
                } else {
                    out!(
                        "{} is retiring: it signs nothing new and leaves JWKS once its tokens expire",
                        a.kid
                    );
                }
                Ok(Outcome::Done)
            }
            Err(e) => refused(e),
        },
    }
}
