//! This process's outbox worker as the provider holds it: who it is when it leases, what wakes
//! it, how it calls out. Kept apart from the delivery code, which reads the provider.

use std::sync::Arc;

use crate::fetch::{FetchError, Fetcher};
use crate::secrets::random_id;

/// This process's worker.
pub(crate) struct Outbox {
    pub(super) worker: String,
    pub(super) wake: Arc<tokio::sync::Notify>,
    pub(super) fetcher: Fetcher,
}

impl Outbox {
    pub(crate) fn new(dev_mode: bool) -> Result<Self, FetchError> {
        Ok(Self {
            // The process id helps an operator tell which process holds a lease.
            worker: format!("{}-{}", std::process::id(), random_id()),
            wake: Arc::new(tokio::sync::Notify::new()),
            fetcher: Fetcher::for_notifications(dev_mode)?,
        })
    }
}
