//! PostgreSQL connections for the store: a pool that costs no round trip of its own on the
//! request path.
//!
//! sqlx's pool pings every connection as it is returned, because a statement whose future was
//! dropped halfway can leave a connection mid-protocol. That ping is a second round trip for
//! every one-statement request, about half of what an introspection costs on PostgreSQL. This
//! pool knows instead what state each connection is in: a connection goes back only when its
//! last statement finished (or the server refused it, which leaves the protocol in step), a
//! transaction left open is rolled back before reuse, and anything else is closed. A
//! connection idle for [`IDLE_CHECK`] or longer is pinged before use, since the server may
//! have gone away meanwhile.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::Connection as _;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgRow};
use sqlx::query::Query;
use sqlx::{Executor as _, Postgres};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::{StoreError, refused_in_session};
use crate::config::DatabasePool;

/// How long a request waits for a connection before it is refused as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// A connection idle for this long is pinged before it is used.
const IDLE_CHECK: Duration = Duration::from_secs(1);

// Every statement the store runs is short (a prune deletes in bounded batches), so a wait
// longer than the pool's statement timeout means a database that stopped answering without
// closing the connection: the request gets a 503 instead of waiting for TCP to give up, and
// the connection is closed.

/// How long rolling back an abandoned transaction may take before the connection is closed.
const ROLLBACK_WAIT: Duration = Duration::from_secs(5);

/// A statement bound to its parameters.
pub(crate) type PgQuery = Query<'static, Postgres, PgArguments>;

/// The pool; cheap to clone.
#[derive(Clone)]
pub(crate) struct PgPool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPool").finish_non_exhaustive()
    }
}

struct Inner {
    options: PgConnectOptions,
    statement_wait: Duration,
    idle_lifetime: Duration,
    /// Most recently returned last, so the busiest connections are reused first and the ones
    /// left over age out.
    idle: Mutex<Vec<Idle>>,
    permits: Arc<Semaphore>,
    closed: AtomicBool,
}

struct Idle {
    conn: PgConnection,
    since: Instant,
    /// False once another connection was lost while this one sat idle: the server may have
    /// gone away (a restart ends every session), so it is checked before use.
    trusted: bool,
}

impl PgPool {
    /// Parses `url` and opens one connection, so a wrong URL or an unreachable server is
    /// reported at start-up rather than at the first request.
    pub(crate) async fn connect(url: &str, settings: &DatabasePool) -> Result<Self, StoreError> {
        let pool = Self {
            inner: Arc::new(Inner {
                options: PgConnectOptions::from_str(url)?,
                statement_wait: settings.statement_timeout,
                idle_lifetime: settings.idle_lifetime,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(
                    usize::try_from(settings.max_connections).unwrap_or(1),
                )),
                closed: AtomicBool::new(false),
            }),
        };
        drop(pool.acquire().await?);
        Ok(pool)
    }

    /// A connection, waiting at most [`ACQUIRE_TIMEOUT`] for one to be free.
    pub(crate) async fn acquire(&self) -> Result<PgConn, StoreError> {
        tokio::time::timeout(ACQUIRE_TIMEOUT, self.acquire_now())
            .await
            .unwrap_or_else(|_| Err(StoreError::from(sqlx::Error::PoolTimedOut)))
    }

    async fn acquire_now(&self) -> Result<PgConn, StoreError> {
        let permit = self
            .inner
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        while let Some(Idle {
            mut conn,
            since,
            trusted,
        }) = self.inner.take_idle()
        {
            if (trusted && since.elapsed() < IDLE_CHECK) || conn.ping().await.is_ok() {
                return Ok(self.wrap(conn, permit));
            }
            // The server closed it while it was idle: drop it and try the next.
        }
        let conn = PgConnection::connect_with(&self.inner.options).await?;
        Ok(self.wrap(conn, permit))
    }

    fn wrap(&self, conn: PgConnection, permit: OwnedSemaphorePermit) -> PgConn {
        PgConn {
            conn: Some(conn),
            unsettled: false,
            in_transaction: false,
            pool: self.inner.clone(),
            permit: Some(permit),
        }
    }

    /// Closes every idle connection and refuses new acquisitions; connections in use are
    /// closed as they are returned.
    pub(crate) async fn close(&self) {
        self.inner.permits.close();
        let idle = {
            let mut idle = self.inner.lock_idle();
            self.inner.closed.store(true, Ordering::SeqCst);
            std::mem::take(&mut *idle)
        };
        for Idle { conn, .. } in idle {
            let _ = conn.close().await;
        }
    }
}

