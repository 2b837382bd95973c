//! Storage (SURFACE S26): SQLite (embedded default) and PostgreSQL behind one set of
//! intent-named operations.
//!
//! Every statement is written once: both databases accept the same `$n` placeholders, types and
//! `UPDATE … RETURNING`. Underneath, each database gets the driver that is fastest for it:
//! SQLite through its C API on the calling thread ([`sqlite`]), PostgreSQL through sqlx's typed
//! driver ([`db`]). Every single-use transition (code redemption, refresh rotation, interaction
//! completion) is one conditional `UPDATE … WHERE … IS NULL RETURNING`, never a read followed by
//! a write, so it is correct under concurrent requests and across several server processes
//! sharing one PostgreSQL.

mod changes;
mod client_cache;
pub(crate) mod db;
mod group_commit;
mod pg_pool;
mod records;
mod sqlite;

use std::sync::Arc;

pub use records::*;

use self::db::{Param, Row, get, params, pg_query};
use self::pg_pool::{PgConn, PgPool};
use crate::clock::UnixTime;

/// A storage failure. Callers map it to `server_error` or `temporarily_unavailable`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// PostgreSQL reported an error or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// SQLite reported an error.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The store cannot take work right now (its writer is gone or shutting down).
    #[error("database unavailable: {0}")]
    Unavailable(&'static str),
    /// Migrations could not be applied.
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value could not be decoded (a bug or a manual edit).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The URL names a database Lockspire does not support.
    #[error("unsupported database URL (use sqlite:// or postgres://)")]
    UnsupportedUrl,
    /// The URL names a supported database but cannot be used as written.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// A SQLite migration failed; nothing of it was applied (each runs in a transaction).
    #[error("migration {0} failed: {1}")]
    Migration(i64, rusqlite::Error),
}

impl StoreError {
    /// True when the database is unreachable or overloaded rather than refusing the statement:
    /// the client should retry (RFC 6749 `temporarily_unavailable`).
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(
                sqlx::Error::PoolTimedOut
                | sqlx::Error::Io(_)
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed,
            )
            | StoreError::Unavailable(_) => true,
            // A PostgreSQL error that ends the session (FATAL): a shutdown or restart (57P01-03),
            // too many connections (53300), a session timeout.
            StoreError::Database(e @ sqlx::Error::Database(_)) => !pg_pool::refused_in_session(e),
            // Another process held SQLite's write lock past the busy timeout.
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ),
            _ => false,
        }
    }

    /// True when an insert collided with an existing primary or unique key.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(e)) => e.is_unique_violation(),
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::ConstraintViolation
                    && matches!(
                        e.extended_code,
                        rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                            | rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    )
            }
            _ => false,
        }
    }
}

/// Which database the store talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite, embedded (WAL mode).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// SQLite reader connections: enough for the runtime's worker threads to read at once.
fn sqlite_readers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8))
}

/// A database handle: which driver, and its connections.
#[derive(Clone, Debug)]
pub(crate) enum Db {
    Sqlite(Arc<sqlite::SqliteDb>),
    Postgres(PgPool),
}

impl Db {
    /// One write statement outside a transaction; returns the rows changed.
    async fn execute(&self, sql: &'static str, params: Vec<Param>) -> Result<u64, StoreError> {
        match self {
            Db::Sqlite(db) => db.execute(sql, params).await,
            Db::Postgres(pool) => pool.acquire().await?.execute(pg_query(sql, params)).await,
        }
    }

