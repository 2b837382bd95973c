//! `lockspire install --host axum-login` into a fresh axum crate, built offline against this
//! workspace (sharing its target directory), started, and driven through a code + PKCE flow;
//! then the generated files' ownership rules: install and upgrade refuse to overwrite an edited
//! managed file, and never touch host-owned ones.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Client, StatusCode, header};
use serde_json::Value;

const LOCKSPIRE: &str = env!("CARGO_BIN_EXE_lockspire");

fn lockspire(dir: &Path, args: &[&str], secret: &str) -> Output {
    Command::new(LOCKSPIRE)
        .args(args)
        .current_dir(dir)
        .env("LOCKSPIRE_SECRET_KEY", secret)
        .env_remove("LOCKSPIRE_CONFIG")
        .env_remove("LOCKSPIRE_DATABASE_URL")
        .output()
        .expect("run lockspire")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The workspace's target directory: the host crate's build reuses every compiled dependency.
fn target_dir() -> PathBuf {
    Path::new(LOCKSPIRE)
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

struct App(Child);

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .map(|i| i + marker.len())
        .unwrap_or_else(|| panic!("no {name} field in {html}"));
    html[start..start + html[start..].find('"').expect("end of value")].to_owned()
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_into_a_fresh_axum_login_app_builds_runs_and_completes_a_code_flow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/acme");
    std::fs::create_dir_all(root.join("src")).expect("src");
    std::fs::copy(fixtures.join("Cargo.toml.fixture"), root.join("Cargo.toml"))
        .expect("Cargo.toml");
    std::fs::copy(fixtures.join("main.rs"), root.join("src/main.rs")).expect("main.rs");
    // The workspace's lock file pins the same versions, so the offline build needs nothing new.
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock"),
        root.join("Cargo.lock"),
    )
    .expect("lock");

    let secret = lockspire::SecretKey::generate().to_base64();
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let issuer = format!("{origin}/oauth");
    let db = format!("sqlite://{}/lockspire.db", root.display());
    let install_args = [
        "install",
        "--host",
        "axum-login",
        "--edit-cargo-toml",
        "--issuer",
        &issuer,
        "--database-url",
        &db,
    ];
    let out = lockspire(root, &install_args, &secret);
    assert!(out.status.success(), "install: {}", text(&out));
    for file in [
        "lockspire.toml",
        "src/lockspire_host.rs",
        "src/lockspire_setup.rs",
        "templates/lockspire/consent.html",
        ".lockspire/manifest.json",
    ] {
        assert!(root.join(file).exists(), "{file} written");
    }
    assert!(
        text(&out).contains("Next steps:\n  1."),
        "numbered next steps: {}",
        text(&out)
    );
    let cargo_toml = std::fs::read_to_string(root.join("Cargo.toml")).expect("read");
    assert!(
        cargo_toml.contains("lockspire = { path =") && cargo_toml.contains("askama"),
        "{cargo_toml}"
    );
    // Idempotent.
    let again = lockspire(root, &install_args, &secret);
    assert!(again.status.success(), "second install: {}", text(&again));
    assert!(
        text(&again).contains("src/lockspire_setup.rs: up to date"),
        "{}",
        text(&again)
    );

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = Command::new(cargo)
        .args(["build", "--offline", "--quiet"])
        .current_dir(root)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .expect("cargo build");
    assert!(
        build.status.success(),
        "the installed app builds: {}",
        text(&build)
    );

    let app = App(Command::new(target_dir().join("debug/acme-app"))
        .current_dir(root)
        .env("LOCKSPIRE_SECRET_KEY", &secret)
        .env("ACME_ADDR", format!("127.0.0.1:{port}"))
        .env("ACME_ISSUER", &issuer)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the app"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reqwest::get(format!("{issuer}/.well-known/openid-configuration"))
        .await
        .is_ok_and(|r| r.status() == StatusCode::OK)
    {
        assert!(Instant::now() < deadline, "the app did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let verify = lockspire(root, &["verify", "--url", &origin], &secret);
    assert!(verify.status.success(), "verify: {}", text(&verify));

    let created = lockspire(
        root,
        &[
            "client",
            "create",
            "--name",
            "Partner",
            "--redirect-uri",
            "https://partner.example/cb",
            "--grant-type",
            "authorization_code",
            "--json",
        ],
        &secret,
    );
    assert!(
        created.status.success(),
        "client create: {}",
        text(&created)
    );
    let client: Value = serde_json::from_slice(&created.stdout).expect("client JSON");
    let (id, client_secret) = (
        client["client_id"].as_str().expect("id"),
        client["client_secret"].as_str().expect("secret"),
    );

    // The browser: authorize → the app's login page → back to Lockspire → consent → code.
    let browser = Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut raw = [0u8; 32];
    aws_lc_rs_random(&mut raw);
    let verifier = URL_SAFE_NO_PAD.encode(raw);
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ));
    let authorize = format!(
        "{issuer}/authorize?response_type=code&client_id={id}&redirect_uri=https%3A%2F%2Fpartner.example%2Fcb&scope=openid\
         &state=s1&nonce=n1&code_challenge={challenge}&code_challenge_method=S256"
    );
    let to_login = browser.get(&authorize).send().await.expect("authorize");
    let login_url = location(&to_login);
    assert!(login_url.starts_with("/login?return_to="), "{login_url}");
    let return_to = url::Url::parse(&format!("{origin}{login_url}"))
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "return_to")
        .map(|(_, v)| v.into_owned())
        .expect("return_to");
    let signed_in = browser
        .post(format!("{origin}/login"))
        .form(&[
            ("username", "ada"),
            ("password", "ada-password"),
            ("return_to", return_to.as_str()),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(
        location(&signed_in),
        return_to,
        "the app sends the browser back to Lockspire"
    );
    let resumed = browser.get(&return_to).send().await.expect("resume");
    let consent_url = location(&resumed);
    assert!(
        consent_url.starts_with(&format!("{issuer}/consent?")),
        "{consent_url}"
    );
    let page = browser
        .get(&consent_url)
        .send()
        .await
        .expect("consent page")
        .text()
        .await
        .expect("html");
    assert!(
        page.contains("Allow Partner to access your account?"),
        "the host-owned consent template renders: {page}"
    );
    let decided = browser
        .post(format!("{issuer}/consent"))
        .form(&[
            ("interaction", hidden(&page, "interaction")),
            ("csrf", hidden(&page, "csrf")),
            ("decision", "allow".into()),
        ])
        .send()
        .await
        .expect("consent");
    let back = url::Url::parse(&location(&decided)).expect("redirect to the client");
    assert_eq!(back.host_str(), Some("partner.example"));
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let tokens: Value = Client::new()
        .post(format!("{issuer}/token"))
        .basic_auth(id, Some(client_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "https://partner.example/cb"),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let id_token = tokens["id_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no ID token: {tokens}"));
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(id_token.split('.').nth(1).expect("payload"))
            .expect("base64"),
    )
    .expect("claims");
    assert_eq!(claims["sub"], "7", "the subject is the axum-login user id");
    assert_eq!(claims["iss"], issuer);
    drop(app);

    // Ownership rules. An edited managed file is refused by install and upgrade alike.
    let setup = root.join("src/lockspire_setup.rs");
    let original = std::fs::read_to_string(&setup).expect("read");
    std::fs::write(&setup, format!("{original}\n// a local change\n")).expect("edit");
    let refused = lockspire(root, &install_args, &secret);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "install refuses: {}",
        text(&refused)
    );
    assert!(
        text(&refused).contains("src/lockspire_setup.rs: REFUSED"),
        "{}",
        text(&refused)
    );
    let upgrade = lockspire(root, &["upgrade"], &secret);
    assert_eq!(
        upgrade.status.code(),
        Some(1),
        "upgrade refuses: {}",
        text(&upgrade)
    );
    assert!(
        std::fs::read_to_string(&setup)
            .expect("read")
            .ends_with("// a local change\n"),
        "the edit survives"
    );
    // Host-owned files are the host's: kept by install, untouched by upgrade.
    std::fs::write(&setup, &original).expect("restore");
    let host = root.join("src/lockspire_host.rs");
    let edited_host = format!(
        "{}\n// claims for our users\n",
        std::fs::read_to_string(&host).expect("read")
    );
    std::fs::write(&host, &edited_host).expect("edit host file");
    let kept = lockspire(root, &install_args, &secret);
    assert!(kept.status.success(), "{}", text(&kept));
    assert!(
        text(&kept).contains("src/lockspire_host.rs: kept"),
        "{}",
        text(&kept)
    );
    let dry = lockspire(root, &["upgrade", "--dry-run"], &secret);
    assert!(dry.status.success(), "{}", text(&dry));
    assert_eq!(std::fs::read_to_string(&host).expect("read"), edited_host);
}

