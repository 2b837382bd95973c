//! SQLite through its C API (rusqlite), shaped for a server on an async runtime.
//!
//! Reads run on the calling thread against a small set of reader connections: an indexed read
//! from SQLite's page cache takes microseconds, less than handing it to another thread and back
//! (which is what a driver with one worker thread per connection does, twice per statement).
//! Writes go through the one writer connection: SQLite admits one writer at a time, so queuing
//! writers on an async mutex hands the lock over without its busy handler's sleep-polling.
//! Every commit, the only step that waits for the disk, runs off the runtime's threads (batches
//! of tokens and audit events on the group-commit writer's own thread, other transactions on
//! the blocking pool) so it never stalls the runtime. WAL mode lets readers proceed while the writer commits.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as SyncMutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::db::MIGRATOR;
use super::db::{Param, Row};
use super::error::{DatabaseError, StoreError};

/// How long a statement waits for another process's write lock before failing as busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a read of an in-memory database waits for its one connection.
const MEMORY_READ_WAIT: Duration = Duration::from_secs(3);

/// Page cache per connection, in KiB (negative: SQLite reads it as a size, not a page count).
const PAGE_CACHE_KIB: i64 = -8192;

/// Prepared statements kept per connection (the store has fewer distinct statements).
const STATEMENT_CACHE: usize = 96;

/// The SQLite database: one writer connection and a few readers.
pub(crate) struct SqliteDb {
    writer: Arc<Mutex<Connection>>,
    /// Empty for an in-memory database, which exists only inside its one connection: reads
    /// then share the writer.
    readers: Vec<SyncMutex<Connection>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for SqliteDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteDb")
            .field("readers", &self.readers.len())
            .finish_non_exhaustive()
    }
}

/// Where a `sqlite:` URL points and how to open it.
struct Target {
    path: PathBuf,
    memory: bool,
    flags: OpenFlags,
}

/// Parses `sqlite://path`, `sqlite:path` or `sqlite::memory:`, with an optional
/// `?mode=ro|rw|rwc` (default `rwc`: create the file if needed).
fn parse(url: &str) -> Result<Target, StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or(StoreError::UnsupportedUrl)?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        flags = match pair {
            "mode=ro" => OpenFlags::SQLITE_OPEN_READ_ONLY,
            "mode=rw" => OpenFlags::SQLITE_OPEN_READ_WRITE,
            "mode=rwc" => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
            other => {
                return Err(StoreError::InvalidUrl(format!(
                    "unsupported SQLite URL option {other} (only mode=ro|rw|rwc)"
                )));
            }
        };
    }
    if path.is_empty() {
        return Err(StoreError::InvalidUrl(
            "the SQLite URL names no file".into(),
        ));
    }
    // The C library's own mutexes are not needed: every connection is used by one thread at a
    // time (behind a mutex here).
    flags |= OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Ok(Target {
        memory: path == ":memory:",
        path: PathBuf::from(path),
        flags,
    })
}

fn connect(target: &Target) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(&target.path, target.flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Durable commits: the WAL is synced before a commit returns.
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Each connection's page cache: the token digest index is read and written at random
    // places, and SQLite's 2 MiB default stops holding it after about a hundred thousand
    // live tokens. Filled only as the database grows.
    conn.pragma_update(None, "cache_size", PAGE_CACHE_KIB)?;
    Ok(conn)
}

/// Switches the file to WAL mode, or finds it there. Switching needs every other connection's
/// lock released (the host's own connection to the file may be writing, in SQLite's default
/// rollback mode), and SQLite answers busy at once instead of waiting through the busy
/// handler; so the switch is tried again until [`BUSY_TIMEOUT`]. It runs while opening, on a
/// blocking thread.
fn switch_to_wal(conn: &Connection) -> Result<String, StoreError> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