    /// A read, decoded with `f`.
    async fn fetch_all<T>(
        &self,
        sql: &'static str,
        params: Vec<Param>,
        f: impl Fn(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        match self {
            Db::Sqlite(db) => db.read(sql, &params, f).await,
            Db::Postgres(pool) => pool
                .acquire()
                .await?
                .fetch_all(pg_query(sql, params))
                .await?
                .iter()
                .map(|r| f(&Row::Postgres(r)))
                .collect(),
        }
    }

    /// A read of at most one row (a key lookup). It reads the whole answer, as [`Self::fetch_all`]
    /// does: stopping after the first row leaves the rest of PostgreSQL's answer for the pool
    /// to drain when the connection is released.
    async fn fetch_optional<T>(
        &self,
        sql: &'static str,
        params: Vec<Param>,
        f: impl Fn(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        Ok(self.fetch_all(sql, params, f).await?.into_iter().next())
    }
}

/// The store: the database and the operations Lockspire needs.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    writer: group_commit::Writer,
    clients: Arc<client_cache::ClientCache>,
    changes: Arc<changes::Changes>,
}

/// The columns of a key row.
macro_rules! key_columns {
    () => {
        "tenant_id, kid, alg, status, public_jwk, sealed_private, created_at, activated_at, retired_at"
    };
}

/// The columns of a token row, qualified by the alias `t` (static text, so every statement
/// stays a `&'static str`).
macro_rules! token_columns {
    () => {
        "t.digest, t.tenant_id, t.kind, t.grant_id, t.client_id, t.subject, t.scopes, t.resources, \
         t.created_at, t.expires_at, t.consumed_at, t.revoked_at, t.redirect_uri, t.code_challenge, t.nonce, t.format, t.jti, t.cnf_x5t"
    };
}

/// Inserts one code or token row.
const INSERT_TOKEN: &str = "INSERT INTO tokens (digest, tenant_id, kind, grant_id, client_id, subject, scopes, resources, created_at, \
     expires_at, redirect_uri, code_challenge, nonce, format, jti, cnf_x5t) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";

/// [`INSERT_TOKEN`] for many rows in one PostgreSQL statement: each parameter is one column's
/// values as an array, in [`INSERT_TOKEN`]'s order and types. A batch then costs one round trip
/// and one commit, where a transaction of single-row inserts costs one round trip per row.
const INSERT_TOKENS_PG: &str = "INSERT INTO tokens (digest, tenant_id, kind, grant_id, client_id, subject, scopes, resources, created_at, \
     expires_at, redirect_uri, code_challenge, nonce, format, jti, cnf_x5t) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
     $8::text[], $9::bigint[], $10::bigint[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[])";

/// Starts one interaction.
const INSERT_INTERACTION: &str = "INSERT INTO interactions (id_digest, tenant_id, client_id, request, browser_digest, created_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// [`INSERT_INTERACTION`] for many rows in one PostgreSQL statement (as [`INSERT_TOKENS_PG`]).
const INSERT_INTERACTIONS_PG: &str = "INSERT INTO interactions (id_digest, tenant_id, client_id, request, browser_digest, created_at, expires_at) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[])";

/// Appends one audit event, or counts one more occurrence of an identical event of the same
/// minute (the id is the digest of both, [`audit_id`]).
const INSERT_AUDIT: &str = "INSERT INTO audit_events (id, tenant_id, at, kind, client_id, subject, detail) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (id) DO UPDATE SET occurrences = audit_events.occurrences + 1";

/// [`INSERT_AUDIT`] for many rows in one PostgreSQL statement (as [`INSERT_TOKENS_PG`]).
/// Identical events within the batch are grouped first: one statement may not update a row
/// twice.
const INSERT_AUDIT_PG: &str = "INSERT INTO audit_events (id, tenant_id, at, kind, client_id, subject, detail, occurrences) \
     SELECT id, min(tenant_id), min(at), min(kind), min(client_id), min(subject), min(detail), count(*) \
     FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[]) \
         AS e(id, tenant_id, at, kind, client_id, subject, detail) \
     GROUP BY id \
     ON CONFLICT (id) DO UPDATE SET occurrences = audit_events.occurrences + excluded.occurrences";

/// The key of an audit event: a digest of everything it says but the second it happened, so
/// identical events of one minute share it and collapse into one row.
fn audit_id(event: &AuditEvent, detail: &str) -> String {
    let minute = event.at.div_euclid(60);
    let identity = serde_json::json!([
        event.tenant_id,
        event.kind,
        event.client_id,
        event.subject,
        detail,
        minute
    ]);
    crate::secrets::token_digest(&identity.to_string())
}

/// A change announced inside its transaction, waiting for the commit.
struct Announced<'a> {
    change: changes::Change,
    echo: Option<changes::Echo<'a>>,
}

fn client_change(tenant: &str, client_id: &str) -> changes::Change {
    changes::Change::Client {
        tenant: tenant.to_owned(),
        client_id: client_id.to_owned(),
    }
}

fn keys_change(tenant: &str) -> changes::Change {
    changes::Change::Keys {
        tenant: tenant.to_owned(),
    }
}

/// The parameters of [`INSERT_AUDIT`].
fn audit_params(event: &AuditEvent) -> Vec<Param> {
    let detail = event.detail.to_string();
    params![
        audit_id(event, &detail),
        event.tenant_id,
        event.at,
        event.kind,
        event.client_id,
        event.subject,
        detail
    ]
}

