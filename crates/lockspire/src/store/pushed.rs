//! Pushed authorization requests (RFC 9126 §2, §4): stored under the digest of their
//! `request_uri`, used once, by the client that pushed them, before they expire.

use super::db::{get, params};
use super::error::StoreError;
use super::handle::Store;
use crate::clock::UnixTime;
use crate::model::client::ClientId;

/// A pushed authorization request.
#[derive(Clone, Debug)]
pub struct PushedRecord {
    /// Digest of the `request_uri`'s random part.
    pub digest: String,
    /// Tenant.
    pub tenant_id: String,
    /// The client that pushed it, the only one that may use it.
    pub client_id: ClientId,
    /// The authorization parameters, as a JSON list of `[name, value]` pairs.
    pub params: String,
    /// When it was pushed.
    pub created_at: UnixTime,
    /// When it stops being usable.
    pub expires_at: UnixTime,
}

impl Store {
    /// Stores a pushed request.
    pub async fn insert_pushed(&self, r: &PushedRecord) -> Result<(), StoreError> {
        self.db
            .execute(
                "INSERT INTO pushed_requests (digest, tenant_id, client_id, params, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                params![r.digest, r.tenant_id, r.client_id, r.params, r.created_at, r.expires_at],
            )
            .await?;
        Ok(())
    }

    /// Uses a pushed request: one conditional write that succeeds once, for `client_id`, before
    /// expiry, whichever process serves the browser. Returns its parameters (JSON).
    pub async fn consume_pushed(
        &self,
        tenant: &str,
        digest: &str,
        client_id: &str,
        now: UnixTime,
    ) -> Result<Option<String>, StoreError> {
        // A write that returns a row: SQLite's readers cannot run it, its writer can.
        let mut tx = self.begin().await?;
        let params = tx
            .fetch_optional(
                "UPDATE pushed_requests SET consumed_at = $1 \
                 WHERE digest = $2 AND tenant_id = $3 AND client_id = $4 \
                   AND consumed_at IS NULL AND expires_at > $1 \
                 RETURNING params",
                params![now, digest, tenant, client_id],
                |r| get::<String>(r, "params"),
            )
            .await?;
        tx.commit().await?;
        Ok(params)
    }
}
