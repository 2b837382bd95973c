//! The operator API: clients and signing keys, for a host's admin code and the `lockspire`
//! command. Everything here is also reachable from [`crate::Lockspire::operator`].
//!
//! Signing keys follow the lifecycle of `protocol::signing_keys`: generated *upcoming*,
//! activated once published for [`PUBLISH_BEFORE_USE`], then retiring until the tokens they
//! signed have expired.

use std::sync::Arc;

use serde_json::Value;

use crate::clock::UnixTime;
use crate::jose::{KeyAlg, KeyError, KeyStatus};
use crate::model::client::{ClientId, ClientMetadata};
use crate::protocol::error::OAuthError;
use crate::protocol::provider::Provider;
use crate::protocol::registration::{self, RegisteredClient};
use crate::protocol::signing_keys;
use crate::protocol::signing_keys::{LifecycleError, PUBLISH_BEFORE_USE, new_key_record, open_key};
use crate::secrets::random_token;
use crate::store::{Actor, ClientStatus, KeyRecord, Outcome, StoreError};

/// Why an operator action was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OperatorError {
    /// No such client or key.
    #[error("{0} not found")]
    NotFound(String),
    /// The action would break a rule; the text says which.
    #[error("{0}")]
    Refused(String),
    /// Metadata or input failed validation.
    #[error("{}: {}", .0.code(), .0.description())]
    Invalid(OAuthError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Key material could not be used.
    #[error(transparent)]
    Keys(#[from] KeyError),
}

impl From<LifecycleError> for OperatorError {
    fn from(e: LifecycleError) -> Self {
        match e {
            LifecycleError::Store(e) => Self::Store(e),
            LifecycleError::Keys(e) => Self::Keys(e),
        }
    }
}

impl From<OAuthError> for OperatorError {
    fn from(e: OAuthError) -> Self {
        Self::Invalid(e)
    }
}

/// A client as operators see it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ClientInfo {
    /// The client id.
    pub client_id: String,
    /// True unless disabled or deleted.
    pub enabled: bool,
    /// True once deleted for good; the id stays taken.
    pub deleted: bool,
    /// Registration time.
    pub created_at: UnixTime,
    /// Registered metadata.
    pub metadata: ClientMetadata,
}

/// Where a key is in its lifecycle at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum KeyState {
    /// Published, not yet signing.
    Upcoming {
        /// When it may be activated.
        activatable_at: UnixTime,
    },
    /// Signing new tokens.
    Active,
    /// Not signing; published until `until`.
    Retiring {
        /// When it leaves JWKS.
        until: UnixTime,
    },
    /// Unpublished.
    Retired,
}

/// A key as operators see it (never its private half).
#[derive(Clone, Debug, serde::Serialize)]
pub struct KeyInfo {
    /// Key id (RFC 7638 thumbprint).
    pub kid: String,
    /// The JWS alg of a signing key, or the kind of an encryption key (`RSA-OAEP-256`,
    /// `ECDH-ES`); see [`KeyAlg`].
    pub alg: String,
    /// Lifecycle state now.
    #[serde(flatten)]
    pub state: KeyState,
    /// Creation time.
    pub created_at: UnixTime,
    /// Activation time.
    pub activated_at: Option<UnixTime>,
}

/// Operator actions on one issuer.
#[derive(Clone)]
pub struct Operator {
    pub(crate) inner: Arc<Provider>,
}

impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operator")
            .field("issuer", &self.inner.config.issuer)
            .finish_non_exhaustive()
    }
}

fn info(c: crate::store::ClientRecord) -> ClientInfo {
    ClientInfo {
        client_id: c.client_id.into(),
        enabled: c.status == ClientStatus::Active,
        deleted: c.status == ClientStatus::Deleted,
        created_at: c.created_at,
        metadata: c.metadata,
    }
}

impl Operator {
    fn p(&self) -> &Provider {
        &self.inner
    }

    /// The migrations of this build not yet applied to the database, oldest first.
    pub async fn pending_migrations(
        &self,
    ) -> Result<Vec<crate::database::Migration>, OperatorError> {
        Ok(crate::database::Database {
            store: self.inner.store.clone(),
        }
        .pending_migrations()
        .await?)
    }

    /// Whether this process hears the changes other processes announce on a shared PostgreSQL
    /// database: `None` on SQLite, where other processes' changes are followed by polling a
    /// counter instead; `Some(false)` while the listening connection is down, when client
    /// lookups bypass the cache. A host may
    /// report it in its health checks.
    pub fn change_listener_connected(&self) -> Option<bool> {
        self.inner.store.change_listener_connected()
    }