/// The parameters of [`INSERT_TOKEN`].
fn token_params(t: &TokenRecord) -> Vec<Param> {
    params![
        t.digest,
        t.tenant_id,
        t.kind.as_str(),
        t.grant_id,
        t.client_id,
        t.subject,
        t.scopes,
        t.resources,
        t.created_at,
        t.expires_at,
        t.redirect_uri,
        t.code_challenge,
        t.nonce,
        t.format,
        t.jti,
        t.cnf_x5t,
    ]
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A transaction spanning one protocol step; dropped without commit, it rolls back.
pub struct Tx {
    inner: TxInner,
}

enum TxInner {
    Sqlite(sqlite::SqliteTx),
    Postgres(PgConn),
}

impl Tx {
    /// A write statement in the transaction; returns the rows changed.
    async fn execute(&mut self, sql: &'static str, params: Vec<Param>) -> Result<u64, StoreError> {
        match &mut self.inner {
            TxInner::Sqlite(tx) => tx.execute(sql, &params),
            TxInner::Postgres(conn) => conn.execute(pg_query(sql, params)).await,
        }
    }

    /// A query in the transaction returning at most one row.
    async fn fetch_optional<T>(
        &mut self,
        sql: &'static str,
        params: Vec<Param>,
        f: impl Fn(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        match &mut self.inner {
            TxInner::Sqlite(tx) => Ok(tx.query(sql, &params, f)?.into_iter().next()),
            TxInner::Postgres(conn) => conn
                .fetch_all(pg_query(sql, params))
                .await?
                .first()
                .map(|r| f(&Row::Postgres(r)))
                .transpose(),
        }
    }
}

impl Store {
    /// Opens (creating a SQLite file if needed) and migrates the database at `url`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let store = Self::open(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Applies every embedded migration not yet applied.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.db {
            Db::Sqlite(db) => db.migrate().await,
            Db::Postgres(pool) => pool.acquire().await?.migrate(&MIGRATOR).await,
        }
    }

    /// Embedded migrations not yet applied, as (version, description). Reads only.
    pub async fn pending_migrations(&self) -> Result<Vec<(i64, String)>, StoreError> {
        // No bookkeeping table yet means nothing was ever applied.
        let applied = match self
            .db
            .fetch_all(
                "SELECT version FROM _sqlx_migrations WHERE success = TRUE",
                params![],
                |r| get::<i64>(r, "version"),
            )
            .await
        {
            Ok(versions) => versions,
            Err(StoreError::Database(sqlx::Error::Database(_)) | StoreError::Sqlite(_)) => {
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        Ok(MIGRATOR
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .map(|m| (m.version, m.description.to_string()))
            .collect())
    }

    /// Opens the database at `url` without migrating it (operators' tools that only inspect).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let db = if url.starts_with("sqlite:") {
            Db::Sqlite(Arc::new(sqlite::SqliteDb::open(url, sqlite_readers())?))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Db::Postgres(PgPool::connect(url).await?)
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        // SQLite serves one process: its cache is trusted from the start. On PostgreSQL other
        // processes change clients too; the cache is trusted while their changes are heard.
        let clients = Arc::new(client_cache::ClientCache::new(matches!(db, Db::Sqlite(_))));
        let changes = Arc::new(changes::Changes::new(clients.clone()));
        if matches!(db, Db::Postgres(_)) {
            changes::spawn_listener(url.to_owned(), &changes);
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
        match self.db {
            Db::Sqlite(_) => Dialect::Sqlite,
            Db::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Starts a write transaction. On SQLite it waits for this process's single writer and
    /// takes the database's write lock up front, so concurrent writers queue instead of failing.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        let inner = match &self.db {
            Db::Sqlite(db) => TxInner::Sqlite(db.begin().await?),
            Db::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                conn.begin().await?;
                TxInner::Postgres(conn)
            }
        };
        Ok(Tx { inner })
    }

    /// Closes the connections (PostgreSQL; SQLite's close when the store is dropped).
    pub async fn close(&self) {
        if let Db::Postgres(pool) = &self.db {
            pool.close().await;
        }
    }

    // ---- clients -------------------------------------------------------------------------

    /// Inserts a new client and its `client_registered` audit event, in one transaction. With
    /// the digest of an initial access token (RFC 7591 §3), the token is used once in the same
    /// transaction (one conditional write, which fails for unknown, revoked, expired or used-up
    /// tokens and counts a use down for limited ones) and its use audited; false when it cannot
    /// be used, and then nothing is written.
    pub async fn insert_client(
        &self,
        c: &ClientRecord,
        initial_access_token: Option<&str>,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        if let Some(digest) = initial_access_token {
            let used = tx
                .fetch_optional(
                    "UPDATE initial_access_tokens SET uses_left = uses_left - 1 \
                     WHERE digest = $1 AND tenant_id = $2 AND revoked_at IS NULL \
                       AND (expires_at IS NULL OR expires_at > $3) AND (uses_left IS NULL OR uses_left > 0) \
                     RETURNING id",
                    params![digest, c.tenant_id, c.created_at],
                    |r| get::<String>(r, "id"),
                )
                .await?;
            let Some(id) = used else {
                tx.commit().await?;
                return Ok(false);
            };
            tx.audit(&event.as_action(
                "initial_access_token_used",
                serde_json::json!({ "initial_access_token": id }),
            ))
            .await?;
        }
        tx.execute("INSERT INTO clients (tenant_id, client_id, secret_digest, metadata, status, created_at, updated_at, \
             sealed_secret, registration_token_digest, secret_expires_at) VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9)", params![c.tenant_id, c.client_id, c.secret_digest, c.metadata_json(), c.status.as_str(), c.created_at, c.sealed_secret, c.registration_token_digest, c.secret_expires_at]).await?;
        tx.audit(event).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A client by id, whatever its status.
    pub async fn client(
        &self,
        tenant: &str,
        client_id: &str,
    ) -> Result<Option<ClientRecord>, StoreError> {
        // No client id holds a NUL (registration refuses one), and PostgreSQL cannot even
        // compare text with one: a request naming one names no client.
        if client_id.contains('\0') {
            return Ok(None);
        }
        if let Some(hit) = self.clients.get(tenant, client_id) {
            return Ok(Some(hit));
        }
        let read = self.clients.read_epoch();
        let record = self.db.fetch_optional("SELECT tenant_id, client_id, secret_digest, metadata, status, created_at, sealed_secret, \
             registration_token_digest, secret_expires_at \
             FROM clients WHERE tenant_id = $1 AND client_id = $2", params![tenant, client_id], ClientRecord::from_row).await?;
        if let Some(r) = &record {
            self.clients.put(r.clone(), read);
        }
        Ok(record)
    }

    /// Inside `tx`, before its commit: announces `change` to every process sharing a PostgreSQL
    /// database. `pg_notify` is delivered by the commit itself, so the announcement goes out
    /// exactly when the change does. Pass what it returns to [`Store::announced`] after the
    /// commit.
    async fn announce_in(
        &self,
        tx: &mut Tx,
        change: changes::Change,
    ) -> Result<Announced<'_>, StoreError> {
        let echo = if matches!(self.db, Db::Postgres(_)) {
            let (payload, echo) = self.changes.announce(change.clone());
            tx.execute(changes::NOTIFY, params![payload]).await?;
            echo
        } else {
            None
        };
        Ok(Announced { change, echo })
    }

    /// After the commit of an announced change: forgets the client here, and waits until the
    /// announcement is out to every process (this one's listener heard it).
    async fn announced(&self, announced: Announced<'_>) {
        if let changes::Change::Client { tenant, client_id } = &announced.change {
            self.clients.forget(tenant, client_id);
        }
        if let Some(echo) = announced.echo {
            echo.heard().await;
        }
    }

    /// Whether this store hears the changes other processes announce (PostgreSQL): `None` on
    /// SQLite, which has no other processes to hear; `Some(false)` while the listening
    /// connection is down, when client lookups bypass the cache. A host may report it in its
    /// health checks.
    pub fn change_listener_connected(&self) -> Option<bool> {
        match self.db {
            Db::Sqlite(_) => None,
            Db::Postgres(_) => Some(self.clients.is_trusted()),
        }
    }

    /// Follows signing-key changes announced by any process sharing the database
    /// (PostgreSQL); also moves when this process starts hearing announcements again after a
    /// loss, since some may have been missed.
    pub(crate) fn key_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.key_changes()
    }

    /// A client read from the database, bypassing the cache: for decisions that must see the
    /// latest row, such as checking a registration access token that may just have rotated.
    pub async fn client_uncached(
        &self,
        tenant: &str,
        client_id: &str,
    ) -> Result<Option<ClientRecord>, StoreError> {
        self.clients.forget(tenant, client_id);
        self.client(tenant, client_id).await
    }

    /// Every client of a tenant.
    pub async fn clients(&self, tenant: &str) -> Result<Vec<ClientRecord>, StoreError> {
        self.db.fetch_all("SELECT tenant_id, client_id, secret_digest, metadata, status, created_at, sealed_secret, \
             registration_token_digest, secret_expires_at \
             FROM clients WHERE tenant_id = $1 ORDER BY created_at, client_id", params![tenant], ClientRecord::from_row).await
    }

    /// Replaces the secret of a client that has one: its keyed digest, and its sealed form for
    /// client_secret_jwt clients. False when the client does not exist or has no secret.
    pub async fn set_client_secret(
        &self,
        tenant: &str,
        client_id: &str,
        digest: &str,
        sealed: Option<&str>,
        now: UnixTime,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let done = self.change_audited("UPDATE clients SET secret_digest = $1, sealed_secret = $2, updated_at = $3, secret_expires_at = NULL \
             WHERE tenant_id = $4 AND client_id = $5 AND secret_digest IS NOT NULL AND status <> 'deleted'", params![digest, sealed, now, tenant, client_id], event,
             Some(client_change(tenant, client_id))).await?;
        Ok(done == 1)
    }

    // ---- initial access tokens (RFC 7591 §3) ---------------------------------------------

    /// Stores a minted initial access token (its digest only).
    pub async fn insert_initial_access_token(
        &self,
        t: &InitialAccessTokenRecord,
        digest: &str,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.change_audited("INSERT INTO initial_access_tokens (id, digest, tenant_id, uses_left, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)", params![t.id, digest, t.tenant_id, t.uses_left, t.created_at, t.expires_at], event, None).await?;
        Ok(())
    }

    /// Revokes an initial access token by id. False when no live token has that id.
    pub async fn revoke_initial_access_token(
        &self,
        tenant: &str,
        id: &str,
        now: UnixTime,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let done = self.change_audited("UPDATE initial_access_tokens SET revoked_at = $1 WHERE id = $2 AND tenant_id = $3 AND revoked_at IS NULL", params![now, id, tenant], event, None).await?;
        Ok(done == 1)
    }

    /// Every initial access token of a tenant (never the tokens themselves).
    pub async fn initial_access_tokens(
        &self,
        tenant: &str,
    ) -> Result<Vec<InitialAccessTokenRecord>, StoreError> {
        self.db.fetch_all("SELECT id, tenant_id, uses_left, created_at, expires_at, revoked_at FROM initial_access_tokens \
             WHERE tenant_id = $1 ORDER BY created_at, id", params![tenant], InitialAccessTokenRecord::from_row).await
    }

    // ---- replay and audit ----------------------------------------------------------------

    /// Records `key` in `namespace` until `expires_at`; false when it was already recorded and
    /// has not expired — a replay. One conditional write, correct across processes.
    pub async fn record_once(
        &self,
        namespace: &str,
        key: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let digest = crate::secrets::token_digest(key);
        // One conditional write: a new key is inserted, an expired entry is taken over, a live
        // one is left alone (no row changed).
        let inserted = self
            .db
            .execute(
                "INSERT INTO replay (namespace, key_digest, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (namespace, key_digest) DO UPDATE SET expires_at = excluded.expires_at \
                 WHERE replay.expires_at <= $4",
                params![namespace, digest, expires_at, now],
            )
            .await?;
        Ok(inserted == 1)
    }

    /// Appends an audit event; an identical one of the same minute only counts one more
    /// occurrence. It joins the group commit: a flood of failed client authentications, each of
    /// which leaves one, shares commits instead of costing one each, and shares rows too.
    pub async fn audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.writer
            .insert(group_commit::Append {
                table: group_commit::Table::Audit,
                params: audit_params(event),
            })
            .await
    }

    /// One change statement and the audit event that records it, in one transaction, with the
    /// announcement of `change` when something changed: the event and the announcement exist
    /// exactly when the change does. Returns the rows changed.
    async fn change_audited(
        &self,
        sql: &'static str,
        params: Vec<Param>,
        event: &AuditEvent,
        change: Option<changes::Change>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let changed = tx.execute(sql, params).await?;
        let mut announced = None;
        if changed > 0 {
            tx.audit(event).await?;
            if let Some(change) = change {
                announced = Some(self.announce_in(&mut tx, change).await?);
            }
        }
        tx.commit().await?;
        if let Some(announced) = announced {
            self.announced(announced).await;
        }
        Ok(changed)
    }

    /// The newest audit events, newest first.
    pub async fn audit_events(
        &self,
        tenant: &str,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.db.fetch_all("SELECT tenant_id, at, kind, client_id, subject, detail, occurrences FROM audit_events \
             WHERE tenant_id = $1 ORDER BY at DESC, id DESC LIMIT $2", params![tenant, limit], AuditEvent::from_row).await
    }

    /// Replaces a client's metadata and, given one, the digest of its registration access
    /// token (RFC 7592 §2.2 rotates it with every update). Returns false when no such client
    /// exists (or it was deleted).
    pub async fn update_client_metadata(
        &self,
        tenant: &str,
        client_id: &str,
        metadata: &crate::model::client::ClientMetadata,
        registration_token_digest: Option<&str>,
        now: UnixTime,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let json =
            serde_json::to_string(metadata).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let done = self
            .change_audited(
                "UPDATE clients SET metadata = $1, updated_at = $2, \
             registration_token_digest = COALESCE($5, registration_token_digest) \
             WHERE tenant_id = $3 AND client_id = $4 AND status <> 'deleted'",
                params![json, now, tenant, client_id, registration_token_digest],
                event,
                Some(client_change(tenant, client_id)),
            )
            .await?;

        Ok(done == 1)
    }

    /// Enables or disables a client. Returns false when no such client exists.
    pub async fn set_client_status(
        &self,
        tenant: &str,
        client_id: &str,
        status: ClientStatus,
        now: UnixTime,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        // A deleted client stays deleted: no status change reaches it.
        let done = self.change_audited("UPDATE clients SET status = $1, updated_at = $2 WHERE tenant_id = $3 AND client_id = $4 \
             AND status <> 'deleted'", params![status.as_str(), now, tenant, client_id], event,
             Some(client_change(tenant, client_id))).await?;
        Ok(done == 1)
    }

    /// Deletes a client for good (RFC 7592 §2.3), in one transaction: its row stays as a
    /// tombstone with status `deleted` and no credentials, so its id is never issued again and
    /// no later change can revive it; every grant of the client is revoked, and with it every
    /// code and token issued from those grants; its consents are withdrawn. Tokens without a
    /// grant (client credentials) are refused from then on because every token check requires
    /// an active client, which this client can never be again. False when there was no such
    /// client (or it was already deleted).
    pub async fn delete_client(
        &self,
        tenant: &str,
        client_id: &str,
        now: UnixTime,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let deleted = tx
            .execute(
                "UPDATE clients SET status = 'deleted', secret_digest = NULL, sealed_secret = NULL, \
                 registration_token_digest = NULL, updated_at = $1 \
                 WHERE tenant_id = $2 AND client_id = $3 AND status <> 'deleted'",
                params![now, tenant, client_id],
            )
            .await?;
        if deleted == 0 {
            // Nothing was written; ending the transaction cleanly returns its connection.
            tx.commit().await?;
            return Ok(false);
        }
        tx.execute(
            "UPDATE grants SET revoked_at = $1 WHERE tenant_id = $2 AND client_id = $3 AND revoked_at IS NULL",
            params![now, tenant, client_id],
        )
        .await?;
        tx.execute(
            "DELETE FROM consents WHERE tenant_id = $1 AND client_id = $2",
            params![tenant, client_id],
        )
        .await?;
        tx.audit(event).await?;
        let announced = self
            .announce_in(&mut tx, client_change(tenant, client_id))
            .await?;
        tx.commit().await?;
        self.announced(announced).await;
        Ok(true)
    }

    // ---- keys ----------------------------------------------------------------------------

    /// Stores a key.
    pub async fn insert_key(&self, k: &KeyRecord, event: &AuditEvent) -> Result<(), StoreError> {
        self.change_audited("INSERT INTO signing_keys (tenant_id, kid, alg, status, public_jwk, sealed_private, created_at, activated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", params![k.tenant_id, k.kid, k.alg, k.status, k.public_jwk, k.sealed_private, k.created_at, k.activated_at], event,
             Some(keys_change(&k.tenant_id))).await?;
        Ok(())
    }

    /// The keys JWKS publishes at `now`: upcoming, active, and retiring until their
    /// `retired_at` (SURFACE S2).
    pub async fn published_keys(
        &self,
        tenant: &str,
        now: UnixTime,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        self.db
            .fetch_all(
                concat!(
                    "SELECT ",
                    key_columns!(),
                    " FROM signing_keys WHERE tenant_id = $1 AND status <> 'retired' \
              AND (retired_at IS NULL OR retired_at > $2) ORDER BY created_at, kid"
                ),
                params![tenant, now],
                KeyRecord::from_row,
            )
            .await
    }

    /// Every key of a tenant, retired ones included.
    pub async fn all_keys(&self, tenant: &str) -> Result<Vec<KeyRecord>, StoreError> {
        self.db
            .fetch_all(
                concat!(
                    "SELECT ",
                    key_columns!(),
                    " FROM signing_keys WHERE tenant_id = $1 ORDER BY created_at, kid"
                ),
                params![tenant],
                KeyRecord::from_row,
            )
            .await
    }

    /// Makes an upcoming key the active key of its alg, provided it was created (and so
    /// published) no later than `published_before`; the previously active keys of that alg
    /// start retiring and leave JWKS at `retire_at`. One transaction. False when the key is not
    /// an upcoming key that has been published long enough.
    pub async fn activate_key(
        &self,
        tenant: &str,
        kid: &str,
        now: UnixTime,
        published_before: UnixTime,
        retire_at: UnixTime,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let activated = tx
            .execute(
                "UPDATE signing_keys SET status = 'active', activated_at = $1, retired_at = NULL \
             WHERE tenant_id = $2 AND kid = $3 AND status = 'upcoming' AND created_at <= $4",
                params![now, tenant, kid, published_before],
            )
            .await?;
        if activated != 1 {
            // Nothing was written; ending the transaction cleanly returns its connection.
            tx.commit().await?;
            return Ok(false);
        }
        tx.audit(event).await?;
        tx.execute(
            "UPDATE signing_keys SET status = 'retiring', retired_at = $1 \
             WHERE tenant_id = $2 AND kid <> $3 AND status = 'active' \
               AND alg = (SELECT alg FROM signing_keys WHERE tenant_id = $2 AND kid = $3)",
            params![retire_at, tenant, kid],
        )
        .await?;
        let announced = self.announce_in(&mut tx, keys_change(tenant)).await?;
        tx.commit().await?;
        self.announced(announced).await;
        Ok(true)
    }

    /// Starts retiring a key: it stops signing now and leaves JWKS at `retire_at`. An active key
    /// retires only while another active key of its alg remains, so signing never stops.
    pub async fn retire_key(
        &self,
        tenant: &str,
        kid: &str,
        retire_at: UnixTime,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let done = self.change_audited("UPDATE signing_keys SET status = 'retiring', retired_at = $1 \
             WHERE tenant_id = $2 AND kid = $3 AND (status = 'upcoming' OR (status = 'active' AND EXISTS ( \
               SELECT 1 FROM signing_keys other WHERE other.tenant_id = $2 AND other.kid <> $3 \
                 AND other.status = 'active' AND other.alg = signing_keys.alg)))", params![retire_at, tenant, kid], event,
             Some(keys_change(tenant))).await?;
        Ok(done == 1)
    }

    // ---- interactions --------------------------------------------------------------------

    /// Stores a pending authorization.
    ///
    /// Every authorization request, signed in or not, starts one, so the write joins the group
    /// commit: a burst of requests shares durable commits instead of costing one each.
    pub async fn insert_interaction(&self, i: &InteractionRecord) -> Result<(), StoreError> {
        self.writer
            .insert(group_commit::Append {
                table: group_commit::Table::Interactions,
                params: params![
                    i.id_digest,
                    i.tenant_id,
                    i.client_id,
                    i.request,
                    i.browser_digest,
                    i.created_at,
                    i.expires_at
                ],
            })
            .await
    }

    /// A pending (not completed, not expired) interaction.
    pub async fn pending_interaction(
        &self,
        id_digest: &str,
        now: UnixTime,
    ) -> Result<Option<InteractionRecord>, StoreError> {
        self.db.fetch_optional("SELECT id_digest, tenant_id, client_id, request, browser_digest, subject, login_requested_at, created_at, expires_at \
             FROM interactions WHERE id_digest = $1 AND completed_at IS NULL AND expires_at > $2", params![id_digest, now], InteractionRecord::from_row).await
    }

    /// Records that the browser was sent to the host's login page.
    pub async fn mark_login_requested(
        &self,
        id_digest: &str,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE interactions SET login_requested_at = $1 WHERE id_digest = $2",
                params![now, id_digest],
            )
            .await?;
        Ok(())
    }

    /// Records the subject the host reported for an interaction.
    pub async fn set_interaction_subject(
        &self,
        id_digest: &str,
        subject: &str,
    ) -> Result<(), StoreError> {
        self.db.execute("UPDATE interactions SET subject = $1 WHERE id_digest = $2 AND completed_at IS NULL", params![subject, id_digest]).await?;
        Ok(())
    }

    /// The standing consent of `subject` for `client_id`.
    pub async fn consent(
        &self,
        tenant: &str,
        subject: &str,
        client_id: &str,
    ) -> Result<Option<ConsentRecord>, StoreError> {
        self.db.fetch_optional("SELECT scopes, resources, claims FROM consents WHERE tenant_id = $1 AND subject = $2 AND client_id = $3", params![tenant, subject, client_id], ConsentRecord::from_row).await
    }

    // ---- tokens (reads) ------------------------------------------------------------------

    /// A usable token: unexpired, unrevoked, unconsumed, its grant unrevoked and its client
    /// active. One indexed read.
    pub async fn active_token(
        &self,
        digest: &str,
        now: UnixTime,
    ) -> Result<Option<TokenRecord>, StoreError> {
        self.db.fetch_optional(concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens t \
             JOIN clients c ON c.tenant_id = t.tenant_id AND c.client_id = t.client_id \
             LEFT JOIN grants g ON g.id = t.grant_id \
             WHERE t.digest = $1 AND t.expires_at > $2 AND t.revoked_at IS NULL AND t.consumed_at IS NULL \
               AND t.kind <> 'code' AND c.status = 'active' \
               AND (t.grant_id IS NULL OR (g.revoked_at IS NULL AND g.expires_at > $2))"
        ), params![digest, now], TokenRecord::from_row).await
    }

    /// A token of any state, for revocation (RFC 7009 accepts expired and used tokens).
    pub async fn any_token(&self, digest: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.db
            .fetch_optional(
                concat!(
                    "SELECT ",
                    token_columns!(),
                    " FROM tokens t WHERE t.digest = $1 AND t.kind <> 'code'"
                ),
                params![digest],
                TokenRecord::from_row,
            )
            .await
    }

    /// A token of any kind and state, read without locking: lets a step fetch what it needs from
    /// the host before its transaction starts. Decisions are still made by the conditional
    /// write inside the transaction.
    pub async fn peek_token(&self, digest: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.db
            .fetch_optional(
                concat!(
                    "SELECT ",
                    token_columns!(),
                    " FROM tokens t WHERE t.digest = $1"
                ),
                params![digest],
                TokenRecord::from_row,
            )
            .await
    }

    /// The grant `id` if it is still live (unrevoked, unexpired, its client active), read
    /// outside any transaction.
    pub async fn live_grant(
        &self,
        id: &str,
        now: UnixTime,
    ) -> Result<Option<GrantRecord>, StoreError> {
        self.db
            .fetch_optional(LIVE_GRANT, params![id, now], GrantRecord::from_row)
            .await
    }

    /// The grant a token came from.
    pub async fn grant(&self, id: &str) -> Result<Option<GrantRecord>, StoreError> {
        self.db.fetch_optional("SELECT id, tenant_id, client_id, subject, scopes, resources, details, auth_time, created_at, expires_at \
             FROM grants WHERE id = $1", params![id], GrantRecord::from_row).await
    }

    /// Inserts a token outside a transaction (client credentials: one write per token). The
    /// write joins a group commit: concurrent inserts share one transaction, and each caller
    /// returns only once its row is durably committed.
    pub async fn insert_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
        self.writer
            .insert(group_commit::Append {
                table: group_commit::Table::Tokens,
                params: token_params(t),
            })
            .await
    }

    /// Revokes one access token (RFC 7009 §2.1: revoking an access token revokes only it).
    pub async fn revoke_token(&self, digest: &str, now: UnixTime) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE tokens SET revoked_at = $1 WHERE digest = $2 AND revoked_at IS NULL",
                params![now, digest],
            )
            .await?;
        Ok(())
    }

    /// Revokes a grant and with it every code and token issued from it.
    pub async fn revoke_grant(&self, grant_id: &str, now: UnixTime) -> Result<(), StoreError> {
        self.db
            .execute(REVOKE_GRANT, params![now, grant_id])
            .await?;
        Ok(())
    }

    /// The clients `subject` has standing consent for, with what was consented.
    pub async fn consents_of(
        &self,
        tenant: &str,
        subject: &str,
    ) -> Result<Vec<(String, ConsentRecord, UnixTime)>, StoreError> {
        self.db
            .fetch_all(
                "SELECT client_id, scopes, resources, claims, updated_at FROM consents \
             WHERE tenant_id = $1 AND subject = $2 ORDER BY updated_at DESC, client_id",
                params![tenant, subject],
                |r| {
                    Ok((
                        get(r, "client_id")?,
                        ConsentRecord::from_row(r)?,
                        get(r, "updated_at")?,
                    ))
                },
            )
            .await
    }

    /// Withdraws `subject`'s consent for `client_id` and revokes every grant between them (and
    /// so every token issued from those grants). Returns false when there was nothing to revoke.
    pub async fn revoke_authorization(
        &self,
        tenant: &str,
        subject: &str,
        client_id: &str,
        now: UnixTime,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let grants = tx.execute("UPDATE grants SET revoked_at = $1 WHERE tenant_id = $2 AND subject = $3 AND client_id = $4 AND revoked_at IS NULL", params![now, tenant, subject, client_id]).await?;
        let consents = tx
            .execute(
                "DELETE FROM consents WHERE tenant_id = $1 AND subject = $2 AND client_id = $3",
                params![tenant, subject, client_id],
            )
            .await?;
        if grants + consents > 0 {
            tx.audit(event).await?;
        }
        tx.commit().await?;
        Ok(grants + consents > 0)
    }

    /// Deletes rows nothing can use any more (SURFACE S26): expired codes and tokens (a revoked
    /// token stays until it expires, so its revocation is remembered), expired interactions and
    /// grants, and audit events older than `audit_before`. Returns the number of rows removed.
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

