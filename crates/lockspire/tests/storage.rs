//! Storage rules: bearer artifacts and secrets exist in the database only as
//! digests, private keys only sealed, and single-use transitions are atomic.

mod common;

use common::{Consent, Pkce};
use lockspire::store::{Consumed, Store, TokenKind, TokenRecord};
use serde_json::json;
use sqlx::{Column, Row};

/// Every text value in every Lockspire table.
async fn all_stored_text(url: &str) -> Vec<String> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.expect("connect");
    let mut out = Vec::new();
    for table in [
        "clients",
        "signing_keys",
        "interactions",
        "grants",
        "consents",
        "tokens",
    ] {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {table}")))
            .fetch_all(&pool)
            .await
            .expect("select");
        for row in rows {
            for col in row.columns() {
                if let Ok(Some(text)) = row.try_get::<Option<String>, _>(col.ordinal()) {
                    out.push(text);
                }
            }
        }
    }
    out
}

on_both_stores! {
    async fn secrets_codes_and_tokens_are_stored_only_as_digests(h) {
        let client = h.confidential_client(json!({})).await;
        let secret = client.secret.clone().expect("secret");
        let browser = h.browser(Some("alice"));
        let pkce = Pkce::new();
        let url = h.authorize_url(&client, "openid offline_access", &pkce, &[]);
        let outcome = browser.run(&url, &client.redirect_uri, Consent::Stop).await;
        let common::Outcome::ConsentPage(consent_url, html) = outcome else { panic!("consent page") };
        let interaction = common::hidden_field(&html, "interaction").expect("interaction");
        assert!(consent_url.contains(&interaction));
        let resp = browser.submit_consent(&html, "allow").await;
        let location = resp.headers()["location"].to_str().expect("location").to_owned();
        let code = url::Url::parse(&location).expect("url").query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()).expect("code");
        let tokens = h.redeem(&client, &code, &pkce.verifier).await.body;
        let cc = h.post_as(&client, "/token", &[("grant_type", "client_credentials")]).await.body;
        let secrets = [
            ("client secret", secret.as_str()),
            ("interaction id", interaction.as_str()),
            ("authorization code", code.as_str()),
            ("PKCE verifier", pkce.verifier.as_str()),
            ("access token", tokens["access_token"].as_str().expect("at")),
            ("refresh token", tokens["refresh_token"].as_str().expect("rt")),
            ("client credentials token", cc["access_token"].as_str().expect("cc")),
        ];
        let stored = all_stored_text(&h.db.url).await;
        assert!(stored.len() > 20, "the dump read the tables");
        for (what, value) in secrets {
            assert!(value.len() >= 40, "{what} is long enough to be a real secret");
            assert!(!stored.iter().any(|s| s.contains(value)), "{what} is stored in clear");
        }
        for text in &stored {
            assert!(!text.contains("\"d\":"), "a private JWK member reached the database");
            assert!(!text.contains("BEGIN PRIVATE KEY"));
        }
    }

    async fn store_consumes_a_code_once_under_concurrency_and_revokes_on_replay(h) {
        let client = h.confidential_client(json!({})).await;
        let (code, _) = h.authorize(&client, "alice", "openid").await;
        let store = Store::connect(&h.db.url).await.expect("store");
        // The token table keys a code by its issue time (its first 6 bytes, in hex), then the
        // SHA-256 of the whole code.
        let digest = {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let raw = b64.decode(&code).expect("base64url code");
            assert_eq!(raw.len(), 38, "48-bit issue time and 256 random bits");
            let millis = raw[..6].iter().fold(0u64, |a, b| a << 8 | u64::from(*b));
            let sha = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, code.as_bytes());
            format!("{millis:012x}{}", b64.encode(sha))
        };
        let now = lockspire::Clock::now(&h.clock);
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (store, digest) = (store.clone(), digest.clone());
            tasks.push(tokio::spawn(async move {
                let mut tx = store.begin().await.expect("begin");
                let outcome = tx.consume(TokenKind::Code, &digest, now).await.expect("consume");
                tx.commit().await.expect("commit");
                outcome
            }));
        }
        let mut now_count = 0;
        let mut grant = None;
        for t in tasks {
            match t.await.expect("task") {
                Consumed::Now(rec) => { now_count += 1; grant = rec.grant_id; }
                Consumed::Replayed(_) => {}
                Consumed::Invalid => panic!("a consumed code must read as replayed, not unknown"),
            }
        }
        assert_eq!(now_count, 1);
        let mut tx = store.begin().await.expect("begin");
        assert!(tx.live_grant(&grant.expect("grant id"), now).await.expect("read").is_none(), "replay revoked the grant");
        // One transaction at a time per task: SQLite writers take turns.
        drop(tx);
        let mut tx2 = store.begin().await.expect("begin");
        assert!(matches!(tx2.consume(TokenKind::Code, "unknown", now).await.expect("consume"), Consumed::Invalid));
    }
}

