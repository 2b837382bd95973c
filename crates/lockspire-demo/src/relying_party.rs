//! A tiny relying party (an OIDC client) living in the same process as the provider, so a
//! newcomer can watch a complete authorization code + PKCE flow.
//!
//! It deliberately talks to the provider the way a separate application would: over HTTP, with
//! discovery, the token endpoint, the JWKS and `/userinfo`, using the `openidconnect` crate to
//! verify the ID token. Nothing here calls Lockspire's Rust API.

use std::error::Error as StdError;

use askama::Template;
use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_login::tower_sessions::Session;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreRevocableToken, CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, TokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::form_urlencoded;

use crate::display::{pretty, redacted_tokens, truncate};
use crate::pages::{error_page, internal_error, render, see_other};
use crate::{AppState, random};

/// Session key of the flows in progress, oldest first: what the callback must check. Several,
/// so that `/demo` opened in two tabs completes in both.
const PENDING_KEY: &str = "demo_rp.pending";

/// Most flows in progress kept per browser; starting another forgets the oldest.
const MAX_PENDING: usize = 4;

/// What the demo client asks for: identity, profile, email, and a refresh token.
const SCOPES: &str = "openid profile email offline_access";

/// Token response members beyond OpenID Connect's that the demo shows: what the access token is
/// authorized for beyond scopes (RFC 9396 §7), which the standard response type would drop.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
struct GrantedDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    authorization_details: Option<Value>,
}

impl openidconnect::ExtraTokenFields for GrantedDetails {}

/// The token response with [`GrantedDetails`].
type DemoTokenResponse = openidconnect::StandardTokenResponse<
    openidconnect::IdTokenFields<
        openidconnect::EmptyAdditionalClaims,
        GrantedDetails,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

/// The core OpenID Connect client, reading [`DemoTokenResponse`]s.
type DemoClient<
    HasAuthUrl = openidconnect::EndpointNotSet,
    HasTokenUrl = openidconnect::EndpointNotSet,
    HasUserInfoUrl = openidconnect::EndpointNotSet,
> = openidconnect::Client<
    openidconnect::EmptyAdditionalClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    openidconnect::StandardErrorResponse<CoreErrorResponseType>,
    DemoTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    HasAuthUrl,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    HasTokenUrl,
    HasUserInfoUrl,
>;

/// The secrets of one authorization request, kept server-side until the callback.
#[derive(Serialize, Deserialize)]
struct PendingLogin {
    /// CSRF protection for the redirect back (RFC 6749 §10.12).
    state: String,
    /// Binds the ID token to this request (OIDC Core §3.1.2.1).
    nonce: String,
    /// PKCE: proves at the token endpoint that we started this flow (RFC 7636).
    verifier: String,
    /// The authorization request as sent, shown on the result page. Absent in sessions
    /// written before it was kept.
    #[serde(default)]
    authorize_url: String,
    /// With a pushed request (RFC 9126): where it was pushed and its parameters, for the
    /// result page.
    #[serde(default)]
    pushed: Option<(String, Vec<(String, String)>)>,
    /// With a signed request object (RFC 9101): its header and claims, for the result page.
    #[serde(default)]
    request_object: Option<(String, String)>,
}

/// The ways `/demo` can run the flow.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// The parameters in the browser's query.
    Plain,
    /// Pushed first (RFC 9126).
    Pushed,
    /// Pushed first, as one request object the client signed (RFC 9126 with RFC 9101).
    SignedAndPushed,
    /// The response as one signed JWT (JARM).
    Jarm,
    /// With `authorization_details` (RFC 9396) of the demo's `account_information` type.
    Rich,
}

/// What the `account_information` example asks for.
const ACCOUNT_INFORMATION: &str =
    r#"[{"type":"account_information","actions":["list_accounts","read_balances"]}]"#;

/// How long a request object the demo signs is valid: it is used at once.
const REQUEST_OBJECT_LIFETIME: i64 = 60;

