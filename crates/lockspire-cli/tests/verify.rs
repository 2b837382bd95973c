//! `lockspire verify`: every check can fail, says which and how to fix it, and the exit status is
//! 0 only when all pass. Also the operator commands' exit codes and outputs.

use std::path::Path;
use std::process::{Command, Output};

use lockspire::{
    AccountResolver, Claims, Context, HostError, InteractionResult, Lockspire, Resolution,
    SecretKey, Subject,
};
use serde_json::Value;

const LOCKSPIRE: &str = env!("CARGO_BIN_EXE_lockspire");

fn run(dir: &Path, args: &[&str], secret: Option<&str>) -> Output {
    let mut cmd = Command::new(LOCKSPIRE);
    cmd.args(args)
        .current_dir(dir)
        .env_remove("LOCKSPIRE_CONFIG")
        .env_remove("LOCKSPIRE_DATABASE_URL");
    match secret {
        Some(s) => cmd.env("LOCKSPIRE_SECRET_KEY", s),
        None => cmd.env_remove("LOCKSPIRE_SECRET_KEY"),
    };
    cmd.output().expect("run lockspire")
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Writes `lockspire.toml` for `issuer` on a SQLite file in `dir`.
fn config(dir: &Path, issuer: &str, extra: &str) {
    let db = format!("sqlite://{}/lockspire.db", dir.display());
    let path = url::Url::parse(issuer)
        .map(|u| u.path().to_owned())
        .unwrap_or_else(|_| "/".into());
    std::fs::write(
        dir.join("lockspire.toml"),
        format!("issuer = {issuer:?}\nmount_path = {path:?}\ndatabase_url = {db:?}\n{extra}"),
    )
    .expect("write config");
}

/// Asserts the verify run failed on exactly `check` (among possibly others) with a fix line.
fn assert_fails_on(o: &Output, check: &str) {
    let text = out(o);
    assert_eq!(o.status.code(), Some(1), "verify must fail: {text}");
    assert!(
        text.contains(&format!("error  {check}:")),
        "expected {check} to fail:\n{text}"
    );
    assert!(
        text.contains("fix: "),
        "every failure says how to fix it:\n{text}"
    );
}

struct NoUsers;

impl AccountResolver for NoUsers {
    type Account = ();
    async fn resolve_current_account(
        &self,
        _: &mut http::request::Parts,
        _: &Context,
    ) -> Result<Resolution<()>, HostError> {
        Ok(Resolution::NotSignedIn)
    }
    async fn resolve_account(&self, _: &Subject, _: &Context) -> Result<Option<()>, HostError> {
        Ok(None)
    }
    async fn build_claims(&self, _: &(), _: &Context) -> Result<Claims, HostError> {
        Ok(Claims::default())
    }
    fn redirect_for_login(&self, _: &http::request::Parts, _: &Context) -> InteractionResult {
        InteractionResult::Redirect("/login".into())
    }
    async fn sign_out(
        &self,
        _: &mut http::request::Parts,
        _: &Context,
    ) -> Result<http::HeaderMap, HostError> {
        Ok(http::HeaderMap::new())
    }
}

/// Starts Lockspire (migrating, creating keys) for `issuer` on `dir`'s database; serves it at
/// `mount` on a free port and returns the origin.
async fn serve(
    dir: &Path,
    issuer_path: &str,
    secret: &str,
    issuer_override: Option<&str>,
) -> (String, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let issuer = issuer_override
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{origin}{issuer_path}"));
    let ls = Lockspire::builder()
        .issuer(&issuer)
        .expect("issuer")
        .database(&format!("sqlite://{}/lockspire.db", dir.display()))
        .secret_key(SecretKey::from_base64(secret).expect("key"))
        .account_resolver(NoUsers)
        .build()
        .await
        .expect("build");
    let app: axum::Router = match issuer_path {
        "/" => ls.router(),
        path => axum::Router::new().nest(path, ls.router()),
    };
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (origin, issuer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_on_a_healthy_instance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = SecretKey::generate().to_base64();
    let (origin, issuer) = serve(dir.path(), "/oauth", &secret, None).await;
    config(dir.path(), &issuer, "");
    let o = run(dir.path(), &["verify", "--url", &origin], Some(&secret));
    assert!(o.status.success(), "{}", out(&o));
    for check in [
        "config",
        "issuer",
        "secret key",
        "database",
        "migrations",
        "signing keys",
        "key-encryption key",
        "discovery",
        "jwks",
        "endpoints",
    ] {
        assert!(
            out(&o).contains(&format!("ok     {check}")),
            "{check} reported ok:\n{}",
            out(&o)
        );
    }
}

#[test]
fn verify_reports_a_malformed_config_and_a_bad_issuer() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("lockspire.toml"), "issuer = [not toml").expect("write");
    assert_fails_on(&run(dir.path(), &["verify"], None), "config");
    config(dir.path(), "http://auth.example.com", "");
    let o = run(dir.path(), &["verify"], None);
    assert_fails_on(&o, "issuer");
    assert!(out(&o).contains("https"), "{}", out(&o));
    let missing = tempfile::tempdir().expect("tempdir");
    let o = run(missing.path(), &["verify"], None);
    assert_fails_on(&o, "config");
    assert!(out(&o).contains("no lockspire.toml here"), "{}", out(&o));
}