/// Most rows one statement of [`Store::prune_expired`] deletes.
pub const PRUNE_BATCH: i64 = 2000;

/// A grant that is unrevoked, unexpired and whose client is active.
const LIVE_GRANT: &str = "SELECT g.id, g.tenant_id, g.client_id, g.subject, g.scopes, g.resources, g.details, g.auth_time, g.created_at, g.expires_at \
     FROM grants g JOIN clients c ON c.tenant_id = g.tenant_id AND c.client_id = g.client_id \
     WHERE g.id = $1 AND g.revoked_at IS NULL AND g.expires_at > $2 AND c.status = 'active'";

/// Revokes a grant; its codes and tokens stop working with it (they are checked against it).
const REVOKE_GRANT: &str = "UPDATE grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL";

/// A grant revoked because a token issued from it was replayed.
#[derive(Debug)]
pub struct RevokedGrant {
    /// The grant.
    pub id: String,
    /// The client it was issued to.
    pub client_id: String,
    /// Its user.
    pub subject: String,
}

/// The result of trying to use a single-use token.
#[derive(Debug)]
pub enum Consumed {
    /// This call consumed it; no other call can.
    Now(Box<TokenRecord>),
    /// It had already been consumed: a replay. Its grant has been revoked in this transaction
    /// (`Some`: the grant this call revoked; `None`: an earlier replay revoked it already).
    Replayed(Option<Box<RevokedGrant>>),
    /// Unknown, expired or revoked.
    Invalid,
}