/// `/demo`'s query: `?via=par` pushes the authorization request first (RFC 9126);
/// `?via=signed-par` pushes it as a request object the client signed (RFC 9101); `?via=jarm`
/// asks for the response as a signed JWT (JARM, `response_mode=query.jwt`); `?via=rar` adds
/// `authorization_details` (RFC 9396).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct StartQuery {
    via: Option<String>,
}

/// The demo client's registered redirect URI.
fn callback_url(issuer: &str) -> String {
    format!("{issuer}/demo/callback")
}

/// `GET /demo`: starts a flow and sends the browser to `/authorize`; with `?via=par` the client
/// pushes the request to the provider first and sends the browser with its `request_uri` only.
pub(crate) async fn start(
    State(app): State<AppState>,
    Extension(session): Extension<Session>,
    query: Result<Query<StartQuery>, QueryRejection>,
) -> Response {
    let variant = match query.as_ref().map(|Query(q)| q.via.as_deref()) {
        Ok(None) => Variant::Plain,
        Ok(Some("par")) => Variant::Pushed,
        Ok(Some("signed-par")) => Variant::SignedAndPushed,
        Ok(Some("jarm")) => Variant::Jarm,
        Ok(Some("rar")) => Variant::Rich,
        _ => {
            return Failure::request(
                "Unknown option",
                "Use /demo, /demo?via=par to push the request first, /demo?via=signed-par to push it as a signed request object, /demo?via=jarm for a signed response, or /demo?via=rar to ask for authorization details.",
            )
            .into_response();
        }
    };
    // 32 random bytes each, base64url: a 43-character PKCE verifier, state and nonce.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut pending = PendingLogin {
        state: CsrfToken::new_random().secret().clone(),
        nonce: Nonce::new_random().secret().clone(),
        verifier: verifier.secret().clone(),
        authorize_url: String::new(),
        pushed: None,
        request_object: None,
    };
    let params: Vec<(String, String)> = [
        ("response_type", "code"),
        ("client_id", app.client_id),
        ("redirect_uri", &callback_url(&app.issuer)),
        ("scope", SCOPES),
        ("state", &pending.state),
        ("nonce", &pending.nonce),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        // RFC 8707: the token is for the host's own API, which checks it is its audience.
        (
            "resource",
            &format!("{}{}", app.issuer, crate::api::API_PATH),
        ),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .chain((variant == Variant::Jarm).then(|| ("response_mode".to_owned(), "query.jwt".to_owned())))
    .chain((variant == Variant::Rich).then(|| {
        (
            "authorization_details".to_owned(),
            ACCOUNT_INFORMATION.to_owned(),
        )
    }))
    .collect();
    // FAPI 2.0: every request is pushed; under Message Signing, as a signed request object
    // (and the response comes back as JARM, the server's default there).
    let signed = variant == Variant::SignedAndPushed || app.profile.signs_messages();
    let pushed =
        matches!(variant, Variant::Pushed | Variant::SignedAndPushed) || app.profile.is_fapi();
    let params = if signed {
        match request_object(&app, &params) {
            Ok((jwt, shown)) => {
                pending.request_object = Some(shown);
                vec![
                    ("client_id".to_owned(), app.client_id.to_owned()),
                    ("request".to_owned(), jwt),
                ]
            }
            Err(failure) => return failure.into_response(),
        }
    } else {
        params
    };
    let browser_params = if pushed {
        let (endpoint, request_uri) = match push(&app, &params).await {
            Ok(answer) => answer,
            Err(failure) => return failure.into_response(),
        };
        pending.pushed = Some((endpoint, params));
        vec![
            ("client_id".to_owned(), app.client_id.to_owned()),
            ("request_uri".to_owned(), request_uri),
        ]
    } else {
        params
    };
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&browser_params)
        .finish()
        // Form encoding writes spaces as '+' (and a literal '+' as %2B); %20 reads better in
        // the address bar and means the same.
        .replace('+', "%20");
    pending.authorize_url = format!("{}/authorize?{query}", app.issuer);
    let location = pending.authorize_url.clone();
    let mut all: Vec<PendingLogin> = match session.get(PENDING_KEY).await {
        Ok(all) => all.unwrap_or_default(),
        Err(e) => return internal_error("Reading the session failed", &e),
    };
    all.push(pending);
    if all.len() > MAX_PENDING {
        all.remove(0);
    }
    if let Err(e) = session.insert(PENDING_KEY, &all).await {
        return internal_error("Saving the sign-in request failed", &e);
    }
    see_other(&location)
}

