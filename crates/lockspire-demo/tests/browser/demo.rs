//! Starting the demo (as the README says, or in process) and driving its sign-in form.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use axum::Router;
use lockspire::{RegistrationPolicy, SecretKey};
use lockspire_browser::Browser;
use lockspire_demo::{DEMO_PASSWORD, DEMO_USERNAME, Settings, app};
use serde_json::Value;

/// One Chromium at a time: the tests run in parallel threads, and CI has two cores.
pub(crate) static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `target/screenshots/<test>`.
pub(crate) fn screenshots(test: &str) -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent()
        .map_or(tmp.clone(), |target| target.to_path_buf())
        .join("screenshots")
        .join(test)
}

/// A browser, or `None` (after a loud notice) where none is installed and none is required.
pub(crate) async fn browser(test: &str) -> Option<Browser> {
    Browser::launch(screenshots(test))
        .await
        .expect("the browser starts")
}

/// The README's first command, as the README gives it: the demo binary with default flags,
/// started in a fresh directory (its data directory is relative to where it runs).
pub(crate) struct ReadmeDemo {
    pub(crate) child: Child,
    pub(crate) issuer: String,
    pub(crate) _dir: tempfile::TempDir,
}

impl Drop for ReadmeDemo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every setting of the demo that the environment can change; none may leak in from the
/// developer's shell.
pub(crate) const DEMO_ENV: [&str; 11] = [
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

pub(crate) fn start_readme_demo() -> ReadmeDemo {
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
pub(crate) fn forward(stream: impl std::io::Read, tx: mpsc::Sender<String>) {
    for line in BufReader::new(stream).lines().map_while(Result::ok) {
        eprintln!("demo | {line}");
        let _ = tx.send(line);
    }
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The demo app in this process on a random port, with open registration; returns the issuer.
pub(crate) async fn start_demo(dir: &tempfile::TempDir) -> String {
    start_demo_with(dir, lockspire::SecurityProfile::None).await
}

/// [`start_demo`] under a security profile.
pub(crate) async fn start_demo_with(
    dir: &tempfile::TempDir,
    security_profile: lockspire::SecurityProfile,
) -> String {
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
        outbox_lease: None,
        extra_resources: Vec::new(),
        security_profile,
    })
    .await
    .expect("demo app starts");
    // With peer addresses, as the demo binary serves: device code entry is limited per address.
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    issuer
}

/// Serves `router` on 127.0.0.1 at a random port; returns the port.
pub(crate) async fn serve(router: Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    port
}

/// The JSON in the element matched by `css`.
pub(crate) async fn json_at(browser: &Browser, css: &str) -> Value {
    let text = browser.text(css).await.expect("the element is there");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{css} holds JSON ({e}): {text}"))
}

/// Signs alice in through the demo's own sign-in form, as a person would.
pub(crate) async fn sign_in_with_the_form(b: &Browser, issuer: &str) {
    b.goto(&format!("{issuer}/login"))
        .await
        .expect("login page");
    b.fill("#username", DEMO_USERNAME).await.expect("username");
    b.fill("#password", DEMO_PASSWORD).await.expect("password");
    b.click("button[type=submit]").await.expect("sign in");
    b.wait_for_path("/").await.expect("home after sign-in");
    b.find("#signed-in").await.expect("signed in");
}
