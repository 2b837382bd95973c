//! Processes sharing one PostgreSQL database hear each other's changes (LISTEN / NOTIFY), and a
//! process that cannot hear them does not trust what it cached. (Two real server processes
//! are in the demo's `two_processes` suite; here the second process is a second provider.)

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Harness, Reply};
use serde_json::json;
use sqlx::Connection;

/// `client_credentials` at `h` with `id` and `secret`: the status.
async fn token_status(h: &Harness, id: &str, secret: &str) -> u16 {
    let r = Reply::from(
        h.http()
            .post(h.url("/token"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("token"),
    )
    .await;
    r.status.as_u16()
}

/// Polls `token_status` until it answers `want`, within a second: the time PostgreSQL takes to
/// deliver an announcement to every listener, with room to spare, and far below the 5 s for
/// which a cache entry would otherwise be trusted.
async fn soon(h: &Harness, id: &str, secret: &str, want: u16, what: &str) {
    within(h, id, secret, want, what, Duration::from_secs(1)).await;
}

/// [`soon`] with its own deadline.
async fn within(h: &Harness, id: &str, secret: &str, want: u16, what: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while token_status(h, id, secret).await != want {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// On SQLite a change is seen at the next poll of the change counter, every 250 ms; under a
/// loaded test run the poll may come late. Three seconds still proves it is the counter, not
/// the cache's 5 s lifetime, that made the server forget.
const SQLITE_FOLLOWS_WITHIN: Duration = Duration::from_secs(3);

/// The backends listening for announcements on the test database.
async fn listeners(h: &Harness, terminate: bool) -> i64 {
    let mut c = sqlx::PgConnection::connect(&h.db.url).await.expect("db");
    let what = if terminate {
        "count(pg_terminate_backend(pid))"
    } else {
        "count(*)"
    };
    let sql = format!(
        "SELECT {what} FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
    );
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_one(&mut c)
        .await
        .expect("pg_stat_activity");
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_cannot_hear_other_processes_changes_bypasses_its_client_cache() {
    let h = Harness::start(Backend::Postgres).await;
    let (_, other) = h.second_server().await;
    let client = h
        .confidential_client(json!({"grant_types": ["client_credentials"]}))
        .await;
    let first = client.secret.clone().expect("secret");
    let deadline = Instant::now() + Duration::from_secs(10);
    while listeners(&h, false).await < 2
        || h.ls.operator().change_listener_connected() != Some(true)
        || other.operator().change_listener_connected() != Some(true)
    {
        assert!(Instant::now() < deadline, "both providers listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Heard: a change made by the other process reaches this one's cache within milliseconds.
    assert_eq!(
        token_status(&h, &client.id, &first).await,
        200,
        "cached here"
    );
    let second = other
        .operator()
        .rotate_client_secret(&client.id)
        .await
        .expect("rotate");
    soon(&h, &client.id, &first, 401, "the rotated secret is refused").await;
    assert_eq!(
        token_status(&h, &client.id, &second).await,
        200,
        "cached again"
    );

    // Not heard: every listening connection is cut, and the client is disabled behind
    // Lockspire's back (as by a process that announces nothing). The cached entry must not be
    // used.
    assert!(listeners(&h, true).await >= 2);
    // The listeners see their connections close within milliseconds; they reconnect after a
    // second. (Reconnecting also clears the cache, so this wait can only make the test pass
    // for the right reason, never fail it.)
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut db = sqlx::PgConnection::connect(&h.db.url).await.expect("db");
    let set_status = |status: &'static str| {
        sqlx::query("UPDATE clients SET status = $1 WHERE client_id = $2")
            .bind(status)
            .bind(client.id.clone())
    };
    set_status("disabled")
        .execute(&mut db)
        .await
        .expect("disable");
    assert_eq!(
        token_status(&h, &client.id, &second).await,
        401,
        "the cache is bypassed while deaf"
    );
    set_status("active").execute(&mut db).await.expect("enable");

    // Listening again, changes are heard again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let hearing =
        |ls: &lockspire::Lockspire| ls.operator().change_listener_connected() == Some(true);
    while !(hearing(&h.ls) && hearing(&other)) {
        assert!(Instant::now() < deadline, "the listeners reconnect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        token_status(&h, &client.id, &second).await,
        200,
        "cached here"
    );
    let third = other
        .operator()
        .rotate_client_secret(&client.id)
        .await
        .expect("rotate");
    soon(
        &h,
        &client.id,
        &second,
        401,
        "the rotated secret is refused",
    )
    .await;
    assert_eq!(token_status(&h, &client.id, &third).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_a_change_made_by_the_lockspire_command_reaches_a_running_server_at_once() {
    // The `lockspire` command is another process on the same file: it opens an operator of its
    // own. The running server must not keep trusting what it cached for its cache's 5 s.
    let h = Harness::start(Backend::Sqlite).await;
    let client = h.confidential_client(json!({})).await;
    let secret = client.secret.clone().expect("secret");
    assert_eq!(
        token_status(&h, &client.id, &secret).await,
        200,
        "cached here"
    );
    let command = lockspire::Lockspire::builder()
        .issuer(&h.base)
        .expect("issuer")
        .database(&h.db.url)
        .secret_key(h.secret_key.clone())
        .build_operator()
        .await
        .expect("the command's operator");
    let rotated = command
        .rotate_client_secret(&client.id)
        .await
        .expect("rotate");
    within(
        &h,
        &client.id,
        &secret,
        401,
        "the old secret is refused",
        SQLITE_FOLLOWS_WITHIN,
    )
    .await;
    assert_eq!(token_status(&h, &client.id, &rotated).await, 200);
    command
        .set_client_enabled(&client.id, false)
        .await
        .expect("disable");
    soon(
        &h,
        &client.id,
        &rotated,
        401,
        "the disabled client is refused",
    )
    .await;
}