/// The request as one JWT the client signs (RFC 9101 §4): every parameter as a claim, with
/// `iss` the client, `aud` the provider, a short `exp` and a fresh `jti`. Returns the JWT and
/// its header and claims, pretty-printed for the result page.
fn request_object(
    app: &AppState,
    params: &[(String, String)],
) -> Result<(String, (String, String)), Failure> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut claims = serde_json::Map::new();
    for (name, value) in params {
        claims.insert(name.clone(), Value::String(value.clone()));
    }
    claims.insert("iss".into(), app.client_id.into());
    claims.insert("aud".into(), app.issuer.to_string().into());
    claims.insert("iat".into(), now.into());
    claims.insert("nbf".into(), now.into());
    claims.insert("exp".into(), (now + REQUEST_OBJECT_LIFETIME).into());
    claims.insert(
        "jti".into(),
        CsrfToken::new_random().secret().clone().into(),
    );
    let claims = Value::Object(claims);
    let jwt = app
        .client_key
        .sign(&claims)
        .map_err(|e| Failure::internal("Signing the request object failed", &e))?;
    let header = jsonwebtoken::decode_header(&jwt)
        .map_err(|e| Failure::internal("Reading the request object back failed", &e))?;
    Ok((
        jwt,
        (
            serde_json::to_string_pretty(&header).unwrap_or_default(),
            serde_json::to_string_pretty(&claims).unwrap_or_default(),
        ),
    ))
}

/// The provider's metadata (OpenID Connect Discovery §4), as JSON: the fields the demo reads
/// beyond what the client library knows.
async fn discovery(app: &AppState) -> Result<Value, Failure> {
    app.http
        .get(format!("{}/.well-known/openid-configuration", app.issuer))
        .send()
        .await
        .map_err(|e| Failure::provider("Discovery failed", &e))?
        .json()
        .await
        .map_err(|e| Failure::provider("Discovery failed", &e))
}

/// How the demo client authenticates at the provider's back channel: as a public client, by
/// its `client_id` alone; under FAPI 2.0 with a `private_key_jwt` assertion (RFC 7523 §2.2)
/// signed with its key, whose `aud` is the issuer (FAPI 2.0 §5.3.2.1).
fn client_authentication(app: &AppState) -> Result<Vec<(String, String)>, Failure> {
    if !app.profile.is_fapi() {
        return Ok(Vec::new());
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = serde_json::json!({
        "iss": app.client_id,
        "sub": app.client_id,
        "aud": &*app.issuer,
        "jti": CsrfToken::new_random().secret(),
        "iat": now,
        "exp": now + 60,
    });
    let assertion = app
        .client_key
        .sign(&claims)
        .map_err(|e| Failure::internal("Signing the client assertion failed", &e))?;
    Ok(vec![
        (
            "client_assertion_type".to_owned(),
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
        ),
        ("client_assertion".to_owned(), assertion),
    ])
}

/// Pushes the authorization request (RFC 9126 §2) to the endpoint discovery names, as a
/// public client identified by its `client_id` (under FAPI 2.0 with its assertion); returns the
/// endpoint and the `request_uri`.
async fn push(app: &AppState, params: &[(String, String)]) -> Result<(String, String), Failure> {
    let discovery = discovery(app).await?;
    let endpoint = discovery
        .get("pushed_authorization_request_endpoint")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            Failure::provider_msg(
                "No pushed authorization request endpoint",
                "Discovery lists no pushed_authorization_request_endpoint.",
            )
        })?
        .to_owned();
    let mut form = params.to_vec();
    form.extend(client_authentication(app)?);
    let response = app
        .http
        .post(&endpoint)
        .form(&form)
        .send()
        .await
        .map_err(|e| Failure::provider("The pushed authorization request failed", &e))?;
    let status = response.status();
    let answer: Value = response
        .json()
        .await
        .map_err(|e| Failure::provider("The pushed authorization request failed", &e))?;
    match answer.get("request_uri").and_then(Value::as_str) {
        Some(request_uri) if status == StatusCode::CREATED => {
            Ok((endpoint, request_uri.to_owned()))
        }
        _ => Err(Failure::provider_msg(
            "The pushed authorization request failed",
            format!("HTTP {status}: {answer}"),
        )),
    }
}

