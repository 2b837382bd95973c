//! DPoP proofs (RFC 9449): a JWT the client signs with a key it holds, sent in the `DPoP` header
//! of each request, which binds the tokens issued to that key.
//!
//! A proof is accepted when (§4.3): it is one well-formed JWS with `typ: dpop+jwt`, an `alg` from
//! [`DPOP_ALGS`] and a public `jwk` in its header whose signature verifies; its `htm` is the
//! request's method and its `htu` the request's URI without query and fragment; its `iat` is
//! within [`IAT_WINDOW`] of the server's clock; its `jti` was never seen before for that key (one
//! conditional write every process shares, remembered until the proof could no longer be
//! accepted); and, at a resource, its `ath` is the hash of the access token. The key's RFC 7638
//! thumbprint (`jkt`) is what tokens are bound to.

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::Value;
use url::Url;

use super::error::{ErrorCode, OAuthError};
use super::provider::Provider;
use crate::jose::{MAX_JWT_LEN, alg_name};
use crate::model::profile::SecurityProfile;
use crate::secrets::{RotatingNonces, b64_decode};

/// The algorithms proofs may be signed with, as discovery lists them
/// (`dpop_signing_alg_values_supported`, RFC 9449 §5.1). `none` and shared-secret algorithms
/// cannot prove possession of a key.
pub(crate) const DPOP_ALGS: [&str; 4] = ["ES256", "EdDSA", "PS256", "RS256"];

/// How far a proof's `iat` may be from the server's clock, either way (RFC 9449 §11.1: proofs
/// are used at once; the window bounds how long a `jti` must be remembered).
pub(crate) const IAT_WINDOW: i64 = 60;

/// Private JWK members (RFC 7518 §6.2.2, §6.3.2, §6.4.1, RFC 8037 §2): a proof's key must not
/// carry them.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A verified proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Proof {
    /// The RFC 7638 thumbprint of the proof's key, what a bound token's `cnf.jkt` holds.
    pub(crate) jkt: String,
}

fn invalid(reason: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidDpopProof, reason)
}

/// The request a proof must match.
pub(crate) struct Request<'a> {
    /// The HTTP method (`htm`).
    pub(crate) method: &'a str,
    /// The URIs the request may have been sent to (`htu`): the endpoint, and its mTLS alias.
    pub(crate) uris: &'a [String],
    /// At a resource, the access token the proof must name (`ath`).
    pub(crate) access_token: Option<&'a str>,
    /// When the server requires a nonce of its own in the proof (§8, §9): the nonces it
    /// accepts.
    pub(crate) nonces: Option<&'a RotatingNonces>,
    /// The profile of the client sending the proof, where known (FAPI 2.0 §5.4.1 limits its
    /// algs).
    pub(crate) profile: SecurityProfile,
}

/// Verifies the `DPoP` header value `proof` for `request` and records its `jti`.
pub(crate) async fn verify(
    p: &Provider,
    proof: &str,
    request: &Request<'_>,
) -> Result<Proof, OAuthError> {
    let now = p.now();
    let checked = check(proof, request, now)?;
    record(p, &checked, now).await?;
    Ok(checked.proof)
}

/// Records a checked proof's `jti` for its key, once across every process (§11.1): a second
/// use is refused. Remembered until the proof's `iat` leaves the window.
pub(crate) async fn record(p: &Provider, checked: &Checked, now: i64) -> Result<(), OAuthError> {
    let first = p
        .store
        .record_once(
            "dpop",
            &format!("{}\u{0}{}", checked.proof.jkt, checked.jti),
            checked.iat.saturating_add(IAT_WINDOW + 1),
            now,
        )
        .await?;
    if !first {
        return Err(invalid("the DPoP proof was used before (its jti was seen)"));
    }
    Ok(())
}

/// A proof that passed every check but the replay check.
pub(crate) struct Checked {
    pub(crate) proof: Proof,
    pub(crate) jti: String,
    pub(crate) iat: i64,
}