impl Inner {
    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently returned idle connection (the lock is released before it is used).
    fn take_idle(&self) -> Option<Idle> {
        self.lock_idle().pop()
    }

    /// Every idle connection is checked before its next use: one connection was just lost,
    /// and when the server restarted, the others were lost with it.
    fn distrust_idle(&self) {
        for idle in self.lock_idle().iter_mut() {
            idle.trusted = false;
        }
    }

    /// Takes a connection back; closes it instead when the pool is closed, and closes
    /// connections left idle for the idle lifetime.
    fn release(&self, conn: PgConnection) {
        let stale = {
            let mut idle = self.lock_idle();
            // Read under the lock `close` empties the list with, so no connection is kept
            // after it.
            if self.closed.load(Ordering::SeqCst) {
                drop(idle);
                close_soon(conn);
                return;
            }
            idle.push(Idle {
                conn,
                since: Instant::now(),
                trusted: true,
            });
            let aged = idle
                .iter()
                .take_while(|i| i.since.elapsed() >= self.idle_lifetime)
                .count();
            idle.drain(..aged).collect::<Vec<_>>()
        };
        for Idle { conn, .. } in stale {
            close_soon(conn);
        }
    }
}

/// Closes a connection politely (the server then logs no broken connection) when a runtime is
/// there to do it; otherwise dropping it closes the socket.
fn close_soon(conn: PgConnection) {
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            let _ = tokio::time::timeout(ROLLBACK_WAIT, conn.close()).await;
        });
    }
}

/// A connection taken from the pool; returned to it when dropped, if its state is known.
pub(crate) struct PgConn {
    conn: Option<PgConnection>,
    /// A statement was sent and its answer not read to the end (its future was dropped, or the
    /// connection failed): the connection may be mid-protocol and is never reused.
    unsettled: bool,
    /// `BEGIN` was sent and neither `COMMIT` nor `ROLLBACK` since.
    in_transaction: bool,
    pool: Arc<Inner>,
    permit: Option<OwnedSemaphorePermit>,
}

impl PgConn {
    /// The connection, marked unsettled until [`Self::settle`] sees the statement's result.
    /// One already unsettled is refused: its protocol state is unknown.
    fn start(&mut self) -> Result<&mut PgConnection, StoreError> {
        if self.unsettled {
            return Err(StoreError::Unavailable("the database connection was lost"));
        }
        self.unsettled = true;
        self.conn
            .as_mut()
            .ok_or(StoreError::Unavailable("the connection was closed"))
    }

    /// A statement's result: the connection is in step again when the statement finished or
    /// the server refused it and the session goes on. Any other failure (I/O, protocol, an
    /// error that ends the session) leaves it unsettled, and makes the idle connections
    /// suspect too.
    fn settle<T>(
        &mut self,
        answered: Result<Result<T, sqlx::Error>, tokio::time::error::Elapsed>,
    ) -> Result<T, StoreError> {
        let Ok(result) = answered else {
            // No answer in time: the connection stays unsettled, and is closed when dropped.
            self.pool.distrust_idle();
            return Err(StoreError::Unavailable(
                "the database did not answer in time",
            ));
        };
        self.unsettled = result.as_ref().is_err_and(|e| !refused_in_session(e));
        if self.unsettled {
            self.pool.distrust_idle();
        }
        Ok(result?)
    }

    /// A statement; returns the rows changed.
    pub(crate) async fn execute(&mut self, q: PgQuery) -> Result<u64, StoreError> {
        let wait = self.pool.statement_wait;
        let result = tokio::time::timeout(wait, q.execute(self.start()?)).await;
        Ok(self.settle(result)?.rows_affected())
    }

    /// A query's rows, read to the end.
    pub(crate) async fn fetch_all(&mut self, q: PgQuery) -> Result<Vec<PgRow>, StoreError> {
        let wait = self.pool.statement_wait;
        let result = tokio::time::timeout(wait, q.fetch_all(self.start()?)).await;
        self.settle(result)
    }

