//! The store handle: opening and migrating the database, transactions, change announcements
//! to other processes, and pruning what has expired. The operations on each kind of record
//! live beside its type (`clients`, `tokens`, …).

use std::sync::Arc;

use super::db::{get, params};
use super::driver::{Db, Dialect, Tx};
use super::error::StoreError;
use super::{changes, client_cache, group_commit};
use crate::clock::UnixTime;
use crate::config::DatabasePool;

/// The store: the database and the operations Lockspire needs.
#[derive(Clone, Debug)]
pub struct Store {
    pub(super) db: Db,
    pub(super) writer: group_commit::Writer,
    pub(super) clients: Arc<client_cache::ClientCache>,
    pub(super) changes: Arc<changes::Changes>,
}

/// A change announced inside its transaction, waiting for the commit.
pub(super) struct Announced<'a> {
    change: changes::Change,
    echo: Option<changes::Echo<'a>>,
}

impl Store {
    /// Opens (creating a SQLite file if needed) and migrates the database at `url`, with these
    /// connection settings (PostgreSQL).
    pub async fn connect_with(url: &str, pool: &DatabasePool) -> Result<Self, StoreError> {
        let store = Self::open_with(url, pool).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Applies every embedded migration not yet applied.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.db.migrate().await
    }

    /// Embedded migrations not yet applied, as (version, description). Reads only.
    pub async fn pending_migrations(&self) -> Result<Vec<(i64, String)>, StoreError> {
        // SQLite keeps its own bookkeeping table; PostgreSQL's is sqlx's migrator's, which also
        // is where SQLite databases of earlier releases kept theirs until their next migration.
        // A table that does not exist yet means nothing was applied through it.
        let mut applied = Vec::new();
        for statement in [
            "SELECT version FROM lockspire_migrations",
            "SELECT version FROM _sqlx_migrations WHERE success = TRUE",
        ] {
            match self
                .db
                .fetch_all(statement, params![], |r| get::<i64>(r, "version"))
                .await
            {
                Ok(versions) => applied.extend(versions),
                Err(e) if e.is_refused() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(super::db::MIGRATOR
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .map(|m| (m.version, m.description.to_string()))
            .collect())
    }

    /// Opens the database at `url` without migrating it, with these connection settings
    /// (PostgreSQL).
    pub async fn open_with(url: &str, pool: &DatabasePool) -> Result<Self, StoreError> {
        let db = Db::open(url, pool).await?;
        // On SQLite the cache is trusted from the start: the other processes on the file (the
        // `lockspire` command) move the change counter, which the poller follows. On PostgreSQL
        // the cache is trusted while the listener hears other processes' announcements.
        let clients = Arc::new(client_cache::ClientCache::new(
            db.dialect() == Dialect::Sqlite,
        ));
        let changes = Arc::new(changes::Changes::new(clients.clone()));
        match db.dialect() {
            #[cfg(feature = "postgres")]
            Dialect::Postgres => changes::spawn_listener(url.to_owned(), &changes),
            #[cfg(feature = "sqlite")]
            Dialect::Sqlite => {
                let baseline = changes::read_counter(&db).await;
                changes::spawn_poller(db.clone(), &changes, baseline);
            }
            #[allow(unreachable_patterns)]
            _ => {}
        }
        Ok(Self {
            writer: group_commit::Writer::spawn(db.clone())?,
            db,
            clients,
            changes,
        })
    }

    /// The database kind.
    pub fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    /// Starts a write transaction. On SQLite it waits for this process's single writer and
    /// takes the database's write lock up front, so concurrent writers queue instead of failing.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        self.db.begin().await
    }

    /// Closes the connections (PostgreSQL; SQLite's close when the store is dropped).
    pub async fn close(&self) {
        self.db.close().await;
    }

    /// Inside `tx`, before its commit: announces `change` to every process sharing a PostgreSQL
    /// database. `pg_notify` is delivered by the commit itself, so the announcement goes out
    /// exactly when the change does. Pass what it returns to [`Store::announced`] after the
    /// commit.
    pub(super) async fn announce_in(
        &self,
        tx: &mut Tx,
        change: changes::Change,
    ) -> Result<Announced<'_>, StoreError> {
        let echo = if self.dialect() == Dialect::Postgres {
            let (payload, echo) = self.changes.announce(change.clone());
            tx.execute(changes::NOTIFY, params![payload]).await?;
            echo
        } else {
            tx.execute(changes::BUMP, params![]).await?;
            None
        };
        Ok(Announced { change, echo })
    }