    // ---- clients -------------------------------------------------------------------------

    /// Registers a client with RFC 7591 metadata; the secret of a confidential client is in
    /// the result and nowhere else.
    pub async fn create_client(
        &self,
        client_id: Option<&str>,
        metadata: Value,
    ) -> Result<RegisteredClient, OperatorError> {
        Ok(registration::create(self.p(), client_id, metadata).await?)
    }

    /// Replaces a client's metadata under registration rules.
    pub async fn update_client(
        &self,
        client_id: &str,
        metadata: Value,
    ) -> Result<ClientMetadata, OperatorError> {
        Ok(registration::update(self.p(), client_id, metadata).await?)
    }

    /// One client.
    pub async fn client(&self, client_id: &str) -> Result<Option<ClientInfo>, OperatorError> {
        let p = self.p();
        Ok(p.store.client(&p.tenant, client_id).await?.map(info))
    }

    /// Every client.
    pub async fn clients(&self) -> Result<Vec<ClientInfo>, OperatorError> {
        let p = self.p();
        Ok(p.store
            .clients(&p.tenant)
            .await?
            .into_iter()
            .map(info)
            .collect())
    }

    /// Enables or disables a client. A disabled client is refused everywhere and its tokens are
    /// suspended until it is enabled again. A deleted client cannot be enabled (`NotFound`).
    pub async fn set_client_enabled(
        &self,
        client_id: &str,
        enabled: bool,
    ) -> Result<(), OperatorError> {
        let p = self.p();
        let (status, action) = if enabled {
            (ClientStatus::Active, "client_enabled")
        } else {
            (ClientStatus::Disabled, "client_disabled")
        };
        let event = operator_event(p, action, Some(&ClientId::new(client_id)));
        if p.store
            .set_client_status(&p.tenant, client_id, status, p.now(), &event)
            .await?
        {
            Ok(())
        } else {
            Err(OperatorError::NotFound(format!("client {client_id}")))
        }
    }

    /// Deletes a client for good (RFC 7592 §2.3): refused everywhere, every grant and token of
    /// it revoked, its id never issued again. Unlike disabling, this cannot be undone.
    pub async fn delete_client(&self, client_id: &str) -> Result<(), OperatorError> {
        let p = self.p();
        let event = operator_event(p, "client_deleted", Some(&ClientId::new(client_id)));
        if p.store
            .delete_client(&p.tenant, client_id, p.now(), &event)
            .await?
        {
            Ok(())
        } else {
            Err(OperatorError::NotFound(format!("client {client_id}")))
        }
    }

    /// Issues a new secret for a client authenticated by secret; the old one stops working at
    /// once. Returns the new secret — shown once, stored as a keyed digest (and sealed for
    /// client_secret_jwt clients, which need it to check HMACs).
    pub async fn rotate_client_secret(&self, client_id: &str) -> Result<String, OperatorError> {
        let p = self.p();
        let Some(client) = p.store.client(&p.tenant, client_id).await? else {
            return Err(OperatorError::NotFound(format!("client {client_id}")));
        };
        let method = client.metadata.token_endpoint_auth_method;
        if !method.uses_secret() {
            return Err(OperatorError::Refused(format!(
                "client {client_id} uses {}: it has no secret",
                method.as_str()
            )));
        }
        let secret = random_token();
        let digest = p.secrets.client_secret_digest(&secret);
        let sealed = (method == crate::model::client::AuthMethod::ClientSecretJwt)
            .then(|| registration::seal_secret(p, client_id, &secret));
        let event = operator_event(p, "client_secret_rotated", Some(&client.client_id));
        if p.store
            .set_client_secret(
                &p.tenant,
                client_id,
                &digest,
                sealed.as_deref(),
                p.now(),
                &event,
            )
            .await?
        {
            Ok(secret)
        } else {
            Err(OperatorError::NotFound(format!("client {client_id}")))
        }
    }

    /// Mints an initial access token for dynamic registration (RFC 7591 §3): usable `uses`
    /// times (any number when `None`) until `expires_in` seconds from now (no expiry when
    /// `None`). Returns its id and the token — shown once, stored only as a digest.
    pub async fn mint_initial_access_token(
        &self,
        uses: Option<u32>,
        expires_in: Option<i64>,
    ) -> Result<(crate::store::InitialAccessTokenRecord, String), OperatorError> {
        if uses == Some(0) || expires_in.is_some_and(|s| s <= 0) {
            return Err(OperatorError::Refused(
                "uses and expiry must be positive".into(),
            ));
        }
        let p = self.p();
        let now = p.now();
        let token = random_token();
        let record = crate::store::InitialAccessTokenRecord {
            id: crate::secrets::random_id(),
            tenant_id: p.tenant.clone(),
            uses_left: uses.map(i64::from),
            created_at: now,
            expires_at: expires_in.map(|s| now + s),
            revoked_at: None,
        };
        let event = operator_event(p, "initial_access_token_minted", None).as_action(
            "initial_access_token_minted",
            serde_json::json!({ "initial_access_token": record.id }),
        );
        p.store
            .insert_initial_access_token(&record, &crate::secrets::token_digest(&token), &event)
            .await?;
        Ok((record, token))
    }

