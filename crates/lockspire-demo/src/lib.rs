//! The Lockspire demo host: an ordinary axum application that owns its users, passwords,
//! sessions and login page, and embeds Lockspire as its OpenID Connect provider.
//!
//! The split of responsibilities is the point of the demo:
//!
//! * [`users`] and [`sessions`] are plain host code: a `demo_users` table with argon2 password
//!   hashes, and a SQL-backed tower-sessions store driven by axum-login.
//! * [`resolver`] is the only glue Lockspire needs: it answers "who is signed in?" by running
//!   axum-login's extractor on the request Lockspire hands it.
//! * `relying_party` plays the client: it runs an authorization code + PKCE flow against the
//!   provider over real HTTP and verifies the ID token, the way any OIDC client would.
//!
//! [`app`] builds the whole router so the binary and the integration test start the same thing.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod account_information;
mod api;
mod backchannel;
pub mod cli;
mod client_key;
mod db;
mod device_client;
mod display;
mod dpop_client;
mod forms;
mod forum;
mod pages;
mod random;
mod relying_party;
pub mod resolver;
pub mod sessions;
mod sign_out;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::routing::{get, post};
use axum_login::AuthManagerLayerBuilder;
use axum_login::tower_sessions::cookie::SameSite;
use axum_login::tower_sessions::{Expiry, SessionManagerLayer};
use lockspire::{Issuer, Lockspire, RegistrationPolicy, SecretKey};
use serde_json::json;

use crate::resolver::DemoResolver;
use crate::sessions::SqlSessionStore;
use crate::users::{Backend, Users};

/// The client id of the pre-registered demo relying party.
pub const DEMO_CLIENT_ID: &str = "lockspire-demo";
/// The demo client under a FAPI 2.0 profile: a confidential client of its own, since a client
/// cannot change from no credential (public) to a key (RFC 7592 updates keep the kind).
pub const DEMO_FAPI_CLIENT_ID: &str = "lockspire-demo-fapi";

/// The id of the demo client the relying party uses under `profile`.
pub fn demo_client_id(profile: lockspire::SecurityProfile) -> &'static str {
    if profile.is_fapi() {
        DEMO_FAPI_CLIENT_ID
    } else {
        DEMO_CLIENT_ID
    }
}

/// The client id of the pre-registered demo device (RFC 8628), a public client of the device
/// grant.
pub const DEMO_DEVICE_CLIENT_ID: &str = "lockspire-demo-device";

/// The client id of the pre-registered demo bank: a confidential client of backchannel
/// authentication (CIBA, poll mode) that authenticates with `private_key_jwt`.
pub const DEMO_BANK_CLIENT_ID: &str = "lockspire-demo-bank";

/// The client id of the pre-registered demo forum: a second relying party in the same host,
/// told of every sign-out by back-channel logout.
pub const DEMO_FORUM_CLIENT_ID: &str = "lockspire-demo-forum";

/// The seeded demo account's username.
pub const DEMO_USERNAME: &str = "alice";

/// The seeded demo account's password. A demo convenience, never a pattern to copy.
pub const DEMO_PASSWORD: &str = "alice-password";

/// Everything [`app`] needs. The CLI fills it in from flags and the environment; tests build
/// it directly.
#[derive(Debug)]
pub struct Settings {
    /// The issuer identifier, e.g. `http://127.0.0.1:4000`.
    pub issuer: String,
    /// `sqlite://…` or `postgres://…`; Lockspire and the demo's own tables share it.
    pub database_url: String,
    /// Who may register clients dynamically.
    pub registration: RegistrationPolicy,
    /// The key Lockspire derives its server secrets from.
    pub secret_key: SecretKey,
    /// Mutual TLS, when the demo serves HTTPS itself.
    pub mtls: Option<lockspire::MtlsConfig>,
    /// Development mode (loopback issuer): client JWKS may be fetched from loopback.
    pub dev_mode: bool,
    /// How often this process re-reads the signing keys; `None` keeps Lockspire's default.
    pub key_refresh_interval: Option<Duration>,
    /// How long this process holds a client notification it is delivering; `None` keeps
    /// Lockspire's default.
    pub outbox_lease: Option<Duration>,
    /// Resource identifiers (RFC 8707) beyond the demo's own API that tokens may be issued
    /// for.
    pub extra_resources: Vec<String>,
    /// The security profile every client is held to (FAPI 2.0).
    pub security_profile: lockspire::SecurityProfile,
}

