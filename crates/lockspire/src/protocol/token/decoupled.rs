//! The decoupled grants at the token endpoint: the device authorization grant (RFC 8628 §3.4,
//! §3.5) and backchannel authentication (CIBA Core §10.1, §11). The client polls with the code
//! it was given (`device_code`, `auth_req_id`) while the user decides elsewhere. Until then each
//! poll is answered `authorization_pending`, or `slow_down` when it came before the interval had
//! passed (the interval then grows by five seconds, remembered with the request); a denied
//! request is `access_denied`, an expired one `expired_token`. An approved request is redeemed
//! on the one path of single-use artifacts: once, and a second redemption revokes the grant with
//! every token it issued.

use std::marker::PhantomData;

use super::redeem::{Artifact, Plan, SingleUse, redeem_row};
use super::{TokenResponse, wants_refresh_token};
use crate::model::client::DeliveryMode;
use crate::protocol::ciba::stored::Stored;
use crate::protocol::client_auth::AuthenticatedClient;
use crate::protocol::error::{ErrorCode, OAuthError};
use crate::protocol::provider::Provider;
use crate::secrets::token_digest;
use crate::store::{
    DECOUPLED_SINGLE_USE, DecoupledKind, DecoupledRecord, DecoupledStatus, GrantRecord, Issued,
    Poll, SingleUseTable, Store, StoreError, UserGrant,
};

/// One decoupled flow, as its grant sees it.
pub(crate) trait Flow: Send + Sync + 'static {
    /// Its requests' kind.
    const KIND: DecoupledKind;
    /// What the audit log calls a second redemption.
    const REPLAY_ACTION: &'static str;
    /// The public description of `invalid_grant`.
    const INVALID: &'static str;
}

/// The device authorization grant.
pub(crate) struct Device;

impl Flow for Device {
    const KIND: DecoupledKind = DecoupledKind::Device;
    const REPLAY_ACTION: &'static str = "device_code_replayed";
    const INVALID: &'static str = "the device code is invalid, expired or already used";
}

/// Backchannel authentication.
pub(crate) struct Ciba;

impl Flow for Ciba {
    const KIND: DecoupledKind = DecoupledKind::Ciba;
    const REPLAY_ACTION: &'static str = "auth_req_id_replayed";
    const INVALID: &'static str = "the auth_req_id is invalid, expired or already used";
}

fn invalid_grant<F: Flow>(reason: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidGrant, F::INVALID).with_reason(reason)
}

/// A request of flow `F` the user approved: the only state in which its code redeems.
pub(crate) struct Approved<F> {
    issued: Issued,
    user: UserGrant,
    flow: PhantomData<F>,
}

impl<F: Flow> Approved<F> {
    pub(crate) fn from_record(record: DecoupledRecord) -> Option<Self> {
        match record.status {
            DecoupledStatus::Approved(user) if record.kind == F::KIND => Some(Self {
                issued: record.issued,
                user,
                flow: PhantomData,
            }),
            _ => None,
        }
    }
}

impl<F: Flow> SingleUse for Approved<F> {
    const TABLE: &'static SingleUseTable = &DECOUPLED_SINGLE_USE;
    const KIND: &'static str = F::KIND.as_str();
    fn key(presented: &str) -> String {
        token_digest(presented)
    }
    async fn peek(store: &Store, key: &str) -> Result<Option<Self>, StoreError> {
        Ok(store.decoupled(key).await?.and_then(Self::from_record))
    }
    fn issued(&self) -> &Issued {
        &self.issued
    }
    fn user(&self) -> &UserGrant {
        &self.user
    }
}

/// An approved request's code, presented by its client.
struct Redemption<F>(PhantomData<F>);

impl<F: Flow> Artifact for Redemption<F> {
    type Row = Approved<F>;
    const REPLAY_ACTION: &'static str = F::REPLAY_ACTION;

