//! Server-rendered pages: errors, consent, and the form_post response. Every page is
//! auto-escaped by askama, uncacheable, and refuses to be framed (clickjacking, RFC 6749 §10.13).

use askama::Template;
use axum::response::{Html, IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::host::{ConsentPage, ConsentRenderer, DevicePage, DeviceRenderer};
use crate::protocol::authorize::AuthorizationResponse;
use crate::protocol::error::OAuthError;
use crate::secrets::random_id;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    code: &'a str,
    description: &'a str,
}

#[derive(Template)]
#[template(path = "consent.html")]
struct DefaultConsentPage<'a> {
    page: &'a ConsentPage,
}

#[derive(Template)]
#[template(path = "form_post.html")]
struct FormPostPage<'a> {
    action: &'a str,
    params: &'a [(&'static str, String)],
    nonce: &'a str,
}

pub(super) fn html(status: StatusCode, body: String, csp: String) -> Response {
    let mut response = (status, Html(body)).into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Fail closed: a page without its policy is not served.
    match HeaderValue::from_str(&csp) {
        Ok(v) => {
            h.insert(header::CONTENT_SECURITY_POLICY, v);
            response
        }
        Err(_) => {
            tracing::error!("a page's Content-Security-Policy is not a valid header value");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "This page cannot be shown safely.",
            )
                .into_response()
        }
    }
}

pub(super) const PAGE_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'";

/// An error shown to the user instead of redirecting (RFC 6749 §4.1.2.1).
pub(crate) fn error_page(e: &OAuthError) -> Response {
    let status = e.page_status();
    if status.is_server_error() {
        tracing::error!(error = %e.code(), reason = %e.reason(), "authorization failed");
    } else {
        tracing::debug!(error = %e.code(), reason = %e.reason(), "authorization refused");
    }
    let page = ErrorPage {
        code: e.code().as_str(),
        description: e.description(),
    };
    let body = page
        .render()
        .unwrap_or_else(|_| "This request cannot be completed.".to_owned());
    html(status, body, PAGE_CSP.to_owned())
}

/// The built-in consent page.
pub(crate) fn consent_page(page: &ConsentPage) -> Response {
    match (DefaultConsentPage { page }).render() {
        Ok(body) => html(StatusCode::OK, body, PAGE_CSP.to_owned()),
        Err(e) => error_page(&OAuthError::internal(format!("consent template: {e}"))),
    }
}

#[derive(Template)]
#[template(path = "device.html")]
struct DefaultDevicePage<'a> {
    page: &'a DevicePage,
}

/// The device verification page (RFC 8628 §3.3): the host's when it renders its own. Too many
/// code entries are answered 429 (RFC 6585 §4).
pub(crate) fn device_page(renderer: Option<&dyn DeviceRenderer>, page: &DevicePage) -> Response {
    let status = match page {
        DevicePage::TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::OK,
    };
    let rendered = match renderer {
        Some(host) => host
            .render(page)
            .map(|body| (body, HOST_PAGE_CSP))
            .map_err(|e| format!("host device page: {e}")),
        None => DefaultDevicePage { page }
            .render()
            .map(|body| (body, PAGE_CSP))
            .map_err(|e| format!("device template: {e}")),
    };
    match rendered {
        Ok((body, csp)) => html(status, body, csp.to_owned()),
        Err(e) => error_page(&OAuthError::internal(e)),
    }
}

/// The host's consent page. Its own stylesheets and images may load from its origin; scripts
/// may not run, and nothing may frame it.
pub(crate) fn render_host_consent(renderer: &dyn ConsentRenderer, page: &ConsentPage) -> Response {
    match renderer.render(page) {
        Ok(body) => html(StatusCode::OK, body, HOST_PAGE_CSP.to_owned()),
        Err(e) => error_page(&OAuthError::internal(format!("host consent page: {e}"))),
    }
}

const HOST_PAGE_CSP: &str = "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' https: data:; font-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Sends an authorization response to the client's verified redirect URI.
pub(crate) fn authorization_response(resp: &AuthorizationResponse) -> Response {
    use crate::protocol::authorize::ResponseMode;
    match resp.redirect.mode().delivery() {
        ResponseMode::FormPost => {
            let nonce = random_id();
            let page = FormPostPage {
                action: resp.redirect.uri(),
                params: &resp.params,
                nonce: &nonce,
            };
            match page.render() {
                Ok(body) => html(
                    StatusCode::OK,
                    body,
                    format!(
                        "default-src 'none'; script-src 'nonce-{nonce}'; frame-ancestors 'none'; base-uri 'none'"
                    ),
                ),
                Err(e) => error_page(&OAuthError::internal(format!("form_post template: {e}"))),
            }
        }
        _ => see_other(&resp.location()),
    }
}

/// 303 See Other: the browser follows with GET even after a POST (RFC 9110 §15.4.4).
pub(crate) fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => {
            let mut r = StatusCode::SEE_OTHER.into_response();
            r.headers_mut().insert(header::LOCATION, v);
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(_) => error_page(&OAuthError::internal(
            "redirect location is not a valid header value",
        )),
    }
}
