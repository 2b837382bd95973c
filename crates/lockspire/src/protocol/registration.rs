//! Dynamic client registration (RFC 7591 §3) and the library API that shares its rules.

use serde::Serialize;
use serde_json::Value;

use super::client::validate_metadata;
use crate::config::{RegistrationPolicy, RegistrationRules};
use crate::model::client::{AuthMethod, ClientId, ClientMetadata};
use crate::model::scope::ScopeSet;
use crate::protocol::endpoints::Endpoint;
use crate::protocol::error::{Challenge, ErrorCode, OAuthError};
use crate::protocol::provider::Provider;
use crate::secrets::{constant_time_eq, new_client_id, random_token, token_digest};
use crate::store::{Actor, ClientRecord, ClientStatus, Outcome};

/// A registered client as the registration response returns it (RFC 7591 §3.2.1). The secret
/// appears here once and is never retrievable again.
#[derive(Clone, Serialize)]
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

/// The secret and the registration access token are credentials: never printed.
impl std::fmt::Debug for RegisteredClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "[redacted]");
        f.debug_struct("RegisteredClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &redacted(&self.client_secret))
            .field("client_id_issued_at", &self.client_id_issued_at)
            .field("client_secret_expires_at", &self.client_secret_expires_at)
            .field(
                "registration_access_token",
                &redacted(&self.registration_access_token),
            )
            .field("registration_client_uri", &self.registration_client_uri)
            .field("metadata", &self.metadata)
            .finish()
    }
}

fn invalid_token(description: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidToken, description).with_challenge(Challenge::Bearer)
}

fn bearer(authorization: Option<&str>) -> Option<&str> {
    authorization
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
}

fn object(body: Value) -> Result<serde_json::Map<String, Value>, OAuthError> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            "the request body must be a JSON object",
        )),
    }
}

/// The server's allow-lists for dynamic registration (RFC 7591 §2): a client cannot register
/// anything the operator did not permit.
fn check_rules(rules: &RegistrationRules, m: &ClientMetadata) -> Result<(), OAuthError> {
    let refuse = |what: String| Err(OAuthError::new(ErrorCode::InvalidClientMetadata, what));
    if let Some(allowed) = &rules.scopes {
        let requested = m.scope.as_deref().unwrap_or_default();
        if m.scope.is_none() {
            return refuse(
                "register a scope: this server limits the scopes dynamic clients may use".into(),
            );
        }
        if let Some(bad) = ScopeSet::from_stored(requested)
            .iter()
            .find(|s| !allowed.contains(s))
        {
            // Registered scopes were checked to be ones this server offers: naming it echoes
            // nothing of the request's own.
            return refuse(format!("scope {bad} is not open to dynamic registration"));
        }
    }
    if let Some(allowed) = &rules.grant_types
        && let Some(bad) = m.grant_types.iter().find(|g| !allowed.contains(g))
    {
        return refuse(format!(
            "grant type {} is not open to dynamic registration",
            bad.as_str()
        ));
    }
    if let Some(allowed) = &rules.auth_methods
        && !allowed.contains(&m.token_endpoint_auth_method)
    {
        return refuse(format!(
            "{} is not open to dynamic registration",
            m.token_endpoint_auth_method.as_str()
        ));
    }
    for uri in &m.redirect_uris {
        let Ok(url) = url::Url::parse(uri) else {
            continue;
        };
        let scheme_ok = rules
            .redirect_schemes
            .as_ref()
            .is_none_or(|s| s.iter().any(|a| a == url.scheme()));
        let host_ok = rules.redirect_hosts.as_ref().is_none_or(|hosts| {
            url.host_str()
                .is_some_and(|h| hosts.iter().any(|a| a.eq_ignore_ascii_case(h)))
        });
        if !scheme_ok || !host_ok {
            return Err(OAuthError::new(
                ErrorCode::InvalidRedirectUri,
                "a redirect URI is not open to dynamic registration",
            )
            .with_reason(format!("{uri} is not open to dynamic registration")));
        }
    }
    Ok(())
}

