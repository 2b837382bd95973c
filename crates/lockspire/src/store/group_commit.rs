//! Group commit for independent single-row writes (SURFACE S26, performance design): rows that
//! arrive while a commit is in flight are written together in the next transaction, so a burst
//! of N token issuances costs one durable commit instead of N. Every caller still waits for its
//! own row to be committed before it answers, so nothing is acknowledged that could be lost.

use std::sync::Arc;

use sqlx::AnyPool;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::{StoreError, TokenRecord, insert_token};

/// Most rows in one commit; bounds transaction size and latency.
const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<Result<(), StoreError>>;

/// Handle to the writer task; cheap to clone.
#[derive(Clone, Debug)]
pub(super) struct Writer {
    queue: mpsc::Sender<(TokenRecord, Reply)>,
}

impl Writer {
    /// Starts the writer for `pool`. It ends when every handle is dropped.
    pub(super) fn spawn(pool: AnyPool, gate: Option<Arc<Mutex<()>>>) -> Self {
        let (queue, mut rx) = mpsc::channel::<(TokenRecord, Reply)>(4 * MAX_BATCH);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while let Some(first) = rx.recv().await {
                batch.push(first);
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(item) => batch.push(item),
                        Err(_) => break,
                    }
                }
                // Take the store's write gate (SQLite) like every other writer.
                let _turn = match &gate {
                    Some(g) => Some(g.lock().await),
                    None => None,
                };
                commit(&pool, &mut batch).await;
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
            .map_err(|_| StoreError::Database(sqlx::Error::PoolClosed))?;
        done.await
            .map_err(|_| StoreError::Database(sqlx::Error::WorkerCrashed))?
    }
}

/// Writes a batch in one transaction; if that fails, row by row, so one bad row (or a
/// transient error) cannot fail the others' acknowledgements wrongly.
async fn commit(pool: &AnyPool, batch: &mut Vec<(TokenRecord, Reply)>) {
    let together: Result<(), StoreError> = async {
        let mut tx = pool.begin().await?;
        for (row, _) in batch.iter() {
            insert_token(&mut tx, row).await?;
        }
        tx.commit().await?;
        Ok(())
    }
    .await;
    if together.is_ok() {
        for (_, reply) in batch.drain(..) {
            let _ = reply.send(Ok(()));
        }
        return;
    }
    for (row, reply) in batch.drain(..) {
        let one = async {
            let mut conn = pool.acquire().await?;
            insert_token(&mut conn, &row).await
        }
        .await;
        let _ = reply.send(one);
    }
}
