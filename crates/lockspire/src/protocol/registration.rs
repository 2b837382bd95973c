//! Dynamic client registration (RFC 7591 §3) and the library API that shares its rules.

use serde::Serialize;
use serde_json::Value;

use super::client::{AuthMethod, ClientMetadata, validate_metadata};
use crate::Provider;
use crate::config::RegistrationPolicy;
use crate::error::{Challenge, ErrorCode, OAuthError};
use crate::secrets::{constant_time_eq, random_id, random_token, token_digest};
use crate::store::{ClientRecord, ClientStatus, StoreError};

/// A registered client as the registration response returns it (RFC 7591 §3.2.1). The secret
/// appears here once and is never retrievable again.
#[derive(Clone, Debug, Serialize)]
pub struct RegisteredClient {
    /// The new client id.
    pub client_id: String,
    /// The secret, for confidential clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// When the client id was issued.
    pub client_id_issued_at: i64,
    /// 0: the secret does not expire (RFC 7591 §3.2.1), present whenever a secret is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<i64>,
    /// RFC 7592 §3: the token a dynamically registered client manages itself with (shown once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_access_token: Option<String>,
    /// RFC 7592 §3: where the client reads, updates and deletes its registration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_client_uri: Option<String>,
    /// The stored metadata.
    #[serde(flatten)]
    pub metadata: ClientMetadata,
}

/// RFC 7591 §3: checks the registration policy against the request's Bearer token.
pub(crate) fn authorize_registration(
    p: &Provider,
    authorization: Option<&str>,
) -> Result<(), OAuthError> {
    match &p.config.registration {
        RegistrationPolicy::Open => Ok(()),
        RegistrationPolicy::Disabled => Err(OAuthError::new(
            ErrorCode::AccessDenied,
            "registration is disabled",
        )),
        RegistrationPolicy::InitialAccessToken(expected) => {
            let presented = authorization
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(str::trim);
            // Compare digests so the comparison time does not depend on the token's length.
            let ok = presented.is_some_and(|t| {
                constant_time_eq(
                    token_digest(t).as_bytes(),
                    token_digest(expected).as_bytes(),
                )
            });
            if ok {
                Ok(())
            } else {
                Err(OAuthError::new(
                    ErrorCode::InvalidToken,
                    "a valid initial access token is required",
                )
                .with_challenge(Challenge::Bearer))
            }
        }
    }
}

/// Replaces a client's metadata under the same rules as registration. Switching between a
/// public and a confidential method is refused: the secret (or its absence) would not match.
pub(crate) async fn update(
    p: &Provider,
    client_id: &str,
    body: Value,
) -> Result<ClientMetadata, OAuthError> {
    let Value::Object(body) = body else {
        return Err(OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            "the metadata must be a JSON object",
        ));
    };
    let metadata = validate_metadata(&p.config, &body)?;
    let current = p
        .store
        .client(&p.tenant, client_id)
        .await?
        .ok_or_else(|| OAuthError::new(ErrorCode::InvalidClient, "unknown client"))?;
    if credential_kind(current.metadata.token_endpoint_auth_method)
        != credential_kind(metadata.token_endpoint_auth_method)
    {
        return Err(OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            "a client cannot switch to an authentication method with another kind of credential",
        ));
    }
    p.store
        .update_client_metadata(&p.tenant, client_id, &metadata, p.now())
        .await?;
    Ok(metadata)
}

/// Registers a client from RFC 7591 metadata.
pub(crate) async fn create(
    p: &Provider,
    client_id: Option<&str>,
    body: Value,
    with_registration_token: bool,
) -> Result<RegisteredClient, OAuthError> {
    let Value::Object(body) = body else {
        return Err(OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            "the request body must be a JSON object",
        ));
    };
    let metadata = validate_metadata(&p.config, &body)?;
    let client_id = match client_id {
        Some(id)
            if !id.is_empty()
                && id.len() <= 255
                && id.bytes().all(|b| (0x21..=0x7E).contains(&b) && b != b':') =>
        {
            id.to_owned()
        }
        Some(_) => {
            return Err(OAuthError::invalid_request(
                "client_id must be 1 to 255 visible ASCII characters without ':'",
            ));
        }
        None => random_id(),
    };
    let method = metadata.token_endpoint_auth_method;
    let secret = method.uses_secret().then(random_token);
    // RFC 7592 §3: a dynamically registered client manages itself with this token.
    let registration_token = with_registration_token.then(random_token);
    let now = p.now();
    let record = ClientRecord {
        tenant_id: p.tenant.clone(),
        client_id: client_id.clone(),
        secret_digest: secret.as_deref().map(|s| p.secrets.client_secret_digest(s)),
        sealed_secret: secret
            .as_deref()
            .filter(|_| method == AuthMethod::ClientSecretJwt)
            .map(|s| seal_secret(p, &client_id, s)),
        registration_token_digest: registration_token.as_deref().map(token_digest),
        metadata: metadata.clone(),
        status: ClientStatus::Active,
        created_at: now,
    };
    p.store.insert_client(&record).await.map_err(|e| match e {
        StoreError::Database(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            OAuthError::invalid_request("a client with this id already exists")
        }
        other => other.into(),
    })?;
    Ok(RegisteredClient {
        registration_client_uri: registration_token
            .as_ref()
            .map(|_| p.config.issuer.endpoint(&format!("/register/{client_id}"))),
        registration_access_token: registration_token,
        client_id,
        client_secret_expires_at: secret.as_ref().map(|_| 0),
        client_secret: secret,
        client_id_issued_at: now,
        metadata,
    })
}

/// Seals a client_secret_jwt secret: the server needs it in clear to check HMACs, so it is kept
/// only under AEAD bound to the client (SURFACE S7), never for other methods.
pub(crate) fn seal_secret(p: &Provider, client_id: &str, secret: &str) -> String {
    p.secrets
        .seal(&secret_context(&p.tenant, client_id), secret.as_bytes())
}

/// Opens a sealed client secret.
pub(crate) fn open_secret(p: &Provider, client_id: &str, sealed: &str) -> Option<String> {
    let bytes = p
        .secrets
        .open(&secret_context(&p.tenant, client_id), sealed)
        .ok()?;
    String::from_utf8(bytes).ok()
}

fn secret_context(tenant: &str, client_id: &str) -> String {
    format!("lockspire/client-secret/{tenant}/{client_id}")
}

/// What kind of credential a method uses; a client may switch methods only within one kind.
fn credential_kind(m: AuthMethod) -> u8 {
    match m {
        AuthMethod::None => 0,
        AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost => 1,
        AuthMethod::ClientSecretJwt => 2,
        AuthMethod::PrivateKeyJwt => 3,
    }
}
