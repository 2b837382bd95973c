//! A second relying party in the same host, "the forum" (client `lockspire-demo-forum`): it
//! signs in with the authorization code flow and keeps its own sessions, keyed by the
//! provider's browser session (`sid`). When the user signs out anywhere (the demo client's
//! "Sign out everywhere"), the provider POSTs a logout token to the forum's back-channel logout
//! URI (OpenID Connect Back-Channel Logout 1.0 §2.5), which the forum verifies and then ends the
//! sessions of that `sid`. `/demo/forum` shows both.
//!
//! Its sessions live in this process's memory: a demo convenience; a real client keeps them
//! where its other processes see them too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use askama::Template;
use axum::Extension;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_login::tower_sessions::Session;
use openidconnect::PkceCodeChallenge;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::form_urlencoded;

use crate::pages::{cookie, error_page, internal_error, render, see_other};
use crate::{AppState, DEMO_FORUM_CLIENT_ID, random};

/// The event a logout token carries (Back-Channel Logout 1.0 §2.4).
const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// The forum's session cookie (its own, beside the host's).
const COOKIE: &str = "demo_forum";

/// Host-session key of the forum's sign-in in progress.
const PENDING_KEY: &str = "demo_forum.pending";

/// The forum's redirect URI.
pub(crate) fn callback_url(issuer: &str) -> String {
    format!("{issuer}/demo/forum/callback")
}

/// The forum's back-channel logout URI.
pub(crate) fn backchannel_url(issuer: &str) -> String {
    format!("{issuer}/demo/forum/backchannel-logout")
}

/// The forum's sessions and the logout tokens it received.
#[derive(Clone, Debug, Default)]
pub(crate) struct Forum(Arc<Mutex<ForumState>>);

#[derive(Debug, Default)]
struct ForumState {
    /// By the forum cookie's value.
    sessions: HashMap<String, ForumSession>,
    /// Newest last.
    received: Vec<Received>,
}

#[derive(Clone, Debug)]
struct ForumSession {
    subject: String,
    sid: String,
    /// Set when a logout token ended it: the token's `jti`.
    ended_by: Option<String>,
}

/// A logout token the forum accepted, for the page.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    jti: String,
    sid: String,
    subject: String,
    sessions_ended: usize,
}

/// The secrets of one sign-in, kept until the callback.
#[derive(Serialize, Deserialize)]
struct Pending {
    state: String,
    nonce: String,
    verifier: String,
}

#[derive(Template)]
#[template(path = "forum.html")]
struct ForumPage<'a> {
    session: Option<&'a ForumSession>,
    received: &'a [Received],
}

/// `GET /demo/forum`: the forum's view of this browser, and the logout tokens it received.
pub(crate) async fn page(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(off) = crate::pages::off_under_fapi(
        &app,
        "forum",
        "allows no public client (the forum has no key)",
    ) {
        return off;
    }
    let cookie = cookie(&headers, COOKIE);
    let Ok(state) = app.forum.0.lock() else {
        return internal_error("The forum's state is unusable", &"a lock was poisoned");
    };
    let session = cookie.as_ref().and_then(|c| state.sessions.get(c));
    render(
        StatusCode::OK,
        &ForumPage {
            session,
            received: &state.received,
        },
    )
}

/// `GET /demo/forum/sign-in`: the forum's authorization request (code flow with PKCE).
pub(crate) async fn sign_in(
    State(app): State<AppState>,
    Extension(session): Extension<Session>,
) -> Response {
    if let Some(off) = crate::pages::off_under_fapi(
        &app,
        "forum",
        "allows no public client (the forum has no key)",
    ) {
        return off;
    }
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (Ok(state), Ok(nonce)) = (random::token::<32>(), random::token::<32>()) else {
        return internal_error("No randomness", &"getrandom failed");
    };
    let pending = Pending {
        state,
        nonce,
        verifier: verifier.secret().clone(),
    };
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", DEMO_FORUM_CLIENT_ID)
        .append_pair("redirect_uri", &callback_url(&app.issuer))
        .append_pair("scope", "openid")
        .append_pair("state", &pending.state)
        .append_pair("nonce", &pending.nonce)
        .append_pair("code_challenge", challenge.as_str())
        .append_pair("code_challenge_method", "S256")
        .finish();
    if let Err(e) = session.insert(PENDING_KEY, &pending).await {
        return internal_error("Saving the sign-in request failed", &e);
    }
    see_other(&format!("{}/authorize?{query}", app.issuer))
}

