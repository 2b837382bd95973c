//! Two real server processes (the demo binary, twice) on one PostgreSQL database, the way hosts
//! scale out: single-use transitions hold across processes, an authorization started on one
//! process completes on the other, and a rotated signing key reaches every process.

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
const RACERS: usize = 100;

/// A demo process, killed when the test ends.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Two demo processes on a fresh database, with the issuer of the first.
struct Pair {
    db: Database,
    secret: String,
    issuer: String,
    a: Server,
    b: Server,
    _dir: tempfile::TempDir,
}

impl Pair {
    async fn start(extra: &[&str]) -> Self {
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

async fn start_with(
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
struct Database {
    admin: String,
    name: String,
}

impl Database {
    async fn create() -> Self {
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

    fn url(&self) -> String {
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

fn random_bytes(buf: &mut [u8]) {
    aws_lc_rs::rand::fill(buf).expect("rng");
}

/// A PKCE verifier and its S256 challenge (RFC 7636 §4.1–4.2).
fn pkce() -> (String, String) {
    let mut buf = [0u8; 32];
    random_bytes(&mut buf);
    let verifier = URL_SAFE_NO_PAD.encode(buf);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    (verifier, URL_SAFE_NO_PAD.encode(digest))
}

fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .map(|i| i + marker.len())
        .unwrap_or_else(|| panic!("no {name} in {html}"));
    html[start..start + html[start..].find('"').expect("end")].to_owned()
}

/// Registers a confidential client on `server` and returns (id, secret).
async fn register(server: &Server) -> (String, String) {
    let reg: Value = Client::new()
        .post(format!("{}/register", server.base))
        .json(&json!({
            "client_name": "two processes",
            "redirect_uris": ["https://rp.example/cb"],
            "grant_types": ["authorization_code", "refresh_token"],
        }))
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
async fn authorize(
    login_at: &Server,
    start_at: &Server,
    consent_at: &Server,
    client_id: &str,
) -> (String, String) {
    let b = browser();
    let login_page = b
        .get(format!("{}/login", login_at.base))
        .send()
        .await
        .expect("login page")
        .text()
        .await
        .expect("login page");
    let login = b
        .post(format!("{}/login", login_at.base))
        .form(&[
            ("username", "alice"),
            ("password", "alice-password"),
            ("form_token", &hidden(&login_page, "form_token")),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), StatusCode::SEE_OTHER, "signed in");
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

fn code_of(redirect: &str) -> String {
    url::Url::parse(redirect)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code")
}

async fn token(server: &str, id: &str, secret: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_postgres_share_every_single_use_transition() {
    // Bound by name: a field left to `..` would be dropped here, and with it the database.
    let Pair {
        a,
        b,
        db: _db,
        _dir,
        ..
    } = Pair::start(&[]).await;
    let (id, client_secret) = register(&a).await;

    // An authorization started on A completes (consent, token) on B.
    let (code, verifier) = authorize(&a, &a, &b, &id).await;
    let (status, first) = redeem(&b, &id, &client_secret, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{first}");

    // Concurrent redemptions of one code, spread over both processes: exactly one succeeds, and
    // the replays revoke what it received. (Signed in on A, authorized on B: the session and the
    // remembered consent are shared through the database.)
    let (code, verifier) = authorize(&a, &b, &a, &id).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "https://rp.example/cb"),
        ("code_verifier", verifier.as_str()),
    ];
    let winners = race(&a, &b, &id, &client_secret, &form).await;
    assert_eq!(
        winners.len(),
        1,
        "exactly one redemption succeeds across processes"
    );
    let introspect = Client::new()
        .post(format!("{}/introspect", a.base))
        .basic_auth(&id, Some(&client_secret))
        .form(&[("token", winners[0]["access_token"].as_str().expect("at"))])
        .send()
        .await
        .expect("introspect")
        .json::<Value>()
        .await
        .expect("json");
    assert_eq!(
        introspect["active"], false,
        "replay revoked the winner's tokens"
    );

    // Refresh rotation on A, reuse of the rotated token on B: the family is revoked.
    let rt0 = first["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    let (status, rotated) = refresh(&a, &id, &client_secret, &rt0).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let (status, reuse) = refresh(&b, &id, &client_secret, &rt0).await;
    assert_eq!(
        (status, reuse["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let rt1 = rotated["refresh_token"].as_str().expect("rt1");
    let (status, _) = refresh(&a, &id, &client_secret, rt1).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the newest token of the family is revoked too"
    );

    // Concurrent rotations of one refresh token over both processes: exactly one rotates, the
    // others are reuse, and reuse revokes the whole family, the winner's new token included.
    let (code, verifier) = authorize(&a, &b, &a, &id).await;
    let (status, fresh) = redeem(&a, &id, &client_secret, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    let rt = fresh["refresh_token"].as_str().expect("refresh token");
    let form = [("grant_type", "refresh_token"), ("refresh_token", rt)];
    let winners = race(&a, &b, &id, &client_secret, &form).await;
    assert_eq!(
        winners.len(),
        1,
        "exactly one rotation succeeds across processes"
    );
    let newest = winners[0]["refresh_token"].as_str().expect("rotated");
    let (status, body) = refresh(&b, &id, &client_secret, newest).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "reuse revoked the winner's rotated token"
    );
}

/// Redeems an authorization code at `server`.
async fn redeem(
    server: &Server,
    id: &str,
    secret: &str,
    code: &str,
    verifier: &str,
) -> (StatusCode, Value) {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", "https://rp.example/cb"),
        ("code_verifier", verifier),
    ];
    token(&server.base, id, secret, &form).await
}

/// Rotates a refresh token at `server`.
async fn refresh(
    server: &Server,
    id: &str,
    secret: &str,
    refresh_token: &str,
) -> (StatusCode, Value) {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    token(&server.base, id, secret, &form).await
}

/// Sends [`RACERS`] concurrent token requests with one form, alternating between the two
/// processes; every loser must get `invalid_grant`. Returns the winners' responses.
async fn race(a: &Server, b: &Server, id: &str, secret: &str, form: &[(&str, &str)]) -> Vec<Value> {
    let form: Vec<(String, String)> = form
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        let base = [&a.base, &b.base][i % 2].clone();
        let (id, secret, form) = (id.to_owned(), secret.to_owned(), form.clone());
        tasks.push(tokio::spawn(async move {
            let form: Vec<(&str, &str)> =
                form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            token(&base, &id, &secret, &form).await
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (status, body) = t.await.expect("task");
        match status {
            StatusCode::OK => winners.push(body),
            StatusCode::BAD_REQUEST => assert_eq!(body["error"], "invalid_grant"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    winners
}

/// The `kid` of a JWS header.
fn kid_of(jws: &str) -> String {
    let header = jws.split('.').next().expect("header");
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("b64")).expect("json");
    header["kid"].as_str().expect("kid").to_owned()
}

/// The key ids `server` publishes.
async fn published_kids(server: &Server) -> Vec<String> {
    let jwks: Value = Client::new()
        .get(format!("{}/jwks", server.base))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

/// Runs a code flow entirely on `server` and returns the `kid` its ID token is signed with.
async fn id_token_kid(server: &Server, id: &str, secret: &str) -> String {
    let (code, verifier) = authorize(server, server, server, id).await;
    let (status, body) = redeem(server, id, secret, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    kid_of(body["id_token"].as_str().expect("id token"))
}

/// Polls `check` until it holds, failing after `bound`. Returns how long it took.
async fn within<F, Fut>(bound: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < bound, "{what}: not within {bound:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotated_by_the_operator_is_published_then_used_by_every_process_within_the_refresh_interval()
 {
    let Pair {
        db,
        secret,
        issuer,
        a,
        b,
        _dir,
    } = Pair::start(&["--key-refresh-secs", "1"]).await;
    let (id, client_secret) = register(&a).await;
    let old = id_token_kid(&b, &id, &client_secret).await;
    assert_eq!(old, id_token_kid(&a, &id, &client_secret).await);

    // The operator is a third process on the same database (what `lockspire keys` does). Its
    // clock stands in for the 300 s a new key must be published before it signs.
    let clock = lockspire::ManualClock::default();
    let operator = lockspire::Lockspire::builder()
        .issuer(&issuer)
        .expect("issuer")
        .database(&db.url())
        .secret_key(SecretKey::from_base64(&secret).expect("secret"))
        .clock(clock.clone())
        .build_operator()
        .await
        .expect("operator");
    let new = operator
        .generate_key(lockspire::jose::SigningAlg::RS256)
        .await
        .expect("generate")
        .kid;

    // Refresh interval 1 s: both processes publish the upcoming key within a few seconds…
    let bound = Duration::from_secs(5);
    for server in [&a, &b] {
        within(bound, "upcoming key published", || async {
            published_kids(server).await.contains(&new)
        })
        .await;
    }
    // …and an upcoming key never signs.
    assert_eq!(id_token_kid(&b, &id, &client_secret).await, old);
    let refused = operator.activate_key(&new).await;
    assert!(
        refused.is_err(),
        "a key published for less than 300 s cannot sign"
    );

    clock.advance(lockspire::PUBLISH_BEFORE_USE + 1);
    operator.activate_key(&new).await.expect("activate");
    for server in [&a, &b] {
        within(bound, "rotated key used", || async {
            id_token_kid(server, &id, &client_secret).await == new
        })
        .await;
        // The retired key stays published so tokens it signed still verify.
        let kids = published_kids(server).await;
        assert!(kids.contains(&old) && kids.contains(&new), "{kids:?}");
    }
}

/// What `/authorize` on `server` answers for `client_id` with `redirect_uri`: 400 for an
/// unregistered redirect URI, a redirect (to the login page) otherwise.
async fn authorize_status(server: &Server, client_id: &str, redirect_uri: &str) -> StatusCode {
    let (_, challenge) = pkce();
    let url = format!(
        "{}/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid&nonce=n\
         &code_challenge={challenge}&code_challenge_method=S256",
        server.base,
        url::form_urlencoded::byte_serialize(redirect_uri.as_bytes()).collect::<String>()
    );
    browser().get(url).send().await.expect("authorize").status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_through_one_process_is_seen_by_the_other_within_a_second_not_after_its_cache_expires()
 {
    // The default key refresh (30 s): anything seen sooner was announced.
    let Pair {
        db,
        secret,
        issuer,
        a,
        b,
        _dir,
    } = Pair::start(&[]).await;
    let operator = lockspire::Lockspire::builder()
        .issuer(&issuer)
        .expect("issuer")
        .database(&db.url())
        .secret_key(SecretKey::from_base64(&secret).expect("secret"))
        .build_operator()
        .await
        .expect("operator");
    let metadata = |redirect: &str| {
        json!({
            "client_name": "changes", "redirect_uris": [redirect],
            "grant_types": ["authorization_code", "client_credentials"],
        })
    };
    let reg: Value = Client::new()
        .post(format!("{}/register", a.base))
        .json(&metadata("https://rp.example/cb"))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    let id = reg["client_id"].as_str().expect("id").to_owned();
    let mut client_secret = reg["client_secret"].as_str().expect("secret").to_owned();
    let rat = reg["registration_access_token"]
        .as_str()
        .expect("rat")
        .to_owned();
    let registration = reg["registration_client_uri"]
        .as_str()
        .expect("uri")
        .to_owned();
    let cc = [("grant_type", "client_credentials")];
    // Each check first makes B cache the client, then changes it through A (or the operator, a
    // third process), then asks B until it sees the change: within a second (the time
    // PostgreSQL takes to deliver the announcement, with room to spare), where an unannounced
    // change would stay hidden behind B's cache for 5 s.
    let second = Duration::from_secs(1);
    let on_b = |secret: String| {
        let (base, id) = (b.base.clone(), id.clone());
        async move { token(&base, &id, &secret, &cc).await.0 }
    };

    // A rotated secret.
    assert_eq!(on_b(client_secret.clone()).await, StatusCode::OK);
    let old_secret = client_secret.clone();
    client_secret = operator.rotate_client_secret(&id).await.expect("rotate");
    within(second, "the old secret is refused", || async {
        on_b(old_secret.clone()).await == StatusCode::UNAUTHORIZED
    })
    .await;
    assert_eq!(on_b(client_secret.clone()).await, StatusCode::OK);

    // Disabled, then enabled.
    operator
        .set_client_enabled(&id, false)
        .await
        .expect("disable");
    within(second, "disabled", || async {
        on_b(client_secret.clone()).await == StatusCode::UNAUTHORIZED
    })
    .await;
    operator
        .set_client_enabled(&id, true)
        .await
        .expect("enable");
    within(second, "enabled", || async {
        on_b(client_secret.clone()).await == StatusCode::OK
    })
    .await;

    // New redirect URIs through RFC 7592 on A.
    assert_eq!(
        authorize_status(&b, &id, "https://rp.example/cb").await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        authorize_status(&b, &id, "https://rp.example/new").await,
        StatusCode::BAD_REQUEST
    );
    let mut update = metadata("https://rp.example/new");
    update["client_id"] = json!(id);
    let put = Client::new()
        .put(&registration)
        .bearer_auth(&rat)
        .json(&update)
        .send()
        .await
        .expect("put");
    assert_eq!(put.status(), StatusCode::OK);
    let rat: Value = put.json().await.expect("json");
    let rat = rat["registration_access_token"]
        .as_str()
        .expect("rotated rat")
        .to_owned();
    within(second, "the new redirect URI is accepted", || async {
        authorize_status(&b, &id, "https://rp.example/new").await == StatusCode::SEE_OTHER
    })
    .await;
    assert_eq!(
        authorize_status(&b, &id, "https://rp.example/cb").await,
        StatusCode::BAD_REQUEST
    );

    // Deleted through RFC 7592 on A.
    assert_eq!(on_b(client_secret.clone()).await, StatusCode::OK);
    let deleted = Client::new()
        .delete(&registration)
        .bearer_auth(&rat)
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    within(second, "deleted", || async {
        on_b(client_secret.clone()).await == StatusCode::UNAUTHORIZED
    })
    .await;

    // A new signing key is published by B well before its 30 s re-read.
    let new = operator
        .generate_key(lockspire::jose::SigningAlg::ES256)
        .await
        .expect("generate")
        .kid;
    let took = within(
        Duration::from_secs(3),
        "announced key published",
        || async { published_kids(&b).await.contains(&new) },
    )
    .await;
    eprintln!("B published the new key after {took:?}");
}
