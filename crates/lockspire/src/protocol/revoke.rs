//! Token revocation (RFC 7009).

use super::client_auth::{self, AuthenticatedClient};
use super::params::Params;
use crate::mtls::ClientCertificate;
use crate::protocol::endpoints::Endpoint;
use crate::protocol::error::{ErrorCode, OAuthError};
use crate::protocol::provider::Provider;
use crate::secrets::token_key;
use crate::store::TokenRecord;

/// Authenticates the caller. RFC 7009 §2.1: confidential clients authenticate; public clients
/// identify themselves with `client_id`.
pub(crate) async fn caller(
    p: &Provider,
    authorization: Option<&str>,
    certificate: Option<ClientCertificate>,
    params: &Params,
) -> Result<AuthenticatedClient, OAuthError> {
    client_auth::authenticate(
        p,
        client_auth::presented(authorization, params)?,
        Endpoint::Revoke,
        certificate,
    )
    .await
}

/// Revokes `token`. Unknown and already invalid tokens succeed silently (§2.2). Revoking a
/// refresh token revokes its whole grant (§2.1: the server SHOULD also revoke the access tokens
/// of that grant); revoking an access token revokes only it.
pub(crate) async fn revoke(
    p: &Provider,
    client: &AuthenticatedClient,
    params: &Params,
) -> Result<(), OAuthError> {
    let token = params.require("token")?;
    // §2.1: the hint is advisory; an unknown hint value is refused by §2.2.1 only when the
    // server cannot revoke that type, and every type here can be looked up by digest.
    let Some(record) = p.store.any_token(&token_key(token)).await? else {
        return Ok(());
    };
    if &record.issued().client_id != client.id() {
        // §2.1: the token must have been issued to the caller.
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "the token was not issued to this client",
        ));
    }
    let now = p.now();
    match &record {
        TokenRecord::Refresh(refresh) => p.store.revoke_grant(&refresh.user.grant_id, now).await?,
        _ => p.store.revoke_token(&record.issued().digest, now).await?,
    }
    Ok(())
}