/// `POST /register` (RFC 7591 §3): the policy, the metadata rules, the allow-lists, then the
/// client. A minted initial access token is used in the transaction that stores the client, so
/// only a registration that succeeds uses it up, and a typo does not burn a single-use token.
pub(crate) async fn register(
    p: &Provider,
    authorization: Option<&str>,
    body: Value,
) -> Result<RegisteredClient, OAuthError> {
    let presented = match &p.config.registration {
        RegistrationPolicy::Disabled => {
            return Err(OAuthError::new(
                ErrorCode::AccessDenied,
                "registration is disabled",
            ));
        }
        RegistrationPolicy::Open => None,
        RegistrationPolicy::InitialAccessToken(_) => Some(
            bearer(authorization)
                .ok_or_else(|| invalid_token("a valid initial access token is required"))?,
        ),
    };
    let metadata = validate_metadata(&p.config, &object(body)?)?;
    check_rules(&p.config.registration_rules, &metadata)?;
    check_served_resources(&metadata, &[])?;
    if let (Some(token), RegistrationPolicy::InitialAccessToken(fixed)) =
        (presented, &p.config.registration)
    {
        // Compare digests so the comparison time does not depend on the token's length.
        let fixed_ok = fixed.as_deref().is_some_and(|f| {
            constant_time_eq(token_digest(token).as_bytes(), token_digest(f).as_bytes())
        });
        if !fixed_ok {
            let initial_access_token = Some(token_digest(token));
            let registrar = Registrar::Dynamic {
                initial_access_token: initial_access_token.as_deref(),
            };
            return insert(p, None, metadata, registrar).await;
        }
    }
    let registrar = Registrar::Dynamic {
        initial_access_token: None,
    };
    insert(p, None, metadata, registrar).await
}

/// Registers a client through the library or the `lockspire` command: the metadata rules apply,
/// the dynamic-registration allow-lists do not.
pub(crate) async fn create(
    p: &Provider,
    client_id: Option<&str>,
    body: Value,
) -> Result<RegisteredClient, OAuthError> {
    let metadata = validate_metadata(&p.config, &object(body)?)?;
    insert(p, client_id, metadata, Registrar::Operator).await
}

/// Replaces a client's metadata under the same rules as registration. Switching to a method
/// with another kind of credential is refused: the secret (or its absence) would not fit.
pub(crate) async fn update(
    p: &Provider,
    client_id: &str,
    body: Value,
) -> Result<ClientMetadata, OAuthError> {
    let metadata = validate_metadata(&p.config, &object(body)?)?;
    let current = p
        .store
        .client(&p.tenant, client_id)
        .await?
        .filter(|c| c.status != ClientStatus::Deleted)
        .ok_or_else(unknown_client)?;
    if !replace_metadata(p, &current, &metadata, None, Actor::Operator).await? {
        return Err(unknown_client());
    }
    Ok(metadata)
}

fn unknown_client() -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClient, "unknown client")
}

/// Replaces the metadata (and, given one, the registration access token's digest) and audits
/// the change, as `actor`. False when the client is gone (deleted meanwhile): nothing written.
async fn replace_metadata(
    p: &Provider,
    current: &ClientRecord,
    metadata: &ClientMetadata,
    registration_token_digest: Option<&str>,
    actor: Actor<'_>,
) -> Result<bool, OAuthError> {
    if credential_kind(current.metadata.token_endpoint_auth_method)
        != credential_kind(metadata.token_endpoint_auth_method)
    {
        return Err(OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            "a client cannot switch to an authentication method with another kind of credential",
        ));
    }
    let event = p.security_event(
        "client_updated",
        actor,
        Outcome::Done,
        Some(&current.client_id),
        None,
        "metadata replaced",
    );
    Ok(p.store
        .update_client_metadata(
            &p.tenant,
            &current.client_id,
            metadata,
            registration_token_digest,
            p.now(),
            &event,
        )
        .await?)
}

/// Who registers a client.
enum Registrar<'a> {
    /// The library or the `lockspire` command.
    Operator,
    /// `POST /register`: the client manages itself with a registration access token. With
    /// the digest of a minted initial access token, which the registration uses once.
    Dynamic {
        initial_access_token: Option<&'a str>,
    },
}

