//! Client-initiated backchannel authentication (OpenID Connect CIBA Core 1.0) end to end: a
//! client asks at `/bc-authorize`, the test host finds the user and is told to reach them, the
//! user's answer comes through `Lockspire::approve_backchannel` / `deny_backchannel`, and the
//! client learns it in each delivery mode — polling, a ping to its notification endpoint (a
//! small axum server in the test), or the tokens pushed there — with notifications retried after
//! 5xx and given up after 4xx through the outbox.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::digest;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Backend, Harness, Reply, TEST_USER_CODE, TestBackchannel, TestClient};
use lockspire::{BackchannelApproval, Clock, OutboxStatus, Subject};
use reqwest::StatusCode;
use serde_json::{Value, json};

const CIBA_GRANT: &str = "urn:openid:params:grant-type:ciba";

on_both!(
    a_poll_mode_request_approved_on_the_users_device_issues_tokens_and_an_id_token_once,
    a_ping_mode_client_is_called_with_its_bearer_token_when_the_user_decides_then_asks_once,
    a_push_mode_client_is_sent_its_tokens_with_at_hash_and_the_auth_req_id_claim_and_may_not_poll,
    a_denied_request_is_access_denied_when_polled_and_is_pinged_or_pushed_as_an_error,
    notifications_are_retried_after_5xx_and_given_up_after_4xx_as_dead_letters_an_operator_retries,
    bad_backchannel_requests_get_the_ciba_error,
    registration_checks_the_backchannel_metadata,
    a_pending_request_can_be_decided_once_by_its_own_user_only,
    a_request_is_answered_in_the_mode_it_was_made_whatever_the_client_registers_since,
    a_request_whose_user_cannot_be_reached_is_dropped,
    user_codes_are_checked_a_few_times_per_user_only,
    a_client_asking_for_time_is_retried_after_its_retry_after,
    a_signed_authentication_request_is_the_request_once_it_verifies_with_the_clients_key,
);

/// A provider with the test host's backchannel authenticator, in development mode (the test's
/// notification endpoints are on loopback http).
async fn start(backend: Backend) -> (Harness, TestBackchannel) {
    let host = TestBackchannel::new(common::default_users());
    let authenticator = host.clone();
    let h = Harness::start_with(backend, move |b| {
        b.backchannel_authenticator(authenticator).dev_mode(true)
    })
    .await;
    (h, host)
}

/// A client's notification endpoint: records every call (its `Authorization` header and JSON
/// body) and answers with the statuses queued, then 204.
#[derive(Clone, Default)]
struct Endpoint {
    calls: Arc<Mutex<Vec<(String, Value)>>>,
    answers: Arc<Mutex<VecDeque<u16>>>,
}

