//! Storage: SQLite (embedded default) and PostgreSQL behind one set of
//! intent-named operations.
//!
//! Every statement is written once: both databases accept the same `$n` placeholders, types and
//! `UPDATE … RETURNING`. Underneath, each database gets the driver that is fastest for it:
//! SQLite through its C API on the calling thread, PostgreSQL through sqlx's typed driver. Every single-use transition (code redemption, refresh rotation, interaction
//! completion) is one conditional `UPDATE … WHERE … IS NULL`, never a read followed by
//! a write, so it is correct under concurrent requests and across several server processes
//! sharing one PostgreSQL.

mod attempts;
mod audit;
mod changes;
mod client_cache;
mod clients;
pub(crate) mod db;
mod decoupled;
mod driver;
mod error;
mod grants;
mod group_commit;
mod handle;
mod interactions;
mod keys;
mod outbox;
#[cfg(feature = "postgres")]
mod pg_pool;
mod pushed;
mod registration;
mod replay;
#[cfg(feature = "sqlite")]
mod sqlite;
mod tokens;

pub use audit::AuditEvent;
pub(crate) use audit::{Actor, Outcome};
pub use client_cache::{ClientRecord, ClientStatus};
pub(crate) use decoupled::DECOUPLED_SINGLE_USE;
pub use decoupled::{Decision, DecoupledKind, DecoupledRecord, DecoupledStatus, Poll};
pub use driver::{Dialect, Tx};
pub use error::{DatabaseError, StoreError};
pub use grants::{ConsentRecord, GrantDetails, GrantRecord};
#[cfg(test)]
pub(crate) use handle::PRUNE_BATCH;
pub use handle::Store;
pub use interactions::InteractionRecord;
pub use keys::KeyRecord;
pub use outbox::{Delivery, OutboxEntry, OutboxKind, OutboxMessage, OutboxStatus};
pub use pushed::PushedRecord;
pub use registration::InitialAccessTokenRecord;
pub use tokens::{
    AccessRecord, Binding, CodeRecord, Consumed, Issued, RefreshRecord, RevokedGrant, TokenKind,
    TokenRecord, UserGrant,
};
pub(crate) use tokens::{SingleUseTable, TOKEN_SINGLE_USE};
#[cfg(test)]
mod tests;
