//! The server's signing keys (RFC 7517), private halves sealed; their lifecycle rules live in
//! the protocol's `signing_keys`. Every change is announced to the other processes.

use super::audit::AuditEvent;
use super::changes;
use super::db::{Row, get, params};
use super::error::StoreError;
use super::handle::Store;
use crate::clock::UnixTime;

/// A stored signing key; the private half is sealed.
#[derive(Clone, Debug)]
pub struct KeyRecord {
    /// Tenant.
    pub tenant_id: String,
    /// Key id (RFC 7638 thumbprint).
    pub kid: String,
    /// JWS alg.
    pub alg: String,
    /// Lifecycle status.
    pub status: String,
    /// Public JWK (JSON).
    pub public_jwk: String,
    /// AES-256-GCM sealed PKCS#8 private key.
    pub sealed_private: String,
    /// Creation time.
    pub created_at: UnixTime,
    /// When it became active.
    pub activated_at: Option<UnixTime>,
    /// When it leaves JWKS (retiring keys).
    pub retired_at: Option<UnixTime>,
}

impl KeyRecord {
    pub(crate) fn from_row(r: &Row<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            tenant_id: get(r, "tenant_id")?,
            kid: get(r, "kid")?,
            alg: get(r, "alg")?,
            status: get(r, "status")?,
            public_jwk: get(r, "public_jwk")?,
            sealed_private: get(r, "sealed_private")?,
            created_at: get(r, "created_at")?,
            activated_at: get(r, "activated_at")?,
            retired_at: get(r, "retired_at")?,
        })
    }
}

/// The columns of a key row.
macro_rules! key_columns {
    () => {
        "tenant_id, kid, alg, status, public_jwk, sealed_private, created_at, activated_at, retired_at"
    };
}

fn keys_change(tenant: &str) -> changes::Change {
    changes::Change::Keys {
        tenant: tenant.to_owned(),
    }
}

impl Store {
    /// Stores a key.
    pub async fn insert_key(&self, k: &KeyRecord, event: &AuditEvent) -> Result<(), StoreError> {
        self.change_audited("INSERT INTO signing_keys (tenant_id, kid, alg, status, public_jwk, sealed_private, created_at, activated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", params![k.tenant_id, k.kid, k.alg, k.status, k.public_jwk, k.sealed_private, k.created_at, k.activated_at], event,
             Some(keys_change(&k.tenant_id))).await?;
        Ok(())
    }
    /// The keys JWKS publishes at `now`: upcoming, active, and retiring until their
    /// `retired_at`.
    pub async fn published_keys(
        &self,
        tenant: &str,
        now: UnixTime,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        self.db
            .fetch_all(
                concat!(
                    "SELECT ",
                    key_columns!(),
                    " FROM signing_keys WHERE tenant_id = $1 AND status <> 'retired' \
              AND (retired_at IS NULL OR retired_at > $2) ORDER BY created_at, kid"
                ),
                params![tenant, now],
                KeyRecord::from_row,
            )
            .await
    }
    /// Every key of a tenant, retired ones included.
    pub async fn all_keys(&self, tenant: &str) -> Result<Vec<KeyRecord>, StoreError> {
        self.db
            .fetch_all(
                concat!(
                    "SELECT ",
                    key_columns!(),
                    " FROM signing_keys WHERE tenant_id = $1 ORDER BY created_at, kid"
                ),
                params![tenant],
                KeyRecord::from_row,
            )
            .await
    }
    /// Makes an upcoming key the active key of its alg, provided it was created (and so
    /// published) no later than `published_before`; the previously active keys of that alg
    /// start retiring and leave JWKS at `retire_at`. One transaction. False when the key is not
    /// an upcoming key that has been published long enough.
    pub async fn activate_key(
        &self,
        tenant: &str,
        kid: &str,
        now: UnixTime,
        published_before: UnixTime,
        retire_at: UnixTime,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let activated = tx
            .execute(
                "UPDATE signing_keys SET status = 'active', activated_at = $1, retired_at = NULL \
             WHERE tenant_id = $2 AND kid = $3 AND status = 'upcoming' AND created_at <= $4",
                params![now, tenant, kid, published_before],
            )
            .await?;
        if activated != 1 {
            // Nothing was written; ending the transaction cleanly returns its connection.
            tx.commit().await?;
            return Ok(false);
        }
        tx.audit(event).await?;
        tx.execute(
            "UPDATE signing_keys SET status = 'retiring', retired_at = $1 \
             WHERE tenant_id = $2 AND kid <> $3 AND status = 'active' \
               AND alg = (SELECT alg FROM signing_keys WHERE tenant_id = $2 AND kid = $3)",
            params![retire_at, tenant, kid],
        )
        .await?;
        let announced = self.announce_in(&mut tx, keys_change(tenant)).await?;
        tx.commit().await?;
        self.announced(announced).await;
        Ok(true)
    }
    /// Starts retiring a key: it stops signing now and leaves JWKS at `retire_at`. An active key
    /// retires only while another active key of its alg remains, so signing never stops.
    pub async fn retire_key(
        &self,
        tenant: &str,
        kid: &str,
        retire_at: UnixTime,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let done = self.change_audited("UPDATE signing_keys SET status = 'retiring', retired_at = $1 \
             WHERE tenant_id = $2 AND kid = $3 AND (status = 'upcoming' OR (status = 'active' AND EXISTS ( \
               SELECT 1 FROM signing_keys other WHERE other.tenant_id = $2 AND other.kid <> $3 \
                 AND other.status = 'active' AND other.alg = signing_keys.alg)))", params![retire_at, tenant, kid], event,
             Some(keys_change(tenant))).await?;
        Ok(done == 1)
    }
}
