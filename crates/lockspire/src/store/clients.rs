//! Clients (RFC 7591 §3.2.1, RFC 7592): registration, metadata changes, status and deletion,
//! each written with its audit event and, on PostgreSQL, announced to every other process so
//! that their client caches forget the old row.

use super::audit::AuditEvent;
use super::changes;
use super::client_cache::{ClientRecord, ClientStatus};
use super::db::{get, params};
use super::error::StoreError;
use super::handle::Store;
use crate::clock::UnixTime;

fn client_change(tenant: &str, client_id: &str) -> changes::Change {
    changes::Change::Client {
        tenant: tenant.to_owned(),
        client_id: client_id.to_owned(),
    }
}

impl Store {
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
}
