//! The demo client's "Sign out everywhere": RP-initiated logout (OpenID Connect RP-Initiated
//! Logout 1.0 §2). The client sends the browser to the provider's `end_session_endpoint` with
//! the ID token it holds as `id_token_hint`, its registered `post_logout_redirect_uri` and a
//! `state`; the provider signs the user out of this host and tells every other client of the
//! browser session (the forum, `/demo/forum`, by a back-channel logout token), then sends the
//! browser back here.

use axum::Extension;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum_login::tower_sessions::Session;
use serde::Deserialize;
use serde_json::Value;
use url::form_urlencoded;

use crate::pages::{cookie, cross_origin_refused, error_page, internal_error, render, see_other};
use crate::{AppState, forms, random};

/// Session key of the last ID token the demo client verified: its `id_token_hint`.
pub(crate) const ID_TOKEN_KEY: &str = "demo_rp.id_token";

/// The cookie holding the logout request's `state` until the provider sends the browser back.
/// Not in the host's session: signing out ends that session.
const STATE_COOKIE: &str = "demo_rp_logout_state";

/// The demo client's registered `post_logout_redirect_uri`.
pub(crate) fn signed_out_url(issuer: &str) -> String {
    format!("{issuer}/demo/signed-out")
}

/// The sign-out form.
#[derive(Deserialize)]
pub(crate) struct SignOutForm {
    form_token: Option<String>,
}

/// `POST /demo/sign-out`: starts RP-initiated logout.
pub(crate) async fn start(
    State(app): State<AppState>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    form: Result<Form<SignOutForm>, FormRejection>,
) -> Response {
    let presented = form.as_ref().ok().and_then(|f| f.form_token.as_deref());
    match forms::check(&headers, &app.issuer, &session, presented).await {
        Ok(forms::Verdict::Genuine) => {}
        Ok(forms::Verdict::Stale) => {
            return error_page(
                StatusCode::FORBIDDEN,
                "That form had expired",
                "Nothing was done. Run the demo client again and press Sign out everywhere.",
            );
        }
        Ok(forms::Verdict::CrossOrigin) => return cross_origin_refused(),
        Err(e) => return internal_error("Reading the session failed", &e),
    }
    let id_token = match session.get::<String>(ID_TOKEN_KEY).await {
        Ok(Some(token)) => token,
        Ok(None) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Not signed in to the demo client",
                "Run the demo client first: it signs out with the ID token it received.",
            );
        }
        Err(e) => return internal_error("Reading the session failed", &e),
    };
    let endpoint = match end_session_endpoint(&app).await {
        Ok(endpoint) => endpoint,
        Err(e) => return internal_error("Reading the provider's metadata failed", &e),
    };
    let state = match random::token::<32>() {
        Ok(state) => state,
        Err(e) => return internal_error("No randomness for the state", &e),
    };
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("id_token_hint", &id_token)
        .append_pair("post_logout_redirect_uri", &signed_out_url(&app.issuer))
        .append_pair("state", &state)
        .finish();
    let mut response = see_other(&format!("{endpoint}?{query}"));
    let secure = if app.issuer.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie =
        format!("{STATE_COOKIE}={state}; Path=/demo; HttpOnly; SameSite=Lax; Max-Age=600{secure}");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The provider's `end_session_endpoint`, from its discovery document.
async fn end_session_endpoint(app: &AppState) -> Result<String, String> {
    let discovery: Value = app
        .http
        .get(format!("{}/.well-known/openid-configuration", app.issuer))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    discovery
        .get("end_session_endpoint")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| "discovery lists no end_session_endpoint".to_owned())
}

/// Where the provider sends the browser back.
#[derive(Deserialize)]
pub(crate) struct SignedOutQuery {
    state: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "signed_out.html")]
struct SignedOutPage {
    /// The forum is off under a FAPI 2.0 profile.
    forum: bool,
}

/// `GET /demo/signed-out`: the provider's answer. Believed only with the `state` this browser
/// was sent with (RP-Initiated Logout 1.0 §3).
pub(crate) async fn finish(
    State(app): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<SignedOutQuery>, QueryRejection>,
) -> Response {
    let expected = cookie(&headers, STATE_COOKIE);
    let presented = query.ok().and_then(|Query(q)| q.state);
    let matched = matches!(
        (&expected, &presented),
        (Some(e), Some(p)) if random::constant_time_eq(e, p)
    );
    let mut response = if matched {
        render(
            StatusCode::OK,
            &SignedOutPage {
                forum: !app.profile.is_fapi(),
            },
        )
    } else {
        error_page(
            StatusCode::BAD_REQUEST,
            "Unexpected sign-out answer",
            "This browser did not start a sign-out (the state does not match), so the demo client ignores it.",
        )
    };
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("demo_rp_logout_state=; Path=/demo; Max-Age=0"),
    );
    response
}
