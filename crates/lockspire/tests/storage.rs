//! Storage rules: bearer artifacts and secrets exist in the database only as
//! digests, private keys only sealed, and migrations are never applied out of order. (The
//! store's own rules — single-use transitions, group commits, pruning — are tested inside the
//! crate, in `src/store/tests.rs`.)

mod common;

use common::{Consent, Pkce};
use lockspire::Database;
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
        let database = Database::open(&h.db.url).await.expect("open");
        let err = database.migrate().await.expect_err("a newer schema is refused");
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

    let database = Database::open(&h.db.url).await.expect("open");
    assert_eq!(
        database.pending_migrations().await.expect("pending"),
        vec![],
        "the old record is read"
    );
    database
        .migrate()
        .await
        .expect("an earlier release's database migrates");
    assert_eq!(
        database.pending_migrations().await.expect("pending"),
        vec![]
    );
    database.close().await;

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
