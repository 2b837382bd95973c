//! A second demo client playing a device without a browser (RFC 8628): `/demo/device` asks the
//! provider for a device code and a user code, shows the code and the verification link as a
//! TV would, and polls the token endpoint each time the user presses the button, showing what
//! the provider answered — `authorization_pending` until the user approves on the verification
//! page, then the tokens.
//!
//! Like the relying party, it speaks HTTP to the provider only; the device code it keeps in the
//! browser's session stands in for the device's memory.

use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum_login::tower_sessions::Session;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::display::{pretty, redacted_tokens};
use crate::pages::{error_page, internal_error, render, see_other};
use crate::{AppState, DEMO_DEVICE_CLIENT_ID};

/// Session key of the device flow in progress.
const PENDING_KEY: &str = "demo_device.pending";

/// The device grant type (RFC 8628 §3.4).
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// What the device asks for.
const SCOPES: &str = "openid profile email";

/// The device's memory between presses of the button.
#[derive(Serialize, Deserialize)]
struct Pending {
    device_code: String,
    /// The device authorization response, the device code shortened, for display.
    authorization: String,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: Option<String>,
    /// The last poll's HTTP status and answer.
    last_poll: Option<(u16, String)>,
    polls: u32,
}

#[derive(Template)]
#[template(path = "device.html")]
struct DevicePage<'a> {
    endpoint: String,
    pending: &'a Pending,
    /// After the approval: the token response (secrets shortened) and what `/userinfo` said.
    tokens: Option<(String, String)>,
}

/// `GET /demo/device`: starts a device flow as the device client, a public client identified
/// by its `client_id` (RFC 8628 §3.1).
pub(crate) async fn start(
    State(app): State<AppState>,
    Extension(session): Extension<Session>,
) -> Response {
    if let Some(off) = crate::pages::off_under_fapi(
        &app,
        "device",
        "does not include the device grant (its authorization is not pushed)",
    ) {
        return off;
    }
    let endpoint = format!("{}/device_authorization", app.issuer);
    let answer = app
        .http
        .post(&endpoint)
        .form(&[("client_id", DEMO_DEVICE_CLIENT_ID), ("scope", SCOPES)])
        .send()
        .await;
    let (status, body) = match answer {
        Ok(r) => (r.status(), r.json::<Value>().await.unwrap_or(Value::Null)),
        Err(e) => return internal_error("The device authorization request failed", &e),
    };
    let text = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
    let (Some(device_code), Some(user_code), Some(verification_uri)) = (
        text("device_code"),
        text("user_code"),
        text("verification_uri"),
    ) else {
        return error_page(
            StatusCode::BAD_GATEWAY,
            "The device authorization request failed",
            &format!("HTTP {status}: {body}"),
        );
    };
    let pending = Pending {
        device_code,
        authorization: redacted(body.clone(), "device_code"),
        user_code,
        verification_uri,
        verification_uri_complete: text("verification_uri_complete"),
        last_poll: None,
        polls: 0,
    };
    if let Err(e) = session.insert(PENDING_KEY, &pending).await {
        return internal_error("Saving the device flow failed", &e);
    }
    see_other("/demo/device/status")
}

/// A response with one member's secret shortened, pretty-printed.
fn redacted(mut body: Value, member: &str) -> String {
    if let Some(Value::String(secret)) = body.get_mut(member) {
        *secret = crate::display::truncate(secret);
    }
    pretty(&body)
}

async fn pending(session: &Session) -> Result<Pending, Response> {
    match session.get::<Pending>(PENDING_KEY).await {
        Ok(Some(p)) => Ok(p),
        Ok(None) => Err(see_other("/demo/device")),
        Err(e) => Err(internal_error("Reading the session failed", &e)),
    }
}

/// `GET /demo/device/status`: what a device's screen shows, and the last poll's answer.
pub(crate) async fn status(
    State(app): State<AppState>,
    Extension(session): Extension<Session>,
) -> Response {
    match pending(&session).await {
        Ok(pending) => render(
            StatusCode::OK,
            &DevicePage {
                endpoint: format!("{}/device_authorization", app.issuer),
                pending: &pending,
                tokens: None,
            },
        ),
        Err(response) => response,
    }
}

/// `GET /demo/device/poll`: one poll of the token endpoint (RFC 8628 §3.4). Until the user
/// decides it answers `authorization_pending` (or `slow_down`, when pressed sooner than the
/// interval allows); once approved, the tokens, which the device then uses at `/userinfo`.
pub(crate) async fn poll(
    State(app): State<AppState>,
    Extension(session): Extension<Session>,
) -> Response {
    let mut pending = match pending(&session).await {
        Ok(p) => p,
        Err(response) => return response,
    };
    let answer = app
        .http
        .post(format!("{}/token", app.issuer))
        .form(&[
            ("grant_type", DEVICE_GRANT),
            ("device_code", &pending.device_code),
            ("client_id", DEMO_DEVICE_CLIENT_ID),
        ])
        .send()
        .await;
    let (status, body) = match answer {
        Ok(r) => (r.status(), r.json::<Value>().await.unwrap_or(Value::Null)),
        Err(e) => return internal_error("Polling the token endpoint failed", &e),
    };
    pending.polls += 1;
    let access_token = body.get("access_token").and_then(Value::as_str);
    let Some(access_token) = access_token.filter(|_| status == StatusCode::OK) else {
        pending.last_poll = Some((status.as_u16(), pretty(&body)));
        if let Err(e) = session.insert(PENDING_KEY, &pending).await {
            return internal_error("Saving the device flow failed", &e);
        }
        return see_other("/demo/device/status");
    };
    let userinfo = match app
        .http
        .get(format!("{}/userinfo", app.issuer))
        .bearer_auth(access_token)
        .send()
        .await
    {
        Ok(r) => pretty(&r.json::<Value>().await.unwrap_or(Value::Null)),
        Err(e) => format!("(the call failed: {e})"),
    };
    // The device code is used up: a new flow starts from /demo/device.
    if let Err(e) = session.remove::<Pending>(PENDING_KEY).await {
        return internal_error("Saving the device flow failed", &e);
    }
    pending.last_poll = Some((status.as_u16(), String::new()));
    render(
        StatusCode::OK,
        &DevicePage {
            endpoint: format!("{}/device_authorization", app.issuer),
            pending: &pending,
            tokens: Some((redacted_tokens(body), userinfo)),
        },
    )
}
