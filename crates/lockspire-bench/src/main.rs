//! `lockspire-bench`: load an OAuth/OIDC server on loopback and print requests/s and latency
//! percentiles per scenario (and the server's peak RSS when given its pid).

use std::time::Duration;

use clap::Parser;
use lockspire_bench::{Limits, Scenario, Target, peak_rss_kib, run};

/// Load an OAuth 2.0 / OpenID Connect server on loopback.
#[derive(Debug, Parser)]
#[command(name = "lockspire-bench", version)]
struct Args {
    /// The issuer of the server under load (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:4000")]
    issuer: String,
    /// Scenarios to run [default: all that the target supports].
    #[arg(long, value_enum, value_delimiter = ',')]
    scenarios: Vec<Scenario>,
    /// Only the scenarios that run against any provider (client credentials, introspection,
    /// JWKS, discovery).
    #[arg(long)]
    portable: bool,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 20)]
    concurrency: usize,
    /// Seconds per scenario.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Requests per scenario at most.
    #[arg(long, default_value_t = 1_000_000)]
    max_requests: u64,
    /// A confidential client allowed client_credentials (registered when absent).
    #[arg(long, requires = "client_secret")]
    client_id: Option<String>,
    /// Its secret.
    #[arg(long, requires = "client_id")]
    client_secret: Option<String>,
    /// Demo-host user for the user scenarios.
    #[arg(long, default_value = "alice")]
    username: String,
    /// Its password.
    #[arg(long, default_value = "alice-password")]
    password: String,
    /// The server's pid, to report its peak RSS and its CPU time per request.
    #[arg(long)]
    server_pid: Option<u32>,

    /// The ID token alg the user scenarios' client registers (e.g. ES256) [default: the
    /// server's, RS256].
    #[arg(long)]
    id_token_alg: Option<String>,
    /// Print one JSON object per scenario.
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scenarios = match (&args.scenarios[..], args.portable) {
        ([], true) => Scenario::PORTABLE.to_vec(),
        ([], false) => Scenario::ALL.to_vec(),
        (list, _) => list.to_vec(),
    };
    let target = Target {
        issuer: args.issuer.clone(),
        client: args.client_id.clone().zip(args.client_secret.clone()),
        user: (args.username.clone(), args.password.clone()),
        id_token_alg: args.id_token_alg.clone(),
    };
    let limits = Limits {
        concurrency: args.concurrency,
        duration: Duration::from_secs(args.duration),
        max_requests: args.max_requests,
        server_pid: args.server_pid,
    };
    if !args.json {
        println!(
            "{:<24} {:>10} {:>8} {:>9} {:>9} {:>9} {:>13} {:>13}",
            "scenario",
            "req/s",
            "errors",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "server µs/req",
            "own µs/req"
        );
    }
    for scenario in scenarios {
        let report = run(&target, scenario, limits).await?;
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            let name = serde_json::to_value(scenario)?
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let us = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |us| format!("{us:.0}"));
            println!(
                "{:<24} {:>10.0} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>13} {:>13}",
                name,
                report.per_second,
                report.errors,
                report.p50_ms,
                report.p90_ms,
                report.p99_ms,
                us(report.server_cpu_us_per_request),
                us(report.generator_cpu_us_per_request)
            );
        }
    }
    if let Some(kib) = args.server_pid.and_then(peak_rss_kib) {
        if args.json {
            println!("{}", serde_json::json!({ "server_peak_rss_kib": kib }));
        } else {
            println!("server peak RSS: {:.1} MiB", kib as f64 / 1024.0);
        }
    }
    Ok(())
}
