//! A small load generator for OAuth 2.0 / OpenID Connect servers: fixed concurrency over
//! keep-alive connections, bounded by a request count and a duration, loopback targets only.
//! It finds endpoints through discovery, so the same scenarios run against Lockspire and its
//! peers; the scenarios that need a signed-in user drive the Lockspire demo host's login form.

use std::net::{SocketAddr, ToSocketAddrs as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use reqwest::Client;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// What to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// `POST /token`, client_credentials, opaque token.
    ClientCredentials,
    /// `POST /token`, client_credentials, JWT access token (ES256).
    ClientCredentialsJwt,
    /// `POST` introspection of one valid token.
    Introspection,
    /// `POST /token`, refresh_token with rotation (each worker follows its own chain).
    Refresh,
    /// `GET` the JWK set.
    Jwks,
    /// `GET` the discovery document.
    Discovery,
    /// `GET` userinfo with a user's access token.
    Userinfo,
    /// A full flow for a signed-in user with remembered consent: authorize → code → token.
    AuthorizationCode,
}

impl Scenario {
    /// Scenarios that need only a confidential client: they run against any provider.
    pub const PORTABLE: [Scenario; 4] = [
        Self::ClientCredentials,
        Self::Introspection,
        Self::Jwks,
        Self::Discovery,
    ];

    /// Every scenario.
    pub const ALL: [Scenario; 8] = [
        Self::ClientCredentials,
        Self::ClientCredentialsJwt,
        Self::Introspection,
        Self::Refresh,
        Self::Jwks,
        Self::Discovery,
        Self::Userinfo,
        Self::AuthorizationCode,
    ];
}

/// The target and how to use it.
#[derive(Clone, Debug)]
pub struct Target {
    /// The issuer (discovery is read at `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    /// A confidential client allowed client_credentials; registered at `/register` when absent.
    pub client: Option<(String, String)>,
    /// Username and password on the Lockspire demo host, for user scenarios.
    pub user: (String, String),
    /// The `id_token_signed_response_alg` the user scenarios' client registers (OIDC
    /// Registration §2); `None` leaves the server's default (RS256).
    pub id_token_alg: Option<String>,
}

/// Limits of one run.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Concurrent workers, each with its own keep-alive connection.
    pub concurrency: usize,
    /// Stop after this long.
    pub duration: Duration,
    /// Stop after this many requests (or flows).
    pub max_requests: u64,
    /// The server's pid, to measure the CPU time it spends per request.
    pub server_pid: Option<u32>,
}

/// The result of one scenario.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Scenario.
    pub scenario: Scenario,
    /// Completed requests (flows for `authorization_code`).
    pub requests: u64,
    /// Requests that failed (non-2xx or transport error).
    pub errors: u64,
    /// Requests per second.
    pub per_second: f64,
    /// Latency percentiles in milliseconds.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// CPU time the server process spent per completed request, in microseconds (all its
    /// threads, user and system): a cost that does not depend on what else shares the machine.
    pub server_cpu_us_per_request: Option<f64>,
    /// CPU time the load generator itself spent per completed request: on a shared machine,
    /// what it takes away from the server.
    pub generator_cpu_us_per_request: Option<f64>,
}

/// A request the load repeats, serialized once: target address and the HTTP/1.1 bytes.
#[derive(Clone)]
struct Prepared {
    /// Every address the host resolves to, tried in order when connecting.
    addrs: Vec<SocketAddr>,
    /// Request line and headers up to (not including) `Content-Length` and the blank line.
    head: String,
    bytes: Bytes,
}

