//! Test harness: the real Lockspire router on 127.0.0.1:0, a tiny host with its own sign-in
//! route, and a browser (reqwest with cookies, no automatic redirects) that walks flows.
//!
//! Every suite runs on SQLite (a fresh file per test) and on PostgreSQL (a fresh database per
//! test, dropped afterwards). `LOCKSPIRE_TEST_POSTGRES` overrides the server URL.

#![allow(dead_code)]

mod browser;
mod host;
mod jwt;
mod keys;
mod pki;

#[allow(unused_imports)]
pub use browser::*;
#[allow(unused_imports)]
pub use host::*;
#[allow(unused_imports)]
pub use jwt::*;
#[allow(unused_imports)]
pub use keys::*;
#[allow(unused_imports)]
pub use pki::*;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lc_rs::digest;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use lockspire::{
    AccountResolver, Builder, Claims, Clock, Context, HostError, InteractionResult, Lockspire,
    ManualClock, RegistrationPolicy, Resolution, SecretKey, SignedIn, Subject,
};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION};
use serde_json::{Value, json};
use sqlx::Connection;

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each test body once on SQLite and once on PostgreSQL, as `name::sqlite` and
/// `name::postgres`.
#[macro_export]
macro_rules! on_both_stores {
    ($( $(#[$meta:meta])* async fn $name:ident($h:ident) $body:block )*) => { $(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $h = common::Harness::start(common::Backend::Sqlite).await;
                $body
            }
            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let $h = common::Harness::start(common::Backend::Postgres).await;
                $body
            }
        }
    )* };
}

/// Runs each named `async fn name(backend: Backend)` on SQLite and on PostgreSQL, as
/// `name::sqlite` and `name::postgres`: for tests that start their own harness.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => { $(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() { super::$name(super::Backend::Sqlite).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() { super::$name(super::Backend::Postgres).await }
        }
    )* };
}

/// Drops a per-test PostgreSQL database when the test ends.
struct PgDatabase {
    admin_url: String,
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime; a separate thread may block on its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async move {
                    if let Ok(mut c) =
                        sqlx::PgConnection::connect(&format!("{admin}/postgres")).await
                    {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        )))
                        .execute(&mut c)
                        .await;
                    }
                });
            }
        })
        .join();
    }
}

pub fn postgres_admin_url() -> String {
    std::env::var("LOCKSPIRE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A fresh database URL for one test.
pub struct TestDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<PgDatabase>,
}

impl TestDatabase {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}/lockspire.db", dir.path().display());
                Self {
                    url,
                    _dir: Some(dir),
                    _pg: None,
                }
            }
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let name = format!(
                    "lockspire_t_{}",
                    random_b64(12).to_lowercase().replace(['-', '_'], "x")
                );
                let mut c = sqlx::PgConnection::connect(&format!("{admin}/postgres"))
                    .await
                    .expect("PostgreSQL must be reachable for the postgres variant of this test");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                    .execute(&mut c)
                    .await
                    .expect("create test database");
                Self {
                    url: format!("{admin}/{name}"),
                    _dir: None,
                    _pg: Some(PgDatabase {
                        admin_url: admin,
                        name,
                    }),
                }
            }
        }
    }
}

/// A running provider and its host.
pub struct Harness {
    pub base: String,
    pub ls: Lockspire,
    pub clock: ManualClock,
    pub users: Users,
    pub backend: Backend,
    pub db: TestDatabase,
    pub secret_key: SecretKey,
}

/// The resource servers the test issuer serves.
pub const TEST_RESOURCES: [&str; 4] = [
    "https://api.example/",
    "https://api.example/a",
    "https://api.example/b",
    "https://api.example/c",
];

pub fn default_users() -> Users {
    let mut users = HashMap::new();
    users.insert(
        "alice".to_owned(),
        TestUser {
            name: "Alice Example".into(),
            email: "alice@example.com".into(),
        },
    );
    users.insert(
        "bob".to_owned(),
        TestUser {
            name: "Bob Example".into(),
            email: "bob@example.com".into(),
        },
    );
    Arc::new(Mutex::new(users))
}

