//! Rows as typed records. Decoding is strict: a value that does not parse is `Corrupt`, never a
//! silent default.

use serde::{Deserialize, Serialize};

use super::StoreError;
use super::db::{Row, get};
use crate::clock::UnixTime;
use crate::model::client::ClientMetadata;

/// Whether a client may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientStatus {
    /// Usable.
    Active,
    /// Refused at every endpoint and its tokens suspended, until it is enabled again.
    Disabled,
    /// Deleted for good (RFC 7592 §2.3): refused everywhere, its grants revoked, its id never
    /// reused. No status change leaves this one.
    Deleted,
}

impl ClientStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
            Self::Deleted => "deleted",
        }
    }
}

/// A registered client.
#[derive(Clone, Debug)]
pub struct ClientRecord {
    /// Tenant.
    pub tenant_id: String,
    /// `client_id` (RFC 6749 §2.2).
    pub client_id: String,
    /// Keyed digest of the secret; `None` for public clients.
    pub secret_digest: Option<String>,
    /// Registered metadata.
    pub metadata: ClientMetadata,
    /// Status.
    pub status: ClientStatus,
    /// Registration time (`client_id_issued_at`).
    pub created_at: UnixTime,
    /// The secret sealed under the server key; client_secret_jwt clients only.
    pub sealed_secret: Option<String>,
    /// Digest of the RFC 7592 registration access token.
    pub registration_token_digest: Option<String>,
    /// When the secret stops working (RFC 7591 `client_secret_expires_at`); `None`: never.
    pub secret_expires_at: Option<UnixTime>,
}

impl ClientRecord {
    pub(crate) fn metadata_json(&self) -> String {
        serde_json::to_string(&self.metadata).unwrap_or_else(|_| "{}".to_owned())
    }

    pub(crate) fn from_row(r: &Row<'_>) -> Result<Self, StoreError> {
        let metadata: String = get(r, "metadata")?;
        let status: String = get(r, "status")?;
        Ok(Self {
            tenant_id: get(r, "tenant_id")?,
            client_id: get(r, "client_id")?,
            secret_digest: get(r, "secret_digest")?,
            metadata: serde_json::from_str(&metadata)
                .map_err(|e| StoreError::Corrupt(format!("client metadata: {e}")))?,
            status: match status.as_str() {
                "active" => ClientStatus::Active,
                "disabled" => ClientStatus::Disabled,
                "deleted" => ClientStatus::Deleted,
                other => return Err(StoreError::Corrupt(format!("client status {other}"))),
            },
            created_at: get(r, "created_at")?,
            sealed_secret: get(r, "sealed_secret")?,
            registration_token_digest: get(r, "registration_token_digest")?,
            secret_expires_at: get(r, "secret_expires_at")?,
        })
    }
}

/// An initial access token for dynamic registration, as operators see it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct InitialAccessTokenRecord {
    /// Identifier operators revoke it by.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Registrations left; `None` for any number.
    pub uses_left: Option<i64>,
    /// Creation time.
    pub created_at: UnixTime,
    /// Expiry; `None` for none.
    pub expires_at: Option<UnixTime>,
    /// Revocation time.
    pub revoked_at: Option<UnixTime>,
}

impl InitialAccessTokenRecord {
    pub(crate) fn from_row(r: &Row<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            id: get(r, "id")?,
            tenant_id: get(r, "tenant_id")?,
            uses_left: get(r, "uses_left")?,
            created_at: get(r, "created_at")?,
            expires_at: get(r, "expires_at")?,
            revoked_at: get(r, "revoked_at")?,
        })
    }
}

/// A security-relevant event (SURFACE S27). `detail` never holds a secret.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AuditEvent {
    /// Tenant.
    pub tenant_id: String,
    /// When.
    pub at: UnixTime,
    /// What happened, e.g. `client_authentication_failed`.
    pub kind: String,
    /// The client concerned.
    pub client_id: Option<String>,
    /// The user concerned.
    pub subject: Option<String>,
    /// Details (JSON object).
    pub detail: serde_json::Value,
    /// How many identical events happened in the minute that starts at `at`'s minute (they
    /// are kept as one row); 1 for an event written but once.
    pub occurrences: i64,
}