impl Endpoint {
    async fn start() -> (String, Endpoint) {
        let endpoint = Endpoint::default();
        let app = axum::Router::new()
            .route("/cb", post(receive))
            .with_state(endpoint.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/cb", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, endpoint)
    }

    fn answer_with(&self, statuses: &[u16]) {
        if let Ok(mut a) = self.answers.lock() {
            a.extend(statuses);
        }
    }

    fn calls(&self) -> Vec<(String, Value)> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Waits (up to 10 s) until `n` calls arrived.
    async fn wait_for(&self, n: usize) -> Vec<(String, Value)> {
        for _ in 0..200 {
            let calls = self.calls();
            if calls.len() >= n {
                return calls;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} calls, got {:?}", self.calls());
    }
}

async fn receive(
    State(e): State<Endpoint>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Ok(mut calls) = e.calls.lock() {
        calls.push((auth, json));
    }
    let status = e
        .answers
        .lock()
        .ok()
        .and_then(|mut a| a.pop_front())
        .unwrap_or(204);
    StatusCode::from_u16(status).unwrap_or(StatusCode::NO_CONTENT)
}

/// A confidential CIBA client of `mode`, notified at `endpoint`.
async fn ciba_client(h: &Harness, mode: &str, endpoint: Option<&str>, extra: Value) -> TestClient {
    let mut meta = json!({
        "grant_types": [CIBA_GRANT, "refresh_token"],
        "redirect_uris": [],
        "backchannel_token_delivery_mode": mode,
    });
    if let Some(url) = endpoint {
        meta["backchannel_client_notification_endpoint"] = json!(url);
    }
    if let (Value::Object(m), Value::Object(e)) = (&mut meta, extra) {
        m.extend(e);
    }
    h.confidential_client(meta).await
}

async fn bc_authorize(h: &Harness, client: &TestClient, params: &[(&str, &str)]) -> Reply {
    h.post_as(client, "/bc-authorize", params).await
}

/// A request for alice that must be accepted; returns the `auth_req_id`.
async fn ask(h: &Harness, client: &TestClient, extra: &[(&str, &str)]) -> String {
    let mut params = vec![
        ("scope", "openid email offline_access"),
        ("login_hint", "alice"),
        ("binding_message", "W4SCT"),
    ];
    params.extend_from_slice(extra);
    let reply = bc_authorize(h, client, &params).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.header("cache-control"), "no-store");
    reply.body["auth_req_id"]
        .as_str()
        .expect("auth_req_id")
        .to_owned()
}

async fn poll(h: &Harness, client: &TestClient, auth_req_id: &str) -> Reply {
    h.post_as(
        client,
        "/token",
        &[("grant_type", CIBA_GRANT), ("auth_req_id", auth_req_id)],
    )
    .await
}

fn alice() -> Subject {
    Subject::new("alice").expect("subject")
}

fn approval(h: &Harness) -> BackchannelApproval {
    BackchannelApproval {
        subject: alice(),
        auth_time: h.clock.now(),
        acr: Some("urn:example:push-approval".into()),
        amr: vec!["hwk".into()],
    }
}

/// The id of the newest request the host was told about.
fn last_request(host: &TestBackchannel) -> lockspire::BackchannelRequest {
    host.requests()
        .pop()
        .expect("the host was told about a request")
}

fn half_hash(value: &str) -> String {
    let d = digest::digest(&digest::SHA256, value.as_bytes());
    URL_SAFE_NO_PAD.encode(&d.as_ref()[..16])
}

async fn a_poll_mode_request_approved_on_the_users_device_issues_tokens_and_an_id_token_once(
    backend: Backend,
) {
    let (h, host) = start(backend).await;
    let discovery = h.discovery().await;
    assert_eq!(
        discovery["backchannel_authentication_endpoint"],
        h.url("/bc-authorize")
    );
    assert_eq!(
        discovery["backchannel_token_delivery_modes_supported"],
        json!(["poll", "ping", "push"])
    );
    assert_eq!(discovery["backchannel_user_code_parameter_supported"], true);
    assert!(
        discovery["grant_types_supported"]
            .as_array()
            .expect("grants")
            .contains(&json!(CIBA_GRANT))
    );
    let client = ciba_client(&h, "poll", None, json!({})).await;
    let reply = bc_authorize(
        &h,
        &client,
        &[
            ("scope", "openid email offline_access"),
            ("login_hint", "alice"),
            ("binding_message", "W4SCT"),
            ("acr_values", "urn:example:push-approval"),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["expires_in"], 600);
    assert_eq!(reply.body["interval"], 5);
    let auth_req_id = reply.body["auth_req_id"].as_str().expect("auth_req_id");

    // The host was asked to reach alice, with what her device must show.
    let request = last_request(&host);
    assert_eq!(request.subject.as_str(), "alice");
    assert_eq!(request.binding_message.as_deref(), Some("W4SCT"));
    assert_eq!(request.acr_values, vec!["urn:example:push-approval"]);
    assert_eq!(request.client_id, client.id);
    assert_ne!(
        request.id, auth_req_id,
        "the host never holds the client's auth_req_id"
    );
    let listed = h.ls.backchannel_requests(&alice()).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, request.id);

    let pending = poll(&h, &client, auth_req_id).await;
    assert_eq!(
        (pending.status, pending.error()),
        (StatusCode::BAD_REQUEST, "authorization_pending")
    );
    assert!(
        h.ls.approve_backchannel(&request.id, &approval(&h))
            .await
            .expect("approve")
    );
    assert!(
        h.ls.backchannel_requests(&alice())
            .await
            .expect("list")
            .is_empty()
    );
    h.clock.advance(5);
    let tokens = poll(&h, &client, auth_req_id).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.text);
    assert!(tokens.body["refresh_token"].is_string());
    let id_token = tokens.body["id_token"]
        .as_str()
        .expect("openid: an ID token");
    let claims = common::verify_with_jwks(&h, id_token, &client.id).await;
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["acr"], "urn:example:push-approval");
    assert_eq!(claims["amr"], json!(["hwk"]));
    assert!(claims.get("nonce").is_none());
    let access = tokens.body["access_token"].as_str().expect("access token");
    assert_eq!(h.userinfo(access).await.body["email"], "alice@example.com");
    let replay = poll(&h, &client, auth_req_id).await;
    assert_eq!(replay.error(), "invalid_grant", "{}", replay.text);
    assert_eq!(
        h.userinfo(access).await.status,
        StatusCode::UNAUTHORIZED,
        "the replay revoked the grant"
    );
}

