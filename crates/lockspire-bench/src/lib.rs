//! A small load generator for OAuth 2.0 / OpenID Connect servers: fixed concurrency over
//! keep-alive connections, bounded by a request count and a duration, loopback targets only.
//! It finds endpoints through discovery, so the same scenarios run against Lockspire and its
//! peers; the scenarios that need a signed-in user drive the Lockspire demo host's login form.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Client, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};
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
    let login = browser
        .post(format!("{origin}/login"))
        .form(&[
            ("username", target.user.0.as_str()),
            ("password", target.user.1.as_str()),
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
        let field = |name: &str| -> anyhow::Result<String> {
            let marker = format!("name=\"{name}\" value=\"");
            let start = page.find(&marker).context("consent form")? + marker.len();
            Ok(page[start..start + page[start..].find('"').context("consent form")?].to_owned())
        };
        let consent_url = format!("{}/consent", target.issuer.trim_end_matches('/'));
        flow.browser
            .post(consent_url)
            .form(&[
                ("interaction", field("interaction")?),
                ("csrf", field("csrf")?),
                ("decision", "allow".into()),
            ])
            .send()
            .await?;
    }
    Ok(flow)
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
    let cpu_before = limits.server_pid.and_then(cpu_seconds);
    let started = Instant::now();
    let deadline = started + limits.duration;
    let issued = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(100_000)));
    let mut workers = Vec::new();
    for _ in 0..limits.concurrency {
        let (e, client, http) = (e.clone(), client.clone(), http.clone());
        let (jwt_client, introspected, flow, user_token) = (
            jwt_client.clone(),
            introspected.clone(),
            flow.clone(),
            user_token.clone(),
        );
        let (issued, errors, latencies) = (issued.clone(), errors.clone(), latencies.clone());
        let max = limits.max_requests;
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
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
                let ok = match scenario {
                    Scenario::ClientCredentials | Scenario::ClientCredentialsJwt => {
                        let (id, secret) = jwt_client.as_deref().unwrap_or(&client);
                        let r = http
                            .post(&e.token)
                            .basic_auth(id, Some(secret))
                            .form(&[("grant_type", "client_credentials")])
                            .send()
                            .await;
                        consume(r).await
                    }
                    Scenario::Introspection => {
                        let token = introspected
                            .as_deref()
                            .map(String::as_str)
                            .unwrap_or_default();
                        let url = e.introspection.as_deref().unwrap_or_default();
                        let r = http
                            .post(url)
                            .basic_auth(&client.0, Some(&client.1))
                            .form(&[("token", token)])
                            .send()
                            .await;
                        consume(r).await
                    }
                    Scenario::Jwks => consume(http.get(&e.jwks).send().await).await,
                    Scenario::Discovery => consume(http.get(&e.discovery).send().await).await,
                    Scenario::Userinfo => {
                        let url = e.userinfo.as_deref().unwrap_or_default();
                        let token = user_token
                            .as_deref()
                            .map(String::as_str)
                            .unwrap_or_default();
                        consume(http.get(url).bearer_auth(token).send().await).await
                    }
                    Scenario::Refresh => match (&refresh, &flow) {
                        (Some(rt), Some(f)) => {
                            let r = http
                                .post(&e.token)
                                .form(&[
                                    ("grant_type", "refresh_token"),
                                    ("refresh_token", rt.as_str()),
                                    ("client_id", f.client_id.as_str()),
                                ])
                                .send()
                                .await;
                            match r {
                                Ok(resp) if resp.status() == StatusCode::OK => {
                                    let body: Value = resp.json().await.unwrap_or_default();
                                    refresh = body["refresh_token"].as_str().map(str::to_owned);
                                    refresh.is_some()
                                }
                                _ => false,
                            }
                        }
                        _ => false,
                    },
                    Scenario::AuthorizationCode => match &flow {
                        Some(f) => code_flow(&e, f, &http).await.is_ok(),
                        None => false,
                    },
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
    let mut all = std::mem::take(&mut *latencies.lock().await);
    all.sort_unstable();
    let server_cpu_us_per_request = match (cpu_before, cpu_after) {
        (Some(before), Some(after)) if !all.is_empty() => {
            Some((after - before) * 1e6 / all.len() as f64)
        }
        _ => None,
    };
    Ok(Report {
        scenario,
        requests: all.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        per_second: all.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&all, 0.50),
        p90_ms: percentile(&all, 0.90),
        p99_ms: percentile(&all, 0.99),
        server_cpu_us_per_request,
    })
}

async fn consume(r: Result<reqwest::Response, reqwest::Error>) -> bool {
    match r {
        Ok(resp) => {
            let ok = resp.status().is_success();
            // Read the body so the connection is reused.
            let _ = resp.bytes().await;
            ok
        }
        Err(_) => false,
    }
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
