//! Client configuration (RFC 7592), minted initial access tokens (RFC 7591 §3) and the
//! registration allow-lists (RFC 7591 §2).

mod common;

use common::{Backend, Harness, Reply};
use lockspire::{AuthMethod, GrantType, RegistrationPolicy, RegistrationRules};
use serde_json::{Value, json};

async fn register(h: &Harness, body: Value, token: Option<&str>) -> Reply {
    let mut req = h.http().post(h.url("/register")).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    Reply::from(req.send().await.expect("register")).await
}

async fn manage(
    h: &Harness,
    method: reqwest::Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut req = h.http().request(method, uri);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    Reply::from(req.send().await.expect("manage")).await
}

fn client_of(reg: &Reply) -> common::TestClient {
    common::TestClient {
        id: reg.body["client_id"].as_str().expect("id").to_owned(),
        secret: reg.body["client_secret"].as_str().map(str::to_owned),
        redirect_uri: reg.body["redirect_uris"][0]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        auth: "client_secret_basic".into(),
    }
}

on_both_stores! {
    async fn registered_clients_read_their_configuration_with_their_token(h) {
        let reg = register(&h, json!({"client_name": "RP", "redirect_uris": ["https://rp.example/cb"]}), None).await;
        assert_eq!(reg.status, 201, "{}", reg.body);
        let rat = reg.body["registration_access_token"].as_str().expect("registration access token").to_owned();
        let uri = reg.body["registration_client_uri"].as_str().expect("registration client uri").to_owned();
        let id = reg.body["client_id"].as_str().expect("id").to_owned();
        assert_eq!(uri, h.url(&format!("/register/{id}")));
        let read = manage(&h, reqwest::Method::GET, &uri, Some(&rat), None).await;
        assert_eq!(read.status, 200, "{}", read.body);
        assert_eq!(read.body["client_name"], "RP");
        assert!(read.body.get("client_secret").is_none() && read.body.get("registration_access_token").is_none());
        assert_eq!(read.header("cache-control"), "no-store");
        for bad in [None, Some("wrong-token")] {
            let r = manage(&h, reqwest::Method::GET, &uri, bad, None).await;
            assert_eq!((r.status.as_u16(), r.error()), (401, "invalid_token"), "{bad:?}");
            assert!(r.header("www-authenticate").starts_with("Bearer"));
        }
        let other = register(&h, json!({"redirect_uris": ["https://other.example/cb"]}), None).await;
        let other_uri = other.body["registration_client_uri"].as_str().expect("uri");
        assert_eq!(manage(&h, reqwest::Method::GET, other_uri, Some(&rat), None).await.status, 401, "a token manages only its client");
        assert_eq!(manage(&h, reqwest::Method::GET, &h.url("/register/nope"), Some(&rat), None).await.status, 401);
    }

    async fn put_replaces_metadata_and_rotates_the_registration_token(h) {
        let reg = register(&h, json!({"client_name": "RP", "redirect_uris": ["https://rp.example/cb"]}), None).await;
        let rat = reg.body["registration_access_token"].as_str().expect("rat").to_owned();
        let uri = reg.body["registration_client_uri"].as_str().expect("uri").to_owned();
        let id = reg.body["client_id"].as_str().expect("id").to_owned();
        let secret = reg.body["client_secret"].as_str().expect("secret").to_owned();
        let update = json!({"client_id": id, "client_secret": secret, "client_name": "RP v2", "redirect_uris": ["https://rp.example/cb2"]});
        let put = manage(&h, reqwest::Method::PUT, &uri, Some(&rat), Some(update.clone())).await;
        assert_eq!(put.status, 200, "{}", put.body);
        assert_eq!(put.body["client_name"], "RP v2");
        assert_eq!(put.body["redirect_uris"], json!(["https://rp.example/cb2"]));
        let new_rat = put.body["registration_access_token"].as_str().expect("rotated token").to_owned();
        assert_ne!(new_rat, rat);
        assert_eq!(manage(&h, reqwest::Method::GET, &uri, Some(&rat), None).await.status, 401, "the old token stopped working");
        assert_eq!(manage(&h, reqwest::Method::GET, &uri, Some(&new_rat), None).await.body["client_name"], "RP v2");
        let cases = [
            (json!({"client_id": "someone-else", "redirect_uris": ["https://rp.example/cb"]}), "invalid_request"),
            (json!({"client_id": id, "client_secret": "wrong", "redirect_uris": ["https://rp.example/cb"]}), "invalid_request"),
            (json!({"client_id": id, "redirect_uris": ["http://rp.example/cb"]}), "invalid_redirect_uri"),
            (json!({"client_id": id, "redirect_uris": ["https://rp.example/cb"], "token_endpoint_auth_method": "none"}), "invalid_client_metadata"),
        ];
        for (body, code) in cases {
            let r = manage(&h, reqwest::Method::PUT, &uri, Some(&new_rat), Some(body.clone())).await;
            assert_eq!((r.status.as_u16(), r.error()), (400, code), "{body}");
        }
        assert_eq!(manage(&h, reqwest::Method::GET, &uri, Some(&new_rat), None).await.status, 200, "refused updates do not rotate");
    }

    async fn delete_is_final_every_grant_and_token_revoked_and_the_id_never_reused(h) {
        let reg = register(&h, json!({"redirect_uris": ["https://rp.example/cb"],
            "grant_types": ["authorization_code", "refresh_token", "client_credentials"]}), None).await;
        let rat = reg.body["registration_access_token"].as_str().expect("rat").to_owned();
        let uri = reg.body["registration_client_uri"].as_str().expect("uri").to_owned();
        let client = client_of(&reg);
        let tokens = h.tokens(&client, "alice", "openid offline_access").await;
        let at = tokens["access_token"].as_str().expect("at");
        let rt = tokens["refresh_token"].as_str().expect("rt");
        let cc = h.post_as(&client, "/token", &[("grant_type", "client_credentials")]).await;
        let cc = cc.body["access_token"].as_str().expect("client credentials token").to_owned();
        assert_eq!(h.userinfo(at).await.status, 200);
        assert!(h.is_active(&client, &cc).await);
        assert_eq!(live_tokens(&h, &client.id).await, 3, "access, refresh and client credentials tokens");

        let del = manage(&h, reqwest::Method::DELETE, &uri, Some(&rat), None).await;
        assert_eq!(del.status, 204);
        assert_eq!(h.userinfo(at).await.status, 401, "its tokens stop working");
        assert_eq!(live_tokens(&h, &client.id).await, 0);
        assert_eq!(h.post_as(&client, "/token", &[("grant_type", "client_credentials")]).await.error(), "invalid_client");
        assert_eq!(manage(&h, reqwest::Method::GET, &uri, Some(&rat), None).await.status, 401, "and so does its registration token");
        assert_eq!(manage(&h, reqwest::Method::DELETE, &uri, Some(&rat), None).await.status, 401);

        // Final: nothing revives the client or its tokens, and its id is not issued again.
        assert!(!h.ls.enable_client(&client.id).await.expect("enable"), "a deleted client cannot be enabled");
        assert!(h.ls.operator().set_client_enabled(&client.id, true).await.is_err());
        assert!(h.ls.operator().rotate_client_secret(&client.id).await.is_err());
        assert!(h.ls.create_client(Some(&client.id), json!({"redirect_uris": ["https://rp.example/cb"]})).await.is_err());
        assert_eq!(h.userinfo(at).await.status, 401);
        assert_eq!(live_tokens(&h, &client.id).await, 0);
        let refresh = h.post_as(&client, "/token", &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await;
        assert_eq!(refresh.error(), "invalid_client");
        // Its grants are revoked in the database, not only hidden behind the client's status.
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&h.db.url).await.expect("db");
        let (live,): (i64,) = sqlx::query_as("SELECT count(*) FROM grants WHERE client_id = $1 AND revoked_at IS NULL")
            .bind(&client.id).fetch_one(&pool).await.expect("count");
        assert_eq!(live, 0);
        let info = h.ls.operator().client(&client.id).await.expect("read").expect("the tombstone stays");
        assert!(info.deleted && !info.enabled);
    }
}

