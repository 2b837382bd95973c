//! The provider context: everything one issuer needs per request, handed to protocol code as
//! a value.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::clock::{Clock, UnixTime};
use crate::config::Config;
use crate::host::{ConsentRenderer, Context, DetailTypes, DeviceRenderer, DynResolver};
use crate::jose::KeyRing;
use crate::model::client::{ClientId, ClientMetadata};
use crate::mtls;
use crate::protocol::jwks_cache;
use crate::secrets::{RotatingNonces, ServerSecrets};
use crate::store::{self, Store};

/// The tenant of a single-issuer host; every row carries a tenant id.
pub(crate) const DEFAULT_TENANT: &str = "default";

/// Everything one issuer needs per request, passed to protocol code as a value.
pub(crate) struct Provider {
    pub(crate) config: Config,
    pub(crate) tenant: String,
    pub(crate) store: Store,
    pub(crate) secrets: ServerSecrets,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) resolver: Arc<dyn DynResolver>,
    pub(crate) keys: RwLock<Arc<KeyRing>>,
    /// Key reads started, and the number of the read whose ring is installed: reads run
    /// concurrently (a periodic one, one an announcement woke, an operator's), and one that
    /// started earlier must not replace what a later one installed.
    pub(crate) key_reads: KeyReads,
    pub(crate) discovery: Arc<str>,
    pub(crate) consent: Option<Arc<dyn ConsentRenderer>>,
    /// The host's device verification page, if it renders its own.
    pub(crate) device_page: Option<Arc<dyn DeviceRenderer>>,
    /// The `authorization_details` types the host understands (RFC 9396).
    pub(crate) detail_types: DetailTypes,
    pub(crate) jwks: jwks_cache::JwksCache,
    pub(crate) mtls: Option<mtls::Mtls>,
    /// This server's DPoP nonces (RFC 9449 §8).
    pub(crate) dpop_nonces: RotatingNonces,
    /// This process's outbox worker.
    pub(crate) outbox: crate::protocol::outbox::handle::Outbox,
    /// How the host reaches users for backchannel authentication, if it does.
    pub(crate) backchannel: Option<Arc<dyn crate::host::DynBackchannel>>,
    /// The host's token exchange policy (RFC 8693), if it set one.
    pub(crate) exchange_policy: Option<Arc<dyn crate::exchange::DynExchangePolicy>>,
}

/// The scope of the authorization server's DPoP nonces; resource servers have their own.
pub(crate) const AUTHORIZATION_SERVER_NONCES: &str = "authorization-server";

impl Provider {
    pub(crate) fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// The nonces a DPoP proof must carry one of, when this server or `client` requires them
    /// (RFC 9449 §8).
    pub(crate) fn required_dpop_nonces(
        &self,
        client: Option<&ClientMetadata>,
    ) -> Option<&RotatingNonces> {
        (self.config.require_dpop_nonce || client.is_some_and(|c| c.require_dpop_nonce))
            .then_some(&self.dpop_nonces)
    }

    /// The current key ring (cheap: an `Arc` clone).
    pub(crate) fn keys(&self) -> Arc<KeyRing> {
        match self.keys.read() {
            Ok(k) => k.clone(),
            // A panic while swapping the ring cannot leave it half-written: it is one Arc.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// A security event at this issuer, now: what an actor did, how it ended and why.
    pub(crate) fn security_event(
        &self,
        action: &str,
        actor: store::Actor<'_>,
        outcome: store::Outcome,
        client_id: Option<&ClientId>,
        subject: Option<&str>,
        reason: &str,
    ) -> store::AuditEvent {
        store::AuditEvent::security(
            &self.tenant,
            self.now(),
            action,
            actor,
            outcome,
            client_id,
            subject,
            reason,
        )
    }

    /// Deletes what has expired, and audit events past their retention.
    pub(crate) async fn prune(&self) -> Result<u64, store::StoreError> {
        let now = self.now();
        let audit_before = now.saturating_sub(self.config.audit_retention);
        self.store.prune_expired(now, audit_before).await
    }

    /// Installs the ring of key read number `read` (from [`KeyReads::start`]) unless a later
    /// read's is installed already.
    pub(crate) fn replace_keys(&self, read: u64, ring: KeyRing) {
        let mut keys = match self.keys.write() {
            Ok(k) => k,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Compared and set under the write lock, so installs are ordered by it.
        if read < self.key_reads.installed.load(Ordering::SeqCst) {
            return;
        }
        self.key_reads.installed.store(read, Ordering::SeqCst);
        *keys = Arc::new(ring);
    }

    pub(crate) fn issuer(&self) -> &str {
        self.config.issuer.as_str()
    }

    /// The `sub` a client sees: the local subject, or its pairwise form (OIDC Core §8).
    pub(crate) fn subject_for(&self, client: &ClientMetadata, local: &str) -> String {
        match client.sector() {
            Some(sector) => self.secrets.pairwise_subject(&sector, local),
            None => local.to_owned(),
        }
    }

    pub(crate) fn context(&self, client_id: &ClientId, scopes: &[String]) -> Context {
        Context {
            issuer: self.issuer().to_owned(),
            client_id: client_id.to_string(),
            scopes: scopes.to_vec(),
            ..Context::default()
        }
    }
}

/// Numbers the reads of the key ring; see [`Provider::key_reads`].
#[derive(Debug, Default)]
pub(crate) struct KeyReads {
    started: AtomicU64,
    installed: AtomicU64,
}

impl KeyReads {
    /// The number of a read about to start.
    pub(crate) fn start(&self) -> u64 {
        self.started.fetch_add(1, Ordering::SeqCst) + 1
    }
}
