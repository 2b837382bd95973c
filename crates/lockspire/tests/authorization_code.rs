//! Authorization code redemption (RFC 6749 §4.1.3, RFC 7636 §4.6, RFC 9700 §4.14.2).

mod common;

use common::Pkce;
use serde_json::json;

on_both_stores! {
    async fn code_is_single_use_and_replay_revokes_tokens_issued_from_it(h) {
        let client = h.confidential_client(json!({})).await;
        let (code, verifier) = h.authorize(&client, "alice", "openid offline_access").await;
        let first = h.redeem(&client, &code, &verifier).await;
        assert_eq!(first.status, 200, "{}", first.body);
        assert_eq!(first.header("cache-control"), "no-store");
        let at = first.body["access_token"].as_str().expect("at").to_owned();
        let rt = first.body["refresh_token"].as_str().expect("rt").to_owned();
        assert!(h.is_active(&client, &at).await);
        let replay = h.redeem(&client, &code, &verifier).await;
        assert_eq!(replay.status, 400);
        assert_eq!(replay.error(), "invalid_grant");
        assert!(!h.is_active(&client, &at).await, "access token from a replayed code is revoked");
        assert!(!h.is_active(&client, &rt).await, "refresh token from a replayed code is revoked");
        let refresh = h.post_as(&client, "/token", &[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await;
        assert_eq!(refresh.error(), "invalid_grant");
    }

    async fn concurrent_redemptions_of_one_code_let_exactly_one_succeed(h) {
        let client = h.confidential_client(json!({})).await;
        let (code, verifier) = h.authorize(&client, "alice", "openid").await;
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let (h_base, c, code, verifier) = (h.base.clone(), client.clone(), code.clone(), verifier.clone());
            tasks.push(tokio::spawn(async move {
                redeem_at(&h_base, &c, &code, &verifier).await
            }));
        }
        let mut ok = Vec::new();
        for t in tasks {
            let (status, body) = t.await.expect("task");
            match status {
                200 => ok.push(body),
                400 => assert_eq!(body["error"], "invalid_grant"),
                other => panic!("unexpected status {other}: {body}"),
            }
        }
        assert_eq!(ok.len(), 1, "exactly one redemption succeeds");
        let at = ok[0]["access_token"].as_str().expect("at");
        assert!(!h.is_active(&client, at).await, "the replays revoked the winner's tokens");
    }

    async fn concurrent_redemptions_across_two_servers_on_one_database_let_exactly_one_succeed(h) {
        let client = h.confidential_client(json!({})).await;
        let (second, _ls) = h.second_server().await;
        let (code, verifier) = h.authorize(&client, "alice", "openid").await;
        let mut tasks = Vec::new();
        for i in 0..12 {
            let base = if i % 2 == 0 { h.base.clone() } else { second.clone() };
            let (c, code, verifier) = (client.clone(), code.clone(), verifier.clone());
            tasks.push(tokio::spawn(async move { redeem_at(&base, &c, &code, &verifier).await }));
        }
        let mut successes = 0;
        for t in tasks {
            let (status, body) = t.await.expect("task");
            match status {
                200 => successes += 1,
                400 => assert_eq!(body["error"], "invalid_grant"),
                other => panic!("unexpected status {other}: {body}"),
            }
        }
        assert_eq!(successes, 1);
    }

    async fn code_expires_after_sixty_seconds(h) {
        let client = h.confidential_client(json!({})).await;
        let (code, verifier) = h.authorize(&client, "alice", "openid").await;
        h.clock.advance(61);
        let reply = h.redeem(&client, &code, &verifier).await;
        assert_eq!(reply.error(), "invalid_grant");
    }

    async fn code_is_bound_to_verifier_redirect_uri_and_client(h) {
        let client = h.confidential_client(json!({
            "redirect_uris": ["https://rp.example/cb", "https://rp.example/other"]
        })).await;
        let other = h.confidential_client(json!({})).await;
        let (code, verifier) = h.authorize(&client, "alice", "openid").await;
        let wrong_verifier = Pkce::new().verifier;
        let r = h.redeem(&client, &code, &wrong_verifier).await;
        assert_eq!(r.error(), "invalid_grant", "PKCE mismatch");
        let r = h.post_as(&client, "/token", &[
            ("grant_type", "authorization_code"), ("code", &code),
            ("redirect_uri", "https://rp.example/other"), ("code_verifier", &verifier),
        ]).await;
        assert_eq!(r.error(), "invalid_grant", "redirect_uri mismatch");
        let r = h.post_as(&client, "/token", &[
            ("grant_type", "authorization_code"), ("code", &code), ("code_verifier", &verifier),
        ]).await;
        assert_eq!(r.error(), "invalid_grant", "redirect_uri omitted though it was sent");
        let r = h.redeem(&other, &code, &verifier).await;
        assert_eq!(r.error(), "invalid_grant", "another client");
        // None of the failed attempts burned the code for its rightful client.
        let r = h.redeem(&client, &code, &verifier).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    async fn malformed_or_missing_verifier_is_invalid_request(h) {
        let client = h.confidential_client(json!({})).await;
        let (code, _) = h.authorize(&client, "alice", "openid").await;
        let r = h.post_as(&client, "/token", &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", "https://rp.example/cb")]).await;
        assert_eq!(r.error(), "invalid_request");
        let r = h.redeem(&client, &code, "short").await;
        assert_eq!(r.error(), "invalid_request");
    }

    async fn public_client_redeems_with_client_id_only(h) {
        let client = h.public_client(json!({})).await;
        let tokens = h.tokens(&client, "alice", "openid").await;
        assert_eq!(tokens["token_type"], "Bearer");
        assert!(tokens.get("refresh_token").is_none(), "no offline_access, no refresh token for OIDC");
    }
}

on_both_stores! {
    async fn a_refused_redemption_racing_the_rightful_one_still_revokes_the_grant_as_a_replay(h) {
        // The rightful redemption is in its transaction when a request with the same code and a
        // wrong verifier reads it: still unconsumed then. Its refusal must not skip the
        // transaction, where it finds the code consumed and revokes the grant (RFC 6749
        // §4.1.2, RFC 9700 §4.14.2). The database's write lock is held from outside so the two
        // requests queue for it in a known order.
        let client = h.confidential_client(json!({})).await;
        let (code, verifier) = h.authorize(&client, "alice", "openid").await;
        let holder = WriteLock::take(&h.db.url).await;
        let rightful = {
            let (base, c, code) = (h.base.clone(), client.clone(), code.clone());
            tokio::spawn(async move { redeem_at(&base, &c, &code, &verifier).await })
        };
        holder.queued(1).await;
        let wrong = {
            let (base, c, code) = (h.base.clone(), client.clone(), code.clone());
            tokio::spawn(async move { redeem_at(&base, &c, &code, &"w".repeat(43)).await })
        };
        holder.queued(2).await;
        holder.release().await;
        let (status, body) = rightful.await.expect("rightful");
        assert_eq!(status, 200, "{body}");
        let (status, refused) = wrong.await.expect("wrong");
        assert_eq!((status, refused["error"].as_str()), (400, Some("invalid_grant")), "{refused}");
        let at = body["access_token"].as_str().expect("at");
        assert!(!h.is_active(&client, at).await, "the racing request revoked the grant");
    }
}

/// The database's write lock held from outside the server: SQLite's file lock
/// (`BEGIN IMMEDIATE`), or PostgreSQL's row locks on every code, which block every consume but
/// no read.
enum WriteLock {
    Sqlite(sqlx::SqliteConnection),
    /// The lock holder, and the name of the test's database.
    Postgres(sqlx::PgConnection, String),
}

impl WriteLock {
    async fn take(url: &str) -> Self {
        use sqlx::{Connection, Executor};
        if url.starts_with("sqlite") {
            let mut c = sqlx::SqliteConnection::connect(url).await.expect("sqlite");
            c.execute("BEGIN IMMEDIATE").await.expect("write lock");
            Self::Sqlite(c)
        } else {
            let mut c = sqlx::PgConnection::connect(url).await.expect("postgres");
            c.execute("BEGIN").await.expect("begin");
            // Row locks queue their waiters in order; a table lock would let both in at once.
            c.execute("SELECT digest FROM tokens WHERE kind = 'code' FOR UPDATE")
                .await
                .expect("lock");
            let database = url.rsplit('/').next().unwrap_or_default().to_owned();
            Self::Postgres(c, database)
        }
    }

    /// Waits until `n` requests queue for the lock, in arrival order. PostgreSQL shows its
    /// waiting sessions; SQLite does not, so there the wait is long enough for a request to
    /// reach its transaction on a loaded machine and short of the server's 5 s busy timeout.
    async fn queued(&self, n: i64) {
        match self {
            Self::Sqlite(_) => tokio::time::sleep(std::time::Duration::from_millis(1500)).await,
            Self::Postgres(_, database) => {
                let url = std::env::var("LOCKSPIRE_TEST_POSTGRES")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&format!("{url}/postgres"))
                    .await
                    .expect("postgres");
                for _ in 0..600 {
                    let waiting: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                         AND datname = $1 AND query LIKE 'UPDATE tokens SET consumed_at%'",
                    )
                    .bind(database)
                    .fetch_one(&mut c)
                    .await
                    .expect("activity");
                    if waiting >= n {
                        return;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                panic!("{n} redemptions never queued for the lock");
            }
        }
    }

    async fn release(self) {
        use sqlx::Executor;
        match self {
            Self::Sqlite(mut c) => c.execute("ROLLBACK").await.map(drop),
            Self::Postgres(mut c, _) => c.execute("ROLLBACK").await.map(drop),
        }
        .expect("release");
    }
}

async fn redeem_at(
    base: &str,
    c: &common::TestClient,
    code: &str,
    verifier: &str,
) -> (u16, serde_json::Value) {
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{base}/token"))
        .basic_auth(&c.id, c.secret.as_deref())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", c.redirect_uri.as_str()),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .expect("send");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}
