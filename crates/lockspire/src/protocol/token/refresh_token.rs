//! Refresh token grant (RFC 6749 §6) with rotation (RFC 9700 §4.14.2): every use consumes the
//! presented token and issues a new one; presenting a rotated token again revokes the whole
//! family — the grant, with every access and refresh token issued from it.

use super::{
    AccessGrant, TokenResponse, mint_access_token, mint_refresh_token, narrow_resources,
    narrow_scopes,
};
use crate::Provider;
use crate::error::{ErrorCode, OAuthError};
use crate::protocol::client_auth::AuthenticatedClient;
use crate::protocol::id_token::{self, IdTokenInput};
use crate::protocol::params::Params;
use crate::secrets::token_digest;
use crate::store::{Consumed, TokenKind};

fn invalid_grant(reason: &'static str) -> OAuthError {
    OAuthError::new(
        ErrorCode::InvalidGrant,
        "the refresh token is invalid, expired or revoked",
    )
    .with_reason(reason)
}

pub(super) async fn exchange(
    p: &Provider,
    client: &AuthenticatedClient,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    let presented = params.require("refresh_token")?;
    let now = p.now();
    let mut tx = p.store.begin().await?;
    let record = match tx
        .consume(TokenKind::Refresh, &token_digest(presented), now)
        .await?
    {
        Consumed::Now(record) => record,
        Consumed::Replayed => {
            tx.commit().await?;
            return Err(invalid_grant(
                "rotated refresh token reused: family revoked",
            ));
        }
        Consumed::Invalid => {
            return Err(invalid_grant("unknown, expired or revoked refresh token"));
        }
    };
    if record.client_id != client.id() {
        return Err(invalid_grant("refresh token was issued to another client"));
    }
    let grant_id = record
        .grant_id
        .clone()
        .ok_or_else(|| OAuthError::internal("refresh token without a grant"))?;
    let Some(grant) = tx.live_grant(&grant_id, now).await? else {
        return Err(invalid_grant("grant revoked or client disabled"));
    };
    let granted_scopes = record.scope_list();
    let granted_resources = record.resource_list()?;
    let scopes = narrow_scopes(params, &granted_scopes)?;
    let resources = narrow_resources(params, &granted_resources)?;
    let subject = grant.subject.as_str();
    let access = AccessGrant {
        client,
        grant_id: Some(&grant_id),
        subject: Some(subject),
        scopes: &scopes,
        resources: &resources,
    };
    let (access_token, access_record) = mint_access_token(p, &access)?;
    tx.insert_token(&access_record).await?;
    // RFC 6749 §6: the new refresh token keeps the scope of the one it replaces.
    let family = AccessGrant {
        scopes: &granted_scopes,
        resources: &granted_resources,
        ..access
    };
    let (refresh_token, refresh_record) = mint_refresh_token(p, &family, grant.expires_at);
    tx.insert_token(&refresh_record).await?;
    let id_token = if scopes.iter().any(|s| s == "openid") {
        let details = grant.details()?;
        Some(
            id_token::issue(
                p,
                IdTokenInput {
                    client: client.record(),
                    subject,
                    auth_time: grant.auth_time,
                    // OIDC Core §12.2: a refreshed ID token carries no nonce.
                    nonce: None,
                    access_token: Some(&access_token),
                    scopes: &scopes,
                    details: &details,
                },
            )
            .await?,
        )
    } else {
        None
    };
    tx.commit().await?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: p.config.lifetimes.access_token,
        scope: scopes.join(" "),
        refresh_token: Some(refresh_token),
        id_token,
    })
}
