//! Test harness: the real Lockspire router on 127.0.0.1:0, a tiny host with its own sign-in
//! route, and a browser (reqwest with cookies, no automatic redirects) that walks flows.
//!
//! Every suite runs on SQLite (a fresh file per test) and on PostgreSQL (a fresh database per
//! test, dropped afterwards). `LOCKSPIRE_TEST_POSTGRES` overrides the server URL.

#![allow(dead_code)]

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

/// A user of the test host.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub name: String,
    pub email: String,
}

/// A session cookie for this subject makes the test host's resolver panic.
pub const PANICKING_SUBJECT: &str = "host-bug";

/// The test host's accounts, shared with the resolver so tests can delete them.
pub type Users = Arc<Mutex<HashMap<String, TestUser>>>;

/// The host seam as a test host implements it: the session is a cookie `test_session` holding
/// `<subject>.<auth_time>`, set by the host's `/test-signin` route.
pub struct TestResolver {
    users: Users,
}

fn session_cookie(parts: &http::request::Parts) -> Option<(String, i64)> {
    parts
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|p| p.trim().strip_prefix("test_session="))
        .filter_map(|v| v.split_once('.'))
        .filter_map(|(s, t)| Some((s.to_owned(), t.parse().ok()?)))
        .next()
}

impl TestResolver {
    pub fn new(users: Users) -> Self {
        Self { users }
    }
}

impl AccountResolver for TestResolver {
    type Account = (String, TestUser);

    async fn resolve_current_account(
        &self,
        req: &mut http::request::Parts,
        _ctx: &Context,
    ) -> Result<Resolution<Self::Account>, HostError> {
        let Some((subject, auth_time)) = session_cookie(req) else {
            return Ok(Resolution::NotSignedIn);
        };
        // A host with a bug, for the tests that a panic in host code answers 500.
        assert_ne!(subject, PANICKING_SUBJECT, "the host's resolver panicked");
        let user = self
            .users
            .lock()
            .map_err(|_| HostError::new("poisoned"))?
            .get(&subject)
            .cloned();
        Ok(match user {
            Some(user) => Resolution::SignedIn(SignedIn {
                subject: Subject::new(subject.clone())?,
                account: (subject, user),
                auth_time,
                acr: None,
                amr: vec!["pwd".into()],
            }),
            None => Resolution::NotSignedIn,
        })
    }

    async fn resolve_account(
        &self,
        subject: &Subject,
        _ctx: &Context,
    ) -> Result<Option<Self::Account>, HostError> {
        let users = self.users.lock().map_err(|_| HostError::new("poisoned"))?;
        Ok(users
            .get(subject.as_str())
            .cloned()
            .map(|u| (subject.as_str().to_owned(), u)))
    }

    async fn build_claims(
        &self,
        account: &Self::Account,
        _ctx: &Context,
    ) -> Result<Claims, HostError> {
        let (subject, user) = account;
        let mut claims = Claims::default();
        claims.id_token.insert("email".into(), json!(user.email));
        claims.id_token.insert("email_verified".into(), json!(true));
        // A host value for a protocol claim must never reach a token.
        claims
            .id_token
            .insert("iss".into(), json!("https://evil.example"));
        claims.userinfo.insert("name".into(), json!(user.name));
        claims.userinfo.insert("email".into(), json!(user.email));
        claims.userinfo.insert("email_verified".into(), json!(true));
        claims
            .userinfo
            .insert("preferred_username".into(), json!(subject));
        claims.userinfo.insert("sub".into(), json!("someone-else"));
        Ok(claims)
    }

    fn redirect_for_login(&self, _req: &http::request::Parts, ctx: &Context) -> InteractionResult {
        let return_to = ctx.return_to.clone().unwrap_or_default();
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("return_to", &return_to)
            .append_pair("force", if ctx.force_login { "1" } else { "0" })
            .finish();
        InteractionResult::Redirect(format!("/test-login?{q}"))
    }
}

#[derive(Clone)]
struct HostState {
    clock: ManualClock,
}

/// The host's sign-in: sets the session cookie and returns to Lockspire.
async fn test_signin(
    State(s): State<HostState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let user = q.get("user").cloned().unwrap_or_default();
    let return_to = q.get("return_to").cloned().unwrap_or_else(|| "/".into());
    let cookie = format!("test_session={user}.{}; Path=/; HttpOnly", s.clock.now());
    (
        StatusCode::SEE_OTHER,
        [(LOCATION, return_to), (http::header::SET_COOKIE, cookie)],
    )
        .into_response()
}

async fn test_login_page() -> &'static str {
    "login page"
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
            .key_refresh_interval(std::time::Duration::from_millis(200))
            .build()
            .await
            .expect("build second lockspire");
        serve(listener, ls.clone(), self.clock.clone());
        (base, ls)
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
        let mut form: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut req = self.http().post(self.url(path));
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
        .with_state(HostState { clock });
    let app = host.merge(ls.router());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
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

/// What the browser does on the consent page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consent {
    Allow,
    Deny,
    /// Stop at the consent page and return it.
    Stop,
}

/// Where a browser flow ended.
#[derive(Debug)]
pub enum Outcome {
    /// Redirected to the client's redirect URI.
    Redirect(url::Url),
    /// Stopped at the host's login page (no user to sign in as).
    Login(String),
    /// Stopped on the consent page.
    ConsentPage(String, String),
    /// Any other page (errors, form_post).
    Page(StatusCode, String),
}

impl Outcome {
    /// The query (or fragment) parameters of the redirect back to the client.
    pub fn redirect_params(&self) -> HashMap<String, String> {
        match self {
            Outcome::Redirect(url) => {
                let raw = url.query().or(url.fragment()).unwrap_or_default();
                url::form_urlencoded::parse(raw.as_bytes())
                    .into_owned()
                    .collect()
            }
            other => panic!("expected a redirect to the client, got {other:?}"),
        }
    }

