//! The store's error type. Callers above map it to `server_error` or `temporarily_unavailable`;
//! the drivers' own errors stay inside.

use sqlx::postgres::{PgDatabaseError, PgSeverity};

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
            StoreError::Database(e @ sqlx::Error::Database(_)) => !refused_in_session(e),
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

/// True when the server refused a statement and the session goes on: an `ERROR`, after which
/// the connection is in step. `FATAL` and `PANIC` end the session (a restart or an operator
/// terminating it), so that connection is gone.
pub(crate) fn refused_in_session(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<PgDatabaseError>()
            .is_none_or(|pg| !matches!(pg.severity(), PgSeverity::Fatal | PgSeverity::Panic)),
        _ => false,
    }
}
