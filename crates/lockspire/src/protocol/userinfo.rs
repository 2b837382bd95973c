//! The UserInfo endpoint (OIDC Core §5.3) as an OAuth protected resource (RFC 6750).

use crate::protocol::endpoints::Endpoint;
use crate::store::Binding;
use serde_json::{Map, Value};

use super::id_token::host_claims;
use super::scope::release_claims;
use crate::jose::sign_compact;
use crate::protocol::error::{Challenge, ErrorCode, OAuthError};
use crate::protocol::provider::Provider;
use crate::secrets::token_key;
use crate::store::TokenRecord;

fn invalid_token(reason: &'static str) -> OAuthError {
    OAuthError::new(
        ErrorCode::InvalidToken,
        "the access token is invalid, expired or revoked",
    )
    .with_reason(reason)
    .with_challenge(Challenge::Bearer)
}

/// The credentials of an `Authorization` header of the scheme `prefix` (`"Bearer "`), the scheme
/// compared case-insensitively (RFC 9110 §11.1). `get` rather than indexing: a header that is
/// not ASCII has no boundary to cut at, and is simply not of this scheme.
fn scheme_value<'a>(header: &'a str, prefix: &str) -> Option<&'a str> {
    let (scheme, value) = (header.get(..prefix.len())?, header.get(prefix.len()..)?);
    Some(value.trim())
        .filter(|_| scheme.eq_ignore_ascii_case(prefix))
        .filter(|t| !t.is_empty())
}

/// Extracts the bearer token: the Authorization header (RFC 6750 §2.1) or, for POST, the form
/// body (§2.2) — never both (§2: exactly one method).
pub(crate) fn bearer_token<'a>(
    authorization: Option<&'a str>,
    form_token: Option<&'a str>,
) -> Result<&'a str, OAuthError> {
    // RFC 6750 §3.1: a request with another scheme (or none) lacks a token of this method and
    // gets a bare challenge, not an error code.
    let header = authorization.and_then(|h| scheme_value(h, "Bearer "));
    if header.is_some_and(|t| !is_b64token(t)) {
        return Err(
            OAuthError::invalid_request("the access token is not a valid b64token")
                .with_challenge(Challenge::Bearer),
        );
    }
    match (header, form_token) {
        (Some(_), Some(_)) => Err(OAuthError::invalid_request(
            "the access token was sent in more than one way",
        )
        .with_challenge(Challenge::Bearer)),
        (Some(t), None) | (None, Some(t)) => Ok(t),
        // RFC 6750 §3.1: a request without any token gets a bare challenge and no error code.
        (None, None) => Err(OAuthError::no_token()),
    }
}

