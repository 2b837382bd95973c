//! Grants (what a user approved for a client in one authorization) and standing consents. A
//! revoked grant takes every code and token issued from it along.

use serde::{Deserialize, Serialize};

use super::audit::AuditEvent;
use super::db::{Row, get, params, parse_json_list, to_json_list};
use super::driver::Tx;
use super::error::StoreError;
use super::handle::Store;
use crate::clock::UnixTime;
use crate::model::authorization_details::AuthorizationDetails;
use crate::model::client::ClientId;
use crate::model::scope::ScopeSet;

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
    /// The `authorization_details` the user approved (RFC 9396 §2).
    #[serde(default, skip_serializing_if = "AuthorizationDetails::is_empty")]
    pub authorization_details: AuthorizationDetails,
}

/// A grant: what a user approved for a client in one authorization.
#[derive(Clone, Debug)]
pub struct GrantRecord {
    /// Grant id.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Client.
    pub client_id: ClientId,
    /// Subject.
    pub subject: String,
    /// Scopes.
    pub scopes: ScopeSet,
    /// Resource indicators (RFC 8707).
    pub resources: Vec<String>,
    /// JSON of [`GrantDetails`].
    pub details: String,
    /// When the user authenticated.
    pub auth_time: UnixTime,
    /// Creation time.
    pub created_at: UnixTime,
    /// Bound on the whole refresh family.
    pub expires_at: UnixTime,
    /// The OP session it was made in; `None` for a grant made without a browser (device flow,
    /// CIBA) and once the session ended.
    pub op_session: Option<String>,
    /// The session id its client knows that session by (the `sid` of OpenID Connect
    /// Back-Channel Logout 1.0 §2.1); `None` when `op_session` is.
    pub sid: Option<String>,
}

impl GrantRecord {
    pub(crate) fn from_row(r: &Row<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            id: get(r, "id")?,
            tenant_id: get(r, "tenant_id")?,
            client_id: ClientId::new(get::<String>(r, "client_id")?),
            subject: get(r, "subject")?,
            scopes: ScopeSet::from_stored(&get::<String>(r, "scopes")?),
            resources: parse_json_list(&get::<String>(r, "resources")?)?,
            details: get(r, "details")?,
            auth_time: get(r, "auth_time")?,
            created_at: get(r, "created_at")?,
            expires_at: get(r, "expires_at")?,
            op_session: get(r, "op_session")?,
            sid: get(r, "sid")?,
        })
    }

    /// Parsed details.
    pub fn details(&self) -> Result<GrantDetails, StoreError> {
        serde_json::from_str(&self.details)
            .map_err(|e| StoreError::Corrupt(format!("grant details: {e}")))
    }
}

/// A grant of an ended OP session.
#[derive(Clone, Debug)]
pub struct SessionGrant {
    /// Grant id.
    pub id: String,
    /// Its client.
    pub client_id: ClientId,
    /// Its user.
    pub subject: String,
    /// Its scopes.
    pub scopes: ScopeSet,
    /// When it was revoked, if it was.
    pub revoked_at: Option<UnixTime>,
    /// Its expiry.
    pub expires_at: UnixTime,
}

