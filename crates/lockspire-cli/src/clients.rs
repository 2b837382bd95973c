//! `lockspire client …`: register and operate OAuth clients (RFC 7591 metadata rules apply).

use anyhow::Context as _;
use clap::{Args, Subcommand};
use lockspire::{ClientInfo, OperatorError};
use serde_json::{Map, Value, json};

use crate::Outcome;
use crate::setup::{ConfigArgs, print_json, refused};

#[derive(Debug, Subcommand)]
pub(crate) enum ClientCommand {
    /// Register a client. A confidential client's secret is printed once, never again.
    Create(CreateArgs),
    /// List clients.
    List(ListArgs),
    /// Show one client.
    Show(IdArgs),
    /// Change a client's metadata; fields not given keep their values.
    Update(UpdateArgs),
    /// Suspend the client: refused everywhere, its tokens suspended until it is enabled again.
    Disable(IdArgs),
    /// Allow a disabled client again; its unexpired tokens work again too.
    Enable(IdArgs),
    /// Delete the client for good: every grant and token revoked, the id never reused. Final.
    Delete(IdArgs),
    /// Issue a new secret (printed once); the old one stops working at once.
    RotateSecret(IdArgs),
}

/// Metadata flags shared by create and update.
#[derive(Debug, Args)]
pub(crate) struct MetadataArgs {
    /// Display name shown on the consent page.
    #[arg(long)]
    name: Option<String>,
    /// Redirect URI (repeat for several); matched exactly.
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    /// Grant type (repeat): authorization_code, refresh_token, client_credentials,
    /// urn:ietf:params:oauth:grant-type:device_code, urn:openid:params:grant-type:ciba.
    #[arg(long = "grant-type")]
    grant_types: Vec<String>,
    /// Token endpoint authentication: client_secret_basic, client_secret_post, none, or (with
    /// keys or a certificate given in --metadata) private_key_jwt, tls_client_auth,
    /// self_signed_tls_client_auth.
    #[arg(long)]
    auth_method: Option<String>,
    /// Space-separated scopes the client may request.
    #[arg(long)]
    scope: Option<String>,
    /// Further RFC 7591 metadata as a JSON object, e.g. '{"id_token_signed_response_alg":"ES256"}'.
    #[arg(long)]
    metadata: Option<String>,
}

