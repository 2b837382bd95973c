//! The token endpoint (RFC 6749 §3.2, §5). One file per grant; each has the same shape: it
//! receives the authenticated client and the parameters and returns a [`TokenResponse`].

mod authorization_code;
mod client_credentials;
pub(crate) mod decoupled;
pub(crate) mod redeem;
mod refresh_token;
pub(crate) mod request;
mod token_exchange;

use crate::store::Binding;
use serde::Serialize;
use serde_json::Value;

use self::request::TokenRequest;
use super::client_auth::{self, AuthenticatedClient};
use super::params::Params;
use crate::config::AccessTokenFormat;
use crate::jose::sign_compact;
use crate::model::authorization_details::AuthorizationDetails;
use crate::model::client::GrantType;
use crate::model::scope::ScopeSet;
use crate::mtls::ClientCertificate;
use crate::protocol::endpoints::Endpoint;
use crate::protocol::error::{ErrorCode, OAuthError};
use crate::protocol::provider::Provider;
use crate::secrets::{Secret, random_id, time_ordered_token, token_key};
use crate::store::{AccessRecord, Issued, RefreshRecord, TokenRecord, UserGrant};

/// A successful token response (RFC 6749 §5.1; OIDC Core §3.1.3.3). The web layer always sends
/// it with `Cache-Control: no-store`.
#[derive(Debug, Serialize)]
pub(crate) struct TokenResponse {
    pub(crate) access_token: Secret,
    pub(crate) token_type: &'static str,
    pub(crate) expires_in: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) refresh_token: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) id_token: Option<Secret>,
    /// RFC 9396 §7: what the access token is authorized for beyond scopes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) authorization_details: Option<Value>,
    /// RFC 8693 §2.2.1: the type of the token a token exchange issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) issued_token_type: Option<&'static str>,
}

/// Handles one token request.
pub(crate) async fn exchange(
    p: &Provider,
    authorization: Option<&str>,
    certificate: Option<ClientCertificate>,
    dpop: Option<&str>,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    let grant_type = params.require("grant_type")?;
    let grant = GrantType::parse(grant_type).ok_or_else(|| {
        OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "this grant type is not supported",
        )
    })?;
    let client = client_auth::authenticate(
        p,
        client_auth::presented(authorization, params)?,
        Endpoint::Token,
        certificate,
    )
    .await?;
    // RFC 9449 §5: a proof binds the tokens issued now to its key.
    let proof = match dpop {
        Some(proof) => {
            let uris = Endpoint::Token.urls(&p.config);
            let request = super::dpop::Request {
                method: "POST",
                uris: &uris,
                access_token: None,
                nonces: p.required_dpop_nonces(Some(&client.record().metadata)),
                profile: client.profile(),
            };
            Some(super::dpop::verify(p, proof, &request).await?)
        }
        None => None,
    };
    let client = client.with_dpop(proof)?;
    // FAPI 2.0 §5.3.2.1: only sender-constrained access tokens.
    if client.profile().is_fapi() && client.binding().is_none() {
        return Err(OAuthError::invalid_request(
            "this client's access tokens must be sender-constrained (FAPI 2.0): send a DPoP proof (RFC 9449) or present its client certificate (RFC 8705)",
        ));
    }
    if !client.record().metadata.allows_grant(grant) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client may not use this grant type",
        ));
    }
    match TokenRequest::parse(grant, params)? {
        TokenRequest::AuthorizationCode(r) => authorization_code::exchange(p, &client, &r).await,
        TokenRequest::RefreshToken(r) => refresh_token::exchange(p, &client, &r).await,
        TokenRequest::ClientCredentials(r) => client_credentials::exchange(p, &client, &r).await,
        TokenRequest::DeviceCode(r) => {
            decoupled::exchange::<decoupled::Device>(p, &client, r.device_code).await
        }
        TokenRequest::Ciba(r) => {
            decoupled::exchange::<decoupled::Ciba>(p, &client, r.auth_req_id).await
        }
        TokenRequest::TokenExchange(r) => token_exchange::exchange(p, &client, &r).await,
    }
}

