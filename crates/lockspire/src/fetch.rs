//! Outbound HTTP from the server (remote JWKS of clients, later client metadata documents),
//! through one guarded client: https only, no redirects, short timeouts, a size cap,
//! and no request to an address inside the server's own network — loopback, private,
//! link-local (cloud metadata) or otherwise special — unless the server runs in development
//! mode, where loopback is allowed.
//!
//! The address check runs twice: on the URL when it is an IP literal (the resolver is not
//! consulted for those), and in the DNS resolver on every address a name resolves to, so a
//! public name pointing at 169.254.169.254 is refused too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest013 as reqwest;
use url::Url;

/// Largest response body read.
pub(crate) const MAX_BODY: usize = 256 * 1024;

/// Why a fetch failed. Recorded for operators; clients see only `invalid_client`.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The URL is not https (or loopback http in development mode), or is malformed.
    #[error("URL refused: {0}")]
    Url(String),
    /// The host is, or resolves to, an address the server must not call.
    #[error("address refused: {0}")]
    Address(String),
    /// Connecting, sending or reading failed or timed out.
    #[error("request failed: {0}")]
    Transport(String),
    /// The server answered with a non-success status (redirects included).
    #[error("status {0}")]
    Status(u16),
    /// The body exceeded the size cap or was not what was expected.
    #[error("bad response: {0}")]
    Body(String),
}

/// True for addresses a server must never be made to call on a client's behalf.
pub(crate) fn is_forbidden(ip: IpAddr, allow_loopback: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4, allow_loopback),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return forbidden_v4(v4, allow_loopback);
            }
            let first = v6.segments()[0];
            (v6.is_loopback() && !allow_loopback)
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (first & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
                || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) // AWS metadata over IPv6
        }
    }
}

/// An IPv4 address carried inside an IPv6 one, which routes to the IPv4 host: v4-mapped
/// (`::ffff:0:0/96`), v4-compatible (`::/96`, deprecated), NAT64 (`64:ff9b::/96`) and 6to4
/// (`2002::/16`).
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0, _, _] if !v6.is_loopback() && !v6.is_unspecified() => Some(tail),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        [0x2002, a, b, ..] => Some(Ipv4Addr::new(
            (a >> 8) as u8,
            a as u8,
            (b >> 8) as u8,
            b as u8,
        )),
        _ => None,
    }
}

fn forbidden_v4(ip: Ipv4Addr, allow_loopback: bool) -> bool {
    let [a, b, ..] = ip.octets();
    (ip.is_loopback() && !allow_loopback)
        || ip.is_private()
        || ip.is_link_local() // 169.254/16, cloud metadata
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT 100.64/10
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

/// Checks a URL before any request: scheme, and the host when it is an IP literal.
pub(crate) fn check_url(text: &str, allow_loopback: bool) -> Result<Url, FetchError> {
    let url = Url::parse(text)
        .map_err(|_| FetchError::Url(format!("{text:?} is not an absolute URL")))?;
    if url.username() != "" || url.password().is_some() {
        return Err(FetchError::Url("URLs with credentials are refused".into()));
    }
    let host = url
        .host()
        .ok_or_else(|| FetchError::Url("no host".into()))?;
    let loopback_host = match &host {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
    };
    match url.scheme() {
        "https" => {}
        "http" if allow_loopback && loopback_host => {}
        _ => return Err(FetchError::Url("only https URLs are fetched".into())),
    }
    let literal = match host {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(d) if d.eq_ignore_ascii_case("localhost") && !allow_loopback => {
            return Err(FetchError::Address("localhost".into()));
        }
        url::Host::Domain(_) => None,
    };
    if let Some(ip) = literal
        && is_forbidden(ip, allow_loopback)
    {
        return Err(FetchError::Address(ip.to_string()));
    }
    Ok(url)
}

/// A resolver that drops forbidden addresses and fails when none remain.
struct GuardedResolver {
    allow_loopback: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_loopback = self.allow_loopback;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed: Vec<SocketAddr> = resolved
                .filter(|a| !is_forbidden(a.ip(), allow_loopback))
                .collect();
            if allowed.is_empty() {
                return Err(
                    format!("{host} resolves only to addresses the server may not call").into(),
                );
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// The guarded HTTP client.
#[derive(Clone)]
pub(crate) struct Fetcher {
    client: reqwest::Client,
    allow_loopback: bool,
    /// Refuse addresses inside the network (URLs clients supplied).
    guard_addresses: bool,
}

impl Fetcher {
    /// A fetcher; `allow_loopback` only in development mode.
    pub(crate) fn new(allow_loopback: bool) -> Result<Self, FetchError> {
        Self::guarded(allow_loopback, Duration::from_secs(1))
    }

    /// A fetcher for calls to clients' notification endpoints (CIBA Core §10), guarded like
    /// [`Fetcher::new`]; a client's server may take a few seconds to answer.
    pub(crate) fn for_notifications(allow_loopback: bool) -> Result<Self, FetchError> {
        Self::guarded(allow_loopback, Duration::from_secs(5))
    }

    fn guarded(allow_loopback: bool, timeout: Duration) -> Result<Self, FetchError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(1))
            .timeout(timeout)
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { allow_loopback }))
            .user_agent("lockspire")
            .build()
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        Ok(Self {
            client,
            allow_loopback,
            guard_addresses: true,
        })
    }

    /// A fetcher for URLs the operator configured (a resource server's issuer, and the
    /// endpoints its metadata names), not ones a client supplied: it may reach addresses inside
    /// the network, where a resource server and its issuer often both live; the other guards
    /// (https, no redirects, timeouts, the size cap) stay. `allow_http_loopback` lets it call
    /// `http` on loopback, for development.
    pub(crate) fn for_configured_urls(allow_http_loopback: bool) -> Result<Self, FetchError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .user_agent("lockspire")
            .build()
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        Ok(Self {
            client,
            allow_loopback: allow_http_loopback,
            guard_addresses: false,
        })
    }

    fn checked(&self, url: &str) -> Result<Url, FetchError> {
        match check_url(url, self.allow_loopback) {
            Err(FetchError::Address(_)) if !self.guard_addresses => {
                let url = Url::parse(url).map_err(|_| FetchError::Url(url.to_owned()))?;
                if url.scheme() == "https" || self.allow_loopback {
                    Ok(url)
                } else {
                    Err(FetchError::Url("only https URLs are fetched".into()))
                }
            }
            other => other,
        }
    }

    /// GETs `url` and parses the body as JSON.
    pub(crate) async fn get_json(&self, url: &str) -> Result<serde_json::Value, FetchError> {
        let url = self.checked(url)?;
        let resp = self
            .client
            .get(url)
            .header("accept", "application/json, application/jwk-set+json")
            .send()
            .await
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        read_json(resp).await
    }

    /// POSTs `form` to `url`, authenticated with HTTP Basic as `client_id` (RFC 6749 §2.3.1),
    /// and parses the body as JSON.
    pub(crate) async fn post_form_json(
        &self,
        url: &str,
        client_id: &str,
        secret: &str,
        form: &[(&str, &str)],
    ) -> Result<serde_json::Value, FetchError> {
        let url = self.checked(url)?;
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        // RFC 6749 §2.3.1: both halves are form-urlencoded before Basic encoding.
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let resp = self
            .client
            .post(url)
            .basic_auth(encode(client_id), Some(encode(secret)))
            .header("accept", "application/json")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        read_json(resp).await
    }
}

