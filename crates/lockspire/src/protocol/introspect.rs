//! Token introspection (RFC 7662). The caller must authenticate as a confidential client and
//! sees the tokens issued to it, and, when it is registered as the resource server of some
//! resources (`resource_server_for`), the tokens whose audience includes one of them; anything
//! else is `{"active": false}` (§2.2, §4), which reveals nothing about other tokens.

use serde_json::{Map, Value, json};

use super::client_auth::{self, AuthenticatedClient};
use super::params::Params;
use crate::jose::sign_compact;
use crate::mtls::ClientCertificate;
use crate::protocol::endpoints::Endpoint;
use crate::protocol::error::{ErrorCode, OAuthError};
use crate::protocol::provider::Provider;
use crate::secrets::token_key;
use crate::store::TokenRecord;

/// Authenticates the caller: a confidential client (a public client cannot protect the
/// answers, RFC 7662 §2.1).
pub(crate) async fn caller(
    p: &Provider,
    authorization: Option<&str>,
    certificate: Option<ClientCertificate>,
    params: &Params,
) -> Result<AuthenticatedClient, OAuthError> {
    let client = client_auth::authenticate(
        p,
        client_auth::presented(authorization, params)?,
        Endpoint::Introspect,
        certificate,
    )
    .await?;
    if !client.is_confidential() {
        return Err(OAuthError::new(
            ErrorCode::InvalidClient,
            "introspection requires client authentication",
        )
        .with_reason("public client called introspection"));
    }
    Ok(client)
}

/// The introspection response for `token`.
pub(crate) async fn introspect(
    p: &Provider,
    client: &AuthenticatedClient,
    params: &Params,
) -> Result<Value, OAuthError> {
    let token = params.require("token")?;
    let inactive = json!({ "active": false });
    let Some(record) = p.store.active_token(&token_key(token), p.now()).await? else {
        return Ok(inactive);
    };
    let (token_type, jti, binding, act) = match &record {
        TokenRecord::Access(a) => (
            super::token::token_type(a.binding.as_ref()),
            a.jti.as_deref(),
            a.binding.as_ref(),
            a.act.as_ref(),
        ),
        TokenRecord::Refresh(r) => ("refresh_token", None, r.binding.as_ref(), None),
        TokenRecord::Code(_) => return Ok(inactive),
    };
    let issued = record.issued();
    // §4: a caller learns of its own tokens, and a resource server of the tokens for its
    // resources; anything else is inactive to it.
    let own = &issued.client_id == client.id();
    // A refresh token is for the authorization server only, never for a resource.
    let served = matches!(record, TokenRecord::Access(_))
        && client
            .record()
            .metadata
            .resource_server_for
            .iter()
            .any(|r| issued.resources.contains(r));
    if !own && !served {
        return Ok(inactive);
    }
    // The subject as the token's client knows it (pairwise or public), as its JWT would say.
    let token_client = if own {
        None
    } else {
        Some(
            p.store
                .client(&p.tenant, &issued.client_id)
                .await?
                .ok_or_else(|| OAuthError::internal("an active token's client is missing"))?,
        )
    };
    let token_metadata = token_client
        .as_ref()
        .map_or(&client.record().metadata, |c| &c.metadata);
    let mut out = Map::new();
    out.insert("active".into(), Value::Bool(true));
    out.insert(
        "client_id".into(),
        Value::String(issued.client_id.to_string()),
    );
    out.insert("iss".into(), Value::String(p.issuer().to_owned()));
    out.insert("exp".into(), Value::from(issued.expires_at));
    out.insert("iat".into(), Value::from(issued.created_at));
    if !issued.scopes.is_empty() {
        out.insert("scope".into(), Value::String(issued.scopes.to_string()));
    }
    if let Some(user) = record.user() {
        out.insert(
            "sub".into(),
            Value::String(p.subject_for(token_metadata, &user.subject)),
        );
    }
    if !issued.resources.is_empty() {
        out.insert("aud".into(), Value::from(issued.resources.clone()));
    }
    if let Some(details) = issued.authorization_details.to_member() {
        // RFC 9396 §9.2.
        out.insert("authorization_details".into(), details);
    }
    if let Some(binding) = binding {
        // RFC 8705 §3.2, RFC 9449 §6.2.
        out.insert("cnf".into(), binding.confirmation());
    }
    if let Some(act) = act {
        // RFC 8693 §4.1: who acts for the subject.
        out.insert("act".into(), act.clone());
    }
    out.insert("token_type".into(), Value::String(token_type.into()));
    if let Some(jti) = jti {
        out.insert("jti".into(), Value::String(jti.to_owned()));
    }
    Ok(Value::Object(out))
}

/// RFC 9701 §5: the introspection answer as a signed JWT for callers that ask for
/// `application/token-introspection+jwt`.
pub(crate) fn signed(
    p: &Provider,
    client: &AuthenticatedClient,
    answer: Value,
) -> Result<String, OAuthError> {
    let claims = json!({
        "iss": p.issuer(),
        "aud": client.id(),
        "iat": p.now(),
        "token_introspection": answer,
    });
    let keys = p.keys();
    let key = keys.active(client.record().metadata.introspection_alg())?;
    Ok(sign_compact(key, "token-introspection+jwt", &claims)?)
}
