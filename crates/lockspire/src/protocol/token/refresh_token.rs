//! Refresh token grant (RFC 6749 §6) with rotation (RFC 9700 §4.14.2): every use consumes the
//! presented token and issues a new one; presenting a rotated token again revokes the whole
//! family — the grant, with every access and refresh token issued from it.

use super::{
    GrantIssue, TokenResponse, issue_from_grant, narrow_resources, narrow_scopes, prefetch_claims,
};
use crate::Provider;
use crate::error::{ErrorCode, OAuthError};
use crate::protocol::client_auth::AuthenticatedClient;
use crate::protocol::params::Params;
use crate::secrets::token_key;
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
    let digest = token_key(presented);
    let claims = prefetch_claims(p, client, &digest, |r| {
        narrow_scopes(params, &r.scope_list())
    })
    .await?;
    let now = p.now();
    let mut tx = p.store.begin().await?;
    let record = match tx.consume(TokenKind::Refresh, &digest, now).await? {
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
    // RFC 8705 §3: a refresh token bound to a certificate needs that certificate again.
    if let Some(bound) = &record.cnf_x5t
        && client.presented_thumbprint().as_deref() != Some(bound.as_str())
    {
        return Err(invalid_grant(
            "certificate-bound refresh token used without its certificate",
        ));
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
    let resources = narrow_resources(p, params, &granted_resources)?;
    issue_from_grant(
        p,
        tx,
        GrantIssue {
            client,
            grant: &grant,
            scopes: &scopes,
            resources: &resources,
            // RFC 6749 §6: the new refresh token keeps the scope of the one it replaces.
            refresh: Some((&granted_scopes, &granted_resources)),
            // OIDC Core §12.2: a refreshed ID token carries no nonce.
            nonce: None,
            claims: claims.as_ref(),
        },
    )
    .await
}
