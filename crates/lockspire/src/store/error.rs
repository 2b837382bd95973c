//! The store's error type. Callers above map it to `server_error` or `temporarily_unavailable`.
//! A driver's own error stays inside: what leaves the store is its text and the one fact
//! callers act on (retry later, a key already taken, a statement refused).

use std::fmt;

/// A storage failure. Callers map it to `server_error` or `temporarily_unavailable`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database reported an error or could not be reached.
    #[error("database error: {0}")]
    Database(DatabaseError),
    /// The store cannot take work right now (its writer is gone or shutting down).
    #[error("database unavailable: {0}")]
    Unavailable(&'static str),
    /// Migrations could not be applied: one is half-applied, edited, or newer than this build.
    #[error("migration error: {0}")]
    Migrate(String),
    /// A stored value could not be decoded (a bug or a manual edit).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The URL names a database Lockspire does not support (or was built without).
    #[error("unsupported database URL (use sqlite:// or postgres://)")]
    UnsupportedUrl,
    /// The URL names a supported database but cannot be used as written.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// A SQLite migration failed; nothing of it was applied (each runs in a transaction).
    #[error("migration {0} failed: {1}")]
    Migration(i64, DatabaseError),
}

/// An error the database driver reported, as text.
#[derive(Debug)]
pub struct DatabaseError {
    message: String,
    kind: Kind,
}

/// What callers act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Unreachable, overloaded, or the session ended: retry later.
    Unavailable,
    /// An insert collided with an existing primary or unique key.
    UniqueViolation,
    /// The database refused the statement and the session goes on.
    Refused,
    /// Anything else.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Other,
}

impl fmt::Display for DatabaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StoreError {
    /// True when the database is unreachable or overloaded rather than refusing the statement:
    /// the client should retry (RFC 6749 `temporarily_unavailable`).
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(e) => e.kind == Kind::Unavailable,
            StoreError::Unavailable(_) => true,
            _ => false,
        }
    }

    /// True when an insert collided with an existing primary or unique key.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(e) if e.kind == Kind::UniqueViolation)
    }

    /// True when the database refused a statement (a missing table, a constraint) and the
    /// connection goes on.
    pub(crate) fn is_refused(&self) -> bool {
        matches!(self, StoreError::Database(e) if matches!(e.kind, Kind::Refused | Kind::UniqueViolation))
    }

    #[cfg(feature = "postgres")]
    pub(crate) fn migrate(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(e.to_string())
    }
}

#[cfg(feature = "postgres")]
#[doc(hidden)]
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let kind = match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::Io(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Kind::Unavailable,
            sqlx::Error::Database(db) if db.is_unique_violation() => Kind::UniqueViolation,
            // A PostgreSQL error that ends the session (FATAL): a shutdown or restart
            // (57P01-03), too many connections (53300), a session timeout.
            sqlx::Error::Database(_) if refused_in_session(&e) => Kind::Refused,
            sqlx::Error::Database(_) => Kind::Unavailable,
            _ => Kind::Other,
        };
        StoreError::Database(DatabaseError {
            message: e.to_string(),
            kind,
        })
    }
}

#[cfg(feature = "sqlite")]
impl DatabaseError {
    pub(crate) fn sqlite(e: rusqlite::Error) -> Self {
        let kind = match &e {
            // Another process held SQLite's write lock past the busy timeout.
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                Kind::Unavailable
            }
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation
                    && matches!(
                        f.extended_code,
                        rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                            | rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    ) =>
            {
                Kind::UniqueViolation
            }
            _ => Kind::Refused,
        };
        DatabaseError {
            message: e.to_string(),
            kind,
        }
    }
}

#[cfg(feature = "sqlite")]
#[doc(hidden)]
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(DatabaseError::sqlite(e))
    }
}

/// True when the server refused a statement and the session goes on: an `ERROR`, after which
/// the connection is in step. `FATAL` and `PANIC` end the session (a restart or an operator
/// terminating it), so that connection is gone.
#[cfg(feature = "postgres")]
pub(crate) fn refused_in_session(e: &sqlx::Error) -> bool {
    use sqlx::postgres::{PgDatabaseError, PgSeverity};
    match e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<PgDatabaseError>()
            .is_none_or(|pg| !matches!(pg.severity(), PgSeverity::Fatal | PgSeverity::Panic)),
        _ => false,
    }
}
