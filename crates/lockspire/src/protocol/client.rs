//! The rules client metadata must pass at registration and update (RFC 7591 §2 and §5, RFC
//! 7592 §2.2, OIDC Registration §2), and the redirect URI rules of registration (RFC 6749
//! §3.1.2, RFC 8252 §7, RFC 9700 §2.1).

use serde_json::{Map, Value};
use url::Url;

use crate::config::{AccessTokenFormat, Config};
use crate::jose::{ContentEncryptionAlg, KeyManagementAlg, SigningAlg};
use crate::model::client::{
    AuthMethod, ClientMetadata, DeliveryMode, GrantType, default_application_type,
    default_subject_type,
};
use crate::model::profile::SecurityProfile;
use crate::model::uri::is_loopback_host;
use crate::protocol::error::{ErrorCode, OAuthError};

fn invalid(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, description.into())
}

fn invalid_redirect(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRedirectUri, description.into())
}

/// Checks one redirect URI for registration (RFC 6749 §3.1.2, RFC 8252 §7, RFC 9700 §2.1):
/// absolute, no fragment, no wildcard; https, http only on loopback, or a private-use scheme
/// with a reverse-domain name for native apps.
pub(crate) fn check_redirect_uri(uri: &str) -> Result<(), OAuthError> {
    let url =
        Url::parse(uri).map_err(|_| invalid_redirect("a redirect URI is not an absolute URI"))?;
    if url.fragment().is_some() || uri.contains('#') {
        return Err(invalid_redirect(
            "redirect URIs must not contain a fragment",
        ));
    }
    if uri.contains('*') {
        return Err(invalid_redirect("redirect URIs must not contain wildcards"));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_host(&url) => Ok(()),
        "http" => Err(invalid_redirect(
            "http redirect URIs are allowed only on loopback hosts",
        )),
        "javascript" | "data" | "file" | "vbscript" | "about" | "blob" | "ftp" | "ws" | "wss" => {
            Err(invalid_redirect(format!(
                "the {} scheme is not allowed",
                url.scheme()
            )))
        }
        scheme if scheme.contains('.') => Ok(()),
        _ => Err(invalid_redirect(
            "custom schemes must be reverse domain names (RFC 8252 §7.1), e.g. com.example.app",
        )),
    }
}

/// The logout URIs of a client (OIDC RP-Initiated Logout 1.0 §3.1, Front-Channel Logout 1.0
/// §2, Back-Channel Logout 1.0 §2.2).
struct LogoutUris {
    post_logout_redirect_uris: Vec<String>,
    backchannel_uri: Option<String>,
    frontchannel_uri: Option<String>,
}

fn check_logout(
    config: &Config,
    body: &Map<String, Value>,
    redirect_uris: &[String],
) -> Result<LogoutUris, OAuthError> {
    // Where a browser is sent, under the rules of redirect URIs (exact match, no fragment).
    let post_logout_redirect_uris =
        string_list(body, "post_logout_redirect_uris")?.unwrap_or_default();
    for uri in &post_logout_redirect_uris {
        check_redirect_uri(uri)
            .map_err(|e| invalid(format!("post_logout_redirect_uris: {}", e.description())))?;
    }
    // Called by this server: a fetchable https URL (loopback http only in development mode).
    let backchannel_uri = opt_string(body, "backchannel_logout_uri")?;
    if let Some(uri) = &backchannel_uri {
        crate::fetch::check_url(uri, config.dev_mode).map_err(|e| {
            invalid("backchannel_logout_uri must be an https URL on a public address")
                .with_reason(format!("backchannel_logout_uri: {e}"))
        })?;
        check_normal_form("backchannel_logout_uri", uri)?;
    }
    // Loaded in an iframe of this server's page and named in its Content-Security-Policy: in
    // normal form (what the browser loads is what the policy names), with none of the
    // characters that end a CSP source, at the origin of a redirect URI (Front-Channel Logout
    // 1.0 §2), so a client can have the page frame only its own site.
    let frontchannel_uri = opt_string(body, "frontchannel_logout_uri")?;
    if let Some(uri) = &frontchannel_uri {
        check_web_uri("frontchannel_logout_uri", uri)?;
        let url = check_normal_form("frontchannel_logout_uri", uri)?;
        if uri.contains([';', ',', '\'', '"']) {
            return Err(invalid(
                "frontchannel_logout_uri must not contain ';', ',' or quotes",
            ));
        }
        let same_origin = redirect_uris
            .iter()
            .any(|r| Url::parse(r).is_ok_and(|r| r.origin() == url.origin()));
        if !same_origin {
            return Err(invalid(
                "frontchannel_logout_uri must have the scheme, host and port of a redirect URI",
            ));
        }
    }
    Ok(LogoutUris {
        post_logout_redirect_uris,
        backchannel_uri,
        frontchannel_uri,
    })
}

