//! `cargo run -p lockspire-demo`: the Lockspire demo host. See the library crate for how it
//! is put together.

use anyhow::Context as _;
use clap::Parser;
use lockspire_demo::cli::{Cli, banner};
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    keep_large_allocations_off_the_heap();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run())
}

/// Every sign-in hashes a password with argon2, which takes a 19 MiB buffer. glibc serves
/// large blocks with `mmap` and returns them on free, but after the first such free it raises
/// its threshold to that size, so later buffers come from the heap arenas and stay resident
/// (the process kept 50–60 MiB more than it used). A fixed threshold keeps the default
/// behaviour for every large block.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_large_allocations_off_the_heap() {
    // SAFETY: `mallopt` only changes allocator tuning; it is called before any other thread
    // exists, with a documented parameter and value (glibc's default threshold, 128 KiB).
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_large_allocations_off_the_heap() {}

async fn run() -> anyhow::Result<()> {
    // `info` by default; PostgreSQL's "relation already exists, skipping" notices from the
    // idempotent CREATE TABLE statements are noise at that level.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx::postgres::notice=warn"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let cli = Cli::parse();
    let settings = cli.settings()?;
    let issuer = settings.issuer.clone();
    let profile = settings.security_profile;
    // Bind first: a port in use should fail before any database work.
    let listener = tokio::net::TcpListener::bind(cli.addr)
        .await
        .with_context(|| format!("listening on {}", cli.addr))?;
    let app = lockspire_demo::app(settings).await?;
    println!("{}", banner(&issuer, profile));
    if let (Some(cert), Some(key)) = (&cli.tls_cert, &cli.tls_key) {
        let cert = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
        let key = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
        // HTTPS requesting (not requiring) client certificates, for RFC 8705 mutual TLS.
        lockspire::serve_tls(listener, app, &cert, &key)
            .await
            .context("serving HTTPS")?;
        return Ok(());
    }
    // With each request's peer address: Lockspire limits guessing of device user codes per
    // address (RFC 8628 §5.1).
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        // If the signal handler cannot be installed, run until killed.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    })
    .await
    .context("serving")?;
    Ok(())
}