/// How many of the client's stored tokens the database still holds valid: unexpired, unrevoked,
/// unconsumed, their client active and their grant (if any) live — every condition a token
/// check applies.
async fn live_tokens(h: &Harness, client_id: &str) -> usize {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&h.db.url).await.expect("db");
    let now = lockspire::Clock::now(&h.clock);
    let (live,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM tokens t \
         JOIN clients c ON c.tenant_id = t.tenant_id AND c.client_id = t.client_id \
         LEFT JOIN grants g ON g.id = t.grant_id \
         WHERE t.client_id = $1 AND t.kind <> 'code' AND t.expires_at > $2 AND c.status = 'active' \
           AND t.revoked_at IS NULL AND t.consumed_at IS NULL \
           AND (t.grant_id IS NULL OR (g.revoked_at IS NULL AND g.expires_at > $2))",
    )
    .bind(client_id)
    .bind(now)
    .fetch_one(&pool)
    .await
    .expect("count");
    pool.close().await;
    usize::try_from(live).expect("a count")
}

fn rules() -> RegistrationRules {
    RegistrationRules {
        scopes: Some(vec!["openid".into(), "api:read".into()]),
        grant_types: Some(vec![GrantType::AuthorizationCode, GrantType::RefreshToken]),
        auth_methods: Some(vec![AuthMethod::ClientSecretBasic, AuthMethod::None]),
        redirect_schemes: Some(vec!["https".into()]),
        redirect_hosts: Some(vec!["partner.example".into()]),
        client_secret_lifetime: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_registration_stays_inside_the_allow_lists() {
    let h = Harness::start_with(Backend::Sqlite, |b| b.registration_rules(rules())).await;
    let ok = register(
        &h,
        json!({"redirect_uris": ["https://partner.example/cb"], "scope": "openid"}),
        None,
    )
    .await;
    assert_eq!(ok.status, 201, "{}", ok.body);
    let cases = [
        (
            json!({"redirect_uris": ["https://partner.example/cb"], "scope": "openid api:write"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://partner.example/cb"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://partner.example/cb"], "scope": "openid", "grant_types": ["authorization_code", "client_credentials"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://partner.example/cb"], "scope": "openid", "token_endpoint_auth_method": "client_secret_post"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://elsewhere.example/cb"], "scope": "openid"}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["http://127.0.0.1:9000/cb"], "scope": "openid"}),
            "invalid_redirect_uri",
        ),
    ];
    for (body, code) in cases {
        let r = register(&h, body.clone(), None).await;
        assert_eq!((r.status.as_u16(), r.error()), (400, code), "{body}");
    }
    // Operators are not bound by what dynamic clients may ask for.
    assert!(h.ls.create_client(None, json!({"redirect_uris": ["https://elsewhere.example/cb"], "grant_types": ["client_credentials", "authorization_code"]})).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minted_initial_access_tokens_are_counted_expire_and_revoke() {
    let h = Harness::start_with(Backend::Sqlite, |b| {
        b.registration(RegistrationPolicy::InitialAccessToken(None))
    })
    .await;
    let op = h.ls.operator();
    let body = json!({"redirect_uris": ["https://rp.example/cb"]});
    assert_eq!(
        register(&h, body.clone(), None).await.status,
        401,
        "a token is required"
    );

    let (_, single) = op
        .mint_initial_access_token(Some(1), None)
        .await
        .expect("mint");
    let invalid = register(
        &h,
        json!({"redirect_uris": ["http://rp.example/cb"]}),
        Some(&single),
    )
    .await;
    assert_eq!(
        invalid.error(),
        "invalid_redirect_uri",
        "refused metadata does not use the token up"
    );
    assert_eq!(register(&h, body.clone(), Some(&single)).await.status, 201);
    let reused = register(&h, body.clone(), Some(&single)).await;
    assert_eq!(
        (reused.status.as_u16(), reused.error()),
        (401, "invalid_token"),
        "single use"
    );

    let (_, twice) = op
        .mint_initial_access_token(Some(2), Some(3600))
        .await
        .expect("mint");
    assert_eq!(register(&h, body.clone(), Some(&twice)).await.status, 201);
    assert_eq!(register(&h, body.clone(), Some(&twice)).await.status, 201);
    assert_eq!(register(&h, body.clone(), Some(&twice)).await.status, 401);

    let (_, short) = op
        .mint_initial_access_token(None, Some(60))
        .await
        .expect("mint");
    assert_eq!(register(&h, body.clone(), Some(&short)).await.status, 201);
    h.clock.advance(61);
    assert_eq!(
        register(&h, body.clone(), Some(&short)).await.status,
        401,
        "expired"
    );

    let (record, revocable) = op
        .mint_initial_access_token(None, None)
        .await
        .expect("mint");
    assert_eq!(
        register(&h, body.clone(), Some(&revocable)).await.status,
        201
    );
    op.revoke_initial_access_token(&record.id)
        .await
        .expect("revoke");
    assert_eq!(
        register(&h, body.clone(), Some(&revocable)).await.status,
        401,
        "revoked"
    );
    let listed = op.initial_access_tokens().await.expect("list");
    assert_eq!(listed.len(), 4);
    assert!(
        listed
            .iter()
            .any(|t| t.id == record.id && t.revoked_at.is_some())
    );
    assert!(op.mint_initial_access_token(Some(0), None).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamically_registered_secrets_expire_after_the_configured_lifetime() {
    let rules = RegistrationRules {
        client_secret_lifetime: Some(3600),
        ..RegistrationRules::default()
    };
    let h = Harness::start_with(Backend::Sqlite, |b| b.registration_rules(rules)).await;
    let reg = register(&h, json!({"redirect_uris": ["https://rp.example/cb"], "grant_types": ["authorization_code", "client_credentials"]}), None).await;
    assert_eq!(reg.status, 201, "{}", reg.body);
    let now = lockspire::Clock::now(&h.clock);
    assert_eq!(reg.body["client_secret_expires_at"], now + 3600);
    let client = client_of(&reg);
    assert_eq!(
        h.post_as(&client, "/token", &[("grant_type", "client_credentials")])
            .await
            .status,
        200
    );
    h.clock.advance(3601);
    let expired = h
        .post_as(&client, "/token", &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(
        (expired.status.as_u16(), expired.error()),
        (401, "invalid_client")
    );
    // An operator's rotation issues a secret without expiry.
    let fresh =
        h.ls.operator()
            .rotate_client_secret(&client.id)
            .await
            .expect("rotate");
    let mut rotated = client.clone();
    rotated.secret = Some(fresh);
    assert_eq!(
        h.post_as(&rotated, "/token", &[("grant_type", "client_credentials")])
            .await
            .status,
        200
    );
}