/// A URI exactly as a URL parser writes it (no whitespace, no characters outside ASCII, no dot
/// segments, no fragment), so that the string registered is the one used.
fn check_normal_form(field: &str, uri: &str) -> Result<Url, OAuthError> {
    let url = Url::parse(uri).map_err(|_| invalid(format!("{field} is not an absolute URI")))?;
    if url.as_str() != uri || url.fragment().is_some() {
        return Err(invalid(format!(
            "{field} must be a URL in normal form, without a fragment"
        ))
        .with_reason(format!("{field} {uri:?} normalizes to {:?}", url.as_str())));
    }
    Ok(url)
}

fn check_web_uri(field: &str, uri: &str) -> Result<(), OAuthError> {
    let url = Url::parse(uri).map_err(|_| invalid(format!("{field} is not an absolute URI")))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_host(&url) => Ok(()),
        _ => Err(invalid(format!("{field} must be an https URI"))),
    }
}

const MAX_STRING: usize = 2048;

/// Algs a client may sign assertions with (RFC 7523 §3, OIDC Core §9); never `none` or an HMAC for keys.
pub(crate) const ASSERTION_ALGS: [&str; 4] = ["RS256", "PS256", "ES256", "EdDSA"];

/// Algorithms request objects may be signed with (RFC 9101 §10.2): asymmetric only, `none`
/// never.
pub(crate) const REQUEST_OBJECT_ALGS: [&str; 4] = ["PS256", "ES256", "EdDSA", "RS256"];

/// JWK members that only private or symmetric keys have.
const PRIVATE_JWK_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

type ClientKeys = (Option<Value>, Option<String>, Option<String>);

/// `jwks`, `jwks_uri` and `token_endpoint_auth_signing_alg` (RFC 7591 §2, OIDC Registration §2):
/// one key source at most, public keys only, a fetchable URI, an alg that fits the method.
fn check_client_keys(
    config: &Config,
    body: &Map<String, Value>,
    method: AuthMethod,
) -> Result<ClientKeys, OAuthError> {
    let jwks = match body.get("jwks") {
        None | Some(Value::Null) => None,
        Some(v) => Some(check_jwks(v)?),
    };
    let jwks_uri = opt_string(body, "jwks_uri")?;
    if jwks.is_some() && jwks_uri.is_some() {
        return Err(invalid("jwks and jwks_uri must not both be registered"));
    }
    if let Some(uri) = &jwks_uri {
        crate::fetch::check_url(uri, config.dev_mode).map_err(|e| {
            invalid("jwks_uri is not a URL this server fetches from")
                .with_reason(format!("jwks_uri: {e}"))
        })?;
    }
    let needs_keys = matches!(
        method,
        AuthMethod::PrivateKeyJwt | AuthMethod::SelfSignedTlsClientAuth
    );
    if needs_keys && jwks.is_none() && jwks_uri.is_none() {
        return Err(invalid(format!(
            "{} needs jwks or jwks_uri",
            method.as_str()
        )));
    }
    let alg = opt_string(body, "token_endpoint_auth_signing_alg")?;
    match (&alg, method) {
        (None, _) => {}
        (Some(a), AuthMethod::PrivateKeyJwt) if ASSERTION_ALGS.contains(&a.as_str()) => {}
        (Some(a), AuthMethod::ClientSecretJwt) if a == "HS256" => {}
        (Some(a), _) => {
            return Err(invalid(format!(
                "token_endpoint_auth_signing_alg does not fit {}",
                method.as_str()
            ))
            .with_reason(format!("token_endpoint_auth_signing_alg {a:?}")));
        }
    }
    Ok((jwks, jwks_uri, alg))
}

/// `request_object_signing_alg` (RFC 9101 §10.5): one of the algorithms request objects are
/// verified with, and keys to verify them.
fn check_request_object_alg(
    body: &Map<String, Value>,
    has_keys: bool,
) -> Result<Option<String>, OAuthError> {
    let Some(alg) = opt_string(body, "request_object_signing_alg")? else {
        return Ok(None);
    };
    if !REQUEST_OBJECT_ALGS.contains(&alg.as_str()) {
        return Err(invalid("request_object_signing_alg is not supported")
            .with_reason(format!("request_object_signing_alg {alg:?}")));
    }
    if !has_keys {
        return Err(invalid(
            "request_object_signing_alg needs jwks or jwks_uri to verify the objects with",
        ));
    }
    Ok(Some(alg))
}

