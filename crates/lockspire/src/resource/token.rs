//! The verified access token handlers receive.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use serde_json::{Map, Value};

/// What a token is bound to (a sender-constrained token), as its `cnf` claim says.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenBinding {
    /// RFC 9449 §6: a DPoP key, by its RFC 7638 thumbprint; the request proved possession.
    Dpop {
        /// The key's thumbprint (`cnf.jkt`).
        jkt: String,
    },
    /// RFC 8705 §3: a client certificate, by its SHA-256 thumbprint; the request came over TLS
    /// with it.
    Certificate {
        /// The certificate's thumbprint (`cnf.x5t#S256`).
        x5t_s256: String,
    },
}

impl TokenBinding {
    /// The binding a `cnf` claim names (RFC 7800 §3.1): `Ok(None)` without one, `Err` for one
    /// this toolkit cannot check (another confirmation method, several, or a malformed one),
    /// which must refuse the token rather than take it for a bearer token.
    pub(crate) fn from_confirmation(cnf: Option<&Value>) -> Result<Option<Self>, ()> {
        let Some(cnf) = cnf else {
            return Ok(None);
        };
        let Some(members) = cnf.as_object() else {
            return Err(());
        };
        let text = |name: &str| members.get(name).and_then(Value::as_str).map(str::to_owned);
        match (members.len(), text("jkt"), text("x5t#S256")) {
            (1, Some(jkt), None) => Ok(Some(Self::Dpop { jkt })),
            (1, None, Some(x5t_s256)) => Ok(Some(Self::Certificate { x5t_s256 })),
            _ => Err(()),
        }
    }
}

/// An access token the [`RequireToken`](super::RequireToken) layer verified: extract it in a
/// handler behind that layer. Its claims are those of an RFC 9068 JWT access token, whatever the
/// token's format (for an opaque token, what introspection or the store says of it).
#[derive(Clone, Debug)]
pub struct AccessToken(Arc<Verified>);

/// What a verified token says; shared, so that a token verified once and remembered is handed to
/// each request without copying its claims.
#[derive(Debug)]
struct Verified {
    subject: String,
    client_id: String,
    scopes: Vec<String>,
    expires_at: i64,
    binding: Option<TokenBinding>,
    claims: Map<String, Value>,
}

impl AccessToken {
    /// Builds the token from RFC 9068 §2.2 claims (or an RFC 7662 §2.2 introspection answer,
    /// which uses the same names); `None` when one it cannot be without is missing, or when it
    /// is bound in a way that cannot be checked.
    pub(crate) fn from_claims(claims: Map<String, Value>) -> Option<Self> {
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        let client_id = text("client_id")?;
        Some(Self(Arc::new(Verified {
            // RFC 9068 §2.2: a token of the client itself names the client as its subject.
            subject: text("sub").unwrap_or_else(|| client_id.clone()),
            scopes: text("scope")
                .map(|s| {
                    s.split(' ')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            expires_at: claims.get("exp").and_then(Value::as_i64)?,
            binding: TokenBinding::from_confirmation(claims.get("cnf")).ok()?,
            client_id,
            claims,
        })))
    }

    /// The subject (`sub`): the user's identifier as the token's client knows it (pairwise for
    /// a client registered for pairwise subjects, OIDC Core §8), or the client's own id for a
    /// token it got for itself (client credentials).
    pub fn subject(&self) -> &str {
        &self.0.subject
    }

    /// The client the token was issued to (`client_id`, RFC 9068 §2.2).
    pub fn client_id(&self) -> &str {
        &self.0.client_id
    }

    /// The scopes granted (`scope`).
    pub fn scopes(&self) -> &[String] {
        &self.0.scopes
    }

    /// True when the token was granted `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.0.scopes.iter().any(|s| s == scope)
    }

    /// When the token expires (`exp`, seconds since the Unix epoch).
    pub fn expires_at(&self) -> i64 {
        self.0.expires_at
    }

    /// What the token is bound to, if anything; the request proved possession of it.
    pub fn binding(&self) -> Option<&TokenBinding> {
        self.0.binding.as_ref()
    }

    /// Every claim, including `authorization_details` (RFC 9396 §9) when the token carries
    /// them.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.0.claims
    }
}

/// A handler asked for an [`AccessToken`] on a route the layer does not cover: a mistake in the
/// host's router, answered `500` so that it is found at once, and never a way in.
#[derive(Debug)]
pub struct MissingLayer;

impl IntoResponse for MissingLayer {
    fn into_response(self) -> Response {
        tracing::error!("AccessToken extracted on a route without the RequireToken layer");
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AccessToken {
    type Rejection = MissingLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<AccessToken>()
            .cloned()
            .ok_or(MissingLayer)
    }
}

#[cfg(test)]
mod tests {
    use super::TokenBinding;
    use serde_json::json;

    #[test]
    fn a_confirmation_that_cannot_be_checked_is_refused_not_ignored() {
        let read = |v| TokenBinding::from_confirmation(Some(&v));
        assert_eq!(
            read(json!({"jkt": "a"})),
            Ok(Some(TokenBinding::Dpop { jkt: "a".into() }))
        );
        assert_eq!(
            read(json!({"x5t#S256": "b"})),
            Ok(Some(TokenBinding::Certificate {
                x5t_s256: "b".into()
            }))
        );
        assert_eq!(TokenBinding::from_confirmation(None), Ok(None));
        for unknown in [
            json!({"jwk": {"kty": "EC"}}),
            json!({"kid": "k"}),
            json!({"jkt": "a", "x5t#S256": "b"}),
            json!({"jkt": 7}),
            json!({}),
            json!("jkt"),
        ] {
            assert_eq!(read(unknown.clone()), Err(()), "{unknown}");
        }
    }
}
