//! The one place an [`OAuthError`] becomes an HTTP response: its status, JSON body, no-store
//! caching and the `WWW-Authenticate` challenge (RFC 6749 §5.1-5.2, RFC 6750 §3, RFC 7591
//! §3.2.2, RFC 9110 §15.5.2); and the status of the error page shown instead of a redirect.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

use crate::protocol::error::{Challenge, Circumstance, ErrorCode, OAuthError};

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    error_description: &'a str,
}

impl OAuthError {
    /// The HTTP status of this error as a direct response: 401 for failed client
    /// authentication and invalid tokens (RFC 6749 §5.2, RFC 6750 §3.1) and for a protected
    /// resource called without any token; 403 for insufficient scope and denied access; 500 and
    /// 503 for the server's own failures; 413 for an oversized body; 400 for the rest.
    pub fn status(&self) -> StatusCode {
        // RFC 9449 §7.1: a resource refuses a bad proof with a DPoP challenge, as 401; the token
        // endpoint answers 400 (§5).
        if self.challenge() == Challenge::Dpop
            && matches!(
                self.code(),
                ErrorCode::InvalidDpopProof | ErrorCode::UseDpopNonce
            )
        {
            return StatusCode::UNAUTHORIZED;
        }
        match (self.circumstance(), self.code()) {
            (Circumstance::NoToken, _) => StatusCode::UNAUTHORIZED,
            (Circumstance::TooLarge, _) => StatusCode::PAYLOAD_TOO_LARGE,
            (Circumstance::Poll, _) => StatusCode::BAD_REQUEST,
            (_, ErrorCode::InvalidClient | ErrorCode::InvalidToken) => StatusCode::UNAUTHORIZED,
            (_, ErrorCode::InsufficientScope | ErrorCode::AccessDenied) => StatusCode::FORBIDDEN,
            (_, ErrorCode::ServerError) => StatusCode::INTERNAL_SERVER_ERROR,
            (_, ErrorCode::TemporarilyUnavailable) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The status of the page shown instead of redirecting (RFC 6749 §4.1.2.1): a page is not
    /// a client authentication challenge, so an unknown client there is 400, not 401.
    pub(crate) fn page_status(&self) -> StatusCode {
        match self.status() {
            StatusCode::UNAUTHORIZED => StatusCode::BAD_REQUEST,
            status => status,
        }
    }
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
            Challenge::Bearer if self.circumstance() == Circumstance::NoToken => {
                Some(r#"Bearer realm="lockspire""#.to_owned())
            }
            Challenge::Bearer => Some(bearer_challenge(self.code(), self.description())),
            Challenge::Dpop => Some(dpop_challenge(self.code(), self.description())),
        };
        if let Some(value) = challenge.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// RFC 9449 §7.1: the DPoP challenge, with the algorithms proofs may use.
fn dpop_challenge(code: ErrorCode, description: &str) -> String {
    let algs = crate::protocol::dpop::DPOP_ALGS.join(" ");
    format!(r#"DPoP algs="{algs}", error="{code}", error_description="{description}""#)
}

/// RFC 6750 §3: the challenge naming what was wrong with the token.
fn bearer_challenge(code: ErrorCode, description: &str) -> String {
    // Descriptions hold no `"` or `\` (see `OAuthError::new`), so they quote as they are.
    format!(r#"Bearer realm="lockspire", error="{code}", error_description="{description}""#)
}