async fn a_ping_mode_client_is_called_with_its_bearer_token_when_the_user_decides_then_asks_once(
    backend: Backend,
) {
    let (h, host) = start(backend).await;
    let (url, endpoint) = Endpoint::start().await;
    let client = ciba_client(&h, "ping", Some(&url), json!({})).await;
    let auth_req_id = ask(
        &h,
        &client,
        &[(
            "client_notification_token",
            "8d67dc78-7faa-4d41-aabd-67707b374255",
        )],
    )
    .await;
    assert!(endpoint.calls().is_empty());
    let request = last_request(&host);
    assert!(
        h.ls.approve_backchannel(&request.id, &approval(&h))
            .await
            .expect("approve")
    );
    let calls = endpoint.wait_for(1).await;
    assert_eq!(
        calls[0].0, "Bearer 8d67dc78-7faa-4d41-aabd-67707b374255",
        "CIBA Core §10.2"
    );
    assert_eq!(calls[0].1, json!({ "auth_req_id": auth_req_id }));
    let tokens = poll(&h, &client, &auth_req_id).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.text);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(endpoint.calls().len(), 1, "one ping");
    let delivered =
        h.ls.operator()
            .outbox(OutboxStatus::Delivered, 10)
            .await
            .expect("outbox");
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].attempts, 1);
}

async fn a_push_mode_client_is_sent_its_tokens_with_at_hash_and_the_auth_req_id_claim_and_may_not_poll(
    backend: Backend,
) {
    let (h, host) = start(backend).await;
    let (url, endpoint) = Endpoint::start().await;
    let client = ciba_client(&h, "push", Some(&url), json!({})).await;
    let auth_req_id = ask(
        &h,
        &client,
        &[("client_notification_token", "push-token-1")],
    )
    .await;
    let early = poll(&h, &client, &auth_req_id).await;
    assert_eq!(
        early.error(),
        "unauthorized_client",
        "CIBA Core §10.1: a push client does not poll"
    );
    let request = last_request(&host);
    assert!(
        h.ls.approve_backchannel(&request.id, &approval(&h))
            .await
            .expect("approve")
    );
    let calls = endpoint.wait_for(1).await;
    let (auth, body) = &calls[0];
    assert_eq!(auth, "Bearer push-token-1");
    assert_eq!(body["auth_req_id"], auth_req_id.as_str());
    let access = body["access_token"].as_str().expect("pushed access token");
    let refresh = body["refresh_token"]
        .as_str()
        .expect("pushed refresh token");
    let id_token = body["id_token"].as_str().expect("pushed ID token");
    let claims = common::verify_with_jwks(&h, id_token, &client.id).await;
    assert_eq!(claims["at_hash"], half_hash(access), "CIBA Core §10.3.1");
    assert_eq!(
        claims["urn:openid:params:jwt:claim:auth_req_id"],
        auth_req_id.as_str()
    );
    assert_eq!(
        claims["urn:openid:params:jwt:claim:rt_hash"],
        half_hash(refresh)
    );
    assert_eq!(h.userinfo(access).await.status, StatusCode::OK);
    // A push client never polls, before or after; its request was decided once.
    assert_eq!(
        poll(&h, &client, &auth_req_id).await.error(),
        "unauthorized_client"
    );
    assert!(
        !h.ls
            .approve_backchannel(&request.id, &approval(&h))
            .await
            .expect("approve"),
        "decided once"
    );
    let refreshed = h
        .post_as(
            &client,
            "/token",
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text);
}

