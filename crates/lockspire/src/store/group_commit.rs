//! Group commit for independent single-row writes : rows that
//! arrive while a commit is in flight are written together in the next transaction, so a burst
//! of N token issuances (or N failed client authentications, each of which leaves an audit
//! event, or N authorization requests, each of which starts an interaction, or N one-time
//! values such as DPoP proof `jti`s) costs one durable commit instead of N. Every caller still
//! waits for its own row to be committed before it answers, so nothing is acknowledged that
//! could be lost, and learns whether its row was written: a conditional insert (a one-time
//! value already recorded) writes nothing for that row alone.

use tokio::sync::{mpsc, oneshot};

use super::db::Param;
#[cfg(feature = "postgres")]
use super::db::{pg_columns_query, pg_query};
use super::driver::Db;
use super::error::StoreError;
#[cfg(feature = "postgres")]
use super::pg_pool::PgPool;
#[cfg(feature = "sqlite")]
use super::sqlite::{self, SqliteDb};

/// A table the writer appends to: the statement inserting one row, and the PostgreSQL statement
/// inserting many (one array per column, in the same order). Each kind of record that joins the
/// group commit names its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Table {
    pub(super) insert: &'static str,
    pub(super) insert_many_pg: &'static str,
    /// For a conditional insert, which may leave a row unwritten without failing: how many of
    /// the leading parameters (all text) identify a row. Its PostgreSQL statement returns
    /// those columns of the rows it wrote, so each row learns whether it was written. Zero for
    /// plain appends, whose rows are all written or the statement fails.
    pub(super) key_params: usize,
}

/// One row to append: its table and the parameters of that table's insert.
#[derive(Debug)]
pub(super) struct Append {
    pub(super) table: Table,
    pub(super) params: Vec<Param>,
}

/// Most rows in one commit; bounds transaction size and latency.
const MAX_BATCH: usize = 256;

/// Per row: how many rows it changed (0 or 1), or why it could not be written.
type Written = Result<u64, StoreError>;

type Reply = oneshot::Sender<Written>;

/// Handle to the writer; cheap to clone.
#[derive(Clone, Debug)]
pub(super) struct Writer {
    queue: mpsc::Sender<(Append, Reply)>,
}

impl Writer {
    /// Starts the writer for `db`. It ends when every handle is dropped.
    ///
    /// On SQLite the writer is a thread of its own that commits on the spot: a batch then
    /// waits for no thread but the disk, where a task on the runtime would hand every commit
    /// to the blocking pool and back (two more thread wake-ups on the path every issuance
    /// waits on). On PostgreSQL the commit is a network round trip, so the writer is a task.
    pub(super) fn spawn(db: Db) -> Result<Self, StoreError> {
        let (queue, rx) = mpsc::channel::<(Append, Reply)>(4 * MAX_BATCH);
        match db {
            #[cfg(feature = "sqlite")]
            Db::Sqlite(db) => {
                std::thread::Builder::new()
                    .name("lockspire-writer".into())
                    .spawn(move || sqlite_writer(&db, rx))
                    .map_err(|_| StoreError::Unavailable("could not start the writer"))?;
            }
            #[cfg(feature = "postgres")]
            Db::Postgres(pool) => {
                tokio::spawn(postgres_writer(pool, rx));
            }
        }
        Ok(Self { queue })
    }

    /// Inserts one row and waits until it is committed.
    pub(super) async fn insert(&self, row: Append) -> Result<(), StoreError> {
        self.write(row).await.map(drop)
    }

    /// Writes one row (a conditional insert may write nothing) and waits until it is
    /// committed; returns the rows changed, 0 or 1.
    pub(super) async fn write(&self, row: Append) -> Written {
        let (reply, done) = oneshot::channel();
        self.queue
            .send((row, reply))
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped"))?;
        done.await
            .map_err(|_| StoreError::Unavailable("the writer has stopped"))?
    }
}

