//! A Lockspire database opened for deployment tooling: which migrations are pending, applying
//! them, and handing the opened connections to a [`Builder`](crate::Builder). The tables and
//! their operations stay private: hosts reach what they hold through [`Lockspire`](crate::Lockspire)
//! and [`Operator`](crate::Operator), so the schema can change between releases without
//! breaking them.

use crate::config::DatabasePool;
use crate::store::{Dialect, Store, StoreError};

/// A Lockspire database, opened without migrating it.
#[derive(Clone, Debug)]
pub struct Database {
    pub(crate) store: Store,
}

/// Which database engine a [`Database`] runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatabaseKind {
    /// SQLite: one process, a file (or memory).
    Sqlite,
    /// PostgreSQL: any number of processes.
    Postgres,
}

/// A migration embedded in this build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Migration {
    /// Its version (applied in increasing order).
    pub version: i64,
    /// What it does.
    pub description: String,
}

impl Database {
    /// Opens the database at `url` (`sqlite://path`, `sqlite::memory:` or `postgres://…`),
    /// creating a SQLite file if needed, without migrating it.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, &DatabasePool::default()).await
    }

    /// [`Database::open`] with these connection settings (PostgreSQL).
    pub async fn open_with(url: &str, pool: &DatabasePool) -> Result<Self, StoreError> {
        Ok(Self {
            store: Store::open_with(url, pool).await?,
        })
    }

    /// The engine.
    pub fn kind(&self) -> DatabaseKind {
        match self.store.dialect() {
            Dialect::Sqlite => DatabaseKind::Sqlite,
            Dialect::Postgres => DatabaseKind::Postgres,
        }
    }

    /// The migrations of this build not yet applied, oldest first. Reads only.
    pub async fn pending_migrations(&self) -> Result<Vec<Migration>, StoreError> {
        Ok(self
            .store
            .pending_migrations()
            .await?
            .into_iter()
            .map(|(version, description)| Migration {
                version,
                description,
            })
            .collect())
    }

    /// Applies every pending migration. A database already migrated by a newer release is
    /// refused: running against a schema this build does not know could misread rows.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.store.migrate().await
    }

    /// Closes the connections.
    pub async fn close(self) {
        self.store.close().await;
    }
}
