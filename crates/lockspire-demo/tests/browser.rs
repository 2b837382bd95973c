//! The demo in a real browser (headless Chromium over WebDriver): every form the demo and
//! Lockspire render is filled in and posted the way a person would, because browsers label
//! requests (`Origin`, `Sec-Fetch-Site`, `SameSite` cookies, referrer policy) in ways an HTTP
//! client does not. Screenshots of each step land in `target/screenshots/<test>/`.
//!
//! Without Chromium the tests print a loud notice and pass; CI installs it and sets
//! `LOCKSPIRE_BROWSER_TESTS=require`, which makes a missing browser a failure.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lockspire::{RegistrationPolicy, SecretKey};
use lockspire_browser::Browser;
use lockspire_demo::{DEMO_PASSWORD, DEMO_USERNAME, Settings, app};
use serde_json::{Value, json};

/// One Chromium at a time: the tests run in parallel threads, and CI has two cores.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `target/screenshots/<test>`.
fn screenshots(test: &str) -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent()
        .map_or(tmp.clone(), |target| target.to_path_buf())
        .join("screenshots")
        .join(test)
}

/// A browser, or `None` (after a loud notice) where none is installed and none is required.
async fn browser(test: &str) -> Option<Browser> {
    Browser::launch(screenshots(test))
        .await
        .expect("the browser starts")
}

/// The README's first command, as the README gives it: the demo binary with default flags,
/// started in a fresh directory (its data directory is relative to where it runs).
struct ReadmeDemo {
    child: Child,
    issuer: String,
    _dir: tempfile::TempDir,
}

impl Drop for ReadmeDemo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every setting of the demo that the environment can change; none may leak in from the
/// developer's shell.
const DEMO_ENV: [&str; 11] = [
    "LOCKSPIRE_ADDR",
    "LOCKSPIRE_ISSUER",
    "DATABASE_URL",
    "LOCKSPIRE_REGISTRATION",
    "LOCKSPIRE_INITIAL_ACCESS_TOKEN",
    "LOCKSPIRE_TLS_CERT",
    "LOCKSPIRE_TLS_KEY",
    "LOCKSPIRE_CLIENT_CA",
    "LOCKSPIRE_DATA_DIR",
    "LOCKSPIRE_KEY_REFRESH_SECS",
    "LOCKSPIRE_SECRET_KEY",
];

fn start_readme_demo() -> ReadmeDemo {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new(env!("CARGO_BIN_EXE_lockspire-demo"));
    command.current_dir(dir.path());
    for var in DEMO_ENV {
        command.env_remove(var);
    }
    // The default address, unless something else holds it (a demo the developer is running):
    // then the one flag that moves it, and a note saying so.
    if TcpListener::bind("127.0.0.1:4000").is_err() {
        let port = free_port();
        eprintln!("127.0.0.1:4000 is taken; running the demo on port {port} instead");
        command.args(["--addr", &format!("127.0.0.1:{port}")]);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the demo binary");
    let (tx, rx) = mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        let tx = tx.clone();
        std::thread::spawn(move || forward(stdout, tx));
    }
    if let Some(stderr) = child.stderr.take() {
        std::thread::spawn(move || forward(stderr, tx));
    }
    // The banner the README's user sees: "Lockspire demo is running at http://…".
    let issuer = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the demo prints its banner");
        if let Some(issuer) = line.split("Lockspire demo is running at ").nth(1) {
            break issuer.trim().to_owned();
        }
    };
    ReadmeDemo {
        child,
        issuer,
        _dir: dir,
    }
}

