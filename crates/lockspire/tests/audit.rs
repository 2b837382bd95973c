//! The audit log: what it records, that a flood of identical refusals costs one row a minute,
//! and that it is kept for the retention period only.

mod common;

use common::Reply;
use lockspire::AuditEvent;
use lockspire::{RegistrationPolicy, Subject};
use serde_json::{Value, json};

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

/// The newest event of `kind`, checked to say who did what, how it ended and why.
async fn security_event(h: &common::Harness, kind: &str, actor: &str, outcome: &str) -> AuditEvent {
    security_event_where(h, kind, actor, outcome, |_| true).await
}

/// As [`security_event`], for the newest event of `kind` that `matches` (events of one second
/// have no order among themselves).
async fn security_event_where(
    h: &common::Harness,
    kind: &str,
    actor: &str,
    outcome: &str,
    matches: impl Fn(&AuditEvent) -> bool,
) -> AuditEvent {
    let event = events(h, kind)
        .await
        .into_iter()
        .find(|e| matches(e))
        .unwrap_or_else(|| panic!("no matching {kind} event"));
    assert_eq!(event.detail["actor"], actor, "{kind}: {:?}", event.detail);
    assert_eq!(
        event.detail["outcome"], outcome,
        "{kind}: {:?}",
        event.detail
    );
    assert!(
        event.detail["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{kind}: {:?}",
        event.detail
    );
    event
}

on_both_stores! {
    async fn security_events_are_audited_with_actor_outcome_and_reason(h) {
        // Clients: registered, updated and deleted through RFC 7591/7592, changed by the operator.
        let reg: Value = h.http().post(h.url("/register")).json(&json!({"redirect_uris": ["https://rp.example/cb"],
            "grant_types": ["authorization_code", "refresh_token"]})).send().await.expect("register").json().await.expect("json");
        let id = reg["client_id"].as_str().expect("id").to_owned();
        let uri = reg["registration_client_uri"].as_str().expect("uri").to_owned();
        let rat = reg["registration_access_token"].as_str().expect("rat").to_owned();
        assert_eq!(security_event(&h, "client_registered", "registrant", "done").await.client_id.as_deref(), Some(id.as_str()));
        let put: Value = h.http().put(&uri).bearer_auth(&rat).json(&json!({"client_id": id, "client_name": "v2",
            "redirect_uris": ["https://rp.example/cb"], "grant_types": ["authorization_code", "refresh_token"]}))
            .send().await.expect("put").json().await.expect("json");
        let rat = put["registration_access_token"].as_str().expect("rat").to_owned();
        security_event(&h, "client_updated", &format!("client:{id}"), "done").await;
        let op = h.ls.operator();
        op.rotate_client_secret(&id).await.expect("rotate");
        security_event(&h, "client_secret_rotated", "operator", "done").await;
        op.set_client_enabled(&id, false).await.expect("disable");
        security_event(&h, "client_disabled", "operator", "done").await;
        op.set_client_enabled(&id, true).await.expect("enable");
        security_event(&h, "client_enabled", "operator", "done").await;

        // Consent granted and withdrawn; a replayed code and a reused refresh token.
        let client = h.public_client(json!({})).await;
        let (code, verifier) = h.authorize(&client, "alice", "openid offline_access").await;
        let granted = security_event(&h, "consent_granted", "user:alice", "done").await;
        assert_eq!(granted.detail["scopes"], json!(["openid", "offline_access"]));
        let tokens = h.redeem(&client, &code, &verifier).await.body;
        assert_eq!(h.redeem(&client, &code, &verifier).await.error(), "invalid_grant");
        let replay = security_event(&h, "code_replayed", &format!("client:{}", client.id), "refused").await;
        assert_eq!(replay.subject.as_deref(), Some("alice"));
        assert!(replay.detail["grant"].is_string());
        let (code, verifier) = h.authorize(&client, "alice", "openid offline_access").await;
        let rt = h.redeem(&client, &code, &verifier).await.body["refresh_token"].as_str().expect("rt").to_owned();
        let rotate = [("grant_type", "refresh_token"), ("refresh_token", rt.as_str())];
        assert_eq!(h.post_as(&client, "/token", &rotate).await.status, 200);
        assert_eq!(h.post_as(&client, "/token", &rotate).await.error(), "invalid_grant");
        security_event(&h, "refresh_token_reused", &format!("client:{}", client.id), "refused").await;
        assert!(tokens["access_token"].is_string());
        let alice = Subject::new("alice").expect("subject");
        assert!(h.ls.revoke_authorization(&alice, &client.id).await.expect("revoke"));
        security_event(&h, "consent_revoked", "user:alice", "done").await;

        // Keys.
        let key = op.generate_key(lockspire::jose::SigningAlg::ES256).await.expect("generate").kid;
        security_event_where(&h, "key_generated", "operator", "done", |e| e.detail["kid"] == key.as_str()).await;
        h.clock.advance(lockspire::PUBLISH_BEFORE_USE + 1);
        op.activate_key(&key).await.expect("activate");
        security_event(&h, "key_activated", "operator", "done").await;
        let spare = op.generate_key(lockspire::jose::SigningAlg::ES256).await.expect("generate").kid;
        op.retire_key(&spare).await.expect("retire");
        security_event_where(&h, "key_retired", "operator", "done", |e| e.detail["kid"] == spare.as_str()).await;

        // Deleted through RFC 7592.
        let deleted = h.http().delete(&uri).bearer_auth(&rat).send().await.expect("delete");
        assert_eq!(deleted.status(), 204);
        security_event(&h, "client_deleted", &format!("client:{id}"), "done").await;
    }

    async fn initial_access_tokens_are_audited_when_minted_used_and_revoked(h) {
        let h = common::Harness::start_with(h.backend, |b| b.registration(RegistrationPolicy::InitialAccessToken(None))).await;
        let op = h.ls.operator();
        let (record, token) = op.mint_initial_access_token(Some(1), None).await.expect("mint");
        let minted = security_event(&h, "initial_access_token_minted", "operator", "done").await;
        assert_eq!(minted.detail["initial_access_token"], record.id.as_str());
        assert!(!minted.detail.to_string().contains(&token), "never the token itself");
        let body = json!({"redirect_uris": ["https://rp.example/cb"]});
        let registered = h.http().post(h.url("/register")).bearer_auth(&token).json(&body).send().await.expect("register");
        assert_eq!(registered.status(), 201);
        let used = security_event(&h, "initial_access_token_used", "registrant", "done").await;
        assert_eq!(used.detail["initial_access_token"], record.id.as_str());
        security_event(&h, "client_registered", "registrant", "done").await;
        // Used up: refused, and nothing more is recorded as used.
        let again = h.http().post(h.url("/register")).bearer_auth(&token).json(&body).send().await.expect("register");
        assert_eq!(again.status(), 401);
        assert_eq!(events(&h, "initial_access_token_used").await[0].occurrences, 1);
        let (second, _) = op.mint_initial_access_token(None, None).await.expect("mint");
        op.revoke_initial_access_token(&second.id).await.expect("revoke");
        assert_eq!(security_event(&h, "initial_access_token_revoked", "operator", "done").await.detail["initial_access_token"], second.id.as_str());
    }

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
        // More old events than one delete statement removes (2,000), each distinct: every
        // minted initial access token records its own.
        let mut writes = Vec::new();
        for _ in 0..2_500 {
            let operator = h.ls.operator();
            writes.push(tokio::spawn(async move { operator.mint_initial_access_token(Some(1), None).await }));
        }
        for write in writes {
            write.await.expect("task").expect("mint");
        }
        let listed = h.ls.operator().audit_events(5_000).await.expect("audit events");
        assert_eq!(listed.len(), 1000, "listing is capped at 1,000");

        // A day and a minute later, one more event; then the old ones pass the retention.
        h.clock.advance(86_400 + 60);
        let client = h.confidential_client(json!({"grant_types": ["client_credentials"]})).await;
        wrong_secrets(&h, &client.id, 1).await;
        let removed = h.ls.prune_expired().await.expect("prune");
        assert!(removed >= 2_500, "removed {removed}");
        assert!(events(&h, "initial_access_token_minted").await.is_empty());
        assert_eq!(events(&h, "client_authentication_failed").await.len(), 1, "the recent event stays");
    }
}