/// Who caused a security event.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Actor<'a> {
    /// The host app or the `lockspire` command, through the library's operator API.
    Operator,
    /// A client, authenticated or holding its registration access token.
    Client(&'a str),
    /// A signed-in user.
    User(&'a str),
    /// An unauthenticated caller of dynamic registration (open, or with an initial access
    /// token).
    Registrant,
}

impl Actor<'_> {
    fn describe(self) -> String {
        match self {
            Actor::Operator => "operator".to_owned(),
            Actor::Client(id) => format!("client:{id}"),
            Actor::User(subject) => format!("user:{subject}"),
            Actor::Registrant => "registrant".to_owned(),
        }
    }
}

/// How a security event ended.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Outcome {
    /// The change was made.
    Done,
    /// The request was refused (and, for a replay, what it replayed was revoked).
    Refused,
}

impl AuditEvent {
    /// A security event (SURFACE S27): `action` by `actor`, with its outcome and reason, about
    /// a client and a user where there are ones.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn security(
        tenant: &str,
        at: UnixTime,
        action: &str,
        actor: Actor<'_>,
        outcome: Outcome,
        client_id: Option<&str>,
        subject: Option<&str>,
        reason: &str,
    ) -> Self {
        let outcome = match outcome {
            Outcome::Done => "done",
            Outcome::Refused => "refused",
        };
        Self {
            tenant_id: tenant.to_owned(),
            at,
            kind: action.to_owned(),
            client_id: client_id.map(str::to_owned),
            subject: subject.map(str::to_owned),
            detail: serde_json::json!({ "actor": actor.describe(), "outcome": outcome, "reason": reason }),
            occurrences: 1,
        }
    }

    /// The same event as another action (a second row written by the same step).
    pub(crate) fn as_action(&self, action: &str, extra: serde_json::Value) -> Self {
        let mut event = self.clone();
        event.kind = action.to_owned();
        if let (serde_json::Value::Object(detail), serde_json::Value::Object(extra)) =
            (&mut event.detail, extra)
        {
            detail.extend(extra);
        }
        event
    }

    pub(crate) fn from_row(r: &Row<'_>) -> Result<Self, StoreError> {
        let detail: String = get(r, "detail")?;
        Ok(Self {
            tenant_id: get(r, "tenant_id")?,
            at: get(r, "at")?,
            kind: get(r, "kind")?,
            client_id: get(r, "client_id")?,
            subject: get(r, "subject")?,
            detail: serde_json::from_str(&detail)
                .map_err(|e| StoreError::Corrupt(format!("audit detail: {e}")))?,
            occurrences: get(r, "occurrences")?,
        })
    }
}

/// A stored signing key; the private half is sealed.
#[derive(Clone, Debug)]
pub struct KeyRecord {
    /// Tenant.
    pub tenant_id: String,
    /// Key id (RFC 7638 thumbprint).
    pub kid: String,
    /// JWS alg.
    pub alg: String,
    /// Lifecycle status.
    pub status: String,
    /// Public JWK (JSON).
    pub public_jwk: String,
    /// AES-256-GCM sealed PKCS#8 private key.
    pub sealed_private: String,
    /// Creation time.
    pub created_at: UnixTime,
    /// When it became active.
    pub activated_at: Option<UnixTime>,
    /// When it leaves JWKS (retiring keys).
    pub retired_at: Option<UnixTime>,
}

impl KeyRecord {
    pub(crate) fn from_row(r: &Row<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            tenant_id: get(r, "tenant_id")?,
            kid: get(r, "kid")?,
            alg: get(r, "alg")?,
            status: get(r, "status")?,
            public_jwk: get(r, "public_jwk")?,
            sealed_private: get(r, "sealed_private")?,
            created_at: get(r, "created_at")?,
            activated_at: get(r, "activated_at")?,
            retired_at: get(r, "retired_at")?,
        })
    }
}

