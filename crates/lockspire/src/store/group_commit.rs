//! Group commit for independent single-row writes (SURFACE S26, performance design): rows that
//! arrive while a commit is in flight are written together in the next transaction, so a burst
//! of N token issuances costs one durable commit instead of N. Every caller still waits for its
//! own row to be committed before it answers, so nothing is acknowledged that could be lost.

use tokio::sync::{mpsc, oneshot};

use super::db::pg_query;
use super::{Db, INSERT_TOKEN, StoreError, TokenRecord, sqlite, token_params};

/// Most rows in one commit; bounds transaction size and latency.
const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<Result<(), StoreError>>;

/// Handle to the writer task; cheap to clone.
#[derive(Clone, Debug)]
pub(super) struct Writer {
    queue: mpsc::Sender<(TokenRecord, Reply)>,
}

impl Writer {
    /// Starts the writer for `db`. It ends when every handle is dropped.
    pub(super) fn spawn(db: Db) -> Self {
        let (queue, mut rx) = mpsc::channel::<(TokenRecord, Reply)>(4 * MAX_BATCH);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let (rows, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
                let results = commit(&db, rows).await;
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
        });
        Self { queue }
    }

    /// Inserts one row and waits until it is committed.
    pub(super) async fn insert(&self, row: TokenRecord) -> Result<(), StoreError> {
        let (reply, done) = oneshot::channel();
        self.queue
            .send((row, reply))
            .await
            .map_err(|_| StoreError::Unavailable("the token writer has stopped"))?;
        done.await
            .map_err(|_| StoreError::Unavailable("the token writer has stopped"))?
    }
}

/// Writes a batch in one transaction; if that fails, row by row, so one bad row cannot fail
/// the others' acknowledgements wrongly. One result per row.
async fn commit(db: &Db, rows: Vec<TokenRecord>) -> Vec<Result<(), StoreError>> {
    let count = rows.len();
    let results = match db {
        Db::Sqlite(db) => {
            db.write(move |conn| {
                let together = (|| {
                    let tx = conn.transaction()?;
                    for row in &rows {
                        sqlite::execute(&tx, INSERT_TOKEN, &token_params(row))?;
                    }
                    tx.commit()?;
                    Ok(())
                })();
                Ok(whole_batch(together, rows.len()).unwrap_or_else(|| {
                    rows.iter()
                        .map(|row| {
                            sqlite::execute(conn, INSERT_TOKEN, &token_params(row)).map(drop)
                        })
                        .collect()
                }))
            })
            .await
        }
        Db::Postgres(pool) => {
            let together = async {
                let mut tx = pool.begin().await?;
                for row in &rows {
                    pg_query(INSERT_TOKEN, token_params(row))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }
            .await;
            match whole_batch(together, rows.len()) {
                Some(all) => Ok(all),
                None => {
                    let mut each = Vec::with_capacity(rows.len());
                    for row in &rows {
                        each.push(
                            pg_query(INSERT_TOKEN, token_params(row))
                                .execute(pool)
                                .await
                                .map(drop)
                                .map_err(StoreError::from),
                        );
                    }
                    Ok(each)
                }
            }
        }
    };
    results.unwrap_or_else(|e| {
        // The writer itself failed (it could not run at all): every row fails alike.
        tracing::warn!(error = %e, "token batch not written");
        all_unavailable(count)
    })
}

/// The result for every row when the batch decides it: all written, or all refused fast when
/// the database is busy or unreachable (retrying each row would wait that long again per
/// row). `None`: the batch failed on a row, so each row is tried alone.
fn whole_batch(
    together: Result<(), StoreError>,
    count: usize,
) -> Option<Vec<Result<(), StoreError>>> {
    match together {
        Ok(()) => Some((0..count).map(|_| Ok(())).collect()),
        Err(e) if e.is_unavailable() => Some(all_unavailable(count)),
        Err(_) => None,
    }
}

fn all_unavailable(count: usize) -> Vec<Result<(), StoreError>> {
    (0..count)
        .map(|_| Err(StoreError::Unavailable("the token writer could not write")))
        .collect()
}
