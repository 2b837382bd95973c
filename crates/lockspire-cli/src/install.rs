//! `lockspire install` and `lockspire upgrade`: host glue generated into an axum crate.
//!
//! Two kinds of files:
//! - *host-owned* (`lockspire.toml`, `src/lockspire_host.rs`, `templates/lockspire/consent.html`):
//!   written once, then the host's; nothing here ever rewrites them.
//! - *managed* (`src/lockspire_setup.rs`): Lockspire's wiring. `upgrade` re-renders it, but only
//!   while its content is exactly what was last written — the manifest records a SHA-256 of every
//!   file written, so an edit is detected and the file is left alone.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use aws_lc_rs::digest;
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use toml_edit::{DocumentMut, InlineTable, Item, Table, value};

use crate::Outcome;

/// Where the manifest lives, relative to the crate.
const MANIFEST: &str = ".lockspire/manifest.json";

/// Which session library the generated resolver reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Host {
    /// A commented stub that fails clearly until filled in.
    Generic,
    /// Reads axum-login's `AuthSession<Backend>`.
    AxumLogin,
}

#[derive(Debug, Args)]
pub(crate) struct InstallArgs {
    /// The axum crate to install into (the folder with its Cargo.toml).
    #[arg(long, default_value = ".")]
    path: PathBuf,
    /// The session library the generated resolver reads.
    #[arg(long, value_enum, default_value_t = Host::Generic)]
    host: Host,
    /// Where Lockspire's endpoints are mounted; the issuer's path.
    #[arg(long, default_value = "/oauth")]
    mount_path: String,
    /// The issuer written to lockspire.toml [default: http://127.0.0.1:3000 + mount path].
    #[arg(long)]
    issuer: Option<String>,
    /// The database URL written to lockspire.toml.
    #[arg(long, default_value = "sqlite://lockspire.db")]
    database_url: String,
    /// Your login page, where the generated resolver sends browsers to sign in.
    #[arg(long, default_value = "/login")]
    login_path: String,
    /// With --host axum-login: the path of your axum-login backend type.
    #[arg(long, default_value = "crate::Backend")]
    backend_type: String,
    /// Add the missing dependencies to Cargo.toml instead of printing them.
    #[arg(long)]
    edit_cargo_toml: bool,
}

#[derive(Debug, Args)]
pub(crate) struct UpgradeArgs {
    /// The crate Lockspire was installed into.
    #[arg(long, default_value = ".")]
    path: PathBuf,
    /// Say what would change without writing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Kind {
    HostOwned,
    Managed,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    kind: Kind,
    sha256: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    lockspire_version: String,
    host: Host,
    files: BTreeMap<String, Entry>,
}