/// What the provider appends to the redirect URI (RFC 6749 §4.1.2, RFC 9207).
#[derive(Debug, Deserialize)]
pub(crate) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    /// JARM: the whole response as one signed JWT.
    response: Option<String>,
}

/// A JARM response, verified: its claims as the callback's parameters, and its decoded header
/// and claims for the result page.
struct JarmResponse {
    query: CallbackQuery,
    header: String,
    claims: String,
}

/// Verifies a JARM response JWT (JARM §2.4): the provider's signature from its published keys,
/// `iss` the provider, `aud` this client, `exp` in the future.
async fn verify_jarm(app: &AppState, jwt: &str) -> Result<JarmResponse, Failure> {
    let claims = verify_provider_jwt(app, jwt, app.client_id, "JWT")
        .await
        .map_err(|e| Failure::provider_msg("The signed response is invalid", e))?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    let mut shown = claims.clone();
    if let Some(Value::String(code)) = shown.get_mut("code") {
        *code = truncate(code);
    }
    Ok(JarmResponse {
        query: CallbackQuery {
            code: text("code"),
            state: text("state"),
            iss: text("iss"),
            error: text("error"),
            error_description: text("error_description"),
            response: None,
        },
        header: jose_header(jwt),
        claims: pretty(&shown),
    })
}

/// Verifies a JWT the provider signed for the client `audience`: of type `typ`, signed with RS256
/// (the alg the demo's clients get, registering none) by a key the provider publishes, its
/// `iss` the provider and `exp` in the future. Returns its claims.
pub(crate) async fn verify_provider_jwt(
    app: &AppState,
    jwt: &str,
    audience: &str,
    typ: &str,
) -> Result<Value, String> {
    let header = jsonwebtoken::decode_header(jwt).map_err(|e| e.to_string())?;
    // The alg the demo client registered: the default, RS256, or under FAPI 2.0 (which allows
    // no RS256) the default registration gives then, ES256.
    let expected = if app.profile.is_fapi() {
        jsonwebtoken::Algorithm::ES256
    } else {
        jsonwebtoken::Algorithm::RS256
    };
    if header.alg != expected {
        return Err(format!("signed with {:?}, not {expected:?}", header.alg));
    }
    // The provider signs several kinds of JWT with the same keys; the type tells them apart.
    if header.typ.as_deref() != Some(typ) {
        return Err(format!("of type {:?}, not {typ}", header.typ));
    }
    let discovery: Value = app
        .http
        .get(format!("{}/.well-known/openid-configuration", app.issuer))
        .send()
        .await
        .map_err(|e| format!("discovery failed: {e}"))?
        .json()
        .await
        .map_err(|e| format!("discovery failed: {e}"))?;
    let jwks_uri = discovery
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or("discovery lists no jwks_uri")?;
    let jwks: jsonwebtoken::jwk::JwkSet = app
        .http
        .get(jwks_uri)
        .send()
        .await
        .map_err(|e| format!("fetching the provider's keys failed: {e}"))?
        .json()
        .await
        .map_err(|e| format!("fetching the provider's keys failed: {e}"))?;
    let jwk = header
        .kid
        .as_deref()
        .and_then(|kid| jwks.find(kid))
        .ok_or("no published key has the JWT's kid")?;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = jsonwebtoken::Validation::new(expected);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[&*app.issuer]);
    jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| e.to_string())
}

