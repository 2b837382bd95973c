//! Attempts counted per key in fixed windows, for limits on guessing (RFC 8628 §5.1: user code
//! entry). The count is kept in the database, so every process sharing it enforces one limit.

use super::db::{get, params};
use super::error::StoreError;
use super::handle::Store;
use crate::clock::UnixTime;

impl Store {
    /// Counts one attempt under `key_digest` (a keyed digest of who makes it) in the window of
    /// `window` seconds that holds `now`, and returns the attempts in that window, this one
    /// included, with the window's start (for [`Store::refund_attempt`]). One conditional
    /// write: concurrent attempts each get their own count, so a burst cannot pass a limit
    /// together.
    pub async fn count_attempt(
        &self,
        key_digest: &str,
        window: i64,
        now: UnixTime,
    ) -> Result<(i64, UnixTime), StoreError> {
        // A write that returns a row: SQLite's readers cannot run it, its writer can.
        let mut tx = self.begin().await?;
        let count = tx
            .fetch_optional(
                "INSERT INTO attempts (key_digest, window_start, count, expires_at) VALUES ($1, $2, 1, $3) \
                 ON CONFLICT (key_digest) DO UPDATE SET \
                 count = CASE WHEN attempts.expires_at <= $2 THEN 1 ELSE attempts.count + 1 END, \
                 window_start = CASE WHEN attempts.expires_at <= $2 THEN $2 ELSE attempts.window_start END, \
                 expires_at = CASE WHEN attempts.expires_at <= $2 THEN $3 ELSE attempts.expires_at END \
                 RETURNING count, window_start",
                params![key_digest, now, now + window],
                |r| Ok((get::<i64>(r, "count")?, get::<i64>(r, "window_start")?)),
            )
            .await?;
        tx.commit().await?;
        count.ok_or_else(|| StoreError::Corrupt("an attempt count returned no row".into()))
    }

    /// Takes back one attempt counted under `key_digest` in the window that started at
    /// `window_start`: it turned out to be no guess. An attempt of a window that has ended is
    /// not taken back from the next one.
    pub async fn refund_attempt(
        &self,
        key_digest: &str,
        window_start: UnixTime,
    ) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE attempts SET count = count - 1 \
                 WHERE key_digest = $1 AND window_start = $2 AND count > 0",
                params![key_digest, window_start],
            )
            .await?;
        Ok(())
    }
}
