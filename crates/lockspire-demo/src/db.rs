//! The demo's own connection pool. Lockspire opens its own pool on the same URL; the demo's
//! tables (`demo_users`, `demo_sessions`) live beside Lockspire's in the same database.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

/// Opens a pool on `url` (`sqlite://…`, `sqlite::memory:` or `postgres://…`). A SQLite file
/// is created if missing, as Lockspire does, so the two can start in either order.
pub(crate) async fn connect(url: &str) -> anyhow::Result<AnyPool> {
    sqlx::any::install_default_drivers();
    let sqlite = url.starts_with("sqlite:");
    let memory = sqlite && url.contains(":memory:");
    let url = if sqlite && !memory && !url.contains("mode=") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}mode=rwc")
    } else {
        url.to_owned()
    };
    if !sqlite && !url.starts_with("postgres:") && !url.starts_with("postgresql:") {
        anyhow::bail!(
            "unsupported database URL {:?}: use sqlite:// or postgres://",
            redact(&url)
        );
    }
    let options = AnyConnectOptions::from_str(&url).context("parsing the database URL")?;
    let mut pool = AnyPoolOptions::new()
        .acquire_timeout(Duration::from_secs(3))
        .max_connections(8);
    if memory {
        // An in-memory SQLite database exists per connection: keep exactly one, forever.
        pool = pool
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None);
    }
    if sqlite {
        pool = pool.after_connect(|conn, _| {
            Box::pin(async move {
                // Lockspire writes to the same file from its own pool: wait for its write lock
                // instead of failing with SQLITE_BUSY.
                conn.execute("PRAGMA busy_timeout = 5000").await?;
                Ok(())
            })
        });
    }
    pool.connect_with(options)
        .await
        .with_context(|| format!("connecting to {}", redact(&url)))
}

/// The URL without its password, for error messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            // Only fails for URLs that cannot have a password, which this one just had.
            let _ = u.set_password(Some("****"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}