impl Tx {
    /// Writes an audit event as part of this step, so it exists exactly when the change does.
    pub(crate) async fn audit(&mut self, event: &AuditEvent) -> Result<(), StoreError> {
        self.execute(INSERT_AUDIT, audit_params(event))
            .await
            .map(drop)
    }

    /// Commits the step.
    pub async fn commit(self) -> Result<(), StoreError> {
        match self.inner {
            TxInner::Sqlite(tx) => tx.commit().await,
            TxInner::Postgres(mut conn) => conn.commit().await,
        }
    }

    /// Atomically marks the interaction completed; false when it already was (a double submit)
    /// or has expired.
    pub async fn complete_interaction(
        &mut self,
        id_digest: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let done = self.execute("UPDATE interactions SET completed_at = $1 WHERE id_digest = $2 AND completed_at IS NULL AND expires_at > $1", params![now, id_digest]).await?;
        Ok(done == 1)
    }

    /// Inserts a grant.
    pub async fn insert_grant(&mut self, g: &GrantRecord) -> Result<(), StoreError> {
        self.execute("INSERT INTO grants (id, tenant_id, client_id, subject, scopes, resources, details, auth_time, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)", params![g.id, g.tenant_id, g.client_id, g.subject, g.scopes, g.resources, g.details, g.auth_time, g.created_at, g.expires_at]).await?;
        Ok(())
    }