/// What an access token is issued for.
pub(crate) struct AccessGrant<'a> {
    pub(crate) client: &'a AuthenticatedClient,
    /// The user authorization; `None` for client credentials.
    pub(crate) user: Option<&'a UserGrant>,
    pub(crate) scopes: &'a ScopeSet,
    pub(crate) resources: &'a [String],
    /// RFC 9396: what the user approved beyond scopes; empty for client credentials.
    pub(crate) authorization_details: &'a AuthorizationDetails,
    /// The `act` claim of a token exchange (RFC 8693 §4.1).
    pub(crate) act: Option<&'a Value>,
    /// When the token must expire at the latest, if before its usual lifetime (a token
    /// exchange never outlives the tokens it was exchanged for).
    pub(crate) not_after: Option<crate::clock::UnixTime>,
    /// What the token is bound to: the client's proof (its DPoP key or certificate) or, for a
    /// token exchange, the subject token's binding.
    pub(crate) binding: Option<Binding>,
    /// Opaque whatever the client's format: a token exchange keeps the revocability of opaque
    /// tokens it was exchanged for.
    pub(crate) opaque: bool,
}

/// RFC 9068 §2.2 claims of a JWT access token.
#[derive(Serialize)]
struct JwtAccessClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: Value,
    exp: i64,
    iat: i64,
    jti: &'a str,
    client_id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    scope: &'a str,
    /// RFC 8705 §3.1: the certificate the token is bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<Value>,
    /// RFC 9396 §9.1: what the token is authorized for beyond scopes.
    #[serde(skip_serializing_if = "Option::is_none")]
    authorization_details: Option<Value>,
    /// RFC 8693 §4.1: who acts for the subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    act: Option<&'a Value>,
}

/// The `token_type` of an access token (RFC 6749 §7.1, RFC 9449 §5): `DPoP` when bound to a
/// DPoP key, `Bearer` otherwise.
pub(crate) fn token_type(binding: Option<&Binding>) -> &'static str {
    match binding {
        Some(Binding::Dpop(_)) => "DPoP",
        _ => "Bearer",
    }
}

/// Mints an access token in the client's format; returns it and the row to store.
pub(crate) fn mint_access_token(
    p: &Provider,
    g: &AccessGrant<'_>,
) -> Result<(String, TokenRecord), OAuthError> {
    let now = p.now();
    let lifetime_end = now + p.config.lifetimes.access_token;
    let expires_at = g
        .not_after
        .map_or(lifetime_end, |end| end.min(lifetime_end));
    let scope = g.scopes.to_string();
    let format = if g.opaque {
        AccessTokenFormat::Opaque
    } else {
        p.config
            .access_token_format_for(&g.client.record().metadata)
    };
    let jti = random_id();
    let metadata = &g.client.record().metadata;
    let token = match format {
        AccessTokenFormat::Opaque => time_ordered_token(),
        AccessTokenFormat::Jwt => {
            // RFC 9068 §3: without a resource indicator the server's default audience applies.
            let aud = match g.resources {
                [] => Value::String(p.issuer().to_owned()),
                [one] => Value::String(one.clone()),
                many => Value::from(many.to_vec()),
            };
            let sub = match g.user {
                Some(user) => p.subject_for(metadata, &user.subject),
                None => g.client.id().to_string(),
            };
            let claims = JwtAccessClaims {
                iss: p.issuer(),
                sub: &sub,
                aud,
                exp: expires_at,
                iat: now,
                jti: &jti,
                client_id: g.client.id(),
                scope: &scope,
                cnf: g.binding.as_ref().map(Binding::confirmation),
                authorization_details: g.authorization_details.to_member(),
                act: g.act,
            };
            let keys = p.keys();
            sign_compact(keys.active(p.config.access_token_alg)?, "at+jwt", &claims)?
        }
    };
    let record = TokenRecord::Access(AccessRecord {
        issued: issued(p, g, &token, now, expires_at),
        user: g.user.cloned(),
        format,
        jti: Some(jti),
        binding: g.binding.clone(),
        act: g.act.cloned(),
    });
    Ok((token, record))
}

