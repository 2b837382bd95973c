//! The one place an [`OAuthError`] becomes an HTTP response: JSON body, status, no-store
//! caching and the `WWW-Authenticate` challenge (RFC 6749 §5.1-5.2, RFC 6750 §3, RFC 9110
//! §15.5.2).

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

use crate::protocol::error::{Challenge, ErrorCode, OAuthError};

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    error_description: &'a str,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        if self.status().is_server_error() {
            tracing::error!(error = %self.code(), reason = %self.reason(), "request failed");
        } else {
            tracing::debug!(error = %self.code(), reason = %self.reason(), "request refused");
        }
        let body = ErrorBody {
            error: self.code().as_str(),
            error_description: self.description(),
        };
        let mut response = (self.status(), Json(body)).into_response();
        let headers = response.headers_mut();
        // RFC 6749 §5.1/§5.2: responses carrying token endpoint errors must not be cached.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        let challenge = match self.challenge() {
            // RFC 9110 §15.5.2: every 401 carries a challenge; client authentication is Basic.
            Challenge::None if self.status() == StatusCode::UNAUTHORIZED => {
                Some(r#"Basic realm="lockspire""#.to_owned())
            }
            Challenge::None => None,
            Challenge::Basic => Some(r#"Basic realm="lockspire""#.to_owned()),
            Challenge::Bearer => Some(bearer_challenge(self.code(), self.description())),
        };
        if let Some(value) = challenge.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// RFC 6750 §3: no error attributes when the request carried no token at all.
fn bearer_challenge(code: ErrorCode, description: &str) -> String {
    if code == ErrorCode::InvalidRequest && description.is_empty() {
        return r#"Bearer realm="lockspire""#.to_owned();
    }
    // Descriptions hold no `"` or `\` (see `OAuthError::new`), so they quote as they are.
    format!(r#"Bearer realm="lockspire", error="{code}", error_description="{description}""#)
}