impl Prepared {
    fn new(method: &str, url: &str, headers: &[(&str, &str)]) -> anyhow::Result<Self> {
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

    fn serialize(&self, body: &[u8]) -> Bytes {
        let mut bytes = format!("{}Content-Length: {}\r\n\r\n", self.head, body.len()).into_bytes();
        bytes.extend_from_slice(body);
        Bytes::from(bytes)
    }

    fn get(url: &str, bearer: Option<&str>) -> anyhow::Result<Self> {
        match bearer {
            Some(token) => Self::new("GET", url, &[("Authorization", &format!("Bearer {token}"))]),
            None => Self::new("GET", url, &[]),
        }
    }

    /// A form POST, with `client_secret_basic` when `client` is given (RFC 6749 §2.3.1: id and
    /// secret form-encoded, then base64).
    fn form(
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

    fn with_form(&self, pairs: &[(&str, &str)]) -> Self {
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
struct Conn {
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

/// Largest response the generator reads.
const MAX_RESPONSE: usize = 1 << 20;

impl Conn {
    /// Sends `req` and reads the whole response. A kept-alive connection the server closed
    /// before answering is replaced and the request sent once more; any other failure drops
    /// the connection, and the next call opens a new one.
    async fn send(&mut self, req: &Prepared) -> anyhow::Result<(u16, &[u8])> {
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

    async fn connect(addrs: &[SocketAddr]) -> anyhow::Result<TcpStream> {
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
    async fn exchange(
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

struct Endpoints {
    token: String,
    introspection: Option<String>,
    jwks: String,
    discovery: String,
    userinfo: Option<String>,
    authorization: String,
    registration: Option<String>,
}

fn loopback_only(url: &str) -> anyhow::Result<()> {
    let host = url::Url::parse(url)?
        .host_str()
        .map(str::to_owned)
        .unwrap_or_default();
    if !matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]" | "::1") {
        bail!("refusing to load {host}: the load generator targets loopback only");
    }
    Ok(())
}

async fn endpoints(http: &Client, issuer: &str) -> anyhow::Result<Endpoints> {
    let discovery = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let doc: Value = http
        .get(&discovery)
        .send()
        .await?
        .json()
        .await
        .context("discovery")?;
    let field = |k: &str| doc[k].as_str().map(str::to_owned);
    for url in [field("token_endpoint"), field("jwks_uri")]
        .into_iter()
        .flatten()
    {
        loopback_only(&url)?;
    }
    Ok(Endpoints {
        token: field("token_endpoint").context("no token_endpoint")?,
        introspection: field("introspection_endpoint"),
        jwks: field("jwks_uri").context("no jwks_uri")?,
        userinfo: field("userinfo_endpoint"),
        authorization: field("authorization_endpoint").context("no authorization_endpoint")?,
        registration: field("registration_endpoint"),
        discovery,
    })
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// Registers a client at the provider's registration endpoint (open registration).
async fn register(
    http: &Client,
    endpoint: &str,
    body: Value,
) -> anyhow::Result<(String, Option<String>)> {
    let reg: Value = http.post(endpoint).json(&body).send().await?.json().await?;
    let id = reg["client_id"]
        .as_str()
        .context("registration returned no client_id")?
        .to_owned();
    Ok((id, reg["client_secret"].as_str().map(str::to_owned)))
}

async fn client_credentials(
    http: &Client,
    e: &Endpoints,
    (id, secret): &(String, String),
) -> anyhow::Result<String> {
    let resp: Value = http
        .post(&e.token)
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?
        .json()
        .await?;
    resp["access_token"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no token: {resp}"))
}

/// A signed-in browser for the Lockspire demo host and a public client with remembered consent.
struct UserFlow {
    browser: Client,
    client_id: String,
    redirect_uri: String,
}

const REDIRECT: &str = "http://127.0.0.1:9/cb";

async fn user_flow(http: &Client, e: &Endpoints, target: &Target) -> anyhow::Result<UserFlow> {
    let registration = e
        .registration
        .as_deref()
        .context("user scenarios need open registration (the demo host has it)")?;
    let mut metadata = json!({"token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"],
               "redirect_uris": [REDIRECT], "application_type": "native"});
    if let Some(alg) = &target.id_token_alg {
        metadata["id_token_signed_response_alg"] = json!(alg);
    }
    let (client_id, _) = register(http, registration, metadata).await?;
    let origin = url::Url::parse(&target.issuer)?
        .origin()
        .ascii_serialization();
    let browser = Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    // The demo's sign-in form carries a token bound to the browser's session.
    let login_page = browser
        .get(format!("{origin}/login"))
        .send()
        .await?
        .text()
        .await?;
    let login = browser
        .post(format!("{origin}/login"))
        .form(&[
            ("username", target.user.0.as_str()),
            ("password", target.user.1.as_str()),
            ("form_token", &hidden_field(&login_page, "form_token")?),
        ])
        .send()
        .await?;
    if !login.status().is_redirection() {
        bail!("signing in at {origin}/login failed: {}", login.status());
    }
    let flow = UserFlow {
        browser,
        client_id,
        redirect_uri: REDIRECT.into(),
    };
    // Consent once, so later flows are remembered.
    let (_, challenge) = pkce();
    let resp = flow
        .browser
        .get(authorize_url(e, &flow, &challenge))
        .send()
        .await?;
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if location.contains("/consent?") {
        let page = flow.browser.get(&location).send().await?.text().await?;
        let consent_url = format!("{}/consent", target.issuer.trim_end_matches('/'));
        flow.browser
            .post(consent_url)
            .form(&[
                ("interaction", hidden_field(&page, "interaction")?),
                ("csrf", hidden_field(&page, "csrf")?),
                ("decision", "allow".into()),
            ])
            .send()
            .await?;
    }
    Ok(flow)
}

/// The value of the hidden form field `name` in a server-rendered page.
fn hidden_field(page: &str, name: &str) -> anyhow::Result<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .with_context(|| format!("no {name} field in the page"))?
        + marker.len();
    let len = page[start..]
        .find('"')
        .with_context(|| format!("unterminated {name} field"))?;
    Ok(page[start..start + len].to_owned())
}

fn pkce() -> (String, String) {
    let mut raw = [0u8; 32];
    let _ = aws_lc_rs::rand::fill(&mut raw);
    let verifier = URL_SAFE_NO_PAD.encode(raw);
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ));
    (verifier, challenge)
}

fn authorize_url(e: &Endpoints, flow: &UserFlow, challenge: &str) -> String {
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &flow.client_id)
        .append_pair("redirect_uri", &flow.redirect_uri)
        .append_pair("scope", "openid offline_access")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    format!("{}?{q}", e.authorization)
}

/// One full authorization: authorize (remembered consent) → code → token. Returns the tokens.
async fn code_flow(e: &Endpoints, flow: &UserFlow, token_client: &Client) -> anyhow::Result<Value> {
    let (verifier, challenge) = pkce();
    let resp = flow
        .browser
        .get(authorize_url(e, flow, &challenge))
        .send()
        .await?;
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .context("no redirect")?
        .to_owned();
    let code = url::Url::parse(&location)?
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .with_context(|| format!("no code in {location}"))?;
    let tokens: Value = token_client
        .post(&e.token)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", flow.redirect_uri.as_str()),
            ("code_verifier", verifier.as_str()),
            ("client_id", flow.client_id.as_str()),
        ])
        .send()
        .await?
        .json()
        .await?;
    if tokens.get("access_token").is_none() {
        bail!("token exchange failed: {tokens}");
    }
    Ok(tokens)
}

/// Runs one scenario against `target`.
pub async fn run(target: &Target, scenario: Scenario, limits: Limits) -> anyhow::Result<Report> {
    loopback_only(&target.issuer)?;
    let http = Client::builder()
        .pool_max_idle_per_host(limits.concurrency)
        .build()?;
    let e = Arc::new(endpoints(&http, &target.issuer).await?);
    let client = match (&target.client, &e.registration) {
        (Some(c), _) => c.clone(),
        (None, Some(reg)) => {
            let (id, secret) = register(&http, reg, json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_basic"})).await?;
            (id, secret.context("no secret")?)
        }
        (None, None) => {
            bail!("pass --client-id and --client-secret (the target has no registration endpoint)")
        }
    };
    let client = Arc::new(client);
    // Per-scenario shared inputs.
    let jwt_client = if scenario == Scenario::ClientCredentialsJwt {
        let reg = e
            .registration
            .as_deref()
            .context("the JWT scenario registers a client: the target needs open registration")?;
        let (id, secret) = register(
            &http,
            reg,
            json!({"grant_types": ["client_credentials"], "access_token_format": "jwt"}),
        )
        .await?;
        Some(Arc::new((id, secret.context("no secret")?)))
    } else {
        None
    };
    let introspected = if scenario == Scenario::Introspection {
        Some(Arc::new(client_credentials(&http, &e, &client).await?))
    } else {
        None
    };
    let flow = if matches!(
        scenario,
        Scenario::Refresh | Scenario::Userinfo | Scenario::AuthorizationCode
    ) {
        Some(Arc::new(user_flow(&http, &e, target).await?))
    } else {
        None
    };
    let user_token = match (&flow, scenario) {
        (Some(f), Scenario::Userinfo) => Some(Arc::new(
            code_flow(&e, f, &http).await?["access_token"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )),
        _ => None,
    };
    // The request every iteration repeats; refresh and the code flow change theirs.
    let fixed = match scenario {
        Scenario::ClientCredentials | Scenario::ClientCredentialsJwt => Some(Prepared::form(
            &e.token,
            Some(jwt_client.as_deref().unwrap_or(&client)),
            &[("grant_type", "client_credentials")],
        )?),
        Scenario::Introspection => Some(Prepared::form(
            e.introspection
                .as_deref()
                .context("the target has no introspection endpoint")?,
            Some(&client),
            &[("token", introspected.as_deref().map_or("", String::as_str))],
        )?),
        Scenario::Jwks => Some(Prepared::get(&e.jwks, None)?),
        Scenario::Discovery => Some(Prepared::get(&e.discovery, None)?),
        Scenario::Userinfo => Some(Prepared::get(
            e.userinfo
                .as_deref()
                .context("the target has no userinfo endpoint")?,
            user_token.as_deref().map(String::as_str),
        )?),
        Scenario::Refresh | Scenario::AuthorizationCode => None,
    };
    let refresh_request = match scenario {
        Scenario::Refresh => Some(Prepared::form(&e.token, None, &[])?),
        _ => None,
    };
    let (fixed, refresh_request) = (Arc::new(fixed), Arc::new(refresh_request));
    let cpu_before = limits.server_pid.and_then(cpu_seconds);
    let own_cpu_before = cpu_seconds(std::process::id());
    let started = Instant::now();
    let deadline = started + limits.duration;
    let issued = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(100_000)));
    let mut workers = Vec::new();
    for _ in 0..limits.concurrency {
        let (e, http, flow) = (e.clone(), http.clone(), flow.clone());
        let (fixed, refresh_request) = (fixed.clone(), refresh_request.clone());
        let (issued, errors, latencies) = (issued.clone(), errors.clone(), latencies.clone());
        let max = limits.max_requests;
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut conn = Conn::default();
            // Each refresh worker follows its own rotation chain.
            let mut refresh = match (&flow, scenario) {
                (Some(f), Scenario::Refresh) => code_flow(&e, f, &http)
                    .await
                    .ok()
                    .and_then(|t| t["refresh_token"].as_str().map(str::to_owned)),
                _ => None,
            };
            while Instant::now() < deadline && issued.fetch_add(1, Ordering::Relaxed) < max {
                let t = Instant::now();
                let ok = match (fixed.as_ref(), refresh_request.as_ref(), &flow) {
                    (Some(req), _, _) => {
                        matches!(conn.send(req).await, Ok((status, _)) if (200..300).contains(&status))
                    }
                    (None, Some(template), Some(f)) => match &refresh {
                        Some(rt) => {
                            let req = template.with_form(&[
                                ("grant_type", "refresh_token"),
                                ("refresh_token", rt.as_str()),
                                ("client_id", f.client_id.as_str()),
                            ]);
                            refresh = match conn.send(&req).await {
                                Ok((200, body)) => {
                                    serde_json::from_slice::<Value>(body).ok().and_then(|v| {
                                        v["refresh_token"].as_str().map(str::to_owned)
                                    })
                                }
                                _ => None,
                            };
                            refresh.is_some()
                        }
                        // This worker's rotation chain is lost (the failure that lost it was
                        // counted): it stops rather than spin without awaiting.
                        None => break,
                    },
                    (None, None, Some(f)) => code_flow(&e, f, &http).await.is_ok(),
                    (None, _, None) => break,
                };
                if ok {
                    mine.push(t.elapsed());
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies.lock().await.extend(mine);
        }));
    }
    for w in workers {
        w.await?;
    }
    let elapsed = started.elapsed();
    let cpu_after = limits.server_pid.and_then(cpu_seconds);
    let own_cpu_after = cpu_seconds(std::process::id());
    let mut all = std::mem::take(&mut *latencies.lock().await);
    all.sort_unstable();
    let per_request = |before: Option<f64>, after: Option<f64>| match (before, after) {
        (Some(before), Some(after)) if !all.is_empty() => {
            Some((after - before) * 1e6 / all.len() as f64)
        }
        _ => None,
    };
    let server_cpu_us_per_request = per_request(cpu_before, cpu_after);
    let generator_cpu_us_per_request = per_request(own_cpu_before, own_cpu_after);
    Ok(Report {
        scenario,
        requests: all.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        per_second: all.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&all, 0.50),
        p90_ms: percentile(&all, 0.90),
        p99_ms: percentile(&all, 0.99),
        server_cpu_us_per_request,
        generator_cpu_us_per_request,
    })
}

