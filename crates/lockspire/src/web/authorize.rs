//! Browser-facing handlers: `/authorize` (RFC 6749 §3.1), the resume point after the host's
//! login, and the consent page.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Request, header};

use super::pages::{
    authorization_response, consent_page as render_consent, error_page, render_host_consent,
    see_other,
};
use super::request::query_or_form;
use crate::host::ConsentPage;
use crate::protocol::authorize::{self, AuthorizationResponse, AuthorizeError};
use crate::protocol::endpoints::Endpoint;
use crate::protocol::error::OAuthError;
use crate::protocol::interaction::{self, Step};
use crate::protocol::params::Params;
use crate::protocol::provider::Provider;
use crate::protocol::scope::scope_requests;
use crate::secrets::random_token;

/// The cookie binding interactions to the browser that started them.
const BROWSER_COOKIE: &str = "lockspire_browser";

pub(crate) fn browser_cookie(headers: &HeaderMap) -> Option<String> {
    random_cookie(headers, BROWSER_COOKIE)
}

/// The value of the cookie `name` when it is one of the random tokens Lockspire sets.
pub(super) fn random_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(found, _)| *found == name)
        .map(|(_, value)| value.to_owned())
        .filter(|v| {
            v.len() == 43
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// A `Set-Cookie` for one of Lockspire's cookies: sent back only to this site (`SameSite=Lax`:
/// top-level navigations from elsewhere included), never to scripts, over https outside
/// development.
pub(super) fn cookie_header(
    p: &Provider,
    name: &str,
    value: &str,
    max_age: i64,
) -> Option<HeaderValue> {
    let secure = if p.config.issuer.is_insecure() {
        ""
    } else {
        "; Secure"
    };
    let cookie =
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&cookie).ok()
}

pub(super) fn set_browser_cookie(p: &Provider, response: &mut Response, value: &str) {
    if let Some(v) = cookie_header(p, BROWSER_COOKIE, value, 31_536_000) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// A new browser cookie, replacing the browser's: what happens next in it is a new OP session.
pub(crate) fn new_browser_cookie(p: &Provider) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(v) = cookie_header(p, BROWSER_COOKIE, &random_token(), 31_536_000) {
        headers.append(header::SET_COOKIE, v);
    }
    headers
}

async fn render(p: &Provider, result: Result<Step, AuthorizeError>) -> Response {
    match result {
        Ok(Step::Login(url)) => see_other(&url),
        Ok(Step::Consent(id)) => see_other(&format!(
            "{}?interaction={id}",
            Endpoint::Consent.url(&p.config.issuer)
        )),
        Ok(Step::Respond(resp)) => authorization_response(&resp),
        Err(e) => render_error(p, e).await,
    }
}

async fn render_error(p: &Provider, e: AuthorizeError) -> Response {
    match e {
        AuthorizeError::Direct(e) => error_page(&e),
        AuthorizeError::Redirect(redirect, e) => {
            tracing::debug!(error = %e.code(), reason = %e.reason(), "authorization error sent to client");
            match AuthorizationResponse::error(p, *redirect, &e).await {
                Ok(response) => authorization_response(&response),
                Err(e) => error_page(&e),
            }
        }
    }
}

/// `GET` and `POST /authorize` (RFC 6749 §3.1: both methods must be supported by OIDC Core §3.1.2.1).
pub(crate) async fn authorize(State(p): State<Arc<Provider>>, req: Request<Body>) -> Response {
    let (mut parts, body) = req.into_parts();
    let params = match query_or_form(&parts, body).await {
        Ok(params) => params,
        Err(e) => return error_page(&e),
    };
    let existing = browser_cookie(&parts.headers);
    // A POST from another site carries no SameSite=Lax cookie: answering it with a new cookie
    // would replace the browser's, and with it the OP session of its earlier authorizations.
    // The same request as a top-level GET carries it.
    if existing.is_none() && parts.method == http::Method::POST {
        let url = Endpoint::Authorize.url(&p.config.issuer);
        return see_other(&format!("{url}?{}", params.to_query()));
    }
    let browser = existing.clone().unwrap_or_else(random_token);
    // A pushed request (RFC 9126 §4) or a request object (RFC 9101 §6.3) is the request.
    let (params, via) = match authorize::parameters(&p, params).await {
        Ok(found) => found,
        Err(e) => return render_error(&p, e).await,
    };
    let result = match authorize::validate(&p, &params, via).await {
        Ok((request, client)) => {
            interaction::start(&p, request, client, &browser, &mut parts).await
        }
        Err(e) => Err(e),
    };
    let mut response = render(&p, result).await;
    if existing.is_none() {
        set_browser_cookie(&p, &mut response, &browser);
    }
    response
}

/// A browser request about one interaction: its id (from the query or the form), the
/// browser-binding cookie, and the request parts the host's resolver reads.
struct InteractionRequest {
    id: String,
    browser: Option<String>,
    parts: http::request::Parts,
}

impl InteractionRequest {
    fn from_query(req: Request<Body>) -> Result<Self, OAuthError> {
        let (parts, _) = req.into_parts();
        let params = Params::parse(parts.uri.query().unwrap_or_default().as_bytes())?;
        Self::new(parts, &params)
    }

    fn new(parts: http::request::Parts, params: &Params) -> Result<Self, OAuthError> {
        let id = params.require("interaction")?.to_owned();
        Ok(Self {
            id,
            browser: browser_cookie(&parts.headers),
            parts,
        })
    }
}

/// `GET /authorize/resume?interaction=…`: where the host's login page sends the browser back.
pub(crate) async fn resume(State(p): State<Arc<Provider>>, req: Request<Body>) -> Response {
    let mut r = match InteractionRequest::from_query(req) {
        Ok(r) => r,
        Err(e) => return error_page(&e),
    };
    let result = interaction::resume(&p, &r.id, r.browser.as_deref(), &mut r.parts).await;
    render(&p, result).await
}

/// `GET /consent?interaction=…`: the default consent page.
pub(crate) async fn consent_page(State(p): State<Arc<Provider>>, req: Request<Body>) -> Response {
    let mut r = match InteractionRequest::from_query(req) {
        Ok(r) => r,
        Err(e) => return error_page(&e),
    };
    match interaction::consent_view(&p, &r.id, r.browser.as_deref(), &mut r.parts).await {
        Ok(view) => {
            let page = ConsentPage {
                action: Endpoint::Consent.url(&p.config.issuer),
                interaction_id: view.interaction_id,
                csrf: view.csrf,
                client_id: view.client_id,
                client_name: view.client_name,
                client_uri: view.client_uri,
                logo_uri: view.logo_uri,
                scopes: scope_requests(view.scopes),
                resources: view.resources,
                claims: view.claims,
                ui_locales: view.ui_locales,
                authorization_details: view.authorization_details,
                signed_in_as: view.signed_in_as,
            };
            match &p.consent {
                Some(host) => render_host_consent(host.as_ref(), &page),
                None => render_consent(&page),
            }
        }
        Err(e) => render_error(&p, e).await,
    }
}

/// `POST /consent`: the user's decision. CSRF-protected and bound to the browser and the user.
pub(crate) async fn consent_decision(
    State(p): State<Arc<Provider>>,
    req: Request<Body>,
) -> Response {
    let (parts, params) = match super::request::page_form(req).await {
        Ok(x) => x,
        Err(e) => return error_page(&e),
    };
    let allow = match params.get("decision") {
        Ok(Some("allow")) => true,
        Ok(Some("deny")) => false,
        _ => {
            return error_page(&OAuthError::invalid_request(
                "the consent form is incomplete",
            ));
        }
    };
    let (mut r, csrf) = match (InteractionRequest::new(parts, &params), params.get("csrf")) {
        (Ok(r), Ok(csrf)) => (r, csrf),
        _ => {
            return error_page(&OAuthError::invalid_request(
                "the consent form is incomplete",
            ));
        }
    };
    match interaction::decide(&p, &r.id, r.browser.as_deref(), csrf, allow, &mut r.parts).await {
        Ok(resp) => authorization_response(&resp),
        Err(e) => render_error(&p, e).await,
    }
}
