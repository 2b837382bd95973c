//! The generator's own HTTP/1.1 client: one request serialized once, sent over a kept-alive
//! connection, its response read whole.

use super::*;

/// A request the load repeats, serialized once: target address and the HTTP/1.1 bytes.
#[derive(Clone)]
pub(crate) struct Prepared {
    /// Every address the host resolves to, tried in order when connecting.
    pub(crate) addrs: Vec<SocketAddr>,
    /// Request line and headers up to (not including) `Content-Length` and the blank line.
    pub(crate) head: String,
    pub(crate) bytes: Bytes,
}

impl Prepared {
    pub(crate) fn new(method: &str, url: &str, headers: &[(&str, &str)]) -> anyhow::Result<Self> {
        loopback_only(url)?;
        let url = url::Url::parse(url)?;
        if url.scheme() != "http" {
            bail!("{url}: the load generator speaks plain HTTP/1.1 on loopback only");
        }
        let host = url.host_str().context("no host")?;
        let port = url.port_or_known_default().context("no port")?;
        let addrs: Vec<SocketAddr> = (host.trim_matches(['[', ']']), port)
            .to_socket_addrs()?
            .collect();
        if addrs.is_empty() {
            bail!("{host} does not resolve");
        }
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n");
        for (name, value) in headers {
            if value.contains(['\r', '\n']) {
                bail!("header {name} holds a line break");
            }
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let mut req = Self {
            addrs,
            head,
            bytes: Bytes::new(),
        };
        req.bytes = req.serialize(b"");
        Ok(req)
    }

    pub(crate) fn serialize(&self, body: &[u8]) -> Bytes {
        let mut bytes = format!("{}Content-Length: {}\r\n\r\n", self.head, body.len()).into_bytes();
        bytes.extend_from_slice(body);
        Bytes::from(bytes)
    }

    pub(crate) fn get(url: &str, bearer: Option<&str>) -> anyhow::Result<Self> {
        match bearer {
            Some(token) => Self::new("GET", url, &[("Authorization", &format!("Bearer {token}"))]),
            None => Self::new("GET", url, &[]),
        }
    }

    /// A form POST, with `client_secret_basic` when `client` is given (RFC 6749 §2.3.1: id and
    /// secret form-encoded, then base64).
    pub(crate) fn form(
        url: &str,
        client: Option<&(String, String)>,
        pairs: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let form = ("Content-Type", "application/x-www-form-urlencoded");
        let req = match client {
            Some((id, secret)) => {
                let enc = |v: &str| {
                    url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
                };
                let basic = format!(
                    "Basic {}",
                    STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
                );
                Self::new("POST", url, &[form, ("Authorization", &basic)])?
            }
            None => Self::new("POST", url, &[form])?,
        };
        Ok(req.with_form(pairs))
    }

    /// This request with one more header, and `pairs` as its form body: for a header that
    /// changes with every request (a DPoP proof).
    pub(crate) fn with_header_and_form(
        &self,
        name: &str,
        value: &str,
        pairs: &[(&str, &str)],
    ) -> Self {
        let with_header = Self {
            head: format!("{}{name}: {value}\r\n", self.head),
            ..self.clone()
        };
        with_header.with_form(pairs)
    }

    /// This request, without a body, with one more header (a DPoP proof at a resource).
    pub(crate) fn with_header(&self, name: &str, value: &str) -> Self {
        let with_header = Self {
            head: format!("{}{name}: {value}\r\n", self.head),
            ..self.clone()
        };
        Self {
            bytes: with_header.serialize(b""),
            ..with_header
        }
    }

    pub(crate) fn with_form(&self, pairs: &[(&str, &str)]) -> Self {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        Self {
            bytes: self.serialize(body.as_bytes()),
            ..self.clone()
        }
    }
}

/// One keep-alive HTTP/1.1 connection per worker, written to and read from directly, with
/// `httparse` for the response head. The generator shares the machine with the server under
/// test, so its own cost per request is taken from the server: a pooled client (URL parsing,
/// pool lookup, header maps per request) cost about twice the server's CPU per JWKS request,
/// and hyper's client connection still hands every request to a connection task.
#[derive(Default)]
pub(crate) struct Conn {
    pub(crate) stream: Option<TcpStream>,
    pub(crate) buf: Vec<u8>,
}

/// Largest response the generator reads.
pub(crate) const MAX_RESPONSE: usize = 1 << 20;

impl Conn {
    /// Sends `req` and reads the whole response. A kept-alive connection the server closed
    /// before answering is replaced and the request sent once more; any other failure drops
    /// the connection, and the next call opens a new one.
    pub(crate) async fn send(&mut self, req: &Prepared) -> anyhow::Result<(u16, &[u8])> {
        let reused = self.stream.is_some();
        let mut result = self.exchange(req).await;
        if result.is_err() && reused && self.buf.is_empty() {
            self.stream = None;
            result = self.exchange(req).await;
        }
        match result {
            Ok((status, body, keep_alive)) => {
                if !keep_alive {
                    self.stream = None;
                }
                Ok((status, &self.buf[body]))
            }
            Err(e) => {
                self.stream = None;
                Err(e)
            }
        }
    }