/// A pending authorization.
#[derive(Clone, Debug)]
pub struct InteractionRecord {
    /// Digest of the interaction id.
    pub id_digest: String,
    /// Tenant.
    pub tenant_id: String,
    /// Requesting client.
    pub client_id: String,
    /// The validated request (JSON).
    pub request: String,
    /// Digest of the browser-binding cookie.
    pub browser_digest: String,
    /// Subject once known.
    pub subject: Option<String>,
    /// When the browser was last sent to log in.
    pub login_requested_at: Option<UnixTime>,
    /// Creation time.
    pub created_at: UnixTime,
    /// Expiry.
    pub expires_at: UnixTime,
}

impl InteractionRecord {
    pub(crate) fn from_row(r: &Row<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            id_digest: get(r, "id_digest")?,
            tenant_id: get(r, "tenant_id")?,
            client_id: get(r, "client_id")?,
            request: get(r, "request")?,
            browser_digest: get(r, "browser_digest")?,
            subject: get(r, "subject")?,
            login_requested_at: get(r, "login_requested_at")?,
            created_at: get(r, "created_at")?,
            expires_at: get(r, "expires_at")?,
        })
    }
}

/// Facts about an authorization kept with its grant (JSON column `details`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct GrantDetails {
    /// The OIDC `claims` request (OIDC Core §5.5), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<serde_json::Value>,
    /// `acr` the host reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// `amr` the host reported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
}

/// A grant: what a user approved for a client in one authorization.
#[derive(Clone, Debug)]
pub struct GrantRecord {
    /// Grant id.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Client.
    pub client_id: String,
    /// Subject.
    pub subject: String,
    /// Space-separated scopes.
    pub scopes: String,
    /// JSON array of resource indicators.
    pub resources: String,
    /// JSON of [`GrantDetails`].
    pub details: String,
    /// When the user authenticated.
    pub auth_time: UnixTime,
    /// Creation time.
    pub created_at: UnixTime,
    /// Bound on the whole refresh family.
    pub expires_at: UnixTime,
}

impl GrantRecord {
    pub(crate) fn from_row(r: &Row<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            id: get(r, "id")?,
            tenant_id: get(r, "tenant_id")?,
            client_id: get(r, "client_id")?,
            subject: get(r, "subject")?,
            scopes: get(r, "scopes")?,
            resources: get(r, "resources")?,
            details: get(r, "details")?,
            auth_time: get(r, "auth_time")?,
            created_at: get(r, "created_at")?,
            expires_at: get(r, "expires_at")?,
        })
    }

    /// Parsed details.
    pub fn details(&self) -> Result<GrantDetails, StoreError> {
        serde_json::from_str(&self.details)
            .map_err(|e| StoreError::Corrupt(format!("grant details: {e}")))
    }
}

/// Standing consent.
#[derive(Clone, Debug, Default)]
pub struct ConsentRecord {
    /// Consented scopes.
    pub scopes: Vec<String>,
    /// Consented resources.
    pub resources: Vec<String>,
    /// Standard claims consented to through a `claims` request (OIDC Core §5.5), beyond what
    /// the scopes release.
    pub claims: Vec<String>,
}

impl ConsentRecord {
    pub(crate) fn from_row(r: &Row<'_>) -> Result<Self, StoreError> {
        let scopes: String = get(r, "scopes")?;
        let resources: String = get(r, "resources")?;
        let claims: String = get(r, "claims")?;
        Ok(Self {
            scopes: scopes
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            resources: parse_json_list(&resources)?,
            claims: parse_json_list(&claims)?,
        })
    }

    pub(crate) fn scopes_text(&self) -> String {
        self.scopes.join(" ")
    }

    pub(crate) fn resources_json(&self) -> String {
        to_json_list(&self.resources)
    }

    pub(crate) fn claims_json(&self) -> String {
        to_json_list(&self.claims)
    }