/// Why the callback could not finish, shown as a page.
struct Failure {
    status: StatusCode,
    title: &'static str,
    detail: String,
}

impl Failure {
    /// The request reaching the callback is wrong.
    fn request(title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            title,
            detail: detail.into(),
        }
    }

    /// The demo itself failed.
    fn internal(title: &'static str, error: &dyn StdError) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            title,
            detail: describe(error),
        }
    }

    /// The provider answered something the client cannot accept.
    fn provider(title: &'static str, error: &dyn StdError) -> Self {
        Self {
            status: StatusCode::BAD_GATEWAY,
            title,
            detail: describe(error),
        }
    }

    /// The provider answered something the client cannot accept, described in words.
    fn provider_msg(title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_GATEWAY,
            title,
            detail: detail.into(),
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        tracing::warn!(title = self.title, detail = %self.detail, "demo client callback failed");
        error_page(self.status, self.title, &self.detail)
    }
}

/// An error with its causes, which is where reqwest and openidconnect put the useful part.
fn describe(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The result page: the outcome, and each request of the flow as it went over the wire, so a
/// newcomer can follow the protocol (OIDC Core §3.1) step by step.
#[derive(Template)]
#[template(path = "result.html")]
struct ResultPage {
    name: String,
    subject: String,
    /// Under a FAPI 2.0 profile: the client authenticated with its key and bound its tokens
    /// with DPoP from the first one.
    fapi: bool,
    /// Under FAPI 2.0 Message Signing: JARM is the server's default.
    signs: bool,
    /// Step 3, with a JARM response: its JOSE header and its claims (the code shortened);
    /// empty otherwise.
    jarm_header: String,
    jarm_claims: String,
    /// Step 1, with a signed request object: its JOSE header and claims (RFC 9101); empty
    /// otherwise.
    request_object_header: String,
    request_object_claims: String,
    /// Step 1, with a pushed request: where it was pushed and its parameters (RFC 9126);
    /// empty otherwise.
    par_endpoint: String,
    pushed_params: Vec<(String, String)>,
    /// Step 1: the authorization request's parameters, in the order they were sent.
    authorize_endpoint: String,
    authorize_params: Vec<(String, String)>,
    /// Step 2: seconds between the sign-in (`auth_time`) and this page, if the ID token says.
    signed_in_ago: Option<i64>,
    /// Step 3: the redirect back, with the code shortened.
    callback_params: Vec<(&'static str, String)>,
    /// Step 4.
    token_endpoint: String,
    token_response: String,
    /// Step 5.
    jwks_uri: String,
    id_token_header: String,
    id_token_claims: String,
    /// Step 6.
    userinfo_endpoint: String,
    userinfo: String,
    /// Step 7: the host's API called with the access token as a bearer token.
    api_resource: String,
    api_url: String,
    api_bearer: crate::dpop_client::Shown,
    /// Step 8: a refresh with a DPoP proof, the key's thumbprint, and the API called with the
    /// bound token and a proof.
    dpop_refresh: crate::dpop_client::Shown,
    dpop_jkt: String,
    api_dpop: crate::dpop_client::Shown,
    api_dpop_as_bearer: crate::dpop_client::Shown,
    /// The sign-out form's token (see `forms`).
    form_token: String,
}

/// `GET /demo/callback`: checks the response, redeems the code, verifies the ID token and
/// calls `/userinfo`.
pub(crate) async fn callback(
    State(app): State<AppState>,
    Extension(session): Extension<Session>,
    query: Result<Query<CallbackQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return Failure::request(
            "Malformed callback",
            "The redirect back from the provider could not be parsed.",
        )
        .into_response();
    };
    match finish(&app, &session, query).await {
        Ok(page) => render(StatusCode::OK, &page),
        Err(failure) => failure.into_response(),
    }
}

/// The callback's checks and HTTP calls, in the order a careful client makes them.
async fn finish(
    app: &AppState,
    session: &Session,
    query: CallbackQuery,
) -> Result<ResultPage, Failure> {
    // JARM: the parameters are claims of one signed JWT, believed only once it verifies.
    let (query, jarm) = match query.response.clone() {
        Some(jwt) => {
            let verified = verify_jarm(app, &jwt).await?;
            (verified.query, Some((verified.header, verified.claims)))
        }
        None => (query, None),
    };
    // The flow this response answers, found by its state and taken out of the session, so a
    // replayed callback finds nothing to complete.
    let mut all: Vec<PendingLogin> = session
        .get(PENDING_KEY)
        .await
        .map_err(|e| Failure::internal("Reading the session failed", &e))?
        .unwrap_or_default();
    if all.is_empty() {
        return Err(Failure::request(
            "No sign-in in progress",
            "This browser has no pending sign-in: it was completed already, or the session \
             expired. Start again at /demo.",
        ));
    }
    let found = query.state.as_deref().and_then(|state| {
        all.iter()
            .position(|p| random::constant_time_eq(state, &p.state))
    });
    let Some(index) = found else {
        return Err(Failure::request(
            "State mismatch",
            "The response does not belong to a request this browser made (RFC 6749 §10.12).",
        ));
    };
    let pending = all.remove(index);
    session
        .insert(PENDING_KEY, &all)
        .await
        .map_err(|e| Failure::internal("Writing the session failed", &e))?;
    // RFC 9207: the response names its issuer, which defeats mix-up attacks.
    if query.iss.as_deref() != Some(&*app.issuer) {
        return Err(Failure::request(
            "Unexpected issuer",
            format!(
                "The response says it comes from {:?}, not {}.",
                query.iss.as_deref().unwrap_or("(no iss parameter)"),
                app.issuer
            ),
        ));
    }
    if let Some(error) = query.error {
        return Err(Failure::request(
            "The provider refused the request",
            match query.error_description {
                Some(d) => format!("{error}: {d}"),
                None => error,
            },
        ));
    }
    let code = query.code.ok_or_else(|| {
        Failure::request("No code", "The response carries no authorization code.")
    })?;
    let callback_params = vec![
        ("code", truncate(&code)),
        ("state", pending.state.clone()),
        ("iss", app.issuer.to_string()),
    ];

    let issuer_url = IssuerUrl::new(app.issuer.to_string())
        .map_err(|e| Failure::internal("The issuer is not a URL", &e))?;
    // Discovery also fetches the JWKS the ID token is verified against.
    let metadata = CoreProviderMetadata::discover_async(issuer_url, &app.http)
        .await
        .map_err(|e| Failure::provider("Discovery failed", &e))?;
    let userinfo_url = metadata.userinfo_endpoint().map(|u| u.url().clone());
    let token_endpoint = metadata
        .token_endpoint()
        .map(|u| u.url().to_string())
        .unwrap_or_default();
    let jwks_uri = metadata.jwks_uri().url().to_string();
    let redirect = RedirectUrl::new(callback_url(&app.issuer))
        .map_err(|e| Failure::internal("The redirect URI is not a URL", &e))?;
    let client =
        DemoClient::from_provider_metadata(metadata, ClientId::new(app.client_id.into()), None)
            .set_redirect_uri(redirect);

    // Under FAPI 2.0 the token is bound to a DPoP key made for this flow (RFC 9449), and the
    // client authenticates with its assertion: a request the client library does not make.
    let dpop_key = if app.profile.is_fapi() {
        Some(
            crate::dpop_client::DpopKey::generate()
                .map_err(|e| Failure::provider_msg("Making a DPoP key failed", format!("{e:#}")))?,
        )
    } else {
        None
    };
    let token: DemoTokenResponse = match &dpop_key {
        None => client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| Failure::provider("No token endpoint", &e))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier))
            .request_async(&app.http)
            .await
            .map_err(|e| Failure::provider("The token request failed", &e))?,
        Some(key) => {
            let mut form = vec![
                ("grant_type".to_owned(), "authorization_code".to_owned()),
                ("code".to_owned(), code),
                ("redirect_uri".to_owned(), callback_url(&app.issuer)),
                ("code_verifier".to_owned(), pending.verifier),
                ("client_id".to_owned(), app.client_id.to_owned()),
            ];
            form.extend(client_authentication(app)?);
            let proof = key.proof("POST", &token_endpoint, None).map_err(|e| {
                Failure::provider_msg("Making a DPoP proof failed", format!("{e:#}"))
            })?;
            let response = app
                .http
                .post(&token_endpoint)
                .header("DPoP", proof)
                .form(&form)
                .send()
                .await
                .map_err(|e| Failure::provider("The token request failed", &e))?;
            let status = response.status();
            let body = response
                .text()
                .await
                .map_err(|e| Failure::provider("The token request failed", &e))?;
            if !status.is_success() {
                return Err(Failure::provider_msg(
                    "The token request failed",
                    format!("HTTP {status}: {body}"),
                ));
            }
            serde_json::from_str(&body)
                .map_err(|e| Failure::provider("The token response is malformed", &e))?
        }
    };

    let id_token = token.id_token().ok_or_else(|| {
        Failure::provider_msg("No ID token", "The token response has no id_token.")
    })?;
    // Signature against the JWKS, iss, aud, exp, iat and nonce. Under FAPI 2.0 the ID token is
    // signed with one of its algs (ES256, registration's default), never RS256.
    let verifier = client.id_token_verifier();
    let verifier = if app.profile.is_fapi() {
        verifier.set_allowed_algs([
            openidconnect::core::CoreJwsSigningAlgorithm::EcdsaP256Sha256,
            openidconnect::core::CoreJwsSigningAlgorithm::RsaSsaPssSha256,
            openidconnect::core::CoreJwsSigningAlgorithm::EdDsa,
        ])
    } else {
        verifier
    };
    let claims = id_token
        .claims(&verifier, &Nonce::new(pending.nonce))
        .map_err(|e| Failure::provider("The ID token is invalid", &e))?;
    // OIDC Core §3.1.3.8: at_hash ties the access token to this ID token.
    if let Some(expected) = claims.access_token_hash() {
        let alg = id_token
            .signing_alg()
            .map_err(|e| Failure::provider("The ID token is invalid", &e))?;
        let key = id_token
            .signing_key(&verifier)
            .map_err(|e| Failure::provider("The ID token is invalid", &e))?;
        let actual = AccessTokenHash::from_token(token.access_token(), alg, key)
            .map_err(|e| Failure::provider("The ID token is invalid", &e))?;
        if actual != *expected {
            return Err(Failure::provider_msg(
                "The ID token is invalid",
                "at_hash does not match the access token.",
            ));
        }
    }
    // Kept for RP-initiated logout, whose `id_token_hint` it is.
    session
        .insert(crate::sign_out::ID_TOKEN_KEY, id_token.to_string())
        .await
        .map_err(|e| Failure::internal("Saving the session failed", &e))?;
    let form_token = crate::forms::token(session)
        .await
        .map_err(|e| Failure::internal("Saving the session failed", &e))?;
    let subject = claims.subject().as_str().to_owned();
    let signed_in_ago = claims
        .auth_time()
        .map(|at| time::OffsetDateTime::now_utc().unix_timestamp() - at.timestamp());

    let userinfo_url = userinfo_url.ok_or_else(|| {
        Failure::provider_msg(
            "No UserInfo endpoint",
            "Discovery lists no userinfo_endpoint.",
        )
    })?;
    let userinfo_endpoint = userinfo_url.to_string();
    let access_token = token.access_token().secret();
    let request = match &dpop_key {
        None => app.http.get(userinfo_url).bearer_auth(access_token),
        Some(key) => {
            let proof = key
                .proof("GET", userinfo_url.as_str(), Some(access_token))
                .map_err(|e| {
                    Failure::provider_msg("Making a DPoP proof failed", format!("{e:#}"))
                })?;
            app.http
                .get(userinfo_url)
                .header("Authorization", format!("DPoP {access_token}"))
                .header("DPoP", proof)
        }
    };
    let response = request
        .send()
        .await
        .map_err(|e| Failure::provider("The UserInfo request failed", &e))?;
    let status = response.status();
    let userinfo: Value = response
        .json()
        .await
        .map_err(|e| Failure::provider("The UserInfo response is not JSON", &e))?;
    if !status.is_success() {
        return Err(Failure::provider_msg(
            "The UserInfo request failed",
            format!("HTTP {status}: {userinfo}"),
        ));
    }
    // OIDC Core §5.3.4: a different sub means the response is about someone else.
    if userinfo.get("sub").and_then(Value::as_str) != Some(subject.as_str()) {
        return Err(Failure::provider_msg(
            "UserInfo is about someone else",
            "The UserInfo sub does not match the ID token's.",
        ));
    }

    let refresh_token = token.refresh_token().ok_or_else(|| {
        Failure::provider_msg(
            "No refresh token",
            "The token response has no refresh_token.",
        )
    })?;
    let api = crate::dpop_client::api_steps(
        &app.http,
        &app.issuer,
        &token_endpoint,
        token.access_token().secret(),
        refresh_token.secret(),
        crate::dpop_client::Refresher {
            client_id: app.client_id,
            authentication: client_authentication(app)?,
            key: dpop_key,
        },
    )
    .await
    .map_err(|e| Failure::provider_msg("Calling the API failed", format!("{e:#}")))?;

    let (authorize_endpoint, authorize_params) = request_parts(&pending.authorize_url);
    let (par_endpoint, pushed_params) = pending.pushed.unwrap_or_default();
    let (jarm_header, jarm_claims) = jarm.unwrap_or_default();
    let (request_object_header, request_object_claims) = pending.request_object.unwrap_or_default();
    Ok(ResultPage {
        fapi: app.profile.is_fapi(),
        signs: app.profile.signs_messages(),
        jarm_header,
        jarm_claims,
        request_object_header,
        request_object_claims,
        par_endpoint,
        pushed_params,
        name: userinfo
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or(&subject)
            .to_owned(),
        authorize_endpoint,
        authorize_params,
        signed_in_ago,
        callback_params,
        token_endpoint,
        token_response: redacted_token_response(&token),
        jwks_uri,
        id_token_header: jose_header(&id_token.to_string()),
        id_token_claims: jose_claims(&id_token.to_string()),
        userinfo_endpoint,
        userinfo: pretty(&userinfo),
        api_resource: api.resource,
        api_url: api.url,
        api_bearer: api.bearer,
        dpop_refresh: api.refresh,
        dpop_jkt: api.jkt,
        api_dpop: api.dpop,
        api_dpop_as_bearer: api.dpop_as_bearer,
        subject,
        form_token,
    })
}

