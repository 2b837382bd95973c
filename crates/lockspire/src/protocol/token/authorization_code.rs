//! Authorization code grant (RFC 6749 §4.1.3, RFC 7636 §4.5–4.6, OIDC Core §3.1.3).
//!
//! The code is consumed by one conditional write. A second redemption finds it consumed: the
//! request fails and the grant — every token issued from the code — is revoked
//! (RFC 6749 §4.1.2, RFC 9700 §4.14.2).

use super::{Plan, TokenResponse, mint_ahead, narrow_resources, wants_refresh_token};
use crate::protocol::client_auth::AuthenticatedClient;
use crate::protocol::error::{ErrorCode, OAuthError};
use crate::protocol::params::Params;
use crate::protocol::pkce::{CodeChallenge, check_verifier};
use crate::protocol::provider::Provider;
use crate::secrets::token_key;
use crate::store::db::parse_json_list;
use crate::store::{Consumed, GrantRecord, TokenKind, TokenRecord};

fn invalid_grant(reason: &'static str) -> OAuthError {
    OAuthError::new(
        ErrorCode::InvalidGrant,
        "the authorization code is invalid, expired or already used",
    )
    .with_reason(reason)
}

pub(super) async fn exchange(
    p: &Provider,
    client: &AuthenticatedClient,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    let code = params.require("code")?;
    let verifier = params.require("code_verifier")?;
    check_verifier(verifier)?;
    let redirect_uri = params.get("redirect_uri")?;
    let digest = token_key(code);
    let now = p.now();
    let minted = mint_ahead(
        p,
        client,
        TokenKind::Code,
        &digest,
        now,
        |record| check(client, record, redirect_uri, verifier),
        |record, grant| plan(p, client, params, record, grant),
    )
    .await?;
    // The transaction's own time: minting ahead may have waited for the host.
    let now = p.now();
    let mut tx = p.store.begin().await?;
    let record = match tx.consume(TokenKind::Code, &digest, now).await? {
        Consumed::Now(record) => record,
        Consumed::Replayed(revoked) => {
            super::replayed(p, tx, client, "code_replayed", revoked).await?;
            return Err(invalid_grant(
                "code replayed: its grant and tokens are revoked",
            ));
        }
        Consumed::Invalid => return Err(invalid_grant("unknown or expired code")),
    };
    // Any mismatch below rolls back, leaving the code to its rightful client.
    check(client, &record, redirect_uri, verifier)?;
    let grant_id = record
        .grant_id
        .clone()
        .ok_or_else(|| OAuthError::internal("code without a grant"))?;
    let Some(grant) = tx.live_grant(&grant_id, now).await? else {
        return Err(invalid_grant("grant revoked or client disabled"));
    };
    let Some(minted) = minted else {
        // The peek saw a code that could not be redeemed; the transaction found one that can.
        // The plan's own refusal (a resource never granted) is the answer if there is one.
        plan(p, client, params, &record, &grant)?;
        return Err(invalid_grant("the code changed during the request"));
    };
    minted.commit(tx).await
}

/// The code's own rules: its client, the redirect URI of its authorization request (RFC 6749
/// §4.1.3) and its PKCE challenge (RFC 7636 §4.6).
fn check(
    client: &AuthenticatedClient,
    record: &TokenRecord,
    redirect_uri: Option<&str>,
    verifier: &str,
) -> Result<(), OAuthError> {
    if record.client_id != client.id() {
        return Err(invalid_grant("code was issued to another client"));
    }
    let bound_uri = record.redirect_uri.as_deref().unwrap_or_default();
    let uri_ok = match (bound_uri, redirect_uri) {
        ("", None) => true,
        ("", Some(given)) => {
            matches!(client.record().metadata.redirect_uris.as_slice(), [only] if only == given)
        }
        (bound, Some(given)) => bound == given,
        (_, None) => false,
    };
    if !uri_ok {
        return Err(invalid_grant(
            "redirect_uri differs from the authorization request",
        ));
    }
    let challenge = CodeChallenge::from_stored(record.code_challenge.clone().unwrap_or_default());
    if !challenge.verify(verifier) {
        return Err(invalid_grant("PKCE verifier does not match the challenge"));
    }
    Ok(())
}

/// What redeeming the code issues.
fn plan(
    p: &Provider,
    client: &AuthenticatedClient,
    params: &Params,
    record: &TokenRecord,
    grant: &GrantRecord,
) -> Result<Plan, OAuthError> {
    let scopes = record.scope_list();
    let granted_resources = parse_json_list(&grant.resources)?;
    let resources = narrow_resources(p, params, &granted_resources)?;
    // RFC 8707 §2.2: a token-time resource narrows this access token only; the refresh
    // token keeps everything granted so later requests can choose another resource.
    let refresh =
        wants_refresh_token(p, client, &scopes).then(|| (scopes.clone(), granted_resources));
    Ok(Plan {
        scopes,
        resources,
        refresh,
        nonce: record.nonce.clone(),
    })
}