/// Calls whose answer is only its status: notifications.
impl Fetcher {
    /// POSTs `body` as JSON to `url`, with `bearer` as a Bearer token when given; returns the
    /// status and the seconds of a `Retry-After` given as a number (RFC 9110 §10.2.3). The
    /// answer's body is not read: a notification endpoint's answer is its status.
    pub(crate) async fn post_json(
        &self,
        url: &str,
        bearer: Option<&str>,
        body: &serde_json::Value,
    ) -> Result<(u16, Option<i64>), FetchError> {
        let url = self.checked(url)?;
        let mut request = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        notify(request).await
    }

    /// POSTs `form` form-encoded to `url`; answers as [`Self::post_json`].
    pub(crate) async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
    ) -> Result<(u16, Option<i64>), FetchError> {
        let url = self.checked(url)?;
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let request = self
            .client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        notify(request).await
    }
}

/// Sends a notification; returns its status and `Retry-After` seconds.
async fn notify(request: reqwest::RequestBuilder) -> Result<(u16, Option<i64>), FetchError> {
    let resp = request
        .send()
        .await
        .map_err(|e| FetchError::Transport(e.to_string()))?;
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|s| *s >= 0);
    Ok((resp.status().as_u16(), retry_after))
}

/// Reads a successful response's body, at most [`MAX_BODY`] bytes, as JSON.
async fn read_json(mut resp: reqwest::Response) -> Result<serde_json::Value, FetchError> {
    if !resp.status().is_success() {
        return Err(FetchError::Status(resp.status().as_u16()));
    }
    if resp.content_length().is_some_and(|n| n as usize > MAX_BODY) {
        return Err(FetchError::Body("larger than 256 KiB".into()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| FetchError::Transport(e.to_string()))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(FetchError::Body("larger than 256 KiB".into()));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| FetchError::Body(format!("not JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused() {
        for bad in [
            "https://127.0.0.1/jwks",
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.1/",
            "https://192.168.1.1/",
            "https://172.16.0.1/",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://[2002:a9fe:a9fe::1]/",
            "https://[::a9fe:a9fe]/",
            "https://0.0.0.0/",
            "https://100.64.0.1/",
            "https://localhost/",
            "http://example.com/jwks",
            "file:///etc/passwd",
            "https://user:pw@example.com/",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad} accepted");
        }
        assert!(check_url("https://example.com/jwks", false).is_ok());
        assert!(check_url("https://93.184.216.34/jwks", false).is_ok());
    }

    #[test]
    fn development_mode_allows_loopback_only() {
        assert!(check_url("http://127.0.0.1:8080/jwks", true).is_ok());
        assert!(check_url("http://localhost:8080/jwks", true).is_ok());
        assert!(check_url("https://169.254.169.254/", true).is_err());
        assert!(check_url("http://example.com/", true).is_err());
    }
}