impl MetadataArgs {
    /// The flags as a JSON object of metadata fields.
    fn fields(&self) -> anyhow::Result<Map<String, Value>> {
        let mut out = match &self.metadata {
            Some(text) => match serde_json::from_str(text).context("--metadata is not JSON")? {
                Value::Object(map) => map,
                _ => anyhow::bail!("--metadata must be a JSON object"),
            },
            None => Map::new(),
        };
        if let Some(name) = &self.name {
            out.insert("client_name".into(), json!(name));
        }
        if !self.redirect_uris.is_empty() {
            out.insert("redirect_uris".into(), json!(self.redirect_uris));
        }
        if !self.grant_types.is_empty() {
            out.insert("grant_types".into(), json!(self.grant_types));
        }
        if let Some(m) = &self.auth_method {
            out.insert("token_endpoint_auth_method".into(), json!(m));
        }
        if let Some(s) = &self.scope {
            out.insert("scope".into(), json!(s));
        }
        Ok(out)
    }
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    metadata: MetadataArgs,
    /// Choose the client id instead of generating one.
    #[arg(long)]
    client_id: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct IdArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The client id.
    // Ids are base64url and may begin with '-': never read one as a flag.
    #[arg(allow_hyphen_values = true)]
    client_id: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct UpdateArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The client id.
    // Ids are base64url and may begin with '-': never read one as a flag.
    #[arg(allow_hyphen_values = true)]
    client_id: String,
    #[command(flatten)]
    metadata: MetadataArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn print_client(c: &ClientInfo, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(c);
    }
    let m = &c.metadata;
    out!("client_id:     {}", c.client_id);
    out!("status:        {}", status(c));
    out!("name:          {}", m.client_name.as_deref().unwrap_or("-"));
    out!("auth method:   {}", m.token_endpoint_auth_method.as_str());
    out!(
        "grant types:   {}",
        m.grant_types
            .iter()
            .map(|g| g.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );
    out!("redirect URIs: {}", m.redirect_uris.join(" "));
    out!("scope:         {}", m.scope.as_deref().unwrap_or("(any)"));
    Ok(())
}

pub(crate) async fn run(cmd: ClientCommand) -> anyhow::Result<Outcome> {
    match cmd {
        ClientCommand::Create(a) => {
            let op = a.config.operator().await?;
            let fields = a.metadata.fields()?;
            match op
                .create_client(a.client_id.as_deref(), Value::Object(fields))
                .await
            {
                Ok(created) => {
                    if a.json {
                        print_json(&created)?;
                    } else {
                        out!("client_id:     {}", created.client_id);
                        if let Some(secret) = &created.client_secret {
                            out!("client_secret: {secret}");
                            out!("(shown once: store it now; only a keyed digest is kept)");
                        }
                    }
                    Ok(Outcome::Done)
                }
                Err(e) => refused(e),
            }
        }
        ClientCommand::List(a) => {
            let clients = a.config.reader().await?.clients().await?;
            if a.json {
                print_json(&clients)?;
            } else {
                out!("{:<24} {:<9} {:<20} NAME", "CLIENT_ID", "STATUS", "AUTH");
                for c in &clients {
                    out!(
                        "{:<24} {:<9} {:<20} {}",
                        c.client_id,
                        status(c),
                        c.metadata.token_endpoint_auth_method.as_str(),
                        c.metadata.client_name.as_deref().unwrap_or("-")
                    );
                }
            }
            Ok(Outcome::Done)
        }
        ClientCommand::Show(a) => match a.config.reader().await?.client(&a.client_id).await? {
            Some(c) => {
                print_client(&c, a.json)?;
                Ok(Outcome::Done)
            }
            None => refused(OperatorError::NotFound(format!("client {}", a.client_id))),
        },
        ClientCommand::Update(a) => {
            let op = a.config.operator().await?;
            let Some(current) = op.client(&a.client_id).await? else {
                return refused(OperatorError::NotFound(format!("client {}", a.client_id)));
            };
            let mut merged = match serde_json::to_value(&current.metadata)? {
                Value::Object(map) => map,
                _ => Map::new(),
            };
            merged.extend(a.metadata.fields()?);
            match op.update_client(&a.client_id, Value::Object(merged)).await {
                Ok(_) => match op.client(&a.client_id).await? {
                    Some(c) => {
                        print_client(&c, a.json)?;
                        Ok(Outcome::Done)
                    }
                    None => refused(OperatorError::NotFound(format!("client {}", a.client_id))),
                },
                Err(e) => refused(e),
            }
        }
        ClientCommand::Disable(a) => set_enabled(a, false).await,
        ClientCommand::Enable(a) => set_enabled(a, true).await,
        ClientCommand::Delete(a) => {
            match a.config.operator().await?.delete_client(&a.client_id).await {
                Ok(()) => {
                    if a.json {
                        print_json(&json!({"client_id": a.client_id, "deleted": true}))?;
                    } else {
                        out!("{} deleted", a.client_id);
                    }
                    Ok(Outcome::Done)
                }
                Err(e) => refused(e),
            }
        }
        ClientCommand::RotateSecret(a) => match a
            .config
            .operator()
            .await?
            .rotate_client_secret(&a.client_id)
            .await
        {
            Ok(secret) => {
                if a.json {
                    print_json(&json!({"client_id": a.client_id, "client_secret": secret}))?;
                } else {
                    out!("client_secret: {secret}");
                    out!("(shown once; the previous secret no longer works)");
                }
                Ok(Outcome::Done)
            }
            Err(e) => refused(e),
        },
    }
}

/// A client's status as the listing shows it.
fn status(c: &ClientInfo) -> &'static str {
    match (c.deleted, c.enabled) {
        (true, _) => "deleted",
        (false, true) => "enabled",
        (false, false) => "disabled",
    }
}

async fn set_enabled(a: IdArgs, enabled: bool) -> anyhow::Result<Outcome> {
    match a
        .config
        .operator()
        .await?
        .set_client_enabled(&a.client_id, enabled)
        .await
    {
        Ok(()) => {
            if a.json {
                print_json(&json!({"client_id": a.client_id, "enabled": enabled}))?;
            } else {
                out!(
                    "{} {}",
                    a.client_id,
                    if enabled { "enabled" } else { "disabled" }
                );
            }
            Ok(Outcome::Done)
        }
        Err(e) => refused(e),
    }
}
