//! Request objects (RFC 9101, OIDC Core §6.1): an authorization request as a JWT the client
//! signed, passed by value in `request` at `/authorize` or inside a push to `/par`, optionally
//! nested in a JWE addressed to one of the server's published encryption keys (§6.1), which
//! keeps the request from whoever relays it.
//!
//! The object is verified with the client's registered keys (inline `jwks` or its `jwks_uri`)
//! under an algorithm from [`REQUEST_OBJECT_ALGS`], the client's registered
//! `request_object_signing_alg` when it has one; `none` and shared-secret algorithms never
//! verify. Its claims must name the client (`iss`, and `client_id` when present) and this server
//! (`aud`), carry an `exp` in the future but at most 60 minutes ahead, an `nbf` (when present)
//! not in the future and at most 60 minutes old, and a `jti` that is accepted once until `exp`,
//! whichever process sees it. Under FAPI 2.0 the alg is PS256, ES256 or EdDSA, and under FAPI
//! 2.0 Message Signing `nbf` is required and at most 60 minutes before `exp`. Then its claims are the request: every authorization parameter inside it is honoured, and
//! parameters only in the query are ignored (§6.3).

use jsonwebtoken::Validation;
use serde_json::Value;

use super::client::REQUEST_OBJECT_ALGS;
use super::error::{ErrorCode, OAuthError};
use super::jti::{JtiUse, first_use};
use super::params::Params;
use super::provider::Provider;
use crate::jose::{MAX_JWT_LEN, alg_name, jwe};
use crate::store::ClientRecord;

/// Seconds of clock difference tolerated on `exp` and `nbf`.
const LEEWAY: i64 = 30;

/// The oldest `nbf`, and the furthest `exp`, accepted: RFC 9101 §10.2 asks for short-lived
/// objects and FAPI 2.0 caps them at 60 minutes. The cap also bounds how long a `jti` must be
/// remembered.
const MAX_AGE: i64 = 3600;

/// Claims about the JWT itself, not authorization parameters.
const JWT_CLAIMS: [&str; 6] = ["iss", "aud", "exp", "nbf", "iat", "jti"];

/// A refusal that tells the client which rule its object broke.
fn invalid(reason: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRequestObject, reason)
}

/// A refusal of the signature or the keys: the detail (a key lookup, a fetch of the client's
/// `jwks_uri`) stays in the log, where it cannot serve to probe what the server can reach.
fn unverified(reason: String) -> OAuthError {
    OAuthError::new(
        ErrorCode::InvalidRequestObject,
        "the request object does not verify with the client's registered keys, or its iss or aud is wrong",
    )
    .with_reason(reason)
}

/// What kind of signed request is verified: an authorization request object (RFC 9101), or a
/// signed backchannel authentication request (CIBA Core §7.1.1), which names its alg at
/// registration, must carry `iat`, `nbf` and `jti`, and is never encrypted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Authorization,
    Backchannel,
}

/// The authorization parameters the request object `request` of `client` carries, once it
/// verifies; `client_id` among them is always `client`'s.
pub(crate) async fn parameters(
    p: &Provider,
    client: &ClientRecord,
    request: &str,
) -> Result<Params, OAuthError> {
    verified(p, client, request, Purpose::Authorization).await
}

/// The parameters of the signed backchannel authentication request `request` of `client`
/// (CIBA Core §7.1.1), once it verifies; refusals are `invalid_request` (§13).
pub(crate) async fn backchannel_parameters(
    p: &Provider,
    client: &ClientRecord,
    request: &str,
) -> Result<Params, OAuthError> {
    verified(p, client, request, Purpose::Backchannel)
        .await
        .map_err(|e| match e.code() {
            ErrorCode::InvalidRequestObject => OAuthError::new(
                ErrorCode::InvalidRequest,
                e.description()
                    .replace("request object", "signed authentication request"),
            )
            .with_reason(e.reason().to_owned()),
            _ => e,
        })
}

