//! The authorization endpoint (RFC 6749 §3.1, §4.1.1; OIDC Core §3.1.2).
//!
//! Validation order matters: until the client and the redirect URI are both verified, an error
//! is shown to the user and never redirected (RFC 6749 §4.1.2.1, RFC 9700 §4.11); after that,
//! errors go back to the client's verified redirect URI with `state` and `iss` (RFC 9207).
//! [`validate`] reads as the list of checks in that order.

use serde::{Deserialize, Serialize};
use serde_json::Value;

mod checks;
mod sources;

pub(crate) use checks::{
    REQUEST_BY_REFERENCE, REQUEST_BY_VALUE, check_id_token_hint, check_resources, check_scope,
};
use checks::{
    check_authorization_details, check_claims, check_dpop_jkt, check_max_age, check_prompt,
    check_response_type, check_unsupported_parameters,
};
pub(crate) use sources::{REQUEST_URI_PREFIX, parameters};

use super::params::ParameterSource;
use super::pkce::CodeChallenge;
use crate::jose::jwe;
use crate::jose::{ContentEncryptionAlg, KeyManagementAlg, SigningAlg};
use crate::model::authorization_details::AuthorizationDetails;
use crate::model::client::ClientId;
use crate::model::profile::SecurityProfile;
use crate::model::scope::ScopeSet;
use crate::protocol::endpoints::Endpoint;
use crate::protocol::error::{ErrorCode, OAuthError};
use crate::protocol::provider::Provider;
use crate::store::{ClientRecord, ClientStatus};

/// How the authorization response reaches the client (OAuth 2.0 Multiple Response Types §2.1,
/// Form Post Response Mode, and JARM §2.3: the same three, carrying one signed JWT).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ResponseMode {
    /// Parameters in the redirect URI's query (the default for `code`).
    Query,
    /// Parameters in the redirect URI's fragment.
    Fragment,
    /// An auto-submitting HTML form POSTed to the redirect URI.
    FormPost,
    /// JARM: the response as a JWT in the query (also what `jwt` means for `code`, §2.3.4).
    #[serde(rename = "query.jwt")]
    QueryJwt,
    /// JARM: the response as a JWT in the fragment.
    #[serde(rename = "fragment.jwt")]
    FragmentJwt,
    /// JARM: the response as a JWT in an auto-submitting form.
    #[serde(rename = "form_post.jwt")]
    FormPostJwt,
}

impl ResponseMode {
    pub(crate) const SUPPORTED: [&'static str; 7] = [
        "query",
        "fragment",
        "form_post",
        "jwt",
        "query.jwt",
        "fragment.jwt",
        "form_post.jwt",
    ];

    fn parse(s: &str) -> Option<Self> {
        match s {
            "query" => Some(Self::Query),
            "fragment" => Some(Self::Fragment),
            "form_post" => Some(Self::FormPost),
            "jwt" | "query.jwt" => Some(Self::QueryJwt),
            "fragment.jwt" => Some(Self::FragmentJwt),
            "form_post.jwt" => Some(Self::FormPostJwt),
            _ => None,
        }
    }

    /// How the parameters travel, signed or not.
    pub(crate) fn delivery(self) -> Self {
        match self {
            Self::QueryJwt => Self::Query,
            Self::FragmentJwt => Self::Fragment,
            Self::FormPostJwt => Self::FormPost,
            plain => plain,
        }
    }

    /// Whether the response is one signed JWT (JARM).
    pub(crate) fn is_jwt(self) -> bool {
        self.delivery() != self
    }
}

/// A redirect URI that has been matched against the client's registration. Only this module
/// builds one, so nothing can redirect to an unverified URI.
#[derive(Clone, Debug)]
pub(crate) struct VerifiedRedirect {
    uri: String,
    mode: ResponseMode,
    state: Option<String>,
    /// The client the response is for: a JARM response's audience.
    client_id: ClientId,
    /// The alg a JARM response is signed with (JARM §3, `authorization_signed_response_alg`).
    signing_alg: SigningAlg,
    /// How a JARM response is then encrypted to the client, when it registered that (JARM §3).
    encryption: Option<(KeyManagementAlg, ContentEncryptionAlg)>,
}

