//! One-time values (client assertion and request object `jti`s, RFC 7523 §3, RFC 9101 §10.8;
//! DPoP proof `jti`s, RFC 9449 §11.1): recorded once until they expire, by one conditional
//! write that is correct across processes. The writes join the group commit, so a burst of
//! proofs costs one durable commit, not one each.

use super::db::params;
use super::error::StoreError;
use super::group_commit::{self, Append};
use super::handle::Store;
use crate::clock::UnixTime;

/// One conditional write: a new key is inserted, an expired entry is taken over, a live one is
/// left alone (no row changed).
const RECORD_ONCE: &str = "INSERT INTO replay (namespace, key_digest, expires_at) VALUES ($1, $2, $3) \
     ON CONFLICT (namespace, key_digest) DO UPDATE SET expires_at = excluded.expires_at \
     WHERE replay.expires_at <= $4";

/// [`RECORD_ONCE`] for many rows (distinct keys: the group commit sends each key once) in one
/// PostgreSQL statement, returning the keys it wrote. An expired entry is taken over when it
/// expired by the `now` of the row that meets it, as [`RECORD_ONCE`] would decide alone.
const RECORD_MANY_PG: &str = "INSERT INTO replay (namespace, key_digest, expires_at) \
     SELECT n, k, e FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS t(n, k, e, now) \
     ON CONFLICT (namespace, key_digest) DO UPDATE SET expires_at = excluded.expires_at \
     WHERE replay.expires_at <= (SELECT r.now FROM UNNEST($1::text[], $2::text[], $4::bigint[]) \
       AS r(n, k, now) WHERE r.n = excluded.namespace AND r.k = excluded.key_digest) \
     RETURNING namespace, key_digest";

/// The group commit records one-time values with [`RECORD_ONCE`] and [`RECORD_MANY_PG`]; a row
/// is identified by its namespace and key digest.
pub(super) const REPLAY: group_commit::Table = group_commit::Table {
    insert: RECORD_ONCE,
    insert_many_pg: RECORD_MANY_PG,
    key_params: 2,
};

impl Store {
    /// Records `key` in `namespace` until `expires_at`; false when it was already recorded and
    /// has not expired — a replay. One conditional write, correct across processes; it returns
    /// once committed.
    pub async fn record_once(
        &self,
        namespace: &str,
        key: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let digest = crate::secrets::token_digest(key);
        let written = self
            .writer
            .write(Append {
                table: REPLAY,
                params: params![namespace, digest, expires_at, now],
            })
            .await?;
        Ok(written == 1)
    }
}
