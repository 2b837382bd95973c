//! The outbox: calls this server makes to clients, written in the transaction of the change that
//! causes them, so a call exists exactly when its cause does, and delivered by a worker of any
//! process sharing the database.
//!
//! A worker leases due rows with one statement (on PostgreSQL `FOR UPDATE SKIP LOCKED`, so
//! concurrent workers take different rows; on SQLite the single writer orders the leases). A
//! lease lasts a while: a process that dies holding one loses nothing, the lease runs out and
//! another process delivers. Each outcome is one conditional write: delivered, retried later,
//! or given up as a dead letter.

use super::db::{Row, get, params};
use super::driver::{Dialect, Tx};
use super::error::StoreError;
use super::handle::Store;
use crate::clock::UnixTime;
use crate::model::client::ClientId;

/// What a call is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxKind {
    /// A CIBA ping: the client's request was decided, it may poll (CIBA Core §10.2).
    CibaPing,
    /// A CIBA push: the tokens, or the error, of the client's request (CIBA Core §10.3, §12).
    CibaPush,
    /// A logout token: a browser session the client took part in has ended (OpenID Connect
    /// Back-Channel Logout 1.0 §2.5).
    BackchannelLogout,
}

impl OutboxKind {
    /// Its name in the table and in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CibaPing => "ciba_ping",
            Self::CibaPush => "ciba_push",
            Self::BackchannelLogout => "backchannel_logout",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "ciba_ping" => Ok(Self::CibaPing),
            "ciba_push" => Ok(Self::CibaPush),
            "backchannel_logout" => Ok(Self::BackchannelLogout),
            other => Err(StoreError::Corrupt(format!("outbox kind {other}"))),
        }
    }
}

/// Where a call stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxStatus {
    /// Waiting for delivery (again, after a failure).
    Pending,
    /// Delivered.
    Delivered,
    /// Given up: refused by the client, or failed too often. An operator may retry it.
    Dead,
}

impl OutboxStatus {
    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "pending" => Ok(Self::Pending),
            "delivered" => Ok(Self::Delivered),
            "dead" => Ok(Self::Dead),
            other => Err(StoreError::Corrupt(format!("outbox status {other}"))),
        }
    }
}

/// A call to make: where to, and what to send, sealed.
#[derive(Clone, Debug)]
pub struct OutboxMessage {
    /// Its id.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// What it is.
    pub kind: OutboxKind,
    /// The client it is for.
    pub client_id: ClientId,
    /// Where it goes.
    pub url: String,
    /// What is sent, sealed under the server key.
    pub sealed: String,
    /// Delivery attempts so far, this one included when leased.
    pub attempts: i64,
}

/// A call as operators see it: everything but what it sends.
#[derive(Clone, Debug)]
pub struct OutboxEntry {
    /// Its id.
    pub id: String,
    /// What it is.
    pub kind: OutboxKind,
    /// The client it is for.
    pub client_id: String,
    /// Where it goes.
    pub url: String,
    /// Where it stands.
    pub status: OutboxStatus,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was written.
    pub created_at: UnixTime,
    /// When it was delivered or given up.
    pub finished_at: Option<UnixTime>,
}

impl OutboxEntry {
    fn from_row(r: &Row<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            id: get(r, "id")?,
            kind: OutboxKind::parse(&get::<String>(r, "kind")?)?,
            client_id: get(r, "client_id")?,
            url: get(r, "url")?,
            status: OutboxStatus::parse(&get::<String>(r, "status")?)?,
            attempts: get(r, "attempts")?,
            last_error: get(r, "last_error")?,
            created_at: get(r, "created_at")?,
            finished_at: get(r, "finished_at")?,
        })
    }
}

impl OutboxMessage {
    fn from_row(r: &Row<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            id: get(r, "id")?,
            tenant_id: get(r, "tenant_id")?,
            kind: OutboxKind::parse(&get::<String>(r, "kind")?)?,
            client_id: ClientId::new(get::<String>(r, "client_id")?),
            url: get(r, "url")?,
            sealed: get(r, "sealed")?,
            attempts: get(r, "attempts")?,
        })
    }
}

/// How one delivery attempt ended.
#[derive(Clone, Debug)]
pub enum Delivery {
    /// The client took it.
    Delivered,
    /// Try again at this time.
    RetryAt(UnixTime, String),
    /// Give up: a dead letter.
    GiveUp(String),
}

/// Leases due rows (`$1` now, `$2` lease end, `$3` this worker, `$4` how many, `$5` the
/// tenant). PostgreSQL skips rows another worker holds locked at this instant.
const LEASE_PG: &str = "UPDATE outbox SET lease_until = $2, leased_by = $3, attempts = attempts + 1 \
     WHERE id IN (SELECT id FROM outbox WHERE tenant_id = $5 AND status = 'pending' AND next_attempt_at <= $1 \
       AND (lease_until IS NULL OR lease_until <= $1) ORDER BY next_attempt_at LIMIT $4 \
       FOR UPDATE SKIP LOCKED) \
     RETURNING id, tenant_id, kind, client_id, url, sealed, attempts";

