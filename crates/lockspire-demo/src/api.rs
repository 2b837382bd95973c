//! The host's own API, protected by Lockspire's resource-server toolkit in process: `GET
//! /api/me` answers with who the access token speaks for, as the host knows them. The token is
//! checked by the layer (issuer, audience `{issuer}/api`, expiry, revocation, the `profile`
//! scope, and the DPoP proof when the token is bound); the handler only looks the person up in
//! the host's own table.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use lockspire::resource::{AccessToken, TokenBinding};
use serde_json::{Value, json};

use crate::users::Users;

/// The path of the API, under the issuer's origin; `{issuer}/api` is its resource identifier.
pub(crate) const API_PATH: &str = "/api";

/// The scope `GET /api/me` requires.
pub(crate) const API_SCOPE: &str = "profile";

/// `GET /api/me`.
pub(crate) async fn me(
    State(users): State<Users>,
    token: AccessToken,
) -> Result<Json<Value>, StatusCode> {
    // The demo client registered public subjects, so `sub` is the host's own user id.
    let user = users.by_id(token.subject()).await.map_err(|e| {
        tracing::error!(error = %e, "reading the user for /api/me");
        StatusCode::INTERNAL_SERVER_ERROR
    })?;
    let bound_to = match token.binding() {
        Some(TokenBinding::Dpop { jkt }) => json!({ "dpop_jkt": jkt }),
        Some(TokenBinding::Certificate { x5t_s256 }) => json!({ "x5t#S256": x5t_s256 }),
        _ => Value::Null,
    };
    Ok(Json(json!({
        "sub": token.subject(),
        "name": user.as_ref().map(|u| u.name.as_str()),
        "username": user.as_ref().map(|u| u.username.as_str()),
        "client_id": token.client_id(),
        "scopes": token.scopes(),
        "bound_to": bound_to,
    })))
}
