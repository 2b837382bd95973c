//! `lockspire outbox …`: the calls the server makes to clients (CIBA ping and push
//! notifications) — list them by status, and send a dead letter again.

use clap::{Args, Subcommand, ValueEnum};
use lockspire::{OutboxEntry, OutboxStatus};
use serde_json::json;

use crate::Outcome;
use crate::setup::{ConfigArgs, print_json, refused};

#[derive(Debug, Subcommand)]
pub(crate) enum OutboxCommand {
    /// List calls, newest first: dead letters by default.
    List(ListArgs),
    /// Send a dead letter again, due at once with a fresh count of attempts.
    Retry(RetryArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Status {
    /// Waiting for delivery.
    Pending,
    /// Delivered (kept a day).
    Delivered,
    /// Given up: refused by the client, or failed too often.
    Dead,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Which calls.
    #[arg(long, value_enum, default_value_t = Status::Dead)]
    status: Status,
    /// How many, newest first.
    #[arg(long, default_value_t = 50)]
    limit: i64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RetryArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The call's id, from `lockspire outbox list`.
    // Ids are base64url and may begin with '-': never read one as a flag.
    #[arg(allow_hyphen_values = true)]
    id: String,
}

fn entry_json(e: &OutboxEntry) -> serde_json::Value {
    json!({
        "id": e.id,
        "kind": e.kind.as_str(),
        "client_id": e.client_id,
        "url": e.url,
        "status": match e.status {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Delivered => "delivered",
            OutboxStatus::Dead => "dead",
        },
        "attempts": e.attempts,
        "last_error": e.last_error,
        "created_at": e.created_at,
        "finished_at": e.finished_at,
    })
}

pub(crate) async fn run(cmd: OutboxCommand) -> anyhow::Result<Outcome> {
    match cmd {
        OutboxCommand::List(a) => {
            let status = match a.status {
                Status::Pending => OutboxStatus::Pending,
                Status::Delivered => OutboxStatus::Delivered,
                Status::Dead => OutboxStatus::Dead,
            };
            let entries = a.config.reader().await?.outbox(status, a.limit).await?;
            if a.json {
                print_json(&entries.iter().map(entry_json).collect::<Vec<_>>())?;
                return Ok(Outcome::Done);
            }
            if entries.is_empty() {
                out!("no calls");
            }
            for e in &entries {
                out!(
                    "{}  {}  {}  {}  attempts={}  {}",
                    e.id,
                    e.kind.as_str(),
                    e.client_id,
                    e.url,
                    e.attempts,
                    e.last_error.as_deref().unwrap_or("-")
                );
            }
            Ok(Outcome::Done)
        }
        OutboxCommand::Retry(a) => match a.config.operator().await?.retry_outbox(&a.id).await {
            Ok(()) => {
                out!("{} is due again", a.id);
                Ok(Outcome::Done)
            }
            Err(e) => refused(e),
        },
    }
}