impl Harness {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |b| b).await
    }

    /// Starts with extra builder settings (registration is open unless changed).
    pub async fn start_with(backend: Backend, configure: impl FnOnce(Builder) -> Builder) -> Self {
        let db = TestDatabase::new(backend).await;
        let secret_key = SecretKey::generate();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let clock = ManualClock::default();
        let users = default_users();
        let builder = Lockspire::builder()
            .issuer(&base)
            .expect("issuer")
            .database(&db.url)
            .secret_key(secret_key.clone())
            .account_resolver(TestResolver {
                users: users.clone(),
            })
            .registration(RegistrationPolicy::Open)
            .scopes(["api:read", "api:write"])
            .resources(TEST_RESOURCES)
            .clock(clock.clone());
        let ls = configure(builder).build().await.expect("build lockspire");
        serve(listener, ls.clone(), clock.clone());
        Self {
            base,
            ls,
            clock,
            users,
            backend,
            db,
            secret_key,
        }
    }

    /// Another server on the same database (a second process in production).
    pub async fn second_server(&self) -> (String, Lockspire) {
        self.second_server_with(|b| b).await
    }

    /// [`Self::second_server`] with extra builder settings (a stricter profile, say).
    pub async fn second_server_with(
        &self,
        configure: impl FnOnce(Builder) -> Builder,
    ) -> (String, Lockspire) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        // Same issuer: a load balancer would put both behind one name.
        let ls = Lockspire::builder()
            .issuer(&self.base)
            .expect("issuer")
            .database(&self.db.url)
            .secret_key(self.secret_key.clone())
            .account_resolver(TestResolver {
                users: self.users.clone(),
            })
            .registration(RegistrationPolicy::Open)
            .scopes(["api:read", "api:write"])
            .resources(TEST_RESOURCES)
            .clock(self.clock.clone())
            .key_refresh_interval(std::time::Duration::from_millis(200));
        let ls = configure(ls).build().await.expect("build second lockspire");
        serve(listener, ls.clone(), self.clock.clone());
        (base, ls)
    }

    /// The discovery document (OIDC Discovery §4).
    pub async fn discovery(&self) -> Value {
        self.http()
            .get(self.url("/.well-known/openid-configuration"))
            .send()
            .await
            .expect("discovery")
            .json()
            .await
            .expect("discovery JSON")
    }

    /// The published key set (RFC 7517 §5).
    pub async fn jwks(&self) -> Value {
        self.http()
            .get(self.url("/jwks"))
            .send()
            .await
            .expect("jwks")
            .json()
            .await
            .expect("jwks JSON")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A plain HTTP client: no cookies, no redirects.
    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    }

    /// A browser for `user` (or nobody, with `None`).
    pub fn browser(&self, user: Option<&str>) -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base: self.base.clone(),
            user: user.map(str::to_owned),
        }
    }

    /// Registers a public client (PKCE, no secret) with `redirect_uri`.
    pub async fn public_client(&self, extra: Value) -> TestClient {
        let mut meta = json!({
            "client_name": "Test public client",
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": ["https://rp.example/cb"],
            "application_type": "native",
        });
        merge(&mut meta, extra);
        self.client_from(meta).await
    }

    /// Registers a confidential client using client_secret_basic.
    pub async fn confidential_client(&self, extra: Value) -> TestClient {
        let mut meta = json!({
            "client_name": "Test confidential client",
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
            "redirect_uris": ["https://rp.example/cb"],
        });
        merge(&mut meta, extra);
        self.client_from(meta).await
    }

    async fn client_from(&self, meta: Value) -> TestClient {
        let reg = self
            .ls
            .create_client(None, meta.clone())
            .await
            .expect("create client");
        TestClient {
            id: reg.client_id,
            secret: reg.client_secret,
            redirect_uri: meta["redirect_uris"][0]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            auth: meta["token_endpoint_auth_method"]
                .as_str()
                .unwrap_or("client_secret_basic")
                .to_owned(),
        }
    }

    /// POSTs a form to `path` authenticated as `client` (its registered method).
    pub async fn post_as(&self, client: &TestClient, path: &str, params: &[(&str, &str)]) -> Reply {
        self.post_with(client, path, params, &[]).await
    }

    /// [`Self::post_as`] with extra request headers (a `DPoP` proof, say).
    pub async fn post_with(
        &self,
        client: &TestClient,
        path: &str,
        params: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut form: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut req = self.http().post(self.url(path));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        match client.auth.as_str() {
            "client_secret_basic" => {
                let creds = STANDARD.encode(format!(
                    "{}:{}",
                    client.id,
                    client.secret.clone().unwrap_or_default()
                ));
                req = req.header("authorization", format!("Basic {creds}"));
            }
            "client_secret_post" => {
                form.push(("client_id".into(), client.id.clone()));
                form.push((
                    "client_secret".into(),
                    client.secret.clone().unwrap_or_default(),
                ));
            }
            _ => form.push(("client_id".into(), client.id.clone())),
        }
        Reply::from(req.form(&form).send().await.expect("request")).await
    }

    /// Runs `/authorize` for `client` as `user`, consenting when asked, and redeems nothing:
    /// returns the code and the PKCE verifier.
    pub async fn authorize(
        &self,
        client: &TestClient,
        user: &str,
        scope: &str,
    ) -> (String, String) {
        let browser = self.browser(Some(user));
        let pkce = Pkce::new();
        let url = self.authorize_url(client, scope, &pkce, &[]);
        let outcome = browser
            .run(&url, &client.redirect_uri, Consent::Allow)
            .await;
        let params = outcome.redirect_params();
        let code = params
            .get("code")
            .cloned()
            .unwrap_or_else(|| panic!("no code in {params:?}"));
        (code, pkce.verifier)
    }

    pub fn authorize_url(
        &self,
        client: &TestClient,
        scope: &str,
        pkce: &Pkce,
        extra: &[(&str, &str)],
    ) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("response_type", "code")
            .append_pair("client_id", &client.id)
            .append_pair("redirect_uri", &client.redirect_uri)
            .append_pair("scope", scope)
            .append_pair("state", "st-123")
            .append_pair("nonce", "n-456")
            .append_pair("code_challenge", &pkce.challenge)
            .append_pair("code_challenge_method", "S256");
        for (k, v) in extra {
            q.append_pair(k, v);
        }
        format!("{}/authorize?{}", self.base, q.finish())
    }

    /// Code + PKCE + token exchange; returns the token response.
    pub async fn tokens(&self, client: &TestClient, user: &str, scope: &str) -> Value {
        let (code, verifier) = self.authorize(client, user, scope).await;
        let reply = self.redeem(client, &code, &verifier).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "token exchange failed: {}",
            reply.body
        );
        reply.body
    }

    pub async fn redeem(&self, client: &TestClient, code: &str, verifier: &str) -> Reply {
        self.post_as(
            client,
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &client.redirect_uri),
                ("code_verifier", verifier),
            ],
        )
        .await
    }

    /// Introspects `token` as `caller` and returns `active`.
    pub async fn is_active(&self, caller: &TestClient, token: &str) -> bool {
        let reply = self
            .post_as(caller, "/introspect", &[("token", token)])
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body["active"].as_bool().expect("active is a boolean")
    }

    pub async fn userinfo(&self, token: &str) -> Reply {
        Reply::from(
            self.http()
                .get(self.url("/userinfo"))
                .bearer_auth(token)
                .send()
                .await
                .expect("userinfo"),
        )
        .await
    }
}

fn serve(listener: tokio::net::TcpListener, ls: Lockspire, clock: ManualClock) {
    let host = Router::new()
        .route("/test-signin", get(test_signin))
        .route("/test-login", get(test_login_page))
        .route("/test-signout", get(test_signout))
        .with_state(HostState { clock });
    let app = host.merge(ls.router());
    tokio::spawn(async move {
        // With the peer address, as a host must serve for per-address limits.
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await;
    });
}

fn merge(base: &mut Value, extra: Value) {
    if let (Value::Object(b), Value::Object(e)) = (base, extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
}

/// A registered client.
#[derive(Clone, Debug)]
pub struct TestClient {
    pub id: String,
    pub secret: Option<String>,
    pub redirect_uri: String,
    pub auth: String,
}

/// An HTTP reply with its body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub async fn from(resp: reqwest::Response) -> Self {
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self {
            status,
            headers,
            body,
            text,
        }
    }

    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// A PKCE pair (RFC 7636).
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Self {
        let verifier = random_b64(32);
        let challenge =
            URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
        Self {
            verifier,
            challenge,
        }
    }
}

pub fn random_b64(n: usize) -> String {
    let mut buf = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut buf).expect("rng");
    URL_SAFE_NO_PAD.encode(buf)
}
