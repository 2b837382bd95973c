//! Compact JWS (RFC 7515 §7.1) for tokens this server issues and later reads back
//! (ID tokens as `id_token_hint`, JWT access tokens).

use serde::Serialize;
use serde_json::Value;

use super::keys::{KeyError, SigningKey};
use super::ring::KeyRing;
use crate::secrets::{b64, b64_decode};

/// Largest JWT Lockspire will parse; bounds work done on attacker-supplied input.
pub const MAX_JWT_LEN: usize = 16 * 1024;

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    kid: &'a str,
    typ: &'a str,
}

/// Signs `claims` with `key`; `typ` is the media type (RFC 7515 §4.1.9), e.g. `JWT`, `at+jwt`.
pub fn sign_compact(
    key: &SigningKey,
    typ: &str,
    claims: &impl Serialize,
) -> Result<String, KeyError> {
    let header = Header {
        alg: key.alg().as_str(),
        kid: key.kid(),
        typ,
    };
    let header = serde_json::to_vec(&header).map_err(|_| KeyError::Crypto)?;
    let payload = serde_json::to_vec(claims).map_err(|_| KeyError::Crypto)?;
    let mut out = b64(header);
    out.push('.');
    out.push_str(&b64(payload));
    let signature = key.sign(out.as_bytes())?;
    out.push('.');
    out.push_str(&b64(signature));
    Ok(out)
}

/// The JOSE name (RFC 7518 §3.1) of a client JWT's `alg`, for the algorithms this server
/// accepts from clients; "other" for the rest.
pub(crate) fn alg_name(alg: jsonwebtoken::Algorithm) -> &'static str {
    match alg {
        jsonwebtoken::Algorithm::HS256 => "HS256",
        jsonwebtoken::Algorithm::RS256 => "RS256",
        jsonwebtoken::Algorithm::PS256 => "PS256",
        jsonwebtoken::Algorithm::ES256 => "ES256",
        jsonwebtoken::Algorithm::EdDSA => "EdDSA",
        _ => "other",
    }
}

/// Why a JWS issued by this server did not verify. One variant per rule; none reaches the wire.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwsVerifyError {
    /// Not three base64url parts, too long, or not JSON.
    #[error("malformed JWS")]
    Malformed,
    /// The header names no key this server publishes, or an alg that differs from the key's.
    #[error("unknown key or algorithm")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
}

/// Verifies a compact JWS signed by one of `ring`'s published keys and returns its header `typ`
/// and claims. The alg must be the key's own alg, so `none` and alg confusion are impossible.
pub fn verify_compact(
    ring: &KeyRing,
    token: &str,
) -> Result<(Option<String>, Value), JwsVerifyError> {
    if token.len() > MAX_JWT_LEN {
        return Err(JwsVerifyError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsVerifyError::Malformed);
    };
    let header: Value = b64_decode(h)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(JwsVerifyError::Malformed)?;
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or(JwsVerifyError::UnknownKey)?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(JwsVerifyError::UnknownKey)?;
    let key = ring.get(kid).ok_or(JwsVerifyError::UnknownKey)?;
    if key.alg().as_str() != alg {
        return Err(JwsVerifyError::UnknownKey);
    }
    let signature = b64_decode(s).ok_or(JwsVerifyError::Malformed)?;
    let signing_input_len = h.len() + 1 + p.len();
    if !key.verify(&token.as_bytes()[..signing_input_len], &signature) {
        return Err(JwsVerifyError::BadSignature);
    }
    let claims: Value = b64_decode(p)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(JwsVerifyError::Malformed)?;
    let typ = header.get("typ").and_then(Value::as_str).map(str::to_owned);
    Ok((typ, claims))
}

#[cfg(test)]
mod tests {
    use super::super::keys::{KeyStatus, SigningAlg};
    use super::*;
    use serde_json::json;

    #[test]
    fn every_alg_signs_and_verifies_and_tampering_fails() {
        for alg in SigningAlg::ALL {
            let Ok(key) = SigningKey::generate(alg) else {
                panic!("generate {alg}")
            };
            let token = sign_compact(&key, "JWT", &json!({"sub": "a"})).map_err(|e| e.to_string());
            let Ok(token) = token else {
                panic!("sign {alg}")
            };
            let ring = KeyRing::new(vec![(key, KeyStatus::Active)]);
            let (typ, claims) = verify_compact(&ring, &token).unwrap_or_default();
            assert_eq!(typ.as_deref(), Some("JWT"));
            assert_eq!(claims["sub"], "a");
            let mut tampered = token.clone();
            tampered.insert(token.find('.').unwrap_or(0) + 2, 'A');
            assert!(
                verify_compact(&ring, &tampered).is_err(),
                "{alg}: tampered token verified"
            );
        }
    }

    #[test]
    fn alg_none_is_refused() {
        let Ok(key) = SigningKey::generate(SigningAlg::ES256) else {
            panic!("generate")
        };
        let kid = key.kid().to_owned();
        let ring = KeyRing::new(vec![(key, KeyStatus::Active)]);
        let header = b64(json!({"alg": "none", "kid": kid}).to_string());
        let token = format!("{header}.{}.", b64(r#"{"sub":"a"}"#));
        assert_eq!(
            verify_compact(&ring, &token),
            Err(JwsVerifyError::UnknownKey)
        );
    }
}
