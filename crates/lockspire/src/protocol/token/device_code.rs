//! The device authorization grant at the token endpoint (RFC 8628 §3.4, §3.5): the device polls
//! with its device code. Until the user decides, each poll is answered `authorization_pending`,
//! or `slow_down` when it came before the interval had passed (the interval then grows by five
//! seconds, remembered with the request); a denied request is `access_denied`, an expired one
//! `expired_token`. An approved device code is redeemed on the one path of single-use
//! artifacts: once, and a second redemption revokes the grant with every token it issued.

use super::redeem::{Artifact, Plan, SingleUse, redeem_row};
use super::request::DeviceCodeRequest;
use super::{TokenResponse, wants_refresh_token};
use crate::protocol::client_auth::AuthenticatedClient;
use crate::protocol::error::{ErrorCode, OAuthError};
use crate::protocol::provider::Provider;
use crate::secrets::token_digest;
use crate::store::{
    DECOUPLED_SINGLE_USE, DecoupledKind, DecoupledStatus, GrantRecord, Issued, Poll,
    SingleUseTable, Store, StoreError, UserGrant,
};

fn invalid_grant(reason: &'static str) -> OAuthError {
    OAuthError::new(
        ErrorCode::InvalidGrant,
        "the device code is invalid, expired or already used",
    )
    .with_reason(reason)
}

/// A device request the user approved: the only state in which its code redeems.
pub(crate) struct ApprovedDevice {
    issued: Issued,
    user: UserGrant,
}

impl ApprovedDevice {
    fn from_record(record: crate::store::DecoupledRecord) -> Option<Self> {
        match (record.kind, record.status) {
            (DecoupledKind::Device, DecoupledStatus::Approved(user)) => Some(Self {
                issued: record.issued,
                user,
            }),
            _ => None,
        }
    }
}

impl SingleUse for ApprovedDevice {
    const TABLE: &'static SingleUseTable = &DECOUPLED_SINGLE_USE;
    const KIND: &'static str = DecoupledKind::Device.as_str();
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

/// An approved device code presented by its client.
struct DeviceCode;

impl Artifact for DeviceCode {
    type Row = ApprovedDevice;
    const REPLAY_ACTION: &'static str = "device_code_replayed";

    fn invalid(reason: &'static str) -> OAuthError {
        invalid_grant(reason)
    }

    fn check(&self, client: &AuthenticatedClient, row: &ApprovedDevice) -> Result<(), OAuthError> {
        if &row.issued.client_id != client.id() {
            return Err(invalid_grant("device code was issued to another client"));
        }
        Ok(())
    }

    /// What the user approved, as the grant holds it; an ID token when `openid` was granted
    /// (without a nonce: a device request has none).
    fn plan(
        &self,
        p: &Provider,
        client: &AuthenticatedClient,
        _row: &ApprovedDevice,
        grant: &GrantRecord,
    ) -> Result<Plan, OAuthError> {
        let scopes = grant.scopes.clone();
        let refresh = wants_refresh_token(p, client, &scopes)
            .then(|| (scopes.clone(), grant.resources.clone()));
        Ok(Plan {
            scopes,
            resources: grant.resources.clone(),
            refresh,
            nonce: None,
            authorization_details: grant.details()?.authorization_details,
        })
    }
}

pub(super) async fn exchange(
    p: &Provider,
    client: &AuthenticatedClient,
    request: &DeviceCodeRequest<'_>,
) -> Result<TokenResponse, OAuthError> {
    let key = ApprovedDevice::key(request.device_code);
    let record = p
        .store
        .decoupled(&key)
        .await?
        .filter(|r| r.kind == DecoupledKind::Device)
        .ok_or_else(|| invalid_grant("unknown device code"))?;
    if &record.issued.client_id != client.id() {
        return Err(invalid_grant("device code was issued to another client"));
    }
    let now = p.now();
    if record.issued.consumed_at.is_none() && record.issued.expires_at <= now {
        return Err(OAuthError::poll(
            ErrorCode::ExpiredToken,
            "the device code has expired; start again",
        ));
    }
    match record.status {
        DecoupledStatus::Approved(_) => {
            let approved = ApprovedDevice::from_record(record)
                .ok_or_else(|| OAuthError::internal("an approved device request changed kind"))?;
            redeem_row(p, client, &DeviceCode, approved).await
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