impl VerifiedRedirect {
    /// The redirect to `uri`, already matched against `client`'s registration, with the
    /// request's `response_mode` and `state`. An unsupported `response_mode` answers in the
    /// query, and is returned as `None` for the caller to refuse there. Under FAPI 2.0 Message
    /// Signing (§5.4) every response is a JARM response: `query.jwt` when none is asked for, and
    /// a plain mode is refused in `query.jwt`.
    fn new(
        client: &ClientRecord,
        uri: String,
        params: &dyn ParameterSource,
        profile: SecurityProfile,
    ) -> (Self, Option<ResponseMode>) {
        let default = if profile.signs_messages() {
            ResponseMode::QueryJwt
        } else {
            ResponseMode::Query
        };
        let mode = params
            .get("response_mode")
            .ok()
            .flatten()
            .map_or(Some(default), ResponseMode::parse)
            .filter(|m| m.is_jwt() || !profile.signs_messages());
        let state = params
            .get("state")
            .ok()
            .flatten()
            .filter(|s| s.len() <= MAX_STATE)
            .map(str::to_owned);
        let redirect = Self {
            uri,
            mode: mode.unwrap_or(default),
            state,
            client_id: client.client_id.clone(),
            signing_alg: client.metadata.authorization_alg(),
            encryption: client.metadata.authorization_encryption(),
        };
        (redirect, mode)
    }

    pub(crate) fn uri(&self) -> &str {
        &self.uri
    }

    pub(crate) fn mode(&self) -> ResponseMode {
        self.mode
    }
}

/// An authorization error: shown directly, or sent to a verified redirect URI.
#[derive(Debug)]
pub(crate) enum AuthorizeError {
    /// Shown to the user; never redirected (RFC 6749 §4.1.2.1).
    Direct(OAuthError),
    /// Sent to a redirect URI that has been verified (boxed: errors travel up many frames).
    Redirect(Box<VerifiedRedirect>, OAuthError),
}

impl From<OAuthError> for AuthorizeError {
    fn from(e: OAuthError) -> Self {
        Self::Direct(e)
    }
}

