//! One-time values (client assertion `jti`s, RFC 7523 §3): recorded once until they expire, by
//! one conditional write that is correct across processes.

use super::db::params;
use super::error::StoreError;
use super::handle::Store;
use crate::clock::UnixTime;

impl Store {
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
}
