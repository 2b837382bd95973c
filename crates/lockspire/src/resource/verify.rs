//! Verifying one request to a protected resource: the token (RFC 6750 §2.1, RFC 9068 §4), its
//! audience and scopes, and the proof of possession its binding asks for (RFC 9449 §7, RFC
//! 8705 §3).

use serde_json::{Map, Value};

use super::cache::{VerifiedJwts, jwt_kid};
use super::refusal::{Refusal, Scheme};
use super::token::{AccessToken, TokenBinding};
use super::{Settings, Source};
use crate::mtls::ClientCertificate;
use crate::protocol::dpop;
use crate::protocol::error::{Challenge, ErrorCode, OAuthError};
use crate::protocol::provider::Provider;
use crate::protocol::userinfo::{Presented, presented_token};
use crate::secrets::token_key;
use crate::store::TokenRecord;
use crate::web::request::{authorization, dpop_proof};

/// What verification reads of a request.
pub(crate) struct Request<'a> {
    pub(crate) method: &'a str,
    /// The path the client called, for the proof's `htu`.
    pub(crate) path: &'a str,
    pub(crate) headers: &'a http::HeaderMap,
    pub(crate) certificate: Option<ClientCertificate>,
}

/// Verifies `request` for a route that needs `required` scopes.
pub(crate) async fn verify(
    s: &Settings,
    request: &Request<'_>,
    required: &[String],
) -> Result<AccessToken, Refusal> {
    // A malformed `DPoP` header is challenged with the scheme it tried (RFC 9449 §7.1).
    let presented = presented_token(authorization(request.headers)?, None).map_err(|e| {
        let scheme = (e.challenge() == Challenge::Dpop).then_some(Scheme::Dpop);
        Refusal::new(e, scheme)
    })?;
    let (token, scheme) = match presented {
        Presented::Bearer(token) => (token, Scheme::Bearer),
        Presented::Dpop(token) => (token, Scheme::Dpop),
    };
    // A JWT verified before is not verified again while it is valid, unless every use must
    // also be checked for revocation.
    let remembered =
        (looks_like_jwt(token) && !s.check_revocation).then(|| VerifiedJwts::key(token));
    let now = s.now();
    let cached = remembered
        .as_ref()
        .and_then(|key| s.verified.get(key, now, |kid| s.publishes(kid)));
    let verified = match cached {
        Some(verified) => verified,
        None => {
            let verified = match &s.source {
                Source::InProcess(p) => in_process(p, s, token, scheme).await?,
                Source::Remote(issuer) => issuer.token(s, token, scheme).await?,
            };
            if let (Some(key), Some(kid)) = (remembered, jwt_kid(token)) {
                s.verified.put(key, verified.clone(), kid, now);
            }
            verified
        }
    };
    check_binding(s, request, token, scheme, verified.binding()).await?;
    if let Some(missing) = required.iter().find(|r| !verified.has_scope(r)) {
        return Err(Refusal {
            error: OAuthError::new(
                ErrorCode::InsufficientScope,
                "the access token lacks a scope this resource requires",
            )
            .with_reason(format!("scope {missing} missing")),
            scheme: Some(scheme),
            needed_scope: Some(required.join(" ")),
        });
    }
    Ok(verified)
}

/// RFC 9449 §7.1 and RFC 8705 §3: a bound token is used only by the holder of its key or
/// certificate, a DPoP-bound one only with the DPoP scheme and a proof naming it; a token bound
/// to nothing is never accepted as proof-bearing, nor at a resource that requires DPoP.
async fn check_binding(
    s: &Settings,
    request: &Request<'_>,
    token: &str,
    scheme: Scheme,
    binding: Option<&TokenBinding>,
) -> Result<(), Refusal> {
    let refuse = |reason| Err(Refusal::invalid_token(reason, Some(scheme)));
    match (binding, scheme) {
        (Some(TokenBinding::Dpop { jkt }), Scheme::Dpop) => proof(s, request, token, jkt).await,
        (Some(TokenBinding::Dpop { .. }), Scheme::Bearer) => {
            refuse("a DPoP-bound token presented as a bearer token")
        }
        (_, Scheme::Dpop) => refuse("a token not bound to a DPoP key sent with the DPoP scheme"),
        (_, Scheme::Bearer) if s.dpop_required => {
            refuse("this resource accepts DPoP-bound tokens only")
        }
        (Some(TokenBinding::Certificate { x5t_s256 }), Scheme::Bearer) => {
            let presented = request
                .certificate
                .as_ref()
                .map(ClientCertificate::thumbprint);
            if presented.as_deref() != Some(x5t_s256.as_str()) {
                return refuse("a certificate-bound token presented without its certificate");
            }
            Ok(())
        }
        (None, Scheme::Bearer) if s.sender_constrained => {
            refuse("this resource accepts sender-constrained tokens only")
        }
        (None, Scheme::Bearer) => Ok(()),
    }
}

/// Checks the request's DPoP proof (RFC 9449 §4.3, §7.1): by the key `jkt` the token is bound
/// to, then its `jti` recorded. A proof by another key is refused before anything is recorded,
/// so nobody fills the memory of seen proofs without holding the token's key.
async fn proof(s: &Settings, request: &Request<'_>, token: &str, jkt: &str) -> Result<(), Refusal> {
    let dpop_refusal = |e: OAuthError| Refusal::new(e, Some(Scheme::Dpop));
    let proof = dpop_proof(request.headers)
        .map_err(dpop_refusal)?
        .ok_or_else(|| {
            dpop_refusal(OAuthError::new(
                ErrorCode::InvalidDpopProof,
                "the DPoP scheme needs a DPoP proof",
            ))
        })?;
    let uris = [format!("{}{}", s.origin, request.path)];
    let checks = dpop::Request {
        method: request.method,
        uris: &uris,
        access_token: Some(token),
        nonces: s.nonces.as_ref(),
        profile: s.profile,
    };
    let now = s.now();
    let checked = dpop::check(proof, &checks, now).map_err(dpop_refusal)?;
    if checked.proof.jkt != jkt {
        return Err(Refusal::invalid_token(
            "the DPoP proof is by another key than the token's",
            Some(Scheme::Dpop),
        ));
    }
    match &s.source {
        Source::InProcess(p) => dpop::record(p, &checked, now).await,
        Source::Remote(issuer) => issuer.remember(&checked),
    }
    .map_err(dpop_refusal)
}

