//! `GET` and `POST /end_session` (OpenID Connect RP-Initiated Logout 1.0 §2): a client sends
//! the browser here to sign the user out of the OP and of every client of the browser session.
//!
//! Without proof that the request comes from a client of this very session — an `id_token_hint`
//! whose `sid` is the browser's — the user is asked first, on a CSRF-protected page, so no site
//! can sign users out by sending them here. Once ended, the browser is sent to the client's
//! registered `post_logout_redirect_uri` with `state`, or shown that it is signed out; the page
//! loads each client's front-channel logout URI in an iframe first (Front-Channel Logout 1.0
//! §3).

use std::sync::Arc;

use askama::Template;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::{Method, Request, StatusCode, header};

use super::authorize::{browser_cookie, cookie_header, random_cookie, set_browser_cookie};
use super::pages::{error_page, html, see_other};
use super::request::query_or_form;
use crate::host::Context;
use crate::protocol::endpoints::Endpoint;
use crate::protocol::error::OAuthError;
use crate::protocol::logout::{self, Ended, LogoutRequest};
use crate::protocol::params::Params;
use crate::protocol::provider::Provider;
use crate::secrets::{random_id, random_token};

/// The request parameters the confirmation form carries back (RP-Initiated Logout 1.0 §2).
const CARRIED: [&str; 6] = [
    "id_token_hint",
    "client_id",
    "post_logout_redirect_uri",
    "state",
    "ui_locales",
    "logout_hint",
];

#[derive(Template)]
#[template(path = "logout.html")]
struct ConfirmPage<'a> {
    action: &'a str,
    /// Where "Stay signed in" leads: the issuer.
    home: &'a str,
    csrf: &'a str,
    params: &'a [(&'static str, &'a str)],
    client_name: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "signed_out.html")]
struct SignedOutPage<'a> {
    home: &'a str,
    frames: &'a [String],
    next: Option<&'a str>,
    nonce: &'a str,
    /// The host's sign-out failed: the page says so and does not move on by itself.
    host_failed: bool,
}

/// The cookie the confirmation form's CSRF token is bound to.
const CONFIRM_COOKIE: &str = "lockspire_logout";

/// How long the confirmation page may be answered.
const CONFIRM_LIFETIME: i64 = 600;