/// Stores a new client with its secret and registration access token (shown once), and audits
/// the registration, in one transaction.
async fn insert(
    p: &Provider,
    client_id: Option<&str>,
    metadata: ClientMetadata,
    registrar: Registrar<'_>,
) -> Result<RegisteredClient, OAuthError> {
    let (with_registration_token, initial_access_token, actor) = match registrar {
        Registrar::Operator => (false, None, Actor::Operator),
        Registrar::Dynamic {
            initial_access_token,
        } => (true, initial_access_token, Actor::Registrant),
    };
    let client_id = match client_id {
        Some(id)
            if !id.is_empty()
                && id.len() <= 255
                && id
                    .bytes()
                    .all(|b| (0x21..=0x7E).contains(&b) && b != b':' && b != b'/') =>
        {
            id.to_owned()
        }
        Some(_) => {
            return Err(OAuthError::invalid_request(
                "client_id must be 1 to 255 visible ASCII characters without ':' or '/'",
            ));
        }
        None => new_client_id(),
    };
    let method = metadata.token_endpoint_auth_method;
    let secret = method.uses_secret().then(random_token);
    // RFC 7592 §3: a dynamically registered client manages itself with this token.
    let registration_token = with_registration_token.then(random_token);
    let now = p.now();
    // Dynamically registered secrets may be given a lifetime by the operator's rules.
    let secret_expires_at = match (
        &secret,
        with_registration_token,
        p.config.registration_rules.client_secret_lifetime,
    ) {
        (Some(_), true, Some(lifetime)) => Some(now + lifetime),
        _ => None,
    };
    let record = ClientRecord {
        tenant_id: p.tenant.clone(),
        client_id: ClientId::new(client_id.clone()),
        secret_digest: secret.as_deref().map(|s| p.secrets.client_secret_digest(s)),
        sealed_secret: secret
            .as_deref()
            .filter(|_| method == AuthMethod::ClientSecretJwt)
            .map(|s| seal_secret(p, &client_id, s)),
        registration_token_digest: registration_token.as_deref().map(token_digest),
        secret_expires_at,
        metadata: metadata.clone(),
        status: ClientStatus::Active,
        created_at: now,
    };
    let event = p.security_event(
        "client_registered",
        actor,
        Outcome::Done,
        Some(&record.client_id),
        None,
        "registered",
    );
    let stored = p
        .store
        .insert_client(&record, initial_access_token, &event)
        .await
        .map_err(|e| match e {
            e if e.is_unique_violation() => {
                OAuthError::invalid_request("a client with this id already exists")
            }
            other => other.into(),
        })?;
    if !stored {
        return Err(invalid_token("a valid initial access token is required"));
    }
    Ok(RegisteredClient {
        registration_client_uri: registration_token
            .as_ref()
            .map(|_| client_uri(p, &client_id)),
        registration_access_token: registration_token,
        client_id,
        // RFC 7591 §3.2.1: 0 means the secret does not expire.
        client_secret_expires_at: secret.as_ref().map(|_| secret_expires_at.unwrap_or(0)),
        client_secret: secret,
        client_id_issued_at: now,
        metadata,
    })
}

fn client_uri(p: &Provider, client_id: &str) -> String {
    format!("{}/{client_id}", Endpoint::Register.url(&p.config.issuer))
}

/// RFC 7592 §2: the registration access token must be the client's. An unknown or disabled
/// client answers like a wrong token (401), so the endpoint reveals nothing.
async fn managed(
    p: &Provider,
    client_id: &str,
    authorization: Option<&str>,
) -> Result<ClientRecord, OAuthError> {
    let token = bearer(authorization)
        .ok_or_else(|| invalid_token("the registration access token is required"))?;
    let record = p.store.client_uncached(&p.tenant, client_id).await?;
    let ok = record.as_ref().is_some_and(|r| {
        r.status == ClientStatus::Active
            && r.registration_token_digest
                .as_deref()
                .is_some_and(|d| constant_time_eq(token_digest(token).as_bytes(), d.as_bytes()))
    });
    match record {
        Some(r) if ok => Ok(r),
        _ => Err(invalid_token("the registration access token is invalid")),
    }
}

/// `GET /register/{client_id}` (RFC 7592 §2.1): the stored registration, without secrets.
pub(crate) async fn read(
    p: &Provider,
    client_id: &str,
    authorization: Option<&str>,
) -> Result<RegisteredClient, OAuthError> {
    let r = managed(p, client_id, authorization).await?;
    Ok(RegisteredClient {
        registration_client_uri: Some(client_uri(p, &r.client_id)),
        registration_access_token: None,
        client_secret: None,
        client_secret_expires_at: r
            .secret_digest
            .as_ref()
            .map(|_| r.secret_expires_at.unwrap_or(0)),
        client_id_issued_at: r.created_at,
        client_id: r.client_id.into(),
        metadata: r.metadata,
    })
}