/// True for a compact JWS (RFC 7515 §7.1); opaque tokens never hold a dot.
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 2
}

/// RFC 9068 §4: a JWT access token's header type, issuer, audience and validity; its
/// signature was verified before.
pub(crate) fn check_jwt_claims(
    s: &Settings,
    typ: Option<&str>,
    claims: Value,
    now: i64,
    scheme: Scheme,
) -> Result<Map<String, Value>, Refusal> {
    let refuse = |reason| Refusal::invalid_token(reason, Some(scheme));
    // §4: `at+jwt`, or its full media type, so an ID token is never taken for one.
    if !typ.is_some_and(|t| {
        t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
    }) {
        return Err(refuse("the JWT is not an access token (typ)"));
    }
    let Value::Object(claims) = claims else {
        return Err(refuse("the JWT's claims are not an object"));
    };
    if claims.get("iss").and_then(Value::as_str) != Some(s.issuer.as_str()) {
        return Err(refuse("the JWT is from another issuer"));
    }
    if !audience_includes(claims.get("aud"), &s.resource) {
        return Err(refuse("the token is not for this resource (aud)"));
    }
    if claims
        .get("exp")
        .and_then(Value::as_i64)
        .is_none_or(|exp| exp <= now)
    {
        return Err(refuse("the JWT has expired"));
    }
    if claims
        .get("nbf")
        .is_some_and(|nbf| nbf.as_i64().is_none_or(|nbf| nbf > now))
    {
        return Err(refuse("the JWT is not valid yet"));
    }
    Ok(claims)
}

/// RFC 7519 §4.1.3: `aud` is one string or an array of them.
pub(crate) fn audience_includes(aud: Option<&Value>, resource: &str) -> bool {
    match aud {
        Some(Value::String(one)) => one == resource,
        Some(Value::Array(many)) => many.iter().any(|a| a.as_str() == Some(resource)),
        _ => false,
    }
}

/// Verifies `token` beside its issuer: a JWT against the key ring (and the store, when
/// revocation is checked); an opaque token by one read of the store.
async fn in_process(
    p: &Provider,
    s: &Settings,
    token: &str,
    scheme: Scheme,
) -> Result<AccessToken, Refusal> {
    let now = p.now();
    let invalid = |reason| Refusal::invalid_token(reason, Some(scheme));
    if looks_like_jwt(token) {
        let ring = p.keys();
        let (typ, claims) = crate::jose::verify_compact(&ring, token)
            .map_err(|_| invalid("the JWT's signature does not verify with the issuer's keys"))?;
        let claims = check_jwt_claims(s, typ.as_deref(), claims, now, scheme)?;
        if s.check_revocation
            && !matches!(
                p.store
                    .active_token(&token_key(token), now)
                    .await
                    .map_err(OAuthError::from)?,
                Some(TokenRecord::Access(_))
            )
        {
            return Err(invalid("the JWT was revoked"));
        }
        return AccessToken::from_claims(claims).ok_or_else(|| invalid("the JWT lacks claims"));
    }
    let record = match p
        .store
        .active_token(&token_key(token), now)
        .await
        .map_err(OAuthError::from)?
    {
        Some(TokenRecord::Access(record)) => record,
        Some(_) => return Err(invalid("not an access token")),
        None => return Err(invalid("unknown, expired or revoked token")),
    };
    let issued = &record.issued;
    if !issued.resources.iter().any(|r| r == &s.resource) {
        return Err(invalid("the token is not for this resource (aud)"));
    }
    let client = p
        .store
        .client(&p.tenant, &issued.client_id)
        .await
        .map_err(OAuthError::from)?
        .ok_or_else(|| invalid("the token's client is gone"))?;
    // The claims an RFC 9068 JWT of this token would carry, so a handler sees the same
    // whichever format the client gets.
    let mut claims = Map::new();
    claims.insert("iss".into(), Value::String(p.issuer().to_owned()));
    let sub = match &record.user {
        Some(user) => p.subject_for(&client.metadata, &user.subject),
        None => issued.client_id.to_string(),
    };
    claims.insert("sub".into(), Value::String(sub));
    claims.insert("aud".into(), Value::from(issued.resources.clone()));
    claims.insert("exp".into(), Value::from(issued.expires_at));
    claims.insert("iat".into(), Value::from(issued.created_at));
    if let Some(jti) = &record.jti {
        claims.insert("jti".into(), Value::String(jti.clone()));
    }
    claims.insert(
        "client_id".into(),
        Value::String(issued.client_id.to_string()),
    );
    if !issued.scopes.is_empty() {
        claims.insert("scope".into(), Value::String(issued.scopes.to_string()));
    }
    if let Some(binding) = &record.binding {
        claims.insert("cnf".into(), binding.confirmation());
    }
    if let Some(details) = issued.authorization_details.to_member() {
        claims.insert("authorization_details".into(), details);
    }
    AccessToken::from_claims(claims).ok_or_else(|| invalid("the token lacks claims"))
}
