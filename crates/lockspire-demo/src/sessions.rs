//! A tower-sessions [`SessionStore`] on the demo's SQL pool (`demo_sessions`), so several demo
//! processes behind one PostgreSQL share browser sessions, and a restart does not sign anyone
//! out.

use std::time::Duration;

use async_trait::async_trait;
use axum_login::tower_sessions::session::{Id, Record};
use axum_login::tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use sqlx::{AnyPool, Row};
use time::OffsetDateTime;

/// TEXT and BIGINT only, so the same statement runs on SQLite and PostgreSQL. `expiry_date` is
/// seconds since the epoch.
const CREATE_SESSIONS: &str = "CREATE TABLE IF NOT EXISTS demo_sessions (
    id TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    expiry_date BIGINT NOT NULL
)";

/// Makes the expiry sweep an index range scan.
const CREATE_EXPIRY_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS demo_sessions_expiry ON demo_sessions (expiry_date)";

/// Sessions in the `demo_sessions` table.
#[derive(Clone, Debug)]
pub struct SqlSessionStore {
    pool: AnyPool,
}

/// A database failure in the store's error type.
fn backend(e: sqlx::Error) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

/// The session data as JSON text.
fn encode(record: &Record) -> session_store::Result<String> {
    serde_json::to_string(&record.data).map_err(|e| session_store::Error::Encode(e.to_string()))
}

impl SqlSessionStore {
    /// Creates the table if needed.
    pub async fn new(pool: AnyPool) -> Result<Self, sqlx::Error> {
        sqlx::query(CREATE_SESSIONS).execute(&pool).await?;
        sqlx::query(CREATE_EXPIRY_INDEX).execute(&pool).await?;
        Ok(Self { pool })
    }

    /// Deletes expired sessions every `period`, for as long as the runtime lives. Expired rows
    /// are never loaded anyway; this only keeps the table from growing.
    pub fn spawn_sweeper(&self, period: Duration) {
        let store = self.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(period);
            loop {
                interval.tick().await;
                if let Err(e) = store.delete_expired().await {
                    tracing::warn!(error = %e, "could not delete expired sessions");
                }
            }
        });
    }
}

#[async_trait]
impl SessionStore for SqlSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        // A colliding 128-bit id is all but impossible, but a store must never hand one
        // browser another's session: retry with a fresh id instead of overwriting.
        loop {
            let inserted = sqlx::query(
                "INSERT INTO demo_sessions (id, data, expiry_date) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(record.id.to_string())
            .bind(encode(record)?)
            .bind(record.expiry_date.unix_timestamp())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
            if inserted.rows_affected() == 1 {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        sqlx::query(
            "INSERT INTO demo_sessions (id, data, expiry_date) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET data = excluded.data, expiry_date = excluded.expiry_date",
        )
        .bind(record.id.to_string())
        .bind(encode(record)?)
        .bind(record.expiry_date.unix_timestamp())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let row = sqlx::query(
            "SELECT data, expiry_date FROM demo_sessions WHERE id = $1 AND expiry_date > $2",
        )
        .bind(id.to_string())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let data: String = row.try_get("data").map_err(backend)?;
        let expiry: i64 = row.try_get("expiry_date").map_err(backend)?;
        Ok(Some(Record {
            id: *id,
            data: serde_json::from_str(&data)
                .map_err(|e| session_store::Error::Decode(e.to_string()))?,
            expiry_date: OffsetDateTime::from_unix_timestamp(expiry)
                .map_err(|e| session_store::Error::Decode(e.to_string()))?,
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        sqlx::query("DELETE FROM demo_sessions WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for SqlSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        sqlx::query("DELETE FROM demo_sessions WHERE expiry_date <= $1")
            .bind(OffsetDateTime::now_utc().unix_timestamp())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
}