    /// Starts a transaction.
    pub(crate) async fn begin(&mut self) -> Result<(), StoreError> {
        self.simple("BEGIN").await?;
        self.in_transaction = true;
        Ok(())
    }

    /// Commits the transaction. Whatever the outcome, none is open afterwards: a refused
    /// `COMMIT` ends the transaction too (PostgreSQL rolls it back).
    pub(crate) async fn commit(&mut self) -> Result<(), StoreError> {
        let result = self.simple("COMMIT").await;
        self.in_transaction = false;
        result
    }

    /// Applies `migrator`'s migrations not yet applied.
    pub(crate) async fn migrate(&mut self, migrator: &Migrator) -> Result<(), StoreError> {
        migrator
            .run(self.start()?)
            .await
            .map_err(StoreError::migrate)?;
        self.unsettled = false;
        Ok(())
    }

    async fn simple(&mut self, sql: &'static str) -> Result<(), StoreError> {
        let wait = self.pool.statement_wait;
        let result = tokio::time::timeout(wait, self.start()?.execute(sqlx::raw_sql(sql))).await;
        self.settle(result).map(drop)
    }
}

impl Drop for PgConn {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if self.unsettled {
            // Closing the socket ends the server's session and rolls back whatever was open.
            return;
        }
        if !self.in_transaction {
            self.pool.release(conn);
            return;
        }
        // A transaction abandoned (an error ended the protocol step): roll it back before the
        // connection serves anyone else. The permit travels with it, so the pool never holds
        // more connections than its limit.
        let (pool, permit) = (self.pool.clone(), self.permit.take());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let mut conn = conn;
                let rolled_back =
                    tokio::time::timeout(ROLLBACK_WAIT, conn.execute(sqlx::raw_sql("ROLLBACK")))
                        .await;
                if matches!(rolled_back, Ok(Ok(_))) {
                    pool.release(conn);
                }
                drop(permit);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn test_pool() -> PgPool {
        let admin = std::env::var("LOCKSPIRE_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        PgPool::connect(&format!("{admin}/postgres"), &DatabasePool::default())
            .await
            .expect("PostgreSQL for the store's tests")
    }

    /// The backend process of a connection, and the transaction it has open, if any.
    async fn session(conn: &mut PgConn) -> (i32, Option<String>) {
        let rows = conn
            .fetch_all(sqlx::query(
                "SELECT pg_backend_pid() AS pid, pg_current_xact_id_if_assigned()::text AS xact",
            ))
            .await
            .expect("query");
        let row = rows.first().expect("one row");
        (
            sqlx::Row::get(row, "pid"),
            sqlx::Row::get::<Option<String>, _>(row, "xact"),
        )
    }

    #[tokio::test]
    async fn a_connection_is_reused_without_a_check_after_a_finished_statement() {
        let pool = test_pool().await;
        let mut first = pool.acquire().await.expect("acquire");
        let (pid, _) = session(&mut first).await;
        drop(first);
        let mut again = pool.acquire().await.expect("acquire");
        assert_eq!(session(&mut again).await.0, pid);
    }

    #[tokio::test]
    async fn a_statement_refused_by_the_server_leaves_the_connection_reusable() {
        let pool = test_pool().await;
        let mut conn = pool.acquire().await.expect("acquire");
        let (pid, _) = session(&mut conn).await;
        assert!(conn.execute(sqlx::query("SELECT 1 / 0")).await.is_err());
        drop(conn);
        let mut again = pool.acquire().await.expect("acquire");
        assert_eq!(session(&mut again).await, (pid, None));
    }

    #[tokio::test]
    async fn a_statement_abandoned_halfway_never_returns_its_connection() {
        let pool = test_pool().await;
        let mut conn = pool.acquire().await.expect("acquire");
        let (pid, _) = session(&mut conn).await;
        let abandoned = tokio::time::timeout(
            Duration::from_millis(50),
            conn.execute(sqlx::query("SELECT pg_sleep(5)")),
        )
        .await;
        assert!(abandoned.is_err(), "the statement was still running");
        drop(conn);
        let mut next = pool.acquire().await.expect("acquire");
        let started = Instant::now();
        let (other, _) = session(&mut next).await;
        assert_ne!(other, pid, "the mid-statement connection was closed");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "no wait for the abandoned sleep"
        );
    }

