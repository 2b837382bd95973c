//! `lockspire verify`: every check prints `ok` or `error` with what to do about it; the exit
//! status is 0 only when all pass.

use std::collections::BTreeSet;
use std::time::Duration;

use clap::Args;
use lockspire::Database;
use lockspire::jose::KeyAlg;
use lockspire::{FileConfig, Issuer, KeyState, Operator};
use reqwest013 as reqwest;
use serde_json::Value;

use crate::Outcome;
use crate::setup::ConfigArgs;

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Also probe a running instance at this origin (e.g. http://127.0.0.1:3000).
    #[arg(long)]
    url: Option<String>,
}

/// Collects results and prints them as they come.
#[derive(Default)]
struct Report {
    failed: usize,
}

impl Report {
    fn ok(&mut self, check: &str, detail: &str) {
        out!(
            "ok     {check}{}{detail}",
            if detail.is_empty() { "" } else { ": " }
        );
    }

    fn error(&mut self, check: &str, problem: &str, fix: &str) {
        self.failed += 1;
        out!("error  {check}: {problem}");
        out!("       fix: {fix}");
    }
}

pub(crate) async fn run(args: VerifyArgs) -> anyhow::Result<Outcome> {
    let mut r = Report::default();
    checks(&args, &mut r).await;
    if r.failed == 0 {
        out!("\nAll checks passed.");
        Ok(Outcome::Done)
    } else {
        out!("\n{} check(s) failed.", r.failed);
        Ok(Outcome::Failed)
    }
}

async fn checks(args: &VerifyArgs, r: &mut Report) {
    let path = args.config.config.display().to_string();
    if !args.config.config.exists() {
        r.error(
            "config",
            &format!("no {path} here"),
            "run the command in your app's folder (where `lockspire install` wrote it) or pass --config PATH",
        );
        return;
    }
    let config = match FileConfig::read_unchecked(&args.config.config) {
        Ok(c) => c,
        Err(e) => {
            r.error(
                "config",
                &e.to_string(),
                "fix the file (`lockspire install` writes a commented one)",
            );
            return;
        }
    };
    match config.check() {
        Ok(()) => r.ok("config", &path),
        Err(e) => r.error(
            "config",
            &format!("{path}: {e}"),
            "fix the value named above",
        ),
    }
    match Issuer::parse(&config.issuer) {
        Ok(i) => r.ok("issuer", i.as_str()),
        Err(e) => {
            r.error(
                "issuer",
                &e.to_string(),
                "use an absolute https URL (http only on 127.0.0.1/localhost)",
            );
            return;
        }
    }
    let secret = match config.secret_key() {
        Ok(k) => {
            r.ok("secret key", &format!("{} is set", config.secret_key_env));
            Some(k)
        }
        Err(e) => {
            r.error(
                "secret key",
                &e.to_string(),
                &format!(
                    "export {}=<32 random bytes, base64> (e.g. openssl rand -base64 32)",
                    config.secret_key_env
                ),
            );
            None
        }
    };
    let url = match config.database_url() {
        Ok(u) => u,
        Err(e) => {
            r.error(
                "database",
                &e.to_string(),
                "set database_url in the config file",
            );
            return;
        }
    };
    let database = match Database::open(&url).await {
        Ok(d) => {
            r.ok("database", &format!("{:?} reachable", d.kind()));
            d
        }
        Err(e) => {
            r.error(
                "database",
                &format!("cannot open it: {e}"),
                "check database_url and that the server is running",
            );
            return;
        }
    };
    match database.pending_migrations().await {
        Ok(p) if p.is_empty() => r.ok("migrations", "current"),
        Ok(p) => r.error(
            "migrations",
            &format!("{} pending", p.len()),
            "run `lockspire migrate` (or start the app once)",
        ),
        Err(e) => r.error("migrations", &e.to_string(), "check the database"),
    }
    if secret.is_none() {
        return;
    }
    let operator = match config.builder() {
        Ok(b) => match b.opened_database(database).build_operator().await {
            Ok(op) => op,
            Err(e) => {
                r.error("keys", &e.to_string(), "check the configuration");
                return;
            }
        },
        Err(e) => {
            r.error("keys", &e.to_string(), "check the configuration");
            return;
        }
    };
    check_keys(&operator, r).await;
    check_profile(&config, &operator, r).await;
    if let Some(base) = &args.url {
        probe(base, &config, &operator, r).await;
    }
}

