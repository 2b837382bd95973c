//! The outbox's back-channel logout calls (OpenID Connect Back-Channel Logout 1.0 §2.5): what
//! one carries, and the logout token it sends, signed at each attempt.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::jose::sign_compact;
use crate::protocol::error::OAuthError;
use crate::protocol::provider::Provider;
use crate::secrets::random_id;
use crate::store::ClientRecord;

/// OIDC Back-Channel Logout 1.0 §2.4: the event a logout token carries.
const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// How long a logout token is valid: Back-Channel Logout 1.0 §2.4 recommends at most two
/// minutes.
const LOGOUT_TOKEN_LIFETIME: i64 = 120;

/// What a back-channel logout call carries, sealed in its outbox row; the logout token itself
/// is signed at each attempt, so a retry an hour later is not refused as expired.
#[derive(Serialize, Deserialize)]
pub(crate) struct LogoutCall {
    /// The user as the client knows them (pairwise or public).
    pub(crate) sub: String,
    pub(crate) sid: String,
}

/// A logout token (Back-Channel Logout 1.0 §2.4): signed like the client's ID tokens, typed
/// `logout+jwt` so it can never pass for an ID token, with the logout event, `sub` and `sid`,
/// and never a `nonce`.
pub(crate) fn logout_token(
    p: &Provider,
    client: &ClientRecord,
    call: &LogoutCall,
) -> Result<String, OAuthError> {
    let now = p.now();
    let claims = json!({
        "iss": p.issuer(),
        "aud": client.client_id,
        "iat": now,
        "exp": now + LOGOUT_TOKEN_LIFETIME,
        "jti": random_id(),
        "sub": call.sub,
        "sid": call.sid,
        "events": { LOGOUT_EVENT: {} },
    });
    let keys = p.keys();
    Ok(sign_compact(
        keys.active(client.metadata.id_token_alg())?,
        "logout+jwt",
        &claims,
    )?)
}