/// CPU seconds a process has used so far (user + system, all threads), on Linux: fields 14
/// and 15 of `/proc/<pid>/stat`, in the kernel's fixed 100 Hz user ticks.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it are positional.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// Peak resident memory of a process in KiB (`VmHWM`), on Linux.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt as _;
    use tokio::net::TcpListener;

    use super::*;

    /// Serves each scripted answer on one connection after reading a request, a byte at a
    /// time except the last answer, which arrives in one write; `None` closes the connection
    /// and waits for the next one.
    async fn scripted(answers: Vec<Option<&'static str>>) -> String {
        let last = answers.len() - 1;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/x", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let mut answers = answers.into_iter().enumerate();
            'connections: loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                for (i, answer) in answers.by_ref() {
                    let Some(answer) = answer else {
                        continue 'connections;
                    };
                    let mut request = vec![0u8; 4096];
                    if stream.read(&mut request).await.unwrap_or(0) == 0 {
                        continue 'connections;
                    }
                    let chunk = if i == last { answer.len() } else { 1 };
                    for piece in answer.as_bytes().chunks(chunk) {
                        if stream.write_all(piece).await.is_err() {
                            continue 'connections;
                        }
                    }
                }
                return;
            }
        });
        url
    }

    #[tokio::test]
    async fn responses_are_framed_as_rfc_9112_says_across_split_reads() {
        let url = scripted(vec![
            Some("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
            Some("HTTP/1.1 204 No Content\r\n\r\n"),
            Some("HTTP/1.1 200 OK\r\nConnection: x, Close\r\nContent-Length: 2\r\n\r\nok"),
            None,
            Some("HTTP/1.0 201 Created\r\n\r\nuntil close"),
            None,
            Some("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab"),
        ])
        .await;
        let req = Prepared::get(&url, None).expect("request");
        let mut conn = Conn::default();
        let (status, body) = conn.send(&req).await.expect("interim then final");
        assert_eq!((status, body), (200, &b"hello"[..]));
        let (status, body) = conn.send(&req).await.expect("no content");
        assert_eq!((status, body), (204, &b""[..]));
        assert!(conn.stream.is_some(), "HTTP/1.1 keeps the connection");
        let (status, body) = conn.send(&req).await.expect("close");
        assert_eq!((status, body), (200, &b"ok"[..]));
        assert!(
            conn.stream.is_none(),
            "Connection: close is honoured in a list"
        );
        let (status, body) = conn.send(&req).await.expect("HTTP/1.0 body to close");
        assert_eq!((status, body), (201, &b"until close"[..]));
        assert!(conn.stream.is_none(), "HTTP/1.0 closes by default");
        assert!(
            conn.send(&req).await.is_err(),
            "bytes past Content-Length are a framing error"
        );
    }

    #[tokio::test]
    async fn a_kept_alive_connection_closed_by_the_server_is_replaced_once() {
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let url = scripted(vec![Some(ok), None, Some(ok)]).await;
        let req = Prepared::get(&url, None).expect("request");
        let mut conn = Conn::default();
        assert_eq!(conn.send(&req).await.expect("first").0, 200);
        assert_eq!(
            conn.send(&req)
                .await
                .expect("sent again on a new connection")
                .0,
            200
        );
    }

    #[test]
    fn only_plain_http_on_loopback_is_loaded() {
        assert!(Prepared::get("https://127.0.0.1:1/x", None).is_err());
        assert!(Prepared::get("http://192.0.2.1/x", None).is_err());
    }
}