    /// After the commit of an announced change: forgets the client here, and waits until the
    /// announcement is out to every process (this one's listener heard it).
    pub(super) async fn announced(&self, announced: Announced<'_>) {
        if let changes::Change::Client { tenant, client_id } = &announced.change {
            self.clients.forget(tenant, client_id);
        }
        if let Some(echo) = announced.echo {
            echo.heard().await;
        }
    }

    /// Whether this store hears the changes other processes announce (PostgreSQL): `None` on
    /// SQLite, which follows them by polling a counter; `Some(false)` while the listening
    /// connection is down, when client lookups bypass the cache.
    pub fn change_listener_connected(&self) -> Option<bool> {
        match self.db {
            #[cfg(feature = "sqlite")]
            Db::Sqlite(_) => None,
            #[cfg(feature = "postgres")]
            Db::Postgres(_) => Some(self.clients.is_trusted()),
        }
    }

    /// Follows signing-key changes announced by any process sharing the database
    /// (PostgreSQL); also moves when this process starts hearing announcements again after a
    /// loss, since some may have been missed.
    pub(crate) fn key_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.key_changes()
    }

    /// Deletes rows nothing can use any more: expired codes and tokens (a revoked
    /// token stays until it expires, so its revocation is remembered), expired interactions and
    /// grants, pushed authorization requests, and audit events older than `audit_before`. Returns the number of rows removed.
    ///
    /// At most [`PRUNE_BATCH`] rows per statement: a busy provider expires millions of tokens
    /// between two prunes, and one statement deleting them all would hold SQLite's one writer
    /// for seconds, stalling every issuance behind it. Each batch is a short write that queues
    /// with the others.
    pub async fn prune_expired(
        &self,
        now: UnixTime,
        audit_before: UnixTime,
    ) -> Result<u64, StoreError> {
        let mut removed = 0;
        for (statement, cutoff) in [
            (
                "DELETE FROM tokens WHERE digest IN \
                 (SELECT digest FROM tokens WHERE expires_at <= $1 LIMIT $2)",
                now,
            ),
            (
                "DELETE FROM interactions WHERE id_digest IN \
                 (SELECT id_digest FROM interactions WHERE expires_at <= $1 LIMIT $2)",
                now,
            ),
            (
                "DELETE FROM grants WHERE id IN \
                 (SELECT id FROM grants WHERE expires_at <= $1 LIMIT $2)",
                now,
            ),
            (
                "DELETE FROM replay WHERE (namespace, key_digest) IN \
                 (SELECT namespace, key_digest FROM replay WHERE expires_at <= $1 LIMIT $2)",
                now,
            ),
            (
                "DELETE FROM pushed_requests WHERE digest IN \
                 (SELECT digest FROM pushed_requests WHERE expires_at <= $1 LIMIT $2)",
                now,
            ),
            // Kept an hour past expiry, so a device still polling learns that its code
            // expired (RFC 8628 §3.5 `expired_token`) rather than that it is unknown.
            (
                "DELETE FROM decoupled_requests WHERE digest IN \
                 (SELECT digest FROM decoupled_requests WHERE expires_at <= $1 LIMIT $2)",
                now - DECOUPLED_KEPT,
            ),
            (
                "DELETE FROM attempts WHERE key_digest IN \
                 (SELECT key_digest FROM attempts WHERE expires_at <= $1 LIMIT $2)",
                now,
            ),
            // Delivered calls hold nothing any more; kept a day for operators to see.
            (
                "DELETE FROM outbox WHERE id IN \
                 (SELECT id FROM outbox WHERE status = 'delivered' AND finished_at <= $1 LIMIT $2)",
                now - 24 * 3600,
            ),
            (
                "DELETE FROM outbox WHERE id IN \
                 (SELECT id FROM outbox WHERE status = 'dead' AND finished_at < $1 LIMIT $2)",
                audit_before,
            ),
            (
                "DELETE FROM audit_events WHERE id IN \
                 (SELECT id FROM audit_events WHERE at < $1 LIMIT $2)",
                audit_before,
            ),
        ] {
            loop {
                let batch = self
                    .db
                    .execute(statement, params![cutoff, PRUNE_BATCH])
                    .await?;
                removed += batch;
                if batch < PRUNE_BATCH.unsigned_abs() {
                    break;
                }
            }
        }
        Ok(removed)
    }
}

/// Seconds a decoupled request is kept after it expires.
const DECOUPLED_KEPT: i64 = 3600;

/// Most rows one statement of [`Store::prune_expired`] deletes.
pub const PRUNE_BATCH: i64 = 2000;

impl Tx {}
