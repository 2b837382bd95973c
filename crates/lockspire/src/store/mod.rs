//! Storage (SURFACE S26): SQLite (embedded default) and PostgreSQL behind one set of
//! intent-named operations.
//!
//! Every statement is written once: both databases accept the same `$n` placeholders, types and
//! `UPDATE … RETURNING`, so the code runs through sqlx's `Any` driver. Every single-use
//! transition (code redemption, refresh rotation, interaction completion) is one conditional
//! `UPDATE … WHERE … IS NULL RETURNING`, never a read followed by a write, so it is correct under
//! concurrent requests and across several server processes sharing one PostgreSQL.

mod client_cache;
mod group_commit;
mod records;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Executor, Row};
use tokio::sync::{Mutex, OwnedMutexGuard};

pub use records::*;

use crate::clock::UnixTime;

/// A storage failure. Callers map it to `server_error` or `temporarily_unavailable`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database reported an error or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations could not be applied.
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value could not be decoded (a bug or a manual edit).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The URL names a database Lockspire does not support.
    #[error("unsupported database URL (use sqlite:// or postgres://)")]
    UnsupportedUrl,
}

impl StoreError {
    /// True when the database is unreachable or overloaded rather than refusing the statement:
    /// the client should retry (RFC 6749 `temporarily_unavailable`).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Database(
                sqlx::Error::PoolTimedOut
                    | sqlx::Error::Io(_)
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
            )
        ) || matches!(self, StoreError::Database(sqlx::Error::Database(e)) if is_busy(e.as_ref()))
    }
}

fn is_busy(e: &dyn sqlx::error::DatabaseError) -> bool {
    // SQLite SQLITE_BUSY (5) / SQLITE_LOCKED (6); PostgreSQL 57P01-03 (admin shutdown) and 53300
    // (too many connections).
    matches!(
        e.code().as_deref(),
        Some("5" | "6" | "517" | "57P01" | "57P02" | "57P03" | "53300")
    )
}

/// Which database the store talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite, embedded (WAL mode).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The store: a connection pool and the operations Lockspire needs.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    writer: group_commit::Writer,
    /// SQLite admits one writer at a time and makes the others sleep-poll (busy timeout),
    /// which turns contention into long tail latencies; queuing writers here instead hands the
    /// lock over without sleeping. `None` for PostgreSQL, whose row locks do this themselves.
    gate: Option<Arc<Mutex<()>>>,
    clients: Arc<client_cache::ClientCache>,
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

