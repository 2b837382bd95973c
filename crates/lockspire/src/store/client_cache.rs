//! A short-lived cache of client registrations: every token, introspection and revocation
//! request authenticates a client, and reading it from the database each time was the largest
//! fixed cost of those requests. Changes made through this process invalidate the entry at
//! once; changes made by another process are seen within [`TTL`] (bounded staleness, see
//! docs/scaling.md). Tokens do not depend on it: their validity is always read from the
//! database, including their client's status.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::ClientRecord;

/// How long another process's change to a client may go unseen here.
pub(crate) const TTL: Duration = Duration::from_secs(5);

/// Bounds memory: past this many entries the cache starts over.
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Default)]
pub(crate) struct ClientCache {
    entries: Mutex<HashMap<(String, String), (Instant, ClientRecord)>>,
}

impl ClientCache {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(String, String), (Instant, ClientRecord)>> {
        match self.entries.lock() {
            Ok(e) => e,
            // A panic while holding the lock leaves at worst a stale entry, which expires.
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub(crate) fn get(&self, tenant: &str, client_id: &str) -> Option<ClientRecord> {
        let entries = self.lock();
        let (at, record) = entries.get(&(tenant.to_owned(), client_id.to_owned()))?;
        (at.elapsed() < TTL).then(|| record.clone())
    }

    pub(crate) fn put(&self, record: ClientRecord) {
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            (record.tenant_id.clone(), record.client_id.clone()),
            (Instant::now(), record),
        );
    }

    pub(crate) fn forget(&self, tenant: &str, client_id: &str) {
        self.lock()
            .remove(&(tenant.to_owned(), client_id.to_owned()));
    }
}
