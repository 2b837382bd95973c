//! A site on another origin that posts to the demo's forms: login CSRF attempts.

use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use lockspire_browser::Browser;
use lockspire_demo::{DEMO_PASSWORD, DEMO_USERNAME};

/// What the attacker's server knows: the victim's target, and a session it opened on the demo
/// for itself (its cookie and its form token).
#[derive(Clone)]
pub(crate) struct Attacker {
    pub(crate) issuer: String,
    pub(crate) session_cookie: String,
    pub(crate) form_token: String,
}

/// A page with one form posting `fields` to `action`, submitted by clicking `#go`.
pub(crate) fn form_page(action: &str, fields: &[(&str, &str)]) -> String {
    let inputs: String = fields
        .iter()
        .map(|(k, v)| format!("<input type=\"hidden\" name=\"{k}\" value=\"{v}\">"))
        .collect();
    format!(
        "<!doctype html><title>A game</title><form method=\"post\" action=\"{action}\">{inputs}\
         <button id=\"go\" type=\"submit\">Play</button></form>"
    )
}

#[derive(serde::Deserialize)]
pub(crate) struct AttackQuery {
    /// Also toss the attacker's own demo session cookie into the browser (cookies are shared
    /// by every port of a host) and post that session's form token.
    pub(crate) toss: Option<String>,
}

/// `/login-csrf`: posts the attacker's credentials (alice's, for the test) to the demo.
pub(crate) async fn login_csrf(
    State(a): State<Attacker>,
    Query(q): Query<AttackQuery>,
) -> Response {
    let action = format!("{}/login", a.issuer);
    let mut fields = vec![
        ("username", DEMO_USERNAME),
        ("password", DEMO_PASSWORD),
        ("return_to", ""),
    ];
    if q.toss.is_some() {
        fields.push(("form_token", &a.form_token));
    }
    let mut response = Html(form_page(&action, &fields)).into_response();
    if q.toss.is_some() {
        let cookie = format!("{}; Path=/; SameSite=Lax", a.session_cookie);
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    response
}

/// `/sandboxed`: the same post with the tossed session's token, from a sandboxed frame, whose
/// origin is opaque (`Origin: null`).
pub(crate) async fn sandboxed(State(a): State<Attacker>) -> Response {
    let inner = form_page(
        &format!("{}/login", a.issuer),
        &[
            ("username", DEMO_USERNAME),
            ("password", DEMO_PASSWORD),
            ("form_token", &a.form_token),
        ],
    )
    // The answer replaces the whole page (the demo's pages refuse to be framed).
    .replace("<form ", "<form target=\"_top\" ")
    .replace('"', "&quot;");
    let mut response = Html(format!(
        "<!doctype html><title>A game</title>\
         <iframe sandbox=\"allow-forms allow-top-navigation-by-user-activation\" width=\"600\" height=\"400\" srcdoc=\"{inner}\"></iframe>"
    ))
    .into_response();
    let cookie = format!("{}; Path=/; SameSite=Lax", a.session_cookie);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// `/logout-csrf`: signs the visitor out of the demo.
pub(crate) async fn logout_csrf(State(a): State<Attacker>) -> Html<String> {
    Html(form_page(&format!("{}/logout", a.issuer), &[]))
}

/// The attacker opens a session on the demo for itself, as anyone can: its cookie and token.
pub(crate) async fn attacker_session(issuer: &str) -> (String, String) {
    let response = reqwest::get(format!("{issuer}/login"))
        .await
        .expect("login page");
    let cookie = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("demo_session="))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let html = response.text().await.expect("login page");
    let marker = "name=\"form_token\" value=\"";
    let start = html.find(marker).expect("a form token") + marker.len();
    let token = html[start..start + html[start..].find('"').expect("end")].to_owned();
    (cookie, token)
}

/// The browser is on the demo's refusal page, and nobody is signed in.
pub(crate) async fn assert_refused_and_signed_out(b: &Browser, issuer: &str) {
    assert_eq!(b.text("h1").await.expect("a heading"), "Refused");
    b.goto(&format!("{issuer}/")).await.expect("home");
    b.find("#signed-out").await.expect("nobody signed in");
}
