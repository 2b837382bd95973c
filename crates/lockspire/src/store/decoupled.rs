//! Decoupled authorizations: a client waits, polling with a code, while the user decides on
//! another device — the device authorization grant (RFC 8628) and backchannel authentication
//! (CIBA). Every transition is one conditional write: a poll that comes too early, the user's
//! decision, and the single redemption of an approved request, whose replay revokes the grant
//! the approval created.

use super::db::{Row, get, params, parse_json_list, to_json_list};
use super::driver::Tx;
use super::error::StoreError;
use super::handle::Store;
use super::tokens::{Issued, SingleUseTable, UserGrant};
use crate::clock::UnixTime;
use crate::model::authorization_details::AuthorizationDetails;
use crate::model::client::ClientId;
use crate::model::scope::ScopeSet;

/// Which flow a decoupled request belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecoupledKind {
    /// The device authorization grant (RFC 8628).
    Device,
    /// Client-initiated backchannel authentication (CIBA Core).
    Ciba,
}

impl DecoupledKind {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Device => "device",
            Self::Ciba => "ciba",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "device" => Ok(Self::Device),
            "ciba" => Ok(Self::Ciba),
            other => Err(StoreError::Corrupt(format!(
                "decoupled request kind {other}"
            ))),
        }
    }
}

/// Where a decoupled request stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecoupledStatus {
    /// The user has not decided.
    Pending,
    /// The user approved it; the approval created this grant.
    Approved(UserGrant),
    /// The user denied it.
    Denied,
}

/// A decoupled request.
#[derive(Clone, Debug)]
pub struct DecoupledRecord {
    /// Its digest (of the `device_code`), client, scopes, resources and lifetime. Requests
    /// are never revoked, only decided, consumed or expired.
    pub issued: Issued,
    /// Its flow.
    pub kind: DecoupledKind,
    /// Keyed digest of the user code (device requests).
    pub user_code: Option<String>,
    /// The user it is for: named by the client (CIBA), or the one who decided (device).
    pub subject: Option<String>,
    /// What else the request asked, as JSON.
    pub request: String,
    /// Where it stands.
    pub status: DecoupledStatus,
    /// Seconds the client must wait between polls (RFC 8628 §3.5).
    pub poll_interval: i64,
}

/// Every column of a request row (static text, so every statement stays a `&'static str`).
macro_rules! columns {
    () => {
        "digest, tenant_id, kind, client_id, user_code, scopes, resources, request, status, \
         subject, grant_id, poll_interval, created_at, expires_at, consumed_at"
    };
}

impl DecoupledRecord {
    fn from_row(r: &Row<'_>) -> Result<Self, StoreError> {
        let status: String = get(r, "status")?;
        let grant_id: Option<String> = get(r, "grant_id")?;
        let subject: Option<String> = get(r, "subject")?;
        let status = match (status.as_str(), grant_id, subject.clone()) {
            ("pending", None, _) => DecoupledStatus::Pending,
            ("approved", Some(grant_id), Some(subject)) => {
                DecoupledStatus::Approved(UserGrant { grant_id, subject })
            }
            ("denied", None, _) => DecoupledStatus::Denied,
            (other, _, _) => {
                return Err(StoreError::Corrupt(format!(
                    "decoupled request status {other} with its grant and subject inconsistent"
                )));
            }
        };
        Ok(Self {
            issued: Issued {
                digest: get(r, "digest")?,
                tenant_id: get(r, "tenant_id")?,
                client_id: ClientId::new(get::<String>(r, "client_id")?),
                scopes: ScopeSet::from_stored(&get::<String>(r, "scopes")?),
                resources: parse_json_list(&get::<String>(r, "resources")?)?,
                authorization_details: AuthorizationDetails::default(),
                created_at: get(r, "created_at")?,
                expires_at: get(r, "expires_at")?,
                consumed_at: get(r, "consumed_at")?,
                revoked_at: None,
            },
            kind: DecoupledKind::parse(&get::<String>(r, "kind")?)?,
            user_code: get(r, "user_code")?,
            subject,
            request: get(r, "request")?,
            status,
            poll_interval: get(r, "poll_interval")?,
        })
    }
}

/// What a poll of a pending request found (RFC 8628 §3.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// The client waited long enough; the request is still pending.
    OnTime,
    /// The client polled before its interval passed; the interval is now 5 s longer.
    TooEarly,
    /// The request is no longer pending (decided or expired since it was read).
    Changed,
}

/// How the user decided.
#[derive(Clone, Copy, Debug)]
pub enum Decision<'a> {
    /// Approved, creating the grant with this id.
    Approve(&'a str),
    /// Denied.
    Deny,
}

/// Decoupled requests are single-use once approved, like codes (`$3` is the kind).
pub(crate) const DECOUPLED_SINGLE_USE: SingleUseTable = SingleUseTable {
    consume: "UPDATE decoupled_requests SET consumed_at = $1 WHERE digest = $2 AND kind = $3 \
              AND status = 'approved' AND consumed_at IS NULL AND expires_at > $1",
    revoke_grant: "UPDATE grants SET revoked_at = $1 WHERE revoked_at IS NULL AND id = \
             (SELECT grant_id FROM decoupled_requests WHERE digest = $2 AND kind = $3 AND consumed_at IS NOT NULL) \
             RETURNING id, client_id, subject",
    seen: "SELECT 1 FROM decoupled_requests WHERE $1 = $1 AND digest = $2 AND kind = $3 \
           AND consumed_at IS NOT NULL",
};