/// Answers every row of a batch with its result.
fn answer(replies: Vec<Reply>, results: Vec<Written>) {
    for (reply, result) in replies.into_iter().zip(results) {
        // The caller may have gone away (its request was dropped); its row is written anyway.
        let _ = reply.send(result);
    }
}

/// The SQLite writer thread: takes every row queued so far (at most [`MAX_BATCH`]), commits
/// them in one transaction, answers, and goes back for more.
#[cfg(feature = "sqlite")]
fn sqlite_writer(db: &SqliteDb, mut rx: mpsc::Receiver<(Append, Reply)>) {
    while let Some(first) = rx.blocking_recv() {
        let mut rows = Vec::with_capacity(MAX_BATCH);
        let mut replies = Vec::with_capacity(MAX_BATCH);
        let mut next = Some(first);
        while let Some((row, reply)) = next {
            rows.push(row);
            replies.push(reply);
            next = if rows.len() < MAX_BATCH {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        // A panic here would be a bug. It fails this batch's issuances, not every later one:
        // the thread goes on, and the writer connection is rolled back before its next use.
        let results =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sqlite_commit(db, &rows)))
                .unwrap_or_else(|_| {
                    tracing::error!("the writer failed on a batch");
                    all_unavailable(rows.len())
                });
        answer(replies, results);
    }
}

/// Writes a batch in one transaction; if that fails on a row, row by row, so one bad row
/// cannot fail the others' acknowledgements wrongly. One result per row. Blocks: called only
/// from the writer thread (and tests), never on the runtime.
#[cfg(feature = "sqlite")]
fn sqlite_commit(db: &SqliteDb, rows: &[Append]) -> Vec<Written> {
    db.write_blocking(|conn| {
        // Rows run in order, so of two equal one-time values in a batch the first is written.
        let together = (|| {
            let tx = conn.transaction()?;
            let mut changed = Vec::with_capacity(rows.len());
            for row in rows {
                changed.push(sqlite::execute(&tx, row.table.insert, &row.params)?);
            }
            tx.commit()?;
            Ok(changed)
        })();
        Ok(whole_batch(together, rows.len()).unwrap_or_else(|| {
            rows.iter()
                .map(|row| sqlite::execute(conn, row.table.insert, &row.params))
                .collect()
        }))
    })
    .unwrap_or_else(|e| unwritten(&e, rows.len()))
}

/// The PostgreSQL writer task: like [`sqlite_writer`], one statement per batch.
#[cfg(feature = "postgres")]
async fn postgres_writer(pool: PgPool, mut rx: mpsc::Receiver<(Append, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (rows, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        // A database that stops answering is bounded by the pool's wait for each statement.
        let results = postgres_commit(&pool, &rows).await;
        answer(replies, results);
    }
}

/// Writes a batch with one statement per table; if a statement fails on a row, that table's
/// rows are written one by one, so one bad row cannot fail the others' acknowledgements
/// wrongly. One result per row, in order.
#[cfg(feature = "postgres")]
async fn postgres_commit(pool: &PgPool, rows: &[Append]) -> Vec<Written> {
    let mut conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(e) => return unwritten(&e, rows.len()),
    };
    // Every row belongs to one table, so each placeholder is replaced by its own result.
    let mut results: Vec<Written> = rows.iter().map(|_| Ok(1)).collect();
    let mut tables: Vec<Table> = Vec::new();
    for row in rows {
        if !tables.contains(&row.table) {
            tables.push(row.table);
        }
    }
    for table in tables {
        let mut of_table: Vec<usize> = (0..rows.len())
            .filter(|&i| rows[i].table == table)
            .collect();
        if table.key_params > 0 {
            // A key twice in one statement would fail it ("cannot affect row a second time")
            // and send the whole batch row by row: the first of equal keys goes to the
            // statement, and the others are answered "not written", as they would be right
            // after it (the entry it writes or finds is live).
            let mut seen = std::collections::HashSet::new();
            of_table.retain(|&i| {
                let first = seen.insert(row_key(&rows[i], table.key_params));
                if !first {
                    results[i] = Ok(0);
                }
                first
            });
        }
        if of_table.is_empty() {
            continue;
        }
        let columns = of_table.iter().map(|&i| rows[i].params.clone()).collect();
        let together = match pg_columns_query(table.insert_many_pg, columns) {
            Ok(q) if table.key_params == 0 => conn
                .execute(q)
                .await
                .map(|_| of_table.iter().map(|_| 1).collect()),
            Ok(q) => conn.fetch_all(q).await.and_then(|written| {
                let written = written
                    .iter()
                    .map(|r| returned_key(r, table.key_params))
                    .collect::<Result<std::collections::HashSet<_>, _>>()?;
                Ok(of_table
                    .iter()
                    .map(|&i| u64::from(written.contains(&row_key(&rows[i], table.key_params))))
                    .collect())
            }),
            Err(e) => Err(e),
        };
        let each = match whole_batch(together, of_table.len()) {
            Some(all) => all,
            None => {
                let mut each = Vec::with_capacity(of_table.len());
                for &i in &of_table {
                    let q = pg_query(table.insert, rows[i].params.clone());
                    each.push(conn.execute(q).await);
                }
                each
            }
        };
        for (i, result) in of_table.into_iter().zip(each) {
            results[i] = result;
        }
    }
    results
}