    #[tokio::test]
    async fn an_abandoned_transaction_is_rolled_back_before_its_connection_is_reused() {
        let pool = test_pool().await;
        let mut conn = pool.acquire().await.expect("acquire");
        conn.begin().await.expect("begin");
        conn.execute(sqlx::query("SELECT pg_current_xact_id()"))
            .await
            .expect("assign a transaction id");
        let (pid, xact) = session(&mut conn).await;
        assert!(xact.is_some());
        drop(conn);
        // The rollback runs on a task of its own; the connection is free once it is done.
        // Connections taken meanwhile are held, so the next acquisition takes another one.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut held = Vec::new();
        loop {
            let mut next = pool.acquire().await.expect("acquire");
            let (other, xact) = session(&mut next).await;
            assert_eq!(xact, None, "no transaction carried over");
            if other == pid {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the rolled-back connection came back"
            );
            held.push(next);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_session_ended_by_the_server_is_unavailable_and_never_reused() {
        let pool = test_pool().await;
        let (mut victim, mut survivor) = (
            pool.acquire().await.expect("acquire"),
            pool.acquire().await.expect("acquire"),
        );
        let ((pid, _), (other, _)) = (session(&mut victim).await, session(&mut survivor).await);
        drop(victim);
        drop(survivor);
        // An operator (or a restart) ends both sessions while they sit idle in the pool.
        let outside = test_pool().await;
        let mut admin = outside.acquire().await.expect("acquire");
        for id in [pid, other] {
            admin
                .execute(sqlx::query("SELECT pg_terminate_backend($1)").bind(id))
                .await
                .expect("terminate");
        }
        // The first connection taken is used at once (idle under a second) and fails: the
        // request gets "unavailable", a 503, not a 500.
        let mut first = pool.acquire().await.expect("acquire");
        let lost = first
            .execute(sqlx::query("SELECT 1"))
            .await
            .expect_err("its session was ended");
        assert!(lost.is_unavailable(), "{lost}");
        drop(first);
        // That failure makes the other idle connection suspect: it is checked, found dead
        // and replaced, so the next request succeeds.
        let mut next = pool.acquire().await.expect("acquire");
        let (fresh, _) = session(&mut next).await;
        assert!(fresh != pid && fresh != other);
    }

    #[tokio::test]
    async fn the_pool_holds_at_most_its_configured_connections() {
        let admin = std::env::var("LOCKSPIRE_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let one = DatabasePool {
            max_connections: 1,
            ..DatabasePool::default()
        };
        let pool = PgPool::connect(&format!("{admin}/postgres"), &one)
            .await
            .expect("PostgreSQL for the store's tests");
        let held = pool.acquire().await.expect("the one connection");
        let waited = pool.acquire().await.err().expect("no second connection");
        assert!(waited.is_unavailable(), "{waited}");
        drop(held);
        assert!(pool.acquire().await.is_ok(), "the connection is back");
    }

    #[tokio::test]
    async fn a_statement_without_an_answer_in_time_is_unavailable_and_its_connection_closed() {
        let admin = std::env::var("LOCKSPIRE_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let quick = DatabasePool {
            statement_timeout: Duration::from_millis(200),
            ..DatabasePool::default()
        };
        let pool = PgPool::connect(&format!("{admin}/postgres"), &quick)
            .await
            .expect("PostgreSQL for the store's tests");
        let mut conn = pool.acquire().await.expect("acquire");
        let (pid, _) = session(&mut conn).await;
        // A server that does not answer, as far as the client can tell.
        let started = Instant::now();
        let silent = conn
            .execute(sqlx::query("SELECT pg_sleep(3)"))
            .await
            .expect_err("no answer in time");
        assert!(silent.is_unavailable(), "{silent}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "gave up at the statement wait"
        );
        drop(conn);
        let mut next = pool.acquire().await.expect("acquire");
        assert_ne!(
            session(&mut next).await.0,
            pid,
            "the silent connection was closed"
        );
    }

    #[tokio::test]
    async fn a_closed_pool_refuses_new_work_as_unavailable() {
        let closed = test_pool().await;
        closed.close().await;
        let refused = closed.acquire().await.err().expect("refused");
        assert!(refused.is_unavailable());
    }
}