/// `PUT /register/{client_id}` (RFC 7592 §2.2): replaces the metadata under registration rules
/// and rotates the registration access token (the new one is in the response, once).
pub(crate) async fn replace(
    p: &Provider,
    client_id: &str,
    authorization: Option<&str>,
    body: Value,
) -> Result<RegisteredClient, OAuthError> {
    let current = managed(p, client_id, authorization).await?;
    let mut body = object(body)?;
    if body.get("client_id").and_then(Value::as_str) != Some(client_id) {
        return Err(OAuthError::invalid_request(
            "the body's client_id must be the client's",
        ));
    }
    if let Some(secret) = body.get("client_secret") {
        let matches = secret.as_str().is_some_and(|s| {
            current
                .secret_digest
                .as_deref()
                .is_some_and(|d| p.secrets.verify_client_secret(s, d))
        });
        if !matches {
            return Err(OAuthError::invalid_request("client_secret does not match"));
        }
    }
    for field in [
        "client_id",
        "client_secret",
        "registration_access_token",
        "registration_client_uri",
        "client_id_issued_at",
        "client_secret_expires_at",
    ] {
        body.remove(field);
    }
    let metadata = validate_metadata(&p.config, &body)?;
    check_rules(&p.config.registration_rules, &metadata)?;
    check_served_resources(&metadata, &current.metadata.resource_server_for)?;
    // RFC 7592 §2.2: the update rotates the registration access token.
    let token = random_token();
    let replaced = replace_metadata(
        p,
        &current,
        &metadata,
        Some(&token_digest(&token)),
        Actor::Client(&current.client_id),
    )
    .await?;
    if !replaced {
        // Deleted since the token was checked: the token no longer stands for a client.
        return Err(invalid_token("the registration access token is not valid"));
    }
    Ok(RegisteredClient {
        registration_client_uri: Some(client_uri(p, client_id)),
        registration_access_token: Some(token),
        client_secret: None,
        client_secret_expires_at: current
            .secret_digest
            .as_ref()
            .map(|_| current.secret_expires_at.unwrap_or(0)),
        client_id_issued_at: current.created_at,
        client_id: client_id.to_owned(),
        metadata,
    })
}

/// A client registering or updating itself cannot make itself the resource server of a
/// resource (and so read other clients' tokens for it): only the host or an operator assigns
/// `resource_server_for`. It may keep or drop what it was given, never add to it.
fn check_served_resources(
    metadata: &ClientMetadata,
    assigned: &[String],
) -> Result<(), OAuthError> {
    if metadata
        .resource_server_for
        .iter()
        .any(|r| !assigned.contains(r))
    {
        return Err(OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            "resource_server_for is assigned by the server's operator, not by registration",
        ));
    }
    Ok(())
}

/// `DELETE /register/{client_id}` (RFC 7592 §2.3): the client is deleted for good — refused
/// everywhere, every grant and token of it revoked, its registration access token void, and its
/// id never issued again (see [`crate::store::Store::delete_client`]).
pub(crate) async fn delete(
    p: &Provider,
    client_id: &str,
    authorization: Option<&str>,
) -> Result<(), OAuthError> {
    let current = managed(p, client_id, authorization).await?;
    let event = p.security_event(
        "client_deleted",
        Actor::Client(&current.client_id),
        Outcome::Done,
        Some(&current.client_id),
        None,
        "RFC 7592 delete",
    );
    p.store
        .delete_client(&p.tenant, client_id, p.now(), &event)
        .await?;
    Ok(())
}

/// Seals a client_secret_jwt secret: the server needs it in clear to check HMACs, so it is kept
/// only under AEAD bound to the client (OIDC Core §9 needs the secret itself), never for other methods.
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
        AuthMethod::TlsClientAuth | AuthMethod::SelfSignedTlsClientAuth => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registered_client_prints_without_its_credentials() {
        let client = RegisteredClient {
            client_id: "c1".into(),
            client_secret: Some("the-client-secret".into()),
            client_id_issued_at: 0,
            client_secret_expires_at: Some(0),
            registration_access_token: Some("the-registration-token".into()),
            registration_client_uri: None,
            metadata: crate::model::client::example_metadata(&["https://app.example/cb"]),
        };
        let printed = format!("{client:?}");
        assert!(printed.contains("c1"), "{printed}");
        assert!(!printed.contains("the-client-secret"), "{printed}");
        assert!(!printed.contains("the-registration-token"), "{printed}");
    }
}