/// The identifying parameters of a conditional row.
#[cfg(feature = "postgres")]
fn row_key(row: &Append, key_params: usize) -> Vec<Option<String>> {
    row.params
        .iter()
        .take(key_params)
        .map(|p| match p {
            super::db::Param::Text(v) => v.clone(),
            super::db::Param::Int(v) => v.map(|v| v.to_string()),
        })
        .collect()
}

/// The identifying columns of a row the statement returned.
#[cfg(feature = "postgres")]
fn returned_key(
    row: &sqlx::postgres::PgRow,
    key_params: usize,
) -> Result<Vec<Option<String>>, StoreError> {
    use sqlx::Row as _;
    (0..key_params)
        .map(|i| {
            row.try_get::<Option<String>, _>(i)
                .map_err(|e| StoreError::Corrupt(format!("a returned key: {e}")))
        })
        .collect()
}

/// The writer itself failed (it could not run at all): every row fails alike.
fn unwritten(e: &StoreError, count: usize) -> Vec<Written> {
    tracing::warn!(error = %e, "batch not written");
    all_unavailable(count)
}

/// The result for every row when the batch decides it: all written, or all refused fast when
/// the database is busy or unreachable (retrying each row would wait that long again per
/// row). `None`: the batch failed on a row, so each row is tried alone.
fn whole_batch(together: Result<Vec<u64>, StoreError>, count: usize) -> Option<Vec<Written>> {
    match together {
        Ok(changed) => Some(changed.into_iter().map(Ok).collect()),
        Err(e) if e.is_unavailable() => Some(all_unavailable(count)),
        Err(_) => None,
    }
}