fn aws_lc_rs_random(buf: &mut [u8]) {
    aws_lc_rs::rand::fill(buf).expect("rng");
}

#[test]
fn upgrade_rerenders_a_managed_file_that_is_still_as_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::write(
        root.join("Cargo.toml"),
        "[package]\nname = \"x\"\nversion = \"0.1.0\"\n[dependencies]\naxum = \"0.8\"\n",
    )
    .expect("toml");
    let secret = lockspire::SecretKey::generate().to_base64();
    assert!(lockspire(root, &["install"], &secret).status.success());
    // Pretend an older Lockspire wrote a different version of the managed file.
    let setup = root.join("src/lockspire_setup.rs");
    let current = std::fs::read_to_string(&setup).expect("read");
    let older = "// wiring from an older lockspire\n";
    std::fs::write(&setup, older).expect("write");
    let manifest_path = root.join(".lockspire/manifest.json");
    let mut manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).expect("read"))
            .expect("json");
    let sha: String = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, older.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    manifest["files"]["src/lockspire_setup.rs"]["sha256"] = Value::String(sha);
    std::fs::write(&manifest_path, manifest.to_string()).expect("write manifest");

    let dry = lockspire(root, &["upgrade", "--dry-run"], &secret);
    assert!(dry.status.success());
    assert!(
        text(&dry).contains("src/lockspire_setup.rs: would be updated"),
        "{}",
        text(&dry)
    );
    assert_eq!(
        std::fs::read_to_string(&setup).expect("read"),
        older,
        "--dry-run writes nothing"
    );
    let up = lockspire(root, &["upgrade"], &secret);
    assert!(up.status.success(), "{}", text(&up));
    assert_eq!(std::fs::read_to_string(&setup).expect("read"), current);
    let generic = std::fs::read_to_string(root.join("src/lockspire_host.rs")).expect("read");
    assert!(
        generic.contains("is not written yet"),
        "the generic resolver fails clearly until filled in"
    );
}

#[test]
fn install_outside_a_crate_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = lockspire(dir.path(), &["install"], "unused");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("Cargo.toml not found"),
        "{}",
        text(&out)
    );
    let usage = lockspire(dir.path(), &["install", "--host", "django"], "unused");
    assert_eq!(usage.status.code(), Some(2), "usage errors exit 2");
}