    pub(crate) async fn connect(addrs: &[SocketAddr]) -> anyhow::Result<TcpStream> {
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    return Ok(stream);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.map_or_else(|| anyhow::anyhow!("no address"), Into::into))
    }

    /// One request and its response, framed as RFC 9112 §6.3 says (except chunked bodies,
    /// which neither Lockspire nor the peer send for these requests: they are refused).
    pub(crate) async fn exchange(
        &mut self,
        req: &Prepared,
    ) -> anyhow::Result<(u16, std::ops::Range<usize>, bool)> {
        let stream = match &mut self.stream {
            Some(stream) => stream,
            slot => slot.insert(Self::connect(&req.addrs).await?),
        };
        self.buf.clear();
        stream.write_all(&req.bytes).await?;
        let mut start = 0;
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            let httparse::Status::Complete(head_len) = resp.parse(&self.buf[start..])? else {
                if self.buf.len() > MAX_RESPONSE {
                    bail!("response head too large");
                }
                self.buf.reserve(4096);
                if stream.read_buf(&mut self.buf).await? == 0 {
                    bail!("connection closed before a response");
                }
                continue;
            };
            let head = start + head_len;
            let status = resp.code.context("no status")?;
            if (100..200).contains(&status) {
                // An interim response: the final one follows.
                start = head;
                continue;
            }
            // HTTP/1.1 keeps the connection unless told to close it; HTTP/1.0 only when told
            // to keep it.
            let mut keep_alive = resp.version == Some(1);
            let mut length = None;
            for h in resp.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") {
                    length = Some(std::str::from_utf8(h.value)?.trim().parse::<usize>()?);
                } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                    bail!("chunked responses are not read by this generator");
                } else if h.name.eq_ignore_ascii_case("connection") {
                    for token in std::str::from_utf8(h.value)?.split(',') {
                        match token.trim() {
                            t if t.eq_ignore_ascii_case("close") => keep_alive = false,
                            t if t.eq_ignore_ascii_case("keep-alive") => keep_alive = true,
                            _ => {}
                        }
                    }
                }
            }
            let length = match (status, length) {
                (204 | 304, _) => Some(0),
                (_, length) => length,
            };
            let Some(length) = length else {
                // The body ends when the server closes the connection.
                while stream.read_buf(&mut self.buf).await? > 0 {
                    if self.buf.len() > MAX_RESPONSE {
                        bail!("response larger than {MAX_RESPONSE} bytes");
                    }
                }
                return Ok((status, head..self.buf.len(), false));
            };
            let end = head + length;
            if end > MAX_RESPONSE {
                bail!("response larger than {MAX_RESPONSE} bytes");
            }
            while self.buf.len() < end {
                if stream.read_buf(&mut self.buf).await? == 0 {
                    bail!("connection closed mid-response");
                }
            }
            if self.buf.len() > end {
                // Nothing was pipelined, so bytes past the response mean the framing is lost.
                bail!("{} bytes after the response", self.buf.len() - end);
            }
            return Ok((status, head..end, keep_alive));
        }
    }
}