/// A URL split into its address and its query parameters, for display.
fn request_parts(url: &str) -> (String, Vec<(String, String)>) {
    let Ok(url) = url::Url::parse(url) else {
        return (String::new(), Vec::new());
    };
    let params = url.query_pairs().into_owned().collect();
    let mut endpoint = url;
    endpoint.set_query(None);
    (endpoint.to_string(), params)
}

/// The decoded JOSE header of a compact JWS (RFC 7515 §7.1): which key and algorithm signed it.
/// The signature itself was checked by the verifier; this is for display only.
fn jose_header(compact: &str) -> String {
    jose_part(compact, 0)
}

/// The decoded payload of a compact JWS whose signature was checked: every claim, those the
/// client library has no field for (such as `sid`) included. For display only.
fn jose_claims(compact: &str) -> String {
    jose_part(compact, 1)
}

fn jose_part(compact: &str, index: usize) -> String {
    let part = compact
        .split('.')
        .nth(index)
        .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
    match part {
        Some(part) => pretty(&part),
        None => "(not displayable)".to_owned(),
    }
}

/// The token response with its bearer secrets shortened: a page is no place for live tokens.
fn redacted_token_response(token: &DemoTokenResponse) -> String {
    match serde_json::to_value(token) {
        Ok(value) => redacted_tokens(value),
        Err(e) => format!("(not displayable: {e})"),
    }
}