/// A JWE `alg`/`enc` pair of client metadata (JARM §3, OIDC Registration §2): each a supported
/// value, `enc` only beside an `alg`, and for responses a key of the client's to encrypt to.
/// Returns the pair to record: `enc` defaults to A128CBC-HS256 beside an `alg`.
fn check_encryption_pair(
    body: &Map<String, Value>,
    alg_field: &str,
    enc_field: &str,
    has_keys: Option<bool>,
) -> Result<(Option<String>, Option<String>), OAuthError> {
    let alg = opt_string(body, alg_field)?;
    let enc = opt_string(body, enc_field)?;
    if let Some(a) = &alg
        && KeyManagementAlg::parse(a).is_none()
    {
        return Err(invalid(format!("{alg_field} is not supported"))
            .with_reason(format!("{alg_field} {a:?}")));
    }
    if let Some(e) = &enc {
        if ContentEncryptionAlg::parse(e).is_none() {
            return Err(invalid(format!("{enc_field} is not supported"))
                .with_reason(format!("{enc_field} {e:?}")));
        }
        if alg.is_none() {
            return Err(invalid(format!("{enc_field} requires {alg_field}")));
        }
    }
    if alg.is_some() && has_keys == Some(false) {
        return Err(invalid(format!(
            "{alg_field} needs jwks or jwks_uri holding a key to encrypt to"
        )));
    }
    // JARM §3, OIDC Registration §2: without an `enc`, A128CBC-HS256; recorded so the
    // registration response says what will be used.
    let enc = enc.or_else(|| {
        alg.as_ref()
            .map(|_| ContentEncryptionAlg::A128CbcHs256.as_str().to_owned())
    });
    Ok((alg, enc))
}

/// JARM §2.3: inline `jwks` must hold a key responses can be encrypted to under `alg` (a
/// `jwks_uri` is read when a response is sent, and checked at `/authorize` before the user is
/// asked anything).
fn check_response_key(jwks: &Value, alg: &str) -> Result<(), OAuthError> {
    let set: Option<jsonwebtoken::jwk::JwkSet> = serde_json::from_value(jwks.clone()).ok();
    let fits = KeyManagementAlg::parse(alg).is_some_and(|alg| {
        set.iter()
            .flat_map(|s| s.keys.iter())
            .any(|k| super::client_keys::fits_encryption(k, alg).is_some())
    });
    if fits {
        Ok(())
    } else {
        Err(invalid(format!(
            "jwks holds no key to encrypt responses to under {alg} (use enc or no use, and the key type {alg} needs)"
        )))
    }
}

/// RFC 9396 §10.1: the `authorization_details` types a client may ask for, each one the host
/// registered.
fn check_detail_types(
    config: &Config,
    body: &Map<String, Value>,
) -> Result<Vec<String>, OAuthError> {
    let types = string_list(body, "authorization_details_types")?.unwrap_or_default();
    if let Some(unknown) = types
        .iter()
        .find(|t| !config.authorization_details_types.contains(t))
    {
        return Err(invalid(
            "authorization_details_types names a type this server does not support",
        )
        .with_reason(format!("authorization_details_types {unknown:?}")));
    }
    Ok(types)
}

/// Metadata of encryption Lockspire does not perform: a client that registers it expects it,
/// and would otherwise get plaintext (OIDC Registration §2).
const UNSUPPORTED_ENCRYPTION: [&str; 4] = [
    "id_token_encrypted_response_alg",
    "id_token_encrypted_response_enc",
    "userinfo_encrypted_response_alg",
    "userinfo_encrypted_response_enc",
];

struct TlsMetadata {
    subject_dn: Option<String>,
    san_dns: Option<String>,
    san_uri: Option<String>,
    san_ip: Option<String>,
    san_email: Option<String>,
    bound: bool,
}

/// A boolean member; absent or null is false.
fn opt_bool(body: &Map<String, Value>, name: &'static str) -> Result<bool, OAuthError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(invalid(format!("{name} must be a boolean"))),
    }
}

