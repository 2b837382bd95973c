//! The store's own rules, on SQLite (a fresh file per test) and PostgreSQL (a fresh database
//! per test, dropped afterwards; `LOCKSPIRE_TEST_POSTGRES` overrides the server URL): single-use
//! transitions under concurrency, the group commit's rows, one-time values and pruning.

use sqlx::Connection;

use super::{
    AccessRecord, AuditEvent, Binding, ClientRecord, ClientStatus, CodeRecord, Consumed,
    GrantRecord, Issued, PRUNE_BATCH, PushedRecord, RefreshRecord, Store, TokenKind, TokenRecord,
    UserGrant,
};
use crate::clock::UnixTime;
use crate::config::{AccessTokenFormat, DatabasePool};
use crate::model::client::ClientId;
use crate::model::scope::ScopeSet;

/// A fresh database for one test, removed when dropped.
pub(super) struct TestDb {
    pub(super) store: Store,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/lockspire.db", dir.path().display());
        Self {
            store: Store::connect_with(&url, &DatabasePool::default())
                .await
                .expect("store"),
            _dir: Some(dir),
            pg: None,
        }
    }

    pub(super) async fn postgres() -> Self {
        let admin = std::env::var("LOCKSPIRE_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let name = format!(
            "lockspire_u_{}",
            crate::secrets::random_id()
                .to_lowercase()
                .replace(['-', '_'], "x")
        );
        let mut c = sqlx::PgConnection::connect(&format!("{admin}/postgres"))
            .await
            .expect("PostgreSQL must be reachable for the store's tests");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut c)
            .await
            .expect("create test database");
        Self {
            store: Store::connect_with(&format!("{admin}/{name}"), &DatabasePool::default())
                .await
                .expect("store"),
            _dir: None,
            pg: Some((admin, name)),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.pg.take() else {
            return;
        };
        // Drop runs inside the test's runtime; a separate thread may block on its own runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut c) = sqlx::PgConnection::connect(&format!("{admin}/postgres")).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&mut c)
                    .await;
                }
            });
        })
        .join();
    }
}

/// Runs each test body once on SQLite and once on PostgreSQL, as `name::sqlite` and
/// `name::postgres`; `$store` is the fresh database's store.
macro_rules! on_both_stores {
    ($( async fn $name:ident($store:ident) $body:block )*) => { $(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = TestDb::sqlite().await;
                let $store = &db.store;
                $body
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = TestDb::postgres().await;
                let $store = &db.store;
                $body
            }
        }
    )* };
}

const NOW: UnixTime = 1_700_000_000;

/// Inserts every row at once, so that they share group commits.
async fn futures_join_all(
    store: &Store,
    rows: &[TokenRecord],
) -> Vec<Result<(), super::StoreError>> {
    let tasks: Vec<_> = rows
        .iter()
        .map(|row| {
            let (store, row) = (store.clone(), row.clone());
            tokio::spawn(async move { store.insert_token(&row).await })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("task"));
    }
    out
}

/// An active client with id `id`.
async fn client(store: &Store, id: &str) {
    let record = ClientRecord {
        tenant_id: "default".into(),
        client_id: crate::model::client::ClientId::new(id),
        secret_digest: None,
        metadata: crate::model::client::example_metadata(&["https://rp.example/cb"]),
        status: ClientStatus::Active,
        created_at: NOW,
        sealed_secret: None,
        registration_token_digest: None,
        secret_expires_at: None,
    };
    let event = event(NOW, "client_registered", 0);
    assert!(
        store
            .insert_client(&record, None, &event)
            .await
            .expect("insert client")
    );
}

fn event(at: UnixTime, kind: &str, n: usize) -> AuditEvent {
    AuditEvent {
        tenant_id: "default".into(),
        at,
        kind: kind.into(),
        client_id: None,
        subject: Some(format!("user-{n}")),
        detail: serde_json::json!({}),
        occurrences: 1,
    }
}

/// What every row holds, for client `client_id`.
fn issued(digest: &str, client_id: &str, created_at: UnixTime, expires_at: UnixTime) -> Issued {
    Issued {
        digest: digest.to_owned(),
        tenant_id: "default".into(),
        client_id: ClientId::new(client_id),
        scopes: ScopeSet::from_stored("read"),
        resources: Vec::new(),
        authorization_details: Default::default(),
        created_at,
        expires_at,
        consumed_at: None,
        revoked_at: None,
    }
}

