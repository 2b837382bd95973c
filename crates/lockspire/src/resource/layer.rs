//! The tower layer that authenticates requests to a host's API routes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::OriginalUri;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Request};
use tower::{Layer, Service};

use super::verify::{self, verify};
use super::{ResourceServer, Source};

/// Authenticates every request to the routes it wraps, then hands the verified
/// [`AccessToken`](super::AccessToken) to the handler; refuses the others per RFC 6750 §3 and
/// RFC 9449 §7.1. Made by [`ResourceServer::require_token`]; add it with `route_layer` (or
/// `layer` on a router of protected routes only).
#[derive(Clone, Debug)]
pub struct RequireToken {
    rs: ResourceServer,
    scopes: Arc<[String]>,
}

impl RequireToken {
    pub(crate) fn new(rs: ResourceServer) -> Self {
        Self {
            rs,
            scopes: Arc::from(Vec::new()),
        }
    }

    /// The scopes the token must have been granted, every one of them; a token without them is
    /// answered `403 insufficient_scope` naming them (RFC 6750 §3.1).
    pub fn scopes<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }
}

impl<S> Layer<S> for RequireToken {
    type Service = RequireTokenService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireTokenService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`RequireToken`] wraps a route in.
#[derive(Clone, Debug)]
pub struct RequireTokenService<S> {
    inner: S,
    layer: RequireToken,
}

impl<S, B> Service<Request<B>> for RequireTokenService<S>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The clone that was made ready is the one called (tower's `Service` contract).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let settings = &layer.rs.inner;
            let proof_sent = req.headers().contains_key("dpop");
            let outcome = {
                // Nested routers see their path without the prefix; the proof names the whole.
                let path = req
                    .extensions()
                    .get::<OriginalUri>()
                    .map_or_else(|| req.uri().path(), |u| u.0.path())
                    .to_owned();
                let certificate = match &settings.source {
                    Source::InProcess(p) => p
                        .mtls
                        .as_ref()
                        .and_then(|m| m.certificate(req.headers(), req.extensions())),
                    Source::Remote(_) => req
                        .extensions()
                        .get::<crate::mtls::ClientCertificate>()
                        .cloned(),
                };
                let request = verify::Request {
                    method: req.method().as_str(),
                    path: &path,
                    headers: req.headers(),
                    certificate,
                };
                verify(settings, &request, &layer.scopes).await
            };
            let mut response = match outcome {
                Ok(token) => {
                    req.extensions_mut().insert(token);
                    inner.call(req).await?.into_response()
                }
                Err(refusal) => refusal.respond(settings),
            };
            // RFC 9449 §9: answers to proofs carry the resource's current nonce.
            if let Some(nonces) = &settings.nonces
                && proof_sent
                && let Ok(value) = HeaderValue::from_str(&nonces.current(settings.now()))
            {
                response.headers_mut().insert("dpop-nonce", value);
            }
            Ok(response)
        })
    }
}