/// RFC 8705 §2.1.2 and §3.4: mTLS methods need a server that sees client certificates;
/// `tls_client_auth` names exactly one certificate attribute.
fn check_tls_metadata(
    config: &Config,
    body: &Map<String, Value>,
    method: AuthMethod,
) -> Result<TlsMetadata, OAuthError> {
    let bound = opt_bool(body, "tls_client_certificate_bound_access_tokens")?;
    if (method.is_mtls() || bound) && !config.mtls_enabled {
        return Err(invalid(
            "this server does not see client certificates (mutual TLS is not configured)",
        ));
    }
    let m = TlsMetadata {
        subject_dn: opt_string(body, "tls_client_auth_subject_dn")?,
        san_dns: opt_string(body, "tls_client_auth_san_dns")?,
        san_uri: opt_string(body, "tls_client_auth_san_uri")?,
        san_ip: opt_string(body, "tls_client_auth_san_ip")?,
        san_email: opt_string(body, "tls_client_auth_san_email")?,
        bound,
    };
    let named = [
        &m.subject_dn,
        &m.san_dns,
        &m.san_uri,
        &m.san_ip,
        &m.san_email,
    ]
    .iter()
    .filter(|v| v.is_some())
    .count();
    match (method, named) {
        (AuthMethod::TlsClientAuth, 1) => {}
        (AuthMethod::TlsClientAuth, _) => {
            return Err(invalid(
                "tls_client_auth needs exactly one of tls_client_auth_subject_dn, _san_dns, _san_uri, _san_ip, _san_email",
            ));
        }
        (_, 0) => {}
        _ => {
            return Err(invalid(
                "tls_client_auth_* attributes apply only to tls_client_auth",
            ));
        }
    }
    if let Some(ip) = &m.san_ip
        && ip.parse::<std::net::IpAddr>().is_err()
    {
        return Err(invalid("tls_client_auth_san_ip must be an IP address"));
    }
    if let Some(dn) = &m.subject_dn
        && crate::protocol::mtls_auth::parse_dn(dn).is_none()
    {
        return Err(invalid(
            "tls_client_auth_subject_dn must be an RFC 4514 distinguished name",
        ));
    }
    Ok(m)
}

/// A JWK Set of public signing keys (RFC 7517 §5).
pub(crate) fn check_jwks(v: &Value) -> Result<Value, OAuthError> {
    let keys = v
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("jwks must be a JWK Set: {\"keys\": [...]}"))?;
    if keys.is_empty() || keys.len() > 16 || v.to_string().len() > 64 * 1024 {
        return Err(invalid("jwks must hold 1 to 16 keys"));
    }
    for key in keys {
        if PRIVATE_JWK_MEMBERS.iter().any(|m| key.get(*m).is_some()) {
            return Err(invalid("jwks must contain public keys only"));
        }
        if !matches!(
            key.get("kty").and_then(Value::as_str),
            Some("RSA" | "EC" | "OKP")
        ) {
            return Err(invalid("jwks keys must be RSA, EC or OKP public keys"));
        }
        serde_json::from_value::<jsonwebtoken::jwk::Jwk>(key.clone())
            .map_err(|e| invalid(format!("jwks holds a malformed key: {e}")))?;
    }
    Ok(v.clone())
}

fn opt_string(body: &Map<String, Value>, field: &str) -> Result<Option<String>, OAuthError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= MAX_STRING => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(invalid(format!("{field} is too long"))),
        Some(_) => Err(invalid(format!("{field} must be a string"))),
    }
}

