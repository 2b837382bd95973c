//! Announcing changes to every process that shares a database, so that what a process keeps in
//! memory — client registrations, the signing keys — follows a change made by any other
//! process at once instead of after a timeout. On PostgreSQL with `LISTEN` / `NOTIFY`; on
//! SQLite, whose other processes are the `lockspire` command and tools, with a counter that each
//! change moves and each server polls ([`POLL_EVERY`]).
//!
//! Each store holds one listening connection of its own. A change is announced from inside its
//! own transaction (`pg_notify` is delivered at commit), so a committed change is always
//! announced and a rolled-back one never is; the store that made it then waits (briefly) until
//! its own listener has heard the announcement, so by the time the change is acknowledged the
//! announcement is out to every listener. While the listener is not connected, the client cache is bypassed; when it
//! reconnects, the cache starts empty and the keys are re-read, because announcements sent
//! meanwhile are lost.

use std::collections::HashMap;
use std::sync::Weak;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
#[cfg(feature = "postgres")]
use sqlx::postgres::PgListener;
use tokio::sync::{oneshot, watch};

use super::client_cache::ClientCache;

/// The notification channel.
#[cfg(feature = "postgres")]
const CHANNEL: &str = "lockspire_changes";

/// How long a change waits for its own announcement to come back.
const ECHO_WAIT: Duration = Duration::from_secs(2);

/// How often a SQLite store reads the change counter: the longest a change made by another
/// process (a rotated secret, a disabled client) goes unnoticed here. One indexed read of one
/// row.
#[cfg(feature = "sqlite")]
pub(crate) const POLL_EVERY: Duration = Duration::from_millis(250);

/// Moves the change counter, inside the changing transaction (SQLite).
pub(crate) const BUMP: &str = "UPDATE change_counter SET n = n + 1 WHERE id = 1";

#[cfg(feature = "postgres")]
/// How long the listener waits before connecting again after losing its connection.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// What changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub(crate) enum Change {
    /// A client's registration, status or credentials.
    Client { tenant: String, client_id: String },
    /// A tenant's signing keys.
    Keys { tenant: String },
}

/// One announcement on the wire: the change, and who sent it for which waiter.
#[derive(Debug, Serialize, Deserialize)]
struct Announcement {
    origin: String,
    nonce: u64,
    #[serde(flatten)]
    change: Change,
}

/// This store's side of the announcements.
#[derive(Debug)]
pub(crate) struct Changes {
    /// Tells this store's announcements apart from other processes'.
    origin: String,
    next_nonce: AtomicU64,
    /// Changes waiting to hear their own announcement.
    waiting: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    clients: Arc<ClientCache>,
    /// Counts key changes announced by any process; the provider re-reads its keys on each.
    keys: watch::Sender<u64>,
    /// Dropped with this value, which ends the listener or poller.
    alive: watch::Sender<()>,
}

impl Changes {
    pub(crate) fn new(clients: Arc<ClientCache>) -> Self {
        Self {
            origin: crate::secrets::random_id(),
            next_nonce: AtomicU64::new(0),
            waiting: Mutex::default(),
            clients,
            keys: watch::Sender::new(0),
            alive: watch::Sender::new(()),
        }
    }