impl SqliteDb {
    /// Opens the database at `url` with `readers` reader connections.
    pub(crate) fn open(url: &str, readers: usize) -> Result<Self, StoreError> {
        let target = parse(url)?;
        let writer = connect(&target)?;
        let writable = !target.memory && !target.flags.contains(OpenFlags::SQLITE_OPEN_READ_ONLY);
        if writable {
            // WAL lets readers proceed while one writer commits. The mode is stored in the
            // file, so readers opened after this see it.
            let mode = switch_to_wal(&writer)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::InvalidUrl(format!(
                    "SQLite refused WAL mode (journal_mode = {mode})"
                )));
            }
        }
        let readers = if target.memory {
            Vec::new()
        } else {
            (0..readers.max(1))
                .map(|_| connect(&target).map(SyncMutex::new))
                .collect::<Result<_, _>>()?
        };
        let checkpointer = if writable {
            tokio::runtime::Handle::try_current()
                .ok()
                .map(|rt| (rt, connect(&target)))
        } else {
            None
        };
        let writer = Arc::new(Mutex::new(writer));
        if let Some((rt, conn)) = checkpointer {
            // Copying the WAL back into the database file is done beside the writer, not
            // inside whichever commit crosses SQLite's threshold (a latency spike for it and
            // every commit queued behind it). SQLite's own checkpoint stays as a backstop,
            // far past the checkpointer's threshold, should the checkpointer ever stop.
            writer
                .try_lock()
                .map_err(|_| StoreError::Unavailable("writer busy while opening"))?
                .pragma_update(None, "wal_autocheckpoint", BACKSTOP_FRAMES)?;
            rt.spawn(checkpoint(
                Arc::new(SyncMutex::new(conn?)),
                Arc::downgrade(&writer),
            ));
        }
        Ok(Self {
            writer,
            readers,
            next: AtomicUsize::new(0),
        })
    }

    /// Runs a read on the calling thread, on a free reader connection.
    pub(crate) async fn read<T>(
        &self,
        sql: &str,
        params: &[Param],
        f: impl Fn(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        if self.readers.is_empty() {
            // An in-memory database has only the writer. A read from a task that holds a
            // transaction would wait for itself: bound the wait, as a pool's acquire would.
            let conn = tokio::time::timeout(MEMORY_READ_WAIT, self.writer.lock())
                .await
                .map_err(|_| StoreError::Unavailable("the in-memory database stayed busy"))?;
            return query(&conn, sql, params, f);
        }
        let n = self.readers.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            if let Ok(conn) = self.readers[(start + i) % n].try_lock() {
                return query(&conn, sql, params, f);
            }
        }
        // Every reader is busy for the few microseconds of another read: wait for one.
        let conn = self.readers[start]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        query(&conn, sql, params, f)
    }

    /// Runs `f` with the writer connection on the blocking pool (it may commit, which waits
    /// for the disk), after the writers queued before it.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.writer.clone().lock_owned().await;
        tokio::task::spawn_blocking(move || {
            let mut conn = settled(conn)?;
            f(&mut conn)
        })
        .await
        .map_err(|_| StoreError::Unavailable("the SQLite writer task ended"))?
    }

    /// Runs `f` with the writer connection on the calling thread, after the writers queued
    /// before it. Blocks while it waits and while `f` waits for the disk, so the caller must
    /// be a thread of its own, never one of the runtime's.
    pub(crate) fn write_blocking<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.writer.blocking_lock();
        settle(&conn)?;
        f(&mut conn)
    }

    /// One write statement in its own (autocommit) transaction; returns the rows changed.
    pub(crate) async fn execute(
        &self,
        sql: &'static str,
        params: Vec<Param>,
    ) -> Result<u64, StoreError> {
        self.write(move |conn| execute(conn, sql, &params)).await
    }

    /// Starts a write transaction: waits for this process's writer, then takes SQLite's write
    /// lock up front (`IMMEDIATE`), so a conflicting writer in another process waits here
    /// instead of failing halfway.
    pub(crate) async fn begin(&self) -> Result<SqliteTx, StoreError> {
        let conn = self.writer.clone().lock_owned().await;
        // On the blocking pool: another process holding the write lock makes SQLite's busy
        // handler sleep, which must not stall the runtime's threads.
        let conn = tokio::task::spawn_blocking(move || {
            let conn = settled(conn)?;
            conn.execute_batch("BEGIN IMMEDIATE")?;
            Ok::<_, StoreError>(conn)
        })
        .await
        .map_err(|_| StoreError::Unavailable("the SQLite writer task ended"))??;
        Ok(SqliteTx { conn: Some(conn) })
    }

    /// Applies the embedded migrations not yet applied, recording each in Lockspire's own
    /// bookkeeping table. A database of an earlier release, which kept sqlx's table layout,
    /// moves its record over first, in one transaction; nothing else about it changes.
    pub(crate) async fn migrate(&self) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS lockspire_migrations (
                    version INTEGER PRIMARY KEY,
                    description TEXT NOT NULL,
                    checksum BLOB NOT NULL,
                    applied_at INTEGER NOT NULL
                )",
            )?;
            adopt_earlier_bookkeeping(conn)?;
            let applied: Vec<(i64, Vec<u8>)> = conn
                .prepare("SELECT version, checksum FROM lockspire_migrations ORDER BY version")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            // The refusals of sqlx's migrator, which PostgreSQL uses: a migration this build
            // does not know (the database is newer than the code), an edited one.
            for (v, checksum) in &applied {
                match MIGRATOR.iter().find(|m| m.version == *v) {
                    None => {
                        return Err(StoreError::Migrate(
                            sqlx::migrate::MigrateError::VersionMissing(*v).to_string(),
                        ));
                    }
                    Some(m) if *checksum != *m.checksum => {
                        return Err(StoreError::Migrate(
                            sqlx::migrate::MigrateError::VersionMismatch(*v).to_string(),
                        ));
                    }
                    Some(_) => {}
                }
            }
            for migration in MIGRATOR.iter() {
                if applied.iter().any(|(v, _)| *v == migration.version) {
                    continue;
                }
                let failed = |e: rusqlite::Error| {
                    StoreError::Migration(migration.version, DatabaseError::sqlite(e))
                };
                let record = |c: &Connection| {
                    c.execute(
                        "INSERT INTO lockspire_migrations (version, description, checksum, applied_at) \
                         VALUES (?1, ?2, ?3, unixepoch())",
                        rusqlite::params![
                            migration.version,
                            migration.description.as_ref(),
                            migration.checksum.as_ref()
                        ],
                    )
                };
                if migration.no_tx {
                    conn.execute_batch(migration.sql.as_str()).map_err(failed)?;
                    record(conn).map_err(failed)?;
                } else {
                    // The script and its bookkeeping row commit together or not at all. The
                    // write lock is taken up front: a transaction that reads first (the schema,
                    // to prepare) and writes later fails at once, without waiting, when another
                    // connection to the file (the host's own tables) wrote in between.
                    let tx = conn
                        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                        .map_err(failed)?;
                    tx.execute_batch(migration.sql.as_str()).map_err(failed)?;
                    record(&tx).map_err(failed)?;
                    tx.commit().map_err(failed)?;
                }
            }
            Ok(())
        })
        .await
    }
}

