//! [`Lockspire`], the provider a host builds once and mounts: its routers and configuration,
//! and the host's own administration through it — clients it creates in code, and the
//! applications a user has authorized ("connected apps"). Operator tooling has the fuller
//! [`Operator`] API; both apply the same rules.

use std::sync::Arc;

use crate::clock::UnixTime;
use crate::config::Config;
use crate::host::Subject;
use crate::model::client::{ClientId, ClientMetadata};
use crate::operator::{Operator, OperatorError};
use crate::protocol::error::OAuthError;
use crate::protocol::logout;
use crate::protocol::provider::Provider;
use crate::protocol::registration::{self, RegisteredClient};
use crate::store::{self, ClientStatus};
use crate::web;

/// An OAuth 2.0 / OpenID Connect provider. Cheap to clone; mount [`Lockspire::router`].
#[derive(Clone)]
pub struct Lockspire {
    pub(crate) inner: Arc<Provider>,
}

impl std::fmt::Debug for Lockspire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lockspire")
            .field("issuer", &self.inner.config.issuer)
            .finish_non_exhaustive()
    }
}

impl Lockspire {
    /// The protocol endpoints, to `merge` into the host's router (of any state type) at the
    /// issuer's path.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        web::router(self.inner.clone())
    }

    /// RFC 8414 §3.1: for an issuer with a path (`https://host/oauth`), the metadata lives at
    /// `/.well-known/oauth-authorization-server/oauth` on the host's root, outside the path the
    /// protocol router is nested under. Merge this router at the root; it is empty for issuers
    /// without a path, whose metadata [`Lockspire::router`] already serves.
    pub fn well_known_router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        web::well_known_router(self.inner.clone())
    }

    /// A protected resource of the host, verified in process (RFC 6750, RFC 9068, RFC 9449):
    /// `resource` is its identifier (RFC 8707), one of the builder's `resources`, and the
    /// audience of the tokens it accepts. Set its policy, then `build()`; see
    /// [`crate::resource`].
    pub fn resource_server(
        &self,
        resource: &str,
    ) -> Result<
        crate::resource::ResourceServerBuilder<crate::resource::InProcess>,
        crate::resource::ResourceServerError,
    > {
        crate::resource::ResourceServerBuilder::in_process(self.inner.clone(), resource)
    }

    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Operator actions: clients and signing keys.
    pub fn operator(&self) -> Operator {
        Operator {
            inner: self.inner.clone(),
        }
    }

    /// Registers a client through the library API, applying the same metadata rules as
    /// RFC 7591 registration. `client_id` may be chosen by the host (e.g. a well-known demo
    /// client); otherwise one is generated. The secret, for confidential clients, is returned
    /// once and stored only as a keyed digest.
    pub async fn create_client(
        &self,
        client_id: Option<&str>,
        metadata: serde_json::Value,
    ) -> Result<RegisteredClient, OAuthError> {
        registration::create(&self.inner, client_id, metadata).await
    }

    /// Replaces a client's metadata, with the same validation as registration.
    pub async fn update_client(
        &self,
        client_id: &str,
        metadata: serde_json::Value,
    ) -> Result<ClientMetadata, OAuthError> {
        registration::update(&self.inner, client_id, metadata).await
    }

    /// A client's registered metadata and status, if it exists.
    pub async fn client(
        &self,
        client_id: &str,
    ) -> Result<Option<(ClientMetadata, bool)>, OAuthError> {
        Ok(self
            .inner
            .store
            .client(&self.inner.tenant, client_id)
            .await?
            .map(|c| (c.metadata, c.status == ClientStatus::Active)))
    }

    /// Disables a client: it is refused at every endpoint and its tokens are suspended. This is
    /// reversible: [`Lockspire::enable_client`] makes the client and its unexpired, unrevoked
    /// tokens work again. To end a client for good, [`Lockspire::delete_client`].
    pub async fn disable_client(&self, client_id: &str) -> Result<bool, OAuthError> {
        found(self.operator().set_client_enabled(client_id, false).await)
    }

    /// The applications `subject` has authorized, with what each may do, for a host's
    /// "connected apps" page.
    pub async fn authorizations(
        &self,
        subject: &Subject,
    ) -> Result<Vec<Authorization>, OAuthError> {
        let p = &self.inner;
        let mut out = Vec::new();
        for (client_id, consent, updated_at) in
            p.store.consents_of(&p.tenant, subject.as_str()).await?
        {
            let client = p.store.client(&p.tenant, &client_id).await?;
            out.push(Authorization {
                client_name: client.and_then(|c| c.metadata.client_name),
                client_id,
                scopes: consent.scopes.into_vec(),
                resources: consent.resources,
                authorization_details: consent.authorization_details,
                updated_at,
            });
        }
        Ok(out)
    }

    /// Withdraws `subject`'s authorization of `client_id`: the standing consent goes, and every
    /// grant between them is revoked with all its codes and tokens.
    pub async fn revoke_authorization(
        &self,
        subject: &Subject,
        client_id: &str,
    ) -> Result<bool, OAuthError> {
        let p = &self.inner;
        let event = p.security_event(
            "consent_revoked",
            store::Actor::User(subject.as_str()),
            store::Outcome::Done,
            Some(&ClientId::new(client_id)),
            Some(subject.as_str()),
            "the user withdrew the authorization",
        );
        Ok(p.store
            .revoke_authorization(&p.tenant, subject.as_str(), client_id, p.now(), &event)
            .await?)
    }

    /// Deletes expired codes, tokens, interactions and grants, and audit events older than the
    /// retention period ([`Builder::audit_retention`](crate::Builder::audit_retention)), now.
    /// [`Builder::build`](crate::Builder::build) also starts a
    /// background task that does this every ten minutes.
    pub async fn prune_expired(&self) -> Result<u64, OAuthError> {
        Ok(self.inner.prune().await?)
    }

    /// The backchannel authentication requests (CIBA Core) waiting for `subject`, oldest
    /// first: what the host's authentication device shows, each with its client, scopes and
    /// `binding_message`.
    pub async fn backchannel_requests(
        &self,
        subject: &Subject,
    ) -> Result<Vec<crate::host::BackchannelRequest>, OAuthError> {
        crate::protocol::ciba::pending(&self.inner, subject).await
    }

    /// The user approved backchannel request `id` (a [`crate::BackchannelRequest::id`]) on
    /// their authentication device, authenticated as `approval` says: the grant is recorded
    /// like a consent, and the client is told as its delivery mode says — it may poll, it is
    /// pinged, or its tokens are pushed to it (CIBA Core §10). False when there is no such
    /// request waiting for this user (decided already, expired, or another user's).
    pub async fn approve_backchannel(
        &self,
        id: &str,
        approval: &crate::host::BackchannelApproval,
    ) -> Result<bool, OAuthError> {
        crate::protocol::ciba::approve(&self.inner, id, approval).await
    }

    /// The user denied backchannel request `id`: the client gets `access_denied` (CIBA Core
    /// §11, §12). False when there is no such request waiting for `subject`.
    pub async fn deny_backchannel(&self, id: &str, subject: &Subject) -> Result<bool, OAuthError> {
        crate::protocol::ciba::deny(&self.inner, id, subject).await
    }

    /// Deletes a client for good (RFC 7592 §2.3): refused everywhere, every grant and token of
    /// it revoked, and its id never issued again. False when there was no such client.
    pub async fn delete_client(&self, client_id: &str) -> Result<bool, OAuthError> {
        found(self.operator().delete_client(client_id).await)
    }

    /// Ends the provider session of `subject` in the browser that sent `headers` (its cookies),
    /// for the host's own sign-out: the session's tokens are revoked as at the end-session
    /// endpoint, and every client of the session with a `backchannel_logout_uri` is sent a
    /// logout token (OpenID Connect Back-Channel Logout 1.0 §2.5). Call it from your sign-out
    /// handler, with the subject your [`crate::AccountResolver`] reports, before ending your
    /// session, and add the headers it returns to your response: they replace the browser's
    /// Lockspire cookie, so that a later sign-in starts a new session. Front-channel logout needs
    /// the browser itself: send it to the `end_session_endpoint` instead when clients rely on
    /// it. Nothing happens for a browser without a session.
    pub async fn end_session(
        &self,
        headers: &http::HeaderMap,
        subject: &Subject,
    ) -> Result<http::HeaderMap, OAuthError> {
        let Some(cookie) = web::browser_cookie(headers) else {
            return Ok(http::HeaderMap::new());
        };
        let op_session = logout::op_session(&self.inner, &cookie, subject);
        logout::end(&self.inner, &op_session).await?;
        Ok(web::new_browser_cookie(&self.inner))
    }

    /// Re-enables a disabled client, and with it its suspended tokens. A deleted client stays
    /// deleted (false).
    pub async fn enable_client(&self, client_id: &str) -> Result<bool, OAuthError> {
        found(self.operator().set_client_enabled(client_id, true).await)
    }
}

/// An operator result as the facade reports it: false for a client that does not exist.
fn found(result: Result<(), OperatorError>) -> Result<bool, OAuthError> {
    match result {
        Ok(()) => Ok(true),
        Err(OperatorError::NotFound(_)) => Ok(false),
        Err(OperatorError::Invalid(e)) => Err(e),
        Err(e) => Err(OAuthError::internal(e.to_string())),
    }
}

/// An application a user has authorized, as a "connected apps" page lists it.
#[derive(Clone, Debug)]
pub struct Authorization {
    /// The client.
    pub client_id: String,
    /// Its registered name.
    pub client_name: Option<String>,
    /// Scopes the user consented to.
    pub scopes: Vec<String>,
    /// Resources the user consented to (RFC 8707).
    pub resources: Vec<String>,
    /// Authorization details the user consented to (RFC 9396).
    pub authorization_details: crate::model::authorization_details::AuthorizationDetails,
    /// When consent was last given.
    pub updated_at: UnixTime,
}
