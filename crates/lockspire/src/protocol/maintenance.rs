//! The background task that keeps each process's provider current: signing keys re-read when
//! any process announces a change (and periodically in any case), expired rows pruned.

use std::sync::Weak;

use crate::protocol::provider::Provider;
use crate::protocol::signing_keys;

/// Keeps a provider current for as long as it lives: re-reads the published keys when any
/// process sharing a PostgreSQL database announces a key change, and every `every` in any case
/// (a backstop, and the only way on SQLite, whose other writers are operator tools), and prunes
/// expired rows every [`PRUNE_EVERY`]. Several processes may all prune: the deletes are
/// idempotent.
pub(crate) fn spawn(provider: Weak<Provider>, every: std::time::Duration) {
    let Some(mut key_changes) = provider.upgrade().map(|p| p.store.key_changes()) else {
        return;
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut last_prune = tokio::time::Instant::now();
        loop {
            let announced = tokio::select! {
                _ = tick.tick() => false,
                changed = key_changes.changed() => {
                    if changed.is_err() {
                        return; // The store is gone.
                    }
                    true
                }
            };
            let Some(p) = provider.upgrade() else { return };
            if let Err(e) = signing_keys::reload(&p).await {
                tracing::warn!(error = %e, "reloading signing keys failed; keeping the current ones");
            }
            if !announced && last_prune.elapsed() >= PRUNE_EVERY {
                last_prune = tokio::time::Instant::now();
                if let Err(e) = p.prune().await {
                    tracing::warn!(error = %e, "pruning expired rows failed; will retry");
                }
            }
        }
    });
}

/// How often each process deletes expired rows.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);
