//! OAuth 2.0 Protected Resource Metadata (RFC 9728): what a client needs to know to call the
//! resource, at the well-known URL derived from its identifier.

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, header};
use serde_json::{Value, json};
use tower_http::cors::{Any, CorsLayer};

use super::{ResourceServer, Settings, Source};
use crate::protocol::dpop::DPOP_ALGS;

/// The RFC 9728 §2 document of `s`.
pub(crate) fn document(s: &Settings) -> Value {
    let mut doc = json!({
        "resource": s.resource,
        "authorization_servers": [s.issuer],
        // RFC 6750 §2.1 only: a token in a query string or form body leaks into logs and
        // caches (RFC 9700 §4.3.2).
        "bearer_methods_supported": ["header"],
        "dpop_signing_alg_values_supported": DPOP_ALGS,
    });
    if !s.scopes_supported.is_empty() {
        doc["scopes_supported"] = json!(s.scopes_supported);
    }
    if let Some(name) = &s.resource_name {
        doc["resource_name"] = json!(name);
    }
    if s.dpop_required {
        doc["dpop_bound_access_tokens_required"] = json!(true);
    }
    // Certificates reach an in-process resource the way they reach the issuer.
    if let Source::InProcess(p) = &s.source
        && p.mtls.is_some()
    {
        doc["tls_client_certificate_bound_access_tokens"] = json!(true);
    }
    doc
}

impl ResourceServer {
    /// A router serving this resource's RFC 9728 metadata at
    /// [`ResourceServer::metadata_url`]'s path (`/.well-known/oauth-protected-resource`
    /// followed by the resource's path, §3.1); merge it at the host's root. Any origin may read
    /// it, as clients in browsers must.
    pub fn metadata_router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let body = document(&self.inner).to_string();
        let serve = move || {
            let body = body.clone();
            async move {
                let mut r: Response = body.into_response();
                let h = r.headers_mut();
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                h.insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=300"),
                );
                r
            }
        };
        Router::new()
            .route(&self.inner.metadata_path, get(serve))
            .layer(CorsLayer::new().allow_origin(Any))
    }
}
