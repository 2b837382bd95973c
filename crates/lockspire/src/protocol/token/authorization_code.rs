//! Authorization code grant (RFC 6749 §4.1.3, RFC 7636 §4.5–4.6, OIDC Core §3.1.3).
//!
//! The code is redeemed on the one path of single-use artifacts (`redeem`): consumed by one
//! conditional write, and a second redemption revokes the grant with every token issued from
//! the code (RFC 6749 §4.1.2, RFC 9700 §4.14.2).

use super::redeem::{Artifact, Plan, redeem};
use super::request::CodeRequest;
use super::{TokenResponse, narrow_details, narrow_resources, wants_refresh_token};
use crate::protocol::client_auth::AuthenticatedClient;
use crate::protocol::error::{ErrorCode, OAuthError};
use crate::protocol::pkce::CodeChallenge;
use crate::protocol::provider::Provider;
use crate::store::{CodeRecord, GrantRecord};

fn invalid_grant(reason: &'static str) -> OAuthError {
    OAuthError::new(
        ErrorCode::InvalidGrant,
        "the authorization code is invalid, expired or already used",
    )
    .with_reason(reason)
}

/// A code presented at the token endpoint, with what the request says about it.
struct Code<'a> {
    request: &'a CodeRequest<'a>,
}

pub(super) async fn exchange(
    p: &Provider,
    client: &AuthenticatedClient,
    request: &CodeRequest<'_>,
) -> Result<TokenResponse, OAuthError> {
    redeem(p, client, &Code { request }, request.code).await
}

impl Artifact for Code<'_> {
    type Row = CodeRecord;
    const REPLAY_ACTION: &'static str = "code_replayed";

    fn invalid(reason: &'static str) -> OAuthError {
        invalid_grant(reason)
    }

    fn check(&self, client: &AuthenticatedClient, row: &CodeRecord) -> Result<(), OAuthError> {
        check(
            client,
            row,
            self.request.redirect_uri,
            self.request.code_verifier,
        )
    }

    fn plan(
        &self,
        p: &Provider,
        client: &AuthenticatedClient,
        row: &CodeRecord,
        grant: &GrantRecord,
    ) -> Result<Plan, OAuthError> {
        plan(p, client, self.request, row, grant)
    }
}

/// The code's own rules: its client, the redirect URI of its authorization request (RFC 6749
/// §4.1.3) and its PKCE challenge (RFC 7636 §4.6).
fn check(
    client: &AuthenticatedClient,
    record: &CodeRecord,
    redirect_uri: Option<&str>,
    verifier: &str,
) -> Result<(), OAuthError> {
    if &record.issued.client_id != client.id() {
        return Err(invalid_grant("code was issued to another client"));
    }
    let uri_ok = match (record.redirect_uri.as_deref(), redirect_uri) {
        (None, None) => true,
        (None, Some(given)) => {
            matches!(client.record().metadata.redirect_uris.as_slice(), [only] if only == given)
        }
        (Some(bound), Some(given)) => bound == given,
        (Some(_), None) => false,
    };
    if !uri_ok {
        return Err(invalid_grant(
            "redirect_uri differs from the authorization request",
        ));
    }
    let challenge = CodeChallenge::from_stored(record.code_challenge.clone());
    if !challenge.verify(verifier) {
        return Err(invalid_grant("PKCE verifier does not match the challenge"));
    }
    // RFC 9449 §10: a code bound by `dpop_jkt` is redeemed only with a proof of that key.
    if let Some(bound) = &record.dpop_jkt
        && client.presented_jkt() != Some(bound.as_str())
    {
        return Err(invalid_grant(
            "the code is bound to a DPoP key (dpop_jkt); the token request must prove it",
        ));
    }
    Ok(())
}

/// What redeeming the code issues.
fn plan(
    p: &Provider,
    client: &AuthenticatedClient,
    request: &CodeRequest<'_>,
    record: &CodeRecord,
    grant: &GrantRecord,
) -> Result<Plan, OAuthError> {
    let scopes = record.issued.scopes.clone();
    let granted_resources = grant.resources.clone();
    let resources = narrow_resources(p, &request.resources, &granted_resources)?;
    // RFC 8707 §2.2: a token-time resource narrows this access token only; the refresh
    // token keeps everything granted so later requests can choose another resource.
    let refresh =
        wants_refresh_token(p, client, &scopes).then(|| (scopes.clone(), granted_resources));
    Ok(Plan {
        scopes,
        resources,
        refresh,
        nonce: record.nonce.clone(),
        authorization_details: narrow_details(
            p,
            request.authorization_details,
            &record.issued.authorization_details,
        )?,
        auth_req_id: None,
    })
}
