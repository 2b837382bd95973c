//! Client authentication at the token, pushed authorization request, introspection and
//! revocation endpoints (RFC 6749 §2.3, RFC 7523 §3, RFC 9126 §2, OIDC Core §9). A client must
//! use exactly the method it
//! registered; presenting credentials in two ways, or in a way it did not register, is
//! `invalid_client` (RFC 6749 §5.2). Every failure is also written to the audit log with its reason.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::{Value, json};

use super::client::ASSERTION_ALGS;
use super::dpop::Proof;
use super::jti::{JtiUse, first_use};
use super::params::Params;
use crate::jose::{MAX_JWT_LEN, alg_name};
use crate::model::client::{AuthMethod, ClientId};
use crate::model::profile::SecurityProfile;
use crate::mtls::ClientCertificate;
use crate::protocol::endpoints::Endpoint;
use crate::protocol::error::{Challenge, ErrorCode, OAuthError};
use crate::protocol::provider::Provider;
use crate::secrets::{Secret, b64_decode};
use crate::store::{AuditEvent, Binding, ClientRecord, ClientStatus};

/// RFC 7523 §2.2: the only assertion type accepted.
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Clock skew tolerated on assertion times, in seconds.
const LEEWAY: u64 = 30;

/// Longest assertion lifetime accepted (exp − now), bounding how long its jti must be kept.
const MAX_ASSERTION_LIFETIME: i64 = 600;

/// The credentials a request carried, before any lookup.
#[derive(Debug)]
pub(crate) enum Presented {
    /// `Authorization: Basic` (RFC 6749 §2.3.1).
    Basic { client_id: String, secret: Secret },
    /// `client_id` and `client_secret` in the body.
    Post { client_id: String, secret: Secret },
    /// A JWT assertion (RFC 7523 §2.2); `client_id` only when the body also carried it.
    Assertion {
        client_id: Option<String>,
        assertion: Secret,
    },
    /// Only `client_id`: a public client.
    None { client_id: String },
}

/// A client whose credentials were verified. Only [`authenticate`] builds one, so an endpoint
/// that takes it cannot forget to authenticate.
#[derive(Debug)]
pub(crate) struct AuthenticatedClient {
    record: ClientRecord,
    method: AuthMethod,
    /// The client certificate of this request, if any (RFC 8705).
    certificate: Option<ClientCertificate>,
    /// The verified DPoP proof of this request, if any (RFC 9449).
    dpop: Option<Proof>,
    /// The security profile the client is held to.
    profile: SecurityProfile,
}

impl AuthenticatedClient {
    pub(crate) fn record(&self) -> &ClientRecord {
        &self.record
    }

    pub(crate) fn id(&self) -> &ClientId {
        &self.record.client_id
    }

    /// The security profile the client is held to (FAPI 2.0).
    pub(crate) fn profile(&self) -> SecurityProfile {
        self.profile
    }

    /// True when the client proved possession of a credential (not a public client).
    pub(crate) fn is_confidential(&self) -> bool {
        self.method.is_confidential()
    }

    /// `x5t#S256` of the certificate presented with this request.
    pub(crate) fn presented_thumbprint(&self) -> Option<String> {
        self.certificate.as_ref().map(ClientCertificate::thumbprint)
    }

    /// A client tokens are minted for without a request of its own: a CIBA client of the push
    /// mode, which authenticated when it asked (CIBA Core §10.3). Nothing is presented, so
    /// nothing binds the tokens (registration keeps push clients from asking for bound ones).
    pub(crate) fn for_push(record: ClientRecord) -> Self {
        Self {
            method: record.metadata.token_endpoint_auth_method,
            record,
            certificate: None,
            dpop: None,
            profile: SecurityProfile::None,
        }
    }

    /// The key of this request's DPoP proof, by its thumbprint (RFC 9449 §6).
    pub(crate) fn presented_jkt(&self) -> Option<&str> {
        self.dpop.as_ref().map(|p| p.jkt.as_str())
    }