on_both_stores! {
    async fn a_database_migrated_by_a_newer_release_is_refused(h) {
        // A migration this build does not know means the schema is newer than the code: starting
        // against it could misread rows, so opening refuses (as after a rollback of a release).
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&h.db.url).await.expect("connect");
        // Each database's own bookkeeping: Lockspire's table on SQLite, sqlx's migrator's on
        // PostgreSQL.
        let record = if h.db.url.starts_with("sqlite") {
            "INSERT INTO lockspire_migrations (version, description, checksum, applied_at) \
             VALUES (99999999, 'from the future', $1, 0)"
        } else {
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99999999, 'from the future', TRUE, $1, 0)"
        };
        sqlx::query(record)
        .bind(vec![0u8; 48])
        .execute(&pool)
        .await
        .expect("record a future migration");
        pool.close().await;
        let err = Store::connect(&h.db.url).await.expect_err("a newer schema is refused");
        assert!(err.to_string().contains("99999999"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_database_of_an_earlier_release_keeps_working_and_moves_to_lockspires_bookkeeping()
{
    // Earlier releases recorded SQLite migrations in a copy of sqlx's bookkeeping table. Such a
    // database is built here from a current one (same schema, same record, the old layout).
    let h = common::Harness::start(common::Backend::Sqlite).await;
    let client = h.confidential_client(json!({})).await;
    let pool = sqlx::SqlitePool::connect(&h.db.url).await.expect("connect");
    for statement in [
        "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
         installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, \
         checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)",
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         SELECT version, description, TRUE, checksum, -1 FROM lockspire_migrations",
        "DROP TABLE lockspire_migrations",
    ] {
        sqlx::query(statement)
            .execute(&pool)
            .await
            .expect(statement);
    }
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .expect("count");
    pool.close().await;

    let store = Store::open(&h.db.url).await.expect("open");
    assert_eq!(
        store.pending_migrations().await.expect("pending"),
        vec![],
        "the old record is read"
    );
    store
        .migrate()
        .await
        .expect("an earlier release's database migrates");
    assert_eq!(store.pending_migrations().await.expect("pending"), vec![]);
    store.close().await;

    let pool = sqlx::SqlitePool::connect(&h.db.url).await.expect("connect");
    let moved: i64 = sqlx::query_scalar("SELECT count(*) FROM lockspire_migrations")
        .fetch_one(&pool)
        .await
        .expect("the record moved");
    assert_eq!(moved, before, "every applied migration is recorded once");
    let old: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_one(&pool)
    .await
    .expect("tables");
    assert_eq!(old, 0, "the old table is gone");
    pool.close().await;
    // The data written before still serves requests.
    let token = h
        .post_as(&client, "/token", &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(token.status, 200, "{}", token.text);
    assert!(token.body["access_token"].is_string(), "{}", token.text);
}

on_both_stores! {
    async fn a_token_row_refused_in_a_group_commit_fails_alone(h) {
        // Concurrent issuances share one commit. A row the database refuses (here: a key
        // already taken) must fail only its own issuance; every other row of the batch is
        // committed and acknowledged.
        let client = h.confidential_client(json!({})).await;
        let store = Store::connect(&h.db.url).await.expect("store");
        let now = lockspire::Clock::now(&h.clock);
        let row = |digest: String| common::client_credentials_row(digest, &client.id, now, now + 600);
        store.insert_token(&row("taken".into())).await.expect("first insert");
        let inserts: Vec<_> = (0..40).map(|i| {
            let digest = if i == 20 { "taken".to_owned() } else { format!("fresh-{i}") };
            let (store, record) = (store.clone(), row(digest));
            tokio::spawn(async move { (record.digest.clone(), store.insert_token(&record).await) })
        }).collect();
        for insert in inserts {
            let (digest, written) = insert.await.expect("task");
            if digest == "taken" {
                let refused = written.expect_err("a duplicate key is refused");
                assert!(!refused.is_unavailable(), "refused for the row, not for the database: {refused}");
            } else {
                written.expect("every other row is written");
                assert!(store.active_token(&digest, now).await.expect("read").is_some(), "{digest} stored");
            }
        }
    }
}

on_both_stores! {
    async fn a_token_written_through_the_group_commit_reads_back_column_for_column(h) {
        // Batches are written column-wise on PostgreSQL (one array per column): every column
        // must land where it belongs. Distinct values in every column and NULLs in different
        // places in the two rows make a swap visible.
        let store = Store::connect(&h.db.url).await.expect("store");
        let full = TokenRecord {
            digest: "digest-full".into(),
            tenant_id: "tenant-x".into(),
            kind: TokenKind::Refresh,
            grant_id: Some("grant-x".into()),
            client_id: "client-x".into(),
            subject: Some("subject-x".into()),
            scopes: "scope-x".into(),
            resources: "[\"https://resource.example/x\"]".into(),
            created_at: 1_700_000_001,
            expires_at: 1_700_000_002,
            consumed_at: None,
            revoked_at: None,
            redirect_uri: Some("https://rp.example/cb".into()),
            code_challenge: Some("challenge-x".into()),
            nonce: Some("nonce-x".into()),
            format: Some("format-x".into()),
            jti: Some("jti-x".into()),
            cnf_x5t: Some("x5t-x".into()),
        };
        let sparse = TokenRecord {
            digest: "digest-sparse".into(),
            kind: TokenKind::Access,
            grant_id: None,
            subject: None,
            redirect_uri: None,
            nonce: None,
            jti: None,
            created_at: 1_700_000_003,
            expires_at: 1_700_000_004,
            ..full.clone()
        };
        let (a, b) = tokio::join!(store.insert_token(&full), store.insert_token(&sparse));
        a.expect("full row");
        b.expect("sparse row");
        for written in [&full, &sparse] {
            let read = store.any_token(&written.digest).await.expect("read").expect("stored");
            assert_eq!(format!("{read:?}"), format!("{written:?}"));
        }
    }
}

on_both_stores! {
    async fn a_replay_record_refuses_a_live_key_and_frees_an_expired_one(h) {
        let store = Store::connect(&h.db.url).await.expect("store");
        let now = 1_700_000_000;
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
}
