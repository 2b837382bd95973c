//! Client public keys for private_key_jwt (RFC 7523 §3, OIDC Core §9): inline `jwks`, or
//! `jwks_uri` fetched through the guarded fetcher and cached in [`JwksCache`]. An unknown `kid` or
//! a signature that does not verify forces one refresh, so a client that rotated its keys keeps
//! working. A failed refresh keeps the last good keys and is recorded for operators.

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::{Value, json};

use crate::fetch::FetchError;
use crate::jose::{EncryptionKeyType, KeyManagementAlg};
use crate::protocol::provider::Provider;
use crate::store::{AuditEvent, ClientRecord};

/// Tries the keys that may have signed: the one with the header's `kid`, or, without a kid,
/// every key of the set (sets are at most a handful of keys).
fn try_keys(
    set: &JwkSet,
    kid: Option<&str>,
    assertion: &str,
    validation: &Validation,
) -> Result<Value, Attempt> {
    let candidates: Vec<&Jwk> = match kid {
        Some(kid) => set
            .keys
            .iter()
            .filter(|k| k.common.key_id.as_deref() == Some(kid))
            .collect(),
        None => set.keys.iter().collect(),
    };
    if candidates.is_empty() {
        return Err(Attempt::UnknownKey);
    }
    let mut last = Attempt::BadSignature("no key verified the signature".into());
    for jwk in candidates {
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        match jsonwebtoken::decode::<Value>(assertion, &key, validation) {
            Ok(data) => return Ok(data.claims),
            Err(e) => match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature
                | jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => {
                    last = Attempt::BadSignature(e.to_string());
                }
                // A verified signature with bad claims: no other key will do better.
                _ => return Err(Attempt::Claims(e.to_string())),
            },
        }
    }
    Err(last)
}

enum Attempt {
    UnknownKey,
    BadSignature(String),
    Claims(String),
}

/// Verifies a private_key_jwt assertion against the client's registered keys; the error is the
/// reason for the audit log.
pub(crate) async fn verify_with_client_keys(
    p: &Provider,
    client: &ClientRecord,
    assertion: &str,
    kid: Option<&str>,
    validation: &Validation,
) -> Result<Value, String> {
    let meta = &client.metadata;
    if let Some(inline) = &meta.jwks {
        let set: JwkSet = serde_json::from_value(inline.clone())
            .map_err(|e| format!("registered jwks unusable: {e}"))?;
        return try_keys(&set, kid, assertion, validation).map_err(describe);
    }
    let Some(uri) = &meta.jwks_uri else {
        return Err("the client has no registered keys".into());
    };
    let first = p
        .jwks
        .keys(uri, false)
        .await
        .map_err(|e| record_failure(p, client, uri, e))?;
    match try_keys(&first.keys, kid, assertion, validation) {
        Ok(claims) => Ok(claims),
        Err(Attempt::Claims(why)) => Err(format!("assertion rejected: {why}")),
        Err(_) if first.fresh => Err("no registered key verifies the assertion".into()),
        Err(_) => {
            // Unknown kid or failed signature on cached keys: the client may have rotated.
            let again = p
                .jwks
                .keys(uri, true)
                .await
                .map_err(|e| record_failure(p, client, uri, e))?;
            try_keys(&again.keys, kid, assertion, validation).map_err(describe)
        }
    }
}

/// The client's registered public keys: inline, or from its `jwks_uri` (cached; `force` asks
/// again, within the forced-refresh limit).
pub(crate) async fn client_jwk_set(
    p: &Provider,
    client: &ClientRecord,
    force: bool,
) -> Result<JwkSet, String> {
    if let Some(inline) = &client.metadata.jwks {
        return serde_json::from_value(inline.clone())
            .map_err(|e| format!("registered jwks unusable: {e}"));
    }
    let Some(uri) = &client.metadata.jwks_uri else {
        return Err("the client has no registered keys".into());
    };
    let lookup = p
        .jwks
        .keys(uri, force)
        .await
        .map_err(|e| record_failure(p, client, uri, e))?;
    Ok((*lookup.keys).clone())
}

/// A public key of the client's to encrypt to under `alg` (JARM §2.3): `use` absent or `enc`,
/// of the key type `alg` needs, and with no `alg` member naming another algorithm. A `jwks_uri`
/// is asked again once when no cached key fits, as the client may have added one.
pub(crate) async fn encryption_key(
    p: &Provider,
    client: &ClientRecord,
    alg: KeyManagementAlg,
) -> Result<Value, String> {
    let first = client_jwk_set(p, client, false).await?;
    if let Some(key) = first.keys.iter().find_map(|k| fits_encryption(k, alg)) {
        return Ok(key);
    }
    if client.metadata.jwks_uri.is_some() {
        let again = client_jwk_set(p, client, true).await?;
        if let Some(key) = again.keys.iter().find_map(|k| fits_encryption(k, alg)) {
            return Ok(key);
        }
    }
    Err(format!("the client has no public key for {}", alg.as_str()))
}

/// `jwk` as the recipient of a JWE under `alg`, when it may be one.
pub(crate) fn fits_encryption(jwk: &Jwk, alg: KeyManagementAlg) -> Option<Value> {
    use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, KeyAlgorithm, PublicKeyUse};
    if !matches!(
        jwk.common.public_key_use,
        None | Some(PublicKeyUse::Encryption)
    ) {
        return None;
    }
    let alg_fits = match jwk.common.key_algorithm {
        None => true,
        Some(KeyAlgorithm::RSA_OAEP) => alg == KeyManagementAlg::RsaOaep,
        Some(KeyAlgorithm::RSA_OAEP_256) => alg == KeyManagementAlg::RsaOaep256,
        // The ECDH-ES names are not among the parser's algorithms: any of them reads as unknown.
        Some(KeyAlgorithm::UNKNOWN_ALGORITHM) => alg.key_type() == EncryptionKeyType::EcP256,
        Some(_) => false,
    };
    let type_fits = match (&jwk.algorithm, alg.key_type()) {
        (AlgorithmParameters::RSA(_), EncryptionKeyType::Rsa) => true,
        (AlgorithmParameters::EllipticCurve(ec), EncryptionKeyType::EcP256) => {
            ec.curve == EllipticCurve::P256
        }
        _ => false,
    };
    if !(alg_fits && type_fits) {
        return None;
    }
    let mut value = serde_json::to_value(jwk).ok()?;
    if let Value::Object(members) = &mut value {
        members.remove("alg");
    }
    Some(value)
}

fn describe(a: Attempt) -> String {
    match a {
        Attempt::UnknownKey => "no registered key has the assertion's kid".into(),
        Attempt::BadSignature(why) => format!("signature does not verify: {why}"),
        Attempt::Claims(why) => format!("assertion rejected: {why}"),
    }
}

fn record_failure(p: &Provider, client: &ClientRecord, uri: &str, e: FetchError) -> String {
    tracing::warn!(client_id = %client.client_id, jwks_uri = %uri, error = %e, "fetching a client's JWKS failed");
    let event = AuditEvent {
        tenant_id: p.tenant.clone(),
        at: p.now(),
        kind: "jwks_fetch_failed".into(),
        client_id: Some(client.client_id.to_string()),
        subject: None,
        detail: json!({ "jwks_uri": uri, "error": e.to_string() }),
        occurrences: 1,
    };
    let store = p.store.clone();
    // The audit write must not hold up (or fail) the request it explains.
    tokio::spawn(async move {
        if let Err(e) = store.audit(&event).await {
            tracing::warn!(error = %e, "could not write the audit event");
        }
    });
    format!("the client's jwks_uri could not be fetched: {e}")
}