async fn check_keys(op: &Operator, r: &mut Report) {
    let keys = match op.keys().await {
        Ok(k) => k,
        Err(e) => {
            r.error(
                "signing keys",
                &e.to_string(),
                "run `lockspire migrate`, then start the app once",
            );
            return;
        }
    };
    let missing: Vec<&str> = KeyAlg::ALL
        .iter()
        .filter(|alg| {
            !keys
                .iter()
                .any(|k| k.alg == alg.as_str() && k.state == KeyState::Active)
        })
        .map(|a| a.as_str())
        .collect();
    if missing.is_empty() {
        r.ok(
            "signing keys",
            "an active key for RS256, PS256, ES256 and EdDSA, and encryption keys for RSA-OAEP-256 and ECDH-ES",
        );
    } else {
        r.error(
            "signing keys",
            &format!("no active key for {}", missing.join(", ")),
            "start the app once (it creates the first keys), or `lockspire keys generate --alg ALG` then `keys activate KID`",
        );
    }
    match op.check_keys().await {
        Ok(results) => {
            let broken: Vec<String> = results
                .iter()
                .filter(|(_, res)| res.is_err())
                .map(|(kid, _)| kid.clone())
                .collect();
            if results.is_empty() {
                r.ok("key-encryption key", "no stored keys to open yet");
            } else if broken.is_empty() {
                r.ok(
                    "key-encryption key",
                    &format!("opens all {} published keys", results.len()),
                );
            } else {
                r.error(
                    "key-encryption key",
                    &format!("cannot open {} key(s): {}", broken.len(), broken.join(", ")),
                    "set the secret key the keys were created with (the database alone never yields a usable key)",
                );
            }
        }
        Err(e) => r.error("key-encryption key", &e.to_string(), "check the database"),
    }
}

/// The security profile (FAPI 2.0), and the registered clients that do not meet it. The
/// settings it forbids were reported with the config.
async fn check_profile(config: &FileConfig, op: &Operator, r: &mut Report) {
    let profile = config.security_profile;
    match op.profile_violations().await {
        Ok(v) if v.is_empty() => r.ok(
            "security profile",
            &format!("{profile}; every enabled client meets its profile"),
        ),
        Ok(v) => {
            let list: Vec<String> = v.iter().map(|(id, why)| format!("{id} ({why})")).collect();
            r.error(
                "security profile",
                &format!(
                    "{} client(s) do not meet their profile and cannot authenticate: {}",
                    v.len(),
                    list.join("; ")
                ),
                "update their registration (`lockspire client update`), or disable them",
            );
        }
        Err(e) => r.error(
            "security profile",
            &e.to_string(),
            "run `lockspire migrate`, then start the app once",
        ),
    }
}

/// Maps an issuer-based URL onto the probed origin, so a local instance behind a public issuer
/// name can be checked.
fn local(url: &str, issuer: &str, probe_base: &str) -> String {
    match url.strip_prefix(issuer) {
        Some(rest) => format!("{probe_base}{rest}"),
        None => url.to_owned(),
    }
}

