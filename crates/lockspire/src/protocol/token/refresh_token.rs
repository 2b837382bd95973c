//! Refresh token grant (RFC 6749 §6) with rotation (RFC 9700 §4.14.2): every use consumes the
//! presented token and issues a new one; presenting a rotated token again revokes the whole
//! family — the grant, with every access and refresh token issued from it.
//!
//! Under FAPI 2.0 (§5.3.2.1) refresh tokens are not rotated: the client is confidential and its
//! refresh token bound to it, and a rotation whose response is lost would strand the client.
//! The token stays usable until it expires or its grant is revoked.

use super::redeem::{Artifact, Plan, redeem, reuse};
use super::request::RefreshRequest;
use super::{TokenResponse, narrow_details, narrow_resources, narrow_scopes};
use crate::protocol::client_auth::AuthenticatedClient;
use crate::protocol::error::{ErrorCode, OAuthError};
use crate::protocol::provider::Provider;
use crate::store::Binding;
use crate::store::{GrantRecord, RefreshRecord};

fn invalid_grant(reason: &'static str) -> OAuthError {
    OAuthError::new(
        ErrorCode::InvalidGrant,
        "the refresh token is invalid, expired or revoked",
    )
    .with_reason(reason)
}

/// A refresh token presented at the token endpoint, with the request's narrowing.
struct Refresh<'a> {
    request: &'a RefreshRequest<'a>,
    /// Whether a new refresh token replaces the presented one.
    rotate: bool,
}

pub(super) async fn exchange(
    p: &Provider,
    client: &AuthenticatedClient,
    request: &RefreshRequest<'_>,
) -> Result<TokenResponse, OAuthError> {
    let rotate = client.profile().rotates_refresh_tokens();
    let refresh = Refresh { request, rotate };
    if rotate {
        redeem(p, client, &refresh, request.refresh_token).await
    } else {
        reuse(p, client, &refresh, request.refresh_token).await
    }
}

impl Artifact for Refresh<'_> {
    type Row = RefreshRecord;
    const REPLAY_ACTION: &'static str = "refresh_token_reused";

    fn invalid(reason: &'static str) -> OAuthError {
        invalid_grant(reason)
    }

    fn check(&self, client: &AuthenticatedClient, row: &RefreshRecord) -> Result<(), OAuthError> {
        check(client, row)
    }

    fn plan(
        &self,
        p: &Provider,
        _client: &AuthenticatedClient,
        row: &RefreshRecord,
        _grant: &GrantRecord,
    ) -> Result<Plan, OAuthError> {
        plan(p, self.request, row, self.rotate)
    }
}

/// The token's own rules: its client, and the certificate (RFC 8705 §3) or DPoP key (RFC 9449
/// §5) it is bound to.
fn check(client: &AuthenticatedClient, record: &RefreshRecord) -> Result<(), OAuthError> {
    if &record.issued.client_id != client.id() {
        return Err(invalid_grant("refresh token was issued to another client"));
    }
    // RFC 9449 §5: a public client's refresh token works only with a proof of its key.
    match &record.binding {
        Some(bound) if !client.holds(bound) => Err(invalid_grant(match bound {
            Binding::Certificate(_) => {
                "certificate-bound refresh token used without its certificate"
            }
            Binding::Dpop(_) => "DPoP-bound refresh token used without a proof of its key",
        })),
        _ => Ok(()),
    }
}

/// What a refresh issues: the scope and resources asked for, within what the token carries
/// (RFC 6749 §6, RFC 8707 §2.2); the new refresh token keeps the scope of the one it replaces.
/// A refreshed ID token carries no nonce (OIDC Core §12.2).
fn plan(
    p: &Provider,
    request: &RefreshRequest<'_>,
    record: &RefreshRecord,
    rotate: bool,
) -> Result<Plan, OAuthError> {
    let granted_scopes = record.issued.scopes.clone();
    let granted_resources = record.issued.resources.clone();
    Ok(Plan {
        scopes: narrow_scopes(request.scope, &granted_scopes)?,
        resources: narrow_resources(p, &request.resources, &granted_resources)?,
        refresh: rotate.then_some((granted_scopes, granted_resources)),
        nonce: None,
        authorization_details: narrow_details(
            p,
            request.authorization_details,
            &record.issued.authorization_details,
        )?,
        auth_req_id: None,
    })
}
