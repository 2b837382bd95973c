//! Discovery (RFC 8414, OIDC Discovery) and JWKS (RFC 7517), and keys at rest.

mod common;

use common::{Backend, Harness};
use lockspire::{Lockspire, SecretKey};
use serde_json::Value;

on_both_stores! {
    async fn discovery_is_served_at_both_well_known_paths_and_is_truthful(h) {
        let a = h.http().get(h.url("/.well-known/openid-configuration")).send().await.expect("get");
        assert_eq!(a.headers()["cache-control"], "public, max-age=300");
        let a: Value = a.json().await.expect("json");
        let b: Value = h.http().get(h.url("/.well-known/oauth-authorization-server")).send().await.expect("get").json().await.expect("json");
        assert_eq!(a, b);
        assert_eq!(a["issuer"], h.base);
        assert_eq!(a["token_endpoint"], format!("{}/token", h.base));
        assert_eq!(a["registration_endpoint"], format!("{}/register", h.base));
        assert_eq!(a["grant_types_supported"], serde_json::json!(["authorization_code", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:device_code", "urn:ietf:params:oauth:grant-type:token-exchange"]));
        for logout in ["backchannel_logout_supported", "backchannel_logout_session_supported", "frontchannel_logout_supported", "frontchannel_logout_session_supported"] {
            assert_eq!(a[logout], true, "{logout}");
        }
        assert_eq!(a["response_types_supported"], serde_json::json!(["code"]));
        assert_eq!(a["code_challenge_methods_supported"], serde_json::json!(["S256"]));
        assert_eq!(a["request_uri_parameter_supported"], false);
        assert_eq!(a["authorization_response_iss_parameter_supported"], true);
        let algs = a["id_token_signing_alg_values_supported"].as_array().expect("algs");
        assert!(algs.iter().any(|x| x == "RS256"), "OIDC Discovery requires RS256");
        assert!(!algs.iter().any(|x| x == "none"));
        assert!(a["scopes_supported"].as_array().expect("scopes").iter().any(|s| s == "api:read"));
        // Every advertised endpoint answers (no 404 / 5xx on a bare call).
        for key in ["authorization_endpoint", "jwks_uri", "userinfo_endpoint", "end_session_endpoint"] {
            let url = a[key].as_str().expect(key);
            let status = h.http().get(url).send().await.expect("get").status();
            assert!(status != 404 && !status.is_server_error(), "{key}: {status}");
        }
        for key in ["token_endpoint", "introspection_endpoint", "revocation_endpoint", "registration_endpoint", "device_authorization_endpoint"] {
            let url = a[key].as_str().expect(key);
            let status = h.http().post(url).send().await.expect("post").status();
            assert!(status != 404 && !status.is_server_error(), "{key}: {status}");
        }
    }

    async fn jwks_publishes_public_keys_only(h) {
        let resp = h.http().get(h.url("/jwks")).send().await.expect("get");
        let jwks: Value = resp.json().await.expect("json");
        let keys = jwks["keys"].as_array().expect("keys");
        for alg in ["RS256", "PS256", "ES256", "EdDSA"] {
            assert!(keys.iter().any(|k| k["alg"] == alg), "an active {alg} key is published");
        }
        for k in keys {
            for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
                assert!(k.get(private).is_none(), "private member {private} in JWKS");
            }
            // Signing keys name their alg; each encryption key serves every JWE alg of its kind.
            match k["use"].as_str() {
                Some("sig") => assert!(k["alg"].is_string(), "{k}"),
                Some("enc") => assert!(k.get("alg").is_none(), "{k}"),
                other => panic!("use {other:?}: {k}"),
            }
        }
        for kty in ["RSA", "EC"] {
            assert!(keys.iter().any(|k| k["use"] == "enc" && k["kty"] == kty), "an {kty} encryption key is published");
        }
    }

    async fn keys_survive_restart_and_are_sealed_under_the_secret_key(h) {
        let before: Value = h.http().get(h.url("/jwks")).send().await.expect("get").json().await.expect("json");
        // The same database and secret key: the same keys, none generated anew.
        let (second, _) = h.second_server().await;
        let after: Value = h.http().get(format!("{second}/jwks")).send().await.expect("get").json().await.expect("json");
        assert_eq!(before, after);
        // Another secret key cannot open them: start-up fails rather than serving with new keys.
        let wrong = Lockspire::builder()
            .issuer(&h.base).expect("issuer")
            .database(&h.db.url)
            .secret_key(SecretKey::generate())
            .account_resolver(common::TestResolver::new(common::default_users()))
            .build().await;
        assert!(wrong.is_err(), "a wrong secret key must not open stored private keys");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_must_be_https_unless_loopback() {
    assert!(
        Lockspire::builder()
            .issuer("http://auth.example.com")
            .is_err()
    );
    assert!(
        Lockspire::builder()
            .issuer("https://auth.example.com/?x=1")
            .is_err()
    );
    let h = Harness::start(Backend::Sqlite).await;
    assert!(h.base.starts_with("http://127.0.0.1:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_clients_may_call_token_and_userinfo_cross_origin_but_not_pages() {
    let h = Harness::start(Backend::Sqlite).await;
    let preflight = h
        .http()
        .request(reqwest::Method::OPTIONS, h.url("/token"))
        .header("origin", "https://spa.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .expect("preflight");
    assert!(preflight.status().is_success());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    let jwks = h
        .http()
        .get(h.url("/jwks"))
        .header("origin", "https://spa.example")
        .send()
        .await
        .expect("get");
    assert_eq!(jwks.headers()["access-control-allow-origin"], "*");
    let page = h
        .http()
        .get(h.url("/authorize"))
        .header("origin", "https://spa.example")
        .send()
        .await
        .expect("get");
    assert!(page.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_issuer_publishes_rfc8414_metadata_at_the_root() {
    let db = common::TestDatabase::new(Backend::Sqlite).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let ls = Lockspire::builder()
        .issuer(&format!("{origin}/oauth"))
        .expect("issuer")
        .database(&db.url)
        .secret_key(SecretKey::generate())
        .account_resolver(common::TestResolver::new(common::default_users()))
        .build()
        .await
        .expect("build");
    let app: axum::Router = axum::Router::new()
        .nest("/oauth", ls.router())
        .merge(ls.well_known_router());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let rfc8414: Value = reqwest::get(format!(
        "{origin}/.well-known/oauth-authorization-server/oauth"
    ))
    .await
    .expect("get")
    .json()
    .await
    .expect("json");
    let oidc: Value = reqwest::get(format!("{origin}/oauth/.well-known/openid-configuration"))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(rfc8414["issuer"], format!("{origin}/oauth"));
    assert_eq!(rfc8414, oidc);
}
