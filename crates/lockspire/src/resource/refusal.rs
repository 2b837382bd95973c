//! How a protected resource refuses a request (RFC 6750 §3, RFC 9449 §7.1, RFC 9728 §5.1).

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use super::Settings;
use crate::protocol::dpop::DPOP_ALGS;
use crate::protocol::error::{Circumstance, ErrorCode, OAuthError};

/// The scheme the client used, which its refusal's challenge names (RFC 9449 §7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    Bearer,
    Dpop,
}

/// A refused request: the error, the scheme to challenge with, and for `insufficient_scope`
/// the scopes needed.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) error: OAuthError,
    pub(crate) scheme: Option<Scheme>,
    pub(crate) needed_scope: Option<String>,
}

impl Refusal {
    pub(crate) fn new(error: OAuthError, scheme: Option<Scheme>) -> Self {
        Self {
            error,
            scheme,
            needed_scope: None,
        }
    }

    /// RFC 6750 §3.1 `invalid_token`: the public description is the same whatever failed, so
    /// a caller learns nothing about tokens it does not hold; the reason is logged.
    pub(crate) fn invalid_token(reason: &'static str, scheme: Option<Scheme>) -> Self {
        Self::new(
            OAuthError::new(
                ErrorCode::InvalidToken,
                "the access token is invalid, expired, revoked or not for this resource",
            )
            .with_reason(reason),
            scheme,
        )
    }

    /// The response, with the challenges of `settings`' resource.
    pub(crate) fn respond(self, settings: &Settings) -> Response {
        let e = &self.error;
        let no_token = e.circumstance() == Circumstance::NoToken;
        let status = match e.code() {
            _ if no_token => StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidToken | ErrorCode::InvalidDpopProof | ErrorCode::UseDpopNonce => {
                StatusCode::UNAUTHORIZED
            }
            ErrorCode::InsufficientScope => StatusCode::FORBIDDEN,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        if status.is_server_error() {
            tracing::error!(error = %e.code(), reason = %e.reason(), "protected resource failed");
        } else {
            tracing::debug!(error = %e.code(), reason = %e.reason(), "protected resource refused");
        }
        let metadata = format!(r#"resource_metadata="{}""#, settings.metadata_url);
        let algs = format!(r#"algs="{}""#, DPOP_ALGS.join(" "));
        // RFC 6750 §3: the error and its description; §3.1 the scope needed.
        let mut params = vec![format!(r#"error="{}""#, e.code())];
        if !e.description().is_empty() {
            params.push(format!(r#"error_description="{}""#, e.description()));
        }
        if let Some(scope) = &self.needed_scope {
            params.push(format!(r#"scope="{scope}""#));
        }
        params.push(metadata.clone());
        let challenges: Vec<String> = if no_token {
            // §3.1: no error code to a request without a token; each scheme the resource
            // accepts is offered (RFC 9449 §7.1).
            let dpop = format!("DPoP {algs}, {metadata}");
            if settings.dpop_required {
                vec![dpop]
            } else {
                vec![format!("Bearer {metadata}"), dpop]
            }
        } else if status.is_server_error() {
            Vec::new()
        } else {
            match self.scheme {
                // RFC 9449 §7.1: the scheme the client used, or the only one this resource
                // accepts.
                Some(Scheme::Dpop) => vec![format!("DPoP {algs}, {}", params.join(", "))],
                _ if settings.dpop_required => {
                    vec![format!("DPoP {algs}, {}", params.join(", "))]
                }
                _ if matches!(
                    e.code(),
                    ErrorCode::InvalidDpopProof | ErrorCode::UseDpopNonce
                ) =>
                {
                    vec![format!("DPoP {algs}, {}", params.join(", "))]
                }
                _ => vec![format!("Bearer {}", params.join(", "))],
            }
        };
        let body = if no_token {
            json!({})
        } else {
            json!({"error": e.code().as_str(), "error_description": e.description()})
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        for challenge in challenges {
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                headers.append(header::WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}

impl From<OAuthError> for Refusal {
    fn from(error: OAuthError) -> Self {
        Self::new(error, None)
    }
}