fn sha256(text: &str) -> String {
    digest::digest(&digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn read_manifest(root: &Path) -> anyhow::Result<Option<Manifest>> {
    let path = root.join(MANIFEST);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(Some(serde_json::from_str(&text).with_context(|| {
            format!("{} is not a valid manifest", path.display())
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_manifest(root: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    let path = root.join(MANIFEST);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(&path, serde_json::to_string_pretty(manifest)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

/// The managed files: identical for every installation of one Lockspire version.
fn managed_files() -> Vec<(&'static str, String)> {
    vec![(
        "src/lockspire_setup.rs",
        include_str!("../templates/lockspire_setup.rs.tmpl").to_owned(),
    )]
}

struct HostValues<'a> {
    issuer: &'a str,
    login_path: &'a str,
    mount_path: &'a str,
    database_url: &'a str,
    backend_type: &'a str,
}

/// The host-owned files, rendered once from the install options.
fn host_files(host: Host, v: &HostValues<'_>) -> Vec<(&'static str, String)> {
    let resolver = match host {
        Host::Generic => include_str!("../templates/lockspire_host_generic.rs.tmpl"),
        Host::AxumLogin => include_str!("../templates/lockspire_host_axum_login.rs.tmpl"),
    };
    let toml = include_str!("../templates/lockspire.toml.tmpl")
        .replace("@@ISSUER@@", v.issuer)
        .replace("@@MOUNT_PATH@@", v.mount_path)
        .replace("@@DATABASE_URL@@", v.database_url);
    vec![
        ("lockspire.toml", toml),
        (
            "src/lockspire_host.rs",
            resolver
                .replace("@@BACKEND@@", v.backend_type)
                .replace("@@LOGIN_PATH@@", v.login_path),
        ),
        (
            "templates/lockspire/consent.html",
            include_str!("../templates/consent.html.tmpl").to_owned(),
        ),
    ]
}

fn write_file(root: &Path, rel: &str, content: &str) -> anyhow::Result<()> {
    let path = root.join(rel);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    fs::write(&path, content).with_context(|| format!("writing {}", path.display()))
}

/// What happened to one file.
enum Action {
    Created,
    Unchanged,
    Updated,
    KeptHostOwned,
    RefusedEdited,
}

/// Decides and performs the write of one managed file: written when missing, re-rendered when
/// its content is still what the manifest recorded, refused when edited.
fn place_managed(
    root: &Path,
    rel: &str,
    content: &str,
    recorded: Option<&Entry>,
    dry_run: bool,
) -> anyhow::Result<Action> {
    let path = root.join(rel);
    let current = match fs::read_to_string(&path) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !dry_run {
                write_file(root, rel, content)?;
            }
            return Ok(Action::Created);
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    if current == content {
        return Ok(Action::Unchanged);
    }
    if recorded.is_some_and(|e| e.sha256 == sha256(&current)) {
        if !dry_run {
            write_file(root, rel, content)?;
        }
        return Ok(Action::Updated);
    }
    Ok(Action::RefusedEdited)
}

fn report(rel: &str, action: &Action, dry_run: bool) {
    let would = if dry_run { "would be " } else { "" };
    match action {
        Action::Created => out!("  {rel}: {would}created"),
        Action::Unchanged => out!("  {rel}: up to date"),
        Action::Updated => out!("  {rel}: {would}updated"),
        Action::KeptHostOwned => {
            out!("  {rel}: kept (host-owned: yours to edit; never overwritten)")
        }
        Action::RefusedEdited => out!(
            "  {rel}: REFUSED — it was edited after lockspire wrote it (or lockspire did not write it), so it \
             is left alone. Move your changes to src/lockspire_host.rs, then delete the file and run the command again."
        ),
    }
}

fn check_crate(root: &Path) -> anyhow::Result<DocumentMut> {
    let cargo = root.join("Cargo.toml");
    let text = fs::read_to_string(&cargo).with_context(|| {
        format!(
            "{} not found: run inside an axum crate or pass --path",
            cargo.display()
        )
    })?;
    let doc: DocumentMut = text
        .parse()
        .with_context(|| format!("{} is not valid TOML", cargo.display()))?;
    if !doc.contains_key("package") {
        bail!(
            "{} has no [package]: point --path at the crate of your app",
            cargo.display()
        );
    }
    Ok(doc)
}

/// The dependencies the generated code needs, as (name, Cargo.toml item).
fn needed_dependencies() -> Vec<(&'static str, Item)> {
    let mut lockspire = InlineTable::new();
    // Built from a checkout: depend on that checkout; otherwise on the released crate.
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lockspire");
    match source.canonicalize() {
        Ok(p) => {
            lockspire.insert("path", p.display().to_string().into());
        }
        Err(_) => {
            lockspire.insert("version", env!("CARGO_PKG_VERSION").into());
        }
    }
    let mut tokio = InlineTable::new();
    tokio.insert("version", "1".into());
    let mut features = toml_edit::Array::new();
    for f in ["rt-multi-thread", "macros", "net"] {
        features.push(f);
    }
    tokio.insert("features", toml_edit::Value::Array(features));
    vec![
        (
            "lockspire",
            Item::Value(toml_edit::Value::InlineTable(lockspire)),
        ),
        ("anyhow", value("1")),
        ("askama", value("0.16")),
        ("axum", value("0.8")),
        ("tokio", Item::Value(toml_edit::Value::InlineTable(tokio))),
    ]
}

pub(crate) fn install(args: InstallArgs) -> anyhow::Result<Outcome> {
    let root = args.path.as_path();
    let mut doc = check_crate(root)?;
    let mount_path = if args.mount_path.starts_with('/') {
        args.mount_path.clone()
    } else {
        format!("/{}", args.mount_path)
    };
    let issuer = args
        .issuer
        .clone()
        .unwrap_or_else(|| format!("http://127.0.0.1:3000{}", mount_path.trim_end_matches('/')));
    let file_config = format!(
        "issuer = {:?}\nmount_path = {:?}",
        issuer,
        if mount_path.trim_end_matches('/').is_empty() {
            "/"
        } else {
            mount_path.as_str()
        }
    );
    lockspire::FileConfig::parse(&file_config)
        .context("the issuer and mount path do not fit together")?;

    let previous = read_manifest(root)?;
    if let Some(m) = &previous
        && m.host != args.host
    {
        out!(
            "note: this crate was installed with --host {:?}; host-owned files keep that variant",
            m.host
        );
    }
    let mut manifest = Manifest {
        lockspire_version: env!("CARGO_PKG_VERSION").to_owned(),
        host: previous.as_ref().map(|m| m.host).unwrap_or(args.host),
        files: BTreeMap::new(),
    };
    let mut refused = false;
    out!("Installing Lockspire into {}", root.display());
    if !args.login_path.starts_with('/') || args.login_path.contains(['"', '\\', '?', '#']) {
        bail!("--login-path must be a plain absolute path such as /login");
    }
    let values = HostValues {
        issuer: &issuer,
        login_path: &args.login_path,
        mount_path: &mount_path,
        database_url: &args.database_url,
        backend_type: &args.backend_type,
    };
    for (rel, content) in host_files(args.host, &values) {
        let path = root.join(rel);
        let recorded = previous.as_ref().and_then(|m| m.files.get(rel));
        let action = if path.exists() {
            let current =
                fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            // Keep the hash recorded at first write, so "unchanged since install" stays visible.
            let sha = recorded
                .map(|e| e.sha256.clone())
                .unwrap_or_else(|| sha256(&current));
            manifest.files.insert(
                rel.to_owned(),
                Entry {
                    kind: Kind::HostOwned,
                    sha256: sha,
                },
            );
            Action::KeptHostOwned
        } else {
            write_file(root, rel, &content)?;
            manifest.files.insert(
                rel.to_owned(),
                Entry {
                    kind: Kind::HostOwned,
                    sha256: sha256(&content),
                },
            );
            Action::Created
        };
        report(rel, &action, false);
    }
    for (rel, content) in managed_files() {
        let recorded = previous.as_ref().and_then(|m| m.files.get(rel));
        let action = place_managed(root, rel, &content, recorded, false)?;
        match action {
            Action::RefusedEdited => {
                refused = true;
                if let Some(e) = recorded {
                    manifest.files.insert(
                        rel.to_owned(),
                        Entry {
                            kind: Kind::Managed,
                            sha256: e.sha256.clone(),
                        },
                    );
                }
            }
            _ => {
                manifest.files.insert(
                    rel.to_owned(),
                    Entry {
                        kind: Kind::Managed,
                        sha256: sha256(&content),
                    },
                );
            }
        }
        report(rel, &action, false);
    }
    write_manifest(root, &manifest)?;
    out!("  {MANIFEST}: records what was written");

    let missing: Vec<(&str, Item)> = needed_dependencies()
        .into_iter()
        .filter(|(name, _)| {
            !doc.get("dependencies")
                .and_then(Item::as_table_like)
                .is_some_and(|t| t.contains_key(name))
        })
        .collect();
    let deps_step = if missing.is_empty() {
        "Cargo.toml already has every dependency the generated code needs.".to_owned()
    } else if args.edit_cargo_toml {
        let names: Vec<&str> = missing.iter().map(|(n, _)| *n).collect();
        let deps = doc
            .entry("dependencies")
            .or_insert_with(|| Item::Table(Table::new()));
        let Some(table) = deps.as_table_like_mut() else {
            bail!("[dependencies] in Cargo.toml is not a table")
        };
        for (name, item) in missing {
            table.insert(name, item);
        }
        fs::write(root.join("Cargo.toml"), doc.to_string()).context("writing Cargo.toml")?;
        format!("Added to Cargo.toml: {}.", names.join(", "))
    } else {
        let lines: Vec<String> = missing
            .iter()
            .map(|(n, item)| format!("       {n} = {}", item.to_string().trim()))
            .collect();
        format!(
            "Add to [dependencies] in Cargo.toml (or re-run with --edit-cargo-toml):\n{}",
            lines.join("\n")
        )
    };
    if args.host == Host::AxumLogin
        && !doc
            .get("dependencies")
            .and_then(Item::as_table_like)
            .is_some_and(|t| t.contains_key("axum-login"))
    {
        out!(
            "warning: Cargo.toml has no axum-login dependency, but --host axum-login reads its session"
        );
    }
    print_next_steps(args.host, &deps_step, &args.backend_type, &issuer);
    Ok(if refused {
        Outcome::Failed
    } else {
        Outcome::Done
    })
}

fn print_next_steps(host: Host, deps_step: &str, backend: &str, issuer: &str) {
    let origin = url::Url::parse(issuer)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| issuer.to_owned());
    let host_steps = match host {
        Host::AxumLogin => format!(
            "  3. In src/lockspire_host.rs, check that `Backend` is your axum-login backend (now {backend}),
     and fill in `claims_for` with what clients may learn about a user.
  4. In your login handler, right after `auth_session.login(&user)` succeeds, record the sign-in
     time (it fails only when the session store does; answer that with a 500):
       lockspire_host::record_sign_in(&auth_session.session).await
     Carry the `return_to` query parameter through your login form (a hidden field) and, once
     signed in, redirect to it when it starts with {issuer}/ (never anywhere else).
  5. Build Lockspire and merge its router inside your auth layer, so it sees the session:
       let (_lockspire, oauth) =
           lockspire_setup::lockspire(lockspire_host::HostResolver::new(backend.clone())).await?;
       let app = Router::new() /* your routes */ .merge(oauth).layer(auth_layer);"
        ),
        Host::Generic => format!(
            "  3. Fill in the five methods of HostResolver in src/lockspire_host.rs from your own session
     and user store; until then authorizations fail with an error naming the method.
  4. Carry the `return_to` query parameter through your login form and, once signed in, redirect
     to it when it starts with {issuer}/ (never anywhere else).
  5. Build Lockspire and merge its router inside your session layer:
       let (_lockspire, oauth) = lockspire_setup::lockspire(lockspire_host::HostResolver::new()).await?;
       let app = Router::new() /* your routes */ .merge(oauth).layer(session_layer);"
        ),
    };
    out!(
        "\nNext steps:
  1. {deps_step}
  2. Declare the modules in src/main.rs:
       mod lockspire_host;
       mod lockspire_setup;
{host_steps}
  6. Give it a secret key (keep it in your secret store):
       export LOCKSPIRE_SECRET_KEY=$(openssl rand -base64 32)
  7. Start your app from this folder (it migrates the database and creates signing keys), then:
       lockspire verify --url {origin}
  8. Register a client (from this folder, with LOCKSPIRE_SECRET_KEY set as for the app):
       lockspire client create --name \"My client\" --redirect-uri https://client.example/cb"
    );
}

pub(crate) fn upgrade(args: UpgradeArgs) -> anyhow::Result<Outcome> {
    let root = args.path.as_path();
    check_crate(root)?;
    let Some(mut manifest) = read_manifest(root)? else {
        bail!(
            "no {MANIFEST} in {}: run `lockspire install` first",
            root.display()
        );
    };
    let mut refused = false;
    out!(
        "{} Lockspire files in {}",
        if args.dry_run {
            "Checking"
        } else {
            "Upgrading"
        },
        root.display()
    );
    for (rel, content) in managed_files() {
        let action = place_managed(root, rel, &content, manifest.files.get(rel), args.dry_run)?;
        match action {
            Action::RefusedEdited => refused = true,
            _ if !args.dry_run => {
                manifest.files.insert(
                    rel.to_owned(),
                    Entry {
                        kind: Kind::Managed,
                        sha256: sha256(&content),
                    },
                );
            }
            _ => {}
        }
        report(rel, &action, args.dry_run);
    }
    for (rel, entry) in &manifest.files {
        if entry.kind == Kind::HostOwned {
            report(rel, &Action::KeptHostOwned, args.dry_run);
        }
    }
    if !args.dry_run {
        manifest.lockspire_version = env!("CARGO_PKG_VERSION").to_owned();
        write_manifest(root, &manifest)?;
    }
    Ok(if refused {
        Outcome::Failed
    } else {
        Outcome::Done
    })
}
