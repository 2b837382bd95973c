//! Two real server processes (the demo binary, twice) on one PostgreSQL database, the way hosts
//! scale out: single-use transitions hold across processes, an authorization started on one
//! process completes on the other, and a rotated signing key reaches every process.

mod processes;
mod steps;

use std::time::Duration;

use lockspire::SecretKey;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;

use processes::*;
use steps::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_postgres_share_every_single_use_transition() {
    // Bound by name: a field left to `..` would be dropped here, and with it the database.
    let Pair {
        a,
        b,
        db: _db,
        _dir,
        ..
    } = Pair::start(&[]).await;
    let (id, client_secret) = register(&a).await;

    // An authorization started on A completes (consent, token) on B.
    let (code, verifier) = authorize(&a, &a, &b, &id).await;
    let (status, first) = redeem(&b, &id, &client_secret, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{first}");

    // Concurrent redemptions of one code, spread over both processes: exactly one succeeds, and
    // the replays revoke what it received. (Signed in on A, authorized on B: the session and the
    // remembered consent are shared through the database.)
    let (code, verifier) = authorize(&a, &b, &a, &id).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "https://rp.example/cb"),
        ("code_verifier", verifier.as_str()),
    ];
    let winners = race(&a, &b, &id, &client_secret, &form).await;
    assert_eq!(
        winners.len(),
        1,
        "exactly one redemption succeeds across processes"
    );
    let introspect = Client::new()
        .post(format!("{}/introspect", a.base))
        .basic_auth(&id, Some(&client_secret))
        .form(&[("token", winners[0]["access_token"].as_str().expect("at"))])
        .send()
        .await
        .expect("introspect")
        .json::<Value>()
        .await
        .expect("json");
    assert_eq!(
        introspect["active"], false,
        "replay revoked the winner's tokens"
    );

    // Refresh rotation on A, reuse of the rotated token on B: the family is revoked.
    let rt0 = first["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    let (status, rotated) = refresh(&a, &id, &client_secret, &rt0).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let (status, reuse) = refresh(&b, &id, &client_secret, &rt0).await;
    assert_eq!(
        (status, reuse["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let rt1 = rotated["refresh_token"].as_str().expect("rt1");
    let (status, _) = refresh(&a, &id, &client_secret, rt1).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the newest token of the family is revoked too"
    );

    // Concurrent rotations of one refresh token over both processes: exactly one rotates, the
    // others are reuse, and reuse revokes the whole family, the winner's new token included.
    let (code, verifier) = authorize(&a, &b, &a, &id).await;
    let (status, fresh) = redeem(&a, &id, &client_secret, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    let rt = fresh["refresh_token"].as_str().expect("refresh token");
    let form = [("grant_type", "refresh_token"), ("refresh_token", rt)];
    let winners = race(&a, &b, &id, &client_secret, &form).await;
    assert_eq!(
        winners.len(),
        1,
        "exactly one rotation succeeds across processes"
    );
    let newest = winners[0]["refresh_token"].as_str().expect("rotated");
    let (status, body) = refresh(&b, &id, &client_secret, newest).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "reuse revoked the winner's rotated token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotated_by_the_operator_is_published_then_used_by_every_process_within_the_refresh_interval()
 {
    let Pair {
        db,
        secret,
        issuer,
        a,
        b,
        _dir,
    } = Pair::start(&["--key-refresh-secs", "1"]).await;
    let (id, client_secret) = register(&a).await;
    let old = id_token_kid(&b, &id, &client_secret).await;
    assert_eq!(old, id_token_kid(&a, &id, &client_secret).await);

    // The operator is a third process on the same database (what `lockspire keys` does). Its
    // clock stands in for the 300 s a new key must be published before it signs.
    let clock = lockspire::ManualClock::default();
    let operator = lockspire::Lockspire::builder()
        .issuer(&issuer)
        .expect("issuer")
        .database(&db.url())
        .secret_key(SecretKey::from_base64(&secret).expect("secret"))
        .clock(clock.clone())
        .build_operator()
        .await
        .expect("operator");
    let new = operator
        .generate_key(lockspire::jose::SigningAlg::RS256)
        .await
        .expect("generate")
        .kid;

    // Refresh interval 1 s: both processes publish the upcoming key within a few seconds…
    let bound = Duration::from_secs(5);
    for server in [&a, &b] {
        within(bound, "upcoming key published", || async {
            published_kids(server).await.contains(&new)
        })
        .await;
    }
    // …and an upcoming key never signs.
    assert_eq!(id_token_kid(&b, &id, &client_secret).await, old);
    let refused = operator.activate_key(&new).await;
    assert!(
        refused.is_err(),
        "a key published for less than 300 s cannot sign"
    );

    clock.advance(lockspire::PUBLISH_BEFORE_USE + 1);
    operator.activate_key(&new).await.expect("activate");
    for server in [&a, &b] {
        within(bound, "rotated key used", || async {
            id_token_kid(server, &id, &client_secret).await == new
        })
        .await;
        // The retired key stays published so tokens it signed still verify.
        let kids = published_kids(server).await;
        assert!(kids.contains(&old) && kids.contains(&new), "{kids:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_through_one_process_is_seen_by_the_other_within_a_second_not_after_its_cache_expires()
 {
    // The default key refresh (30 s): anything seen sooner was announced.
    let Pair {
        db,
        secret,
        issuer,
        a,
        b,
        _dir,
    } = Pair::start(&[]).await;
    let operator = lockspire::Lockspire::builder()
        .issuer(&issuer)
        .expect("issuer")
        .database(&db.url())
        .secret_key(SecretKey::from_base64(&secret).expect("secret"))
        .build_operator()
        .await
        .expect("operator");
    let metadata = |redirect: &str| {
        json!({
            "client_name": "changes", "redirect_uris": [redirect],
            "grant_types": ["authorization_code", "client_credentials"],
        })
    };
    let reg: Value = Client::new()
        .post(format!("{}/register", a.base))
        .json(&metadata("https://rp.example/cb"))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    let id = reg["client_id"].as_str().expect("id").to_owned();
    let mut client_secret = reg["client_secret"].as_str().expect("secret").to_owned();
    let rat = reg["registration_access_token"]
        .as_str()
        .expect("rat")
        .to_owned();
    let registration = reg["registration_client_uri"]
        .as_str()
        .expect("uri")
        .to_owned();
    let cc = [("grant_type", "client_credentials")];
    // Each check first makes B cache the client, then changes it through A (or the operator, a
    // third process), then asks B until it sees the change: within a second (the time
    // PostgreSQL takes to deliver the announcement, with room to spare), where an unannounced
    // change would stay hidden behind B's cache for 5 s.
    let second = Duration::from_secs(1);
    let on_b = |secret: String| {
        let (base, id) = (b.base.clone(), id.clone());
        async move { token(&base, &id, &secret, &cc).await.0 }
    };

    // A rotated secret.
    assert_eq!(on_b(client_secret.clone()).await, StatusCode::OK);
    let old_secret = client_secret.clone();
    client_secret = operator.rotate_client_secret(&id).await.expect("rotate");
    within(second, "the old secret is refused", || async {
        on_b(old_secret.clone()).await == StatusCode::UNAUTHORIZED
    })
    .await;
    assert_eq!(on_b(client_secret.clone()).await, StatusCode::OK);

    // Disabled, then enabled.
    operator
        .set_client_enabled(&id, false)
        .await
        .expect("disable");
    within(second, "disabled", || async {
        on_b(client_secret.clone()).await == StatusCode::UNAUTHORIZED
    })
    .await;
    operator
        .set_client_enabled(&id, true)
        .await
        .expect("enable");
    within(second, "enabled", || async {
        on_b(client_secret.clone()).await == StatusCode::OK
    })
    .await;

    // New redirect URIs through RFC 7592 on A.
    assert_eq!(
        authorize_status(&b, &id, "https://rp.example/cb").await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        authorize_status(&b, &id, "https://rp.example/new").await,
        StatusCode::BAD_REQUEST
    );
    let mut update = metadata("https://rp.example/new");
    update["client_id"] = json!(id);
    let put = Client::new()
        .put(&registration)
        .bearer_auth(&rat)
        .json(&update)
        .send()
        .await
        .expect("put");
    assert_eq!(put.status(), StatusCode::OK);
    let rat: Value = put.json().await.expect("json");
    let rat = rat["registration_access_token"]
        .as_str()
        .expect("rotated rat")
        .to_owned();
    within(second, "the new redirect URI is accepted", || async {
        authorize_status(&b, &id, "https://rp.example/new").await == StatusCode::SEE_OTHER
    })
    .await;
    assert_eq!(
        authorize_status(&b, &id, "https://rp.example/cb").await,
        StatusCode::BAD_REQUEST
    );

    // Deleted through RFC 7592 on A.
    assert_eq!(on_b(client_secret.clone()).await, StatusCode::OK);
    let deleted = Client::new()
        .delete(&registration)
        .bearer_auth(&rat)
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    within(second, "deleted", || async {
        on_b(client_secret.clone()).await == StatusCode::UNAUTHORIZED
    })
    .await;

    // A new signing key is published by B well before its 30 s re-read.
    let new = operator
        .generate_key(lockspire::jose::SigningAlg::ES256)
        .await
        .expect("generate")
        .kid;
    let took = within(
        Duration::from_secs(3),
        "announced key published",
        || async { published_kids(&b).await.contains(&new) },
    )
    .await;
    eprintln!("B published the new key after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_held_by_a_killed_process_is_delivered_once_by_the_other() {
    let Pair {
        mut a,
        mut b,
        db,
        _dir,
        ..
    } = Pair::start(&["--outbox-lease-secs", "10"]).await;
    // The client's notification endpoint: the first call never gets an answer (its sender is
    // killed while it waits); later calls are answered 204.
    let (url, calls) = notification_endpoint().await;
    let (id, secret) = register_with(
        &a,
        json!({
            "client_name": "a ping client",
            "grant_types": ["urn:openid:params:grant-type:ciba"],
            "backchannel_token_delivery_mode": "ping",
            "backchannel_client_notification_endpoint": url,
        }),
    )
    .await;
    let (id, secret) = (id.as_str(), secret.as_str());
    let asked: Value = Client::new()
        .post(format!("{}/bc-authorize", a.base))
        .basic_auth(id, Some(secret))
        .form(&[
            ("scope", "openid"),
            ("login_hint", "alice"),
            ("client_notification_token", "ping-token"),
        ])
        .send()
        .await
        .expect("bc-authorize")
        .json()
        .await
        .expect("json");
    let auth_req_id = asked["auth_req_id"].as_str().expect("auth_req_id");
    approve_on_the_demo_device(&a).await;

    // Whichever process leased the call sent it, and is killed while the client has not
    // answered: nothing recorded the delivery.
    let received = |n: usize| {
        let calls = calls.clone();
        move || {
            let calls = calls.clone();
            async move { calls.lock().map(|c| c.len()).unwrap_or(0) >= n }
        }
    };
    within(Duration::from_secs(10), "the first call", received(1)).await;
    let mut pg = sqlx::PgConnection::connect(&db.url()).await.expect("db");
    let holder: (String, String) = sqlx::query_as("SELECT status, leased_by FROM outbox")
        .fetch_one(&mut pg)
        .await
        .expect("the outbox row");
    assert_eq!(holder.0, "pending");
    let pid = |s: &str| s.split('-').next().and_then(|p| p.parse::<u32>().ok());
    let (killed, survivor) = if pid(&holder.1) == Some(a.child.id()) {
        (&mut a, &b)
    } else {
        (&mut b, &a)
    };
    assert_eq!(pid(&holder.1), Some(killed.child.id()), "{holder:?}");
    killed.child.kill().expect("kill");
    killed.child.wait().expect("wait");

    // Its lease runs out, and the other process delivers the call.
    within(
        Duration::from_secs(30),
        "the delivery by the survivor",
        received(2),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received = calls.lock().map(|c| c.clone()).unwrap_or_default();
    assert_eq!(
        received.len(),
        2,
        "sent once more, then never again: {received:?}"
    );
    assert_eq!(received[1], json!({ "auth_req_id": auth_req_id }));
    let after: (String, String) = sqlx::query_as("SELECT status, leased_by FROM outbox")
        .fetch_one(&mut pg)
        .await
        .expect("the outbox row");
    assert_eq!(after.0, "delivered");
    assert_eq!(pid(&after.1), Some(survivor.child.id()));
    // The pinged client asks once and gets its tokens.
    let (status, tokens) = token(
        &survivor.base,
        id,
        secret,
        &[
            ("grant_type", "urn:openid:params:grant-type:ciba"),
            ("auth_req_id", auth_req_id),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
}