/// Earlier releases recorded SQLite migrations in a copy of sqlx's bookkeeping table
/// (`_sqlx_migrations`). Its record moves to `lockspire_migrations` and the old table goes, in
/// one transaction; a migration it records as failed halfway is refused, as before.
fn adopt_earlier_bookkeeping(conn: &mut Connection) -> Result<(), StoreError> {
    let earlier: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        [],
        |r| r.get(0),
    )?;
    if earlier == 0 {
        return Ok(());
    }
    // Reads, then writes: the write lock up front (see `migrate`).
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let dirty: Option<i64> = tx
        .query_row(
            "SELECT version FROM _sqlx_migrations WHERE NOT success ORDER BY version LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(v) = dirty {
        return Err(StoreError::Migrate(
            sqlx::migrate::MigrateError::Dirty(v).to_string(),
        ));
    }
    tx.execute(
        "INSERT OR IGNORE INTO lockspire_migrations (version, description, checksum, applied_at) \
         SELECT version, description, checksum, COALESCE(CAST(strftime('%s', installed_on) AS INTEGER), 0) \
         FROM _sqlx_migrations",
        [],
    )?;
    tx.execute_batch("DROP TABLE _sqlx_migrations")?;
    tx.commit()?;
    Ok(())
}

/// How often the checkpointer copies committed WAL frames into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// WAL size (in 4 KiB frames) past which a pass also runs on the writer, so the checkpoint
/// completes and the next commit starts the WAL over (SQLite's own threshold).
const RESTART_FRAMES: i64 = 1000;

/// SQLite's own automatic checkpoint threshold (frames), reached only if the checkpointer stops.
const BACKSTOP_FRAMES: i64 = 10 * RESTART_FRAMES;

