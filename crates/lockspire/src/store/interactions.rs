//! Pending authorizations between `/authorize` and the answer to the client (RFC 6749 §4.1.1):
//! who the host says is signed in, and one atomic completion.

use super::db::{Row, get, params};
use super::driver::Tx;
use super::error::StoreError;
use super::group_commit;
use super::handle::Store;
use crate::clock::UnixTime;

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

/// Starts one interaction.
const INSERT_INTERACTION: &str = "INSERT INTO interactions (id_digest, tenant_id, client_id, request, browser_digest, created_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// [`INSERT_INTERACTION`] for many rows in one PostgreSQL statement (as [`INSERT_TOKENS_PG`]).
const INSERT_INTERACTIONS_PG: &str = "INSERT INTO interactions (id_digest, tenant_id, client_id, request, browser_digest, created_at, expires_at) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[])";

/// The group commit appends with [`INSERT_INTERACTION`] and [`INSERT_INTERACTIONS_PG`].
const INTERACTIONS: group_commit::Table = group_commit::Table {
    insert: INSERT_INTERACTION,
    insert_many_pg: INSERT_INTERACTIONS_PG,
    key_params: 0,
};

impl Store {
    /// Stores a pending authorization.
    ///
    /// Every authorization request, signed in or not, starts one, so the write joins the group
    /// commit: a burst of requests shares durable commits instead of costing one each.
    pub async fn insert_interaction(&self, i: &InteractionRecord) -> Result<(), StoreError> {
        self.writer
            .insert(group_commit::Append {
                table: INTERACTIONS,
                params: params![
                    i.id_digest,
                    i.tenant_id,
                    i.client_id,
                    i.request,
                    i.browser_digest,
                    i.created_at,
                    i.expires_at
                ],
            })
            .await
    }
    /// A pending (not completed, not expired) interaction.
    pub async fn pending_interaction(
        &self,
        id_digest: &str,
        now: UnixTime,
    ) -> Result<Option<InteractionRecord>, StoreError> {
        self.db.fetch_optional("SELECT id_digest, tenant_id, client_id, request, browser_digest, subject, login_requested_at, created_at, expires_at \
             FROM interactions WHERE id_digest = $1 AND completed_at IS NULL AND expires_at > $2", params![id_digest, now], InteractionRecord::from_row).await
    }
    /// Records that the browser was sent to the host's login page.
    pub async fn mark_login_requested(
        &self,
        id_digest: &str,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE interactions SET login_requested_at = $1 WHERE id_digest = $2",
                params![now, id_digest],
            )
            .await?;
        Ok(())
    }
    /// Records the subject the host reported for an interaction.
    pub async fn set_interaction_subject(
        &self,
        id_digest: &str,
        subject: &str,
    ) -> Result<(), StoreError> {
        self.db.execute("UPDATE interactions SET subject = $1 WHERE id_digest = $2 AND completed_at IS NULL", params![subject, id_digest]).await?;
        Ok(())
    }
}

impl Tx {
    /// Atomically marks the interaction completed; false when it already was (a double submit)
    /// or has expired.
    pub async fn complete_interaction(
        &mut self,
        id_digest: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let done = self.execute("UPDATE interactions SET completed_at = $1 WHERE id_digest = $2 AND completed_at IS NULL AND expires_at > $1", params![now, id_digest]).await?;
        Ok(done == 1)
    }
}
