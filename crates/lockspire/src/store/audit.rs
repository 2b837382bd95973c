//! The audit log: security events, each written in the transaction of the change it records,
//! or through the group commit when it stands alone. Identical events of one minute collapse
//! into one row with a count, so a flood of refused requests cannot grow the table per request.

use super::changes;
use super::db::{Param, Row, get, params};
use super::driver::Tx;
use super::error::StoreError;
use super::group_commit;
use super::handle::Store;
use crate::clock::UnixTime;
use crate::model::client::ClientId;

/// A security-relevant event. `detail` never holds a secret.
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
    Client(&'a ClientId),
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
    /// A security event: `action` by `actor`, with its outcome and reason, about
    /// a client and a user where there are ones.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn security(
        tenant: &str,
        at: UnixTime,
        action: &str,
        actor: Actor<'_>,
        outcome: Outcome,
        client_id: Option<&ClientId>,
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
            client_id: client_id.map(ClientId::to_string),
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

/// Appends one audit event, or counts one more occurrence of an identical event of the same
/// minute (the id is the digest of both, [`audit_id`]).
const INSERT_AUDIT: &str = "INSERT INTO audit_events (id, tenant_id, at, kind, client_id, subject, detail) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (id) DO UPDATE SET occurrences = audit_events.occurrences + 1";

/// [`INSERT_AUDIT`] for many rows in one PostgreSQL statement (as [`INSERT_TOKENS_PG`]).
/// Identical events within the batch are grouped first: one statement may not update a row
/// twice.
const INSERT_AUDIT_PG: &str = "INSERT INTO audit_events (id, tenant_id, at, kind, client_id, subject, detail, occurrences) \
     SELECT id, min(tenant_id), min(at), min(kind), min(client_id), min(subject), min(detail), count(*) \
     FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[]) \
         AS e(id, tenant_id, at, kind, client_id, subject, detail) \
     GROUP BY id \
     ON CONFLICT (id) DO UPDATE SET occurrences = audit_events.occurrences + excluded.occurrences";

/// The group commit appends with [`INSERT_AUDIT`] and [`INSERT_AUDIT_PG`].
const AUDIT: group_commit::Table = group_commit::Table {
    insert: INSERT_AUDIT,
    insert_many_pg: INSERT_AUDIT_PG,
    key_params: 0,
};

/// The key of an audit event: a digest of everything it says but the second it happened, so
/// identical events of one minute share it and collapse into one row.
fn audit_id(event: &AuditEvent, detail: &str) -> String {
    let minute = event.at.div_euclid(60);
    let identity = serde_json::json!([
        event.tenant_id,
        event.kind,
        event.client_id,
        event.subject,
        detail,
        minute
    ]);
    crate::secrets::token_digest(&identity.to_string())
}

/// The parameters of [`INSERT_AUDIT`].
fn audit_params(event: &AuditEvent) -> Vec<Param> {
    let detail = event.detail.to_string();
    params![
        audit_id(event, &detail),
        event.tenant_id,
        event.at,
        event.kind,
        event.client_id,
        event.subject,
        detail
    ]
}

impl Store {
    /// Appends an audit event; an identical one of the same minute only counts one more
    /// occurrence. It joins the group commit: a flood of failed client authentications, each of
    /// which leaves one, shares commits instead of costing one each, and shares rows too.
    pub async fn audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.writer
            .insert(group_commit::Append {
                table: AUDIT,
                params: audit_params(event),
            })
            .await
    }
    /// One change statement and the audit event that records it, in one transaction, with the
    /// announcement of `change` when something changed: the event and the announcement exist
    /// exactly when the change does. Returns the rows changed.
    pub(super) async fn change_audited(
        &self,
        sql: &'static str,
        params: Vec<Param>,
        event: &AuditEvent,
        change: Option<changes::Change>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let changed = tx.execute(sql, params).await?;
        let mut announced = None;
        if changed > 0 {
            tx.audit(event).await?;
            if let Some(change) = change {
                announced = Some(self.announce_in(&mut tx, change).await?);
            }
        }
        tx.commit().await?;
        if let Some(announced) = announced {
            self.announced(announced).await;
        }
        Ok(changed)
    }
    /// The newest audit events, newest first.
    pub async fn audit_events(
        &self,
        tenant: &str,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.db.fetch_all("SELECT tenant_id, at, kind, client_id, subject, detail, occurrences FROM audit_events \
             WHERE tenant_id = $1 ORDER BY at DESC, id DESC LIMIT $2", params![tenant, limit], AuditEvent::from_row).await
    }
}

impl Tx {
    /// Writes an audit event as part of this step, so it exists exactly when the change does.
    pub(crate) async fn audit(&mut self, event: &AuditEvent) -> Result<(), StoreError> {
        self.execute(INSERT_AUDIT, audit_params(event))
            .await
            .map(drop)
    }
}