fn string_list(body: &Map<String, Value>, field: &str) -> Result<Option<Vec<String>>, OAuthError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) if items.len() <= 64 => items
            .iter()
            .map(|v| match v {
                Value::String(s) if s.len() <= MAX_STRING => Ok(s.clone()),
                _ => Err(invalid(format!("{field} must be an array of strings"))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(invalid(format!(
            "{field} must be an array of at most 64 strings"
        ))),
    }
}

/// The backchannel authentication metadata of a client (CIBA Core §4).
struct Backchannel {
    mode: Option<DeliveryMode>,
    endpoint: Option<String>,
    user_code: bool,
    signing_alg: Option<String>,
}

/// CIBA Core §4: a client of the CIBA grant names its delivery mode, and for `ping` and `push`
/// an https notification endpoint; it is confidential (§7: it authenticates its requests); a
/// `push` client's tokens cannot be bound to a key or certificate (nothing is presented when
/// they are pushed); a client that signs its requests names an asymmetric alg and has keys to
/// verify them. Nobody else registers these fields.
fn check_backchannel(
    config: &Config,
    body: &Map<String, Value>,
    grants: &[GrantType],
    method: AuthMethod,
    has_keys: bool,
) -> Result<Backchannel, OAuthError> {
    let signing_alg = opt_string(body, "backchannel_authentication_request_signing_alg")?;
    if let Some(alg) = &signing_alg {
        if !REQUEST_OBJECT_ALGS.contains(&alg.as_str()) {
            return Err(
                invalid("backchannel_authentication_request_signing_alg is not supported")
                    .with_reason(format!(
                        "backchannel_authentication_request_signing_alg {alg:?}"
                    )),
            );
        }
        if !has_keys {
            return Err(invalid(
                "backchannel_authentication_request_signing_alg needs jwks or jwks_uri to verify the requests with",
            ));
        }
    }
    let mode = match opt_string(body, "backchannel_token_delivery_mode")? {
        None => None,
        Some(m) => Some(DeliveryMode::parse(&m).ok_or_else(|| {
            invalid("backchannel_token_delivery_mode must be poll, ping or push")
        })?),
    };
    let endpoint = opt_string(body, "backchannel_client_notification_endpoint")?;
    let user_code = opt_bool(body, "backchannel_user_code_parameter")?;
    if !grants.contains(&GrantType::Ciba) {
        if mode.is_some() || endpoint.is_some() || user_code || signing_alg.is_some() {
            return Err(invalid(
                "backchannel metadata is for clients of the CIBA grant",
            ));
        }
        return Ok(Backchannel {
            mode,
            endpoint,
            user_code,
            signing_alg,
        });
    }
    if !config.backchannel_enabled && !config.operator_tool {
        return Err(
            invalid("this server does not offer backchannel authentication")
                .with_reason("the CIBA grant without a backchannel authenticator"),
        );
    }
    if !method.is_confidential() {
        return Err(invalid("the CIBA grant requires a confidential client"));
    }
    if user_code && !config.backchannel_user_codes && !config.operator_tool {
        return Err(invalid(
            "this server does not check backchannel user codes (backchannel_user_code_parameter)",
        ));
    }
    let mode =
        mode.ok_or_else(|| invalid("the CIBA grant requires backchannel_token_delivery_mode"))?;
    match (mode, &endpoint) {
        (DeliveryMode::Poll, Some(_)) => {
            return Err(invalid(
                "backchannel_client_notification_endpoint is for the ping and push modes",
            ));
        }
        (DeliveryMode::Poll, None) => {}
        (_, None) => {
            return Err(invalid(
                "the ping and push modes require backchannel_client_notification_endpoint",
            ));
        }
        (_, Some(uri)) => {
            crate::fetch::check_url(uri, config.dev_mode).map_err(|e| {
                invalid(
                    "backchannel_client_notification_endpoint must be an https URL on a public address (not a private, loopback or internal one)",
                )
                .with_reason(format!("backchannel_client_notification_endpoint: {e}"))
            })?;
            if uri.contains('#') {
                return Err(invalid(
                    "backchannel_client_notification_endpoint must not have a fragment",
                ));
            }
        }
    }
    if mode == DeliveryMode::Push
        && (opt_bool(body, "dpop_bound_access_tokens")?
            || opt_bool(body, "tls_client_certificate_bound_access_tokens")?)
    {
        return Err(invalid(
            "pushed tokens cannot be bound to a DPoP key or certificate: use poll or ping",
        ));
    }
    Ok(Backchannel {
        mode: Some(mode),
        endpoint,
        user_code,
        signing_alg,
    })
}

/// `resource_server_for`: resources this issuer grants tokens for (RFC 8707), the only ones a
/// client can serve.
fn check_served_resources(
    config: &Config,
    body: &Map<String, Value>,
) -> Result<Vec<String>, OAuthError> {
    let served = string_list(body, "resource_server_for")?.unwrap_or_default();
    if let Some(unknown) = served.iter().find(|r| !config.resources.contains(r)) {
        return Err(invalid(
            "resource_server_for names a resource this server does not issue tokens for",
        )
        .with_reason(format!("resource_server_for {unknown:?}")));
    }
    Ok(served)
}

/// Validates a registration request body into metadata (RFC 7591 §2, §3.2.2). Fields this
/// server does not understand are ignored, as RFC 7591 §2 requires; the response echoes only
/// what was stored, so the client sees what was dropped.
pub(crate) fn validate_metadata(
    config: &Config,
    body: &Map<String, Value>,
) -> Result<ClientMetadata, OAuthError> {
    let token_endpoint_auth_method = match opt_string(body, "token_endpoint_auth_method")? {
        None => AuthMethod::ClientSecretBasic,
        Some(m) => AuthMethod::parse(&m).ok_or_else(|| {
            invalid("token_endpoint_auth_method is not supported")
                .with_reason(format!("token_endpoint_auth_method {m:?}"))
        })?,
    };
    let grant_types = match string_list(body, "grant_types")? {
        None => vec![GrantType::AuthorizationCode],
        Some(list) => {
            let mut out = Vec::new();
            for g in list {
                let g = GrantType::parse(&g).ok_or_else(|| {
                    invalid("grant_types names a grant type that is not supported")
                        .with_reason(format!("grant type {g:?}"))
                })?;
                if !out.contains(&g) {
                    out.push(g);
                }
            }
            if out.is_empty() {
                return Err(invalid("grant_types must not be empty"));
            }
            out
        }
    };
    let response_types = string_list(body, "response_types")?.unwrap_or_else(|| {
        if grant_types.contains(&GrantType::AuthorizationCode) {
            vec!["code".to_owned()]
        } else {
            Vec::new()
        }
    });
    if response_types.iter().any(|r| r != "code") {
        return Err(invalid("only the code response type is supported"));
    }
    // RFC 7591 §2.1: grant_types and response_types must agree.
    let uses_code = grant_types.contains(&GrantType::AuthorizationCode);
    if uses_code != response_types.iter().any(|r| r == "code") {
        return Err(invalid(
            "response_types code and grant_types authorization_code go together",
        ));
    }
    if grant_types.contains(&GrantType::ClientCredentials)
        && !token_endpoint_auth_method.is_confidential()
    {
        return Err(invalid("client_credentials requires a confidential client"));
    }
    // RFC 8693 §2.1 leaves client authentication to the server: a policy deciding by client
    // id needs the id proven, which a public client cannot do.
    if grant_types.contains(&GrantType::TokenExchange)
        && !token_endpoint_auth_method.is_confidential()
    {
        return Err(invalid("token exchange requires a confidential client"));
    }

    if grant_types == [GrantType::RefreshToken] {
        return Err(invalid("refresh_token alone cannot obtain a first token"));
    }
    let redirect_uris = string_list(body, "redirect_uris")?.unwrap_or_default();
    if uses_code && redirect_uris.is_empty() {
        return Err(invalid_redirect(
            "redirect_uris is required for the authorization_code grant",
        ));
    }
    for uri in &redirect_uris {
        check_redirect_uri(uri)?;
    }
    let application_type =
        opt_string(body, "application_type")?.unwrap_or_else(default_application_type);
    if application_type != "web" && application_type != "native" {
        return Err(invalid("application_type must be web or native"));
    }
    let scope = match opt_string(body, "scope")? {
        None => None,
        Some(s) => {
            let scopes = crate::protocol::scope::parse_scope(Some(&s))
                .map_err(|_| invalid("scope is malformed"))?;
            if let Some(unknown) = scopes.iter().find(|s| !config.is_known_scope(s)) {
                return Err(invalid("scope names a scope this server does not offer")
                    .with_reason(format!("scope {unknown:?}")));
            }
            Some(scopes.to_string())
        }
    };
    let security_profile = match opt_string(body, "security_profile")? {
        None => None,
        Some(s) => {
            let own = SecurityProfile::parse(&s).ok_or_else(|| {
                invalid("security_profile must be none, fapi2_security or fapi2_message_signing")
            })?;
            if own < config.security_profile {
                return Err(invalid(format!(
                    "security_profile cannot be weaker than the server's ({})",
                    config.security_profile
                )));
            }
            Some(own)
        }
    };
    let profile = security_profile.map_or(config.security_profile, |own| {
        own.max(config.security_profile)
    });
    // The algs a FAPI 2.0 client gets when it names none: RS256, the default of OIDC
    // Registration §2 and JARM §3, is not allowed (FAPI 2.0 §5.4.1).
    let default_alg = if profile.is_fapi() {
        SigningAlg::ES256
    } else {
        SigningAlg::RS256
    };
    let fapi_default = |alg: Option<String>| match alg {
        None if profile.is_fapi() => Some(default_alg.as_str().to_owned()),
        other => other,
    };
    let id_token_signed_response_alg = match opt_string(body, "id_token_signed_response_alg")? {
        None => default_alg,
        Some(a) => a.parse::<SigningAlg>().map_err(|_| {
            invalid("id_token_signed_response_alg is not supported")
                .with_reason(format!("id_token_signed_response_alg {a:?}"))
        })?,
    };
    let subject_type = opt_string(body, "subject_type")?.unwrap_or_else(default_subject_type);
    match subject_type.as_str() {
        "public" => {}
        "pairwise" => {
            if body
                .get("sector_identifier_uri")
                .is_some_and(|v| !v.is_null())
            {
                return Err(invalid(
                    "sector_identifier_uri is not supported; register redirect URIs on one host",
                ));
            }
            let hosts: Vec<String> = redirect_uris
                .iter()
                .filter_map(|u| Url::parse(u).ok())
                .map(|u| u.host_str().unwrap_or(u.scheme()).to_owned())
                .collect();
            if hosts.is_empty() || hosts.iter().any(|h| *h != hosts[0]) {
                // OIDC Core §8.1: without a sector_identifier_uri, the sector is the single host
                // of the redirect URIs.
                return Err(invalid(
                    "pairwise clients need redirect URIs on a single host",
                ));
            }
        }
        _ => return Err(invalid("subject_type must be public or pairwise")),
    }
    let signed_alg = |field: &str| -> Result<Option<String>, OAuthError> {
        match opt_string(body, field)? {
            None => Ok(None),
            Some(a) => a
                .parse::<SigningAlg>()
                .map(|a| Some(a.as_str().to_owned()))
                .map_err(|_| {
                    invalid(format!("{field} is not supported"))
                        .with_reason(format!("{field} {a:?}"))
                }),
        }
    };
    let userinfo_signed_response_alg = signed_alg("userinfo_signed_response_alg")?;
    let authorization_signed_response_alg =
        fapi_default(signed_alg("authorization_signed_response_alg")?);
    let introspection_signed_response_alg =
        fapi_default(signed_alg("introspection_signed_response_alg")?);
    let (jwks, jwks_uri, token_endpoint_auth_signing_alg) =
        check_client_keys(config, body, token_endpoint_auth_method)?;
    let tls = check_tls_metadata(config, body, token_endpoint_auth_method)?;
    let has_keys = jwks.is_some() || jwks_uri.is_some();
    let backchannel = check_backchannel(
        config,
        body,
        &grant_types,
        token_endpoint_auth_method,
        has_keys,
    )?;
    let (authorization_encrypted_response_alg, authorization_encrypted_response_enc) =
        check_encryption_pair(
            body,
            "authorization_encrypted_response_alg",
            "authorization_encrypted_response_enc",
            Some(has_keys),
        )?;
    if let (Some(alg), Some(inline)) = (&authorization_encrypted_response_alg, &jwks) {
        check_response_key(inline, alg)?;
    }
    for field in UNSUPPORTED_ENCRYPTION {
        if body.contains_key(field) {
            return Err(invalid(format!("{field} is not supported")));
        }
    }
    let (request_object_encryption_alg, request_object_encryption_enc) = check_encryption_pair(
        body,
        "request_object_encryption_alg",
        "request_object_encryption_enc",
        None,
    )?;
    let access_token_format = opt_string(body, "access_token_format")?;
    if let Some(f) = &access_token_format
        && AccessTokenFormat::parse(f).is_none()
    {
        return Err(invalid("access_token_format must be opaque or jwt"));
    }
    for field in ["client_uri", "logo_uri", "tos_uri", "policy_uri"] {
        if let Some(uri) = opt_string(body, field)? {
            check_web_uri(field, &uri)?;
        }
    }
    let logout = check_logout(config, body, &redirect_uris)?;
    let metadata = ClientMetadata {
        redirect_uris,
        token_endpoint_auth_method,
        grant_types,
        response_types,
        application_type,
        client_name: opt_string(body, "client_name")?,
        client_uri: opt_string(body, "client_uri")?,
        logo_uri: opt_string(body, "logo_uri")?,
        tos_uri: opt_string(body, "tos_uri")?,
        policy_uri: opt_string(body, "policy_uri")?,
        contacts: string_list(body, "contacts")?.unwrap_or_default(),
        authorization_details_types: check_detail_types(config, body)?,
        scope,
        id_token_signed_response_alg: id_token_signed_response_alg.as_str().to_owned(),
        subject_type,
        userinfo_signed_response_alg,
        introspection_signed_response_alg,
        jwks,
        jwks_uri,
        tls_client_auth_subject_dn: tls.subject_dn,
        tls_client_auth_san_dns: tls.san_dns,
        tls_client_auth_san_uri: tls.san_uri,
        tls_client_auth_san_ip: tls.san_ip,
        tls_client_auth_san_email: tls.san_email,
        tls_client_certificate_bound_access_tokens: tls.bound,
        dpop_bound_access_tokens: opt_bool(body, "dpop_bound_access_tokens")?,
        require_dpop_nonce: opt_bool(body, "require_dpop_nonce")?,
        // FAPI 2.0 §5.3.2.2: said in the metadata too, so that the client reads it there.
        require_pushed_authorization_requests: profile.is_fapi()
            || opt_bool(body, "require_pushed_authorization_requests")?,
        request_object_signing_alg: check_request_object_alg(body, has_keys)?,
        request_object_encryption_alg,
        request_object_encryption_enc,
        authorization_signed_response_alg,
        authorization_encrypted_response_alg,
        authorization_encrypted_response_enc,
        token_endpoint_auth_signing_alg,
        access_token_format,
        post_logout_redirect_uris: logout.post_logout_redirect_uris,
        backchannel_logout_uri: logout.backchannel_uri,
        backchannel_logout_session_required: opt_bool(body, "backchannel_logout_session_required")?,
        frontchannel_logout_uri: logout.frontchannel_uri,
        frontchannel_logout_session_required: opt_bool(
            body,
            "frontchannel_logout_session_required",
        )?,
        logout_revokes_offline_access: opt_bool(body, "logout_revokes_offline_access")?,
        backchannel_token_delivery_mode: backchannel.mode,
        backchannel_client_notification_endpoint: backchannel.endpoint,
        backchannel_user_code_parameter: backchannel.user_code,
        backchannel_authentication_request_signing_alg: backchannel.signing_alg,
        resource_server_for: check_served_resources(config, body)?,
        security_profile,
        software_id: opt_string(body, "software_id")?,
        software_version: opt_string(body, "software_version")?,
    };
    check_profile(config, &metadata)?;
    Ok(metadata)
}

/// The rules a client's registration must meet under the profile it is held to (FAPI 2.0
/// Security Profile §5.3.2, §5.4; FAPI 2.0 Message Signing §5.3), refused as RFC 7591 §3.2.2
/// says.
/// Checked at registration, and again whenever the client authenticates, for clients
/// registered before the server's profile became stricter.
pub(crate) fn check_profile(config: &Config, m: &ClientMetadata) -> Result<(), OAuthError> {
    let profile = config.profile_for(m);
    if !profile.is_fapi() {
        return Ok(());
    }
    let method = m.token_endpoint_auth_method;
    if !method.allowed_under(profile) {
        return Err(invalid(format!(
            "{profile}: token_endpoint_auth_method must be private_key_jwt, tls_client_auth or self_signed_tls_client_auth, not {} (client_secret_basic when none is named)",
            method.as_str()
        )));
    }
    if let Some(g) = m
        .grant_types
        .iter()
        .find(|g| matches!(g, GrantType::DeviceCode | GrantType::Ciba))
    {
        return Err(invalid(format!(
            "{profile}: the {} grant is not part of FAPI 2.0 (its authorization is not pushed)",
            g.as_str()
        )));
    }
    // FAPI 2.0 §5.3.2.2 and RFC 9700 §4.1: exact https redirect URIs. A development issuer on
    // http loopback (which no FAPI deployment is) may redirect to http loopback.
    for uri in &m.redirect_uris {
        let https = Url::parse(uri).is_ok_and(|u| {
            u.scheme() == "https"
                || (config.issuer.is_insecure() && u.scheme() == "http" && is_loopback_host(&u))
        });
        if !https {
            return Err(invalid_redirect(format!(
                "{profile}: redirect URIs must use https ({uri})"
            )));
        }
    }
    let algs = [
        (
            "id_token_signed_response_alg",
            Some(m.id_token_alg().as_str()),
        ),
        (
            "authorization_signed_response_alg",
            Some(m.authorization_alg().as_str()),
        ),
        (
            "introspection_signed_response_alg",
            Some(m.introspection_alg().as_str()),
        ),
        (
            "userinfo_signed_response_alg",
            m.userinfo_alg().map(SigningAlg::as_str),
        ),
        (
            "token_endpoint_auth_signing_alg",
            m.token_endpoint_auth_signing_alg.as_deref(),
        ),
        (
            "request_object_signing_alg",
            m.request_object_signing_alg.as_deref(),
        ),
    ];
    for (field, alg) in algs {
        if let Some(alg) = alg.filter(|a| !profile.allows_alg(a)) {
            return Err(invalid(format!(
                "{profile}: {field} must be PS256, ES256 or EdDSA, not {alg}"
            )));
        }
    }
    // FAPI 2.0 Message Signing §5.3.1: every request is a request object it signs.
    if profile.signs_messages() && m.jwks.is_none() && m.jwks_uri.is_none() {
        return Err(invalid(format!(
            "{profile}: jwks or jwks_uri is needed to verify the client's signed request objects"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_redirect_uri_rules() {
        assert!(check_redirect_uri("https://app.example/cb").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1:8080/cb").is_ok());
        assert!(check_redirect_uri("com.example.app:/cb").is_ok());
        for bad in [
            "http://app.example/cb",
            "https://app.example/cb#x",
            "javascript:alert(1)",
            "myapp:/cb",
            "/cb",
            "https://*.example/cb",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad} accepted");
        }
    }
}
