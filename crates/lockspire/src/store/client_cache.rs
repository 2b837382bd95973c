//! Client rows, and the per-process cache of them. Every token, introspection and revocation
//! request authenticates a client, and reading it from the database each time was the largest
//! fixed cost of those requests.
//!
//! A change made through this store forgets the entry once the change is committed. On
//! PostgreSQL, where several processes share the database, a change made by any process is
//! announced to every other one ([`super::changes`]), which forgets the entry too; while this
//! process is not listening for those announcements the cache is bypassed, never trusted. An
//! entry also lives at most [`TTL`], a backstop for changes made outside Lockspire.
//!
//! A read that raced a change must not put the old row back: every `forget` and `clear` moves
//! the cache to a new epoch, and a row is kept only if no epoch began while it was read.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::db::{Row, get};
use super::error::StoreError;
use crate::clock::UnixTime;
use crate::model::client::{ClientId, ClientMetadata};

/// The longest an entry is trusted, whatever is announced.
pub(crate) const TTL: Duration = Duration::from_secs(5);

/// Bounds memory: past this many entries the cache starts over.
const MAX_ENTRIES: usize = 10_000;

type Entries = HashMap<(String, String), (Instant, ClientRecord)>;

#[derive(Debug)]
pub(crate) struct ClientCache {
    entries: Mutex<Entries>,
    /// Moves on every forget and clear; see the module documentation.
    epoch: AtomicU64,
    /// False while changes by other processes could go unannounced (PostgreSQL, listener
    /// down): the cache is then bypassed.
    trusted: AtomicBool,
}

/// The epoch a read started in; pass it to [`ClientCache::put`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadEpoch(u64);

impl ClientCache {
    /// A cache that is trusted from the start (a database only this process writes through
    /// Lockspire) or only once [`ClientCache::set_trusted`] says so.
    pub(crate) fn new(trusted: bool) -> Self {
        Self {
            entries: Mutex::default(),
            epoch: AtomicU64::new(0),
            trusted: AtomicBool::new(trusted),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        match self.entries.lock() {
            Ok(e) => e,
            // A panic while holding the lock leaves at worst a stale entry, which expires.
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub(crate) fn get(&self, tenant: &str, client_id: &str) -> Option<ClientRecord> {
        if !self.trusted.load(Ordering::Acquire) {
            return None;
        }
        let entries = self.lock();
        let (at, record) = entries.get(&(tenant.to_owned(), client_id.to_owned()))?;
        (at.elapsed() < TTL).then(|| record.clone())
    }

    /// Call before reading a row that may be put.
    pub(crate) fn read_epoch(&self) -> ReadEpoch {
        ReadEpoch(self.epoch.load(Ordering::Acquire))
    }

    /// Keeps `record`, unless the cache is not trusted or a change was seen since `read`.
    pub(crate) fn put(&self, record: ClientRecord, read: ReadEpoch) {
        if !self.trusted.load(Ordering::Acquire) {
            return;
        }
        let mut entries = self.lock();
        // Checked under the lock that `forget` and `clear` move the epoch under.
        if self.epoch.load(Ordering::Acquire) != read.0 {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            (record.tenant_id.clone(), record.client_id.to_string()),
            (Instant::now(), record),
        );
    }

    /// Forgets one client, after a change to it was committed.
    pub(crate) fn forget(&self, tenant: &str, client_id: &str) {
        let mut entries = self.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.remove(&(tenant.to_owned(), client_id.to_owned()));
    }

    /// Forgets every client: changes may have been missed, or another process changed some.
    pub(crate) fn clear(&self) {
        let mut entries = self.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    /// Whether entries are used at all.
    pub(crate) fn is_trusted(&self) -> bool {
        self.trusted.load(Ordering::Acquire)
    }

    #[cfg(any(feature = "postgres", test))]
    /// Whether entries may be used. Untrusting also forgets everything, so that trusting again
    /// starts from the database.
    pub(crate) fn set_trusted(&self, trusted: bool) {
        self.clear();
        self.trusted.store(trusted, Ordering::Release);
    }
}

/// Whether a client may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientStatus {
    /// Usable.
    Active,
    /// Refused at every endpoint and its tokens suspended, until it is enabled again.
    Disabled,
    /// Deleted for good (RFC 7592 §2.3): refused everywhere, its grants revoked, its id never
    /// reused. No status change leaves this one.
    Deleted,
}

impl ClientStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
            Self::Deleted => "deleted",
        }
    }
}