/// A client_credentials access token row (no grant, no user).
fn client_credentials_row(
    digest: String,
    client_id: &str,
    created_at: UnixTime,
    expires_at: UnixTime,
) -> TokenRecord {
    TokenRecord::Access(AccessRecord {
        issued: issued(&digest, client_id, created_at, expires_at),
        user: None,
        format: AccessTokenFormat::Opaque,
        jti: None,
        binding: None,
        act: None,
    })
}

on_both_stores! {
    async fn a_code_is_consumed_once_under_concurrency_and_a_replay_revokes_its_grant(store) {
        client(store, "rp").await;
        let grant = GrantRecord {
            id: "grant-1".into(),
            tenant_id: "default".into(),
            client_id: ClientId::new("rp"),
            subject: "alice".into(),
            scopes: crate::model::scope::ScopeSet::from_stored("openid"),
            resources: Vec::new(),
            details: "{}".into(),
            auth_time: NOW,
            created_at: NOW,
            expires_at: NOW + 86_400,
            op_session: None,
            sid: None,
        };
        let code = TokenRecord::Code(CodeRecord {
            issued: issued("code-digest", "rp", NOW, NOW + 60),
            user: UserGrant { grant_id: grant.id.clone(), subject: "alice".into() },
            redirect_uri: Some("https://rp.example/cb".into()),
            code_challenge: "challenge".into(),
            nonce: None,
            dpop_jkt: None,
        });
        let mut tx = store.begin().await.expect("begin");
        tx.insert_grant(&grant).await.expect("grant");
        tx.insert_token(&code).await.expect("code");
        tx.commit().await.expect("commit");
        let mut tx = store.begin().await.expect("begin");
        assert!(tx.live_grant(&grant.id, NOW).await.expect("read").is_some(), "the grant is live before");
        drop(tx);

        let mut tasks = Vec::new();
        for _ in 0..16 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut tx = store.begin().await.expect("begin");
                let outcome = tx.consume(TokenKind::Code, "code-digest", NOW + 1).await.expect("consume");
                tx.commit().await.expect("commit");
                outcome
            }));
        }
        let mut now_count = 0;
        for t in tasks {
            match t.await.expect("task") {
                Consumed::Now => now_count += 1,
                Consumed::Replayed(_) => {}
                Consumed::Invalid => panic!("a consumed code must read as replayed, not unknown"),
            }
        }
        assert_eq!(now_count, 1);
        let mut tx = store.begin().await.expect("begin");
        assert!(tx.live_grant(&grant.id, NOW + 1).await.expect("read").is_none(), "replay revoked the grant");
        // One transaction at a time per task: SQLite writers take turns.
        drop(tx);
        let mut tx2 = store.begin().await.expect("begin");
        assert!(matches!(tx2.consume(TokenKind::Code, "unknown", NOW + 1).await.expect("consume"), Consumed::Invalid));
    }

    async fn a_token_row_refused_in_a_group_commit_fails_alone(store) {
        // Concurrent issuances share one commit. A row the database refuses (here: a key
        // already taken) must fail only its own issuance; every other row of the batch is
        // committed and acknowledged.
        client(store, "rp").await;
        let row = |digest: String| client_credentials_row(digest, "rp", NOW, NOW + 600);
        store.insert_token(&row("taken".into())).await.expect("first insert");
        let inserts: Vec<_> = (0..40).map(|i| {
            let digest = if i == 20 { "taken".to_owned() } else { format!("fresh-{i}") };
            let (store, record) = (store.clone(), row(digest));
            tokio::spawn(async move { (record.issued().digest.clone(), store.insert_token(&record).await) })
        }).collect();
        for insert in inserts {
            let (digest, written) = insert.await.expect("task");
            if digest == "taken" {
                let refused = written.expect_err("a duplicate key is refused");
                assert!(!refused.is_unavailable(), "refused for the row, not for the database: {refused}");
            } else {
                written.expect("every other row is written");
                assert!(store.active_token(&digest, NOW).await.expect("read").is_some(), "{digest} stored");
            }
        }
    }

    async fn a_token_written_through_the_group_commit_reads_back_column_for_column(store) {
        // Batches are written column-wise on PostgreSQL (one array per column): every column
        // must land where it belongs. Distinct values in every column and NULLs in different
        // places in the two rows make a swap visible.
        // Every kind, so that each kind's own columns are filled somewhere.
        let full = |digest: &str, n: i64| Issued {
            digest: digest.into(),
            tenant_id: format!("tenant-{n}"),
            client_id: ClientId::new(format!("client-{n}")),
            scopes: ScopeSet::from_stored(&format!("scope-{n} other-{n}")),
            resources: vec![format!("https://resource.example/{n}")],
            authorization_details: crate::model::authorization_details::AuthorizationDetails::parse(&format!(r#"[{{"type":"type-{n}","actions":["act-{n}"]}}]"#)).expect("details"),
            created_at: 1_700_000_000 + n,
            expires_at: 1_700_100_000 + n,
            consumed_at: None,
            revoked_at: None,
        };
        let user = |n: i64| UserGrant { grant_id: format!("grant-{n}"), subject: format!("subject-{n}") };
        let rows = [
            TokenRecord::Code(CodeRecord {
                issued: full("digest-code", 1),
                user: user(1),
                redirect_uri: Some("https://rp.example/cb".into()),
                code_challenge: "challenge-1".into(),
                nonce: Some("nonce-1".into()),
                dpop_jkt: Some("jkt-1".into()),
            }),
            TokenRecord::Code(CodeRecord {
                issued: full("digest-code-sparse", 2),
                user: user(2),
                redirect_uri: None,
                code_challenge: "challenge-2".into(),
                nonce: None,
                dpop_jkt: None,
            }),
            TokenRecord::Access(AccessRecord {
                issued: full("digest-access", 3),
                user: Some(user(3)),
                format: AccessTokenFormat::Jwt,
                jti: Some("jti-3".into()),
                binding: Some(Binding::Certificate("x5t-3".into())),
                act: Some(serde_json::json!({ "sub": "svc", "act": { "sub": "earlier" } })),
            }),
            TokenRecord::Access(AccessRecord {
                issued: Issued { resources: Vec::new(), scopes: ScopeSet::default(), authorization_details: Default::default(), ..full("digest-access-sparse", 4) },
                user: None,
                format: AccessTokenFormat::Opaque,
                jti: None,
                binding: None,
                act: None,
            }),
            TokenRecord::Refresh(RefreshRecord {
                issued: full("digest-refresh", 5),
                user: user(5),
                binding: Some(Binding::Dpop("jkt-5".into())),
            }),
        ];
        let written = futures_join_all(store, &rows).await;
        for (row, result) in rows.iter().zip(written) {
            result.expect("row written");
            let digest = &row.issued().digest;
            let read = store.peek_token(digest).await.expect("read").expect("stored");
            assert_eq!(format!("{read:?}"), format!("{row:?}"));
        }
    }

    async fn a_replay_record_refuses_a_live_key_and_frees_an_expired_one(store) {
        let now = NOW;
        assert!(store.record_once("ns", "key", now + 60, now).await.expect("first"), "new key");
        assert!(!store.record_once("ns", "key", now + 120, now + 30).await.expect("replay"), "live key");
        assert!(store.record_once("other-ns", "key", now + 60, now).await.expect("other"), "namespaces are apart");
        // At its expiry the entry is free again, and the new one lives to its own expiry.
        assert!(store.record_once("ns", "key", now + 200, now + 60).await.expect("reuse"), "expired key");
        assert!(!store.record_once("ns", "key", now + 300, now + 199).await.expect("replay"), "renewed entry is live");
        // Concurrent first uses: exactly one wins.
        let tries: Vec<_> = (0..16).map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.record_once("ns", "raced", now + 60, now).await.expect("record") })
        }).collect();
        let mut won = 0;
        for t in tries {
            won += usize::from(t.await.expect("task"));
        }
        assert_eq!(won, 1);
    }

    async fn a_burst_of_one_time_values_shares_commits_and_each_is_recorded_once(store) {
        let now = NOW;
        // Each key twice, all at once: the writer batches them, duplicates within a batch
        // included, and exactly one use of each key wins.
        let tries: Vec<_> = (0..64).map(|i| {
            let store = store.clone();
            let key = format!("burst-{}", i % 32);
            tokio::spawn(async move { (key.clone(), store.record_once("dpop", &key, now + 60, now).await.expect("record")) })
        }).collect();
        let mut won = std::collections::HashMap::new();
        for t in tries {
            let (key, first) = t.await.expect("task");
            *won.entry(key).or_insert(0) += usize::from(first);
        }
        assert_eq!(won.len(), 32);
        assert!(won.values().all(|w| *w == 1), "{won:?}");
        // Afterwards every one of them is a replay.
        for i in 0..32 {
            assert!(!store.record_once("dpop", &format!("burst-{i}"), now + 60, now + 1).await.expect("replay"));
        }
    }

    async fn a_prune_larger_than_one_batch_removes_every_expired_row_and_keeps_live_ones(store) {
        client(store, "rp").await;
        let now = NOW;
        let row = |digest: String, expires_at| client_credentials_row(digest, "rp", now - 7200, expires_at);
        let expired = 2 * PRUNE_BATCH + 1;
        let inserts: Vec<_> = (0..expired)
            .map(|i| row(format!("expired-{i}"), now - 60))
            .chain((0..3).map(|i| row(format!("live-{i}"), now + 600)))
            .map(|record| {
                let store = store.clone();
                tokio::spawn(async move { store.insert_token(&record).await })
            })
            .collect();
        for insert in inserts {
            insert.await.expect("task").expect("insert");
        }
        // Audit events are kept (their cutoff is far in the past here).
        let removed = store.prune_expired(now, 0).await.expect("prune");
        assert_eq!(removed, expired.unsigned_abs(), "three batches, every expired row");
        for i in 0..3 {
            assert!(store.any_token(&format!("live-{i}")).await.expect("read").is_some());
        }
        assert!(store.any_token("expired-0").await.expect("read").is_none());
        assert_eq!(store.prune_expired(now, 0).await.expect("prune"), 0);
    }

    async fn audit_events_past_the_retention_are_deleted_in_batches(store) {
        // More old events than one delete statement removes, each distinct (one row each).
        let old = NOW;
        let writes: Vec<_> = (0..2_500).map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.audit(&event(old, "test_event", i)).await })
        }).collect();
        for write in writes {
            write.await.expect("task").expect("audit write");
        }
        assert_eq!(store.audit_events("default", 5_000).await.expect("list").len(), 2_500);
        let recent = NOW + 86_400 + 60;
        store.audit(&event(recent, "recent_event", 0)).await.expect("audit write");
        let removed = store.prune_expired(recent, recent - 86_400).await.expect("prune");
        assert_eq!(removed, 2_500);
        let left = store.audit_events("default", 5_000).await.expect("list");
        assert_eq!(left.len(), 1, "the recent event stays");
        assert_eq!(left[0].kind, "recent_event");
    }

    async fn a_pushed_request_is_used_once_by_its_client_before_expiry_then_pruned(store) {
        let pushed = |digest: &str| PushedRecord {
            digest: digest.into(),
            tenant_id: "default".into(),
            client_id: ClientId::new("rp"),
            params: "[[\"client_id\",\"rp\"]]".into(),
            created_at: NOW,
            expires_at: NOW + 60,
        };
        store.insert_pushed(&pushed("a")).await.expect("insert");
        store.insert_pushed(&pushed("b")).await.expect("insert");
        assert_eq!(store.consume_pushed("default", "a", "other", NOW).await.expect("consume"), None, "another client");
        let tries: Vec<_> = (0..8).map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.consume_pushed("default", "a", "rp", NOW + 1).await.expect("consume") })
        }).collect();
        let mut used = 0;
        for t in tries {
            if let Some(params) = t.await.expect("task") {
                assert_eq!(params, "[[\"client_id\",\"rp\"]]");
                used += 1;
            }
        }
        assert_eq!(used, 1, "used exactly once");
        assert_eq!(store.consume_pushed("default", "b", "rp", NOW + 60).await.expect("consume"), None, "expired");
        assert_eq!(store.prune_expired(NOW + 60, 0).await.expect("prune"), 2, "both rows are past their expiry");
    }

    async fn a_decoupled_request_is_decided_once_by_its_own_user_and_polled_on_time_once(store) {
        let request = |digest: &str, subject: Option<&str>| crate::store::DecoupledRecord {
            issued: issued(digest, "rp", NOW, NOW + 600),
            kind: crate::store::DecoupledKind::Ciba,
            user_code: None,
            subject: subject.map(str::to_owned),
            request: "{}".into(),
            status: crate::store::DecoupledStatus::Pending,
            poll_interval: 5,
        };
        assert!(store.insert_decoupled(&request("r1", Some("alice"))).await.expect("insert"));
        assert!(!store.insert_decoupled(&request("r1", Some("alice"))).await.expect("insert"), "taken");
        // The decision's own condition refuses another user, whatever the caller read.
        let mut tx = store.begin().await.expect("tx");
        assert!(!tx.decide_decoupled("r1", "bob", crate::store::Decision::Deny, "{}", NOW).await.expect("decide"));
        drop(tx);
        // Concurrent decisions: one wins.
        let tries: Vec<_> = (0..8).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tx = store.begin().await.expect("tx");
                let decision = if i % 2 == 0 { crate::store::Decision::Approve("g1") } else { crate::store::Decision::Deny };
                let won = tx.decide_decoupled("r1", "alice", decision, "{}", NOW + 1).await.expect("decide");
                tx.commit().await.expect("commit");
                won
            })
        }).collect();
        let mut won = 0;
        for t in tries {
            won += usize::from(t.await.expect("task"));
        }
        assert_eq!(won, 1, "decided once");
        // Concurrent early polls of a pending request: one is on time, the rest too early.
        assert!(store.insert_decoupled(&request("r2", None)).await.expect("insert"));
        let polls: Vec<_> = (0..8).map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.poll_decoupled("r2", NOW + 1).await.expect("poll") })
        }).collect();
        let mut on_time = 0;
        for poll in polls {
            on_time += usize::from(poll.await.expect("task") == crate::store::Poll::OnTime);
        }
        assert_eq!(on_time, 1);
        let row = store.decoupled("r2").await.expect("read").expect("row");
        assert_eq!(row.poll_interval, 5 + 7 * 5, "each early poll added 5 s");
        assert!(store.withdraw_decoupled("r2").await.expect("withdraw"));
        assert!(store.decoupled("r2").await.expect("read").is_none());
    }

    async fn a_burst_of_attempts_is_counted_one_by_one_and_the_window_restarts(store) {
        let tries: Vec<_> = (0..20).map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.count_attempt("k", 900, NOW).await.expect("count").0 })
        }).collect();
        let mut counts = Vec::new();
        for t in tries {
            counts.push(t.await.expect("task"));
        }
        counts.sort_unstable();
        assert_eq!(counts, (1..=20).collect::<Vec<i64>>(), "every attempt got its own count");
        assert_eq!(store.count_attempt("k", 900, NOW + 899).await.expect("count"), (21, NOW));
        // A refund of the ended window does not touch the next one.
        assert_eq!(store.count_attempt("k", 900, NOW + 900).await.expect("count"), (1, NOW + 900), "a new window");
        store.refund_attempt("k", NOW).await.expect("refund");
        assert_eq!(store.count_attempt("k", 900, NOW + 901).await.expect("count").0, 2);
        store.refund_attempt("k", NOW + 900).await.expect("refund");
        assert_eq!(store.count_attempt("k", 900, NOW + 902).await.expect("count").0, 2, "one taken back");
    }

    async fn an_outbox_call_is_leased_by_one_worker_and_only_its_lease_records_a_failure(store) {
        let message = |id: &str| crate::store::OutboxMessage {
            id: id.into(),
            tenant_id: "default".into(),
            kind: crate::store::OutboxKind::CibaPing,
            client_id: ClientId::new("rp"),
            url: "https://rp.example/cb".into(),
            sealed: "sealed".into(),
            attempts: 0,
        };
        let mut tx = store.begin().await.expect("tx");
        tx.enqueue(&message("m1"), NOW).await.expect("enqueue");
        tx.commit().await.expect("commit");
        let leases: Vec<_> = (0..6).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store.lease_outbox("default", &format!("w{i}"), NOW, NOW + 30, 16).await.expect("lease")
            })
        }).collect();
        let mut leased = Vec::new();
        for l in leases {
            leased.extend(l.await.expect("task"));
        }
        assert_eq!(leased.len(), 1, "one worker holds the call");
        let first = leased.remove(0);
        assert_eq!(first.attempts, 1);
        assert!(store.lease_outbox("other", "w9", NOW, NOW + 30, 16).await.expect("lease").is_empty(), "another tenant's worker");
        // The lease runs out; another worker takes the call.
        let second = store.lease_outbox("default", "late", NOW + 31, NOW + 61, 16).await.expect("lease");
        assert_eq!(second.len(), 1);
        // The first worker, still waiting on the client, cannot put the call back in line.
        let retry = crate::store::Delivery::RetryAt(NOW + 40, "HTTP 503".into());
        let first_worker = first.id.clone();
        assert!(!store.finish_outbox(&first, "w-not-the-holder", &retry, NOW + 32).await.expect("finish"), "{first_worker}");
        let holder = leased_by_of(store, &second[0]).await;
        assert!(!store.finish_outbox(&first, &holder, &retry, NOW + 32).await.expect("finish"), "an older attempt");
        assert!(store.finish_outbox(&second[0], "late", &crate::store::Delivery::Delivered, NOW + 33).await.expect("finish"));
        let delivered = store.outbox_entries("default", crate::store::OutboxStatus::Delivered, 10).await.expect("list");
        assert_eq!(delivered.len(), 1);
        assert_eq!(delivered[0].attempts, 2);
    }
}

/// The worker holding `message`'s lease, as the store recorded it.
async fn leased_by_of(store: &Store, message: &super::OutboxMessage) -> String {
    store
        .db
        .fetch_optional(
            "SELECT leased_by FROM outbox WHERE id = $1",
            super::db::params![message.id],
            |r| super::db::get::<String>(r, "leased_by"),
        )
        .await
        .expect("read")
        .expect("row")
}