/// The response to send to the client: parameters for its verified redirect URI.
pub(crate) struct AuthorizationResponse {
    pub(crate) redirect: VerifiedRedirect,
    pub(crate) params: Vec<(&'static str, String)>,
}

/// Names the parameters only: one of them may be an authorization code.
impl std::fmt::Debug for AuthorizationResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationResponse")
            .field("redirect", &self.redirect)
            .field(
                "params",
                &self
                    .params
                    .iter()
                    .map(|(name, _)| *name)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl AuthorizationResponse {
    /// A successful or failed response; adds `state` and RFC 9207 `iss`. With a JARM mode the
    /// parameters travel as one JWT, `response`, signed by this server for the client (JARM
    /// §2.1: `iss`, `aud`, `exp` and the parameters as claims), and then encrypted to the
    /// client's key when it registered `authorization_encrypted_response_alg` (JARM §2.3).
    pub(crate) async fn new(
        p: &Provider,
        redirect: VerifiedRedirect,
        mut params: Vec<(&'static str, String)>,
    ) -> Result<Self, OAuthError> {
        if let Some(state) = &redirect.state {
            params.push(("state", state.clone()));
        }
        if !redirect.mode.is_jwt() {
            params.push(("iss", p.issuer().to_owned()));
            return Ok(Self { redirect, params });
        }
        let mut claims = serde_json::Map::new();
        for (name, value) in params {
            claims.insert(name.to_owned(), Value::String(value));
        }
        claims.insert("iss".into(), Value::String(p.issuer().to_owned()));
        claims.insert("aud".into(), Value::String(redirect.client_id.to_string()));
        claims.insert("exp".into(), Value::from(p.now() + JARM_LIFETIME));
        let keys = p.keys();
        let mut jwt =
            crate::jose::sign_compact(keys.active(redirect.signing_alg)?, "JWT", &claims)?;
        if let Some((alg, enc)) = redirect.encryption {
            jwt = encrypt_response(p, &redirect.client_id, alg, enc, &jwt).await?;
        }
        Ok(Self {
            redirect,
            params: vec![("response", jwt)],
        })
    }

    pub(crate) async fn error(
        p: &Provider,
        redirect: VerifiedRedirect,
        e: &OAuthError,
    ) -> Result<Self, OAuthError> {
        let mut params = vec![("error", e.code().as_str().to_owned())];
        if !e.description().is_empty() {
            params.push(("error_description", e.description().to_owned()));
        }
        Self::new(p, redirect, params).await
    }

    /// The redirect URL for the query and fragment modes (RFC 6749 §4.1.2: existing query
    /// components of the redirect URI are kept).
    pub(crate) fn location(&self) -> String {
        let encoded: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(self.params.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        let uri = &self.redirect.uri;
        match self.redirect.mode.delivery() {
            ResponseMode::Fragment => format!("{uri}#{encoded}"),
            _ if uri.contains('?') => format!("{uri}&{encoded}"),
            _ => format!("{uri}?{encoded}"),
        }
    }
}

/// The signed JARM response `jwt` nested in a JWE to a key of the client's (JARM §2.3, RFC 7519
/// §5.2 `cty: JWT`). Without a usable key the response cannot be delivered in the form the
/// client registered, and is not sent in another.
async fn encrypt_response(
    p: &Provider,
    client_id: &ClientId,
    alg: KeyManagementAlg,
    enc: ContentEncryptionAlg,
    jwt: &str,
) -> Result<String, OAuthError> {
    let unavailable = |why: String| {
        OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            "the response cannot be encrypted to the client's keys",
        )
        .with_reason(why)
    };
    let client = p
        .store
        .client(&p.tenant, client_id.as_str())
        .await?
        .ok_or_else(|| unavailable("the client is gone".into()))?;
    let key = super::client_keys::encryption_key(p, &client, alg)
        .await
        .map_err(unavailable)?;
    jwe::encrypt(jwt.as_bytes(), &key, alg, enc, Some("JWT"))
        .map_err(|_| unavailable("the client's encryption key is unusable".into()))
}

/// How long a JARM response is accepted (JARM §2.1 asks for a short expiry: it is redeemed at
/// once).
const JARM_LIFETIME: i64 = 120;

/// Parameters OIDC Core §3.1.2.1 lets a client send to tailor the login (`prompt` values).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Prompt {
    pub(crate) none: bool,
    pub(crate) login: bool,
    pub(crate) consent: bool,
    pub(crate) select_account: bool,
    /// OpenID Connect Initiating User Registration §3: the user wants to create an account.
    #[serde(default)]
    pub(crate) create: bool,
}

/// A validated authorization request, as stored with its interaction.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct AuthorizationRequest {
    pub(crate) client_id: ClientId,
    pub(crate) redirect_uri: String,
    /// RFC 6749 §4.1.3: the token request must repeat `redirect_uri` only if this one had it.
    pub(crate) redirect_uri_given: bool,
    pub(crate) response_mode: ResponseMode,
    pub(crate) state: Option<String>,
    pub(crate) nonce: Option<String>,
    pub(crate) scopes: ScopeSet,
    pub(crate) resources: Vec<String>,
    pub(crate) code_challenge: String,
    pub(crate) prompt: Prompt,
    pub(crate) max_age: Option<i64>,
    pub(crate) login_hint: Option<String>,
    pub(crate) acr_values: Vec<String>,
    pub(crate) ui_locales: Vec<String>,
    /// OIDC Core §5.2: preferred languages of the claims returned.
    #[serde(default)]
    pub(crate) claims_locales: Vec<String>,
    pub(crate) claims: Option<Value>,
    /// RFC 9396: what the client asks for beyond scopes.
    #[serde(default)]
    pub(crate) authorization_details: AuthorizationDetails,
    /// The subject of a verified `id_token_hint`.
    pub(crate) hint_subject: Option<String>,
    /// RFC 9449 §10: the DPoP key the code will be bound to.
    #[serde(default)]
    pub(crate) dpop_jkt: Option<String>,
}

impl AuthorizationRequest {
    /// The verified redirect this request, of `client`, answers to. Only requests built by
    /// [`validate`] exist.
    pub(crate) fn redirect(&self, client: &ClientRecord) -> VerifiedRedirect {
        VerifiedRedirect {
            uri: self.redirect_uri.clone(),
            mode: self.response_mode,
            state: self.state.clone(),
            client_id: self.client_id.clone(),
            signing_alg: client.metadata.authorization_alg(),
            encryption: client.metadata.authorization_encryption(),
        }
    }