/// Checkpoints the WAL until the database is dropped. Each pass first copies frames from a
/// connection of its own with `PASSIVE`, which never blocks readers or the writer, so the
/// bulk of the copying costs requests nothing. Under a steady stream of commits that alone
/// never finishes (new frames keep arriving), so once the WAL is past [`RESTART_FRAMES`] the
/// pass takes its turn at the writer and copies the few remaining frames there: the WAL is
/// then complete and starts over, keeping it bounded.
async fn checkpoint(own: Arc<SyncMutex<Connection>>, writer: std::sync::Weak<Mutex<Connection>>) {
    fn passive(conn: &Connection) -> Result<i64, rusqlite::Error> {
        // Returns (busy, frames in the WAL, frames copied).
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
    }
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if writer.strong_count() == 0 {
            return;
        }
        let conn = own.clone();
        let frames = tokio::task::spawn_blocking(move || {
            passive(&conn.lock().unwrap_or_else(PoisonError::into_inner))
        })
        .await;
        let frames = match frames {
            Ok(Ok(frames)) => frames,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "SQLite WAL checkpoint failed");
                continue;
            }
            Err(_) => return,
        };
        if frames < RESTART_FRAMES {
            continue;
        }
        let Some(writer) = writer.upgrade() else {
            return;
        };
        let conn = writer.lock_owned().await;
        match tokio::task::spawn_blocking(move || passive(&conn)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "SQLite WAL checkpoint failed"),
            Err(_) => return,
        }
    }
}

/// The writer with no transaction left open: a commit whose blocking task never ran (runtime
/// shutdown) or whose `ROLLBACK` failed would otherwise leave one for the next writer to
/// stumble into.
fn settled(conn: OwnedMutexGuard<Connection>) -> Result<OwnedMutexGuard<Connection>, StoreError> {
    settle(&conn)?;
    Ok(conn)
}

fn settle(conn: &Connection) -> Result<(), StoreError> {
    if !conn.is_autocommit() {
        tracing::warn!("rolling back a SQLite transaction left open on the writer");
        conn.execute_batch("ROLLBACK")?;
    }
    Ok(())
}

/// A write transaction on the writer connection; dropped without commit, it rolls back.
pub(crate) struct SqliteTx {
    conn: Option<OwnedMutexGuard<Connection>>,
}

impl SqliteTx {
    fn conn(&self) -> Result<&Connection, StoreError> {
        self.conn
            .as_deref()
            .ok_or(StoreError::Unavailable("transaction already ended"))
    }

    /// A statement inside the transaction. Nothing waits for the disk before commit, so it runs
    /// on the calling thread.
    pub(crate) fn execute(&self, sql: &str, params: &[Param]) -> Result<u64, StoreError> {
        execute(self.conn()?, sql, params)
    }

    /// A query inside the transaction (including `UPDATE … RETURNING`).
    pub(crate) fn query<T>(
        &self,
        sql: &str,
        params: &[Param],
        f: impl Fn(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        query(self.conn()?, sql, params, f)
    }

    /// Commits on the blocking pool; the writer is released when the commit is durable.
    pub(crate) async fn commit(mut self) -> Result<(), StoreError> {
        let Some(conn) = self.conn.take() else {
            return Err(StoreError::Unavailable("transaction already ended"));
        };
        tokio::task::spawn_blocking(move || {
            let done = conn.execute_batch("COMMIT");
            if done.is_err() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            done
        })
        .await
        .map_err(|_| StoreError::Unavailable("the SQLite writer task ended"))??;
        Ok(())
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Rolling back discards the transaction's pages; it does not wait for the disk.
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
}

/// Binds `$n` placeholders by their number: SQLite numbers named parameters in order of first
/// appearance, which need not be `n`.
fn bind(stmt: &mut rusqlite::Statement<'_>, params: &[Param]) -> Result<(), StoreError> {
    for index in 1..=stmt.parameter_count() {
        let name = stmt.parameter_name(index).unwrap_or_default();
        let param = name
            .strip_prefix('$')
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| n.checked_sub(1))
            .and_then(|n| params.get(n))
            .ok_or_else(|| rusqlite::Error::InvalidParameterName(name.to_owned()))?;
        match param {
            Param::Text(Some(v)) => stmt.raw_bind_parameter(index, v.as_str())?,
            Param::Int(Some(v)) => stmt.raw_bind_parameter(index, *v)?,
            Param::Text(None) | Param::Int(None) => {
                stmt.raw_bind_parameter(index, rusqlite::types::Null)?
            }
        }
    }
    Ok(())
}

/// Runs a statement that returns no rows.
pub(crate) fn execute(conn: &Connection, sql: &str, params: &[Param]) -> Result<u64, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    bind(&mut stmt, params)?;
    Ok(stmt.raw_execute()? as u64)
}

