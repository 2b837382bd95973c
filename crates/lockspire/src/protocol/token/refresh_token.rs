//! Refresh token grant (RFC 6749 §6) with rotation (RFC 9700 §4.14.2): every use consumes the
//! presented token and issues a new one; presenting a rotated token again revokes the whole
//! family — the grant, with every access and refresh token issued from it.

use super::{Plan, TokenResponse, mint_ahead, narrow_resources, narrow_scopes};
use crate::protocol::client_auth::AuthenticatedClient;
use crate::protocol::error::{ErrorCode, OAuthError};
use crate::protocol::params::Params;
use crate::protocol::provider::Provider;
use crate::secrets::token_key;
use crate::store::{Consumed, TokenKind, TokenRecord};

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
    let now = p.now();
    let minted = mint_ahead(
        p,
        client,
        TokenKind::Refresh,
        &digest,
        now,
        |record| check(client, record),
        |record, _| plan(p, params, record),
    )
    .await?;
    // The transaction's own time: minting ahead may have waited for the host.
    let now = p.now();
    let mut tx = p.store.begin().await?;
    let record = match tx.consume(TokenKind::Refresh, &digest, now).await? {
        Consumed::Now(record) => record,
        Consumed::Replayed(revoked) => {
            super::replayed(p, tx, client, "refresh_token_reused", revoked).await?;
            return Err(invalid_grant(
                "rotated refresh token reused: family revoked",
            ));
        }
        Consumed::Invalid => {
            return Err(invalid_grant("unknown, expired or revoked refresh token"));
        }
    };
    check(client, &record)?;
    let grant_id = record
        .grant_id
        .clone()
        .ok_or_else(|| OAuthError::internal("refresh token without a grant"))?;
    if tx.live_grant(&grant_id, now).await?.is_none() {
        return Err(invalid_grant("grant revoked or client disabled"));
    }
    let Some(minted) = minted else {
        // The peek saw a token that could not be redeemed; the transaction found one that
        // can. The plan's own refusal (a scope beyond the grant) is the answer if there is one.
        plan(p, params, &record)?;
        return Err(invalid_grant(
            "the refresh token changed during the request",
        ));
    };
    minted.commit(tx).await
}

/// The token's own rules: its client, and the certificate it is bound to (RFC 8705 §3).
fn check(client: &AuthenticatedClient, record: &TokenRecord) -> Result<(), OAuthError> {
    if record.client_id != client.id() {
        return Err(invalid_grant("refresh token was issued to another client"));
    }
    if let Some(bound) = &record.cnf_x5t
        && client.presented_thumbprint().as_deref() != Some(bound.as_str())
    {
        return Err(invalid_grant(
            "certificate-bound refresh token used without its certificate",
        ));
    }
    Ok(())
}

/// What a refresh issues: the scope and resources asked for, within what the token carries
/// (RFC 6749 §6, RFC 8707 §2.2); the new refresh token keeps the scope of the one it replaces.
/// A refreshed ID token carries no nonce (OIDC Core §12.2).
fn plan(p: &Provider, params: &Params, record: &TokenRecord) -> Result<Plan, OAuthError> {
    let granted_scopes = record.scope_list();
    let granted_resources = record.resource_list()?;
    Ok(Plan {
        scopes: narrow_scopes(params, &granted_scopes)?,
        resources: narrow_resources(p, params, &granted_resources)?,
        refresh: Some((granted_scopes, granted_resources)),
        nonce: None,
    })
}
