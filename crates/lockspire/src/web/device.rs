//! The device authorization grant's endpoints (RFC 8628): `POST /device_authorization`, where
//! a device gets its codes, and `/device`, the page where the user enters the code and decides.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::{Request, StatusCode};

use super::authorize::{browser_cookie, set_browser_cookie};
use super::endpoints::{client_certificate, no_store};
use super::pages::{device_page, error_page, see_other};
use super::request::{authorization, client_address, form, page_form};
use crate::protocol::device::{self, Step, Visitor};
use crate::protocol::endpoints::Endpoint;
use crate::protocol::error::OAuthError;
use crate::protocol::params::Params;
use crate::protocol::provider::Provider;
use crate::secrets::random_token;

/// `POST /device_authorization` (RFC 8628 §3.1, §3.2).
pub(crate) async fn device_authorization(
    State(p): State<Arc<Provider>>,
    req: Request<Body>,
) -> Result<Response, OAuthError> {
    let (parts, params) = form(req, Endpoint::DeviceAuthorization).await?;
    let answer = device::authorize(
        &p,
        authorization(&parts.headers)?,
        client_certificate(&p, &parts),
        &params,
    )
    .await?;
    Ok(no_store(StatusCode::OK, &answer))
}

fn render(p: &Provider, step: Result<Step, OAuthError>) -> Response {
    match step {
        Ok(Step::Login(url)) => see_other(&url),
        Ok(Step::Page(page)) => device_page(p.device_page.as_deref(), &page),
        Err(e) => error_page(&e),
    }
}

/// The parameter marking the address a browser without the cookie is sent back to.
const COOKIE_CHECK: &str = "cookie_check";

/// `GET /device` (RFC 8628 §3.3): the code form, or the confirmation of the code it names.
pub(crate) async fn verification_page(
    State(p): State<Arc<Provider>>,
    req: Request<Body>,
) -> Response {
    let (mut parts, _) = req.into_parts();
    let existing = browser_cookie(&parts.headers);
    let browser = existing.clone().unwrap_or_else(random_token);
    // The code typed, and whether this is the visit a browser was sent back with to set its
    // cookie.
    let query = Params::parse(parts.uri.query().unwrap_or_default().as_bytes()).and_then(|q| {
        let typed = q.get("user_code")?.map(str::to_owned);
        Ok((typed, q.get(COOKIE_CHECK)? == Some("1")))
    });
    let step = match query {
        // A code is looked up only for a browser that keeps the binding cookie, so each one
        // counts against the limits of a browser that exists: a first visit is sent back to
        // the same address with the cookie set.
        Ok((Some(_), true)) if existing.is_none() => {
            // Sent back once with the cookie, and back again without it: it refuses cookies.
            return error_page(&OAuthError::invalid_request(
                "this browser does not keep cookies; allow them for this site to enter a code",
            ));
        }
        Ok((Some(typed), _)) if existing.is_none() => {
            let again = form_urlencoded::Serializer::new(String::new())
                .append_pair("user_code", &typed)
                .append_pair(COOKIE_CHECK, "1")
                .finish();
            let url = format!(
                "{}?{again}",
                Endpoint::DeviceVerification.url(&p.config.issuer)
            );
            let mut response = see_other(&url);
            set_browser_cookie(&p, &mut response, &browser);
            return response;
        }
        Ok((typed, _)) => {
            let address = client_address(&parts, &p.config.trusted_proxies);
            let visitor = Visitor {
                parts: &mut parts,
                browser: &browser,
                address,
            };
            device::show(&p, visitor, typed.as_deref()).await
        }
        Err(e) => Err(e),
    };
    let mut response = render(&p, step);
    if existing.is_none() {
        set_browser_cookie(&p, &mut response, &browser);
    }
    response
}

/// `POST /device`: the user's decision on the confirmation form.
pub(crate) async fn verification_decision(
    State(p): State<Arc<Provider>>,
    req: Request<Body>,
) -> Response {
    let incomplete = || OAuthError::invalid_request("the confirmation form is incomplete");
    let (mut parts, params) = match page_form(req).await {
        Ok(x) => x,
        Err(e) => return error_page(&e),
    };
    let fields = (
        params.get("user_code"),
        params.get("csrf"),
        params.get("decision"),
    );
    let (typed, csrf, allow) = match fields {
        (Ok(Some(typed)), Ok(Some(csrf)), Ok(Some(decision @ ("allow" | "deny")))) => {
            (typed, csrf, decision == "allow")
        }
        _ => return error_page(&incomplete()),
    };
    // The confirmation form is shown only to a browser holding the binding cookie.
    let Some(browser) = browser_cookie(&parts.headers) else {
        return error_page(&OAuthError::invalid_request(
            "this browser did not keep the page's cookie; open the verification page again and enter the code",
        ));
    };
    let address = client_address(&parts, &p.config.trusted_proxies);
    let visitor = Visitor {
        parts: &mut parts,
        browser: &browser,
        address,
    };
    let step = device::decide(&p, visitor, typed, csrf, allow).await;
    render(&p, step)
}
