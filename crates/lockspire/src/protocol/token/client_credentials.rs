//! Client credentials grant (RFC 6749 §4.4): a confidential client acting on its own behalf.

use super::request::CredentialsRequest;
use super::{AccessGrant, TokenResponse, mint_access_token};
use crate::model::authorization_details::AuthorizationDetails;
use crate::protocol::authorize::check_resources;
use crate::protocol::client_auth::AuthenticatedClient;
use crate::protocol::error::{ErrorCode, OAuthError};
use crate::protocol::provider::Provider;
use crate::protocol::scope::parse_scope;
use crate::secrets::Secret;

/// Scopes that describe a user and so make no sense without one.
const USER_SCOPES: &[&str] = &["openid", "offline_access"];

pub(super) async fn exchange(
    p: &Provider,
    client: &AuthenticatedClient,
    request: &CredentialsRequest<'_>,
) -> Result<TokenResponse, OAuthError> {
    // RFC 6749 §4.4: only confidential clients may use this grant.
    if !client.is_confidential() {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "public clients cannot use client_credentials",
        ));
    }
    let scopes = parse_scope(request.scope)?;
    if let Some(bad) = scopes.iter().find(|s| {
        USER_SCOPES.contains(&s.as_str()) || !p.config.allows_scope(&client.record().metadata, s)
    }) {
        return Err(crate::protocol::scope::scope_error(
            &p.config,
            ErrorCode::InvalidScope,
            bad,
            "is not allowed for this client",
        ));
    }
    let resources = check_resources(&p.config, request.resources.iter().copied())?;
    let grant = AccessGrant {
        client,
        user: None,
        scopes: &scopes,
        resources: &resources,
        authorization_details: &AuthorizationDetails::default(),
        act: None,
        not_after: None,
        binding: client.binding(),
        opaque: false,
    };
    let (access_token, record) = mint_access_token(p, &grant)?;
    // One write per issued token; no grant row is needed because no user consented.
    p.store.insert_token(&record).await?;
    Ok(TokenResponse {
        access_token: Secret::new(access_token),
        token_type: super::token_type(client.binding().as_ref()),
        expires_in: p.config.lifetimes.access_token,
        scope: scopes.join(" "),
        refresh_token: None,
        id_token: None,
        authorization_details: None,
        issued_token_type: None,
    })
}