/// The provider's answer to the forum's authorization request.
#[derive(Deserialize)]
pub(crate) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /demo/forum/callback`: redeems the code, verifies the ID token and starts a forum
/// session tied to its `sid`.
pub(crate) async fn callback(
    State(app): State<AppState>,
    Extension(session): Extension<Session>,
    query: Result<Query<CallbackQuery>, QueryRejection>,
) -> Response {
    let refused =
        |detail: String| error_page(StatusCode::BAD_REQUEST, "Forum sign-in failed", &detail);
    let Ok(Query(query)) = query else {
        return refused("The redirect back could not be parsed.".into());
    };
    let pending = match session.remove::<Pending>(PENDING_KEY).await {
        Ok(Some(pending)) => pending,
        Ok(None) => return refused("No forum sign-in was started in this browser.".into()),
        Err(e) => return internal_error("Reading the session failed", &e),
    };
    if !query
        .state
        .as_deref()
        .is_some_and(|s| random::constant_time_eq(s, &pending.state))
    {
        return refused("The state does not match this browser's sign-in.".into());
    }
    if let Some(error) = query.error {
        return refused(format!("The provider answered {error}."));
    }
    let Some(code) = query.code else {
        return refused("The answer has no code.".into());
    };
    let token: Value = match app
        .http
        .post(format!("{}/token", app.issuer))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &callback_url(&app.issuer)),
            ("code_verifier", &pending.verifier),
            ("client_id", DEMO_FORUM_CLIENT_ID),
        ])
        .send()
        .await
    {
        Ok(response) => match response.json().await {
            Ok(body) => body,
            Err(e) => return internal_error("The token response is not JSON", &e),
        },
        Err(e) => return internal_error("The token request failed", &e),
    };
    let Some(id_token) = token.get("id_token").and_then(Value::as_str) else {
        return refused(format!("The token response has no ID token: {token}"));
    };
    let claims = match crate::relying_party::verify_provider_jwt(
        &app,
        id_token,
        DEMO_FORUM_CLIENT_ID,
        "JWT",
    )
    .await
    {
        Ok(claims) => claims,
        Err(e) => return refused(format!("The ID token is invalid: {e}")),
    };
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    if !text("nonce").is_some_and(|n| random::constant_time_eq(&n, &pending.nonce)) {
        return refused("The ID token's nonce is not this sign-in's.".into());
    }
    let (Some(subject), Some(sid)) = (text("sub"), text("sid")) else {
        return refused("The ID token names no subject or no session (sid).".into());
    };
    let Ok(id) = random::token::<32>() else {
        return internal_error("No randomness", &"getrandom failed");
    };
    match app.forum.0.lock() {
        Ok(mut state) => {
            state.sessions.insert(
                id.clone(),
                ForumSession {
                    subject,
                    sid,
                    ended_by: None,
                },
            );
        }
        Err(_) => return internal_error("The forum's state is unusable", &"a lock was poisoned"),
    }
    let mut response = see_other("/demo/forum");
    let secure = if app.issuer.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!("{COOKIE}={id}; Path=/demo/forum; HttpOnly; SameSite=Lax{secure}");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The provider's back-channel logout call.
#[derive(Deserialize)]
pub(crate) struct LogoutForm {
    logout_token: Option<String>,
}

/// `POST /demo/forum/backchannel-logout`: validates the logout token (Back-Channel Logout 1.0
/// §2.6) and ends the forum sessions of its `sid`. 200 when done, 400 when the token is not
/// acceptable (§2.8).
pub(crate) async fn backchannel_logout(
    State(app): State<AppState>,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Response {
    let refuse = |why: String| {
        tracing::warn!(reason = %why, "the forum refused a logout token");
        let mut response = (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({"error": "invalid_request", "error_description": why})),
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    };
    let Some(token) = form.ok().and_then(|Form(f)| f.logout_token) else {
        return refuse("no logout_token".into());
    };
    // §2.6 steps 1–3: signed by the provider, typed as a logout token, for this client.
    let claims = match crate::relying_party::verify_provider_jwt(
        &app,
        &token,
        DEMO_FORUM_CLIENT_ID,
        "logout+jwt",
    )
    .await
    {
        Ok(claims) => claims,
        Err(e) => return refuse(e),
    };
    // Steps 4–6: the event, no nonce, and a sid or sub; iat is required.
    if claims
        .get("events")
        .and_then(|e| e.get(LOGOUT_EVENT))
        .is_none()
    {
        return refuse("no back-channel logout event".into());
    }
    if claims.get("nonce").is_some() {
        return refuse("a logout token must not carry a nonce".into());
    }
    if claims.get("iat").and_then(Value::as_i64).is_none() {
        return refuse("no iat".into());
    }
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    // The forum registered backchannel_logout_session_required: sid is required.
    let (Some(sid), Some(jti)) = (text("sid"), text("jti")) else {
        return refuse("no sid or no jti".into());
    };
    let subject = text("sub").unwrap_or_default();
    let Ok(mut state) = app.forum.0.lock() else {
        return internal_error("The forum's state is unusable", &"a lock was poisoned");
    };
    // A replayed token (same jti) changes nothing: sessions already ended stay ended.
    if state.received.iter().any(|r| r.jti == jti) {
        return StatusCode::OK.into_response();
    }
    let mut ended = 0;
    for session in state.sessions.values_mut().filter(|s| s.sid == sid) {
        if session.ended_by.is_none() {
            session.ended_by = Some(jti.clone());
            ended += 1;
        }
    }
    state.received.push(Received {
        jti,
        sid,
        subject,
        sessions_ended: ended,
    });
    tracing::info!(
        sessions = ended,
        "the forum ended sessions on a logout token"
    );
    let mut response = StatusCode::OK.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
