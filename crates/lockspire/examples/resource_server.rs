//! A protected API as a service of its own, verifying the access tokens of a Lockspire issuer
//! running elsewhere (the resource-server toolkit in remote mode). See
//! `docs/resource-servers.md` for a walk-through against the demo.
//!
//! ```sh
//! ISSUER=http://127.0.0.1:4000 cargo run -p lockspire --example resource_server
//! ```
//!
//! Settings, from the environment:
//! - `ISSUER`: the issuer to trust [http://127.0.0.1:4000];
//! - `ADDR`: where this service listens [127.0.0.1:4001];
//! - `RESOURCE`: its resource identifier, the audience its tokens must carry
//!   [http://ADDR/api]; the issuer must list it among the resources it grants tokens for;
//! - `INTROSPECTION_CLIENT_ID`, `INTROSPECTION_CLIENT_SECRET`: a client the issuer registered
//!   as this resource's server (`resource_server_for`), to accept opaque tokens too; without
//!   them only JWT access tokens are accepted;
//! - `REQUIRE_DPOP=1`: accept DPoP-bound tokens only;
//! - `RUST_LOG`: what to log [lockspire=debug, which says why each request was refused].

use axum::routing::get;
use axum::{Json, Router};
use lockspire::resource::{AccessToken, ResourceServer};
use serde_json::{Value, json};

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// `GET /api/me`: who the token speaks for.
async fn me(token: AccessToken) -> Json<Value> {
    Json(json!({
        "sub": token.subject(),
        "client_id": token.client_id(),
        "scopes": token.scopes(),
        "expires_at": token.expires_at(),
        "bound": token.binding().is_some(),
    }))
}

/// `GET /api/profile`: only for tokens granted the `profile` scope.
async fn profile(token: AccessToken) -> Json<Value> {
    Json(json!({ "sub": token.subject(), "claims": token.claims() }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "lockspire=debug".into()),
        )
        .init();
    let issuer = setting("ISSUER", "http://127.0.0.1:4000");
    let addr = setting("ADDR", "127.0.0.1:4001");
    let resource = setting("RESOURCE", &format!("http://{addr}/api"));
    let mut api = ResourceServer::remote(&issuer, &resource)
        .resource_name("Example API")
        .scopes_supported(["profile"])
        .require_dpop(std::env::var("REQUIRE_DPOP").is_ok_and(|v| v == "1"))
        // Development only: the demo issuer and this service speak plain http on loopback.
        .allow_http_loopback(true);
    if let (Ok(id), Ok(secret)) = (
        std::env::var("INTROSPECTION_CLIENT_ID"),
        std::env::var("INTROSPECTION_CLIENT_SECRET"),
    ) {
        api = api.introspection_client(&id, &secret);
    }
    // Fetches the issuer's metadata now, so a wrong ISSUER fails at start, not per request.
    let api = api.build().await?;

    let app = Router::new()
        .route("/api/me", get(me))
        .route_layer(api.require_token())
        .merge(
            Router::new()
                .route("/api/profile", get(profile))
                .route_layer(api.require_token().scopes(["profile"])),
        )
        .merge(api.metadata_router());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("protecting {resource} for tokens of {issuer}");
    println!("metadata: {}", api.metadata_url());
    axum::serve(listener, app).await?;
    Ok(())
}
