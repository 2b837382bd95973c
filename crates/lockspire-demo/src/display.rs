//! How the demo client shows what went over the wire: pretty JSON, and secrets shortened so a
//! page never holds a live token.

use serde::Serialize;
use serde_json::Value;

/// Pretty JSON for display.
pub(crate) fn pretty(value: &impl Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("(not displayable: {e})"))
}

/// The first and last characters of a secret and its length: enough to tell secrets apart
/// (tokens issued together share their first characters, the issue time), useless to replay.
pub(crate) fn truncate(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() <= 16 {
        return format!("… ({} characters)", chars.len());
    }
    let head: String = chars[..8].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail} ({} characters)", chars.len())
}

/// A token response with its bearer secrets shortened (RFC 6749 §5.1 members, and the ID
/// token), pretty-printed.
pub(crate) fn redacted_tokens(mut response: Value) -> String {
    if let Value::Object(map) = &mut response {
        for field in ["access_token", "refresh_token", "id_token"] {
            if let Some(Value::String(secret)) = map.get_mut(field) {
                *secret = truncate(secret);
            }
        }
    }
    pretty(&response)
}