    /// Revokes an initial access token by id.
    pub async fn revoke_initial_access_token(&self, id: &str) -> Result<(), OperatorError> {
        let p = self.p();
        let event = operator_event(p, "initial_access_token_revoked", None).as_action(
            "initial_access_token_revoked",
            serde_json::json!({ "initial_access_token": id }),
        );
        if p.store
            .revoke_initial_access_token(&p.tenant, id, p.now(), &event)
            .await?
        {
            Ok(())
        } else {
            Err(OperatorError::NotFound(format!(
                "initial access token {id}"
            )))
        }
    }

    /// Every initial access token (ids and limits, never the tokens).
    pub async fn initial_access_tokens(
        &self,
    ) -> Result<Vec<crate::store::InitialAccessTokenRecord>, OperatorError> {
        let p = self.p();
        Ok(p.store.initial_access_tokens(&p.tenant).await?)
    }

    /// The newest audit events (client authentication failures, JWKS fetch failures, …).
    pub async fn audit_events(
        &self,
        limit: i64,
    ) -> Result<Vec<crate::store::AuditEvent>, OperatorError> {
        let p = self.p();
        Ok(p.store
            .audit_events(&p.tenant, limit.clamp(1, 1000))
            .await?)
    }

    /// Calls to clients (CIBA notifications) in `status`, newest first: what, to whom, how many
    /// attempts and why the last one failed — never what they send.
    pub async fn outbox(
        &self,
        status: crate::store::OutboxStatus,
        limit: i64,
    ) -> Result<Vec<crate::store::OutboxEntry>, OperatorError> {
        let p = self.p();
        Ok(p.store
            .outbox_entries(&p.tenant, status, limit.clamp(1, 1000))
            .await?)
    }

    /// Sends a dead letter again: it is due at once, with a fresh count of attempts, and any
    /// process's worker delivers it.
    pub async fn retry_outbox(&self, id: &str) -> Result<(), OperatorError> {
        let p = self.p();
        let event = operator_event(p, "outbox_retried", None)
            .as_action("outbox_retried", serde_json::json!({ "outbox": id }));
        if p.store.retry_outbox(&p.tenant, id, p.now(), &event).await? {
            Ok(())
        } else {
            Err(OperatorError::NotFound(format!("dead letter {id}")))
        }
    }

    /// Client `jwks_uri`s whose last fetch by this process failed, with the error.
    pub fn jwks_fetch_failures(&self) -> Vec<(String, String)> {
        self.p().jwks.failures()
    }

    // ---- keys ----------------------------------------------------------------------------

    /// How long a retiring key stays published: the longest lifetime of a token it may have
    /// signed, plus the JWKS cache time.
    fn retire_grace(&self) -> i64 {
        let l = self.p().config.lifetimes;
        l.access_token.max(l.id_token) + PUBLISH_BEFORE_USE
    }

    /// Every enabled client whose registration does not meet the security profile it is held
    /// to (FAPI 2.0), with the reason: registered before the server's profile became stricter,
    /// they can no longer authenticate until their registration is updated.
    pub async fn profile_violations(&self) -> Result<Vec<(String, String)>, OperatorError> {
        let p = self.p();
        Ok(self
            .clients()
            .await?
            .into_iter()
            .filter(|c| c.enabled)
            .filter_map(|c| {
                crate::protocol::client::check_profile(&p.config, &c.metadata)
                    .err()
                    .map(|e| (c.client_id, e.description().to_owned()))
            })
            .collect())
    }

    /// Every key with its state now.
    pub async fn keys(&self) -> Result<Vec<KeyInfo>, OperatorError> {
        let p = self.p();
        let now = p.now();
        Ok(p.store
            .all_keys(&p.tenant)
            .await?
            .into_iter()
            .map(|k| key_info(k, now))
            .collect())
    }