async fn a_denied_request_is_access_denied_when_polled_and_is_pinged_or_pushed_as_an_error(
    backend: Backend,
) {
    let (h, host) = start(backend).await;
    let poll_client = ciba_client(&h, "poll", None, json!({})).await;
    let auth_req_id = ask(&h, &poll_client, &[]).await;
    assert!(
        h.ls.deny_backchannel(&last_request(&host).id, &alice())
            .await
            .expect("deny")
    );
    let denied = poll(&h, &poll_client, &auth_req_id).await;
    assert_eq!(
        (denied.status, denied.error()),
        (StatusCode::BAD_REQUEST, "access_denied")
    );

    let (url, endpoint) = Endpoint::start().await;
    let ping_client = ciba_client(&h, "ping", Some(&url), json!({})).await;
    let pinged = ask(
        &h,
        &ping_client,
        &[("client_notification_token", "ping-token")],
    )
    .await;
    assert!(
        h.ls.deny_backchannel(&last_request(&host).id, &alice())
            .await
            .expect("deny")
    );
    let calls = endpoint.wait_for(1).await;
    assert_eq!(calls[0].1, json!({ "auth_req_id": pinged }));
    assert_eq!(
        poll(&h, &ping_client, &pinged).await.error(),
        "access_denied"
    );

    let push_client = ciba_client(&h, "push", Some(&url), json!({})).await;
    let pushed = ask(
        &h,
        &push_client,
        &[("client_notification_token", "push-token")],
    )
    .await;
    assert!(
        h.ls.deny_backchannel(&last_request(&host).id, &alice())
            .await
            .expect("deny")
    );
    let calls = endpoint.wait_for(2).await;
    assert_eq!(calls[1].0, "Bearer push-token");
    assert_eq!(calls[1].1["error"], "access_denied", "CIBA Core §12");
    assert_eq!(calls[1].1["auth_req_id"], pushed.as_str());
    assert!(calls[1].1.get("access_token").is_none());
}

async fn notifications_are_retried_after_5xx_and_given_up_after_4xx_as_dead_letters_an_operator_retries(
    backend: Backend,
) {
    let (h, host) = start(backend).await;
    let (url, endpoint) = Endpoint::start().await;
    let client = ciba_client(&h, "ping", Some(&url), json!({})).await;
    // Two failures of the client's server, then it answers.
    endpoint.answer_with(&[503, 500]);
    ask(&h, &client, &[("client_notification_token", "t1")]).await;
    assert!(
        h.ls.approve_backchannel(&last_request(&host).id, &approval(&h))
            .await
            .expect("approve")
    );
    endpoint.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(endpoint.calls().len(), 1, "not again before its backoff");
    let pending =
        h.ls.operator()
            .outbox(OutboxStatus::Pending, 10)
            .await
            .expect("outbox");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].last_error.as_deref(), Some("HTTP 503"));
    h.clock.advance(3);
    endpoint.wait_for(2).await;
    h.clock.advance(6);
    endpoint.wait_for(3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let delivered =
        h.ls.operator()
            .outbox(OutboxStatus::Delivered, 10)
            .await
            .expect("outbox");
    assert_eq!(delivered.len(), 1, "delivered on the third attempt");
    assert_eq!(delivered[0].attempts, 3);

    // A 4xx is not retried: the call is a dead letter, until an operator sends it again.
    endpoint.answer_with(&[400]);
    ask(&h, &client, &[("client_notification_token", "t2")]).await;
    assert!(
        h.ls.approve_backchannel(&last_request(&host).id, &approval(&h))
            .await
            .expect("approve")
    );
    endpoint.wait_for(4).await;
    h.clock.advance(700);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(endpoint.calls().len(), 4, "never retried after 400");
    let dead =
        h.ls.operator()
            .outbox(OutboxStatus::Dead, 10)
            .await
            .expect("outbox");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("HTTP 400"));
    assert_eq!(dead[0].client_id, client.id);
    h.ls.operator()
        .retry_outbox(&dead[0].id)
        .await
        .expect("retry");
    let calls = endpoint.wait_for(5).await;
    assert_eq!(calls[4].0, "Bearer t2");
    assert!(
        h.ls.operator().retry_outbox(&dead[0].id).await.is_err(),
        "no longer a dead letter"
    );
}

