//! Reading and verifying the JWTs the server issues, and rows the tests write directly.

use super::*;

/// Decodes a JWT's header and claims without verifying (tests verify separately).
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let mut it = token.split('.');
    let header = it
        .next()
        .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
        .expect("header");
    let claims = it
        .next()
        .and_then(|c| URL_SAFE_NO_PAD.decode(c).ok())
        .expect("claims");
    (
        serde_json::from_slice(&header).expect("header json"),
        serde_json::from_slice(&claims).expect("claims json"),
    )
}

/// Verifies a JWT against the server's published JWKS with an independent JOSE library.
pub async fn verify_with_jwks(h: &Harness, token: &str, audience: &str) -> Value {
    verify_jws(h, token, audience, true).await
}

/// Like [`verify_with_jwks`] for signed responses that carry no `exp` (signed userinfo,
/// RFC 9701 introspection responses).
pub async fn verify_response_with_jwks(h: &Harness, token: &str, audience: &str) -> Value {
    verify_jws(h, token, audience, false).await
}

async fn verify_jws(h: &Harness, token: &str, audience: &str, expiring: bool) -> Value {
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(h.jwks().await).expect("a JWK set");
    let header = jsonwebtoken::decode_header(token).expect("header");
    let kid = header.kid.clone().expect("kid");
    let jwk = jwks.find(&kid).expect("signing key published in JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("decoding key");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[&h.base]);
    if !expiring {
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
    }
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("JWT verifies against JWKS")
        .claims
}