/// Copies a process's output lines to the test's output (shown when a test fails) and to `tx`.
fn forward(stream: impl std::io::Read, tx: mpsc::Sender<String>) {
    for line in BufReader::new(stream).lines().map_while(Result::ok) {
        eprintln!("demo | {line}");
        let _ = tx.send(line);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The demo app in this process on a random port, with open registration; returns the issuer.
async fn start_demo(dir: &tempfile::TempDir) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let issuer = format!("http://{}", listener.local_addr().expect("addr"));
    let router = app(Settings {
        issuer: issuer.clone(),
        database_url: format!("sqlite://{}/demo.db", dir.path().display()),
        registration: RegistrationPolicy::Open,
        secret_key: SecretKey::generate(),
        mtls: None,
        dev_mode: true,
        key_refresh_interval: None,
    })
    .await
    .expect("demo app starts");
    tokio::spawn(async move { axum::serve(listener, router).await });
    issuer
}

/// Serves `router` on 127.0.0.1 at a random port; returns the port.
async fn serve(router: Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    port
}

/// The JSON in the element matched by `css`.
async fn json_at(browser: &Browser, css: &str) -> Value {
    let text = browser.text(css).await.expect("the element is there");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{css} holds JSON ({e}): {text}"))
}

/// Signs alice in through the demo's own sign-in form, as a person would.
async fn sign_in_with_the_form(b: &Browser, issuer: &str) {
    b.goto(&format!("{issuer}/login"))
        .await
        .expect("login page");
    b.fill("#username", DEMO_USERNAME).await.expect("username");
    b.fill("#password", DEMO_PASSWORD).await.expect("password");
    b.click("button[type=submit]").await.expect("sign in");
    b.wait_for_path("/").await.expect("home after sign-in");
    b.find("#signed-in").await.expect("signed in");
}

#[tokio::test]
async fn readme_demo_signs_alice_in_through_real_forms_consents_remembers_and_signs_out() {
    let _one = ONE_BROWSER.lock().await;
    let Some(mut b) = browser("readme-demo").await else {
        return;
    };
    let demo = start_readme_demo();
    let issuer = demo.issuer.as_str();

    // A newcomer opens /demo: the demo client sends the browser to /authorize, and Lockspire,
    // finding nobody signed in, to the host's sign-in form.
    b.goto(&format!("{issuer}/demo")).await.expect("open /demo");
    let login = b.wait_for_path("/login").await.expect("sign-in form");
    let return_to = login
        .query_pairs()
        .find(|(k, _)| k == "return_to")
        .map(|(_, v)| v.into_owned())
        .expect("return_to");
    assert!(
        return_to.starts_with(&format!("{issuer}/authorize/resume?")),
        "{return_to}"
    );
    b.screenshot("sign-in-form").await.expect("screenshot");

    // A wrong password is refused by the host, on a re-shown form that still works.
    b.fill("#username", DEMO_USERNAME).await.expect("username");
    b.fill("#password", "not-her-password")
        .await
        .expect("password");
    b.click("button[type=submit]").await.expect("submit");
    assert_eq!(
        b.text("p.error").await.expect("an error on the form"),
        "Wrong username or password."
    );
    b.screenshot("wrong-password").await.expect("screenshot");

    // The right password: back to Lockspire, which asks for consent.
    b.fill("#password", DEMO_PASSWORD).await.expect("password");
    b.click("button[type=submit]").await.expect("submit");
    b.wait_for_path("/consent").await.expect("consent page");
    let consent = b.text("main").await.expect("consent text");
    assert!(
        consent.contains("Allow Lockspire demo relying party to access your account?"),
        "{consent}"
    );
    for scope in ["openid", "profile", "email", "offline_access"] {
        assert!(consent.contains(scope), "{scope} listed: {consent}");
    }
    b.screenshot("consent").await.expect("screenshot");

    // Allow: the browser lands back on the demo client, which shows what it verified.
    b.click("button[name=decision][value=allow]")
        .await
        .expect("allow");
    b.wait_for_path("/demo/callback").await.expect("callback");
    let claims = json_at(&b, "#id-token-claims").await;
    assert_eq!(claims["iss"], issuer);
    assert_eq!(claims["aud"], json!(["lockspire-demo"]));
    assert_eq!(claims["name"], "Alice Example");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["amr"], json!(["pwd"]));
    let subject = claims["sub"].as_str().expect("sub").to_owned();
    assert!(!subject.is_empty());
    let header = json_at(&b, "#id-token-header").await;
    assert_eq!(header["alg"], "RS256");
    assert!(header["kid"].is_string(), "{header}");
    let userinfo = json_at(&b, "#userinfo").await;
    assert_eq!(userinfo["sub"], subject.as_str());
    assert_eq!(userinfo["preferred_username"], DEMO_USERNAME);
    // Each step of the flow is explained on the page.
    for step in [
        "#step-authorize",
        "#step-sign-in",
        "#step-callback",
        "#step-token",
        "#step-id-token",
        "#step-userinfo",
    ] {
        b.find(step).await.expect("the step is explained");
    }
    let page = b.text("main").await.expect("page text");
    assert!(
        page.contains(&format!("GET {issuer}/authorize")),
        "the authorization request is shown"
    );
    assert!(page.contains(&format!("POST {issuer}/token")), "{page}");
    b.screenshot("verified-claims").await.expect("screenshot");

    // /demo again: consent is remembered and alice is still signed in, so no page asks
    // anything; the browser goes straight through to the callback.
    b.goto(&format!("{issuer}/demo")).await.expect("open /demo");
    b.wait_for_path("/demo/callback")
        .await
        .expect("straight to callback");
    let again = json_at(&b, "#id-token-claims").await;
    assert_eq!(again["sub"], subject.as_str());
    assert_eq!(again["auth_time"], claims["auth_time"], "no new sign-in");
    b.screenshot("remembered-consent")
        .await
        .expect("screenshot");

    // Sign out with the home page's form; /demo then needs a sign-in again.
    b.goto(&format!("{issuer}/")).await.expect("home");
    assert_eq!(b.text("#subject").await.expect("subject"), subject);
    b.screenshot("home-signed-in").await.expect("screenshot");
    b.click("form[action='/logout'] button[type=submit]")
        .await
        .expect("sign out");
    b.find("#signed-out").await.expect("signed out");
    b.screenshot("signed-out").await.expect("screenshot");
    b.goto(&format!("{issuer}/demo")).await.expect("open /demo");
    b.wait_for_path("/login")
        .await
        .expect("sign-in needed again");
    b.close().await;
}

