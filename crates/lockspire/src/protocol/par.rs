//! Pushed authorization requests (RFC 9126). A client sends its authorization parameters
//! straight to the server, authenticated as at the token endpoint, and gets back a short-lived
//! `request_uri` to send the browser with instead: the parameters never travel through the
//! browser, and they are checked before the user sees anything.
//!
//! The push is validated exactly as `/authorize` would validate it, errors answered as JSON
//! (§2.3). The `request_uri` is a random value stored only as a digest, usable once (one
//! conditional write, whichever process serves the browser), by the client that pushed it,
//! until it expires (§2.2, §4).

use serde::Serialize;

use super::authorize::{self, AuthorizeError, REQUEST_URI_PREFIX, RequestVia};
use super::client_auth::{self, AuthenticatedClient};
use super::endpoints::Endpoint;
use super::error::{ErrorCode, OAuthError};
use super::params::Params;
use super::provider::Provider;
use super::request_object;
use crate::mtls::ClientCertificate;
use crate::secrets::{random_token, token_digest};
use crate::store::PushedRecord;

/// Parameters that authenticate the client: used at the push, never stored with it.
const CLIENT_AUTHENTICATION: [&str; 3] =
    ["client_secret", "client_assertion", "client_assertion_type"];

/// The `201 Created` answer to a push (RFC 9126 §2.2).
#[derive(Debug, Serialize)]
pub(crate) struct Pushed {
    pub(crate) request_uri: String,
    pub(crate) expires_in: i64,
}

/// `POST /par`: authenticates the client, validates its authorization request as `/authorize`
/// would, and stores it.
pub(crate) async fn push(
    p: &Provider,
    authorization: Option<&str>,
    certificate: Option<ClientCertificate>,
    dpop: Option<&str>,
    params: &Params,
) -> Result<Pushed, OAuthError> {
    let client = client_auth::authenticate(
        p,
        client_auth::presented(authorization, params)?,
        Endpoint::PushedAuthorization,
        certificate,
    )
    .await?;
    // §2.1: a push cannot refer to another pushed request.
    if params.get("request_uri")?.is_some() {
        return Err(OAuthError::invalid_request(
            "request_uri cannot be pushed: push the authorization parameters themselves",
        ));
    }
    let mut pushed = authorization_params(&client, params)?;
    // §3: a request object inside the push is the request; the push's other parameters are
    // not used.
    match pushed.get("request")? {
        Some(request) => pushed = request_object::parameters(p, client.record(), request).await?,
        // FAPI 2.0 Message Signing §5.3.1: every request is signed.
        None if client.profile().signs_messages() => {
            return Err(OAuthError::invalid_request(
                "a signed request object (RFC 9101) is required in pushed requests under FAPI 2.0 Message Signing",
            ));
        }
        None => {}
    }
    // RFC 9449 §10.1: a proof with the push binds the code to its key, as `dpop_jkt` would.
    if let Some(proof) = dpop {
        let uris = Endpoint::PushedAuthorization.urls(&p.config);
        let request = super::dpop::Request {
            method: "POST",
            uris: &uris,
            access_token: None,
            nonces: p.required_dpop_nonces(Some(&client.record().metadata)),
            profile: client.profile(),
        };
        let proof = super::dpop::verify(p, proof, &request).await?;
        match pushed.get("dpop_jkt")? {
            Some(named) if named != proof.jkt => {
                return Err(OAuthError::new(
                    ErrorCode::InvalidDpopProof,
                    "dpop_jkt names another key than the DPoP proof's",
                ));
            }
            Some(_) => {}
            None => {
                let mut pairs = pushed.pairs().to_vec();
                pairs.push(("dpop_jkt".into(), proof.jkt));
                pushed = Params::from_pairs(pairs);
            }
        }
    }
    authorize::validate(p, &pushed, RequestVia::Push)
        .await
        .map_err(|e| match e {
            AuthorizeError::Direct(e) | AuthorizeError::Redirect(_, e) => e,
        })?;
    let handle = random_token();
    let now = p.now();
    let lifetime = p.config.pushed_lifetime_for(&client.record().metadata);
    let stored = serde_json::to_string(pushed.pairs())
        .map_err(|e| OAuthError::internal(format!("pushed parameters: {e}")))?;
    p.store
        .insert_pushed(&PushedRecord {
            digest: token_digest(&handle),
            tenant_id: p.tenant.clone(),
            client_id: client.id().clone(),
            params: stored,
            created_at: now,
            expires_at: now + lifetime,
        })
        .await?;
    Ok(Pushed {
        request_uri: format!("{REQUEST_URI_PREFIX}{handle}"),
        expires_in: lifetime,
    })
}

/// The pushed parameters as they are kept: the client's authentication left out, and
/// `client_id` that of the authenticated client (§2.1: one in the body must name it).
fn authorization_params(
    client: &AuthenticatedClient,
    params: &Params,
) -> Result<Params, OAuthError> {
    match params.get("client_id")? {
        Some(named) if named != client.id().as_str() => {
            return Err(OAuthError::invalid_request(
                "client_id differs from the authenticated client",
            ));
        }
        _ => {}
    }
    let mut pairs: Vec<(String, String)> = params
        .pairs()
        .iter()
        .filter(|(name, _)| name != "client_id" && !CLIENT_AUTHENTICATION.contains(&name.as_str()))
        .cloned()
        .collect();
    pairs.insert(0, ("client_id".into(), client.id().to_string()));
    Ok(Params::from_pairs(pairs))
}