    /// Generates an upcoming key for `alg` (a [`SigningAlg`](crate::jose::SigningAlg), or a [`KeyAlg::Decrypt`] kind of
    /// encryption key): published now, activatable after [`PUBLISH_BEFORE_USE`] seconds.
    pub async fn generate_key(&self, alg: impl Into<KeyAlg>) -> Result<KeyInfo, OperatorError> {
        let alg = alg.into();
        let p = self.p();
        let now = p.now();
        let record = new_key_record(&p.secrets, &p.tenant, alg, KeyStatus::Upcoming, now)?;
        p.store
            .insert_key(&record, &key_event(p, "key_generated", &record.kid))
            .await?;
        self.reload_keys().await?;
        Ok(key_info(record, now))
    }

    /// Makes an upcoming key sign for its alg; the previous active key starts retiring.
    pub async fn activate_key(&self, kid: &str) -> Result<(), OperatorError> {
        let p = self.p();
        let now = p.now();
        let done = p
            .store
            .activate_key(
                &p.tenant,
                kid,
                now,
                now - PUBLISH_BEFORE_USE,
                now + self.retire_grace(),
                &key_event(p, "key_activated", kid),
            )
            .await?;
        if !done {
            let key = self.keys().await?.into_iter().find(|k| k.kid == kid);
            return Err(match key {
                None => OperatorError::NotFound(format!("key {kid}")),
                Some(KeyInfo {
                    state: KeyState::Upcoming { activatable_at },
                    ..
                }) => OperatorError::Refused(format!(
                    "key {kid} must be published for {PUBLISH_BEFORE_USE} s before it signs; activate it after {activatable_at} (in {} s)",
                    activatable_at - now
                )),
                Some(k) => OperatorError::Refused(format!(
                    "key {kid} is {:?}; only upcoming keys can be activated",
                    k.state
                )),
            });
        }
        self.reload_keys().await?;
        Ok(())
    }

    /// Stops a key from signing; it stays in JWKS until the tokens it signed have expired.
    /// The last active key of an alg cannot retire: activate its replacement instead.
    pub async fn retire_key(&self, kid: &str) -> Result<(), OperatorError> {
        let p = self.p();
        let now = p.now();
        if !p
            .store
            .retire_key(
                &p.tenant,
                kid,
                now + self.retire_grace(),
                &key_event(p, "key_retired", kid),
            )
            .await?
        {
            let key = self.keys().await?.into_iter().find(|k| k.kid == kid);
            return Err(match key {
                None => OperatorError::NotFound(format!("key {kid}")),
                Some(KeyInfo {
                    state: KeyState::Active,
                    alg,
                    ..
                }) => OperatorError::Refused(format!(
                    "key {kid} is the only active {alg} key; generate and activate a replacement first"
                )),
                Some(k) => OperatorError::Refused(format!("key {kid} is already {:?}", k.state)),
            });
        }
        self.reload_keys().await?;
        Ok(())
    }

    /// Opens every published key with the secret key: proves the key-encryption key matches.
    pub async fn check_keys(
        &self,
    ) -> Result<Vec<(String, Result<KeyAlg, KeyError>)>, OperatorError> {
        let p = self.p();
        let records = p.store.published_keys(&p.tenant, p.now()).await?;
        Ok(records
            .into_iter()
            .map(|r| {
                (
                    r.kid.clone(),
                    open_key(&p.secrets, &r).map(|(k, _)| k.alg()),
                )
            })
            .collect())
    }

    /// Re-reads the published keys into this process's key ring.
    pub async fn reload_keys(&self) -> Result<(), OperatorError> {
        Ok(signing_keys::reload(self.p()).await?)
    }
}

fn key_info(k: KeyRecord, now: UnixTime) -> KeyInfo {
    let state = match (KeyStatus::parse(&k.status), k.retired_at) {
        (Some(KeyStatus::Upcoming), _) => KeyState::Upcoming {
            activatable_at: k.created_at + PUBLISH_BEFORE_USE,
        },
        (Some(KeyStatus::Active), _) => KeyState::Active,
        (Some(KeyStatus::Retiring), Some(until)) if until > now => KeyState::Retiring { until },
        _ => KeyState::Retired,
    };
    KeyInfo {
        kid: k.kid,
        alg: k.alg,
        state,
        created_at: k.created_at,
        activated_at: k.activated_at,
    }
}

/// A change made through the operator API.
fn operator_event(
    p: &Provider,
    action: &str,
    client_id: Option<&ClientId>,
) -> crate::store::AuditEvent {
    p.security_event(
        action,
        Actor::Operator,
        Outcome::Done,
        client_id,
        None,
        "operator API",
    )
}

/// A key lifecycle change made through the operator API.
fn key_event(p: &Provider, action: &str, kid: &str) -> crate::store::AuditEvent {
    operator_event(p, action, None).as_action(action, serde_json::json!({ "kid": kid }))
}