/// State shared by the demo's own handlers.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    /// The issuer, normalised by Lockspire (no trailing slash).
    pub(crate) issuer: Arc<str>,
    /// The relying party's HTTP client. It never follows redirects, so a hostile metadata
    /// document cannot bounce it to arbitrary URLs.
    pub(crate) http: reqwest::Client,
    /// The relying party's key for the request objects it signs.
    pub(crate) client_key: Arc<client_key::ClientKey>,
    /// The provider, for the host's own calls: the authentication device's answers to
    /// backchannel requests.
    pub(crate) lockspire: Lockspire,
    /// The forum's sessions and the logout tokens it received.
    pub(crate) forum: forum::Forum,
    /// The server's security profile, which the relying party follows.
    pub(crate) profile: lockspire::SecurityProfile,
    /// The demo client's id under that profile.
    pub(crate) client_id: &'static str,
}

/// How long an idle browser session lives.
const SESSION_IDLE: time::Duration = time::Duration::hours(12);

/// How often expired sessions are swept from the database.
const SESSION_SWEEP: Duration = Duration::from_secs(600);

/// Opens the database, creates the demo's tables and the demo account, builds Lockspire,
/// registers the demo client and returns the complete router, ready for `axum::serve`.
pub async fn app(settings: Settings) -> anyhow::Result<Router> {
    // Checked before anything touches the database, so a typo fails fast and clearly.
    let issuer = Issuer::parse(&settings.issuer)?;
    let issuer: Arc<str> = issuer.as_str().into();

    let pool = db::connect(&settings.database_url).await?;
    let users = Users::new(pool.clone()).await?;
    users
        .seed(
            DEMO_USERNAME,
            DEMO_PASSWORD,
            "Alice Example",
            "alice@example.com",
        )
        .await?;
    let client_key = Arc::new(client_key::ClientKey::load_or_create(&pool).await?);
    let sessions = SqlSessionStore::new(pool).await?;
    sessions.spawn_sweeper(SESSION_SWEEP);

    let lockspire = Lockspire::builder()
        .issuer(&issuer)?
        .database(&settings.database_url)
        .secret_key(settings.secret_key)
        .account_resolver(DemoResolver::new(users.clone()))
        .registration(settings.registration)
        .authorization_details_type(
            "account_information",
            account_information::AccountInformation,
        )
        .backchannel_authenticator(backchannel::DemoBackchannel::new(users.clone()))
        .dev_mode(settings.dev_mode)
        .security_profile(settings.security_profile)
        // RFC 8707: the host's own API is a resource tokens may be issued for.
        .resources(
            std::iter::once(format!("{issuer}{}", api::API_PATH)).chain(settings.extra_resources),
        );
    let lockspire = match settings.key_refresh_interval {
        Some(every) => lockspire.key_refresh_interval(every),
        None => lockspire,
    };
    let lockspire = match settings.outbox_lease {
        Some(lease) => lockspire.outbox_lease(lease),
        None => lockspire,
    };
    let lockspire = match settings.mtls {
        Some(mtls) => lockspire.mtls(mtls),
        None => lockspire,
    }
    .build()
    .await
    .context("starting Lockspire")?;
    let profile = settings.security_profile;
    register_demo_client(&lockspire, &issuer, client_key.jwks(), profile).await?;
    if profile.is_fapi() {
        // Public clients, and grants whose authorization is not pushed, are not FAPI 2.0.
        tracing::info!(%profile, "the device, CIBA and forum demos are off under this profile");
    } else {
        register_device_client(&lockspire).await?;
        register_bank_client(&lockspire, client_key.jwks()).await?;
        register_forum_client(&lockspire, &issuer).await?;
    }
    let api = lockspire
        .resource_server(&format!("{issuer}{}", api::API_PATH))?
        .resource_name("Lockspire demo API")
        .scopes_supported([api::API_SCOPE])
        .build();
    let api_routes = Router::new()
        .route("/api/me", get(api::me))
        .route_layer(api.require_token().scopes([api::API_SCOPE]))
        .with_state(users.clone())
        .merge(api.metadata_router());

    let session_layer = SessionManagerLayer::new(sessions)
        .with_name("demo_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(issuer.starts_with("https://"))
        .with_expiry(Expiry::OnInactivity(SESSION_IDLE));
    let auth_layer = AuthManagerLayerBuilder::new(Backend::new(users), session_layer).build();

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .context("building the relying party's HTTP client")?;
    let state = AppState {
        issuer,
        http,
        client_key,
        lockspire: lockspire.clone(),
        forum: forum::Forum::default(),
        profile,
        client_id: demo_client_id(profile),
    };

    Ok(Router::new()
        .route("/", get(pages::home))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", get(pages::logout_page).post(pages::logout))
        .route("/demo", get(relying_party::start))
        .route("/demo/callback", get(relying_party::callback))
        .route("/demo/sign-out", post(sign_out::start))
        .route("/demo/signed-out", get(sign_out::finish))
        .route("/demo/forum", get(forum::page))
        .route("/demo/forum/sign-in", get(forum::sign_in))
        .route("/demo/forum/callback", get(forum::callback))
        .route(
            "/demo/forum/backchannel-logout",
            post(forum::backchannel_logout),
        )
        .route("/demo/ciba", get(backchannel::page).post(backchannel::act))
        .route("/demo/device", get(device_client::start))
        .route("/demo/device/status", get(device_client::status))
        .route("/demo/device/poll", get(device_client::poll))
        .with_state(state)
        .merge(api_routes)
        .merge(lockspire.router())
        // Outermost, so Lockspire's own routes see the session too: the resolver reads it.
        .layer(auth_layer))
}

/// Registers the public demo client once; later starts find it in the database.
async fn register_demo_client(
    lockspire: &Lockspire,
    issuer: &str,
    jwks: serde_json::Value,
    profile: lockspire::SecurityProfile,
) -> anyhow::Result<()> {
    let client_id = demo_client_id(profile);
    let callback = format!("{issuer}/demo/callback");
    let wanted = demo_client_metadata(issuer, &callback, jwks.clone(), profile);
    match lockspire.client(client_id).await? {
        Some((metadata, active)) => {
            // The issuer changed since the client was registered (a new port or host name: the
            // demo client is a web client, whose redirect URIs match exactly), or the client was
            // registered before it signed request objects.
            if metadata.match_redirect_uri(&callback).is_none()
                || metadata.jwks.as_ref() != Some(&jwks)
                || metadata.post_logout_redirect_uris != [sign_out::signed_out_url(issuer)]
                || !metadata.logout_revokes_offline_access
                || metadata.token_endpoint_auth_method.as_str()
                    != wanted["token_endpoint_auth_method"]
            {
                lockspire
                    .update_client(client_id, wanted)
                    .await
                    .context("re-registering the demo client for the new issuer")?;
                tracing::info!(redirect_uri = %callback, "updated the demo client's redirect URI");
            }
            if !active {
                tracing::warn!(client_id, "the demo client is disabled; /demo will fail");
            }
        }
        None => {
            let created = lockspire.create_client(Some(client_id), wanted).await;
            match created {
                Ok(_) => tracing::info!(client_id, "registered the demo client"),
                // Another demo process sharing the database registered it first.
                Err(_) if lockspire.client(client_id).await?.is_some() => {}
                Err(e) => return Err(e).context("registering the demo client"),
            }
        }
    }
    Ok(())
}

/// Registers the demo device client once: a public client of the device grant (RFC 8628).
async fn register_device_client(lockspire: &Lockspire) -> anyhow::Result<()> {
    if lockspire.client(DEMO_DEVICE_CLIENT_ID).await?.is_some() {
        return Ok(());
    }
    let metadata = json!({
        "client_name": "Lockspire demo TV",
        "token_endpoint_auth_method": "none",
        "grant_types": ["urn:ietf:params:oauth:grant-type:device_code"],
    });
    match lockspire
        .create_client(Some(DEMO_DEVICE_CLIENT_ID), metadata)
        .await
    {
        Ok(_) => tracing::info!(
            client_id = DEMO_DEVICE_CLIENT_ID,
            "registered the demo device"
        ),
        // Another demo process sharing the database registered it first.
        Err(_) if lockspire.client(DEMO_DEVICE_CLIENT_ID).await?.is_some() => {}
        Err(e) => return Err(e).context("registering the demo device client"),
    }
    Ok(())
}

/// Registers the demo bank once, and again when its key changed: a confidential client of the
/// CIBA grant's poll mode, authenticating with the demo's key (`private_key_jwt`).
async fn register_bank_client(
    lockspire: &Lockspire,
    jwks: serde_json::Value,
) -> anyhow::Result<()> {
    let metadata = json!({
        "client_name": "Lockspire demo bank",
        "token_endpoint_auth_method": "private_key_jwt",
        "grant_types": ["urn:openid:params:grant-type:ciba"],
        "backchannel_token_delivery_mode": "poll",
        "jwks": jwks,
    });
    match lockspire.client(DEMO_BANK_CLIENT_ID).await? {
        Some((registered, _)) if registered.jwks.as_ref() == Some(&jwks) => Ok(()),
        Some(_) => {
            lockspire
                .update_client(DEMO_BANK_CLIENT_ID, metadata)
                .await
                .context("re-registering the demo bank with the demo's key")?;
            Ok(())
        }
        None => match lockspire
            .create_client(Some(DEMO_BANK_CLIENT_ID), metadata)
            .await
        {
            Ok(_) => {
                tracing::info!(client_id = DEMO_BANK_CLIENT_ID, "registered the demo bank");
                Ok(())
            }
            // Another demo process sharing the database registered it first.
            Err(_) if lockspire.client(DEMO_BANK_CLIENT_ID).await?.is_some() => Ok(()),
            Err(e) => Err(e).context("registering the demo bank"),
        },
    }
}

/// The demo client: public (PKCE, no secret), code flow with refresh tokens; its `jwks` holds
/// the key its request objects are signed with. Under a FAPI 2.0 profile it is confidential
/// instead, authenticating with that key (`private_key_jwt`), and binds its tokens with DPoP.
fn demo_client_metadata(
    issuer: &str,
    callback: &str,
    jwks: serde_json::Value,
    profile: lockspire::SecurityProfile,
) -> serde_json::Value {
    let fapi = profile.is_fapi();
    json!({
        "client_name": "Lockspire demo relying party",
        "token_endpoint_auth_method": if fapi { "private_key_jwt" } else { "none" },
        "dpop_bound_access_tokens": fapi,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "redirect_uris": [callback],
        "post_logout_redirect_uris": [sign_out::signed_out_url(issuer)],
        // Its refresh tokens (offline_access) end with the session too: "sign out everywhere".
        "logout_revokes_offline_access": true,
        "jwks": jwks,
    })
}

/// Registers the demo forum, and again when the issuer changed: a public client (PKCE) of the
/// code flow whose back-channel logout URI is in this host. Its logout tokens come over
/// loopback http only in development mode; elsewhere the issuer is https.
async fn register_forum_client(lockspire: &Lockspire, issuer: &str) -> anyhow::Result<()> {
    let callback = forum::callback_url(issuer);
    let metadata = json!({
        "client_name": "Lockspire demo forum",
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code"],
        "redirect_uris": [callback],
        "backchannel_logout_uri": forum::backchannel_url(issuer),
        "backchannel_logout_session_required": true,
    });
    match lockspire.client(DEMO_FORUM_CLIENT_ID).await? {
        Some((registered, _)) if registered.match_redirect_uri(&callback).is_some() => Ok(()),
        Some(_) => {
            lockspire
                .update_client(DEMO_FORUM_CLIENT_ID, metadata)
                .await
                .context("re-registering the demo forum for the new issuer")?;
            Ok(())
        }
        None => match lockspire
            .create_client(Some(DEMO_FORUM_CLIENT_ID), metadata)
            .await
        {
            Ok(_) => {
                tracing::info!(
                    client_id = DEMO_FORUM_CLIENT_ID,
                    "registered the demo forum"
                );
                Ok(())
            }
            // Another demo process sharing the database registered it first.
            Err(_) if lockspire.client(DEMO_FORUM_CLIENT_ID).await?.is_some() => Ok(()),
            Err(e) => Err(e).context("registering the demo forum"),
        },
    }
}
