//! The two demo processes, their shared PostgreSQL database, and the browser steps that start
//! a flow on either of them.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lockspire::SecretKey;
use reqwest::{Client, StatusCode, header};
use serde_json::{Value, json};
use sqlx::Connection;

/// Concurrent requests racing for one single-use token, spread over both processes.
pub(crate) const RACERS: usize = 100;

/// A demo process, killed when the test ends.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Two demo processes on a fresh database, with the issuer of the first.
pub(crate) struct Pair {
    pub(crate) db: Database,
    pub(crate) secret: String,
    pub(crate) issuer: String,
    pub(crate) a: Server,
    pub(crate) b: Server,
    pub(crate) _dir: tempfile::TempDir,
}

impl Pair {
    pub(crate) async fn start(extra: &[&str]) -> Self {
        let db = Database::create().await;
        let secret = SecretKey::generate().to_base64();
        let dir = tempfile::tempdir().expect("tempdir");
        let (port_a, port_b) = (free_port(), free_port());
        let issuer = format!("http://127.0.0.1:{port_a}");
        let a = start_with(port_a, &issuer, &db.url(), &secret, dir.path(), extra).await;
        let b = start_with(port_b, &issuer, &db.url(), &secret, dir.path(), extra).await;
        Self {
            db,
            secret,
            issuer,
            a,
            b,
            _dir: dir,
        }
    }
}

pub(crate) async fn start_with(
    port: u16,
    issuer: &str,
    database_url: &str,
    secret: &str,
    data_dir: &std::path::Path,
    extra: &[&str],
) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_lockspire-demo"))
        .args([
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--issuer",
            issuer,
            "--database-url",
            database_url,
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env("LOCKSPIRE_SECRET_KEY", secret)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the demo binary");
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = reqwest::get(format!("{}/.well-known/openid-configuration", server.base)).await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            return server;
        }
        assert!(
            Instant::now() < deadline,
            "demo on port {port} did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A fresh PostgreSQL database, dropped at the end.
pub(crate) struct Database {
    pub(crate) admin: String,
    pub(crate) name: String,
}

impl Database {
    pub(crate) async fn create() -> Self {
        let admin = std::env::var("LOCKSPIRE_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let mut buf = [0u8; 8];
        random_bytes(&mut buf);
        let name = format!(
            "lockspire_demo_{}",
            buf.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let mut c = sqlx::PgConnection::connect(&format!("{admin}/postgres"))
            .await
            .expect("PostgreSQL reachable");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut c)
            .await
            .expect("create db");
        Self { admin, name }
    }

    pub(crate) fn url(&self) -> String {
        format!("{}/{}", self.admin, self.name)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(async move {
                    if let Ok(mut c) =
                        sqlx::PgConnection::connect(&format!("{admin}/postgres")).await
                    {
                        let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                        let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut c).await;
                    }
                });
            }
        })
        .join();
    }
}

pub(crate) fn random_bytes(buf: &mut [u8]) {
    aws_lc_rs::rand::fill(buf).expect("rng");
}

/// A PKCE verifier and its S256 challenge (RFC 7636 §4.1–4.2).
pub(crate) fn pkce() -> (String, String) {
    let mut buf = [0u8; 32];
    random_bytes(&mut buf);
    let verifier = URL_SAFE_NO_PAD.encode(buf);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    (verifier, URL_SAFE_NO_PAD.encode(digest))
}

pub(crate) fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

pub(crate) fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

pub(crate) fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .map(|i| i + marker.len())
        .unwrap_or_else(|| panic!("no {name} in {html}"));
    html[start..start + html[start..].find('"').expect("end")].to_owned()
}

/// Registers a confidential client on `server` and returns (id, secret).
pub(crate) async fn register(server: &Server) -> (String, String) {
    register_with(
        server,
        json!({
            "client_name": "two processes",
            "redirect_uris": ["https://rp.example/cb"],
            "grant_types": ["authorization_code", "refresh_token"],
        }),
    )
    .await
}

/// Registers a confidential client with `metadata` at `server`; returns its id and secret.
pub(crate) async fn register_with(server: &Server, metadata: Value) -> (String, String) {
    let reg: Value = Client::new()
        .post(format!("{}/register", server.base))
        .json(&metadata)
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    (
        reg["client_id"].as_str().expect("id").into(),
        reg["client_secret"].as_str().expect("secret").into(),
    )
}

/// Signs alice in on `login_at`, starts the authorization on `start_at` and finishes consent on
/// `consent_at`; returns the code and verifier.
pub(crate) async fn authorize(
    login_at: &Server,
    start_at: &Server,
    consent_at: &Server,
    client_id: &str,
) -> (String, String) {
    let b = signed_in(login_at).await;
    let (verifier, challenge) = pkce();
    let url = format!(
        "{}/authorize?response_type=code&client_id={client_id}&redirect_uri=https%3A%2F%2Frp.example%2Fcb\
         &scope=openid%20offline_access&state=s&nonce=n&code_challenge={challenge}&code_challenge_method=S256",
        start_at.base
    );
    let resp = b.get(url).send().await.expect("authorize");
    let consent_path = location(&resp);
    if consent_path.starts_with("https://rp.example/cb?") {
        // Remembered consent: the code comes straight back.
        return (code_of(&consent_path), verifier);
    }
    let query = consent_path
        .split_once('?')
        .map(|(_, q)| q)
        .expect("consent redirect");
    assert!(consent_path.contains("/consent?"), "{consent_path}");
    // The consent page and decision are served by the other process.
    let page = b
        .get(format!("{}/consent?{query}", consent_at.base))
        .send()
        .await
        .expect("consent page");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    let decided = b
        .post(format!("{}/consent", consent_at.base))
        .form(&[
            ("interaction", hidden(&html, "interaction")),
            ("csrf", hidden(&html, "csrf")),
            ("decision", "allow".into()),
        ])
        .send()
        .await
        .expect("decide");
    let back = location(&decided);
    assert!(back.starts_with("https://rp.example/cb?"), "{back}");
    (code_of(&back), verifier)
}

/// A browser in which alice signed in on `server` through the demo's sign-in form.
pub(crate) async fn signed_in(server: &Server) -> Client {
    let b = browser();
    let login_page = b
        .get(format!("{}/login", server.base))
        .send()
        .await
        .expect("login page")
        .text()
        .await
        .expect("login page");
    let login = b
        .post(format!("{}/login", server.base))
        .form(&[
            ("username", "alice"),
            ("password", "alice-password"),
            ("form_token", &hidden(&login_page, "form_token")),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), StatusCode::SEE_OTHER, "signed in");
    b
}

pub(crate) fn code_of(redirect: &str) -> String {
    url::Url::parse(redirect)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code")
}

pub(crate) async fn token(
    server: &str,
    id: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let resp = Client::new()
        .post(format!("{server}/token"))
        .basic_auth(id, Some(secret))
        .form(form)
        .send()
        .await
        .expect("token");
    let status = resp.status();
    (status, resp.json().await.unwrap_or_default())
}
