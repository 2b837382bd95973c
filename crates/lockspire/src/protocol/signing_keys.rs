//! The lifecycle of the server's keys (RFC 7517 key sets, published at `jwks_uri` per RFC 8414
//! §2): signing keys, and the encryption keys clients encrypt request objects to. A generated
//! key is *upcoming* — published but not used — until it has been published for
//! [`PUBLISH_BEFORE_USE`], so relying parties that cached the key set have seen it before the
//! first token it signs; activating it makes it sign and starts retiring the previous key of its
//! alg, which stays published until every token it signed has expired. An encryption key
//! decrypts from the moment it is published until it leaves the key set, since a client may
//! encrypt to any key it has seen. Private keys are stored sealed under the host's secret key.

use crate::clock::UnixTime;
use crate::jose::{self, KeyAlg, KeyError, KeyRing, KeyStatus, ServerKey};
use crate::protocol::provider::Provider;
use crate::secrets::ServerSecrets;
use crate::store::{Actor, AuditEvent, KeyRecord, Outcome, Store, StoreError};

/// How long a new key is published before it may sign: the JWKS `max-age`, so relying parties
/// that cached JWKS have seen it before the first token it signs.
pub const PUBLISH_BEFORE_USE: i64 = 300;

/// Why keys could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LifecycleError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored key could not be opened or a new one generated.
    #[error(transparent)]
    Keys(#[from] KeyError),
}

fn seal_context(tenant: &str, kid: &str) -> String {
    format!("lockspire/signing-key/{tenant}/{kid}")
}

/// A new key, sealed under the secret key, ready to store.
pub(crate) fn new_key_record(
    secrets: &ServerSecrets,
    tenant: &str,
    alg: KeyAlg,
    status: KeyStatus,
    now: UnixTime,
) -> Result<KeyRecord, KeyError> {
    let generated = jose::generate_key(alg)?;
    let kid = generated.key.kid().to_owned();
    Ok(KeyRecord {
        tenant_id: tenant.to_owned(),
        sealed_private: secrets.seal(&seal_context(tenant, &kid), &generated.pkcs8),
        kid,
        alg: alg.as_str().to_owned(),
        status: status.as_str().to_owned(),
        public_jwk: generated.key.public_jwk().to_string(),
        created_at: now,
        activated_at: (status == KeyStatus::Active).then_some(now),
        retired_at: None,
    })
}

/// Unseals and parses a stored key.
pub(crate) fn open_key(
    secrets: &ServerSecrets,
    r: &KeyRecord,
) -> Result<(ServerKey, KeyStatus), KeyError> {
    let alg: KeyAlg = r.alg.parse()?;
    let status = KeyStatus::parse(&r.status).ok_or(KeyError::Unusable {
        kid: r.kid.clone(),
        why: "bad status",
    })?;
    let pkcs8 = secrets
        .open(&seal_context(&r.tenant_id, &r.kid), &r.sealed_private)
        .map_err(|_| KeyError::Unusable {
            kid: r.kid.clone(),
            why: "the secret key cannot open it",
        })?;
    Ok((ServerKey::from_pkcs8(&r.kid, alg, &pkcs8)?, status))
}

/// The published keys, parsed once.
pub(crate) async fn load_ring(
    store: &Store,
    secrets: &ServerSecrets,
    tenant: &str,
    now: UnixTime,
) -> Result<KeyRing, LifecycleError> {
    let mut keys = Vec::new();
    for r in store.published_keys(tenant, now).await? {
        keys.push(open_key(secrets, &r)?);
    }
    Ok(KeyRing::new(keys))
}

/// Re-reads the published keys into this process's key ring.
pub(crate) async fn reload(p: &Provider) -> Result<(), LifecycleError> {
    let read = p.key_reads.start();
    let ring = load_ring(&p.store, &p.secrets, &p.tenant, p.now()).await?;
    p.replace_keys(read, ring);
    Ok(())
}

/// Creates an active key for every signing alg and encryption key kind that has none, as on
/// first start.
pub(crate) async fn ensure_active_keys(
    store: &Store,
    secrets: &ServerSecrets,
    tenant: &str,
    now: UnixTime,
) -> Result<(), LifecycleError> {
    let published = store.published_keys(tenant, now).await?;
    for alg in KeyAlg::ALL {
        let has_active = published
            .iter()
            .any(|r| r.alg == alg.as_str() && r.status == KeyStatus::Active.as_str());
        if !has_active {
            let record = new_key_record(secrets, tenant, alg, KeyStatus::Active, now)?;
            let event = AuditEvent::security(
                tenant,
                now,
                "key_generated",
                Actor::Operator,
                Outcome::Done,
                None,
                None,
                "no active key for this algorithm at start",
            )
            .as_action("key_generated", serde_json::json!({ "kid": record.kid }));
            store.insert_key(&record, &event).await?;
        }
    }
    Ok(())
}