/// Every check of RFC 9449 §4.3 that needs no storage, at time `now`.
pub(crate) fn check(proof: &str, request: &Request<'_>, now: i64) -> Result<Checked, OAuthError> {
    if proof.len() > MAX_JWT_LEN {
        return Err(invalid("the DPoP proof is too large"));
    }
    let header_json: Value = proof
        .split('.')
        .next()
        .and_then(b64_decode)
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| invalid("the DPoP proof is not a JWT"))?;
    if header_json.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(invalid("the DPoP proof's typ must be dpop+jwt"));
    }
    let jwk_json = header_json
        .get("jwk")
        .filter(|j| j.is_object())
        .ok_or_else(|| invalid("the DPoP proof carries no jwk"))?;
    if PRIVATE_MEMBERS.iter().any(|m| jwk_json.get(m).is_some()) {
        return Err(invalid("the DPoP proof's jwk holds a private key"));
    }
    let header = jsonwebtoken::decode_header(proof)
        .map_err(|_| invalid("the DPoP proof's header is malformed"))?;
    if !DPOP_ALGS.contains(&alg_name(header.alg)) {
        return Err(invalid("the DPoP proof's alg is not supported"));
    }
    if !request.profile.allows_alg(alg_name(header.alg)) {
        return Err(invalid(
            "the DPoP proof's alg is not allowed under FAPI 2.0 (PS256, ES256 or EdDSA)",
        ));
    }
    let jwk: Jwk = serde_json::from_value(jwk_json.clone())
        .map_err(|_| invalid("the DPoP proof's jwk is malformed"))?;
    let key =
        DecodingKey::from_jwk(&jwk).map_err(|_| invalid("the DPoP proof's jwk is unusable"))?;
    let mut validation = Validation::new(header.alg);
    // A proof has no exp or aud; iat is checked below against the server's clock.
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Value>(proof, &key, &validation)
        .map_err(|_| invalid("the DPoP proof's signature does not verify with its jwk"))?
        .claims;
    let claim = |name| claims.get(name).and_then(Value::as_str);
    if claim("htm") != Some(request.method) {
        return Err(invalid("the DPoP proof's htm is not this request's method"));
    }
    let htu = claim("htu")
        .and_then(without_query)
        .ok_or_else(|| invalid("the DPoP proof's htu is not a URI"))?;
    if !request
        .uris
        .iter()
        .filter_map(|u| without_query(u))
        .any(|u| u == htu)
    {
        return Err(invalid("the DPoP proof's htu is not this request's URI"));
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or_else(|| invalid("the DPoP proof has no iat"))?;
    if iat.saturating_sub(now).saturating_abs() > IAT_WINDOW {
        return Err(invalid(
            "the DPoP proof's iat is too far from the server's time",
        ));
    }
    if let Some(token) = request.access_token {
        let expected = crate::secrets::b64(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            token.as_bytes(),
        ));
        if claim("ath") != Some(expected.as_str()) {
            return Err(invalid(
                "the DPoP proof's ath is not this access token's hash",
            ));
        }
    }
    let jti = claim("jti")
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or_else(|| invalid("the DPoP proof has no usable jti"))?
        .to_owned();
    // Checked after the signature, so only the key's holder learns that its nonce was stale.
    if let Some(nonces) = request.nonces
        && !claim("nonce").is_some_and(|n| nonces.accepts(n, now))
    {
        return Err(OAuthError::new(
            ErrorCode::UseDpopNonce,
            "the DPoP proof must carry the nonce of the DPoP-Nonce header",
        ));
    }
    Ok(Checked {
        proof: Proof {
            jkt: crate::jose::thumbprint(jwk_json),
        },
        jti,
        iat,
    })
}

/// RFC 9449 §4.3 step 9: URIs are compared without query and fragment, in the normalised form
/// RFC 3986 §6 gives them (scheme and host lower-cased, default ports dropped).
fn without_query(uri: &str) -> Option<String> {
    let mut url = Url::parse(uri).ok()?;
    url.set_query(None);
    url.set_fragment(None);
    Some(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::without_query;

    #[test]
    fn htu_comparison_ignores_query_fragment_case_and_default_ports() {
        let same = without_query("https://AS.example:443/token?x=1#f");
        assert_eq!(same.as_deref(), Some("https://as.example/token"));
        assert_ne!(
            without_query("https://as.example/token/"),
            without_query("https://as.example/token")
        );
        assert_eq!(without_query("not a uri"), None);
    }
}