    /// True when this consent covers every requested scope, resource and claim beyond the
    /// scopes: only then may a request skip the consent page (OIDC Core §3.1.2.4).
    pub fn covers(&self, scopes: &[String], resources: &[String], claims: &[String]) -> bool {
        scopes.iter().all(|s| self.scopes.contains(s))
            && resources.iter().all(|r| self.resources.contains(r))
            && claims.iter().all(|c| self.claims.contains(c))
    }

    /// Adds what a request asked for and the user just approved.
    pub(crate) fn extend(&mut self, scopes: &[String], resources: &[String], claims: &[String]) {
        for (held, asked) in [
            (&mut self.scopes, scopes),
            (&mut self.resources, resources),
            (&mut self.claims, claims),
        ] {
            for item in asked {
                if !held.contains(item) {
                    held.push(item.clone());
                }
            }
        }
    }
}

/// What a token row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// Authorization code (RFC 6749 §1.3.1).
    Code,
    /// Access token (RFC 6749 §1.4).
    Access,
    /// Refresh token (RFC 6749 §1.5).
    Refresh,
}

impl TokenKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Code => "code",
            Self::Access => "access",
            Self::Refresh => "refresh",
        }
    }
}

/// A code, access token or refresh token row.
#[derive(Clone, Debug)]
pub struct TokenRecord {
    /// SHA-256 digest of the artifact.
    pub digest: String,
    /// Tenant.
    pub tenant_id: String,
    /// Kind.
    pub kind: TokenKind,
    /// Grant it came from (`None` for client credentials).
    pub grant_id: Option<String>,
    /// Client it was issued to.
    pub client_id: String,
    /// Subject, when issued for a user.
    pub subject: Option<String>,
    /// Space-separated scopes.
    pub scopes: String,
    /// JSON array of audiences / resources.
    pub resources: String,
    /// Issue time.
    pub created_at: UnixTime,
    /// Expiry.
    pub expires_at: UnixTime,
    /// When used (codes, rotated refresh tokens).
    pub consumed_at: Option<UnixTime>,
    /// When revoked.
    pub revoked_at: Option<UnixTime>,
    /// Code: the redirect_uri of the authorization request (empty when omitted).
    pub redirect_uri: Option<String>,
    /// Code: PKCE S256 challenge.
    pub code_challenge: Option<String>,
    /// Code: OIDC nonce.
    pub nonce: Option<String>,
    /// Access token format.
    pub format: Option<String>,
    /// JWT id.
    pub jti: Option<String>,
    /// RFC 8705 `x5t#S256` of the certificate the token is bound to.
    pub cnf_x5t: Option<String>,
}

impl TokenRecord {
    pub(crate) fn from_row(r: &Row<'_>) -> Result<Self, StoreError> {
        let kind: String = get(r, "kind")?;
        Ok(Self {
            digest: get(r, "digest")?,
            tenant_id: get(r, "tenant_id")?,
            kind: match kind.as_str() {
                "code" => TokenKind::Code,
                "access" => TokenKind::Access,
                "refresh" => TokenKind::Refresh,
                other => return Err(StoreError::Corrupt(format!("token kind {other}"))),
            },
            grant_id: get(r, "grant_id")?,
            client_id: get(r, "client_id")?,
            subject: get(r, "subject")?,
            scopes: get(r, "scopes")?,
            resources: get(r, "resources")?,
            created_at: get(r, "created_at")?,
            expires_at: get(r, "expires_at")?,
            consumed_at: get(r, "consumed_at")?,
            revoked_at: get(r, "revoked_at")?,
            redirect_uri: get(r, "redirect_uri")?,
            code_challenge: get(r, "code_challenge")?,
            nonce: get(r, "nonce")?,
            format: get(r, "format")?,
            jti: get(r, "jti")?,
            cnf_x5t: get(r, "cnf_x5t")?,
        })
    }

    /// Scopes as a list.
    pub fn scope_list(&self) -> Vec<String> {
        self.scopes
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Resources as a list.
    pub fn resource_list(&self) -> Result<Vec<String>, StoreError> {
        parse_json_list(&self.resources)
    }
}

pub(crate) fn parse_json_list(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("json list: {e}")))
}

pub(crate) fn to_json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}