pub(crate) async fn end_session(State(p): State<Arc<Provider>>, req: Request<Body>) -> Response {
    let (mut parts, body) = req.into_parts();
    let params = match query_or_form(&parts, body).await {
        Ok(params) => params,
        Err(e) => return error_page(&e),
    };
    let request = match logout::validate(&p, &params).await {
        Ok(request) => request,
        Err(e) => return error_page(&e),
    };
    let cookie = browser_cookie(&parts.headers);
    let post = parts.method == Method::POST;
    let csrf = params.get("csrf").ok().flatten();
    // A POST from a client's site carries none of this site's SameSite=Lax cookies, so the
    // browser's session cannot be known; the same request as a top-level GET carries them.
    if cookie.is_none() && post && csrf.is_none() {
        let url = Endpoint::EndSession.url(&p.config.issuer);
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(carried(&params))
            .finish();
        return see_other(&format!("{url}?{query}"));
    }
    let ctx = Context {
        issuer: p.issuer().to_owned(),
        client_id: request
            .client
            .as_ref()
            .map(|c| c.client_id.to_string())
            .unwrap_or_default(),
        ui_locales: request.ui_locales.clone(),
        login_hint: request.logout_hint.clone(),
        ..Context::default()
    };
    let session = match p.resolver.current(&mut parts, &ctx).await {
        Ok(session) => session,
        Err(e) => return error_page(&e.into()),
    };
    let current = match (&cookie, &session) {
        (Some(cookie), Some(s)) => Some(logout::op_session(&p, cookie, &s.subject)),
        _ => None,
    };
    // The session the hint names, when it is one of this browser's: the signed-in one, or one
    // the host already signed out here. Never another browser's, whoever holds an ID token of
    // it.
    let hinted = match (&cookie, &request.hint) {
        (Some(cookie), Some(hint)) => {
            match logout::hinted_session(&p, cookie, hint, current.as_deref()).await {
                Ok(hinted) => hinted,
                Err(e) => return error_page(&e),
            }
        }
        _ => None,
    };
    // A form that is not this browser's (forged, or stale: its cookie expired, or another
    // tab's sign-out ended it) confirms nothing: the user is asked again, or, with nothing left
    // to sign out of, goes on.
    let confirmed = post
        && csrf.is_some_and(|csrf| {
            random_cookie(&parts.headers, CONFIRM_COOKIE)
                .is_some_and(|c| p.secrets.verify_csrf(&logout::csrf_binding(&c), csrf))
        });
    // §2: a hint naming this browser's session proves the request comes from one of its
    // clients; without that proof the user is asked. A browser with nothing to sign out of
    // has nothing to lose and goes straight on.
    let proven = hinted.is_some() && (current.is_none() || current == hinted);
    let mut sessions: Vec<String> = current.into_iter().chain(hinted).collect();
    sessions.dedup();
    if (session.is_some() || !sessions.is_empty()) && !proven && !confirmed {
        return confirm(&p, &parts.headers, &params, &request);
    }
    let mut ended = Ended::default();
    for op_session in &sessions {
        match logout::end(&p, op_session).await {
            Ok(more) => ended.frontchannel.extend(more.frontchannel),
            Err(e) => return error_page(&e),
        }
    }
    let host = match session {
        Some(_) => p.resolver.sign_out(&mut parts, &ctx).await,
        None => Ok(http::HeaderMap::new()),
    };
    // The provider's part is done (tokens revoked, clients told) even when the host's failed:
    // the page says so, still loads the front-channel URIs, and does not move on by itself.
    let mut response = match host {
        Ok(headers) => {
            let mut response = signed_out(&p, &ended, &request, false);
            for (name, value) in &headers {
                response.headers_mut().append(name, value.clone());
            }
            response
        }
        Err(e) => {
            let e: OAuthError = e.into();
            tracing::error!(reason = %e.reason(), "the host's sign-out failed");
            signed_out(&p, &ended, &request, true)
        }
    };
    // A new browser cookie: whatever happens next in this browser is a new OP session.
    if cookie.is_some() {
        set_browser_cookie(&p, &mut response, &random_token());
    }
    if let Some(clear) = cookie_header(&p, CONFIRM_COOKIE, "", 0) {
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
    response
}

/// The request parameters this endpoint reads, those the request has.
fn carried(params: &Params) -> Vec<(&'static str, &str)> {
    CARRIED
        .iter()
        .filter_map(|name| Some((*name, params.get(name).ok().flatten()?)))
        .collect()
}

/// The confirmation page, whose form posts the request back with a CSRF token bound to a
/// cookie set with it (not the browser cookie, which a page shown to a cookieless request must
/// not replace: it names the browser's OP session). The browser's earlier one is kept, so that
/// a page open in another tab still works.
fn confirm(
    p: &Provider,
    headers: &http::HeaderMap,
    params: &Params,
    request: &LogoutRequest,
) -> Response {
    let binding = random_cookie(headers, CONFIRM_COOKIE).unwrap_or_else(random_token);
    let csrf = p.secrets.csrf_token(&logout::csrf_binding(&binding));
    let carried = carried(params);
    let action = Endpoint::EndSession.url(&p.config.issuer);
    let page = ConfirmPage {
        action: &action,
        home: p.issuer(),
        csrf: &csrf,
        params: &carried,
        // Named only when a verified ID token says which client asks: a bare `client_id` is
        // anyone's to send.
        client_name: request
            .hint
            .as_ref()
            .and(request.client.as_ref())
            .and_then(|c| c.metadata.client_name.as_deref()),
    };
    let mut response = match page.render() {
        Ok(body) => html(StatusCode::OK, body, super::pages::PAGE_CSP.to_owned()),
        Err(e) => return error_page(&OAuthError::internal(format!("logout template: {e}"))),
    };
    if let Some(cookie) = cookie_header(p, CONFIRM_COOKIE, &binding, CONFIRM_LIFETIME) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// After the session ended: straight to the client's page when there are no front-channel
/// URIs to load and nothing to say; otherwise a page that loads them and then moves on (or,
/// when the host's sign-out failed, says so and waits for the user).
fn signed_out(p: &Provider, ended: &Ended, request: &LogoutRequest, host_failed: bool) -> Response {
    let next = request.redirect_location();
    if ended.frontchannel.is_empty()
        && !host_failed
        && let Some(next) = &next
    {
        return see_other(next);
    }
    let nonce = random_id();
    let page = SignedOutPage {
        home: p.issuer(),
        frames: &ended.frontchannel,
        next: next.as_deref(),
        nonce: &nonce,
        host_failed,
    };
    // Exactly the front-channel URIs may be framed; a CSP source names a path without its
    // query (CSP 3 §6.7.2.12).
    let frames: Vec<&str> = ended
        .frontchannel
        .iter()
        .map(|u| u.split('?').next().unwrap_or(u))
        .collect();
    let frame_src = if frames.is_empty() {
        String::new()
    } else {
        format!("; frame-src {}", frames.join(" "))
    };
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'{frame_src}; frame-ancestors 'none'; base-uri 'none'"
    );
    match page.render() {
        Ok(body) => html(StatusCode::OK, body, csp),
        Err(e) => error_page(&OAuthError::internal(format!("signed-out template: {e}"))),
    }
}