/// What the attacker's server knows: the victim's target, and a session it opened on the demo
/// for itself (its cookie and its form token).
#[derive(Clone)]
struct Attacker {
    issuer: String,
    session_cookie: String,
    form_token: String,
}

/// A page with one form posting `fields` to `action`, submitted by clicking `#go`.
fn form_page(action: &str, fields: &[(&str, &str)]) -> String {
    let inputs: String = fields
        .iter()
        .map(|(k, v)| format!("<input type=\"hidden\" name=\"{k}\" value=\"{v}\">"))
        .collect();
    format!(
        "<!doctype html><title>A game</title><form method=\"post\" action=\"{action}\">{inputs}\
         <button id=\"go\" type=\"submit\">Play</button></form>"
    )
}

#[derive(serde::Deserialize)]
struct AttackQuery {
    /// Also toss the attacker's own demo session cookie into the browser (cookies are shared
    /// by every port of a host) and post that session's form token.
    toss: Option<String>,
}

/// `/login-csrf`: posts the attacker's credentials (alice's, for the test) to the demo.
async fn login_csrf(State(a): State<Attacker>, Query(q): Query<AttackQuery>) -> Response {
    let action = format!("{}/login", a.issuer);
    let mut fields = vec![
        ("username", DEMO_USERNAME),
        ("password", DEMO_PASSWORD),
        ("return_to", ""),
    ];
    if q.toss.is_some() {
        fields.push(("form_token", &a.form_token));
    }
    let mut response = Html(form_page(&action, &fields)).into_response();
    if q.toss.is_some() {
        let cookie = format!("{}; Path=/; SameSite=Lax", a.session_cookie);
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    response
}

/// `/sandboxed`: the same post with the tossed session's token, from a sandboxed frame, whose
/// origin is opaque (`Origin: null`).
async fn sandboxed(State(a): State<Attacker>) -> Response {
    let inner = form_page(
        &format!("{}/login", a.issuer),
        &[
            ("username", DEMO_USERNAME),
            ("password", DEMO_PASSWORD),
            ("form_token", &a.form_token),
        ],
    )
    // The answer replaces the whole page (the demo's pages refuse to be framed).
    .replace("<form ", "<form target=\"_top\" ")
    .replace('"', "&quot;");
    let mut response = Html(format!(
        "<!doctype html><title>A game</title>\
         <iframe sandbox=\"allow-forms allow-top-navigation-by-user-activation\" width=\"600\" height=\"400\" srcdoc=\"{inner}\"></iframe>"
    ))
    .into_response();
    let cookie = format!("{}; Path=/; SameSite=Lax", a.session_cookie);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// `/logout-csrf`: signs the visitor out of the demo.
async fn logout_csrf(State(a): State<Attacker>) -> Html<String> {
    Html(form_page(&format!("{}/logout", a.issuer), &[]))
}

/// The attacker opens a session on the demo for itself, as anyone can: its cookie and token.
async fn attacker_session(issuer: &str) -> (String, String) {
    let response = reqwest::get(format!("{issuer}/login"))
        .await
        .expect("login page");
    let cookie = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("demo_session="))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let html = response.text().await.expect("login page");
    let marker = "name=\"form_token\" value=\"";
    let start = html.find(marker).expect("a form token") + marker.len();
    let token = html[start..start + html[start..].find('"').expect("end")].to_owned();
    (cookie, token)
}

/// The browser is on the demo's refusal page, and nobody is signed in.
async fn assert_refused_and_signed_out(b: &Browser, issuer: &str) {
    assert_eq!(b.text("h1").await.expect("a heading"), "Refused");
    b.goto(&format!("{issuer}/")).await.expect("home");
    b.find("#signed-out").await.expect("nobody signed in");
}

#[tokio::test]
async fn sign_in_and_sign_out_posted_from_another_origin_are_refused() {
    let _one = ONE_BROWSER.lock().await;
    let Some(mut b) = browser("cross-origin-forms").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let issuer = start_demo(&dir).await;
    let (session_cookie, form_token) = attacker_session(&issuer).await;
    let attacker = Attacker {
        issuer: issuer.clone(),
        session_cookie,
        form_token: form_token.clone(),
    };
    let port = serve(
        Router::new()
            .route("/login-csrf", get(login_csrf))
            .route("/sandboxed", get(sandboxed))
            .route("/logout-csrf", get(logout_csrf))
            .with_state(attacker),
    )
    .await;

    // Another site (localhost is a different site from 127.0.0.1): no session, no token, and
    // labelled as cross-site.
    b.goto(&format!("http://localhost:{port}/login-csrf"))
        .await
        .expect("attacker page");
    b.click("#go").await.expect("submit");
    b.wait_for_path("/login").await.expect("posted");
    b.screenshot("cross-site-login-refused")
        .await
        .expect("screenshot");
    assert_refused_and_signed_out(&b, &issuer).await;

    // Another port of the same host: the attacker tosses its own session cookie into the
    // browser and posts that session's valid token. Only the Origin label gives it away.
    b.goto(&format!("http://127.0.0.1:{port}/login-csrf?toss=1"))
        .await
        .expect("attacker page");
    b.click("#go").await.expect("submit");
    b.wait_for_path("/login").await.expect("posted");
    b.screenshot("tossed-session-login-refused")
        .await
        .expect("screenshot");
    assert_refused_and_signed_out(&b, &issuer).await;
    // The toss did work (the demo sees the attacker's session), so the refusal above came
    // from the origin check, not from a missing cookie.
    b.goto(&format!("{issuer}/login"))
        .await
        .expect("login page");
    assert_eq!(
        b.attr("input[name=form_token]", "value")
            .await
            .expect("token field"),
        Some(form_token)
    );

    // A sandboxed frame posts with an opaque origin (Origin: null) and the tossed token;
    // the browser still labels it cross-site.
    b.goto(&format!("http://127.0.0.1:{port}/sandboxed"))
        .await
        .expect("attacker page");
    b.enter_frame(0).await.expect("into the frame");
    b.click("#go").await.expect("submit");
    b.leave_frames().await.expect("back to the page");
    b.wait_for_path("/login").await.expect("posted");
    b.screenshot("sandboxed-login-refused")
        .await
        .expect("screenshot");
    assert_refused_and_signed_out(&b, &issuer).await;

    // Signed in for real, the user visits a page that posts to /logout: still signed in.
    sign_in_with_the_form(&b, &issuer).await;
    b.goto(&format!("http://127.0.0.1:{port}/logout-csrf"))
        .await
        .expect("attacker page");
    b.click("#go").await.expect("submit");
    b.wait_for_path("/logout").await.expect("posted");
    assert_eq!(b.text("h1").await.expect("a heading"), "Refused");
    b.screenshot("cross-origin-logout-refused")
        .await
        .expect("screenshot");
    b.goto(&format!("{issuer}/")).await.expect("home");
    b.find("#signed-in").await.expect("still signed in");
    b.close().await;
}

/// `/cb` of a test client: shows how it was reached and with which parameters.
async fn client_callback(
    method: axum::http::Method,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
    body: axum::body::Bytes,
) -> Html<String> {
    let params: Vec<(String, String)> = if method == axum::http::Method::POST {
        url::form_urlencoded::parse(&body).into_owned().collect()
    } else {
        query
    };
    let map: serde_json::Map<String, Value> = params
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    Html(format!(
        "<!doctype html><title>Client</title><p id=\"method\">{method}</p>\
         <p id=\"content-type\">{content_type}</p><pre id=\"params\">{}</pre>",
        Value::Object(map)
    ))
}

/// A PKCE verifier and its S256 challenge (RFC 7636 §4.1–4.2).
fn pkce() -> (String, String) {
    let mut raw = [0u8; 32];
    aws_lc_rs::rand::fill(&mut raw).expect("randomness");
    let verifier = URL_SAFE_NO_PAD.encode(raw);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    (verifier, URL_SAFE_NO_PAD.encode(digest))
}

#[tokio::test]
async fn form_post_response_auto_submits_in_the_browser_and_deny_returns_access_denied() {
    let _one = ONE_BROWSER.lock().await;
    let Some(mut b) = browser("form-post-and-deny").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let issuer = start_demo(&dir).await;
    let port = serve(Router::new().route("/cb", get(client_callback).post(client_callback))).await;
    let redirect_uri = format!("http://127.0.0.1:{port}/cb");
    let registered: Value = reqwest::Client::new()
        .post(format!("{issuer}/register"))
        .json(&json!({
            "client_name": "Browser test client",
            "application_type": "native",
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "redirect_uris": [redirect_uri],
        }))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("registration JSON");
    let client_id = registered["client_id"].as_str().expect("client_id");
    sign_in_with_the_form(&b, &issuer).await;

    // response_mode=form_post (OAuth 2.0 Form Post Response Mode): Lockspire's page posts the
    // response to the client with a script its CSP allows by nonce.
    let (verifier, challenge) = pkce();
    let authorize = |state: &str, extra: &str| {
        format!(
            "{issuer}/authorize?response_type=code&client_id={client_id}\
             &redirect_uri={}&scope=openid&state={state}&nonce=n-{state}\
             &code_challenge={challenge}&code_challenge_method=S256{extra}",
            url::form_urlencoded::byte_serialize(redirect_uri.as_bytes()).collect::<String>()
        )
    };
    b.goto(&authorize("s1", "&response_mode=form_post"))
        .await
        .expect("authorize");
    b.wait_for_path("/consent").await.expect("consent page");
    b.screenshot("consent").await.expect("screenshot");
    b.click("button[name=decision][value=allow]")
        .await
        .expect("allow");
    let landed = b.wait_for_path("/cb").await.expect("posted to the client");
    assert_eq!(landed.query(), None, "nothing in the address");
    assert_eq!(b.text("#method").await.expect("method"), "POST");
    assert_eq!(
        b.text("#content-type").await.expect("content type"),
        "application/x-www-form-urlencoded"
    );
    let params = json_at(&b, "#params").await;
    assert_eq!(params["state"], "s1");
    assert_eq!(params["iss"], issuer.as_str());
    let code = params["code"].as_str().expect("a code");
    b.screenshot("form-post-received")
        .await
        .expect("screenshot");
    // The code the browser carried is good at the token endpoint.
    let token = reqwest::Client::new()
        .post(format!("{issuer}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &redirect_uri),
            ("client_id", client_id),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(token.status(), reqwest::StatusCode::OK);

    // Deny on the consent page: the client hears access_denied (RFC 6749 §4.1.2.1).
    b.goto(&authorize("s2", "&prompt=consent"))
        .await
        .expect("authorize");
    b.wait_for_path("/consent").await.expect("consent page");
    b.click("button[name=decision][value=deny]")
        .await
        .expect("deny");
    b.wait_for_path("/cb")
        .await
        .expect("redirected to the client");
    assert_eq!(b.text("#method").await.expect("method"), "GET");
    let params = json_at(&b, "#params").await;
    assert_eq!(params["error"], "access_denied");
    assert_eq!(params["state"], "s2");
    assert_eq!(params["iss"], issuer.as_str());
    assert!(params.get("code").is_none());
    b.screenshot("denied").await.expect("screenshot");
    b.close().await;
}

#[tokio::test]
async fn sign_in_started_in_two_tabs_completes_in_both() {
    let _one = ONE_BROWSER.lock().await;
    let Some(mut b) = browser("two-tabs").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let issuer = start_demo(&dir).await;
    let client = b.client().clone();
    let first = client.window().await.expect("first tab");

    // /demo in two tabs: each waits at the sign-in form with its own pending request.
    b.goto(&format!("{issuer}/demo")).await.expect("open /demo");
    b.wait_for_path("/login").await.expect("sign-in form");
    let second = client.new_window(true).await.expect("second tab").handle;
    client
        .switch_to_window(second.clone())
        .await
        .expect("to the second tab");
    b.goto(&format!("{issuer}/demo")).await.expect("open /demo");
    b.wait_for_path("/login").await.expect("sign-in form");

    // Signed in and approved in the first tab.
    client
        .switch_to_window(first)
        .await
        .expect("to the first tab");
    b.fill("#username", DEMO_USERNAME).await.expect("username");
    b.fill("#password", DEMO_PASSWORD).await.expect("password");
    b.click("button[type=submit]").await.expect("sign in");
    b.wait_for_path("/consent").await.expect("consent");
    b.click("button[name=decision][value=allow]")
        .await
        .expect("allow");
    b.wait_for_path("/demo/callback").await.expect("callback");
    b.find("#id-token-claims")
        .await
        .expect("the first tab completes");

    // The second tab's form predates that sign-in: it is shown again, saying why, and works.
    client
        .switch_to_window(second)
        .await
        .expect("to the second tab");
    b.fill("#username", DEMO_USERNAME).await.expect("username");
    b.fill("#password", DEMO_PASSWORD).await.expect("password");
    b.click("button[type=submit]").await.expect("sign in");
    let why = b.text("p.error").await.expect("the form says why");
    assert!(why.contains("expired"), "{why}");
    b.screenshot("second-tab-form-expired")
        .await
        .expect("screenshot");
    b.fill("#password", DEMO_PASSWORD).await.expect("password");
    b.click("button[type=submit]").await.expect("sign in");
    // Consent is remembered from the first tab: straight back to the demo client, whose
    // pending request for this tab is still there.
    b.wait_for_path("/demo/callback").await.expect("callback");
    b.find("#id-token-claims")
        .await
        .expect("the second tab completes");
    b.screenshot("second-tab-completed")
        .await
        .expect("screenshot");
    b.close().await;
}