    fn invalid(reason: &'static str) -> OAuthError {
        invalid_grant::<F>(reason)
    }

    fn check(&self, client: &AuthenticatedClient, row: &Approved<F>) -> Result<(), OAuthError> {
        if &row.issued.client_id != client.id() {
            return Err(invalid_grant::<F>("issued to another client"));
        }
        Ok(())
    }

    fn plan(
        &self,
        p: &Provider,
        client: &AuthenticatedClient,
        _row: &Approved<F>,
        grant: &GrantRecord,
    ) -> Result<Plan, OAuthError> {
        plan(p, client, grant)
    }
}

/// What an approved request issues: what the user approved, as the grant holds it; an ID token
/// when `openid` was granted (without a nonce: these requests have none).
pub(crate) fn plan(
    p: &Provider,
    client: &AuthenticatedClient,
    grant: &GrantRecord,
) -> Result<Plan, OAuthError> {
    let scopes = grant.scopes.clone();
    let refresh =
        wants_refresh_token(p, client, &scopes).then(|| (scopes.clone(), grant.resources.clone()));
    Ok(Plan {
        scopes,
        resources: grant.resources.clone(),
        refresh,
        nonce: None,
        authorization_details: grant.details()?.authorization_details,
        auth_req_id: None,
    })
}

fn push_client() -> OAuthError {
    OAuthError::new(
        ErrorCode::UnauthorizedClient,
        "tokens of the push mode are sent to the client; it does not poll",
    )
}

/// A poll with `presented`, the code of a request of flow `F`.
pub(super) async fn exchange<F: Flow>(
    p: &Provider,
    client: &AuthenticatedClient,
    presented: &str,
) -> Result<TokenResponse, OAuthError> {
    let key = Approved::<F>::key(presented);
    let record = p
        .store
        .decoupled(&key)
        .await?
        .filter(|r| r.kind == F::KIND)
        .ok_or_else(|| invalid_grant::<F>("unknown"))?;
    // An approved request presented by another client goes on: the redemption path refuses it
    // and, if it had been redeemed, revokes what it issued, as it does for a code.
    let approved = matches!(record.status, DecoupledStatus::Approved(_));
    if &record.issued.client_id != client.id() && !approved {
        return Err(invalid_grant::<F>("issued to another client"));
    }
    // CIBA Core §10.1: tokens of the push mode are sent, never polled for. The mode the
    // request was made in decides, whatever the client registered since.
    if F::KIND == DecoupledKind::Ciba {
        match Stored::read(&record.request).map(|s| s.mode) {
            Some(DeliveryMode::Poll | DeliveryMode::Ping) => {}
            Some(DeliveryMode::Push) => return Err(push_client()),
            None => return Err(invalid_grant::<F>("the stored request is unreadable")),
        }
    }
    let now = p.now();
    if record.issued.consumed_at.is_none() && record.issued.expires_at <= now {
        return Err(OAuthError::poll(
            ErrorCode::ExpiredToken,
            "the request has expired; start again",
        ));
    }
    match record.status {
        DecoupledStatus::Approved(_) => {
            let approved = Approved::<F>::from_record(record)
                .ok_or_else(|| OAuthError::internal("an approved request changed kind"))?;
            redeem_row(p, client, &Redemption::<F>(PhantomData), approved).await
        }
        DecoupledStatus::Denied => Err(OAuthError::poll(
            ErrorCode::AccessDenied,
            "the user denied the request",
        )),
        DecoupledStatus::Pending => match p.store.poll_decoupled(&key, now).await? {
            Poll::TooEarly => Err(OAuthError::poll(
                ErrorCode::SlowDown,
                "polling too fast: wait 5 seconds longer between requests",
            )),
            // Decided or expired since it was read: the next poll says which.
            Poll::OnTime | Poll::Changed => Err(OAuthError::poll(
                ErrorCode::AuthorizationPending,
                "the user has not decided yet",
            )),
        },
    }
}
