//! Which database, and its connections: the one place that dispatches between SQLite (its C
//! API on the calling thread, [`super::sqlite`]) and PostgreSQL (sqlx's typed driver,
//! [`super::pg_pool`]). Everything above writes each statement once.

#[cfg(feature = "sqlite")]
use std::sync::Arc;

#[cfg(feature = "postgres")]
use super::db::{MIGRATOR, pg_query};
use super::db::{Param, Row};
use super::error::StoreError;
#[cfg(feature = "postgres")]
use super::pg_pool::{PgConn, PgPool};
#[cfg(feature = "sqlite")]
use super::sqlite;
use crate::config::DatabasePool;

/// Which database the store talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite, embedded (WAL mode).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A database handle: which driver, and its connections.
#[derive(Clone, Debug)]
pub(crate) enum Db {
    #[cfg(feature = "sqlite")]
    Sqlite(Arc<sqlite::SqliteDb>),
    #[cfg(feature = "postgres")]
    Postgres(PgPool),
}

impl Db {
    /// Which database this is.
    pub(super) fn dialect(&self) -> Dialect {
        match self {
            #[cfg(feature = "sqlite")]
            Db::Sqlite(_) => Dialect::Sqlite,
            #[cfg(feature = "postgres")]
            Db::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Closes the connections (PostgreSQL; SQLite's close when the store is dropped).
    pub(super) async fn close(&self) {
        match self {
            #[cfg(feature = "sqlite")]
            Db::Sqlite(_) => {}
            #[cfg(feature = "postgres")]
            Db::Postgres(pool) => pool.close().await,
        }
    }

    /// Opens the database `url` names. The pool settings are PostgreSQL's; SQLite has none.
    #[cfg_attr(not(feature = "postgres"), allow(unused_variables))]
    pub(super) async fn open(url: &str, pool: &DatabasePool) -> Result<Self, StoreError> {
        #[cfg(feature = "sqlite")]
        if url.starts_with("sqlite:") {
            // Opening may wait for another connection's write lock (see `switch_to_wal`): off
            // the runtime's threads.
            let url = url.to_owned();
            let opened =
                tokio::task::spawn_blocking(move || sqlite::SqliteDb::open(&url, sqlite_readers()))
                    .await
                    .map_err(|_| StoreError::Unavailable("opening the SQLite file failed"))??;
            return Ok(Db::Sqlite(Arc::new(opened)));
        }
        #[cfg(feature = "postgres")]
        if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            return Ok(Db::Postgres(PgPool::connect(url, pool).await?));
        }
        // Also a URL of a database this build was compiled without.
        Err(StoreError::UnsupportedUrl)
    }

    /// Starts a write transaction.
    pub(super) async fn begin(&self) -> Result<Tx, StoreError> {
        let inner = match self {
            #[cfg(feature = "sqlite")]
            Db::Sqlite(db) => TxInner::Sqlite(db.begin().await?),
            #[cfg(feature = "postgres")]
            Db::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                conn.begin().await?;
                TxInner::Postgres(conn)
            }
        };
        Ok(Tx { inner })
    }

    /// Applies every embedded migration not yet applied.
    pub(super) async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            #[cfg(feature = "sqlite")]
            Db::Sqlite(db) => db.migrate().await,
            #[cfg(feature = "postgres")]
            Db::Postgres(pool) => pool.acquire().await?.migrate(&MIGRATOR).await,
        }
    }

    /// One write statement outside a transaction; returns the rows changed.
    pub(super) async fn execute(
        &self,
        sql: &'static str,
        params: Vec<Param>,
    ) -> Result<u64, StoreError> {
        match self {
            #[cfg(feature = "sqlite")]
            Db::Sqlite(db) => db.execute(sql, params).await,
            #[cfg(feature = "postgres")]
            Db::Postgres(pool) => pool.acquire().await?.execute(pg_query(sql, params)).await,
        }
    }

    /// A read, decoded with `f`.
    pub(super) async fn fetch_all<T>(
        &self,
        sql: &'static str,
        params: Vec<Param>,
        f: impl Fn(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        match self {
            #[cfg(feature = "sqlite")]
            Db::Sqlite(db) => db.read(sql, &params, f).await,
            #[cfg(feature = "postgres")]
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
    pub(super) async fn fetch_optional<T>(
        &self,
        sql: &'static str,
        params: Vec<Param>,
        f: impl Fn(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        Ok(self.fetch_all(sql, params, f).await?.into_iter().next())
    }
}

/// A transaction spanning one protocol step; dropped without commit, it rolls back.
pub struct Tx {
    inner: TxInner,
}

enum TxInner {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlite::SqliteTx),
    #[cfg(feature = "postgres")]
    Postgres(PgConn),
}

impl Tx {
    /// A write statement in the transaction; returns the rows changed.
    pub(super) async fn execute(
        &mut self,
        sql: &'static str,
        params: Vec<Param>,
    ) -> Result<u64, StoreError> {
        match &mut self.inner {
            #[cfg(feature = "sqlite")]
            TxInner::Sqlite(tx) => tx.execute(sql, &params),
            #[cfg(feature = "postgres")]
            TxInner::Postgres(conn) => conn.execute(pg_query(sql, params)).await,
        }
    }

    /// A query in the transaction, every row decoded with `f`.
    pub(super) async fn fetch_all<T>(
        &mut self,
        sql: &'static str,
        params: Vec<Param>,
        f: impl Fn(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        match &mut self.inner {
            #[cfg(feature = "sqlite")]
            TxInner::Sqlite(tx) => tx.query(sql, &params, f),
            #[cfg(feature = "postgres")]
            TxInner::Postgres(conn) => conn
                .fetch_all(pg_query(sql, params))
                .await?
                .iter()
                .map(|r| f(&Row::Postgres(r)))
                .collect(),
        }
    }

    /// A query in the transaction returning at most one row.
    pub(super) async fn fetch_optional<T>(
        &mut self,
        sql: &'static str,
        params: Vec<Param>,
        f: impl Fn(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        match &mut self.inner {
            #[cfg(feature = "sqlite")]
            TxInner::Sqlite(tx) => Ok(tx.query(sql, &params, f)?.into_iter().next()),
            #[cfg(feature = "postgres")]
            TxInner::Postgres(conn) => conn
                .fetch_all(pg_query(sql, params))
                .await?
                .first()
                .map(|r| f(&Row::Postgres(r)))
                .transpose(),
        }
    }
}

impl Tx {
    /// Commits the step.
    pub async fn commit(self) -> Result<(), StoreError> {
        match self.inner {
            #[cfg(feature = "sqlite")]
            TxInner::Sqlite(tx) => tx.commit().await,
            #[cfg(feature = "postgres")]
            TxInner::Postgres(mut conn) => conn.commit().await,
        }
    }
}

/// SQLite reader connections: enough for the runtime's worker threads to read at once.
#[cfg(feature = "sqlite")]
fn sqlite_readers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8))
}