    /// Attaches this request's verified DPoP proof (RFC 9449 §5). A client registered for
    /// certificate-bound tokens cannot bind them to a DPoP key instead: a token is bound to one
    /// or the other, never both. A client registered with `dpop_bound_access_tokens` must send
    /// one (§5.2).
    pub(crate) fn with_dpop(mut self, proof: Option<Proof>) -> Result<Self, OAuthError> {
        let metadata = &self.record.metadata;
        if proof.is_some() && metadata.tls_client_certificate_bound_access_tokens {
            return Err(OAuthError::invalid_request(
                "this client's tokens are bound to its certificate; they cannot also be bound to a DPoP key",
            ));
        }
        if proof.is_none() && metadata.dpop_bound_access_tokens {
            return Err(OAuthError::new(
                ErrorCode::InvalidDpopProof,
                "this client must send a DPoP proof",
            ));
        }
        self.dpop = proof;
        Ok(self)
    }

    /// True when this request proves possession of what `binding` names: it presents that
    /// certificate (RFC 8705 §3) or a proof of that DPoP key (RFC 9449 §6).
    pub(crate) fn holds(&self, binding: &Binding) -> bool {
        match binding {
            Binding::Certificate(x5t) => self.presented_thumbprint().as_deref() == Some(x5t),
            Binding::Dpop(jkt) => self.presented_jkt() == Some(jkt.as_str()),
        }
    }

    /// What tokens issued now are bound to: the DPoP key of this request (RFC 9449 §6), or the
    /// certificate the client authenticated with or registered its tokens to be bound to and
    /// presented (RFC 8705 §3).
    pub(crate) fn binding(&self) -> Option<Binding> {
        if let Some(jkt) = self.presented_jkt() {
            return Some(Binding::Dpop(jkt.to_owned()));
        }
        // FAPI 2.0 §5.3.2.1: every access token is sender-constrained, so a certificate
        // presented binds the tokens of a FAPI client whatever it registered.
        let wanted = self.method.is_mtls()
            || self.profile.is_fapi()
            || self
                .record
                .metadata
                .tls_client_certificate_bound_access_tokens;
        if wanted {
            self.presented_thumbprint().map(Binding::Certificate)
        } else {
            None
        }
    }
}

/// A failed authentication: the wire error and, for the audit log, the client it concerned.
struct Failure {
    reason: String,
    client_id: Option<String>,
}

fn fail(reason: impl Into<String>, client_id: Option<&str>) -> Failure {
    Failure {
        reason: reason.into(),
        client_id: client_id.map(str::to_owned),
    }
}

fn invalid_client(reason: impl Into<String>, basic: bool) -> OAuthError {
    let e = OAuthError::new(ErrorCode::InvalidClient, "client authentication failed")
        .with_reason(reason.into());
    if basic {
        e.with_challenge(Challenge::Basic)
    } else {
        e
    }
}

/// RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
fn decode_basic(value: &str) -> Option<(String, String)> {
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((form_decode(id), form_decode(secret)))
}