/// RFC 6750 §2.1 (and RFC 9449 §7.1): the credentials after the scheme are one `b64token`,
/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`; a space or a comma means the
/// header is malformed, not that a token is unknown.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// A userinfo answer: JSON, or a JWS when the client registered
/// `userinfo_signed_response_alg` (OIDC Core §5.3.2).
pub(crate) enum UserinfoResponse {
    Json(Map<String, Value>),
    Signed(String),
}

/// How the access token came: as a bearer token (RFC 6750 §2), or with the DPoP scheme and a
/// proof (RFC 9449 §7.1).
pub(crate) enum Presented<'a> {
    Bearer(&'a str),
    Dpop(&'a str),
}

/// The access token of a request: the `Authorization` header with the `Bearer` or `DPoP`
/// scheme (case-insensitive, RFC 9110 §11.1), or the form's `access_token` (bearer only).
pub(crate) fn presented_token<'a>(
    authorization: Option<&'a str>,
    form_token: Option<&'a str>,
) -> Result<Presented<'a>, OAuthError> {
    // `get` rather than indexing: a header that is not ASCII has no boundary to cut at, and
    // is simply not of this scheme.
    if let Some(token) = authorization.and_then(|h| scheme_value(h, "DPoP ")) {
        if !is_b64token(token) {
            return Err(
                OAuthError::invalid_request("the access token is not a valid b64token")
                    .with_challenge(Challenge::Dpop),
            );
        }
        if form_token.is_some() {
            return Err(OAuthError::invalid_request(
                "the access token was sent in more than one way",
            )
            .with_challenge(Challenge::Dpop));
        }
        return Ok(Presented::Dpop(token));
    }
    bearer_token(authorization, form_token).map(Presented::Bearer)
}

/// Answers a userinfo request: checks the DPoP proof when the token came with the DPoP scheme,
/// then [`userinfo`]. Errors of a DPoP request carry a DPoP challenge (RFC 9449 §7.1).
pub(crate) async fn answer(
    p: &Provider,
    presented: Presented<'_>,
    proof: Option<&str>,
    method: &str,
    certificate: Option<&crate::mtls::ClientCertificate>,
) -> Result<UserinfoResponse, OAuthError> {
    let (token, proof) = match presented {
        Presented::Bearer(token) => return userinfo(p, token, None, certificate).await,
        Presented::Dpop(token) => (token, proof),
    };
    let with_dpop_challenge = |e: OAuthError| match e.challenge() {
        Challenge::Bearer | Challenge::None => e.with_challenge(Challenge::Dpop),
        _ => e,
    };
    let proof = proof.ok_or_else(|| {
        OAuthError::new(
            ErrorCode::InvalidDpopProof,
            "the DPoP scheme needs a DPoP proof",
        )
        .with_challenge(Challenge::Dpop)
    })?;
    let uris = Endpoint::Userinfo.urls(&p.config);
    let request = super::dpop::Request {
        method,
        uris: &uris,
        access_token: Some(token),
        // The server-wide setting: the token's client is not known before the proof is checked.
        nonces: p.required_dpop_nonces(None),
        // The server's profile: the token's client is known only after the proof is checked.
        profile: p.config.security_profile,
    };
    let proof = super::dpop::verify(p, proof, &request)
        .await
        .map_err(with_dpop_challenge)?;
    userinfo(p, token, Some(&proof.jkt), certificate)
        .await
        .map_err(with_dpop_challenge)
}

/// Returns the claims about the token's subject that its grant releases; `jkt` is the key a
/// verified DPoP proof of this request holds.
pub(crate) async fn userinfo(
    p: &Provider,
    token: &str,
    jkt: Option<&str>,
    certificate: Option<&crate::mtls::ClientCertificate>,
) -> Result<UserinfoResponse, OAuthError> {
    let record = match p.store.active_token(&token_key(token), p.now()).await? {
        Some(TokenRecord::Access(record)) => record,
        Some(_) => return Err(invalid_token("not an access token")),
        None => return Err(invalid_token("unknown, expired or revoked token")),
    };
    match &record.binding {
        // RFC 8705 §3: a certificate-bound token is usable only with that certificate.
        Some(Binding::Certificate(bound))
            if certificate
                .map(crate::mtls::ClientCertificate::thumbprint)
                .as_deref()
                != Some(bound.as_str()) =>
        {
            return Err(invalid_token(
                "certificate-bound token presented without its certificate",
            ));
        }
        // RFC 9449 §7.1: a DPoP-bound token is never a bearer token; it comes with a proof of
        // its key.
        Some(Binding::Dpop(bound)) if jkt != Some(bound.as_str()) => {
            return Err(invalid_token(
                "a DPoP-bound token used without a proof of its key",
            ));
        }
        // And a proof does not turn a token bound to nothing (or to a certificate) into one.
        Some(Binding::Certificate(_)) | None if jkt.is_some() => {
            return Err(invalid_token(
                "a token not bound to a DPoP key presented with the DPoP scheme",
            ));
        }
        _ => {}
    }
    let scopes = &record.issued.scopes;
    if !scopes.contains("openid") {
        return Err(OAuthError::new(
            ErrorCode::InsufficientScope,
            "the token was not granted the openid scope",
        )
        .with_challenge(Challenge::Bearer));
    }
    let Some(user) = &record.user else {
        return Err(invalid_token("token has no subject"));
    };
    let subject = user.subject.as_str();
    let grant = p
        .store
        .grant(&user.grant_id)
        .await?
        .ok_or_else(|| invalid_token("grant missing"))?;
    let claims = host_claims(p, &record.issued.client_id, subject, scopes)
        .await
        .map_err(|e| {
            if e.code() == ErrorCode::InvalidGrant {
                invalid_token("account no longer exists")
            } else {
                e
            }
        })?;
    let details = grant.details()?;
    let requested = details.claims.as_ref().and_then(|c| c.get("userinfo"));
    let client = p
        .store
        .client(&p.tenant, &record.issued.client_id)
        .await?
        .ok_or_else(|| invalid_token("client missing"))?;
    let mut out = release_claims(&claims.userinfo, scopes, requested);
    out.insert(
        "sub".into(),
        Value::String(p.subject_for(&client.metadata, subject)),
    );
    let Some(alg) = client.metadata.userinfo_alg() else {
        return Ok(UserinfoResponse::Json(out));
    };
    // OIDC Core §5.3.2: a signed response carries iss and aud.
    out.insert("iss".into(), Value::String(p.issuer().to_owned()));
    out.insert("aud".into(), Value::String(client.client_id.to_string()));
    let keys = p.keys();
    Ok(UserinfoResponse::Signed(sign_compact(
        keys.active(alg)?,
        "JWT",
        &out,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::error::Circumstance;

    #[test]
    fn the_scheme_is_case_insensitive_and_a_token_is_one_b64token() {
        assert!(matches!(
            presented_token(Some("BEARER abc"), None),
            Ok(Presented::Bearer("abc"))
        ));
        assert!(matches!(
            presented_token(Some("dpop a.b-c_d~e+f/g=="), None),
            Ok(Presented::Dpop(_))
        ));
        for malformed in ["Bearer a b", "Bearer a,b", "DPoP ==", "DPoP a b"] {
            let e = presented_token(Some(malformed), None)
                .map(|_| ())
                .expect_err(malformed);
            assert_eq!(e.code(), ErrorCode::InvalidRequest, "{malformed}");
            assert_eq!(e.circumstance(), Circumstance::Ordinary, "{malformed}");
        }
        // RFC 6750 §3.1: another scheme, or none usable, is a request without a token.
        for other in ["Basic abc", "Bearer ", "Ƨ  Bearer x", "Bear\u{1a7}r x"] {
            let e = presented_token(Some(other), None)
                .map(|_| ())
                .expect_err(other);
            assert_eq!(e.circumstance(), Circumstance::NoToken, "{other}");
        }
    }
}