impl SessionGrant {
    /// Unrevoked and unexpired at `now`.
    pub fn live_at(&self, now: UnixTime) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// Standing consent.
#[derive(Clone, Debug, Default)]
pub struct ConsentRecord {
    /// Consented scopes.
    pub scopes: ScopeSet,
    /// Consented resources.
    pub resources: Vec<String>,
    /// Standard claims consented to through a `claims` request (OIDC Core §5.5), beyond what
    /// the scopes release.
    pub claims: Vec<String>,
    /// `authorization_details` consented to (RFC 9396 §2).
    pub authorization_details: AuthorizationDetails,
}

impl ConsentRecord {
    pub(crate) fn from_row(r: &Row<'_>) -> Result<Self, StoreError> {
        let scopes: String = get(r, "scopes")?;
        let resources: String = get(r, "resources")?;
        let claims: String = get(r, "claims")?;
        Ok(Self {
            scopes: ScopeSet::from_stored(&scopes),
            resources: parse_json_list(&resources)?,
            claims: parse_json_list(&claims)?,
            authorization_details: AuthorizationDetails::from_stored(
                get::<Option<String>>(r, "authorization_details")?.as_deref(),
            ),
        })
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
        for scope in scopes {
            self.scopes.insert(scope);
        }
        for (held, asked) in [(&mut self.resources, resources), (&mut self.claims, claims)] {
            for item in asked {
                if !held.contains(item) {
                    held.push(item.clone());
                }
            }
        }
    }
}

/// A grant that is unrevoked, unexpired and whose client is active.
const LIVE_GRANT: &str = "SELECT g.id, g.tenant_id, g.client_id, g.subject, g.scopes, g.resources, g.details, g.auth_time, g.created_at, g.expires_at, g.op_session, g.sid \
     FROM grants g JOIN clients c ON c.tenant_id = g.tenant_id AND c.client_id = g.client_id \
     WHERE g.id = $1 AND g.revoked_at IS NULL AND g.expires_at > $2 AND c.status = 'active'";

/// Revokes a grant; its codes and tokens stop working with it (they are checked against it).
const REVOKE_GRANT: &str = "UPDATE grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL";

impl Store {
    /// The standing consent of `subject` for `client_id`.
    pub async fn consent(
        &self,
        tenant: &str,
        subject: &str,
        client_id: &str,
    ) -> Result<Option<ConsentRecord>, StoreError> {
        self.db.fetch_optional("SELECT scopes, resources, claims, authorization_details FROM consents WHERE tenant_id = $1 AND subject = $2 AND client_id = $3", params![tenant, subject, client_id], ConsentRecord::from_row).await
    }
    /// The grant `id` if it is still live (unrevoked, unexpired, its client active), read
    /// outside any transaction.
    pub async fn live_grant(
        &self,
        id: &str,
        now: UnixTime,
    ) -> Result<Option<GrantRecord>, StoreError> {
        self.db
            .fetch_optional(LIVE_GRANT, params![id, now], GrantRecord::from_row)
            .await
    }
    /// The clients with grants in the OP session `op_session`.
    pub async fn session_clients(
        &self,
        tenant: &str,
        op_session: &str,
    ) -> Result<Vec<ClientId>, StoreError> {
        self.db
            .fetch_all(
                "SELECT DISTINCT client_id FROM grants WHERE tenant_id = $1 AND op_session = $2",
                params![tenant, op_session],
                |r| Ok(ClientId::new(get::<String>(r, "client_id")?)),
            )
            .await
    }
    /// The live grants (unrevoked, unexpired) a client knows by the session id `sid`, oldest
    /// first.
    pub async fn grants_by_sid(
        &self,
        tenant: &str,
        sid: &str,
        now: UnixTime,
    ) -> Result<Vec<GrantRecord>, StoreError> {
        self.db.fetch_all("SELECT id, tenant_id, client_id, subject, scopes, resources, details, auth_time, created_at, expires_at, op_session, sid \
             FROM grants WHERE tenant_id = $1 AND sid = $2 AND revoked_at IS NULL AND expires_at > $3 \
             ORDER BY created_at, id", params![tenant, sid, now], GrantRecord::from_row).await
    }
    /// The grant a token came from.
    pub async fn grant(&self, id: &str) -> Result<Option<GrantRecord>, StoreError> {
        self.db.fetch_optional("SELECT id, tenant_id, client_id, subject, scopes, resources, details, auth_time, created_at, expires_at, op_session, sid \
             FROM grants WHERE id = $1", params![id], GrantRecord::from_row).await
    }
    /// Revokes a grant and with it every code and token issued from it.
    pub async fn revoke_grant(&self, grant_id: &str, now: UnixTime) -> Result<(), StoreError> {
        self.db
            .execute(REVOKE_GRANT, params![now, grant_id])
            .await?;
        Ok(())
    }
    /// The clients `subject` has standing consent for, with what was consented.
    pub async fn consents_of(
        &self,
        tenant: &str,
        subject: &str,
    ) -> Result<Vec<(String, ConsentRecord, UnixTime)>, StoreError> {
        self.db
            .fetch_all(
                "SELECT client_id, scopes, resources, claims, authorization_details, updated_at FROM consents \
             WHERE tenant_id = $1 AND subject = $2 ORDER BY updated_at DESC, client_id",
                params![tenant, subject],
                |r| {
                    Ok((
                        get(r, "client_id")?,
                        ConsentRecord::from_row(r)?,
                        get(r, "updated_at")?,
                    ))
                },
            )
            .await
    }
    /// Withdraws `subject`'s consent for `client_id` and revokes every grant between them (and
    /// so every token issued from those grants). Returns false when there was nothing to revoke.
    pub async fn revoke_authorization(
        &self,
        tenant: &str,
        subject: &str,
        client_id: &str,
        now: UnixTime,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let grants = tx.execute("UPDATE grants SET revoked_at = $1 WHERE tenant_id = $2 AND subject = $3 AND client_id = $4 AND revoked_at IS NULL", params![now, tenant, subject, client_id]).await?;
        let consents = tx
            .execute(
                "DELETE FROM consents WHERE tenant_id = $1 AND subject = $2 AND client_id = $3",
                params![tenant, subject, client_id],
            )
            .await?;
        if grants + consents > 0 {
            tx.audit(event).await?;
        }
        tx.commit().await?;
        Ok(grants + consents > 0)
    }
}

impl Tx {
    /// Takes every grant out of the OP session `op_session`, which has ended (OpenID Connect
    /// Back-Channel Logout 1.0 §2.7), and returns them: one conditional write, so of two
    /// processes ending the same session at once, one gets the grants and the other none.
    pub async fn end_session(
        &mut self,
        tenant: &str,
        op_session: &str,
    ) -> Result<Vec<SessionGrant>, StoreError> {
        self.fetch_all(
            "UPDATE grants SET op_session = NULL, sid = NULL WHERE tenant_id = $1 AND op_session = $2 \
             RETURNING id, client_id, subject, scopes, revoked_at, expires_at",
            params![tenant, op_session],
            |r| {
                Ok(SessionGrant {
                    id: get(r, "id")?,
                    client_id: ClientId::new(get::<String>(r, "client_id")?),
                    subject: get(r, "subject")?,
                    scopes: ScopeSet::from_stored(&get::<String>(r, "scopes")?),
                    revoked_at: get(r, "revoked_at")?,
                    expires_at: get(r, "expires_at")?,
                })
            },
        )
        .await
    }
    /// Revokes a grant, with every code and token issued from it.
    pub async fn revoke_grant(&mut self, id: &str, now: UnixTime) -> Result<(), StoreError> {
        self.execute(REVOKE_GRANT, params![now, id]).await?;
        Ok(())
    }
    /// Inserts a grant.
    pub async fn insert_grant(&mut self, g: &GrantRecord) -> Result<(), StoreError> {
        self.execute("INSERT INTO grants (id, tenant_id, client_id, subject, scopes, resources, details, auth_time, created_at, expires_at, op_session, sid) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)", params![g.id, g.tenant_id, g.client_id, g.subject, g.scopes, to_json_list(&g.resources), g.details, g.auth_time, g.created_at, g.expires_at, g.op_session, g.sid]).await?;
        Ok(())
    }
    /// Records or widens standing consent.
    pub async fn upsert_consent(
        &mut self,
        tenant: &str,
        subject: &str,
        client_id: &str,
        consent: &ConsentRecord,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        self.execute("INSERT INTO consents (tenant_id, subject, client_id, scopes, resources, claims, updated_at, authorization_details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (tenant_id, subject, client_id) DO UPDATE SET scopes = $4, resources = $5, claims = $6, updated_at = $7, authorization_details = $8",
             params![tenant, subject, client_id, consent.scopes, consent.resources_json(), consent.claims_json(), now, consent.authorization_details.to_stored()]).await?;
        Ok(())
    }
    /// Reads a grant inside the step, with the client status, to decide whether tokens may be
    /// issued from it.
    pub async fn live_grant(
        &mut self,
        id: &str,
        now: UnixTime,
    ) -> Result<Option<GrantRecord>, StoreError> {
        self.fetch_optional(LIVE_GRANT, params![id, now], GrantRecord::from_row)
            .await
    }
}
