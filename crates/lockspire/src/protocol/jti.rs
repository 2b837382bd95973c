//! One-time JWTs from clients (RFC 7519 §4.1.7 `jti`): an assertion (RFC 7523 §3) or a request
//! object (RFC 9101 §10.8) is accepted once. Its `jti` is recorded, per client, until the JWT
//! could no longer be accepted anyway, by one conditional write that every process shares.

use serde_json::Value;

use super::provider::Provider;
use crate::clock::UnixTime;
use crate::store::StoreError;

/// What recording a JWT's `jti` found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum JtiUse {
    /// First use: accept the JWT.
    First,
    /// Seen before: a replay.
    Replayed,
    /// Missing, empty or longer than 256 characters.
    Unusable,
}

/// Records the `jti` among `claims`, for `client_id` in `namespace`, until one second after
/// `last_accepted`, the last instant the JWT could be accepted.
pub(crate) async fn first_use(
    p: &Provider,
    namespace: &'static str,
    client_id: &str,
    claims: &Value,
    last_accepted: UnixTime,
) -> Result<JtiUse, StoreError> {
    let Some(jti) = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty() && j.len() <= 256)
    else {
        return Ok(JtiUse::Unusable);
    };
    let first = p
        .store
        .record_once(
            namespace,
            &format!("{client_id}\u{0}{jti}"),
            last_accepted.saturating_add(1),
            p.now(),
        )
        .await?;
    Ok(if first {
        JtiUse::First
    } else {
        JtiUse::Replayed
    })
}