async fn probe(base: &str, config: &FileConfig, op: &Operator, r: &mut Report) {
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            r.error(
                "live probe",
                &e.to_string(),
                "check the TLS setup of this machine",
            );
            return;
        }
    };
    let issuer = config.issuer.trim_end_matches('/');
    let issuer_path = url::Url::parse(issuer)
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    let probe_base = format!("{}{}", base.trim_end_matches('/'), issuer_path);
    let discovery_url = format!("{probe_base}/.well-known/openid-configuration");
    let doc: Value = match client.get(&discovery_url).send().await {
        Ok(resp) if resp.status().is_success() => match resp.json().await {
            Ok(v) => v,
            Err(e) => {
                r.error(
                    "discovery",
                    &format!("{discovery_url}: not JSON: {e}"),
                    "check that Lockspire's router is mounted at mount_path",
                );
                return;
            }
        },
        Ok(resp) => {
            r.error(
                "discovery",
                &format!("{discovery_url} answered {}", resp.status()),
                "merge lockspire's router at mount_path",
            );
            return;
        }
        Err(e) => {
            r.error(
                "discovery",
                &format!("{discovery_url}: {e}"),
                "start the app, or pass the origin it listens on to --url",
            );
            return;
        }
    };
    if doc["issuer"].as_str() == Some(issuer) {
        r.ok("discovery", &format!("issuer {issuer}"));
    } else {
        r.error(
            "discovery",
            &format!(
                "the instance says issuer {} but the config says {issuer}",
                doc["issuer"]
            ),
            "run the app with this lockspire.toml, or fix issuer",
        );
    }
    // The instance runs the configured profile: what its discovery document says of it.
    let profile = config.security_profile;
    let says_pushed = doc["require_pushed_authorization_requests"].as_bool() == Some(true);
    let says_signed = doc["require_signed_request_object"].as_bool() == Some(true);
    if (!profile.is_fapi() || says_pushed) && says_signed == profile.signs_messages() {
        r.ok("profile served", profile.as_str());
    } else {
        r.error(
            "profile served",
            &format!(
                "the config says {profile} but the instance's discovery says require_pushed_authorization_requests={says_pushed}, require_signed_request_object={says_signed}"
            ),
            "run the app with this lockspire.toml (its builder takes FileConfig::builder), or fix security_profile",
        );
    }
    // JWKS must publish exactly the keys the database says are published.
    let jwks_url = local(
        doc["jwks_uri"].as_str().unwrap_or_default(),
        issuer,
        &probe_base,
    );
    let served: Option<BTreeSet<String>> = match client.get(&jwks_url).send().await {
        Ok(resp) if resp.status().is_success() => resp.json::<Value>().await.ok().map(|v| {
            v["keys"]
                .as_array()
                .map(|ks| {
                    ks.iter()
                        .filter_map(|k| k["kid"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        }),
        _ => None,
    };
    let expected: BTreeSet<String> = op
        .keys()
        .await
        .map(|ks| {
            ks.into_iter()
                .filter(|k| k.state != KeyState::Retired)
                .map(|k| k.kid)
                .collect()
        })
        .unwrap_or_default();
    match served {
        Some(s) if s == expected => r.ok("jwks", &format!("{} keys, matching the database", s.len())),
        Some(s) => r.error(
            "jwks",
            &format!("serves {} keys, the database publishes {} (differences: {:?})", s.len(), expected.len(), s.symmetric_difference(&expected).collect::<Vec<_>>()),
            "the instance uses another database or secret key, or has not reloaded its keys yet (it does every 30 s)",
        ),
        None => r.error("jwks", &format!("{jwks_url} did not answer with a JWK set"), "check the app's logs"),
    }
    // Every advertised endpoint answers; a bare call is a client error, never a 404 or a 5xx.
    let mut broken = Vec::new();
    for (key, post) in [
        ("authorization_endpoint", false),
        ("userinfo_endpoint", false),
        ("token_endpoint", true),
        ("introspection_endpoint", true),
        ("revocation_endpoint", true),
        ("registration_endpoint", true),
    ] {
        let Some(advertised) = doc[key].as_str() else {
            continue;
        };
        let url = local(advertised, issuer, &probe_base);
        let req = if post {
            client.post(&url)
        } else {
            client.get(&url)
        };
        match req.send().await {
            Ok(resp) if resp.status().is_server_error() || resp.status() == 404 => {
                broken.push(format!("{key} answered {}", resp.status()))
            }
            Ok(resp) if key == "authorization_endpoint" => {
                let html = resp
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("text/html"));
                if !(resp.status().is_client_error() && html) {
                    broken.push(format!(
                        "{key} without parameters answered {} instead of an HTML error page",
                        resp.status()
                    ));
                }
            }
            Ok(_) => {}
            Err(e) => broken.push(format!("{key}: {e}")),
        }
    }
    if broken.is_empty() {
        r.ok(
            "endpoints",
            "every advertised endpoint answers; /authorize without parameters shows an error page",
        );
    } else {
        r.error(
            "endpoints",
            &broken.join("; "),
            "check the app's logs and that the router is mounted at mount_path",
        );
    }
}