/// [`LEASE_PG`] for SQLite, whose one writer runs leases one after the other.
const LEASE_SQLITE: &str = "UPDATE outbox SET lease_until = $2, leased_by = $3, attempts = attempts + 1 \
     WHERE id IN (SELECT id FROM outbox WHERE tenant_id = $5 AND status = 'pending' AND next_attempt_at <= $1 \
       AND (lease_until IS NULL OR lease_until <= $1) ORDER BY next_attempt_at LIMIT $4) \
     RETURNING id, tenant_id, kind, client_id, url, sealed, attempts";

impl Tx {
    /// Writes a call in the transaction of the change that causes it, due now.
    pub async fn enqueue(&mut self, m: &OutboxMessage, now: UnixTime) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO outbox (id, tenant_id, kind, client_id, url, sealed, status, attempts, \
             next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7)",
            params![
                m.id,
                m.tenant_id,
                m.kind.as_str(),
                m.client_id,
                m.url,
                m.sealed,
                now
            ],
        )
        .await?;
        Ok(())
    }
}

impl Store {
    /// Leases up to `limit` due calls of `tenant` to `worker` until `lease_until`. A read
    /// finds out first whether any is due, so idle workers take no write lock.
    pub async fn lease_outbox(
        &self,
        tenant: &str,
        worker: &str,
        now: UnixTime,
        lease_until: UnixTime,
        limit: i64,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let due = self
            .db
            .fetch_optional(
                "SELECT 1 AS due FROM outbox WHERE tenant_id = $1 AND status = 'pending' \
                 AND next_attempt_at <= $2 AND (lease_until IS NULL OR lease_until <= $2) LIMIT 1",
                params![tenant, now],
                |_| Ok(()),
            )
            .await?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let statement = match self.dialect() {
            Dialect::Postgres => LEASE_PG,
            Dialect::Sqlite => LEASE_SQLITE,
        };
        // A write that returns rows: SQLite's readers cannot run it, its writer can.
        let mut tx = self.begin().await?;
        let leased = tx
            .fetch_all(
                statement,
                params![now, lease_until, worker, limit, tenant],
                OutboxMessage::from_row,
            )
            .await?;
        tx.commit().await?;
        Ok(leased)
    }

    /// Records how the attempt `message` ended. A delivered call forgets what it sent, whoever
    /// holds it now: it was delivered. A failure is recorded only by the lease that made it
    /// (the same worker, the same attempt), so a worker whose lease ran out while it waited
    /// cannot put a call back in line under another worker's feet. Returns false when nothing
    /// was recorded.
    pub async fn finish_outbox(
        &self,
        message: &OutboxMessage,
        worker: &str,
        outcome: &Delivery,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let id = &message.id;
        let changed = match outcome {
            Delivery::Delivered => {
                self.db
                    .execute(
                        "UPDATE outbox SET status = 'delivered', sealed = '', finished_at = $1, \
                         lease_until = NULL, last_error = NULL WHERE id = $2 AND status = 'pending'",
                        params![now, id],
                    )
                    .await?
            }
            Delivery::RetryAt(at, why) => {
                self.db
                    .execute(
                        "UPDATE outbox SET next_attempt_at = $1, lease_until = NULL, last_error = $2 \
                         WHERE id = $3 AND status = 'pending' AND leased_by = $4 AND attempts = $5",
                        params![*at, why, id, worker, message.attempts],
                    )
                    .await?
            }
            Delivery::GiveUp(why) => {
                self.db
                    .execute(
                        "UPDATE outbox SET status = 'dead', finished_at = $1, lease_until = NULL, \
                         last_error = $2 WHERE id = $3 AND status = 'pending' AND leased_by = $4 \
                         AND attempts = $5",
                        params![now, why, id, worker, message.attempts],
                    )
                    .await?
            }
        };
        Ok(changed == 1)
    }

    /// The calls in `status`, newest first, at most `limit`.
    pub async fn outbox_entries(
        &self,
        tenant: &str,
        status: OutboxStatus,
        limit: i64,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let status = match status {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Delivered => "delivered",
            OutboxStatus::Dead => "dead",
        };
        self.db
            .fetch_all(
                concat!(
                    "SELECT id, kind, client_id, url, status, attempts, last_error, created_at, finished_at ",
                    "FROM outbox WHERE tenant_id = $1 AND status = $2 ORDER BY created_at DESC, id LIMIT $3"
                ),
                params![tenant, status, limit],
                OutboxEntry::from_row,
            )
            .await
    }

    /// Puts a dead letter back in line, due now, with its attempts counted from zero, and
    /// records `event` in the same transaction. False when there is no such dead letter.
    pub async fn retry_outbox(
        &self,
        tenant: &str,
        id: &str,
        now: UnixTime,
        event: &super::AuditEvent,
    ) -> Result<bool, StoreError> {
        let changed = self
            .change_audited(
                "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $1, \
                 finished_at = NULL, lease_until = NULL WHERE tenant_id = $2 AND id = $3 AND status = 'dead'",
                params![now, tenant, id],
                event,
                None,
            )
            .await?;
        Ok(changed == 1)
    }
}
