//! What a user's approval records, whichever page it was given on (the consent page of an
//! authorization request, the device verification page): the grant every token of this
//! authorization will hang from and, when the user was asked, the standing consent it widens
//! with an audit event — all inside the transaction that completes the request, so they appear
//! together with its outcome or not at all.

use serde_json::Value;

use crate::host::{Context, Session};
use crate::model::authorization_details::AuthorizationDetails;
use crate::model::client::ClientId;
use crate::model::scope::ScopeSet;
use crate::protocol::error::OAuthError;
use crate::protocol::provider::Provider;
use crate::secrets::random_id;
use crate::store::{Actor, ConsentRecord, DecoupledRecord, GrantDetails, GrantRecord, Outcome, Tx};

/// How the pages that ask for an approval name the signed-in user, so they can tell they are
/// approving as the account they mean: the host's `name`, else `preferred_username`, else
/// `email` (its userinfo claims). `None` when the host has none, or fails: the page still
/// works without it.
pub(crate) async fn account_label(
    p: &Provider,
    session: &Session,
    ctx: &Context,
) -> Option<String> {
    let claims = p.resolver.claims(&session.subject, ctx).await.ok()??;
    ["name", "preferred_username", "email"]
        .iter()
        .find_map(|c| claims.userinfo.get(*c).and_then(Value::as_str))
        .map(str::to_owned)
}

/// What the user approved, and for whom.
pub(crate) struct Approval<'a> {
    pub(crate) client_id: &'a ClientId,
    pub(crate) session: &'a Session,
    pub(crate) scopes: &'a ScopeSet,
    pub(crate) resources: &'a [String],
    /// The OIDC `claims` request (OIDC Core §5.5), if any.
    pub(crate) claims: Option<Value>,
    /// The standard claims it names beyond the scopes, which the approval releases.
    pub(crate) claims_beyond_scopes: Vec<String>,
    pub(crate) authorization_details: &'a AuthorizationDetails,
    /// `Some` when the user was asked just now, holding the standing consent read before the
    /// transaction began (its first statement must be a write: see `Store::begin`); `None`
    /// when a remembered consent covered the request.
    pub(crate) asked: Option<Option<ConsentRecord>>,
    /// Where the user approved, for the audit log.
    pub(crate) on: &'static str,
    /// The OP session the approval was given in; `None` when it was given on another device
    /// than the client's (device flow, CIBA): logging out of that browser does not end the
    /// client's session.
    pub(crate) op_session: Option<String>,
}

/// Records the grant of `approval` in `tx` and, when the user was asked, widens their standing
/// consent and audits it. Returns the grant.
pub(crate) async fn record(
    p: &Provider,
    tx: &mut Tx,
    approval: Approval<'_>,
) -> Result<GrantRecord, OAuthError> {
    let grant = approval.grant(p)?;
    record_grant(p, tx, approval, grant).await
}

impl<'a> Approval<'a> {
    /// The user's approval of a decoupled request (device, CIBA), asked on another device:
    /// exactly what the request asked, nothing beyond.
    pub(crate) fn of_request(
        request: &'a DecoupledRecord,
        session: &'a Session,
        previous: Option<ConsentRecord>,
        on: &'static str,
    ) -> Self {
        Self {
            client_id: &request.issued.client_id,
            session,
            scopes: &request.issued.scopes,
            resources: &request.issued.resources,
            claims: None,
            claims_beyond_scopes: Vec::new(),
            authorization_details: &request.issued.authorization_details,
            asked: Some(previous),
            on,
            op_session: None,
        }
    }
}

impl Approval<'_> {
    /// The grant the approval creates, not yet stored: tokens can be minted from it before the
    /// transaction that records it begins.
    pub(crate) fn grant(&self, p: &Provider) -> Result<GrantRecord, OAuthError> {
        let now = p.now();
        let details = GrantDetails {
            claims: self.claims.clone(),
            acr: self.session.acr.clone(),
            amr: self.session.amr.clone(),
            authorization_details: self.authorization_details.clone(),
        };
        Ok(GrantRecord {
            id: random_id(),
            tenant_id: p.tenant.clone(),
            client_id: self.client_id.clone(),
            subject: self.session.subject.as_str().to_owned(),
            scopes: self.scopes.clone(),
            resources: self.resources.to_vec(),
            details: serde_json::to_string(&details)
                .map_err(|e| OAuthError::internal(e.to_string()))?,
            auth_time: self.session.auth_time,
            created_at: now,
            expires_at: now + p.config.lifetimes.refresh_token,
            sid: self
                .op_session
                .as_ref()
                .map(|s| p.secrets.client_session_id(s, self.client_id)),
            op_session: self.op_session.clone(),
        })
    }
}

/// [`record`] of the grant [`Approval::grant`] made.
pub(crate) async fn record_grant(
    p: &Provider,
    tx: &mut Tx,
    approval: Approval<'_>,
    grant: GrantRecord,
) -> Result<GrantRecord, OAuthError> {
    let now = p.now();
    let subject = approval.session.subject.as_str();
    tx.insert_grant(&grant).await?;
    if let Some(previous) = approval.asked {
        let mut merged = previous.unwrap_or_default();
        merged.extend(
            approval.scopes,
            approval.resources,
            &approval.claims_beyond_scopes,
        );
        merged
            .authorization_details
            .extend(approval.authorization_details);
        tx.upsert_consent(&p.tenant, subject, &grant.client_id, &merged, now)
            .await?;
        let event = p
            .security_event(
                "consent_granted",
                Actor::User(subject),
                Outcome::Done,
                Some(&grant.client_id),
                Some(subject),
                approval.on,
            )
            .as_action(
                "consent_granted",
                serde_json::json!({
                    "scopes": approval.scopes,
                    "resources": approval.resources,
                    "claims": approval.claims_beyond_scopes,
                    "authorization_details": approval.authorization_details,
                }),
            );
        tx.audit(&event).await?;
    }
    Ok(grant)
}
