//! Keeps the load generator from rotting: every scenario runs briefly against the demo host
//! started in-process, and must complete requests without errors. Numbers are not asserted.

use std::time::Duration;

use lockspire::{RegistrationPolicy, SecretKey};
use lockspire_bench::{Limits, Scenario, Target, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_against_the_demo_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let issuer = format!("http://{}", listener.local_addr().expect("addr"));
    let app = lockspire_demo::app(lockspire_demo::Settings {
        issuer: issuer.clone(),
        database_url: format!("sqlite://{}/demo.db", dir.path().display()),
        registration: RegistrationPolicy::Open,
        secret_key: SecretKey::generate(),
        mtls: None,
        dev_mode: true,
        key_refresh_interval: None,
        outbox_lease: None,
        extra_resources: Vec::new(),
        security_profile: lockspire::SecurityProfile::None,
    })
    .await
    .expect("demo starts");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let target = Target {
        issuer,
        client: None,
        user: ("alice".into(), "alice-password".into()),
        id_token_alg: None,
    };
    let limits = Limits {
        concurrency: 2,
        duration: Duration::from_secs(1),
        max_requests: 40,
        // The server runs in this process, so this measures server and generator together:
        // enough to show the measurement works.
        server_pid: Some(std::process::id()),
    };
    for scenario in Scenario::ALL {
        let report = run(&target, scenario, limits)
            .await
            .unwrap_or_else(|e| panic!("{scenario:?}: {e:#}"));
        assert!(report.requests > 0, "{scenario:?} completed no request");
        assert_eq!(report.errors, 0, "{scenario:?} had errors");
        assert!(report.p99_ms >= report.p50_ms);
        assert!(
            report.server_cpu_us_per_request.is_some(),
            "{scenario:?}: no CPU figure"
        );
    }
}

#[tokio::test]
async fn non_loopback_targets_are_refused() {
    let target = Target {
        issuer: "https://auth.example.com".into(),
        client: None,
        user: ("a".into(), "b".into()),
        id_token_alg: None,
    };
    let limits = Limits {
        concurrency: 1,
        duration: Duration::from_millis(10),
        max_requests: 1,
        server_pid: None,
    };
    assert!(run(&target, Scenario::Discovery, limits).await.is_err());
}
