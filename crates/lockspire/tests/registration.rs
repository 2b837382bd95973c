//! Dynamic client registration (RFC 7591) and its policies.

mod common;

use common::{Backend, Harness, Reply};
use lockspire::RegistrationPolicy;
use serde_json::{Value, json};

async fn register(h: &Harness, body: Value, token: Option<&str>) -> Reply {
    let mut req = h.http().post(h.url("/register")).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    Reply::from(req.send().await.expect("register")).await
}

on_both_stores! {
    async fn open_registration_returns_the_secret_once_and_echoes_metadata(h) {
        let r = register(&h, json!({
            "client_name": "Third party",
            "redirect_uris": ["https://tp.example/cb", "http://127.0.0.1:8080/cb"],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid email offline_access",
            "contacts": ["ops@tp.example"],
            "unknown_extension": "ignored",
        }), None).await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.header("cache-control"), "no-store");
        let secret = r.body["client_secret"].as_str().expect("secret").to_owned();
        assert!(secret.len() >= 43, "256-bit secret");
        assert_eq!(r.body["client_secret_expires_at"], 0);
        assert_eq!(r.body["token_endpoint_auth_method"], "client_secret_basic");
        assert_eq!(r.body["id_token_signed_response_alg"], "RS256");
        assert_eq!(r.body["redirect_uris"][1], "http://127.0.0.1:8080/cb", "http loopback accepted");
        assert!(r.body.get("unknown_extension").is_none(), "ignored fields are not echoed");
        let client = common::TestClient {
            id: r.body["client_id"].as_str().expect("id").to_owned(),
            secret: Some(secret),
            redirect_uri: "https://tp.example/cb".into(),
            auth: "client_secret_basic".into(),
        };
        let tokens = h.tokens(&client, "alice", "openid email").await;
        assert!(tokens["id_token"].is_string());
        let (meta, active) = h.ls.client(&client.id).await.expect("lookup").expect("exists");
        assert!(active);
        assert_eq!(meta.client_name.as_deref(), Some("Third party"));
    }

    async fn hosts_update_client_metadata_under_registration_rules(h) {
        let client = h.public_client(json!({})).await;
        let updated = h.ls.update_client(&client.id, json!({
            "token_endpoint_auth_method": "none",
            "redirect_uris": ["https://rp.example/new-cb"],
            "client_name": "Renamed",
        })).await.expect("update");
        assert_eq!(updated.redirect_uris, vec!["https://rp.example/new-cb"]);
        let (stored, _) = h.ls.client(&client.id).await.expect("read").expect("exists");
        assert_eq!(stored.client_name.as_deref(), Some("Renamed"));
        let bad = h.ls.update_client(&client.id, json!({"redirect_uris": ["http://evil.example/cb"], "token_endpoint_auth_method": "none"})).await;
        assert_eq!(bad.err().map(|e| e.code().as_str()), Some("invalid_redirect_uri"));
        let switch = h.ls.update_client(&client.id, json!({"redirect_uris": ["https://rp.example/cb"]})).await;
        assert_eq!(switch.err().map(|e| e.code().as_str()), Some("invalid_client_metadata"), "public cannot become confidential without a secret");
    }

    async fn public_clients_get_no_secret(h) {
        let r = register(&h, json!({"redirect_uris": ["com.example.app:/cb"], "token_endpoint_auth_method": "none", "application_type": "native"}), None).await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert!(r.body.get("client_secret").is_none());
    }

    async fn invalid_metadata_is_refused_with_the_rfc_error(h) {
        let cases = [
            (json!({"redirect_uris": ["http://tp.example/cb"]}), "invalid_redirect_uri"),
            (json!({"redirect_uris": ["https://tp.example/cb#frag"]}), "invalid_redirect_uri"),
            (json!({"redirect_uris": ["javascript:alert(1)"]}), "invalid_redirect_uri"),
            (json!({"redirect_uris": ["https://*.example/cb"]}), "invalid_redirect_uri"),
            (json!({}), "invalid_redirect_uri"),
            (json!({"redirect_uris": ["https://tp.example/cb"], "token_endpoint_auth_method": "private_key_jwt_x"}), "invalid_client_metadata"),
            (json!({"redirect_uris": ["https://tp.example/cb"], "grant_types": ["implicit"]}), "invalid_client_metadata"),
            (json!({"redirect_uris": ["https://tp.example/cb"], "response_types": ["token"]}), "invalid_client_metadata"),
            (json!({"redirect_uris": ["https://tp.example/cb"], "id_token_signed_response_alg": "none"}), "invalid_client_metadata"),
            (json!({"redirect_uris": ["https://tp.example/cb"], "id_token_signed_response_alg": "HS256"}), "invalid_client_metadata"),
            (json!({"redirect_uris": ["https://tp.example/cb"], "scope": "openid root"}), "invalid_client_metadata"),
            (json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}), "invalid_client_metadata"),
            (json!({"redirect_uris": "https://tp.example/cb"}), "invalid_client_metadata"),
            (json!({"redirect_uris": ["https://tp.example/cb"], "logo_uri": "http://tp.example/logo.png"}), "invalid_client_metadata"),
            (json!(["not", "an", "object"]), "invalid_client_metadata"),
        ];
        for (body, code) in cases {
            let r = register(&h, body.clone(), None).await;
            assert_eq!((r.status.as_u16(), r.error()), (400, code), "{body}");
        }
        let raw = Reply::from(h.http().post(h.url("/register")).header("content-type", "application/json").body("{nope").send().await.expect("send")).await;
        assert_eq!(raw.error(), "invalid_client_metadata");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_access_token_policy_requires_the_token() {
    let token = "an-initial-access-token-of-some-length";
    let h = Harness::start_with(Backend::Sqlite, |b| {
        b.registration(RegistrationPolicy::InitialAccessToken(Some(token.into())))
    })
    .await;
    let body = json!({"redirect_uris": ["https://tp.example/cb"]});
    let none = register(&h, body.clone(), None).await;
    assert_eq!((none.status.as_u16(), none.error()), (401, "invalid_token"));
    assert!(none.header("www-authenticate").starts_with("Bearer"));
    let wrong = register(&h, body.clone(), Some("wrong")).await;
    assert_eq!(wrong.status, 401);
    let ok = register(&h, body, Some(token)).await;
    assert_eq!(ok.status, 201, "{}", ok.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_registration_is_not_served_or_advertised() {
    let h = Harness::start_with(Backend::Sqlite, |b| {
        b.registration(RegistrationPolicy::Disabled)
    })
    .await;
    let r = register(
        &h,
        json!({"redirect_uris": ["https://tp.example/cb"]}),
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    let doc: Value = h
        .http()
        .get(h.url("/.well-known/openid-configuration"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert!(doc.get("registration_endpoint").is_none());
}
