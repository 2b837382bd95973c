//! ID tokens (OIDC Core §2, §3.1.3.6, §3.1.3.7).

use aws_lc_rs::digest;
use serde_json::{Map, Value, json};

use super::scope::release_claims;
use crate::host::{Claims, Subject};
use crate::jose::{SigningAlg, sign_compact};
use crate::model::client::ClientId;
use crate::protocol::error::{ErrorCode, OAuthError};
use crate::protocol::provider::Provider;
use crate::secrets::b64;
use crate::store::{ClientRecord, GrantDetails};

/// What an ID token says.
pub(crate) struct IdTokenInput<'a> {
    pub(crate) client: &'a ClientRecord,
    pub(crate) subject: &'a str,
    pub(crate) auth_time: i64,
    pub(crate) nonce: Option<&'a str>,
    pub(crate) access_token: Option<&'a str>,
    pub(crate) scopes: &'a [String],
    pub(crate) details: &'a GrantDetails,
    /// Tokens pushed to a CIBA client (CIBA Core §10.3.1).
    pub(crate) pushed: Option<Pushed<'a>>,
    /// The OP browser session of the grant (Front-Channel Logout 1.0 §3, Back-Channel Logout
    /// 1.0 §2.1: the `sid` claim), if it was made in one.
    pub(crate) sid: Option<&'a str>,
}

/// What the ID token of pushed tokens names beside `at_hash`: the request, and the refresh
/// token pushed with it.
pub(crate) struct Pushed<'a> {
    pub(crate) auth_req_id: &'a str,
    pub(crate) refresh_token: Option<&'a str>,
}

/// OIDC Core §3.1.3.6: base64url of the left-most half of the hash of the token's ASCII octets,
/// using the hash of the ID token's JWS alg.
pub(crate) fn half_hash(alg: SigningAlg, value: &str) -> String {
    let d = digest::digest(alg.half_hash_algorithm(), value.as_bytes());
    let bytes = d.as_ref();
    b64(&bytes[..bytes.len() / 2])
}

/// Fetches the host's claims for a subject; `invalid_grant` when the account no longer exists.
pub(crate) async fn host_claims(
    p: &Provider,
    client_id: &ClientId,
    subject: &str,
    scopes: &[String],
) -> Result<Claims, OAuthError> {
    let subject = Subject::new(subject).map_err(|e| OAuthError::internal(e.to_string()))?;
    p.resolver
        .claims(&subject, &p.context(client_id, scopes))
        .await?
        .ok_or_else(|| OAuthError::new(ErrorCode::InvalidGrant, "the account no longer exists"))
}

/// Signs an ID token with the client's registered alg (RS256 unless it chose another), from
/// the host's claims fetched beforehand (host code never runs inside a transaction).
pub(crate) fn issue(
    p: &Provider,
    input: IdTokenInput<'_>,
    host: &Claims,
) -> Result<String, OAuthError> {
    let alg = input.client.metadata.id_token_alg();
    let requested = input
        .details
        .claims
        .as_ref()
        .and_then(|c| c.get("id_token"));
    let now = p.now();
    let mut claims: Map<String, Value> = release_claims(&host.id_token, input.scopes, requested);
    let protocol = json!({
        "iss": p.issuer(),
        "sub": p.subject_for(&input.client.metadata, input.subject),
        "aud": input.client.client_id,
        "exp": now + p.config.lifetimes.id_token,
        "iat": now,
        "auth_time": input.auth_time,
    });
    if let Value::Object(protocol) = protocol {
        claims.extend(protocol);
    }
    if let Some(nonce) = input.nonce {
        claims.insert("nonce".into(), Value::String(nonce.to_owned()));
    }
    if let Some(at) = input.access_token {
        claims.insert("at_hash".into(), Value::String(half_hash(alg, at)));
    }
    if let Some(pushed) = &input.pushed {
        claims.insert(
            "urn:openid:params:jwt:claim:auth_req_id".into(),
            Value::String(pushed.auth_req_id.to_owned()),
        );
        if let Some(rt) = pushed.refresh_token {
            claims.insert(
                "urn:openid:params:jwt:claim:rt_hash".into(),
                Value::String(half_hash(alg, rt)),
            );
        }
    }
    if let Some(sid) = input.sid {
        claims.insert("sid".into(), Value::String(sid.to_owned()));
    }
    if let Some(acr) = &input.details.acr {
        claims.insert("acr".into(), Value::String(acr.clone()));
    }
    if !input.details.amr.is_empty() {
        claims.insert("amr".into(), Value::from(input.details.amr.clone()));
    }
    let keys = p.keys();
    Ok(sign_compact(keys.active(alg)?, "JWT", &claims)?)
}

/// An ID token this server issued, its signature verified.
#[derive(Debug)]
pub(crate) struct IssuedIdToken {
    /// The client it was issued to (`aud`).
    pub(crate) client_id: String,
    /// `sub` as that client knows the user (pairwise or public).
    pub(crate) sub: String,
    /// The session id its client knows its OP session by.
    pub(crate) sid: Option<String>,
    /// `exp`.
    pub(crate) expires_at: i64,
    /// `auth_time`: which sign-in it tells of.
    pub(crate) auth_time: i64,
}

/// Reads `token` as an ID token this server signed (OIDC Core §3.1.3.7 steps 2, 3 and 6: our
/// issuer, our key, one audience), whether or not it has expired; `None` for anything else.
/// The other JWTs this server signs with the same keys (JARM responses, signed userinfo,
/// access tokens, logout tokens) are told apart by what only an ID token has: the `JWT` type
/// with `auth_time` (always issued here) and `sub`.
pub(crate) fn verify(p: &Provider, token: &str) -> Option<IssuedIdToken> {
    let (typ, claims) = crate::jose::verify_compact(&p.keys(), token).ok()?;
    if typ.as_deref() != Some("JWT")
        || claims.get("iss").and_then(Value::as_str) != Some(p.issuer())
    {
        return None;
    }
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    let number = |name: &str| claims.get(name).and_then(Value::as_i64);
    Some(IssuedIdToken {
        client_id: text("aud")?,
        sub: text("sub")?,
        sid: text("sid"),
        expires_at: number("exp")?,
        // Only ID tokens have it here: the host cannot put it into signed userinfo, which
        // drops protocol claims (`PROTOCOL_CLAIMS`).
        auth_time: number("auth_time")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_matches_oidc_example() {
        // OIDC Core Appendix A.3 access token and its at_hash (RS256).
        assert_eq!(
            half_hash(
                SigningAlg::RS256,
                "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
            ),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }
}