/// Decodes one `application/x-www-form-urlencoded` value ('+' is a space, %XX an octet).
fn form_decode(value: &str) -> String {
    // Escape the pair delimiters so the whole value decodes as a single parameter.
    let pair = format!("v={}", value.replace('&', "%26").replace('=', "%3D"));
    form_urlencoded::parse(pair.as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Reads the credentials a request presents. Two methods at once is `invalid_client`.
pub(crate) fn presented(
    authorization: Option<&str>,
    params: &Params,
) -> Result<Presented, OAuthError> {
    let form_id = params.get("client_id")?;
    let form_secret = params.get("client_secret")?;
    let assertion = params.get("client_assertion")?;
    let assertion_type = params.get("client_assertion_type")?;
    if assertion.is_some() || assertion_type.is_some() {
        if authorization.is_some() || form_secret.is_some() {
            return Err(invalid_client(
                "an assertion together with another credential",
                authorization.is_some(),
            ));
        }
        if assertion_type != Some(JWT_BEARER) {
            return Err(invalid_client(
                "client_assertion_type is missing or not jwt-bearer",
                false,
            ));
        }
        let Some(assertion) = assertion else {
            return Err(invalid_client(
                "client_assertion_type without client_assertion",
                false,
            ));
        };
        return Ok(Presented::Assertion {
            client_id: form_id.map(str::to_owned),
            assertion: Secret::new(assertion),
        });
    }
    if let Some(header) = authorization {
        let Some((client_id, secret)) = decode_basic(header) else {
            return Err(invalid_client("malformed Basic authorization header", true));
        };
        if form_secret.is_some() {
            return Err(invalid_client(
                "credentials in both the header and the body",
                true,
            ));
        }
        if form_id.is_some_and(|id| id != client_id) {
            return Err(invalid_client(
                "client_id in the body differs from the header",
                true,
            ));
        }
        return Ok(Presented::Basic {
            client_id,
            secret: Secret::new(secret),
        });
    }
    let client_id = form_id
        .ok_or_else(|| invalid_client("no client credentials", false))?
        .to_owned();
    Ok(match form_secret {
        Some(secret) => Presented::Post {
            client_id,
            secret: Secret::new(secret),
        },
        None => Presented::None { client_id },
    })
}

/// Verifies presented credentials against the client's registration. `endpoint` is the one
/// being called: its URL is an accepted assertion audience besides the issuer (RFC 7523 §3).
pub(crate) async fn authenticate(
    p: &Provider,
    presented: Presented,
    endpoint: Endpoint,
    certificate: Option<ClientCertificate>,
) -> Result<AuthenticatedClient, OAuthError> {
    let basic = matches!(presented, Presented::Basic { .. });
    let method = match &presented {
        Presented::Basic { .. } => "client_secret_basic",
        Presented::Post { .. } => "client_secret_post",
        Presented::Assertion { .. } => "jwt assertion",
        Presented::None { .. } => "none",
    };
    match verify(p, presented, endpoint, certificate.as_ref()).await {
        Ok(mut client) => {
            client.certificate = certificate;
            client.profile = p.config.profile_for(&client.record.metadata);
            if let Err(why) = super::client::check_profile(&p.config, &client.record.metadata) {
                let failure = fail(
                    format!(
                        "the registration does not meet the profile: {}",
                        why.description()
                    ),
                    Some(client.id()),
                );
                audit_failure(p, &failure, method, endpoint).await;
                return Err(OAuthError::new(
                    ErrorCode::InvalidClient,
                    "this client's registration does not meet the server's security profile; it must be updated",
                )
                .with_reason(failure.reason));
            }
            if client
                .record
                .metadata
                .tls_client_certificate_bound_access_tokens
                && client.certificate.is_none()
            {
                return Err(OAuthError::invalid_request(
                    "this client's tokens are certificate-bound: present its client certificate",
                ));
            }
            Ok(client)
        }
        Err(Err(internal)) => Err(internal),
        Err(Ok(failure)) => {
            audit_failure(p, &failure, method, endpoint).await;
            Err(invalid_client(failure.reason, basic))
        }
    }
}

/// Writes a failed authentication to the audit log.
async fn audit_failure(p: &Provider, failure: &Failure, method: &str, endpoint: Endpoint) {
    let event = AuditEvent {
        tenant_id: p.tenant.clone(),
        at: p.now(),
        kind: "client_authentication_failed".into(),
        client_id: failure.client_id.clone(),
        subject: None,
        detail: json!({ "reason": failure.reason, "method": method, "endpoint": endpoint.path() }),
        occurrences: 1,
    };
    if let Err(e) = p.store.audit(&event).await {
        tracing::warn!(error = %e, "could not write the audit event");
    }
}

/// `Err(Ok(_))`: the client failed to authenticate; `Err(Err(_))`: the server failed.
async fn verify(
    p: &Provider,
    presented: Presented,
    endpoint: Endpoint,
    certificate: Option<&ClientCertificate>,
) -> Result<AuthenticatedClient, Result<Failure, OAuthError>> {
    let (client_id, secret, method) = match presented {
        Presented::Basic { client_id, secret } => {
            (client_id, Some(secret), AuthMethod::ClientSecretBasic)
        }
        Presented::Post { client_id, secret } => {
            (client_id, Some(secret), AuthMethod::ClientSecretPost)
        }
        Presented::None { client_id } => (client_id, None, AuthMethod::None),
        Presented::Assertion {
            client_id,
            assertion,
        } => return verify_assertion(p, client_id, assertion.expose(), endpoint).await,
    };
    let record = load(p, &client_id).await?;
    let registered = record.metadata.token_endpoint_auth_method;
    if method == AuthMethod::None && registered.is_mtls() {
        super::mtls_auth::check_certificate(p, &record, certificate)
            .await
            .map_err(|why| Ok(fail(why, Some(&client_id))))?;
        return Ok(AuthenticatedClient {
            record,
            method: registered,
            certificate: None,
            dpop: None,
            profile: SecurityProfile::None,
        });
    }
    if registered != method {
        return Err(Ok(fail(
            "client used an authentication method it did not register",
            Some(&client_id),
        )));
    }
    if let Some(secret) = secret {
        let ok = record
            .secret_digest
            .as_deref()
            .is_some_and(|digest| p.secrets.verify_client_secret(secret.expose(), digest));
        if !ok {
            return Err(Ok(fail("wrong client secret", Some(&client_id))));
        }
        if record.secret_expires_at.is_some_and(|at| at <= p.now()) {
            return Err(Ok(fail("client secret expired", Some(&client_id))));
        }
    }
    Ok(AuthenticatedClient {
        record,
        method,
        certificate: None,
        dpop: None,
        profile: SecurityProfile::None,
    })
}

async fn load(p: &Provider, client_id: &str) -> Result<ClientRecord, Result<Failure, OAuthError>> {
    let record = p
        .store
        .client(&p.tenant, client_id)
        .await
        .map_err(|e| Err(e.into()))?;
    let Some(record) = record else {
        return Err(Ok(fail("unknown client", None)));
    };
    match record.status {
        ClientStatus::Active => {}
        ClientStatus::Disabled => return Err(Ok(fail("client is disabled", Some(client_id)))),
        ClientStatus::Deleted => return Err(Ok(fail("client was deleted", Some(client_id)))),
    }
    Ok(record)
}

/// RFC 7523 §3 and OIDC Core §9: iss = sub = client_id, aud = the issuer or this endpoint's
/// URL, exp required and bounded, jti required and seen once, alg on the allow-list.
async fn verify_assertion(
    p: &Provider,
    form_client_id: Option<String>,
    assertion: &str,
    endpoint: Endpoint,
) -> Result<AuthenticatedClient, Result<Failure, OAuthError>> {
    if assertion.len() > MAX_JWT_LEN {
        return Err(Ok(fail("assertion too large", form_client_id.as_deref())));
    }
    // The client is named by the (still unverified) sub; everything is verified below.
    let unverified: Value = assertion
        .split('.')
        .nth(1)
        .and_then(b64_decode)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| Ok(fail("malformed assertion", form_client_id.as_deref())))?;
    let Some(client_id) = unverified
        .get("sub")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return Err(Ok(fail("assertion without sub", form_client_id.as_deref())));
    };
    if form_client_id.as_ref().is_some_and(|id| *id != client_id) {
        return Err(Ok(fail(
            "client_id differs from the assertion's sub",
            Some(&client_id),
        )));
    }
    let record = load(p, &client_id).await?;
    let method = record.metadata.token_endpoint_auth_method;
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| Ok(fail("malformed assertion header", Some(&client_id))))?;
    let alg = alg_name(header.alg);
    let profile = p.config.profile_for(&record.metadata);
    let alg_ok = profile.allows_alg(alg)
        && match method {
            AuthMethod::ClientSecretJwt => alg == "HS256",
            AuthMethod::PrivateKeyJwt => ASSERTION_ALGS.contains(&alg),
            _ => {
                return Err(Ok(fail(
                    "client used an authentication method it did not register",
                    Some(&client_id),
                )));
            }
        }
        && record
            .metadata
            .token_endpoint_auth_signing_alg
            .as_deref()
            .is_none_or(|registered| registered == alg);
    if !alg_ok {
        return Err(Ok(fail(
            format!("assertion alg {alg} is not allowed"),
            Some(&client_id),
        )));
    }
    let mut validation = Validation::new(header.alg);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.set_issuer(&[&client_id]);
    validation.sub = Some(client_id.clone());
    // RFC 9126 §2: at the pushed authorization request endpoint the token endpoint's URL is
    // an accepted audience too; so it is at the device authorization endpoint, whose
    // authentication is "as at the token endpoint" (RFC 8628 §3.1), and at the backchannel
    // authentication endpoint (CIBA Core §7.1).
    let mut audiences = vec![p.issuer().to_owned(), endpoint.url(&p.config.issuer)];
    // FAPI 2.0 §5.3.2.1 (RFC 7523bis): the issuer identifier alone, as a string, so that an
    // assertion made for one server can never be replayed at another.
    if profile.is_fapi() {
        audiences.truncate(1);
        let aud = unverified.get("aud");
        if aud.and_then(Value::as_str) != Some(p.issuer()) {
            return Err(Ok(fail(
                "under FAPI 2.0 the assertion's aud must be the issuer identifier, as a string",
                Some(&client_id),
            )));
        }
    } else if matches!(
        endpoint,
        Endpoint::PushedAuthorization
            | Endpoint::DeviceAuthorization
            | Endpoint::BackchannelAuthentication
    ) {
        audiences.push(Endpoint::Token.url(&p.config.issuer));
    }
    validation.set_audience(&audiences);
    // exp and nbf are checked below against the server's clock (`p.now()`), the same clock
    // that decides how long the jti is remembered.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    let claims: Value = match method {
        AuthMethod::ClientSecretJwt => {
            if record.secret_expires_at.is_some_and(|at| at <= p.now()) {
                return Err(Ok(fail("client secret expired", Some(&client_id))));
            }
            let secret = record
                .sealed_secret
                .as_deref()
                .and_then(|sealed| super::registration::open_secret(p, &client_id, sealed))
                .ok_or_else(|| {
                    Err(OAuthError::internal(
                        "client_secret_jwt client without a usable sealed secret",
                    ))
                })?;
            let key = DecodingKey::from_secret(secret.as_bytes())
                .map_err(|e| Err(OAuthError::internal(e.to_string())))?;
            jsonwebtoken::decode::<Value>(assertion, &key, &validation)
                .map_err(|e| Ok(fail(format!("assertion rejected: {e}"), Some(&client_id))))?
                .claims
        }
        _ => super::client_keys::verify_with_client_keys(
            p,
            &record,
            assertion,
            header.kid.as_deref(),
            &validation,
        )
        .await
        .map_err(|why| Ok(fail(why, Some(&client_id))))?,
    };
    let now = p.now();
    // The times are the client's numbers: saturating arithmetic, so no value can overflow.
    let leeway = LEEWAY as i64;
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    if exp.saturating_sub(now) > MAX_ASSERTION_LIFETIME {
        return Err(Ok(fail(
            format!("assertion lives longer than {MAX_ASSERTION_LIFETIME} s"),
            Some(&client_id),
        )));
    }
    if exp.saturating_add(leeway) < now {
        return Err(Ok(fail("assertion expired", Some(&client_id))));
    }
    if claims
        .get("nbf")
        .and_then(Value::as_i64)
        .is_some_and(|nbf| nbf > now.saturating_add(leeway))
    {
        return Err(Ok(fail("assertion not yet valid", Some(&client_id))));
    }
    if claims
        .get("iat")
        .and_then(Value::as_i64)
        .is_some_and(|iat| iat > now.saturating_add(leeway))
    {
        return Err(Ok(fail("assertion issued in the future", Some(&client_id))));
    }
    match first_use(
        p,
        "client_assertion",
        &client_id,
        &claims,
        exp.saturating_add(leeway),
    )
    .await
    .map_err(|e| Err(e.into()))?
    {
        JtiUse::First => {}
        JtiUse::Unusable => {
            return Err(Ok(fail("assertion without a usable jti", Some(&client_id))));
        }
        JtiUse::Replayed => {
            return Err(Ok(fail(
                "assertion replayed (jti already used)",
                Some(&client_id),
            )));
        }
    }
    Ok(AuthenticatedClient {
        record,
        method,
        certificate: None,
        dpop: None,
        profile: SecurityProfile::None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let header = format!("Basic {}", STANDARD.encode("my%20client:s%3Ae+c"));
        assert_eq!(
            decode_basic(&header),
            Some(("my client".into(), "s:e c".into()))
        );
        assert_eq!(decode_basic("Bearer abc"), None);
    }

    #[test]
    fn two_methods_at_once_is_invalid_client() {
        let header = format!("Basic {}", STANDARD.encode("a:b"));
        let Ok(params) = Params::parse(b"client_id=a&client_secret=b") else {
            panic!("parses")
        };
        let err = presented(Some(&header), &params).err().map(|e| e.code());
        assert_eq!(err, Some(ErrorCode::InvalidClient));
    }
}
