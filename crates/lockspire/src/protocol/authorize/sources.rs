//! Where the parameters of a request at `/authorize` come from: a pushed request its
//! `request_uri` names (RFC 9126 §4), a request object in `request` (RFC 9101 §6.3), or the
//! query itself. Whichever it is, [`super::validate`] then checks the same rules in the same
//! order.

use super::{AuthorizeError, RequestVia, VerifiedRedirect, check_client, check_redirect_uri};
use crate::protocol::error::{ErrorCode, OAuthError};
use crate::protocol::params::Params;
use crate::protocol::provider::Provider;
use crate::protocol::request_object;
use crate::secrets::token_digest;

/// RFC 9126 §2.2: a pushed request's `request_uri` is a URN of this form.
pub(crate) const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// The parameters of the request `query` arrived with at `/authorize`, and how they came.
pub(crate) async fn parameters(
    p: &Provider,
    query: Params,
) -> Result<(Params, RequestVia), AuthorizeError> {
    if let Some(pushed) = pushed_params(p, &query).await? {
        return Ok((pushed, RequestVia::Pushed));
    }
    let Some(request) = query.get("request")? else {
        return Ok((query, RequestVia::Query));
    };
    // Until the object is verified, its errors travel as the query's own would: shown while the
    // client or its redirect URI is not verified, then sent to the verified redirect URI.
    let client = check_client(p, &query).await?;
    let (uri, _) = check_redirect_uri(&client, &query, false)?;
    let profile = p.config.profile_for(&client.metadata);
    let (redirect, _) = VerifiedRedirect::new(&client, uri, &query, profile);
    let params = request_object::parameters(p, &client, request)
        .await
        .map_err(|e| AuthorizeError::Redirect(Box::new(redirect), e))?;
    Ok((params, RequestVia::Query))
}

/// At `/authorize`: the parameters of the pushed request a `request_uri` names, consumed now
/// (§4). Only `client_id` is read beside it, and must name the client that pushed it; every
/// other query parameter is ignored. `None` when the request names no pushed request: then it
/// is validated as it stands, and a `request_uri` of any other form is refused there as
/// `request_uri_not_supported` (RFC 9101 §5.2: request objects are not fetched by reference).
///
/// Errors are shown, never redirected: until the pushed request is found, no redirect URI is
/// known.
async fn pushed_params(p: &Provider, query: &Params) -> Result<Option<Params>, AuthorizeError> {
    let Some(handle) = query
        .get("request_uri")?
        .and_then(|uri| uri.strip_prefix(REQUEST_URI_PREFIX))
    else {
        return Ok(None);
    };
    let client_id = query
        .get("client_id")?
        .ok_or_else(|| OAuthError::invalid_request("client_id is required"))?;
    let stored = p
        .store
        .consume_pushed(&p.tenant, &token_digest(handle), client_id, p.now())
        .await
        .map_err(OAuthError::from)?
        .ok_or_else(|| {
            OAuthError::new(
                ErrorCode::InvalidRequestUri,
                "the request_uri is unknown, expired or already used",
            )
        })?;
    let pairs: Vec<(String, String)> = serde_json::from_str(&stored)
        .map_err(|e| OAuthError::internal(format!("stored pushed request: {e}")))?;
    Ok(Some(Params::from_pairs(pairs)))
}
