//! When PostgreSQL goes away under load, requests fail fast with 503 `temporarily_unavailable`
//! — never a panic, a 500 or a half-written grant — and service resumes without a restart
//! when the database returns. The outage is made by a TCP proxy in front of the database that
//! drops every connection and refuses new ones.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{TestResolver, default_users};
use lockspire::{Lockspire, SecretKey};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// A loopback TCP proxy to PostgreSQL that can be cut.
struct Proxy {
    port: u16,
    down: Arc<AtomicBool>,
    cut: Arc<Notify>,
}

impl Proxy {
    async fn start(upstream: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let down = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(Notify::new());
        let (d, c) = (down.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if d.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection close
                }
                let c = c.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = c.notified() => {}
                    }
                });
            }
        });
        Self { port, down, cut }
    }

    fn fail(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cut.notify_waiters();
    }

    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

async fn token(base: &str, id: &str, secret: &str) -> (u16, Value, Duration) {
    let started = Instant::now();
    let resp = reqwest::Client::new()
        .post(format!("{base}/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("the server answers");
    let status = resp.status().as_u16();
    (
        status,
        resp.json().await.unwrap_or_default(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_yields_503_and_service_resumes_without_restart() {
    let db = common::TestDatabase::new(common::Backend::Postgres).await;
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let name = db.url.rsplit('/').next().expect("database name").to_owned();
    let admin = common::postgres_admin_url();
    let user = admin
        .trim_start_matches("postgres://")
        .split('@')
        .next()
        .unwrap_or("postgres")
        .to_owned();
    let url = format!("postgres://{user}@127.0.0.1:{}/{name}", proxy.port);

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let ls = Lockspire::builder()
        .issuer(&base)
        .expect("issuer")
        .database(&url)
        .secret_key(SecretKey::generate())
        .account_resolver(TestResolver::new(default_users()))
        .build()
        .await
        .expect("build");
    let client = ls
        .create_client(None, json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_basic"}))
        .await
        .expect("client");
    let (id, secret) = (client.client_id, client.client_secret.expect("secret"));
    let app: axum::Router = ls.router();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    assert_eq!(token(&base, &id, &secret).await.0, 200);

    proxy.fail();
    // Under load while the database is gone: every answer is a fast 503, never a 500.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (base, id, secret) = (base.clone(), id.clone(), secret.clone());
        tasks.push(tokio::spawn(
            async move { token(&base, &id, &secret).await },
        ));
    }
    for t in tasks {
        let (status, body, took) = t.await.expect("task");
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"], "temporarily_unavailable");
        assert!(took < Duration::from_secs(5), "failed fast: {took:?}");
    }
    // What lives in memory keeps being served.
    assert_eq!(
        reqwest::get(format!("{base}/jwks"))
            .await
            .expect("jwks")
            .status(),
        200
    );

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body, _) = token(&base, &id, &secret).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "only 503 while recovering: {body}");
        assert!(Instant::now() < deadline, "service did not resume");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
