//! Authorization server metadata (RFC 8414 §2, OIDC Discovery §3). The document is built once
//! at start-up from the configuration, so it lists exactly what this instance accepts.

use serde_json::{Value, json};

use super::authorize::{REQUEST_BY_REFERENCE, REQUEST_BY_VALUE, ResponseMode};
use super::endpoints::Endpoint;
use super::scope::standard_claims;
use crate::config::Config;
use crate::host::DetailTypes;
use crate::jose::{ContentEncryptionAlg, KeyManagementAlg, KeyRing, SigningAlg};
use crate::model::client::{AuthMethod, DeliveryMode, GrantType};

/// Algs accepted on client assertions: the asymmetric ones for private_key_jwt and HS256 for
/// client_secret_jwt.
const ASSERTION_ALGS_ADVERTISED: [&str; 5] = ["RS256", "PS256", "ES256", "EdDSA", "HS256"];

/// The metadata document. Under a server-wide FAPI 2.0 profile it lists only what the profile
/// allows: its algs, its authentication methods, its grants and, under Message Signing, the
/// JARM response modes.
pub(crate) fn document(config: &Config, keys: &KeyRing, detail_types: &DetailTypes) -> Value {
    let issuer = &config.issuer;
    let profile = config.security_profile;
    let allowed = |algs: &[&'static str]| -> Vec<&'static str> {
        algs.iter()
            .copied()
            .filter(|a| profile.allows_alg(a))
            .collect()
    };
    let mut algs: Vec<&str> = SigningAlg::ALL
        .into_iter()
        .filter(|a| keys.active_algs().any(|k| k == *a))
        .map(SigningAlg::as_str)
        .filter(|a| profile.allows_alg(a))
        .collect();
    algs.sort_by_key(|a| SigningAlg::ALL.iter().position(|x| x.as_str() == *a));
    let mut claims: Vec<&str> = vec![
        "sub",
        "iss",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "nonce",
        "acr",
        "amr",
        "at_hash",
    ];
    claims.extend(standard_claims());
    // Request objects can be encrypted under the algorithms of the key kinds published now.
    let request_encryption_algs: Vec<&str> = KeyManagementAlg::ALL
        .into_iter()
        .filter(|a| keys.encryption_key_types().any(|t| t == a.key_type()))
        .map(KeyManagementAlg::as_str)
        .collect();
    let all_encryption_algs: Vec<&str> = KeyManagementAlg::ALL
        .into_iter()
        .map(KeyManagementAlg::as_str)
        .collect();
    let encs: Vec<&str> = ContentEncryptionAlg::ALL
        .into_iter()
        .map(ContentEncryptionAlg::as_str)
        .collect();
    // Certificate methods are offered only where certificates can reach Lockspire.
    let offered =
        |m: &&AuthMethod| (config.mtls_enabled || !m.is_mtls()) && m.allowed_under(profile);
    let auth_methods: Vec<&str> = AuthMethod::SUPPORTED
        .iter()
        .filter(offered)
        .map(|m| m.as_str())
        .collect();
    let confidential_methods: Vec<&str> = AuthMethod::SUPPORTED
        .iter()
        .filter(offered)
        .filter(|m| m.is_confidential())
        .map(|m| m.as_str())
        .collect();
    let mut doc = json!({
        "issuer": issuer.as_str(),
        "scopes_supported": config.scopes_supported().collect::<Vec<_>>(),
        "response_types_supported": ["code"],
        "response_modes_supported": ResponseMode::SUPPORTED
            .iter()
            .filter(|m| !profile.signs_messages() || m.contains("jwt"))
            .collect::<Vec<_>>(),
        "grant_types_supported": GrantType::SUPPORTED
            .iter()
            .filter(|g| **g != GrantType::Ciba || config.backchannel_enabled)
            .filter(|g| {
                !profile.is_fapi() || !matches!(g, GrantType::Ciba | GrantType::DeviceCode)
            })
            .map(|g| g.as_str())
            .collect::<Vec<_>>(),
        "subject_types_supported": ["public", "pairwise"],
        "userinfo_signing_alg_values_supported": algs,
        "authorization_signing_alg_values_supported": algs,
        "authorization_encryption_alg_values_supported": all_encryption_algs,
        "authorization_encryption_enc_values_supported": encs,
        "introspection_signing_alg_values_supported": algs,
        "id_token_signing_alg_values_supported": algs,
        "token_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": confidential_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": allowed(&ASSERTION_ALGS_ADVERTISED),
        "introspection_endpoint_auth_signing_alg_values_supported": allowed(&ASSERTION_ALGS_ADVERTISED),
        "revocation_endpoint_auth_signing_alg_values_supported": allowed(&ASSERTION_ALGS_ADVERTISED),
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": claims,
        "claims_parameter_supported": true,
        "claim_types_supported": ["normal"],
        "prompt_values_supported": ["none", "login", "consent", "select_account", "create"],
        "request_parameter_supported": REQUEST_BY_VALUE,
        "request_object_signing_alg_values_supported": allowed(&super::client::REQUEST_OBJECT_ALGS),
        "request_object_encryption_alg_values_supported": request_encryption_algs,
        "request_object_encryption_enc_values_supported": encs,
        "request_uri_parameter_supported": REQUEST_BY_REFERENCE,
        "require_request_uri_registration": false,
        "authorization_response_iss_parameter_supported": true,
        "require_pushed_authorization_requests": config.require_pushed_requests,
        // RFC 9101 §10.5: FAPI 2.0 Message Signing takes only signed request objects.
        "require_signed_request_object": profile.signs_messages(),
        "authorization_details_types_supported": detail_types.names().collect::<Vec<_>>(),
        "dpop_signing_alg_values_supported": allowed(&super::dpop::DPOP_ALGS),
        // Back-Channel Logout 1.0 §2.1, Front-Channel Logout 1.0 §3: logout tokens and
        // front-channel URIs carry `sid` (and `iss`) for the clients that want them.
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "frontchannel_logout_supported": true,
        "frontchannel_logout_session_supported": true,
    });
    if let Value::Object(map) = &mut doc {
        for e in Endpoint::ALL {
            if let Some(field) = e.metadata_field().filter(|_| e.advertised(config)) {
                map.insert(field.into(), Value::String(e.url(issuer)));
            }
        }
    }
    // CIBA Core §4: the modes, whether clients may send `user_code`, and the algs of signed
    // authentication requests.
    if config.backchannel_enabled
        && !profile.is_fapi()
        && let Value::Object(map) = &mut doc
    {
        map.insert(
            "backchannel_token_delivery_modes_supported".into(),
            Value::from(DeliveryMode::ALL.map(DeliveryMode::as_str).to_vec()),
        );
        map.insert(
            "backchannel_user_code_parameter_supported".into(),
            Value::Bool(config.backchannel_user_codes),
        );
        map.insert(
            "backchannel_authentication_request_signing_alg_values_supported".into(),
            Value::from(super::client::REQUEST_OBJECT_ALGS.to_vec()),
        );
    }
    if config.mtls_enabled
        && let Value::Object(map) = &mut doc
    {
        map.insert(
            "tls_client_certificate_bound_access_tokens".into(),
            Value::Bool(true),
        );
        if let Some(base) = &config.mtls_endpoint_base {
            // RFC 8705 §5: where clients reach the endpoints with a certificate.
            let base = base.trim_end_matches('/');
            let aliases: serde_json::Map<String, Value> = Endpoint::ALL
                .into_iter()
                .filter(|e| e.has_mtls_alias() && e.advertised(config))
                .filter_map(|e| {
                    let field = e.metadata_field()?;
                    Some((
                        field.to_owned(),
                        Value::String(format!("{base}{}", e.path())),
                    ))
                })
                .collect();
            map.insert("mtls_endpoint_aliases".into(), Value::Object(aliases));
        }
    }
    doc
}