#[test]
fn verify_reports_a_missing_secret_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    config(dir.path(), "http://127.0.0.1:3000", "");
    assert_fails_on(&run(dir.path(), &["verify"], None), "secret key");
    assert_fails_on(
        &run(dir.path(), &["verify"], Some("too-short")),
        "secret key",
    );
}

#[test]
fn verify_reports_an_unreachable_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("lockspire.toml"),
        "issuer = \"http://127.0.0.1:3000\"\ndatabase_url = \"postgres://postgres@127.0.0.1:1/nothing\"\n",
    )
    .expect("write");
    assert_fails_on(
        &run(
            dir.path(),
            &["verify"],
            Some(&SecretKey::generate().to_base64()),
        ),
        "database",
    );
}

#[test]
fn verify_reports_pending_migrations_and_missing_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    config(dir.path(), "http://127.0.0.1:3000", "");
    let secret = SecretKey::generate().to_base64();
    assert_fails_on(&run(dir.path(), &["verify"], Some(&secret)), "migrations");
    let migrated = run(dir.path(), &["migrate"], Some(&secret));
    assert!(migrated.status.success(), "{}", out(&migrated));
    assert!(out(&migrated).contains("applied"), "{}", out(&migrated));
    let again = run(dir.path(), &["migrate"], Some(&secret));
    assert!(
        out(&again).contains("up to date"),
        "migrate is idempotent: {}",
        out(&again)
    );
    let o = run(dir.path(), &["verify"], Some(&secret));
    assert_fails_on(&o, "signing keys");
    assert!(out(&o).contains("ok     migrations"), "{}", out(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_a_secret_key_that_cannot_open_the_stored_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = SecretKey::generate().to_base64();
    let (_, issuer) = serve(dir.path(), "/", &secret, Some("http://127.0.0.1:3000")).await;
    config(dir.path(), &issuer, "");
    assert!(run(dir.path(), &["verify"], Some(&secret)).status.success());
    let other = SecretKey::generate().to_base64();
    assert_fails_on(
        &run(dir.path(), &["verify"], Some(&other)),
        "key-encryption key",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_probe_reports_an_instance_that_is_down_or_serves_another_issuer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = SecretKey::generate().to_base64();
    // An instance on this database that believes it is another issuer.
    let (origin, _) = serve(
        dir.path(),
        "/oauth",
        &secret,
        Some("https://other.example/oauth"),
    )
    .await;
    config(dir.path(), &format!("{origin}/oauth"), "");
    assert_fails_on(
        &run(dir.path(), &["verify", "--url", &origin], Some(&secret)),
        "discovery",
    );
    // Nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let down = format!("http://127.0.0.1:{port}");
    config(dir.path(), &format!("{down}/oauth"), "");
    assert_fails_on(
        &run(dir.path(), &["verify", "--url", &down], Some(&secret)),
        "discovery",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_probe_reports_foreign_keys_and_dead_endpoints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = SecretKey::generate().to_base64();
    // Keys exist in the database (started once elsewhere)…
    let _ = serve(dir.path(), "/", &secret, Some("http://127.0.0.1:3000")).await;
    // …but the probed origin serves a hand-made discovery document: no keys, no endpoints.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let issuer = format!("{origin}/oauth");
    let doc = serde_json::json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/jwks"),
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
    });
    let app = axum::Router::new()
        .route(
            "/oauth/.well-known/openid-configuration",
            axum::routing::get(move || async move { axum::Json(doc.clone()) }),
        )
        .route(
            "/oauth/jwks",
            axum::routing::get(|| async { axum::Json(serde_json::json!({"keys": []})) }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    config(dir.path(), &issuer, "");
    let o = run(dir.path(), &["verify", "--url", &origin], Some(&secret));
    assert_fails_on(&o, "jwks");
    assert_fails_on(&o, "endpoints");
    assert!(out(&o).contains("ok     discovery"), "{}", out(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_and_key_commands_have_reliable_exit_codes_and_show_secrets_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = SecretKey::generate().to_base64();
    config(dir.path(), "http://127.0.0.1:3000", "");
    let s = Some(secret.as_str());
    let unmigrated = run(dir.path(), &["client", "list"], s);
    assert_eq!(unmigrated.status.code(), Some(1));
    assert!(
        out(&unmigrated).contains("lockspire migrate"),
        "{}",
        out(&unmigrated)
    );
    assert!(run(dir.path(), &["migrate"], s).status.success());

    let created = run(
        dir.path(),
        &[
            "client",
            "create",
            "--name",
            "Svc",
            "--grant-type",
            "client_credentials",
            "--json",
        ],
        s,
    );
    assert!(created.status.success(), "{}", out(&created));
    let c: Value = serde_json::from_slice(&created.stdout).expect("json");
    let id = c["client_id"].as_str().expect("id").to_owned();
    let first_secret = c["client_secret"]
        .as_str()
        .expect("secret shown at creation")
        .to_owned();
    let shown = run(dir.path(), &["client", "show", &id, "--json"], s);
    assert!(shown.status.success());
    assert!(
        !out(&shown).contains(&first_secret),
        "the secret is never shown again"
    );
    let listed = run(dir.path(), &["client", "list", "--json"], s);
    let list: Value = serde_json::from_slice(&listed.stdout).expect("json");
    assert!(
        list.as_array()
            .expect("array")
            .iter()
            .any(|c| c["client_id"] == id.as_str())
    );
    let rotated = run(dir.path(), &["client", "rotate-secret", &id, "--json"], s);
    let r: Value = serde_json::from_slice(&rotated.stdout).expect("json");
    assert_ne!(r["client_secret"], first_secret.as_str());
    let updated = run(
        dir.path(),
        &["client", "update", &id, "--name", "Service", "--json"],
        s,
    );
    let u: Value = serde_json::from_slice(&updated.stdout).expect("json");
    assert_eq!(u["metadata"]["client_name"], "Service");
    assert_eq!(
        u["metadata"]["grant_types"],
        serde_json::json!(["client_credentials"]),
        "other fields kept"
    );
    let bad = run(
        dir.path(),
        &[
            "client",
            "create",
            "--redirect-uri",
            "http://evil.example/cb",
        ],
        s,
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(out(&bad).contains("invalid_redirect_uri"), "{}", out(&bad));
    assert!(
        run(dir.path(), &["client", "disable", &id], s)
            .status
            .success()
    );
    let disabled: Value =
        serde_json::from_slice(&run(dir.path(), &["client", "show", &id, "--json"], s).stdout)
            .expect("json");
    assert_eq!(disabled["enabled"], false);
    // Delete is final: the id stays taken and nothing brings the client back.
    assert!(
        run(dir.path(), &["client", "delete", &id], s)
            .status
            .success()
    );
    let deleted: Value =
        serde_json::from_slice(&run(dir.path(), &["client", "show", &id, "--json"], s).stdout)
            .expect("json");
    assert_eq!(
        (&deleted["deleted"], &deleted["enabled"]),
        (&Value::Bool(true), &Value::Bool(false))
    );
    for again in [
        ["client", "enable"],
        ["client", "delete"],
        ["client", "rotate-secret"],
    ] {
        let o = run(dir.path(), &[again[0], again[1], &id], s);
        assert_eq!(o.status.code(), Some(1), "{again:?}: {}", out(&o));
    }
    let updated = run(dir.path(), &["client", "update", &id, "--name", "x"], s);
    assert_eq!(updated.status.code(), Some(1), "{}", out(&updated));
    let reused = run(
        dir.path(),
        &[
            "client",
            "create",
            "--client-id",
            &id,
            "--grant-type",
            "client_credentials",
        ],
        s,
    );
    assert_eq!(reused.status.code(), Some(1), "{}", out(&reused));
    assert_eq!(
        run(dir.path(), &["client", "show", "nope"], s)
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        run(dir.path(), &["client", "enable", "nope"], s)
            .status
            .code(),
        Some(1)
    );

    let generated = run(
        dir.path(),
        &["keys", "generate", "--alg", "ES256", "--json"],
        s,
    );
    assert!(generated.status.success(), "{}", out(&generated));
    let k: Value = serde_json::from_slice(&generated.stdout).expect("json");
    assert_eq!(k["state"], "upcoming");
    let kid = k["kid"].as_str().expect("kid");
    let early = run(dir.path(), &["keys", "activate", kid], s);
    assert_eq!(
        early.status.code(),
        Some(1),
        "a key must be published before it signs"
    );
    assert!(out(&early).contains("published"), "{}", out(&early));
    let keys: Value =
        serde_json::from_slice(&run(dir.path(), &["keys", "list", "--json"], s).stdout)
            .expect("json");
    assert!(
        keys.as_array()
            .expect("array")
            .iter()
            .any(|k| k["kid"] == kid)
    );
    assert_eq!(
        run(dir.path(), &["keys", "generate", "--alg", "none"], s)
            .status
            .code(),
        Some(1)
    );
    assert!(
        run(dir.path(), &["keys", "retire", kid], s)
            .status
            .success(),
        "an upcoming key can be withdrawn"
    );
}

#[test]
fn initial_access_tokens_are_minted_listed_and_revoked_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = SecretKey::generate().to_base64();
    config(dir.path(), "http://127.0.0.1:3000", "");
    let s = Some(secret.as_str());
    assert!(run(dir.path(), &["migrate"], s).status.success());
    let minted = run(
        dir.path(),
        &[
            "registration",
            "token",
            "create",
            "--uses",
            "1",
            "--expires-in",
            "600",
            "--json",
        ],
        s,
    );
    assert!(minted.status.success(), "{}", out(&minted));
    let t: Value = serde_json::from_slice(&minted.stdout).expect("json");
    let (id, token) = (
        t["id"].as_str().expect("id"),
        t["token"].as_str().expect("token"),
    );
    assert_eq!(t["uses_left"], 1);
    let listed = run(dir.path(), &["registration", "token", "list", "--json"], s);
    assert!(
        !out(&listed).contains(token),
        "the token is never shown again"
    );
    assert!(out(&listed).contains(id));
    assert!(
        run(dir.path(), &["registration", "token", "revoke", id], s)
            .status
            .success()
    );
    assert_eq!(
        run(dir.path(), &["registration", "token", "revoke", id], s)
            .status
            .code(),
        Some(1),
        "already revoked"
    );
    assert_eq!(
        run(
            dir.path(),
            &["registration", "token", "create", "--uses", "0"],
            s
        )
        .status
        .code(),
        Some(1)
    );
    let audit = run(dir.path(), &["audit", "--limit", "5"], s);
    assert!(audit.status.success(), "{}", out(&audit));
    // Commands that only read need no secret key.
    for args in [
        &["keys", "list"][..],
        &["client", "list"],
        &["registration", "token", "list"],
        &["audit"],
    ] {
        let o = run(dir.path(), args, None);
        assert!(
            o.status.success(),
            "{args:?} without the secret key: {}",
            out(&o)
        );
    }
    let writes = run(dir.path(), &["keys", "generate"], None);
    assert_eq!(
        writes.status.code(),
        Some(1),
        "commands that seal or pepper need it"
    );
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let lost = run(elsewhere.path(), &["client", "list"], s);
    assert!(
        out(&lost).contains("run the command in your app's folder"),
        "{}",
        out(&lost)
    );
}

#[test]
fn ids_that_begin_with_a_hyphen_are_ids_not_flags() {
    // Client ids, key ids and token ids are base64url: one in 64 begins with '-'.
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = SecretKey::generate().to_base64();
    config(dir.path(), "http://127.0.0.1:3000", "");
    let s = Some(secret.as_str());
    assert!(run(dir.path(), &["migrate"], s).status.success());
    for args in [
        &["client", "show", "-lROnMhf5Sq0ZAHS", "--json"][..],
        &["keys", "retire", "-QCPFp3P88kTau3w"][..],
        &["registration", "token", "revoke", "-QCPFp3P88kTau3w"][..],
    ] {
        let o = run(dir.path(), args, s);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", out(&o));
        assert!(out(&o).contains("not found"), "{args:?}: {}", out(&o));
    }
}

#[test]
fn output_cut_short_by_its_reader_ends_the_command_quietly() {
    // `lockspire client list --json | head`: the reader closes the pipe before the command is
    // done writing. Unix tools end there, successfully and without noise.
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = SecretKey::generate().to_base64();
    config(dir.path(), "http://127.0.0.1:3000", "");
    let s = Some(secret.as_str());
    assert!(run(dir.path(), &["migrate"], s).status.success());
    for i in 0..3 {
        let name = format!("client {i}");
        let o = run(
            dir.path(),
            &[
                "client",
                "create",
                "--name",
                &name,
                "--redirect-uri",
                "https://rp.example/cb",
            ],
            s,
        );
        assert!(o.status.success(), "{}", out(&o));
    }
    let mut child = Command::new(LOCKSPIRE)
        .args(["client", "list", "--json"])
        .current_dir(dir.path())
        .env_remove("LOCKSPIRE_CONFIG")
        .env_remove("LOCKSPIRE_DATABASE_URL")
        .env("LOCKSPIRE_SECRET_KEY", &secret)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Close the reading end before the command has opened its database, let alone written.
    drop(child.stdout.take());
    let o = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{:?}: {stderr}", o.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Finds the one user, `alice`, and reaches her device by doing nothing.
struct OneUser;

impl lockspire::BackchannelAuthenticator for OneUser {
    async fn resolve_hint(
        &self,
        hint: lockspire::LoginHint<'_>,
        _: &Context,
    ) -> Result<lockspire::HintResolution, HostError> {
        Ok(match hint {
            lockspire::LoginHint::LoginHint("alice") => {
                lockspire::HintResolution::User(Subject::new("alice")?)
            }
            _ => lockspire::HintResolution::Unknown,
        })
    }

    async fn notify(&self, _: &lockspire::BackchannelRequest) -> Result<(), HostError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_sent_again_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = SecretKey::generate().to_base64();
    // A client's notification endpoint that refuses the first call and takes the next.
    let answers = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = answers.clone();
    let endpoint = axum::Router::new().route(
        "/cb",
        axum::routing::post(move || {
            let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                if n == 0 {
                    http::StatusCode::BAD_REQUEST
                } else {
                    http::StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/cb", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, endpoint).await });

    let issuer = "http://127.0.0.1:3000";
    config(dir.path(), issuer, "");
    let ls = Lockspire::builder()
        .issuer(issuer)
        .expect("issuer")
        .database(&format!("sqlite://{}/lockspire.db", dir.path().display()))
        .secret_key(SecretKey::from_base64(&secret).expect("key"))
        .account_resolver(NoUsers)
        .backchannel_authenticator(OneUser)
        .dev_mode(true)
        .build()
        .await
        .expect("build");
    let client = ls
        .create_client(
            None,
            serde_json::json!({
                "grant_types": ["urn:openid:params:grant-type:ciba"],
                "backchannel_token_delivery_mode": "ping",
                "backchannel_client_notification_endpoint": url,
            }),
        )
        .await
        .expect("client");
    let port = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", port.local_addr().expect("addr"));
    let router: axum::Router = ls.router();
    tokio::spawn(async move { axum::serve(port, router).await });
    let asked = reqwest::Client::new()
        .post(format!("{base}/bc-authorize"))
        .basic_auth(&client.client_id, client.client_secret.as_deref())
        .form(&[
            ("scope", "openid"),
            ("login_hint", "alice"),
            ("client_notification_token", "cli-token"),
        ])
        .send()
        .await
        .expect("bc-authorize");
    assert_eq!(asked.status(), 200);
    let alice = Subject::new("alice").expect("subject");
    let id = ls.backchannel_requests(&alice).await.expect("list")[0]
        .id
        .clone();
    let approval = lockspire::BackchannelApproval {
        subject: alice,
        auth_time: 0,
        acr: None,
        amr: Vec::new(),
    };
    assert!(
        ls.approve_backchannel(&id, &approval)
            .await
            .expect("approve")
    );
    let s = Some(secret.as_str());
    // The 400 made the ping a dead letter.
    let mut listed = String::new();
    for _ in 0..50 {
        listed = out(&run(dir.path(), &["outbox", "list", "--json"], s));
        if listed.contains("HTTP 400") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let dead: Value = serde_json::from_str(&listed).expect("json");
    assert_eq!(dead[0]["status"], "dead", "{listed}");
    assert_eq!(dead[0]["kind"], "ciba_ping");
    assert_eq!(dead[0]["attempts"], 1);
    assert!(
        !listed.contains("cli-token"),
        "what a call sends is never shown"
    );
    let call = dead[0]["id"].as_str().expect("id");
    let text = out(&run(dir.path(), &["outbox", "list"], s));
    assert!(text.contains(call) && text.contains("HTTP 400"), "{text}");
    let retried = run(dir.path(), &["outbox", "retry", call], s);
    assert!(retried.status.success(), "{}", out(&retried));
    for _ in 0..50 {
        if answers.load(std::sync::atomic::Ordering::SeqCst) >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        answers.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "sent again"
    );
    let again = run(dir.path(), &["outbox", "retry", call], s);
    assert_eq!(
        again.status.code(),
        Some(1),
        "no longer a dead letter: {}",
        out(&again)
    );
    let unknown = run(dir.path(), &["outbox", "retry", "-no-such-call"], s);
    assert_eq!(unknown.status.code(), Some(1), "{}", out(&unknown));
}

#[test]
fn the_command_registers_backchannel_clients_which_only_the_serving_host_may_refuse() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = SecretKey::generate().to_base64();
    config(dir.path(), "http://127.0.0.1:3000", "");
    let s = Some(secret.as_str());
    assert!(run(dir.path(), &["migrate"], s).status.success());
    let created = run(
        dir.path(),
        &[
            "client",
            "create",
            "--auth-method",
            "client_secret_basic",
            "--grant-type",
            "urn:openid:params:grant-type:ciba",
            "--metadata",
            r#"{"backchannel_token_delivery_mode":"poll"}"#,
        ],
        s,
    );
    assert!(created.status.success(), "{}", out(&created));
    let public = run(
        dir.path(),
        &[
            "client",
            "create",
            "--auth-method",
            "none",
            "--grant-type",
            "urn:openid:params:grant-type:ciba",
            "--metadata",
            r#"{"backchannel_token_delivery_mode":"poll"}"#,
        ],
        s,
    );
    assert_eq!(
        public.status.code(),
        Some(1),
        "the rules still hold: {}",
        out(&public)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_a_fapi_profile_its_settings_or_clients_cannot_meet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = SecretKey::generate().to_base64();
    let (_, issuer) = serve(dir.path(), "/", &secret, Some("http://127.0.0.1:3000")).await;
    config(dir.path(), &issuer, "");
    // A client of no profile: a secret, which FAPI 2.0 does not accept.
    let created = run(
        dir.path(),
        &[
            "client",
            "create",
            "--name",
            "Svc",
            "--grant-type",
            "client_credentials",
            "--json",
        ],
        Some(&secret),
    );
    assert!(created.status.success(), "{}", out(&created));
    let client: Value = serde_json::from_slice(&created.stdout).expect("json");
    let id = client["client_id"].as_str().expect("client_id").to_owned();
    let o = run(dir.path(), &["verify"], Some(&secret));
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        out(&o).contains("ok     security profile: none"),
        "{}",
        out(&o)
    );
    // A setting the profile forbids.
    config(
        dir.path(),
        &issuer,
        "security_profile = \"fapi2_security\"\npushed_request_lifetime_secs = 600\n",
    );
    let o = run(dir.path(), &["verify"], Some(&secret));
    assert_fails_on(&o, "config");
    assert!(out(&o).contains("less than 600 s"), "{}", out(&o));
    // The client registered before, which cannot authenticate under the profile.
    config(
        dir.path(),
        &issuer,
        "security_profile = \"fapi2_security\"\n",
    );
    let o = run(dir.path(), &["verify"], Some(&secret));
    assert_fails_on(&o, "security profile");
    assert!(
        out(&o).contains(&id) && out(&o).contains("private_key_jwt"),
        "{}",
        out(&o)
    );
}