/// Runs a statement and decodes its rows with `f`.
fn query<T>(
    conn: &Connection,
    sql: &str,
    params: &[Param],
    f: impl Fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    bind(&mut stmt, params)?;
    // Column names once per statement: looking a name up through SQLite converts and compares
    // every column name again for every column read.
    let names: Vec<Box<str>> = stmt.column_names().into_iter().map(Box::from).collect();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(f(&Row::Sqlite(row, &names))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_bind_by_number_not_by_position() {
        let conn = Connection::open_in_memory().expect("open");
        let rows = query(
            &conn,
            "SELECT $2 AS b, $1 AS a, $2 AS b2",
            &[Param::Int(Some(1)), Param::Text(Some("two".into()))],
            |r| {
                Ok((
                    super::super::db::get::<String>(r, "b")?,
                    super::super::db::get::<i64>(r, "a")?,
                    super::super::db::get::<String>(r, "b2")?,
                ))
            },
        )
        .expect("query");
        assert_eq!(rows, vec![("two".to_owned(), 1, "two".to_owned())]);
    }

    #[test]
    fn a_missing_parameter_is_an_error_not_a_null() {
        let conn = Connection::open_in_memory().expect("open");
        let err = execute(&conn, "SELECT $3", &[Param::Int(Some(1))]);
        assert!(err.is_err());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn waiting_for_another_process_write_lock_does_not_stall_the_runtime() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/x.db", dir.path().display());
        let db = SqliteDb::open(&url, 1).expect("open");
        // Another process (here: another connection) holds the write lock.
        let other = Connection::open(dir.path().join("x.db")).expect("other");
        other.execute_batch("BEGIN IMMEDIATE").expect("lock");
        let begin = tokio::spawn(async move { db.begin().await.map(drop) });
        // On a single-threaded runtime, this timer fires only if `begin` waits off-thread.
        let started = std::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the runtime stalled"
        );
        assert!(!begin.is_finished(), "begin waits for the lock");
        other.execute_batch("COMMIT").expect("unlock");
        begin
            .await
            .expect("task")
            .expect("begin once the lock is free");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn opening_waits_for_another_connection_holding_the_write_lock() {
        // The host's own connection, in SQLite's default rollback mode, is writing when
        // Lockspire opens the file and switches it to WAL.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.db");
        let host = Connection::open(&path).expect("host");
        host.execute_batch(
            "CREATE TABLE host (n INTEGER); BEGIN IMMEDIATE; INSERT INTO host VALUES (1);",
        )
        .expect("host writes");
        let url = format!("sqlite://{}", path.display());
        let opening = std::thread::spawn(move || SqliteDb::open(&url, 1).map(drop));
        std::thread::sleep(Duration::from_millis(300));
        host.execute_batch("COMMIT").expect("host commits");
        opening
            .join()
            .expect("thread")
            .expect("opening waits for the host's write, then switches to WAL");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn migrations_wait_for_another_connection_writing_to_the_same_file() {
        // A host's own tables in the same file, written while Lockspire migrates it.
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("x.db");
            let url = format!("sqlite://{}", path.display());
            let db = SqliteDb::open(&url, 1).expect("open");
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let host = {
                let (stop, path) = (stop.clone(), path.clone());
                std::thread::spawn(move || {
                    let conn = Connection::open(&path).expect("host connection");
                    conn.busy_timeout(Duration::from_secs(5)).expect("timeout");
                    conn.execute_batch("CREATE TABLE IF NOT EXISTS host (n INTEGER)")
                        .expect("host table");
                    // A busy host: a write every millisecond (one that never paused would starve
                    // every other writer of the file, Lockspire or not).
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        conn.execute("INSERT INTO host (n) VALUES (1)", [])
                            .expect("host write");
                        std::thread::sleep(Duration::from_millis(1));
                    }
                })
            };
            let migrated = db.migrate().await;
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            host.join().expect("host thread");
            migrated.expect("every migration waits for the host's writes");
        }
    }

    #[test]
    fn urls_parse_to_files_memory_and_modes() {
        let t = parse("sqlite:///tmp/x.db?mode=ro").expect("parse");
        assert_eq!(t.path, PathBuf::from("/tmp/x.db"));
        assert!(t.flags.contains(OpenFlags::SQLITE_OPEN_READ_ONLY));
        assert!(parse("sqlite::memory:").expect("memory").memory);
        assert!(parse("sqlite://x.db?cache=shared").is_err());
        assert!(parse("sqlite://").is_err());
    }
}