/// A registered client.
#[derive(Clone, Debug)]
pub struct ClientRecord {
    /// Tenant.
    pub tenant_id: String,
    /// `client_id` (RFC 6749 §2.2).
    pub client_id: ClientId,
    /// Keyed digest of the secret; `None` for public clients.
    pub secret_digest: Option<String>,
    /// Registered metadata.
    pub metadata: ClientMetadata,
    /// Status.
    pub status: ClientStatus,
    /// Registration time (`client_id_issued_at`).
    pub created_at: UnixTime,
    /// The secret sealed under the server key; client_secret_jwt clients only.
    pub sealed_secret: Option<String>,
    /// Digest of the RFC 7592 registration access token.
    pub registration_token_digest: Option<String>,
    /// When the secret stops working (RFC 7591 `client_secret_expires_at`); `None`: never.
    pub secret_expires_at: Option<UnixTime>,
}

impl ClientRecord {
    pub(crate) fn metadata_json(&self) -> String {
        serde_json::to_string(&self.metadata).unwrap_or_else(|_| "{}".to_owned())
    }

    pub(crate) fn from_row(r: &Row<'_>) -> Result<Self, StoreError> {
        let metadata: String = get(r, "metadata")?;
        let status: String = get(r, "status")?;
        Ok(Self {
            tenant_id: get(r, "tenant_id")?,
            client_id: ClientId::new(get::<String>(r, "client_id")?),
            secret_digest: get(r, "secret_digest")?,
            metadata: serde_json::from_str(&metadata)
                .map_err(|e| StoreError::Corrupt(format!("client metadata: {e}")))?,
            status: match status.as_str() {
                "active" => ClientStatus::Active,
                "disabled" => ClientStatus::Disabled,
                "deleted" => ClientStatus::Deleted,
                other => return Err(StoreError::Corrupt(format!("client status {other}"))),
            },
            created_at: get(r, "created_at")?,
            sealed_secret: get(r, "sealed_secret")?,
            registration_token_digest: get(r, "registration_token_digest")?,
            secret_expires_at: get(r, "secret_expires_at")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::client::{ClientId, ClientMetadata};
    use crate::store::ClientStatus;

    fn record(id: &str) -> ClientRecord {
        let Ok(metadata) = serde_json::from_value::<ClientMetadata>(serde_json::json!({
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "id_token_signed_response_alg": "RS256",
        })) else {
            panic!("metadata")
        };
        ClientRecord {
            tenant_id: "t".into(),
            client_id: ClientId::new(id),
            secret_digest: None,
            metadata,
            status: ClientStatus::Active,
            created_at: 0,
            sealed_secret: None,
            registration_token_digest: None,
            secret_expires_at: None,
        }
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_kept() {
        let cache = ClientCache::new(true);
        let read = cache.read_epoch();
        cache.forget("t", "a");
        cache.put(record("a"), read);
        assert!(cache.get("t", "a").is_none());
        let read = cache.read_epoch();
        cache.put(record("a"), read);
        assert!(cache.get("t", "a").is_some());
    }

    #[test]
    fn an_untrusted_cache_is_bypassed() {
        let cache = ClientCache::new(false);
        cache.put(record("a"), cache.read_epoch());
        assert!(cache.get("t", "a").is_none());
        cache.set_trusted(true);
        cache.put(record("a"), cache.read_epoch());
        assert!(cache.get("t", "a").is_some());
        cache.set_trusted(false);
        assert!(cache.get("t", "a").is_none());
        cache.set_trusted(true);
        assert!(cache.get("t", "a").is_none(), "untrusting forgot it");
    }
}
