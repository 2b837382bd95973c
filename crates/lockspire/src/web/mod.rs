//! The HTTP edge: thin axum handlers that parse a request, make one protocol call and render
//! its outcome.

mod authorize;
mod device;
mod endpoints;
mod error;
mod logout;
mod pages;
pub(crate) mod request;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, get, post};
use http::{Method, header};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{Any, CorsLayer};

pub(crate) use authorize::{browser_cookie, new_browser_cookie};

use crate::protocol::endpoints::{Access, Endpoint};
use crate::protocol::error::OAuthError;
use crate::protocol::provider::Provider;

pub(crate) fn router<S: Clone + Send + Sync + 'static>(p: Arc<Provider>) -> Router<S> {
    // Endpoints that browser-based clients (SPAs) call cross-origin: no cookies are involved,
    // so any origin may read the answers.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        // RFC 9449: browser clients send proofs in the `DPoP` header.
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::HeaderName::from_static("dpop"),
        ])
        // RFC 9449 §8: and must be able to read the nonce the server hands them.
        .expose_headers([
            header::HeaderName::from_static("dpop-nonce"),
            header::WWW_AUTHENTICATE,
        ])
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
        Endpoint::PushedAuthorization => post(endpoints::pushed_authorization),
        Endpoint::Userinfo => get(endpoints::userinfo).post(endpoints::userinfo),
        Endpoint::Introspect => post(endpoints::introspect),
        Endpoint::Revoke => post(endpoints::revoke),
        Endpoint::Register => post(endpoints::register),
        Endpoint::RegistrationManagement => get(endpoints::manage_registration)
            .put(endpoints::manage_registration)
            .delete(endpoints::manage_registration),
        Endpoint::DeviceAuthorization => post(device::device_authorization),
        Endpoint::BackchannelAuthentication => post(endpoints::backchannel_authentication),
        Endpoint::DeviceVerification => {
            get(device::verification_page).post(device::verification_decision)
        }
        Endpoint::EndSession => get(logout::end_session).post(logout::end_session),
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
