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

/// The parameters of a browser request that may come as a query (`GET`) or a form (`POST`):
/// `/authorize` (OIDC Core §3.1.2.1) and `/end_session` (RP-Initiated Logout 1.0 §2).
pub(crate) async fn query_or_form(
    parts: &http::request::Parts,
    body: Body,
) -> Result<Params, OAuthError> {
    if parts.method == http::Method::POST {
        if !is_form(&parts.headers) {
            return Err(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        Params::parse(&read_body(body).await?)
    } else {
        Params::parse(parts.uri.query().unwrap_or_default().as_bytes())
    }
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
/// when the peer is one of `trusted` proxies, the nearest address in `X-Forwarded-For` that is
/// not a trusted proxy too — read from the right, since each proxy appends the address it saw,
/// and what stands left of the first untrusted one was written by parties nobody vouches for.
/// `None` when no address can be believed: a trusted proxy that sent none, or a chain of
/// trusted proxies only.
pub(crate) fn client_address(
    parts: &http::request::Parts,
    trusted: &[std::net::IpAddr],
) -> Option<std::net::IpAddr> {
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_canonical())?;
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|t| t.to_canonical() == *ip);
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let hops: Vec<&str> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for hop in hops.into_iter().rev() {
        let ip = hop.trim().parse::<std::net::IpAddr>().ok()?.to_canonical();
        if !is_trusted(&ip) {
            return Some(ip);
        }
    }
    None
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

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, SocketAddr};

    use axum::extract::ConnectInfo;

    use super::client_address;

    fn parts(peer: &str, forwarded: &[&str]) -> http::request::Parts {
        let mut req = http::Request::new(());
        if let Ok(peer) = peer.parse::<SocketAddr>() {
            req.extensions_mut().insert(ConnectInfo(peer));
        }
        for value in forwarded {
            if let Ok(v) = http::HeaderValue::from_str(value) {
                req.headers_mut().append("x-forwarded-for", v);
            }
        }
        req.into_parts().0
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn an_untrusted_peer_is_the_address_whatever_it_forwards() {
        let trusted = [ip("10.0.0.1")];
        let p = parts("203.0.113.9:5000", &["198.51.100.7"]);
        assert_eq!(client_address(&p, &trusted), Some(ip("203.0.113.9")));
        assert_eq!(
            client_address(&parts("", &[]), &trusted),
            None,
            "no connect info"
        );
    }

    #[test]
    fn behind_trusted_proxies_the_nearest_untrusted_hop_is_the_address() {
        let trusted = [ip("10.0.0.1"), ip("10.0.0.2")];
        // A client's own header, then the CDN (trusted), then the load balancer (the peer).
        let p = parts("10.0.0.1:5000", &["6.6.6.6, 198.51.100.7", "10.0.0.2"]);
        assert_eq!(client_address(&p, &trusted), Some(ip("198.51.100.7")));
        // An IPv4-mapped peer is the proxy it maps.
        let p = parts("[::ffff:10.0.0.1]:5000", &["198.51.100.8"]);
        assert_eq!(client_address(&p, &trusted), Some(ip("198.51.100.8")));
    }

    #[test]
    fn a_trusted_proxy_that_names_nobody_believable_gives_no_address() {
        let trusted = [ip("10.0.0.1")];
        assert_eq!(client_address(&parts("10.0.0.1:1", &[]), &trusted), None);
        assert_eq!(
            client_address(&parts("10.0.0.1:1", &["10.0.0.1"]), &trusted),
            None
        );
        assert_eq!(
            client_address(&parts("10.0.0.1:1", &["garbage"]), &trusted),
            None
        );
    }
}