fn all_unavailable(count: usize) -> Vec<Written> {
    (0..count)
        .map(|_| Err(StoreError::Unavailable("the writer could not write")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tokens::{TOKENS, token_params};
    use crate::store::{AccessRecord, Issued, Store, TokenRecord};

    fn row(digest: &str) -> Append {
        Append {
            table: TOKENS,
            params: token_params(&token(digest)),
        }
    }

    fn token(digest: &str) -> TokenRecord {
        TokenRecord::Access(AccessRecord {
            issued: Issued {
                digest: digest.to_owned(),
                tenant_id: "default".into(),
                client_id: crate::model::client::ClientId::new("batch-client"),
                scopes: crate::model::scope::ScopeSet::from_stored("read"),
                resources: Vec::new(),
                authorization_details: Default::default(),
                created_at: 1,
                expires_at: 2,
                consumed_at: None,
                revoked_at: None,
            },
            user: None,
            format: crate::config::AccessTokenFormat::Opaque,
            jti: None,
            binding: None,
            act: None,
        })
    }

    /// One batch holding a row whose key is taken between two fresh rows.
    fn batch() -> Vec<Append> {
        vec![row("fresh-a"), row("taken"), row("fresh-b")]
    }

    fn assert_only_the_taken_row_failed(results: &[Written]) {
        assert_eq!(results.len(), 3);
        assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
        let refused = results[1].as_ref().expect_err("a taken key is refused");
        assert!(!refused.is_unavailable(), "{refused}");
    }

    /// A one-time value's row, at time 100, live until 200.
    fn once(key: &str) -> Append {
        Append {
            table: crate::store::replay::REPLAY,
            params: crate::store::db::params!["ns", key, 200i64, 100i64],
        }
    }

    /// A batch of one-time values: new, new, the first again, and one recorded before.
    fn once_batch() -> Vec<Append> {
        vec![once("a"), once("b"), once("a"), once("old")]
    }

    fn changed(results: Vec<Written>) -> Vec<u64> {
        results.into_iter().map(|r| r.expect("written")).collect()
    }

    async fn stored(store: &Store, digest: &str) -> bool {
        store.any_token(digest).await.expect("read").is_some()
    }

    #[test]
    #[cfg(feature = "sqlite")]
    // Irrefutable in a build with SQLite alone.
    #[allow(irrefutable_let_patterns)]
    fn sqlite_a_row_refused_in_a_batch_fails_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let store = rt
            .block_on(Store::connect_with(
                &url,
                &crate::config::DatabasePool::default(),
            ))
            .expect("store");
        let Db::Sqlite(db) = &store.db else {
            unreachable!("a SQLite URL")
        };
        // Off the runtime, as on the writer thread.
        assert!(sqlite_commit(db, &[row("taken")])[0].is_ok());
        assert_only_the_taken_row_failed(&sqlite_commit(db, &batch()));
        // Conditional rows each learn whether they were written; of two equal ones, the first.
        assert_eq!(changed(sqlite_commit(db, &[once("old")])), [1]);
        assert_eq!(changed(sqlite_commit(db, &once_batch())), [1, 1, 0, 0]);
        assert_eq!(changed(sqlite_commit(db, &[once("c"), once("d")])), [1, 1]);
        assert!(rt.block_on(stored(&store, "fresh-a")));
        assert!(rt.block_on(stored(&store, "fresh-b")));
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    // Irrefutable in a build with PostgreSQL alone.
    #[allow(irrefutable_let_patterns)]
    async fn postgres_a_row_refused_in_a_batch_fails_alone() {
        let db = crate::store::tests::TestDb::postgres().await;
        let store = &db.store;
        let Db::Postgres(pool) = &store.db else {
            unreachable!("a PostgreSQL URL")
        };
        assert!(postgres_commit(pool, &[row("taken")]).await[0].is_ok());
        assert_only_the_taken_row_failed(&postgres_commit(pool, &batch()).await);
        // Conditional rows each learn whether they were written, from the statement's returned
        // keys; of equal keys in one batch, the first is sent and wins.
        assert_eq!(changed(postgres_commit(pool, &[once("old")]).await), [1]);
        assert_eq!(
            changed(postgres_commit(pool, &once_batch()).await),
            [1, 1, 0, 0]
        );
        assert_eq!(
            changed(postgres_commit(pool, &[once("c"), once("d"), once("old")]).await),
            [1, 1, 0]
        );
        // Each row judges expiry at its own time: "old" expires at 200, so a row at 300 takes
        // it over even beside a row at 100.
        let at = |key: &str, now: i64| Append {
            table: crate::store::replay::REPLAY,
            params: crate::store::db::params!["ns", key, now + 100, now],
        };
        assert_eq!(
            changed(postgres_commit(pool, &[at("e", 100), at("old", 300)]).await),
            [1, 1]
        );
        assert!(stored(store, "fresh-a").await);
        assert!(stored(store, "fresh-b").await);
    }
}