    pub fn is_redirect(&self) -> bool {
        matches!(self, Outcome::Redirect(_))
    }
}

/// A browser with a cookie jar, driven step by step.
pub struct Browser {
    pub client: reqwest::Client,
    pub base: String,
    pub user: Option<String>,
}

/// The value of a hidden form field in server-rendered HTML.
pub fn hidden_field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}

impl Browser {
    fn absolute(&self, location: &str) -> String {
        if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location.to_owned()
        }
    }

    /// Follows a flow from `url` until it leaves for `redirect_uri` or stops on a page.
    pub async fn run(&self, url: &str, redirect_uri: &str, consent: Consent) -> Outcome {
        let mut next = url.to_owned();
        for _ in 0..20 {
            let resp = self
                .client
                .get(&next)
                .send()
                .await
                .expect("browser request");
            let status = resp.status();
            if !status.is_redirection() {
                let body = resp.text().await.unwrap_or_default();
                return Outcome::Page(status, body);
            }
            let location = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .expect("redirect without Location");
            if location.starts_with(redirect_uri) {
                return Outcome::Redirect(url::Url::parse(&location).expect("redirect URL"));
            }
            let absolute = self.absolute(&location);
            if absolute.starts_with(&format!("{}/test-login", self.base)) {
                let Some(user) = &self.user else {
                    return Outcome::Login(absolute);
                };
                let parsed = url::Url::parse(&absolute).expect("login URL");
                let return_to = parsed
                    .query_pairs()
                    .find(|(k, _)| k == "return_to")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                let q: String = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("user", user)
                    .append_pair("return_to", &return_to)
                    .finish();
                next = format!("{}/test-signin?{q}", self.base);
                continue;
            }
            if absolute.starts_with(&format!("{}/consent", self.base)) {
                let page = self
                    .client
                    .get(&absolute)
                    .send()
                    .await
                    .expect("consent page");
                let page_status = page.status();
                let html = page.text().await.unwrap_or_default();
                if page_status != StatusCode::OK {
                    return Outcome::Page(page_status, html);
                }
                let decision = match consent {
                    Consent::Stop => return Outcome::ConsentPage(absolute, html),
                    Consent::Allow => "allow",
                    Consent::Deny => "deny",
                };
                let resp = self.submit_consent(&html, decision).await;
                let status = resp.status();
                if !status.is_redirection() {
                    return Outcome::Page(status, resp.text().await.unwrap_or_default());
                }
                let location = resp
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                if location.starts_with(redirect_uri) {
                    return Outcome::Redirect(url::Url::parse(location).expect("redirect URL"));
                }
                next = self.absolute(location);
                continue;
            }
            next = absolute;
        }
        panic!("flow did not finish within 20 redirects");
    }

    /// Submits the consent form found in `html`.
    pub async fn submit_consent(&self, html: &str, decision: &str) -> reqwest::Response {
        let interaction = hidden_field(html, "interaction").expect("interaction field");
        let csrf = hidden_field(html, "csrf").expect("csrf field");
        self.client
            .post(format!("{}/consent", self.base))
            .form(&[
                ("interaction", interaction.as_str()),
                ("csrf", csrf.as_str()),
                ("decision", decision),
            ])
            .send()
            .await
            .expect("consent post")
    }
}

/// Decodes a JWT's header and claims without verifying (tests verify separately).
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let mut it = token.split('.');
    let header = it
        .next()
        .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
        .expect("header");
    let claims = it
        .next()
        .and_then(|c| URL_SAFE_NO_PAD.decode(c).ok())
        .expect("claims");
    (
        serde_json::from_slice(&header).expect("header json"),
        serde_json::from_slice(&claims).expect("claims json"),
    )
}

/// Verifies a JWT against the server's published JWKS with an independent JOSE library.
pub async fn verify_with_jwks(h: &Harness, token: &str, audience: &str) -> Value {
    verify_jws(h, token, audience, true).await
}

/// Like [`verify_with_jwks`] for signed responses that carry no `exp` (signed userinfo,
/// RFC 9701 introspection responses).
pub async fn verify_response_with_jwks(h: &Harness, token: &str, audience: &str) -> Value {
    verify_jws(h, token, audience, false).await
}

async fn verify_jws(h: &Harness, token: &str, audience: &str, expiring: bool) -> Value {
    let jwks: jsonwebtoken::jwk::JwkSet = h
        .http()
        .get(h.url("/jwks"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("jwks json");
    let header = jsonwebtoken::decode_header(token).expect("header");
    let kid = header.kid.clone().expect("kid");
    let jwk = jwks.find(&kid).expect("signing key published in JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("decoding key");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[&h.base]);
    if !expiring {
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
    }
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("JWT verifies against JWKS")
        .claims
}

/// A client_credentials access token row (no grant, no user) for tests that write through the
/// store directly.
pub fn client_credentials_row(
    digest: String,
    client_id: &str,
    created_at: i64,
    expires_at: i64,
) -> lockspire::store::TokenRecord {
    lockspire::store::TokenRecord {
        digest,
        tenant_id: "default".into(),
        kind: lockspire::store::TokenKind::Access,
        grant_id: None,
        client_id: client_id.to_owned(),
        subject: None,
        scopes: "read".into(),
        resources: "[]".into(),
        created_at,
        expires_at,
        consumed_at: None,
        revoked_at: None,
        redirect_uri: None,
        code_challenge: None,
        nonce: None,
        format: Some("opaque".into()),
        jti: None,
        cnf_x5t: None,
    }
}