async fn bad_backchannel_requests_get_the_ciba_error(backend: Backend) {
    let (h, _host) = start(backend).await;
    let client = ciba_client(&h, "poll", None, json!({})).await;
    let error = |params: &'static [(&'static str, &'static str)]| {
        let h = &h;
        let client = &client;
        async move { bc_authorize(h, client, params).await }
    };
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("scope", "openid")], "invalid_request"),
        (&[("login_hint", "alice")], "invalid_request"),
        (
            &[
                ("scope", "openid"),
                ("login_hint", "alice"),
                ("binding_message", "PAY\u{202e}01"),
            ],
            "invalid_binding_message",
        ),
        (
            &[
                ("scope", "openid"),
                ("login_hint", "alice"),
                ("binding_message", "PAY\u{3164}01"),
            ],
            "invalid_binding_message",
        ),
        (
            &[
                ("scope", "openid"),
                ("login_hint", "alice"),
                ("login_hint_token", "valid:alice"),
            ],
            "invalid_request",
        ),
        (
            &[("scope", "openid"), ("login_hint", "nobody")],
            "unknown_user_id",
        ),
        (
            &[("scope", "openid"), ("login_hint_token", "expired")],
            "expired_login_hint_token",
        ),
        (
            &[("scope", "email"), ("login_hint", "alice")],
            "invalid_scope",
        ),
        (
            &[
                ("scope", "openid"),
                ("login_hint", "alice"),
                (
                    "binding_message",
                    "a message far too long to be shown on two devices at once, really",
                ),
            ],
            "invalid_binding_message",
        ),
        (
            &[
                ("scope", "openid"),
                ("login_hint", "alice"),
                ("binding_message", "line\nbreak"),
            ],
            "invalid_binding_message",
        ),
        (
            &[
                ("scope", "openid"),
                ("login_hint", "alice"),
                ("requested_expiry", "-5"),
            ],
            "invalid_request",
        ),
        (
            &[
                ("scope", "openid"),
                ("login_hint", "alice"),
                ("user_code", TEST_USER_CODE),
            ],
            "invalid_request",
        ),
        (
            &[
                ("scope", "openid"),
                ("login_hint", "alice"),
                ("request", "eyJ.e30.x"),
            ],
            "invalid_request",
        ),
    ];
    for (params, expected) in cases {
        let reply = error(params).await;
        assert_eq!(
            (reply.status, reply.error()),
            (StatusCode::BAD_REQUEST, *expected),
            "{params:?}: {}",
            reply.text
        );
    }
    // The hint token names alice; a shorter expiry is honoured.
    let reply = bc_authorize(
        &h,
        &client,
        &[
            ("scope", "openid"),
            ("login_hint_token", "valid:alice"),
            ("requested_expiry", "120"),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["expires_in"], 120);

    // id_token_hint: an ID token this server issued to the client, expired or not.
    let code_client = h.confidential_client(json!({"grant_types": ["authorization_code", CIBA_GRANT], "backchannel_token_delivery_mode": "poll"})).await;
    let issued = h.tokens(&code_client, "alice", "openid").await;
    let hint = issued["id_token"].as_str().expect("id token").to_owned();
    h.clock.advance(7200);
    let reply = bc_authorize(
        &h,
        &code_client,
        &[("scope", "openid"), ("id_token_hint", &hint)],
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "an expired hint still names its user: {}",
        reply.text
    );
    let reply = bc_authorize(
        &h,
        &client,
        &[("scope", "openid"), ("id_token_hint", &hint)],
    )
    .await;
    assert_eq!(
        reply.error(),
        "invalid_request",
        "a hint issued to another client: {}",
        reply.text
    );

    // user_code, for a client registered to send it.
    let coded = ciba_client(
        &h,
        "poll",
        None,
        json!({"backchannel_user_code_parameter": true}),
    )
    .await;
    let missing = bc_authorize(&h, &coded, &[("scope", "openid"), ("login_hint", "alice")]).await;
    assert_eq!(missing.error(), "missing_user_code");
    let wrong = bc_authorize(
        &h,
        &coded,
        &[
            ("scope", "openid"),
            ("login_hint", "alice"),
            ("user_code", "0000"),
        ],
    )
    .await;
    assert_eq!(wrong.error(), "invalid_user_code");
    let right = bc_authorize(
        &h,
        &coded,
        &[
            ("scope", "openid"),
            ("login_hint", "alice"),
            ("user_code", TEST_USER_CODE),
        ],
    )
    .await;
    assert_eq!(right.status, StatusCode::OK, "{}", right.text);

    // Ping without its notification token; a client without the grant; no authentication.
    let (url, _endpoint) = Endpoint::start().await;
    let ping = ciba_client(&h, "ping", Some(&url), json!({})).await;
    let reply = bc_authorize(&h, &ping, &[("scope", "openid"), ("login_hint", "alice")]).await;
    assert_eq!(reply.error(), "invalid_request");
    let other = h.confidential_client(json!({})).await;
    let reply = bc_authorize(&h, &other, &[("scope", "openid"), ("login_hint", "alice")]).await;
    assert_eq!(reply.error(), "unauthorized_client");
    let anonymous = h
        .http()
        .post(h.url("/bc-authorize"))
        .form(&[
            ("client_id", client.id.as_str()),
            ("scope", "openid"),
            ("login_hint", "alice"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let bad_poll = h
        .post_as(&client, "/token", &[("grant_type", CIBA_GRANT)])
        .await;
    assert_eq!(
        bad_poll.error(),
        "invalid_request",
        "auth_req_id is required"
    );
    assert_eq!(poll(&h, &client, "unknown").await.error(), "invalid_grant");
}

async fn registration_checks_the_backchannel_metadata(backend: Backend) {
    let (h, _host) = start(backend).await;
    let register = |meta: Value| {
        let h = &h;
        async move {
            Reply::from(
                h.http()
                    .post(h.url("/register"))
                    .json(&meta)
                    .send()
                    .await
                    .expect("register"),
            )
            .await
        }
    };
    let base =
        json!({"grant_types": [CIBA_GRANT], "token_endpoint_auth_method": "client_secret_basic"});
    let with = |extra: Value| {
        let mut m = base.clone();
        if let (Value::Object(m), Value::Object(e)) = (&mut m, extra) {
            m.extend(e);
        }
        m
    };
    for (meta, why) in [
        (with(json!({})), "no delivery mode"),
        (
            with(json!({"backchannel_token_delivery_mode": "carrier-pigeon"})),
            "unknown mode",
        ),
        (
            with(json!({"backchannel_token_delivery_mode": "ping"})),
            "ping without an endpoint",
        ),
        (
            with(
                json!({"backchannel_token_delivery_mode": "push", "backchannel_client_notification_endpoint": "http://client.example/cb"}),
            ),
            "http endpoint",
        ),
        (
            with(
                json!({"backchannel_token_delivery_mode": "ping", "backchannel_client_notification_endpoint": "https://10.0.0.7/cb"}),
            ),
            "an address inside the network",
        ),
        (
            with(
                json!({"backchannel_token_delivery_mode": "poll", "backchannel_client_notification_endpoint": "https://client.example/cb"}),
            ),
            "poll with an endpoint",
        ),
        (
            with(
                json!({"backchannel_token_delivery_mode": "push", "backchannel_client_notification_endpoint": "https://client.example/cb", "dpop_bound_access_tokens": true}),
            ),
            "push of bound tokens",
        ),
        (
            with(
                json!({"backchannel_token_delivery_mode": "poll", "token_endpoint_auth_method": "none"}),
            ),
            "a public client",
        ),
        (
            with(
                json!({"backchannel_token_delivery_mode": "poll", "backchannel_authentication_request_signing_alg": "ES256"}),
            ),
            "signed requests without keys to verify them",
        ),
        (
            with(
                json!({"backchannel_token_delivery_mode": "poll", "backchannel_authentication_request_signing_alg": "HS256", "jwks": {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}}),
            ),
            "a shared-secret alg",
        ),
        (
            json!({"redirect_uris": ["https://rp.example/cb"], "backchannel_token_delivery_mode": "poll"}),
            "mode without the grant",
        ),
    ] {
        let reply = register(meta).await;
        assert_eq!(
            (reply.status, reply.error()),
            (StatusCode::BAD_REQUEST, "invalid_client_metadata"),
            "{why}: {}",
            reply.text
        );
    }
    let ok = register(with(json!({"backchannel_token_delivery_mode": "push", "backchannel_client_notification_endpoint": "https://client.example/cb", "backchannel_user_code_parameter": true}))).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
    assert_eq!(ok.body["backchannel_token_delivery_mode"], "push");
    assert_eq!(ok.body["backchannel_user_code_parameter"], true);

    // Without a backchannel authenticator, none of it is offered.
    let plain = Harness::start(backend).await;
    assert!(
        plain
            .discovery()
            .await
            .get("backchannel_authentication_endpoint")
            .is_none()
    );
    let status = plain
        .http()
        .post(plain.url("/bc-authorize"))
        .form(&[("scope", "openid")])
        .send()
        .await
        .expect("post")
        .status();
    assert_eq!(status, StatusCode::NOT_FOUND);
    let reply = Reply::from(
        plain
            .http()
            .post(plain.url("/register"))
            .json(&with(json!({"backchannel_token_delivery_mode": "poll"})))
            .send()
            .await
            .expect("register"),
    )
    .await;
    assert_eq!(reply.error(), "invalid_client_metadata");
}

async fn a_pending_request_can_be_decided_once_by_its_own_user_only(backend: Backend) {
    let (h, host) = start(backend).await;
    let client = ciba_client(&h, "poll", None, json!({})).await;
    let auth_req_id = ask(&h, &client, &[]).await;
    let id = last_request(&host).id;
    let bob = BackchannelApproval {
        subject: Subject::new("bob").expect("subject"),
        ..approval(&h)
    };
    assert!(
        !h.ls.approve_backchannel(&id, &bob).await.expect("approve"),
        "bob cannot approve alice's request"
    );
    assert!(
        !h.ls
            .deny_backchannel(&id, &bob.subject)
            .await
            .expect("deny")
    );
    assert!(
        !h.ls
            .approve_backchannel(&auth_req_id, &approval(&h))
            .await
            .expect("approve"),
        "the client's id is not the request's"
    );
    assert!(
        h.ls.approve_backchannel(&id, &approval(&h))
            .await
            .expect("approve")
    );
    assert!(
        !h.ls
            .approve_backchannel(&id, &approval(&h))
            .await
            .expect("approve"),
        "decided once"
    );
    assert!(!h.ls.deny_backchannel(&id, &alice()).await.expect("deny"));
    // An expired request can no longer be approved, and polls say so.
    let late = ask(&h, &client, &[]).await;
    let late_id = last_request(&host).id;
    h.clock.advance(601);
    assert!(
        !h.ls
            .approve_backchannel(&late_id, &approval(&h))
            .await
            .expect("approve")
    );
    assert_eq!(poll(&h, &client, &late).await.error(), "expired_token");
}

async fn a_request_is_answered_in_the_mode_it_was_made_whatever_the_client_registers_since(
    backend: Backend,
) {
    let (h, host) = start(backend).await;
    let (url, endpoint) = Endpoint::start().await;
    let client = ciba_client(&h, "poll", None, json!({})).await;
    let auth_req_id = ask(&h, &client, &[]).await;
    // The client turns itself into a ping client before the user decides.
    let (mut metadata, _) =
        h.ls.client(&client.id)
            .await
            .expect("client")
            .expect("registered");
    metadata.backchannel_token_delivery_mode = Some(lockspire::DeliveryMode::Ping);
    metadata.backchannel_client_notification_endpoint = Some(url);
    h.ls.update_client(&client.id, serde_json::to_value(&metadata).expect("json"))
        .await
        .expect("update");
    assert!(
        h.ls.approve_backchannel(&last_request(&host).id, &approval(&h))
            .await
            .expect("approve")
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(endpoint.calls().is_empty(), "a poll request is not pinged");
    let tokens = poll(&h, &client, &auth_req_id).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.text);
}

async fn a_request_whose_user_cannot_be_reached_is_dropped(backend: Backend) {
    let (h, host) = start(backend).await;
    let client = ciba_client(&h, "poll", None, json!({})).await;
    host.unreachable
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let reply = bc_authorize(&h, &client, &[("scope", "openid"), ("login_hint", "alice")]).await;
    assert_eq!(
        (reply.status, reply.error()),
        (StatusCode::INTERNAL_SERVER_ERROR, "server_error")
    );
    assert!(
        h.ls.backchannel_requests(&alice())
            .await
            .expect("list")
            .is_empty(),
        "nothing for the user to approve"
    );
}

async fn user_codes_are_checked_a_few_times_per_user_only(backend: Backend) {
    let (h, _host) = start(backend).await;
    let client = ciba_client(
        &h,
        "poll",
        None,
        json!({"backchannel_user_code_parameter": true}),
    )
    .await;
    for _ in 0..5 {
        let wrong = bc_authorize(
            &h,
            &client,
            &[
                ("scope", "openid"),
                ("login_hint", "alice"),
                ("user_code", "0000"),
            ],
        )
        .await;
        assert_eq!(wrong.error(), "invalid_user_code");
    }
    let right = bc_authorize(
        &h,
        &client,
        &[
            ("scope", "openid"),
            ("login_hint", "alice"),
            ("user_code", TEST_USER_CODE),
        ],
    )
    .await;
    assert_eq!(
        right.error(),
        "invalid_user_code",
        "the sixth check in the window"
    );
    // Right codes are not counted: bob's client may send his as often as it needs.
    for _ in 0..7 {
        let fine = bc_authorize(
            &h,
            &client,
            &[
                ("scope", "openid"),
                ("login_hint", "bob"),
                ("user_code", TEST_USER_CODE),
            ],
        )
        .await;
        assert_eq!(fine.status, StatusCode::OK, "{}", fine.text);
    }
    assert!(
        right.body["error_description"]
            .as_str()
            .unwrap_or("")
            .contains("too many")
    );
    let bob = bc_authorize(
        &h,
        &client,
        &[
            ("scope", "openid"),
            ("login_hint", "bob"),
            ("user_code", TEST_USER_CODE),
        ],
    )
    .await;
    assert_eq!(
        bob.status,
        StatusCode::OK,
        "another user's count: {}",
        bob.text
    );
    h.clock.advance(15 * 60);
    let later = bc_authorize(
        &h,
        &client,
        &[
            ("scope", "openid"),
            ("login_hint", "alice"),
            ("user_code", TEST_USER_CODE),
        ],
    )
    .await;
    assert_eq!(later.status, StatusCode::OK, "{}", later.text);
}

async fn a_client_asking_for_time_is_retried_after_its_retry_after(backend: Backend) {
    let (h, host) = start(backend).await;
    let (url, endpoint) = Endpoint::start().await;
    let client = ciba_client(&h, "ping", Some(&url), json!({})).await;
    endpoint.answer_with(&[429]);
    ask(&h, &client, &[("client_notification_token", "t")]).await;
    assert!(
        h.ls.approve_backchannel(&last_request(&host).id, &approval(&h))
            .await
            .expect("approve")
    );
    endpoint.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pending =
        h.ls.operator()
            .outbox(OutboxStatus::Pending, 10)
            .await
            .expect("outbox");
    assert_eq!(pending.len(), 1, "429 is retried, not given up");
    assert_eq!(pending[0].last_error.as_deref(), Some("HTTP 429"));
    h.clock.advance(3);
    endpoint.wait_for(2).await;
}

async fn a_signed_authentication_request_is_the_request_once_it_verifies_with_the_clients_key(
    backend: Backend,
) {
    let (h, host) = start(backend).await;
    let discovery = h.discovery().await;
    assert!(
        discovery["backchannel_authentication_request_signing_alg_values_supported"]
            .as_array()
            .expect("algs")
            .contains(&json!("ES256"))
    );
    let key = common::ClientKey::es256("ciba-signing");
    let client = ciba_client(
        &h,
        "poll",
        None,
        json!({
            "jwks": common::jwks(&[&key]),
            "backchannel_authentication_request_signing_alg": "ES256",
        }),
    )
    .await;
    let now = h.clock.now();
    let claims = |jti: &str| {
        json!({
            "iss": client.id, "aud": h.base, "iat": now, "nbf": now, "exp": now + 300, "jti": jti,
            "scope": "openid email", "login_hint": "alice", "binding_message": "SIGNED-1",
            "requested_expiry": 120,
        })
    };
    let jwt = key.sign(&claims("first"));
    // Parameters outside the signed request are not used (CIBA Core §7.1.1).
    let reply = bc_authorize(
        &h,
        &client,
        &[("request", jwt.as_str()), ("binding_message", "OUTSIDE")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["expires_in"], 120);
    assert_eq!(
        last_request(&host).binding_message.as_deref(),
        Some("SIGNED-1")
    );
    let replayed = bc_authorize(&h, &client, &[("request", jwt.as_str())]).await;
    assert_eq!(
        replayed.error(),
        "invalid_request",
        "its jti was used: {}",
        replayed.text
    );
    for claim in ["nbf", "iat", "jti"] {
        let mut without = claims(&format!("without-{claim}"));
        without.as_object_mut().map(|c| c.remove(claim));
        let refused = bc_authorize(&h, &client, &[("request", &key.sign(&without))]).await;
        assert_eq!(
            refused.error(),
            "invalid_request",
            "{claim} is required: {}",
            refused.text
        );
    }
    let unsigned = bc_authorize(&h, &client, &[("scope", "openid"), ("login_hint", "alice")]).await;
    assert_eq!(
        unsigned.error(),
        "invalid_request",
        "this client signs every request"
    );
    let stranger = common::ClientKey::es256("ciba-signing");
    let forged = bc_authorize(
        &h,
        &client,
        &[("request", &stranger.sign(&claims("third")))],
    )
    .await;
    assert_eq!(
        forged.error(),
        "invalid_request",
        "another key: {}",
        forged.text
    );
    // A client that registered no signing alg does not send signed requests.
    let plain = ciba_client(&h, "poll", None, json!({"jwks": common::jwks(&[&key])})).await;
    let mut theirs = claims("fourth");
    theirs["iss"] = json!(plain.id);
    let refused = bc_authorize(&h, &plain, &[("request", &key.sign(&theirs))]).await;
    assert_eq!(refused.error(), "invalid_request", "{}", refused.text);
}
