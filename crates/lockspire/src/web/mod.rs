//! The HTTP edge: thin axum handlers that parse a request, make one protocol call and render
//! its outcome.

mod authorize;
mod endpoints;
mod error;
mod pages;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, get, post};
use http::{HeaderMap, Method, Request, header};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{Any, CorsLayer};

use crate::protocol::endpoints::{Access, Endpoint};
use crate::protocol::error::OAuthError;
use crate::protocol::params::Params;
use crate::protocol::provider::Provider;

/// Largest request body any endpoint reads; larger ones get 413 before any parsing.
pub(crate) const MAX_BODY: usize = 64 * 1024;

pub(crate) fn router<S: Clone + Send + Sync + 'static>(p: Arc<Provider>) -> Router<S> {
    // Endpoints that browser-based clients (SPAs) call cross-origin: no cookies are involved,
    // so any origin may read the answers.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
        .max_age(std::time::Duration::from_secs(3600));
    let (mut api, mut pages) = (Router::new(), Router::new());
    for e in Endpoint::ALL {
        match e.access() {
            Access::CrossOrigin => api = api.route(e.path(), handler(e)),
            Access::SameOrigin => pages = pages.route(e.path(), handler(e)),
        }
    }
    pages
        .merge(api.layer(cors))
        .with_state(p)
        // A bug that panics answers 500 `server_error` instead of dropping the connection
        // without a response.
        .layer(CatchPanicLayer::custom(panic_response))
}

/// What answers each endpoint, and to which methods. The match is exhaustive: an endpoint added
/// to the table does not compile until it is given a handler here.
fn handler(e: Endpoint) -> MethodRouter<Arc<Provider>> {
    match e {
        Endpoint::OpenIdConfiguration | Endpoint::AuthorizationServerMetadata => {
            get(endpoints::discovery)
        }
        Endpoint::Jwks => get(endpoints::jwks),
        Endpoint::Authorize => get(authorize::authorize).post(authorize::authorize),
        Endpoint::AuthorizeResume => get(authorize::resume),
        Endpoint::Consent => get(authorize::consent_page).post(authorize::consent_decision),
        Endpoint::Token => post(endpoints::token),
        Endpoint::Userinfo => get(endpoints::userinfo).post(endpoints::userinfo),
        Endpoint::Introspect => post(endpoints::introspect),
        Endpoint::Revoke => post(endpoints::revoke),
        Endpoint::Register => post(endpoints::register),
        Endpoint::RegistrationManagement => get(endpoints::manage_registration)
            .put(endpoints::manage_registration)
            .delete(endpoints::manage_registration),
    }
}

/// The response to a handler that panicked; the panic message goes to the log only.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> http::Response<Body> {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %message, "a request handler panicked");
    OAuthError::internal("a request handler panicked").into_response()
}

/// The RFC 8414 §3.1 metadata route of an issuer with a path, for the host's root router.
pub(crate) fn well_known_router<S: Clone + Send + Sync + 'static>(p: Arc<Provider>) -> Router<S> {
    let path = url::Url::parse(p.issuer())
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    if path.is_empty() {
        return Router::new();
    }
    Router::new()
        .route(
            &format!("{}{path}", Endpoint::AuthorizationServerMetadata.path()),
            handler(Endpoint::AuthorizationServerMetadata),
        )
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([Method::GET]),
        )
        .with_state(p)
}

/// Reads a body up to [`MAX_BODY`]; larger bodies are refused with 413.
pub(crate) async fn read_body(body: Body) -> Result<axum::body::Bytes, OAuthError> {
    axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        OAuthError::invalid_request("the request body is too large")
            .with_status(http::StatusCode::PAYLOAD_TOO_LARGE)
    })
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Parses the form body of a request to `endpoint` (RFC 6749 §3.2:
/// `application/x-www-form-urlencoded`) and refuses repeated parameters, before anything else
/// reads the request: client authentication included, so every direct endpoint answers a
/// malformed request the same way. (`/authorize` cannot: until its client and redirect URI are
/// verified, its errors are shown rather than returned, so it checks repeats in that order.)
pub(crate) async fn form(
    req: Request<Body>,
    endpoint: Endpoint,
) -> Result<(http::request::Parts, Params), OAuthError> {
    let (parts, body) = req.into_parts();
    if !is_form(&parts.headers) {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let bytes = read_body(body).await?;
    let params = Params::parse(&bytes)?;
    params.refuse_repeats(endpoint.repeatable())?;
    Ok((parts, params))
}

/// The Authorization header as text, if present and visible ASCII.
pub(crate) fn authorization(headers: &HeaderMap) -> Result<Option<&str>, OAuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(OAuthError::invalid_request(
            "more than one Authorization header",
        ));
    }
    first
        .map(|v| {
            v.to_str()
                .map_err(|_| OAuthError::invalid_request("malformed Authorization header"))
        })
        .transpose()
}