async fn verified(
    p: &Provider,
    client: &ClientRecord,
    request: &str,
    purpose: Purpose,
) -> Result<Params, OAuthError> {
    if request.len() > MAX_JWT_LEN {
        return Err(invalid("request object too large"));
    }
    let nested;
    let request = if request.split('.').count() == 5 && purpose == Purpose::Authorization {
        nested = decrypt(p, request)?;
        nested.as_str()
    } else {
        request
    };
    let header = jsonwebtoken::decode_header(request)
        .map_err(|e| invalid(format!("malformed request object header: {e}")))?;
    let alg = alg_name(header.alg);
    let registered = match purpose {
        Purpose::Authorization => client.metadata.request_object_signing_alg.as_deref(),
        Purpose::Backchannel => Some(
            client
                .metadata
                .backchannel_authentication_request_signing_alg
                .as_deref()
                .ok_or_else(|| {
                    invalid(
                        "this client registered no backchannel_authentication_request_signing_alg",
                    )
                })?,
        ),
    };
    let profile = p.config.profile_for(&client.metadata);
    let allowed = REQUEST_OBJECT_ALGS.contains(&alg)
        && profile.allows_alg(alg)
        && registered.is_none_or(|registered| registered == alg);
    if !allowed {
        return Err(invalid(format!(
            "request object alg {:?} is not allowed",
            header.alg
        )));
    }
    let client_id = client.client_id.as_str();
    let mut validation = Validation::new(header.alg);
    // The library checks the presence of these; `iat` and `jti` are checked below.
    match purpose {
        Purpose::Authorization => validation.set_required_spec_claims(&["exp", "iss", "aud"]),
        Purpose::Backchannel => validation.set_required_spec_claims(&["exp", "iss", "aud", "nbf"]),
    }
    validation.set_issuer(&[client_id]);
    // RFC 9101 §4: the audience is the authorization server's issuer identifier.
    validation.set_audience(&[p.issuer()]);
    // Times are checked below against the server's clock, the one the jti is remembered by.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    let claims = super::client_keys::verify_with_client_keys(
        p,
        client,
        request,
        header.kid.as_deref(),
        &validation,
    )
    .await
    .map_err(unverified)?;
    let now = p.now();
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    if exp.saturating_add(LEEWAY) < now {
        return Err(invalid("request object expired"));
    }
    if exp.saturating_sub(now) > MAX_AGE + LEEWAY {
        return Err(invalid("request object exp is more than 60 minutes ahead"));
    }
    // CIBA Core §7.1.1: a signed authentication request says when it was made.
    if purpose == Purpose::Backchannel {
        let iat = claims
            .get("iat")
            .and_then(Value::as_i64)
            .ok_or_else(|| invalid("iat is missing or not a number"))?;
        if iat > now.saturating_add(LEEWAY) || now.saturating_sub(iat) > MAX_AGE {
            return Err(invalid("iat is in the future or more than 60 minutes old"));
        }
    }
    // FAPI 2.0 Message Signing §5.3.1: an `nbf`, at most 60 minutes before `exp`.
    if profile.signs_messages() && claims.get("nbf").is_none() {
        return Err(invalid(
            "request object without nbf (FAPI 2.0 Message Signing)",
        ));
    }
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf.as_i64().ok_or_else(|| invalid("nbf is not a number"))?;
        if nbf > now.saturating_add(LEEWAY) {
            return Err(invalid("request object not yet valid"));
        }
        if now.saturating_sub(nbf) > MAX_AGE {
            return Err(invalid("request object nbf is more than 60 minutes old"));
        }
        if profile.signs_messages() && exp.saturating_sub(nbf) > MAX_AGE {
            return Err(invalid(
                "request object lives more than 60 minutes (exp - nbf)",
            ));
        }
    }
    if claims
        .get("client_id")
        .is_some_and(|named| named.as_str() != Some(client_id))
    {
        return Err(invalid(
            "client_id in the request object names another client",
        ));
    }
    let namespace = match purpose {
        Purpose::Authorization => "request_object",
        Purpose::Backchannel => "backchannel_request",
    };
    match first_use(p, namespace, client_id, &claims, exp.saturating_add(LEEWAY)).await? {
        JtiUse::First => {}
        JtiUse::Unusable => return Err(invalid("request object without a usable jti")),
        JtiUse::Replayed => {
            return Err(invalid("request object replayed (its jti was seen before)"));
        }
    }
    to_params(client_id, &claims)
}

/// RFC 9101 §6.1: an encrypted request object is a JWE addressed to one of the server's
/// published encryption keys, holding the signed object. Any failure is the same error, whatever
/// step failed (RFC 7516 §11.4).
fn decrypt(p: &Provider, request: &str) -> Result<String, OAuthError> {
    let undecryptable = || invalid("the encrypted request object does not decrypt");
    let addressed = jwe::Addressed::parse(request).map_err(|_| undecryptable())?;
    let keys = p.keys();
    let plaintext = keys
        .decrypting_keys(addressed.alg.key_type(), addressed.kid())
        .find_map(|key| addressed.decrypt(key).ok())
        .ok_or_else(undecryptable)?;
    let nested = String::from_utf8(plaintext).map_err(|_| undecryptable())?;
    // Encryption hides the request; only the client's signature says who made it.
    if nested.split('.').count() != 3 {
        return Err(invalid(
            "the encrypted request object must hold a signed request object",
        ));
    }
    Ok(nested)
}

/// The object's claims as parameters: strings as they are, numbers and booleans as text,
/// `resource` arrays as repeated parameters, objects and other arrays (`claims`,
/// `authorization_details`) as their JSON.
fn to_params(client_id: &str, claims: &Value) -> Result<Params, OAuthError> {
    let Value::Object(members) = claims else {
        return Err(invalid("request object claims are not an object"));
    };
    let mut pairs = vec![("client_id".to_owned(), client_id.to_owned())];
    for (name, value) in members {
        if name == "client_id" || JWT_CLAIMS.contains(&name.as_str()) {
            continue;
        }
        // §5: a request object does not refer to another one.
        if name == "request" || name == "request_uri" {
            return Err(invalid(
                "a request object cannot hold request or request_uri",
            ));
        }
        match (name.as_str(), value) {
            (_, Value::Null) => {}
            // JSON-valued parameters are JSON inside the object (OIDC Core §6.1, RFC 9396 §3),
            // not JSON encoded again as a string.
            ("claims" | "authorization_details", Value::String(_)) => {
                return Err(invalid(format!(
                    "{name} inside a request object must be JSON, not a string"
                )));
            }
            (_, Value::String(s)) => pairs.push((name.clone(), s.clone())),
            (_, Value::Number(n)) => pairs.push((name.clone(), n.to_string())),
            (_, Value::Bool(b)) => pairs.push((name.clone(), b.to_string())),
            ("resource", Value::Array(values)) => {
                for v in values {
                    let v = v
                        .as_str()
                        .ok_or_else(|| invalid("resource values are not strings"))?;
                    pairs.push((name.clone(), v.to_owned()));
                }
            }
            (_, other) => pairs.push((name.clone(), other.to_string())),
        }
    }
    if pairs.len() > super::params::MAX_PARAMS {
        return Err(invalid("the request object has too many parameters"));
    }
    Ok(Params::from_pairs(pairs))
}
