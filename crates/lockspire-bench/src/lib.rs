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
    /// `POST /token`, client_credentials with a fresh DPoP proof per request (RFC 9449): a
    /// DPoP-bound opaque token.
    ClientCredentialsDpop,
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
    /// `GET {issuer}/api/me` on the Lockspire demo host: its API protected by the
    /// resource-server toolkit in process, called with a JWT access token (ES256) verified
    /// against the key ring, no database read for the token (the handler then reads the
    /// host's user table once).
    ApiJwt,
    /// `GET {issuer}/api/me` with a DPoP-bound JWT access token and a fresh proof per request
    /// (`ath` included): the proof's signature, and its `jti` recorded once across processes.
    ApiJwtDpop,
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
    pub const ALL: [Scenario; 11] = [
        Self::ClientCredentials,
        Self::ClientCredentialsJwt,
        Self::ClientCredentialsDpop,
        Self::Introspection,
        Self::Refresh,
        Self::Jwks,
        Self::Discovery,
        Self::Userinfo,
        Self::AuthorizationCode,
        Self::ApiJwt,
        Self::ApiJwtDpop,
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

mod conn;
mod dpop;
mod flows;

use self::conn::{Conn, Prepared};
use self::flows::*;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
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
    let jwt_client = if matches!(
        scenario,
        Scenario::ClientCredentialsJwt | Scenario::ApiJwt | Scenario::ApiJwtDpop
    ) {
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
        Scenario::ClientCredentials
        | Scenario::ClientCredentialsJwt
        | Scenario::ClientCredentialsDpop => Some(Prepared::form(
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
        // Made below, once their token is issued.
        Scenario::Refresh
        | Scenario::AuthorizationCode
        | Scenario::ApiJwt
        | Scenario::ApiJwtDpop => None,
    };
    let refresh_request = match scenario {
        Scenario::Refresh => Some(Prepared::form(&e.token, None, &[])?),
        _ => None,
    };
    let proofs = match scenario {
        Scenario::ClientCredentialsDpop => Some(Arc::new(dpop::ProofSigner::new(&e.token)?)),
        _ => None,
    };
    // The demo host's protected API, and a token for it (bound to the proofs' key for DPoP).
    let api_url = format!("{}/api/me", target.issuer.trim_end_matches('/'));
    let mut api_ath = String::new();
    let api_signer = match scenario {
        Scenario::ApiJwtDpop => Some(Arc::new(dpop::ProofSigner::new(&e.token)?)),
        _ => None,
    };
    let fixed = match scenario {
        Scenario::ApiJwt | Scenario::ApiJwtDpop => {
            let client = jwt_client.as_deref().context("a JWT client")?;
            let token = api_token(&http, &e, client, &target.issuer, api_signer.as_deref()).await?;
            match &api_signer {
                None => Some(Prepared::get(&api_url, Some(&token))?),
                Some(_) => {
                    api_ath = dpop::ath(&token);
                    Some(Prepared::new(
                        "GET",
                        &api_url,
                        &[("Authorization", &format!("DPoP {token}"))],
                    )?)
                }
            }
        }
        _ => fixed,
    };
    let api_call = Arc::new((api_url, api_ath));
    let proofs = match (scenario, api_signer) {
        (Scenario::ApiJwtDpop, Some(signer)) => Some(signer),
        _ => proofs,
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
        let (proofs, api_call) = (proofs.clone(), api_call.clone());
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
                    // Signing the proof is part of what a DPoP client pays per request.
                    (Some(template), _, _) if scenario == Scenario::ApiJwtDpop => {
                        let (url, ath) = api_call.as_ref();
                        match proofs.as_ref().map(|s| s.proof_for("GET", url, Some(ath))) {
                            Some(Ok(proof)) => {
                                let req = template.with_header("DPoP", &proof);
                                matches!(conn.send(&req).await, Ok((200, _)))
                            }
                            _ => false,
                        }
                    }
                    (Some(template), _, _) if proofs.is_some() => {
                        match proofs.as_ref().map(|s| s.proof()) {
                            Some(Ok(proof)) => {
                                let req = template.with_header_and_form(
                                    "DPoP",
                                    &proof,
                                    &[("grant_type", "client_credentials")],
                                );
                                matches!(conn.send(&req).await, Ok((200, _)))
                            }
                            _ => false,
                        }
                    }
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