    /// Follows key changes announced by any process.
    pub(crate) fn key_changes(&self) -> watch::Receiver<u64> {
        self.keys.subscribe()
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<()>>> {
        match self.waiting.lock() {
            Ok(w) => w,
            // A waiter left behind only times out.
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The payload announcing `change`, and the waiter that hears it come back (none while the
    /// listener is down: nothing would come back).
    pub(crate) fn announce(&self, change: Change) -> (String, Option<Echo<'_>>) {
        let nonce = self.next_nonce.fetch_add(1, Ordering::Relaxed);
        let echo = self.clients.is_trusted().then(|| {
            let (tx, rx) = oneshot::channel();
            self.waiting().insert(nonce, tx);
            Echo {
                changes: self,
                nonce,
                rx,
            }
        });
        let payload = serde_json::to_string(&Announcement {
            origin: self.origin.clone(),
            nonce,
            change,
        })
        .unwrap_or_default();
        (payload, echo)
    }

    #[cfg(feature = "postgres")]
    /// Applies an announcement heard by the listener.
    fn heard(&self, payload: &str) {
        let Ok(announcement) = serde_json::from_str::<Announcement>(payload) else {
            tracing::warn!("ignored an unreadable change announcement");
            return;
        };
        match &announcement.change {
            Change::Client { tenant, client_id } => self.clients.forget(tenant, client_id),
            Change::Keys { .. } => self.keys.send_modify(|n| *n = n.wrapping_add(1)),
        }
        if announcement.origin == self.origin
            && let Some(waiter) = self.waiting().remove(&announcement.nonce)
        {
            let _ = waiter.send(());
        }
    }

    #[cfg(feature = "postgres")]
    /// The listener is (again) connected: start from the database.
    fn connected(&self) {
        self.clients.set_trusted(true);
        self.keys.send_modify(|n| *n = n.wrapping_add(1));
    }

    #[cfg(feature = "postgres")]
    /// The listener lost its connection: trust nothing cached, release every waiter.
    fn disconnected(&self) {
        self.clients.set_trusted(false);
        self.waiting().clear();
    }
}

#[cfg(feature = "sqlite")]
/// The change counter, or `None` before the migration that creates it.
pub(crate) async fn read_counter(db: &super::driver::Db) -> Option<i64> {
    db.fetch_optional(
        "SELECT n FROM change_counter WHERE id = 1",
        super::db::params![],
        |r| super::db::get::<i64>(r, "n"),
    )
    .await
    .ok()
    .flatten()
}

#[cfg(feature = "sqlite")]
/// Reads the change counter every [`POLL_EVERY`] until `changes` is dropped; when it differs
/// from `baseline` (read when the store opened, before anything was cached) or from the last
/// read, forgets every cached client and has the keys re-read. Changes this process made move
/// it too: forgetting once more costs a read each.
pub(crate) fn spawn_poller(db: super::driver::Db, changes: &Arc<Changes>, baseline: Option<i64>) {
    let mut alive = changes.alive.subscribe();
    let changes: Weak<Changes> = Arc::downgrade(changes);
    tokio::spawn(async move {
        let mut seen = baseline;
        loop {
            tokio::select! {
                _ = alive.changed() => return,
                () = tokio::time::sleep(POLL_EVERY) => {}
            }
            // Before the first migration the table does not exist yet: nothing to follow.
            let Some(now) = read_counter(&db).await else {
                continue;
            };
            let Some(c) = changes.upgrade() else { return };
            // Also when there was no baseline: the table appeared after the store opened, and
            // a change made in between would otherwise go unseen.
            if seen != Some(now) {
                c.clients.clear();
                c.keys.send_modify(|n| *n = n.wrapping_add(1));
            }
            seen = Some(now);
        }
    });
}

/// Waits for one announcement to come back through this store's listener. Dropped unheard (the
/// change failed, or the wait was given up), it withdraws its waiter.
pub(crate) struct Echo<'a> {
    changes: &'a Changes,
    nonce: u64,
    rx: oneshot::Receiver<()>,
}

impl Echo<'_> {
    /// Waits, at most [`ECHO_WAIT`].
    pub(crate) async fn heard(mut self) {
        if tokio::time::timeout(ECHO_WAIT, &mut self.rx).await.is_err() {
            tracing::warn!(
                "a change announcement did not come back within {ECHO_WAIT:?}; other processes may see the change late"
            );
        }
    }
}

impl Drop for Echo<'_> {
    fn drop(&mut self) {
        self.changes.waiting().remove(&self.nonce);
    }
}

#[cfg(feature = "postgres")]
/// Listens for announcements on a connection of its own until `changes` is dropped,
/// reconnecting after a loss.
pub(crate) fn spawn_listener(url: String, changes: &Arc<Changes>) {
    let mut alive = changes.alive.subscribe();
    let changes: Weak<Changes> = Arc::downgrade(changes);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                // Every sender is gone: the store was dropped.
                _ = alive.changed() => return,
                () = listen(&url, &changes) => {}
            }
            let Some(c) = changes.upgrade() else { return };
            c.disconnected();
            drop(c);
            tokio::select! {
                _ = alive.changed() => return,
                () = tokio::time::sleep(RECONNECT_AFTER) => {}
            }
        }
    });
}

#[cfg(feature = "postgres")]
/// One connection's life: subscribe, then apply announcements until it is lost.
async fn listen(url: &str, changes: &Weak<Changes>) {
    let mut listener = match PgListener::connect(url).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for other processes' changes; caches are bypassed");
            return;
        }
    };
    // Reconnecting is ours to do: the caches must be cleared between losing a connection
    // and trusting a new one.
    listener.eager_reconnect(false);
    if let Err(e) = listener.listen(CHANNEL).await {
        tracing::warn!(error = %e, "cannot listen for other processes' changes; caches are bypassed");
        return;
    }
    match changes.upgrade() {
        Some(c) => c.connected(),
        None => return,
    }
    // `try_recv` answers `None` (or an error) when the connection was lost.
    while let Ok(Some(notification)) = listener.try_recv().await {
        match changes.upgrade() {
            Some(c) => c.heard(notification.payload()),
            None => return,
        }
    }
    tracing::warn!(
        "lost the connection that hears other processes' changes; caches are bypassed until it is back"
    );
}

/// The statement that announces a payload.
pub(crate) const NOTIFY: &str = "SELECT pg_notify('lockspire_changes', $1)";
