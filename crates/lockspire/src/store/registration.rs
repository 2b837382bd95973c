//! Initial access tokens for dynamic client registration (RFC 7591 §3): stored as digests,
//! minted and revoked by operators, used up by registrations.

use super::audit::AuditEvent;
use super::db::{Row, get, params};
use super::error::StoreError;
use super::handle::Store;
use crate::clock::UnixTime;

/// An initial access token for dynamic registration, as operators see it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct InitialAccessTokenRecord {
    /// Identifier operators revoke it by.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Registrations left; `None` for any number.
    pub uses_left: Option<i64>,
    /// Creation time.
    pub created_at: UnixTime,
    /// Expiry; `None` for none.
    pub expires_at: Option<UnixTime>,
    /// Revocation time.
    pub revoked_at: Option<UnixTime>,
}

impl InitialAccessTokenRecord {
    pub(crate) fn from_row(r: &Row<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            id: get(r, "id")?,
            tenant_id: get(r, "tenant_id")?,
            uses_left: get(r, "uses_left")?,
            created_at: get(r, "created_at")?,
            expires_at: get(r, "expires_at")?,
            revoked_at: get(r, "revoked_at")?,
        })
    }
}

impl Store {
    /// Stores a minted initial access token (its digest only).
    pub async fn insert_initial_access_token(
        &self,
        t: &InitialAccessTokenRecord,
        digest: &str,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.change_audited("INSERT INTO initial_access_tokens (id, digest, tenant_id, uses_left, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)", params![t.id, digest, t.tenant_id, t.uses_left, t.created_at, t.expires_at], event, None).await?;
        Ok(())
    }
    /// Revokes an initial access token by id. False when no live token has that id.
    pub async fn revoke_initial_access_token(
        &self,
        tenant: &str,
        id: &str,
        now: UnixTime,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let done = self.change_audited("UPDATE initial_access_tokens SET revoked_at = $1 WHERE id = $2 AND tenant_id = $3 AND revoked_at IS NULL", params![now, id, tenant], event, None).await?;
        Ok(done == 1)
    }
    /// Every initial access token of a tenant (never the tokens themselves).
    pub async fn initial_access_tokens(
        &self,
        tenant: &str,
    ) -> Result<Vec<InitialAccessTokenRecord>, StoreError> {
        self.db.fetch_all("SELECT id, tenant_id, uses_left, created_at, expires_at, revoked_at FROM initial_access_tokens \
             WHERE tenant_id = $1 ORDER BY created_at, id", params![tenant], InitialAccessTokenRecord::from_row).await
    }
}