    /// Records or widens standing consent.
    pub async fn upsert_consent(
        &mut self,
        tenant: &str,
        subject: &str,
        client_id: &str,
        consent: &ConsentRecord,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        self.execute("INSERT INTO consents (tenant_id, subject, client_id, scopes, resources, claims, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (tenant_id, subject, client_id) DO UPDATE SET scopes = $4, resources = $5, claims = $6, updated_at = $7",
             params![tenant, subject, client_id, consent.scopes_text(), consent.resources_json(), consent.claims_json(), now]).await?;
        Ok(())
    }

    /// Inserts a code or token.
    pub async fn insert_token(&mut self, t: &TokenRecord) -> Result<(), StoreError> {
        self.execute(INSERT_TOKEN, token_params(t)).await?;
        Ok(())
    }

    /// Redeems a code or rotates a refresh token: one conditional write. When the token was
    /// already consumed, this is a replay (RFC 6749 §4.1.2, RFC 9700 §4.14.2) and its grant —
    /// with every token issued from it — is revoked in the same transaction.
    pub async fn consume(
        &mut self,
        kind: TokenKind,
        digest: &str,
        now: UnixTime,
    ) -> Result<Consumed, StoreError> {
        // SQLite's RETURNING cannot name a table alias, so the row is returned unqualified.
        let row = self.fetch_optional("UPDATE tokens SET consumed_at = $1 \
             WHERE digest = $2 AND kind = $3 AND consumed_at IS NULL AND revoked_at IS NULL AND expires_at > $1 \
             RETURNING digest, tenant_id, kind, grant_id, client_id, subject, scopes, resources, created_at, expires_at, \
             consumed_at, revoked_at, redirect_uri, code_challenge, nonce, format, jti, cnf_x5t", params![now, digest, kind.as_str()], TokenRecord::from_row).await?;
        if let Some(token) = row {
            return Ok(Consumed::Now(Box::new(token)));
        }
        let revoked = self.fetch_optional("UPDATE grants SET revoked_at = $1 WHERE revoked_at IS NULL AND id = \
             (SELECT grant_id FROM tokens WHERE digest = $2 AND kind = $3 AND consumed_at IS NOT NULL) \
             RETURNING id, client_id, subject", params![now, digest, kind.as_str()], |r| Ok(RevokedGrant {
                id: get(r, "id")?,
                client_id: get(r, "client_id")?,
                subject: get(r, "subject")?,
            })).await?;
        if let Some(grant) = revoked {
            return Ok(Consumed::Replayed(Some(Box::new(grant))));
        }
        let seen = self
            .fetch_optional(
                "SELECT 1 FROM tokens WHERE digest = $1 AND kind = $2 AND consumed_at IS NOT NULL",
                params![digest, kind.as_str()],
                |_| Ok(()),
            )
            .await?;
        Ok(if seen.is_some() {
            Consumed::Replayed(None)
        } else {
            Consumed::Invalid
        })
    }

    /// Reads a grant inside the step, with the client status, to decide whether tokens may be
    /// issued from it.
    pub async fn live_grant(
        &mut self,
        id: &str,
        now: UnixTime,
    ) -> Result<Option<GrantRecord>, StoreError> {
        self.fetch_optional(LIVE_GRANT, params![id, now], GrantRecord::from_row)
            .await
    }
}
