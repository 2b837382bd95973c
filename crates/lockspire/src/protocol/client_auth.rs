//! Client authentication at the token, introspection and revocation endpoints
//! (RFC 6749 §2.3, OIDC Core §9). A client must use exactly the method it registered; presenting
//! credentials in two ways, or in a way it did not register, is `invalid_client` (SURFACE S7).
//!
//! New methods (private_key_jwt, client_secret_jwt, mTLS) slot in as further [`Presented`]
//! variants checked against their registered [`AuthMethod`].

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::client::AuthMethod;
use super::params::Params;
use crate::Provider;
use crate::error::{Challenge, ErrorCode, OAuthError};
use crate::store::{ClientRecord, ClientStatus};

/// The credentials a request carried, before any lookup.
#[derive(Debug)]
pub(crate) enum Presented {
    /// `Authorization: Basic` (RFC 6749 §2.3.1).
    Basic { client_id: String, secret: String },
    /// `client_id` and `client_secret` in the body.
    Post { client_id: String, secret: String },
    /// Only `client_id`: a public client.
    None { client_id: String },
}

/// A client whose credentials were verified. Only [`authenticate`] builds one, so an endpoint
/// that takes it cannot forget to authenticate.
#[derive(Debug)]
pub(crate) struct AuthenticatedClient {
    record: ClientRecord,
    method: AuthMethod,
}

impl AuthenticatedClient {
    pub(crate) fn record(&self) -> &ClientRecord {
        &self.record
    }

    pub(crate) fn id(&self) -> &str {
        &self.record.client_id
    }

    /// True when the client proved possession of a credential (not a public client).
    pub(crate) fn is_confidential(&self) -> bool {
        self.method.is_confidential()
    }
}

fn invalid_client(reason: &'static str, basic: bool) -> OAuthError {
    let e = OAuthError::new(ErrorCode::InvalidClient, "client authentication failed")
        .with_reason(reason);
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
    if params.get("client_assertion")?.is_some() || params.get("client_assertion_type")?.is_some() {
        return Err(invalid_client(
            "client assertions are not supported",
            authorization.is_some(),
        ));
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
        return Ok(Presented::Basic { client_id, secret });
    }
    let client_id = form_id
        .ok_or_else(|| invalid_client("no client credentials", false))?
        .to_owned();
    Ok(match form_secret {
        Some(secret) => Presented::Post {
            client_id,
            secret: secret.to_owned(),
        },
        None => Presented::None { client_id },
    })
}

/// Verifies presented credentials against the client's registration.
pub(crate) async fn authenticate(
    p: &Provider,
    presented: Presented,
) -> Result<AuthenticatedClient, OAuthError> {
    let (client_id, secret, method, basic) = match presented {
        Presented::Basic { client_id, secret } => {
            (client_id, Some(secret), AuthMethod::ClientSecretBasic, true)
        }
        Presented::Post { client_id, secret } => {
            (client_id, Some(secret), AuthMethod::ClientSecretPost, false)
        }
        Presented::None { client_id } => (client_id, None, AuthMethod::None, false),
    };
    let Some(record) = p.store.client(&p.tenant, &client_id).await? else {
        return Err(invalid_client("unknown client", basic));
    };
    if record.status != ClientStatus::Active {
        return Err(invalid_client("client is disabled", basic));
    }
    if record.metadata.token_endpoint_auth_method != method {
        return Err(invalid_client(
            "client used an authentication method it did not register",
            basic,
        ));
    }
    if let Some(secret) = secret {
        let ok = record
            .secret_digest
            .as_deref()
            .is_some_and(|digest| p.secrets.verify_client_secret(&secret, digest));
        if !ok {
            return Err(invalid_client("wrong client secret", basic));
        }
    }
    Ok(AuthenticatedClient { record, method })
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
        let params = Params::parse(b"client_id=a&client_secret=b");
        let err = presented(Some(&header), &params).err().map(|e| e.code());
        assert_eq!(err, Some(ErrorCode::InvalidClient));
    }
}