impl Store {
    /// Stores a new request; false when its code or user code is already taken (the caller
    /// draws another).
    pub async fn insert_decoupled(&self, r: &DecoupledRecord) -> Result<bool, StoreError> {
        let (status, grant_id) = match &r.status {
            DecoupledStatus::Pending => ("pending", None),
            DecoupledStatus::Approved(user) => ("approved", Some(user.grant_id.as_str())),
            DecoupledStatus::Denied => ("denied", None),
        };
        let subject = match &r.status {
            DecoupledStatus::Approved(user) => Some(user.subject.as_str()),
            _ => r.subject.as_deref(),
        };
        let i = &r.issued;
        let inserted = self
            .db
            .execute(
                "INSERT INTO decoupled_requests (digest, tenant_id, kind, client_id, user_code, scopes, \
                 resources, request, status, subject, grant_id, poll_interval, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT DO NOTHING",
                params![
                    i.digest,
                    i.tenant_id,
                    r.kind.as_str(),
                    i.client_id,
                    r.user_code.as_deref(),
                    i.scopes,
                    to_json_list(&i.resources),
                    r.request,
                    status,
                    subject,
                    grant_id,
                    r.poll_interval,
                    i.created_at,
                    i.expires_at
                ],
            )
            .await?;
        Ok(inserted == 1)
    }

    /// A request of any state, by its digest.
    pub async fn decoupled(&self, digest: &str) -> Result<Option<DecoupledRecord>, StoreError> {
        self.db
            .fetch_optional(
                concat!(
                    "SELECT ",
                    columns!(),
                    " FROM decoupled_requests WHERE digest = $1"
                ),
                params![digest],
                DecoupledRecord::from_row,
            )
            .await
    }

    /// The pending, unexpired device request a user code names.
    pub async fn pending_device_request(
        &self,
        tenant: &str,
        user_code: &str,
        now: UnixTime,
    ) -> Result<Option<DecoupledRecord>, StoreError> {
        self.db
            .fetch_optional(
                concat!(
                    "SELECT ",
                    columns!(),
                    " FROM decoupled_requests WHERE tenant_id = $1 AND user_code = $2 \
                     AND status = 'pending' AND expires_at > $3"
                ),
                params![tenant, user_code, now],
                DecoupledRecord::from_row,
            )
            .await
    }

    /// The pending, unexpired backchannel requests for `subject`, oldest first.
    pub async fn pending_backchannel_requests(
        &self,
        tenant: &str,
        subject: &str,
        now: UnixTime,
    ) -> Result<Vec<DecoupledRecord>, StoreError> {
        self.db
            .fetch_all(
                concat!(
                    "SELECT ",
                    columns!(),
                    " FROM decoupled_requests WHERE tenant_id = $1 AND subject = $2 AND kind = 'ciba' \
                     AND status = 'pending' AND expires_at > $3 ORDER BY created_at, digest LIMIT 100"
                ),
                params![tenant, subject, now],
                DecoupledRecord::from_row,
            )
            .await
    }

    /// Records a poll of a pending request (RFC 8628 §3.5): on time when its interval has
    /// passed since the last poll; otherwise the interval grows by 5 s for this and every later
    /// poll. Each outcome is one conditional write, so concurrent polls cannot both be on time.
    pub async fn poll_decoupled(&self, digest: &str, now: UnixTime) -> Result<Poll, StoreError> {
        let on_time = self
            .db
            .execute(
                "UPDATE decoupled_requests SET last_polled_at = $1 WHERE digest = $2 \
                 AND status = 'pending' AND expires_at > $1 \
                 AND (last_polled_at IS NULL OR last_polled_at + poll_interval <= $1)",
                params![now, digest],
            )
            .await?;
        if on_time == 1 {
            return Ok(Poll::OnTime);
        }
        let early = self
            .db
            .execute(
                "UPDATE decoupled_requests SET last_polled_at = $1, poll_interval = poll_interval + 5 \
                 WHERE digest = $2 AND status = 'pending' AND expires_at > $1",
                params![now, digest],
            )
            .await?;
        Ok(if early == 1 {
            Poll::TooEarly
        } else {
            Poll::Changed
        })
    }
}

impl Store {
    /// Drops a request nobody was told about (the host could not reach its user): one
    /// conditional delete of a request still pending.
    pub async fn withdraw_decoupled(&self, digest: &str) -> Result<bool, StoreError> {
        let gone = self
            .db
            .execute(
                "DELETE FROM decoupled_requests WHERE digest = $1 AND status = 'pending'",
                params![digest],
            )
            .await?;
        Ok(gone == 1)
    }
}

impl Tx {
    /// Records the user's decision on a pending, unexpired request, and replaces what the row
    /// keeps of the request with `request` (the decision may forget what it no longer needs);
    /// false when it was already decided (a double submit), has expired, or names another user
    /// than `subject`.
    pub async fn decide_decoupled(
        &mut self,
        digest: &str,
        subject: &str,
        decision: Decision<'_>,
        request: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let (status, grant_id) = match decision {
            Decision::Approve(grant) => ("approved", Some(grant)),
            Decision::Deny => ("denied", None),
        };
        let decided = self
            .execute(
                "UPDATE decoupled_requests SET status = $1, subject = $2, grant_id = $3, decided_at = $4, \
                 request = $6 WHERE digest = $5 AND status = 'pending' AND expires_at > $4 \
                 AND (subject IS NULL OR subject = $2)",
                params![status, subject, grant_id, now, digest, request],
            )
            .await?;
        Ok(decided == 1)
    }
}
