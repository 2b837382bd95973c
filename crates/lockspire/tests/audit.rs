//! The audit log: what it records, that a flood of identical refusals costs one row a minute,
//! and that it is kept for the retention period only.

mod common;

use common::Reply;
use lockspire::store::{AuditEvent, Store};
use serde_json::json;

/// The audit events of `kind`, newest first.
async fn events(h: &common::Harness, kind: &str) -> Vec<AuditEvent> {
    h.ls.operator()
        .audit_events(1000)
        .await
        .expect("audit events")
        .into_iter()
        .filter(|e| e.kind == kind)
        .collect()
}

/// `client_credentials` with the client's id and a wrong secret, `n` times at once.
async fn wrong_secrets(h: &common::Harness, client_id: &str, n: usize) {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (http, url, id) = (h.http(), h.url("/token"), client_id.to_owned());
        tasks.push(tokio::spawn(async move {
            Reply::from(
                http.post(url)
                    .basic_auth(id, Some("wrong"))
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await
                    .expect("token request"),
            )
            .await
        }));
    }
    for task in tasks {
        let r = task.await.expect("task");
        assert_eq!((r.status.as_u16(), r.error()), (401, "invalid_client"));
    }
}

on_both_stores! {
    async fn identical_refusals_in_one_minute_are_one_audit_row_counting_them(h) {
        let client = h.confidential_client(json!({"grant_types": ["client_credentials"]})).await;
        wrong_secrets(&h, &client.id, 30).await;
        // Unknown client ids: the claimed id is not a client, so every such refusal is the
        // same event, whatever id was made up.
        for i in 0..10 {
            wrong_secrets(&h, &format!("made-up-{i}"), 1).await;
        }
        let rows = events(&h, "client_authentication_failed").await;
        assert_eq!(rows.len(), 2, "{rows:?}");
        let known = rows.iter().find(|e| e.client_id.as_deref() == Some(client.id.as_str())).expect("the client's row");
        assert_eq!(known.occurrences, 30);
        assert_eq!(known.detail["reason"], "wrong client secret");
        let unknown = rows.iter().find(|e| e.client_id.is_none()).expect("the unknown clients' row");
        assert_eq!(unknown.occurrences, 10);
        assert_eq!(unknown.detail["reason"], "unknown client");

        // A new minute starts a new row.
        h.clock.advance(60);
        wrong_secrets(&h, &client.id, 1).await;
        let rows = events(&h, "client_authentication_failed").await;
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].occurrences, 1);
        assert_eq!(rows[0].client_id.as_deref(), Some(client.id.as_str()));
    }

    async fn audit_events_past_the_retention_are_deleted_in_batches(h) {
        let h = common::Harness::start_with(h.backend, |b| b.audit_retention(std::time::Duration::from_secs(86_400))).await;
        // More old events than one delete statement removes (2,000), each distinct.
        let store = Store::connect(&h.db.url).await.expect("store");
        let old = lockspire::Clock::now(&h.clock);
        let mut writes = Vec::new();
        for i in 0..2_500 {
            let store = store.clone();
            writes.push(tokio::spawn(async move {
                store.audit(&AuditEvent {
                    tenant_id: "default".into(),
                    at: old,
                    kind: "test_event".into(),
                    client_id: None,
                    subject: Some(format!("user-{i}")),
                    detail: json!({}),
                    occurrences: 1,
                }).await
            }));
        }
        for write in writes {
            write.await.expect("task").expect("audit write");
        }
        assert_eq!(events(&h, "test_event").await.len(), 1000, "listing is capped at 1,000");

        // A day and a minute later, one more event; then the old ones pass the retention.
        h.clock.advance(86_400 + 60);
        let client = h.confidential_client(json!({"grant_types": ["client_credentials"]})).await;
        wrong_secrets(&h, &client.id, 1).await;
        let removed = h.ls.prune_expired().await.expect("prune");
        assert!(removed >= 2_500, "removed {removed}");
        assert!(events(&h, "test_event").await.is_empty());
        assert_eq!(events(&h, "client_authentication_failed").await.len(), 1, "the recent event stays");
    }
}