pub(crate) async fn insert_token(
    conn: &mut AnyConnection,
    t: &TokenRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO tokens (digest, tenant_id, kind, grant_id, client_id, subject, scopes, resources, created_at, \
         expires_at, redirect_uri, code_challenge, nonce, format, jti, cnf_x5t) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(&t.digest)
    .bind(&t.tenant_id)
    .bind(t.kind.as_str())
    .bind(&t.grant_id)
    .bind(&t.client_id)
    .bind(&t.subject)
    .bind(&t.scopes)
    .bind(&t.resources)
    .bind(t.created_at)
    .bind(t.expires_at)
    .bind(&t.redirect_uri)
    .bind(&t.code_challenge)
    .bind(&t.nonce)
    .bind(&t.format)
    .bind(&t.jti)
    .bind(&t.cnf_x5t)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A transaction spanning one protocol step; dropped without commit, it rolls back.
pub struct Tx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    // Declared after `tx`, so the transaction ends before the write gate opens.
    _gate: Option<OwnedMutexGuard<()>>,
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
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// Embedded migrations not yet applied, as (version, description). Reads only.
    pub async fn pending_migrations(&self) -> Result<Vec<(i64, String)>, StoreError> {
        // No bookkeeping table yet means nothing was ever applied.
        let applied: Vec<i64> =
            match sqlx::query("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_all(&self.pool)
                .await
            {
                Ok(rows) => rows
                    .iter()
                    .map(|r| get::<i64>(r, "version"))
                    .collect::<Result<_, _>>()?,
                Err(sqlx::Error::Database(_)) => Vec::new(),
                Err(e) => return Err(e.into()),
            };
        Ok(MIGRATOR
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .map(|m| (m.version, m.description.to_string()))
            .collect())
    }

    /// Opens the database at `url` without migrating it (operators' tools that only inspect).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (dialect, url) = if url.starts_with("sqlite:") {
            let url = if url.contains("mode=") || url.contains(":memory:") {
                url.to_owned()
            } else if url.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            (Dialect::Sqlite, url)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            (Dialect::Postgres, url.to_owned())
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let mut pool = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(3));
        if dialect == Dialect::Sqlite {
            // An in-memory database exists per connection: keep exactly one.
            if url.contains(":memory:") {
                pool = pool
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None);
            }
            pool = pool.after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL lets readers proceed while one writer commits; foreign keys are unused.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA busy_timeout = 5000").await?;
                    Ok(())
                })
            });
        } else {
            pool = pool.max_connections(16);
        }
        let pool = pool.connect_with(options).await?;
        let gate = (dialect == Dialect::Sqlite).then(|| Arc::new(Mutex::new(())));
        let writer = group_commit::Writer::spawn(pool.clone(), gate.clone());
        Ok(Self {
            pool,
            dialect,
            writer,
            gate,
            clients: Arc::default(),
        })
    }

    /// The database kind.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Starts a transaction. The first statement of every write transaction is a write, so
    /// SQLite takes its write lock up front and concurrent writers wait instead of failing.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        let gate = self.write_gate().await;
        Ok(Tx {
            tx: self.pool.begin().await?,
            _gate: gate,
        })
    }

    /// Waits for this process's turn to write (SQLite only; see `gate`).
    async fn write_gate(&self) -> Option<OwnedMutexGuard<()>> {
        match &self.gate {
            Some(gate) => Some(gate.clone().lock_owned().await),
            None => None,
        }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ---- clients -------------------------------------------------------------------------

    /// Inserts a new client.
    pub async fn insert_client(&self, c: &ClientRecord) -> Result<(), StoreError> {
        let _gate = self.write_gate().await;
        sqlx::query(
            "INSERT INTO clients (tenant_id, client_id, secret_digest, metadata, status, created_at, updated_at, \
             sealed_secret, registration_token_digest, secret_expires_at) VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9)",
        )
        .bind(&c.tenant_id)
        .bind(&c.client_id)
        .bind(&c.secret_digest)
        .bind(c.metadata_json())
        .bind(c.status.as_str())
        .bind(c.created_at)
        .bind(&c.sealed_secret)
        .bind(&c.registration_token_digest)
        .bind(c.secret_expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A client by id, whatever its status.
    pub async fn client(
        &self,
        tenant: &str,
        client_id: &str,
    ) -> Result<Option<ClientRecord>, StoreError> {
        if let Some(hit) = self.clients.get(tenant, client_id) {
            return Ok(Some(hit));
        }
        let row = sqlx::query(
            "SELECT tenant_id, client_id, secret_digest, metadata, status, created_at, sealed_secret, \
             registration_token_digest, secret_expires_at \
             FROM clients WHERE tenant_id = $1 AND client_id = $2",
        )
        .bind(tenant)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        let record = row.map(|r| ClientRecord::from_row(&r)).transpose()?;
        if let Some(r) = &record {
            self.clients.put(r.clone());
        }
        Ok(record)
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
        let rows = sqlx::query(
            "SELECT tenant_id, client_id, secret_digest, metadata, status, created_at, sealed_secret, \
             registration_token_digest, secret_expires_at \
             FROM clients WHERE tenant_id = $1 ORDER BY created_at, client_id",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ClientRecord::from_row).collect()
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
    ) -> Result<bool, StoreError> {
        let _gate = self.write_gate().await;
        self.clients.forget(tenant, client_id);
        let done = sqlx::query(
            "UPDATE clients SET secret_digest = $1, sealed_secret = $2, updated_at = $3, secret_expires_at = NULL \
             WHERE tenant_id = $4 AND client_id = $5 AND secret_digest IS NOT NULL",
        )
        .bind(digest)
        .bind(sealed)
        .bind(now)
        .bind(tenant)
        .bind(client_id)
        .execute(&self.pool)
        .await?;
        // Again after the write: a read racing it may have cached the old row.
        self.clients.forget(tenant, client_id);
        Ok(done.rows_affected() == 1)
    }

    /// Replaces the digest of a client's registration access token (RFC 7592 §3).
    pub async fn set_registration_token(
        &self,
        tenant: &str,
        client_id: &str,
        digest: &str,
    ) -> Result<bool, StoreError> {
        let _gate = self.write_gate().await;
        self.clients.forget(tenant, client_id);
        let done = sqlx::query("UPDATE clients SET registration_token_digest = $1 WHERE tenant_id = $2 AND client_id = $3")
            .bind(digest)
            .bind(tenant)
            .bind(client_id)
            .execute(&self.pool)
            .await?;
        // Again after the write: a read racing it may have cached the old row.
        self.clients.forget(tenant, client_id);
        Ok(done.rows_affected() == 1)
    }

    // ---- initial access tokens (RFC 7591 §3) ---------------------------------------------

    /// Stores a minted initial access token (its digest only).
    pub async fn insert_initial_access_token(
        &self,
        t: &InitialAccessTokenRecord,
        digest: &str,
    ) -> Result<(), StoreError> {
        let _gate = self.write_gate().await;
        sqlx::query(
            "INSERT INTO initial_access_tokens (id, digest, tenant_id, uses_left, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&t.id)
        .bind(digest)
        .bind(&t.tenant_id)
        .bind(t.uses_left)
        .bind(t.created_at)
        .bind(t.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Uses an initial access token once: one conditional write that fails for unknown,
    /// revoked, expired or used-up tokens, and counts a use down for limited ones.
    pub async fn use_initial_access_token(
        &self,
        tenant: &str,
        digest: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let _gate = self.write_gate().await;
        let done = sqlx::query(
            "UPDATE initial_access_tokens SET uses_left = uses_left - 1 \
             WHERE digest = $1 AND tenant_id = $2 AND revoked_at IS NULL \
               AND (expires_at IS NULL OR expires_at > $3) AND (uses_left IS NULL OR uses_left > 0)",
        )
        .bind(digest)
        .bind(tenant)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Revokes an initial access token by id. False when no live token has that id.
    pub async fn revoke_initial_access_token(
        &self,
        tenant: &str,
        id: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let _gate = self.write_gate().await;
        let done = sqlx::query(
            "UPDATE initial_access_tokens SET revoked_at = $1 WHERE id = $2 AND tenant_id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .bind(tenant)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every initial access token of a tenant (never the tokens themselves).
    pub async fn initial_access_tokens(
        &self,
        tenant: &str,
    ) -> Result<Vec<InitialAccessTokenRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, uses_left, created_at, expires_at, revoked_at FROM initial_access_tokens \
             WHERE tenant_id = $1 ORDER BY created_at, id",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(InitialAccessTokenRecord::from_row)
            .collect()
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
        let _gate = self.write_gate().await;
        let digest = crate::secrets::token_digest(key);
        // An expired entry may be reused: clear it first (a no-op when absent or live).
        sqlx::query(
            "DELETE FROM replay WHERE namespace = $1 AND key_digest = $2 AND expires_at <= $3",
        )
        .bind(namespace)
        .bind(&digest)
        .bind(now)
        .execute(&self.pool)
        .await?;
        let inserted = sqlx::query(
            "INSERT INTO replay (namespace, key_digest, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (namespace, key_digest) DO NOTHING",
        )
        .bind(namespace)
        .bind(&digest)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Appends an audit event.
    pub async fn audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let _gate = self.write_gate().await;
        sqlx::query(
            "INSERT INTO audit_events (id, tenant_id, at, kind, client_id, subject, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(crate::secrets::random_id())
        .bind(&event.tenant_id)
        .bind(event.at)
        .bind(&event.kind)
        .bind(&event.client_id)
        .bind(&event.subject)
        .bind(event.detail.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest audit events, newest first.
    pub async fn audit_events(
        &self,
        tenant: &str,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant_id, at, kind, client_id, subject, detail FROM audit_events WHERE tenant_id = $1 \
             ORDER BY at DESC, id DESC LIMIT $2",
        )
        .bind(tenant)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(AuditEvent::from_row).collect()
    }

    /// Replaces a client's metadata. Returns false when no such client exists.
    pub async fn update_client_metadata(
        &self,
        tenant: &str,
        client_id: &str,
        metadata: &crate::protocol::client::ClientMetadata,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let _gate = self.write_gate().await;
        self.clients.forget(tenant, client_id);
        let json =
            serde_json::to_string(metadata).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let done = sqlx::query("UPDATE clients SET metadata = $1, updated_at = $2 WHERE tenant_id = $3 AND client_id = $4")
            .bind(json)
            .bind(now)
            .bind(tenant)
            .bind(client_id)
            .execute(&self.pool)
            .await?;
        // Again after the write: a read racing it may have cached the old row.
        self.clients.forget(tenant, client_id);
        Ok(done.rows_affected() == 1)
    }

    /// Enables or disables a client. Returns false when no such client exists.
    pub async fn set_client_status(
        &self,
        tenant: &str,
        client_id: &str,
        status: ClientStatus,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let _gate = self.write_gate().await;
        self.clients.forget(tenant, client_id);
        let done = sqlx::query("UPDATE clients SET status = $1, updated_at = $2 WHERE tenant_id = $3 AND client_id = $4")
            .bind(status.as_str())
            .bind(now)
            .bind(tenant)
            .bind(client_id)
            .execute(&self.pool)
            .await?;
        // Again after the write: a read racing it may have cached the old row.
        self.clients.forget(tenant, client_id);
        Ok(done.rows_affected() == 1)
    }

    // ---- keys ----------------------------------------------------------------------------

    /// Stores a key.
    pub async fn insert_key(&self, k: &KeyRecord) -> Result<(), StoreError> {
        let _gate = self.write_gate().await;
        sqlx::query(
            "INSERT INTO signing_keys (tenant_id, kid, alg, status, public_jwk, sealed_private, created_at, activated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&k.tenant_id)
        .bind(&k.kid)
        .bind(&k.alg)
        .bind(&k.status)
        .bind(&k.public_jwk)
        .bind(&k.sealed_private)
        .bind(k.created_at)
        .bind(k.activated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The keys JWKS publishes at `now`: upcoming, active, and retiring until their
    /// `retired_at` (SURFACE S2).
    pub async fn published_keys(
        &self,
        tenant: &str,
        now: UnixTime,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM signing_keys WHERE tenant_id = $1 AND status <> 'retired' \
              AND (retired_at IS NULL OR retired_at > $2) ORDER BY created_at, kid"
        ))
        .bind(tenant)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(KeyRecord::from_row).collect()
    }

    /// Every key of a tenant, retired ones included.
    pub async fn all_keys(&self, tenant: &str) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM signing_keys WHERE tenant_id = $1 ORDER BY created_at, kid"
        ))
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(KeyRecord::from_row).collect()
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
    ) -> Result<bool, StoreError> {
        let _gate = self.write_gate().await;
        let mut tx = self.pool.begin().await?;
        let activated = sqlx::query(
            "UPDATE signing_keys SET status = 'active', activated_at = $1, retired_at = NULL \
             WHERE tenant_id = $2 AND kid = $3 AND status = 'upcoming' AND created_at <= $4",
        )
        .bind(now)
        .bind(tenant)
        .bind(kid)
        .bind(published_before)
        .execute(&mut *tx)
        .await?;
        if activated.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE signing_keys SET status = 'retiring', retired_at = $1 \
             WHERE tenant_id = $2 AND kid <> $3 AND status = 'active' \
               AND alg = (SELECT alg FROM signing_keys WHERE tenant_id = $2 AND kid = $3)",
        )
        .bind(retire_at)
        .bind(tenant)
        .bind(kid)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Starts retiring a key: it stops signing now and leaves JWKS at `retire_at`. An active key
    /// retires only while another active key of its alg remains, so signing never stops.
    pub async fn retire_key(
        &self,
        tenant: &str,
        kid: &str,
        retire_at: UnixTime,
    ) -> Result<bool, StoreError> {
        let _gate = self.write_gate().await;
        let done = sqlx::query(
            "UPDATE signing_keys SET status = 'retiring', retired_at = $1 \
             WHERE tenant_id = $2 AND kid = $3 AND (status = 'upcoming' OR (status = 'active' AND EXISTS ( \
               SELECT 1 FROM signing_keys other WHERE other.tenant_id = $2 AND other.kid <> $3 \
                 AND other.status = 'active' AND other.alg = signing_keys.alg)))",
        )
        .bind(retire_at)
        .bind(tenant)
        .bind(kid)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    // ---- interactions --------------------------------------------------------------------

    /// Stores a pending authorization.
    pub async fn insert_interaction(&self, i: &InteractionRecord) -> Result<(), StoreError> {
        let _gate = self.write_gate().await;
        sqlx::query(
            "INSERT INTO interactions (id_digest, tenant_id, client_id, request, browser_digest, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&i.id_digest)
        .bind(&i.tenant_id)
        .bind(&i.client_id)
        .bind(&i.request)
        .bind(&i.browser_digest)
        .bind(i.created_at)
        .bind(i.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A pending (not completed, not expired) interaction.
    pub async fn pending_interaction(
        &self,
        id_digest: &str,
        now: UnixTime,
    ) -> Result<Option<InteractionRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id_digest, tenant_id, client_id, request, browser_digest, subject, login_requested_at, created_at, expires_at \
             FROM interactions WHERE id_digest = $1 AND completed_at IS NULL AND expires_at > $2",
        )
        .bind(id_digest)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| InteractionRecord::from_row(&r)).transpose()
    }

    /// Records that the browser was sent to the host's login page.
    pub async fn mark_login_requested(
        &self,
        id_digest: &str,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let _gate = self.write_gate().await;
        sqlx::query("UPDATE interactions SET login_requested_at = $1 WHERE id_digest = $2")
            .bind(now)
            .bind(id_digest)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records the subject the host reported for an interaction.
    pub async fn set_interaction_subject(
        &self,
        id_digest: &str,
        subject: &str,
    ) -> Result<(), StoreError> {
        let _gate = self.write_gate().await;
        sqlx::query(
            "UPDATE interactions SET subject = $1 WHERE id_digest = $2 AND completed_at IS NULL",
        )
        .bind(subject)
        .bind(id_digest)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The standing consent of `subject` for `client_id`.
    pub async fn consent(
        &self,
        tenant: &str,
        subject: &str,
        client_id: &str,
    ) -> Result<Option<ConsentRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT scopes, resources FROM consents WHERE tenant_id = $1 AND subject = $2 AND client_id = $3",
        )
        .bind(tenant)
        .bind(subject)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| ConsentRecord::from_row(&r)).transpose()
    }

    // ---- tokens (reads) ------------------------------------------------------------------

    /// A usable token: unexpired, unrevoked, unconsumed, its grant unrevoked and its client
    /// active. One indexed read.
    pub async fn active_token(
        &self,
        digest: &str,
        now: UnixTime,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens t \
             JOIN clients c ON c.tenant_id = t.tenant_id AND c.client_id = t.client_id \
             LEFT JOIN grants g ON g.id = t.grant_id \
             WHERE t.digest = $1 AND t.expires_at > $2 AND t.revoked_at IS NULL AND t.consumed_at IS NULL \
               AND t.kind <> 'code' AND c.status = 'active' \
               AND (t.grant_id IS NULL OR (g.revoked_at IS NULL AND g.expires_at > $2))"
        ))
        .bind(digest)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| TokenRecord::from_row(&r)).transpose()
    }

    /// A token of any state, for revocation (RFC 7009 accepts expired and used tokens).
    pub async fn any_token(&self, digest: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens t WHERE t.digest = $1 AND t.kind <> 'code'"
        ))
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| TokenRecord::from_row(&r)).transpose()
    }

    /// A token of any kind and state, read without locking: lets a step fetch what it needs from
    /// the host before its transaction starts. Decisions are still made by the conditional
    /// write inside the transaction.
    pub async fn peek_token(&self, digest: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens t WHERE t.digest = $1"
        ))
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| TokenRecord::from_row(&r)).transpose()
    }

    /// The grant a token came from.
    pub async fn grant(&self, id: &str) -> Result<Option<GrantRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, tenant_id, client_id, subject, scopes, resources, details, auth_time, created_at, expires_at \
             FROM grants WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| GrantRecord::from_row(&r)).transpose()
    }

    /// Inserts a token outside a transaction (client credentials: one write per token). The
    /// write joins a group commit: concurrent inserts share one transaction, and each caller
    /// returns only once its row is durably committed.
    pub async fn insert_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
        self.writer.insert(t.clone()).await
    }

    /// Revokes one access token (RFC 7009 §2.1: revoking an access token revokes only it).
    pub async fn revoke_token(&self, digest: &str, now: UnixTime) -> Result<(), StoreError> {
        let _gate = self.write_gate().await;
        sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE digest = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(digest)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Revokes a grant and with it every code and token issued from it.
    pub async fn revoke_grant(&self, grant_id: &str, now: UnixTime) -> Result<(), StoreError> {
        let _gate = self.write_gate().await;
        let mut conn = self.pool.acquire().await?;
        revoke_grant(&mut conn, grant_id, now).await
    }

    /// The clients `subject` has standing consent for, with what was consented.
    pub async fn consents_of(
        &self,
        tenant: &str,
        subject: &str,
    ) -> Result<Vec<(String, ConsentRecord, UnixTime)>, StoreError> {
        let rows = sqlx::query(
            "SELECT client_id, scopes, resources, updated_at FROM consents \
             WHERE tenant_id = $1 AND subject = $2 ORDER BY updated_at DESC, client_id",
        )
        .bind(tenant)
        .bind(subject)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    get(r, "client_id")?,
                    ConsentRecord::from_row(r)?,
                    get(r, "updated_at")?,
                ))
            })
            .collect()
    }

    /// Withdraws `subject`'s consent for `client_id` and revokes every grant between them (and
    /// so every token issued from those grants). Returns false when there was nothing to revoke.
    pub async fn revoke_authorization(
        &self,
        tenant: &str,
        subject: &str,
        client_id: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let _gate = self.write_gate().await;
        let mut tx = self.pool.begin().await?;
        let grants = sqlx::query(
            "UPDATE grants SET revoked_at = $1 WHERE tenant_id = $2 AND subject = $3 AND client_id = $4 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(tenant)
        .bind(subject)
        .bind(client_id)
        .execute(&mut *tx)
        .await?;
        let consents = sqlx::query(
            "DELETE FROM consents WHERE tenant_id = $1 AND subject = $2 AND client_id = $3",
        )
        .bind(tenant)
        .bind(subject)
        .bind(client_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(grants.rows_affected() + consents.rows_affected() > 0)
    }

    /// Deletes rows nothing can use any more (SURFACE S26): expired codes and tokens (a revoked
    /// token stays until it expires, so its revocation is remembered), expired interactions and
    /// expired grants. Returns the number of rows removed.
    pub async fn prune_expired(&self, now: UnixTime) -> Result<u64, StoreError> {
        let _gate = self.write_gate().await;
        let mut removed = 0;
        for statement in [
            "DELETE FROM tokens WHERE expires_at <= $1",
            "DELETE FROM interactions WHERE expires_at <= $1",
            "DELETE FROM grants WHERE expires_at <= $1",
            "DELETE FROM replay WHERE expires_at <= $1",
        ] {
            removed += sqlx::query(statement)
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(removed)
    }
}

async fn revoke_grant(
    conn: &mut AnyConnection,
    grant_id: &str,
    now: UnixTime,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(grant_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The result of trying to use a single-use token.
#[derive(Debug)]
pub enum Consumed {
    /// This call consumed it; no other call can.
    Now(Box<TokenRecord>),
    /// It had already been consumed: a replay. Its grant has been revoked in this transaction.
    Replayed,
    /// Unknown, expired or revoked.
    Invalid,
}

impl Tx {
    /// Commits the step.
    pub async fn commit(self) -> Result<(), StoreError> {
        Ok(self.tx.commit().await?)
    }

    /// Atomically marks the interaction completed; false when it already was (a double submit)
    /// or has expired.
    pub async fn complete_interaction(
        &mut self,
        id_digest: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE interactions SET completed_at = $1 WHERE id_digest = $2 AND completed_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(id_digest)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Inserts a grant.
    pub async fn insert_grant(&mut self, g: &GrantRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO grants (id, tenant_id, client_id, subject, scopes, resources, details, auth_time, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&g.id)
        .bind(&g.tenant_id)
        .bind(&g.client_id)
        .bind(&g.subject)
        .bind(&g.scopes)
        .bind(&g.resources)
        .bind(&g.details)
        .bind(g.auth_time)
        .bind(g.created_at)
        .bind(g.expires_at)
        .execute(&mut *self.tx)
        .await?;
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
        sqlx::query(
            "INSERT INTO consents (tenant_id, subject, client_id, scopes, resources, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (tenant_id, subject, client_id) DO UPDATE SET scopes = $4, resources = $5, updated_at = $6",
        )
        .bind(tenant)
        .bind(subject)
        .bind(client_id)
        .bind(consent.scopes_text())
        .bind(consent.resources_json())
        .bind(now)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Inserts a code or token.
    pub async fn insert_token(&mut self, t: &TokenRecord) -> Result<(), StoreError> {
        insert_token(&mut self.tx, t).await
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
        let row = sqlx::query(
            "UPDATE tokens SET consumed_at = $1 \
             WHERE digest = $2 AND kind = $3 AND consumed_at IS NULL AND revoked_at IS NULL AND expires_at > $1 \
             RETURNING digest, tenant_id, kind, grant_id, client_id, subject, scopes, resources, created_at, expires_at, \
             consumed_at, revoked_at, redirect_uri, code_challenge, nonce, format, jti, cnf_x5t",
        )
        .bind(now)
        .bind(digest)
        .bind(kind.as_str())
        .fetch_optional(&mut *self.tx)
        .await?;
        if let Some(row) = row {
            return Ok(Consumed::Now(Box::new(TokenRecord::from_row(&row)?)));
        }
        let replayed = sqlx::query(
            "UPDATE grants SET revoked_at = $1 WHERE revoked_at IS NULL AND id = \
             (SELECT grant_id FROM tokens WHERE digest = $2 AND kind = $3 AND consumed_at IS NOT NULL)",
        )
        .bind(now)
        .bind(digest)
        .bind(kind.as_str())
        .execute(&mut *self.tx)
        .await?;
        if replayed.rows_affected() > 0 {
            return Ok(Consumed::Replayed);
        }
        let seen = sqlx::query(
            "SELECT 1 FROM tokens WHERE digest = $1 AND kind = $2 AND consumed_at IS NOT NULL",
        )
        .bind(digest)
        .bind(kind.as_str())
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(if seen.is_some() {
            Consumed::Replayed
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
        let row = sqlx::query(
            "SELECT g.id, g.tenant_id, g.client_id, g.subject, g.scopes, g.resources, g.details, g.auth_time, g.created_at, g.expires_at \
             FROM grants g JOIN clients c ON c.tenant_id = g.tenant_id AND c.client_id = g.client_id \
             WHERE g.id = $1 AND g.revoked_at IS NULL AND g.expires_at > $2 AND c.status = 'active'",
        )
        .bind(id)
        .bind(now)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.map(|r| GrantRecord::from_row(&r)).transpose()
    }
}

pub(crate) fn get<'r, T>(row: &'r sqlx::any::AnyRow, col: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(col)
        .map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}