/// The common fields of a token minted for `g`.
fn issued(
    p: &Provider,
    g: &AccessGrant<'_>,
    token: &str,
    now: crate::clock::UnixTime,
    expires_at: crate::clock::UnixTime,
) -> Issued {
    Issued {
        digest: token_key(token),
        tenant_id: p.tenant.clone(),
        client_id: g.client.id().to_owned(),
        scopes: g.scopes.clone(),
        resources: g.resources.to_vec(),
        authorization_details: g.authorization_details.clone(),
        created_at: now,
        expires_at,
        consumed_at: None,
        revoked_at: None,
    }
}

/// Mints a refresh token for the user authorization `user`.
pub(crate) fn mint_refresh_token(
    p: &Provider,
    g: &AccessGrant<'_>,
    user: &UserGrant,
    grant_expires_at: i64,
) -> (String, TokenRecord) {
    let now = p.now();
    let token = time_ordered_token();
    // A refresh token never outlives its grant.
    let expires_at = (now + p.config.lifetimes.refresh_token).min(grant_expires_at);
    let record = TokenRecord::Refresh(RefreshRecord {
        issued: issued(p, g, &token, now, expires_at),
        user: user.clone(),
        // RFC 9449 §5: only a public client's refresh token is bound to its DPoP key; a
        // confidential client's is bound to the client by its authentication.
        binding: match g.binding.clone() {
            Some(Binding::Dpop(_)) if g.client.is_confidential() => None,
            other => other,
        },
    });
    (token, record)
}

/// Token-time `resource` values (RFC 8707 §2.2): each must have been granted.
pub(crate) fn narrow_resources(
    p: &Provider,
    requested: &[&str],
    granted: &[String],
) -> Result<Vec<String>, OAuthError> {
    let requested = super::authorize::check_resources(&p.config, requested.iter().copied())?;
    if requested.is_empty() {
        return Ok(granted.to_vec());
    }
    if let Some(bad) = requested.iter().find(|r| !granted.contains(r)) {
        return Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            format!("resource {bad} was not granted"),
        ));
    }
    Ok(requested)
}

/// Token-time `authorization_details` (RFC 9396 §6.2): may narrow what was granted, each
/// requested object covered by a granted one as its type judges, never widen it.
pub(crate) fn narrow_details(
    p: &Provider,
    requested: Option<&str>,
    granted: &AuthorizationDetails,
) -> Result<AuthorizationDetails, OAuthError> {
    let Some(requested) = requested else {
        return Ok(granted.clone());
    };
    let invalid = |why: String| OAuthError::new(ErrorCode::InvalidAuthorizationDetails, why);
    let requested = AuthorizationDetails::parse(requested).map_err(invalid)?;
    if !p.detail_types.covered(granted, &requested) {
        return Err(invalid(
            "the requested authorization_details exceed the grant".into(),
        ));
    }
    Ok(requested)
}

/// Token-time `scope` (RFC 6749 §6): may narrow what was granted, never widen it.
pub(crate) fn narrow_scopes(
    requested: Option<&str>,
    granted: &ScopeSet,
) -> Result<ScopeSet, OAuthError> {
    let requested = super::scope::parse_scope(requested)?;
    if requested.is_empty() {
        return Ok(granted.clone());
    }
    if let Some(bad) = requested.iter().find(|s| !granted.contains(s)) {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "a requested scope exceeds the grant",
        )
        .with_reason(format!("scope {bad:?} exceeds the grant")));
    }
    Ok(requested)
}

/// OIDC Core §11 and RFC 6749 §6: refresh tokens go to clients registered for the grant, and for
/// OpenID requests only when `offline_access` was granted (unless the host relaxed that).
pub(crate) fn wants_refresh_token(
    p: &Provider,
    client: &AuthenticatedClient,
    scopes: &[String],
) -> bool {
    let has = |scope: &str| scopes.iter().any(|s| s == scope);
    client
        .record()
        .metadata
        .allows_grant(GrantType::RefreshToken)
        && (has("offline_access") || !has("openid") || !p.config.offline_access_required)
}
