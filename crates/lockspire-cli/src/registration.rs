//! `lockspire registration token …`: initial access tokens for dynamic registration
//! (RFC 7591 §3), and `lockspire audit`.

use clap::{Args, Subcommand};
use serde_json::json;

use crate::Outcome;
use crate::setup::{ConfigArgs, print_json, refused};

#[derive(Debug, Subcommand)]
pub(crate) enum RegistrationCommand {
    /// Initial access tokens (policy "initial-access-token").
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Mint a token; it is printed once and stored only as a digest.
    Create(CreateArgs),
    /// List tokens (ids and limits, never the tokens).
    List(ListArgs),
    /// Revoke a token by id.
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// How many registrations it allows [default: any number].
    #[arg(long)]
    uses: Option<u32>,
    /// Seconds until it expires [default: never].
    #[arg(long)]
    expires_in: Option<i64>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
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
pub(crate) struct RevokeArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The token's id.
    // Ids are base64url and may begin with '-': never read one as a flag.
    #[arg(allow_hyphen_values = true)]
    id: String,
}

#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// How many events, newest first.
    #[arg(long, default_value_t = 50)]
    limit: i64,
}

pub(crate) async fn run(cmd: RegistrationCommand) -> anyhow::Result<Outcome> {
    let RegistrationCommand::Token(cmd) = cmd;
    match cmd {
        TokenCommand::Create(a) => match a
            .config
            .operator()
            .await?
            .mint_initial_access_token(a.uses, a.expires_in)
            .await
        {
            Ok((record, token)) => {
                if a.json {
                    print_json(
                        &json!({"id": record.id, "token": token, "uses_left": record.uses_left, "expires_at": record.expires_at}),
                    )?;
                } else {
                    out!("id:    {}", record.id);
                    out!("token: {token}");
                    out!(
                        "(shown once; clients send it as `Authorization: Bearer …` to POST /register)"
                    );
                }
                Ok(Outcome::Done)
            }
            Err(e) => refused(e),
        },
        TokenCommand::List(a) => {
            let tokens = a.config.reader().await?.initial_access_tokens().await?;
            if a.json {
                print_json(&tokens)?;
            } else {
                out!(
                    "{:<24} {:<10} {:<12} STATE",
                    "ID",
                    "USES LEFT",
                    "EXPIRES AT"
                );
                for t in tokens {
                    let uses = t
                        .uses_left
                        .map(|u| u.to_string())
                        .unwrap_or_else(|| "any".into());
                    let expires = t
                        .expires_at
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| "never".into());
                    let state = if t.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "live"
                    };
                    out!("{:<24} {:<10} {:<12} {state}", t.id, uses, expires);
                }
            }
            Ok(Outcome::Done)
        }
        TokenCommand::Revoke(a) => match a
            .config
            .operator()
            .await?
            .revoke_initial_access_token(&a.id)
            .await
        {
            Ok(()) => {
                out!("{} revoked", a.id);
                Ok(Outcome::Done)
            }
            Err(e) => refused(e),
        },
    }
}

/// `lockspire audit`: the newest audit events as JSON lines.
pub(crate) async fn audit(a: AuditArgs) -> anyhow::Result<Outcome> {
    for event in a.config.reader().await?.audit_events(a.limit).await? {
        out!("{}", serde_json::to_string(&event)?);
    }
    Ok(Outcome::Done)
}