    /// The `acr` values the host is asked for, in order of preference: `acr_values`, then those
    /// the `claims` request names for the ID token's `acr` (OIDC Core §5.5.1.1).
    pub(crate) fn requested_acr(&self) -> Vec<String> {
        let mut out = self.acr_values.clone();
        let acr = self
            .claims
            .as_ref()
            .and_then(|c| c.get("id_token"))
            .and_then(|t| t.get("acr"));
        let named = acr
            .and_then(|a| a.get("values"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .chain(acr.and_then(|a| a.get("value")));
        for value in named.filter_map(Value::as_str) {
            if !out.iter().any(|v| v == value) {
                out.push(value.to_owned());
            }
        }
        out
    }

    /// The standard claims this request's `claims` parameter asks for beyond its scopes: the
    /// user must approve them (OIDC Core §5.5) before any is released.
    pub(crate) fn claims_beyond_scopes(&self) -> Vec<String> {
        super::scope::claims_beyond_scopes(self.claims.as_ref(), &self.scopes)
    }
}

/// Length caps, in bytes, on the free-form values an interaction stores until the user comes
/// back from signing in. Every other stored value is a registered redirect URI, a known scope
/// or a declared resource, so one interaction row stays within a few KiB whatever the request.
/// `state` is echoed to the client; clients that keep more than this in it should keep it on
/// their side and send a reference.
pub(crate) const MAX_STATE: usize = 1024;
/// Cap for `nonce` (OIDC Core §3.1.2.1), `login_hint`, `acr_values`, `ui_locales` and
/// `claims_locales`.
pub(crate) const MAX_SHORT_VALUE: usize = 512;
/// Cap for the `claims` request (OIDC Core §5.5): every standard claim, in both members, with
/// room to spare.
pub(crate) const MAX_CLAIMS: usize = 2048;

/// How an authorization request's parameters arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RequestVia {
    /// In the query or form of `/authorize` (RFC 6749 §4.1.1).
    Query,
    /// Pushed to the pushed authorization request endpoint, being validated there (RFC 9126
    /// §2.1).
    Push,
    /// At `/authorize`, from the pushed request its `request_uri` names (RFC 9126 §4).
    Pushed,
}

/// Validates an authorization request, in order, returning it with its client.
pub(crate) async fn validate(
    p: &Provider,
    params: &dyn ParameterSource,
    via: RequestVia,
) -> Result<(AuthorizationRequest, ClientRecord), AuthorizeError> {
    let client = check_client(p, params).await?;
    let profile = p.config.profile_for(&client.metadata);
    // RFC 9126 §2.4: a confidential client's push may name an unregistered redirect URI, when
    // the server allows it; never under FAPI 2.0, whose redirect URIs match exactly.
    let unregistered_allowed = via != RequestVia::Query
        && p.config.pushed_unregistered_redirect_uris
        && !profile.is_fapi()
        && client.metadata.token_endpoint_auth_method.is_confidential();
    let (redirect_uri, redirect_uri_given) =
        check_redirect_uri(&client, params, unregistered_allowed)?;
    let (redirect, mode) = VerifiedRedirect::new(&client, redirect_uri.clone(), params, profile);
    let fail = |e: OAuthError| AuthorizeError::Redirect(Box::new(redirect.clone()), e);
    // RFC 9126 §5, §6: the server or the client may require every request to be pushed; FAPI
    // 2.0 §5.3.2.2 requires it.
    if via == RequestVia::Query
        && (p.config.require_pushed_requests
            || client.metadata.require_pushed_authorization_requests
            || profile.is_fapi())
    {
        return Err(fail(OAuthError::invalid_request(
            "authorization requests of this client must be pushed first (RFC 9126)",
        )));
    }
    // FAPI 2.0 §5.3.2.2: a pushed request names its redirect URI (checked again at
    // `/authorize`, for a request pushed before the client's profile became stricter).
    if via != RequestVia::Query && profile.is_fapi() && !redirect_uri_given {
        return Err(fail(OAuthError::invalid_request(
            "redirect_uri is required in pushed requests (FAPI 2.0)",
        )));
    }
    if mode.is_none() {
        return Err(fail(OAuthError::invalid_request(
            if profile.signs_messages() {
                "response_mode must be a JARM mode (jwt, query.jwt, fragment.jwt or form_post.jwt) under FAPI 2.0 Message Signing"
            } else {
                "response_mode is not supported"
            },
        )));
    }
    // JARM §2.3: a client that registered response encryption gets no response it cannot
    // read, so a missing key is found now, before the user is asked anything; shown, since
    // nothing can be sent to the client.
    if redirect.mode.is_jwt()
        && let Some((alg, _)) = redirect.encryption
        && let Err(why) = super::client_keys::encryption_key(p, &client, alg).await
    {
        return Err(AuthorizeError::Direct(
            OAuthError::invalid_request(
                "the client has no key to encrypt its responses to; its registration must be corrected",
            )
            .with_reason(why),
        ));
    }
    check_unsupported_parameters(params).map_err(fail)?;
    params
        .refuse_repeats(Endpoint::Authorize.repeatable())
        .map_err(fail)?;
    if params
        .get("state")
        .map_err(fail)?
        .is_some_and(|s| s.len() > MAX_STATE)
    {
        return Err(fail(OAuthError::invalid_request("state is too long")));
    }
    check_response_type(&client, params).map_err(fail)?;
    let scopes = check_scope(p, &client, params).map_err(fail)?;
    let is_openid = scopes.contains("openid");
    if is_openid && !redirect_uri_given {
        // OIDC Core §3.1.2.1: redirect_uri is REQUIRED in OpenID requests.
        return Err(fail(OAuthError::invalid_request(
            "redirect_uri is required",
        )));
    }
    let code_challenge = CodeChallenge::parse(
        params.get("code_challenge").map_err(fail)?,
        params.get("code_challenge_method").map_err(fail)?,
    )
    .map_err(fail)?;
    let prompt = check_prompt(params).map_err(fail)?;
    let max_age = check_max_age(params).map_err(fail)?;
    let resources = check_resources(&p.config, params.all("resource").into_iter()).map_err(fail)?;
    let claims = check_claims(params).map_err(fail)?;
    let authorization_details =
        check_authorization_details(&p.detail_types, &client, params).map_err(fail)?;
    let hint_subject = check_id_token_hint(p, &client, params).map_err(fail)?;
    let bounded = |name: &str| -> Result<Option<String>, OAuthError> {
        match params.get(name)? {
            Some(v) if v.len() > MAX_SHORT_VALUE => {
                Err(OAuthError::invalid_request(format!("{name} is too long")))
            }
            v => Ok(v.map(str::to_owned)),
        }
    };
    let list = |name: &str| -> Result<Vec<String>, OAuthError> {
        Ok(bounded(name)?
            .map(|v| {
                v.split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default())
    };
    let request = AuthorizationRequest {
        client_id: client.client_id.clone(),
        redirect_uri,
        redirect_uri_given,
        response_mode: redirect.mode,
        state: redirect.state.clone(),
        nonce: bounded("nonce").map_err(fail)?,
        scopes,
        resources,
        code_challenge: code_challenge.as_str().to_owned(),
        prompt,
        max_age,
        login_hint: bounded("login_hint").map_err(fail)?,
        acr_values: list("acr_values").map_err(fail)?,
        ui_locales: list("ui_locales").map_err(fail)?,
        claims_locales: list("claims_locales").map_err(fail)?,
        claims,
        authorization_details,
        hint_subject,
        dpop_jkt: check_dpop_jkt(params).map_err(fail)?,
    };
    Ok((request, client))
}

/// `client_id` names an active client (shown, never redirected).
async fn check_client(
    p: &Provider,
    params: &dyn ParameterSource,
) -> Result<ClientRecord, AuthorizeError> {
    let client_id = params
        .get("client_id")?
        .ok_or_else(|| OAuthError::invalid_request("client_id is required"))?;
    let client = p
        .store
        .client(&p.tenant, client_id)
        .await
        .map_err(OAuthError::from)?
        .ok_or_else(|| OAuthError::new(ErrorCode::InvalidClient, "unknown client"))?;
    if client.status != ClientStatus::Active {
        return Err(OAuthError::new(ErrorCode::InvalidClient, "this client is disabled").into());
    }
    // A client registered before its profile became stricter, and not meeting it (FAPI 2.0),
    // is refused here as at client authentication: nothing is issued or signed for it.
    if let Err(why) = crate::protocol::client::check_profile(&p.config, &client.metadata) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client's registration does not meet the server's security profile; it must be updated",
        )
        .with_reason(why.description().to_owned())
        .into());
    }
    Ok(client)
}

/// `redirect_uri` exactly matches a registered one; it may be omitted only when exactly one is
/// registered (RFC 6749 §3.1.2.3). Shown, never redirected.
fn check_redirect_uri(
    client: &ClientRecord,
    params: &dyn ParameterSource,
    unregistered_allowed: bool,
) -> Result<(String, bool), AuthorizeError> {
    match params.get("redirect_uri")? {
        Some(requested) => match client.metadata.match_redirect_uri(requested) {
            Some(uri) => Ok((uri.to_owned(), true)),
            None if unregistered_allowed
                && crate::protocol::client::check_redirect_uri(requested).is_ok() =>
            {
                Ok((requested.to_owned(), true))
            }
            None => Err(OAuthError::invalid_request(
                "redirect_uri is not registered for this client",
            )
            .into()),
        },
        None => match client.metadata.redirect_uris.as_slice() {
            [only] => Ok((only.clone(), false)),
            _ => Err(OAuthError::invalid_request("redirect_uri is required").into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_authorization_response_debug_names_its_parameters_but_never_the_code() {
        let response = AuthorizationResponse {
            redirect: VerifiedRedirect {
                uri: "https://rp.example/cb".into(),
                mode: ResponseMode::Query,
                state: None,
                client_id: ClientId::new("rp"),
                signing_alg: SigningAlg::RS256,
                encryption: None,
            },
            params: vec![("code", "the-authorization-code-value".into())],
        };
        let shown = format!("{response:?}");
        assert!(shown.contains("code"), "{shown}");
        assert!(!shown.contains("the-authorization-code-value"), "{shown}");
    }
}
