//! Talking to the provider before the load: discovery, registration, and the user flows the
//! scenarios that need a signed-in user start from.

use super::*;

pub(crate) struct Endpoints {
    pub(crate) token: String,
    pub(crate) introspection: Option<String>,
    pub(crate) jwks: String,
    pub(crate) discovery: String,
    pub(crate) userinfo: Option<String>,
    pub(crate) authorization: String,
    pub(crate) registration: Option<String>,
}

pub(crate) fn loopback_only(url: &str) -> anyhow::Result<()> {
    let host = url::Url::parse(url)?
        .host_str()
        .map(str::to_owned)
        .unwrap_or_default();
    if !matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]" | "::1") {
        bail!("refusing to load {host}: the load generator targets loopback only");
    }
    Ok(())
}

pub(crate) async fn endpoints(http: &Client, issuer: &str) -> anyhow::Result<Endpoints> {
    let discovery = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let doc: Value = http
        .get(&discovery)
        .send()
        .await?
        .json()
        .await
        .context("discovery")?;
    let field = |k: &str| doc[k].as_str().map(str::to_owned);
    for url in [field("token_endpoint"), field("jwks_uri")]
        .into_iter()
        .flatten()
    {
        loopback_only(&url)?;
    }
    Ok(Endpoints {
        token: field("token_endpoint").context("no token_endpoint")?,
        introspection: field("introspection_endpoint"),
        jwks: field("jwks_uri").context("no jwks_uri")?,
        userinfo: field("userinfo_endpoint"),
        authorization: field("authorization_endpoint").context("no authorization_endpoint")?,
        registration: field("registration_endpoint"),
        discovery,
    })
}

/// Registers a client at the provider's registration endpoint (open registration).
pub(crate) async fn register(
    http: &Client,
    endpoint: &str,
    body: Value,
) -> anyhow::Result<(String, Option<String>)> {
    let reg: Value = http.post(endpoint).json(&body).send().await?.json().await?;
    let id = reg["client_id"]
        .as_str()
        .context("registration returned no client_id")?
        .to_owned();
    Ok((id, reg["client_secret"].as_str().map(str::to_owned)))
}

pub(crate) async fn client_credentials(
    http: &Client,
    e: &Endpoints,
    (id, secret): &(String, String),
) -> anyhow::Result<String> {
    let resp: Value = http
        .post(&e.token)
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?
        .json()
        .await?;
    resp["access_token"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no token: {resp}"))
}

/// A token for the demo host's API (`{issuer}/api`, scope `profile`) by client credentials,
/// bound to `signer`'s key when given.
pub(crate) async fn api_token(
    http: &Client,
    e: &Endpoints,
    (id, secret): &(String, String),
    issuer: &str,
    signer: Option<&super::dpop::ProofSigner>,
) -> anyhow::Result<String> {
    let resource = format!("{}/api", issuer.trim_end_matches('/'));
    let mut request = http.post(&e.token).basic_auth(id, Some(secret)).form(&[
        ("grant_type", "client_credentials"),
        ("scope", "profile"),
        ("resource", resource.as_str()),
    ]);
    if let Some(signer) = signer {
        request = request.header("DPoP", signer.proof()?);
    }
    let resp: Value = request.send().await?.json().await?;
    resp["access_token"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no token for the API: {resp}"))
}

/// A signed-in browser for the Lockspire demo host and a public client with remembered consent.
pub(crate) struct UserFlow {
    pub(crate) browser: Client,
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
}

pub(crate) const REDIRECT: &str = "http://127.0.0.1:9/cb";

pub(crate) async fn user_flow(
    http: &Client,
    e: &Endpoints,
    target: &Target,
) -> anyhow::Result<UserFlow> {
    let registration = e
        .registration
        .as_deref()
        .context("user scenarios need open registration (the demo host has it)")?;
    let mut metadata = json!({"token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"],
               "redirect_uris": [REDIRECT], "application_type": "native"});
    if let Some(alg) = &target.id_token_alg {
        metadata["id_token_signed_response_alg"] = json!(alg);
    }
    let (client_id, _) = register(http, registration, metadata).await?;
    let origin = url::Url::parse(&target.issuer)?
        .origin()
        .ascii_serialization();
    let browser = Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    // The demo's sign-in form carries a token bound to the browser's session.
    let login_page = browser
        .get(format!("{origin}/login"))
        .send()
        .await?
        .text()
        .await?;
    let login = browser
        .post(format!("{origin}/login"))
        .form(&[
            ("username", target.user.0.as_str()),
            ("password", target.user.1.as_str()),
            ("form_token", &hidden_field(&login_page, "form_token")?),
        ])
        .send()
        .await?;
    if !login.status().is_redirection() {
        bail!("signing in at {origin}/login failed: {}", login.status());
    }
    let flow = UserFlow {
        browser,
        client_id,
        redirect_uri: REDIRECT.into(),
    };
    // Consent once, so later flows are remembered.
    let (_, challenge) = pkce();
    let resp = flow
        .browser
        .get(authorize_url(e, &flow, &challenge))
        .send()
        .await?;
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if location.contains("/consent?") {
        let page = flow.browser.get(&location).send().await?.text().await?;
        let consent_url = format!("{}/consent", target.issuer.trim_end_matches('/'));
        flow.browser
            .post(consent_url)
            .form(&[
                ("interaction", hidden_field(&page, "interaction")?),
                ("csrf", hidden_field(&page, "csrf")?),
                ("decision", "allow".into()),
            ])
            .send()
            .await?;
    }
    Ok(flow)
}

/// The value of the hidden form field `name` in a server-rendered page.
pub(crate) fn hidden_field(page: &str, name: &str) -> anyhow::Result<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .with_context(|| format!("no {name} field in the page"))?
        + marker.len();
    let len = page[start..]
        .find('"')
        .with_context(|| format!("unterminated {name} field"))?;
    Ok(page[start..start + len].to_owned())
}

pub(crate) fn pkce() -> (String, String) {
    let mut raw = [0u8; 32];
    let _ = aws_lc_rs::rand::fill(&mut raw);
    let verifier = URL_SAFE_NO_PAD.encode(raw);
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ));
    (verifier, challenge)
}

pub(crate) fn authorize_url(e: &Endpoints, flow: &UserFlow, challenge: &str) -> String {
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &flow.client_id)
        .append_pair("redirect_uri", &flow.redirect_uri)
        .append_pair("scope", "openid offline_access")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    format!("{}?{q}", e.authorization)
}

/// One full authorization: authorize (remembered consent) → code → token. Returns the tokens.
pub(crate) async fn code_flow(
    e: &Endpoints,
    flow: &UserFlow,
    token_client: &Client,
) -> anyhow::Result<Value> {
    let (verifier, challenge) = pkce();
    let resp = flow
        .browser
        .get(authorize_url(e, flow, &challenge))
        .send()
        .await?;
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .context("no redirect")?
        .to_owned();
    let code = url::Url::parse(&location)?
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .with_context(|| format!("no code in {location}"))?;
    let tokens: Value = token_client
        .post(&e.token)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", flow.redirect_uri.as_str()),
            ("code_verifier", verifier.as_str()),
            ("client_id", flow.client_id.as_str()),
        ])
        .send()
        .await?
        .json()
        .await?;
    if tokens.get("access_token").is_none() {
        bail!("token exchange failed: {tokens}");
    }
    Ok(tokens)
}
