//! Reading a request: its body within [`MAX_BODY`], its form (RFC 6749 §3.2) with repeated
//! parameters refused, its `Authorization` header.

use axum::body::Body;
use http::{HeaderMap, Request, header};

use crate::protocol::endpoints::Endpoint;
use crate::protocol::error::{ErrorCode, OAuthError};
use crate::protocol::params::Params;

/// Largest request body any endpoint reads; larger ones get 413 before any parsing.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// Reads a body up to [`MAX_BODY`]; larger bodies are refused with 413.
pub(crate) async fn read_body(body: Body) -> Result<axum::body::Bytes, OAuthError> {
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| OAuthError::too_large())
}

pub(crate) fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Parses the form body of a request to `endpoint` (RFC 6749 §3.2:
/// `application/x-www-form-urlencoded`) and refuses repeated parameters, before anything else
/// reads the request: client authentication included, so every direct endpoint answers a
/// malformed request the same way. (`/authorize` cannot: until its client and redirect URI are
/// verified, its errors are shown rather than returned, so it checks repeats in that order.)
pub(crate) async fn form(
    req: Request<Body>,
    endpoint: Endpoint,
) -> Result<(http::request::Parts, Params), OAuthError> {
    let (parts, params) = page_form(req).await?;
    params.refuse_repeats(endpoint.repeatable())?;
    Ok((parts, params))
}

/// Parses the form body of a page Lockspire or the host renders (the consent page). A host's
/// own template may post fields of its own, repeated ones too; the fields Lockspire reads are
/// each refused when repeated as it reads them.
pub(crate) async fn page_form(
    req: Request<Body>,
) -> Result<(http::request::Parts, Params), OAuthError> {
    let (parts, body) = req.into_parts();
    if !is_form(&parts.headers) {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let bytes = read_body(body).await?;
    Ok((parts, Params::parse(&bytes)?))
}

/// The address a request comes from: its peer (when the host serves with connect info), or,
/// when the peer is one of `trusted` proxies, the last address it appended to
/// `X-Forwarded-For` — what came before that was written by parties the proxy does not vouch
/// for.
pub(crate) fn client_address(
    parts: &http::request::Parts,
    trusted: &[std::net::IpAddr],
) -> Option<std::net::IpAddr> {
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next_back()
        .and_then(|last| last.trim().parse().ok());
    Some(forwarded.unwrap_or(peer))
}

/// The `DPoP` header (RFC 9449 §4.1): at most one, visible ASCII.
pub(crate) fn dpop_proof(headers: &HeaderMap) -> Result<Option<&str>, OAuthError> {
    let invalid = |why: &'static str| OAuthError::new(ErrorCode::InvalidDpopProof, why);
    let mut values = headers.get_all("dpop").iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(invalid("more than one DPoP header"));
    }
    first
        .map(|v| v.to_str().map_err(|_| invalid("malformed DPoP header")))
        .transpose()
}

/// The Authorization header as text, if present and visible ASCII.
pub(crate) fn authorization(headers: &HeaderMap) -> Result<Option<&str>, OAuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(OAuthError::invalid_request(
            "more than one Authorization header",
        ));
    }
    first
        .map(|v| {
            v.to_str()
                .map_err(|_| OAuthError::invalid_request("malformed Authorization header"))
        })
        .transpose()
}
