//! JWT client authentication (RFC 7523 §3, OIDC Core §9): private_key_jwt with inline `jwks`
//! or `jwks_uri`, and client_secret_jwt — every assertion rule, replay protection, the guarded
//! JWKS fetch and the audit trail of failures.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Backend, ClientKey, Harness, Reply};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use lockspire::Clock;
use serde_json::{Value, json};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn jwks(keys: &[&ClientKey]) -> Value {
    common::jwks(keys)
}

/// Standard assertion claims for `client_id` at `aud`, expiring in 60 s.
fn claims(h: &Harness, client_id: &str, aud: &str) -> Value {
    let now = h.clock.now();
    json!({
        "iss": client_id, "sub": client_id, "aud": aud,
        "exp": now + 60, "iat": now, "jti": common::random_b64(16),
    })
}

async fn token_with(h: &Harness, assertion: &str, extra: &[(&str, &str)]) -> Reply {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
    ];
    form.extend_from_slice(extra);
    Reply::from(
        h.http()
            .post(h.url("/token"))
            .form(&form)
            .send()
            .await
            .expect("token"),
    )
    .await
}

async fn register(h: &Harness, meta: Value) -> String {
    h.ls.create_client(None, meta)
        .await
        .expect("register")
        .client_id
}

on_both_stores! {
    async fn private_key_jwt_with_inline_jwks_authenticates(h) {
        let key = ClientKey::es256("k1");
        let id = register(&h, json!({
            "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks(&[&key]),
            "grant_types": ["client_credentials"],
        })).await;
        let ok = token_with(&h, &key.sign(&claims(&h, &id, &h.base)), &[]).await;
        assert_eq!(ok.status, 200, "aud = issuer: {}", ok.body);
        let ok = token_with(&h, &key.sign(&claims(&h, &id, &h.url("/token"))), &[]).await;
        assert_eq!(ok.status, 200, "aud = token endpoint URL: {}", ok.body);
        let ok = token_with(&h, &key.sign(&claims(&h, &id, &h.base)), &[("client_id", &id)]).await;
        assert_eq!(ok.status, 200, "client_id in the body that matches: {}", ok.body);
        let at = ok.body["access_token"].as_str().expect("at");
        let intro = Reply::from(h.http().post(h.url("/introspect")).form(&[
            ("token", at), ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &key.sign(&claims(&h, &id, &h.url("/introspect")))),
        ]).send().await.expect("introspect")).await;
        assert_eq!(intro.body["active"], true, "the introspection endpoint URL is an accepted audience");
        let eddsa = ClientKey::eddsa("ed1");
        let ed_id = register(&h, json!({
            "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks(&[&eddsa]), "grant_types": ["client_credentials"],
        })).await;
        assert_eq!(token_with(&h, &eddsa.sign(&claims(&h, &ed_id, &h.base)), &[]).await.status, 200, "EdDSA");
    }

    async fn a_push_accepts_the_issuer_the_token_endpoint_or_itself_as_the_assertion_audience(h) {
        // RFC 9126 §2: the pushed authorization request endpoint accepts the same audiences as
        // the token endpoint, and its own URL.
        let key = ClientKey::es256("k1");
        let id = register(&h, json!({
            "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks(&[&key]),
            "redirect_uris": ["https://rp.example/cb"],
        })).await;
        let pkce = common::Pkce::new();
        let push = |aud: String| {
            let assertion = key.sign(&claims(&h, &id, &aud));
            let http = h.http();
            let url = h.url("/par");
            let challenge = pkce.challenge.clone();
            async move {
                Reply::from(http.post(url).form(&[
                    ("client_assertion_type", JWT_BEARER), ("client_assertion", assertion.as_str()),
                    ("response_type", "code"), ("redirect_uri", "https://rp.example/cb"),
                    ("scope", "openid"), ("code_challenge", challenge.as_str()),
                    ("code_challenge_method", "S256"),
                ]).send().await.expect("push")).await
            }
        };
        for aud in [h.base.clone(), h.url("/token"), h.url("/par")] {
            let reply = push(aud.clone()).await;
            assert_eq!(reply.status, 201, "aud {aud}: {}", reply.text);
        }
        let reply = push(h.url("/introspect")).await;
        assert_eq!((reply.status.as_u16(), reply.error()), (401, "invalid_client"), "another endpoint's URL");
    }

    async fn assertion_times_at_the_limits_of_i64_are_refused_without_overflow(h) {
        let key = ClientKey::es256("k1");
        let id = register(&h, json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": jwks(&[&key]), "grant_types": ["client_credentials"]})).await;
        for (claim, value) in [("exp", i64::MIN), ("exp", i64::MAX), ("nbf", i64::MAX), ("iat", i64::MAX)] {
            let mut c = claims(&h, &id, &h.base);
            c[claim] = json!(value);
            let r = token_with(&h, &key.sign(&c), &[]).await;
            assert_eq!((r.status.as_u16(), r.error()), (401, "invalid_client"), "{claim} = {value}: {}", r.text);
        }
        // The client is fine otherwise.
        assert_eq!(token_with(&h, &key.sign(&claims(&h, &id, &h.base)), &[]).await.status, 200);
    }

    async fn assertion_replay_is_refused(h) {
        let key = ClientKey::es256("k1");
        let id = register(&h, json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": jwks(&[&key]), "grant_types": ["client_credentials"]})).await;
        let assertion = key.sign(&claims(&h, &id, &h.base));
        assert_eq!(token_with(&h, &assertion, &[]).await.status, 200);
        let replay = token_with(&h, &assertion, &[]).await;
        assert_eq!((replay.status.as_u16(), replay.error()), (401, "invalid_client"));
        assert!(!replay.header("www-authenticate").is_empty());
        let events = h.ls.operator().audit_events(10).await.expect("audit");
        let last = events.iter().find(|e| e.kind == "client_authentication_failed").expect("audited");
        assert_eq!(last.client_id.as_deref(), Some(id.as_str()));
        assert!(last.detail["reason"].as_str().unwrap_or("").contains("replayed"), "{:?}", last.detail);
    }

    async fn an_assertion_cannot_be_replayed_at_the_edge_of_its_validity(h) {
        let key = ClientKey::es256("k1");
        let id = register(&h, json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": jwks(&[&key]), "grant_types": ["client_credentials"]})).await;
        let assertion = key.sign(&claims(&h, &id, &h.base));
        assert_eq!(token_with(&h, &assertion, &[]).await.status, 200);
        // exp is now + 60; the server tolerates 30 s of skew: at exp + 30 the assertion is still
        // acceptable, so its jti must still be remembered.
        h.clock.advance(90);
        assert_eq!(token_with(&h, &assertion, &[]).await.error(), "invalid_client", "replay at exp + leeway");
        h.clock.advance(1);
        assert_eq!(token_with(&h, &assertion, &[]).await.error(), "invalid_client", "expired");
    }

    async fn every_assertion_rule_is_enforced(h) {
        let key = ClientKey::es256("k1");
        let other = ClientKey::es256("k1");
        let id = register(&h, json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": jwks(&[&key]), "grant_types": ["client_credentials"]})).await;
        let now = h.clock.now();
        let base = claims(&h, &id, &h.base);
        let with = |k: &str, v: Value| { let mut c = base.clone(); c[k] = v; c["jti"] = json!(common::random_b64(16)); c };
        let without = |k: &str| { let mut c = base.clone(); c.as_object_mut().expect("object").remove(k); c["jti"] = json!(common::random_b64(16)); c };
        let cases: Vec<(&str, String)> = vec![
            ("wrong audience", key.sign(&with("aud", json!("https://other.example")))),
            ("audience of another endpoint", key.sign(&with("aud", json!(h.url("/revoke"))))),
            ("iss differs from sub", key.sign(&with("iss", json!("someone-else")))),
            ("expired", key.sign(&with("exp", json!(now - 120)))),
            ("exp too far ahead", key.sign(&with("exp", json!(now + 3600)))),
            ("no exp", key.sign(&without("exp"))),
            ("no jti", { let mut c = base.clone(); c.as_object_mut().expect("object").remove("jti"); key.sign(&c) }),
            ("not yet valid", key.sign(&with("nbf", json!(now + 600)))),
            ("issued in the future", key.sign(&with("iat", json!(now + 600)))),
            ("signed by an unregistered key", other.sign(&with("exp", json!(now + 60)))),
            ("alg none", {
                let header = URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": "k1"}).to_string());
                let body = URL_SAFE_NO_PAD.encode(with("exp", json!(now + 60)).to_string());
                format!("{header}.{body}.")
            }),
            ("HS256 keyed with the public key (alg confusion)", {
                let mut header = Header::new(Algorithm::HS256);
                header.kid = Some("k1".into());
                let secret = EncodingKey::from_secret(key.jwk.to_string().as_bytes()).expect("hmac key");
                jsonwebtoken::encode(&header, &with("exp", json!(now + 60)), &secret).expect("sign")
            }),
            ("garbage", "not.a.jwt".to_owned()),
        ];
        for (rule, assertion) in cases {
            let r = token_with(&h, &assertion, &[]).await;
            assert_eq!((r.status.as_u16(), r.error()), (401, "invalid_client"), "{rule}: {}", r.body);
        }
        let mismatched = token_with(&h, &key.sign(&claims(&h, &id, &h.base)), &[("client_id", "another-client")]).await;
        assert_eq!(mismatched.error(), "invalid_client", "client_id differing from sub");
        let wrong_type = Reply::from(h.http().post(h.url("/token")).form(&[
            ("grant_type", "client_credentials"), ("client_assertion_type", "urn:other"),
            ("client_assertion", &key.sign(&claims(&h, &id, &h.base))),
        ]).send().await.expect("send")).await;
        assert_eq!(wrong_type.error(), "invalid_client");
        let mixed = Reply::from(h.http().post(h.url("/token")).basic_auth(&id, Some("x")).form(&[
            ("grant_type", "client_credentials"), ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &key.sign(&claims(&h, &id, &h.base))),
        ]).send().await.expect("send")).await;
        assert_eq!((mixed.status.as_u16(), mixed.error()), (401, "invalid_client"), "assertion plus Basic");
        assert!(mixed.header("www-authenticate").starts_with("Basic"));
    }

    async fn exactly_the_registered_method_and_alg_are_accepted(h) {
        let key = ClientKey::es256("k1");
        let eddsa = ClientKey::eddsa("k2");
        let pinned = register(&h, json!({
            "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks(&[&key, &eddsa]),
            "token_endpoint_auth_signing_alg": "ES256", "grant_types": ["client_credentials"],
        })).await;
        assert_eq!(token_with(&h, &key.sign(&claims(&h, &pinned, &h.base)), &[]).await.status, 200);
        assert_eq!(token_with(&h, &eddsa.sign(&claims(&h, &pinned, &h.base)), &[]).await.error(), "invalid_client", "alg not the registered one");
        // A client registered for client_secret_basic may not switch to an assertion.
        let basic = h.confidential_client(json!({})).await;
        let mut c = claims(&h, &basic.id, &h.base);
        c["jti"] = json!("x1");
        assert_eq!(token_with(&h, &key.sign(&c), &[]).await.error(), "invalid_client");
        // And a private_key_jwt client may not fall back to a secret or to nothing.
        let r = Reply::from(h.http().post(h.url("/token")).form(&[("grant_type", "client_credentials"), ("client_id", pinned.as_str())]).send().await.expect("send")).await;
        assert_eq!(r.error(), "invalid_client");
    }

    async fn client_secret_jwt_uses_a_sealed_secret_and_only_hs256(h) {
        let reg = h.ls.create_client(None, json!({"token_endpoint_auth_method": "client_secret_jwt", "grant_types": ["client_credentials"]})).await.expect("register");
        let secret = reg.client_secret.clone().expect("secret issued");
        let id = reg.client_id.clone();
        let hs = |secret: &str, c: &Value| jsonwebtoken::encode(&Header::new(Algorithm::HS256), c, &EncodingKey::from_secret(secret.as_bytes()).expect("hmac key")).expect("sign");
        let ok = token_with(&h, &hs(&secret, &claims(&h, &id, &h.base)), &[]).await;
        assert_eq!(ok.status, 200, "{}", ok.body);
        assert_eq!(token_with(&h, &hs("wrong-secret", &claims(&h, &id, &h.base)), &[]).await.error(), "invalid_client");
        let es = ClientKey::es256("k1");
        assert_eq!(token_with(&h, &es.sign(&claims(&h, &id, &h.base)), &[]).await.error(), "invalid_client", "only HS256");
        // Rotation issues a new secret the assertions must use.
        let rotated = h.ls.operator().rotate_client_secret(&id).await.expect("rotate");
        assert_eq!(token_with(&h, &hs(&secret, &claims(&h, &id, &h.base)), &[]).await.error(), "invalid_client");
        assert_eq!(token_with(&h, &hs(&rotated, &claims(&h, &id, &h.base)), &[]).await.status, 200);
        // Stored sealed for this client only; never in clear; never for other methods.
        let basic = h.confidential_client(json!({})).await;
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&h.db.url).await.expect("db");
        let rows: Vec<(String, Option<String>)> = sqlx::query_as("SELECT client_id, sealed_secret FROM clients").fetch_all(&pool).await.expect("select");
        for (client, sealed) in rows {
            if client == id {
                let sealed = sealed.expect("sealed secret stored");
                assert!(!sealed.contains(&rotated) && !sealed.contains(&secret));
            } else if client == basic.id {
                assert!(sealed.is_none(), "a client_secret_basic secret is not recoverable");
            }
        }
    }
}

/// A JWKS endpoint on loopback that counts fetches and can be broken.
struct JwksServer {
    url: String,
    keys: Arc<std::sync::Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    broken: Arc<AtomicBool>,
}

async fn jwks_server(initial: Value) -> JwksServer {
    let keys = Arc::new(std::sync::Mutex::new(initial));
    let fetches = Arc::new(AtomicUsize::new(0));
    let broken = Arc::new(AtomicBool::new(false));
    let (k, f, b) = (keys.clone(), fetches.clone(), broken.clone());
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let (k, f, b) = (k.clone(), f.clone(), b.clone());
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                if b.load(Ordering::SeqCst) {
                    return (
                        http::StatusCode::INTERNAL_SERVER_ERROR,
                        axum::Json(json!({})),
                    );
                }
                let body = k.lock().map(|v| v.clone()).unwrap_or_default();
                (http::StatusCode::OK, axum::Json(body))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/jwks", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    JwksServer {
        url,
        keys,
        fetches,
        broken,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_uri_is_cached_and_an_unknown_kid_triggers_exactly_one_refetch() {
    let h = Harness::start_with(Backend::Sqlite, |b| b.dev_mode(true)).await;
    let k1 = ClientKey::es256("k1");
    let server = jwks_server(jwks(&[&k1])).await;
    let id = register(&h, json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": server.url, "grant_types": ["client_credentials"]})).await;
    for _ in 0..3 {
        assert_eq!(
            token_with(&h, &k1.sign(&claims(&h, &id, &h.base)), &[])
                .await
                .status,
            200
        );
    }
    assert_eq!(
        server.fetches.load(Ordering::SeqCst),
        1,
        "fetched once, then cached"
    );
    // The client rotates: a new kid forces one refetch, which finds it.
    let k2 = ClientKey::es256("k2");
    *server.keys.lock().expect("keys") = jwks(&[&k1, &k2]);
    assert_eq!(
        token_with(&h, &k2.sign(&claims(&h, &id, &h.base)), &[])
            .await
            .status,
        200
    );
    assert_eq!(
        server.fetches.load(Ordering::SeqCst),
        2,
        "exactly one refetch for the unknown kid"
    );
    // Another unknown kid right away: no refetch inside the minimum interval.
    let k3 = ClientKey::es256("k3");
    assert_eq!(
        token_with(&h, &k3.sign(&claims(&h, &id, &h.base)), &[])
            .await
            .error(),
        "invalid_client"
    );
    assert_eq!(
        server.fetches.load(Ordering::SeqCst),
        2,
        "forced refreshes are rate limited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_jwks_refresh_keeps_the_last_good_keys_and_is_recorded() {
    let h = Harness::start_with(Backend::Sqlite, |b| b.dev_mode(true)).await;
    let k1 = ClientKey::es256("k1");
    let server = jwks_server(jwks(&[&k1])).await;
    let id = register(&h, json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": server.url, "grant_types": ["client_credentials"]})).await;
    assert_eq!(
        token_with(&h, &k1.sign(&claims(&h, &id, &h.base)), &[])
            .await
            .status,
        200
    );
    server.broken.store(true, Ordering::SeqCst);
    let unknown = ClientKey::es256("k9");
    assert_eq!(
        token_with(&h, &unknown.sign(&claims(&h, &id, &h.base)), &[])
            .await
            .error(),
        "invalid_client"
    );
    assert_eq!(
        server.fetches.load(Ordering::SeqCst),
        2,
        "the forced refresh was tried"
    );
    assert_eq!(
        token_with(&h, &k1.sign(&claims(&h, &id, &h.base)), &[])
            .await
            .status,
        200,
        "last good keys still used"
    );
    let failures = h.ls.operator().jwks_fetch_failures();
    assert!(
        failures
            .iter()
            .any(|(uri, err)| *uri == server.url && err.contains("500")),
        "{failures:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_jwks_uris_are_refused_outside_dev_mode() {
    let h = Harness::start(Backend::Sqlite).await;
    let key = ClientKey::es256("k1");
    for uri in [
        "https://127.0.0.1/jwks",
        "https://169.254.169.254/latest/meta-data/jwks",
        "https://10.1.2.3/jwks",
        "http://rp.example/jwks",
        "https://localhost/jwks",
    ] {
        let r = h.ls.create_client(None, json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": uri, "grant_types": ["client_credentials"]})).await;
        assert_eq!(
            r.err().map(|e| e.code().as_str()),
            Some("invalid_client_metadata"),
            "{uri}"
        );
    }
    let both = h.ls.create_client(None, json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": jwks(&[&key]), "jwks_uri": "https://rp.example/jwks", "grant_types": ["client_credentials"]})).await;
    assert_eq!(
        both.err().map(|e| e.code().as_str()),
        Some("invalid_client_metadata"),
        "jwks and jwks_uri together"
    );
    let mut private = key.jwk.clone();
    private["d"] = json!("AAAA");
    let leaked = h.ls.create_client(None, json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [private]}, "grant_types": ["client_credentials"]})).await;
    assert_eq!(
        leaked.err().map(|e| e.code().as_str()),
        Some("invalid_client_metadata"),
        "private key material"
    );
    let keyless = h.ls.create_client(None, json!({"token_endpoint_auth_method": "private_key_jwt", "grant_types": ["client_credentials"]})).await;
    assert_eq!(
        keyless.err().map(|e| e.code().as_str()),
        Some("invalid_client_metadata")
    );
    let dev = Harness::start_with(Backend::Sqlite, |b| b.dev_mode(true)).await;
    assert!(dev.ls.create_client(None, json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://127.0.0.1:9/jwks", "grant_types": ["client_credentials"]})).await.is_ok(), "loopback in dev mode");
    let metadata = dev.ls.create_client(None, json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://169.254.169.254/jwks", "grant_types": ["client_credentials"]})).await;
    assert!(metadata.is_err(), "metadata addresses even in dev mode");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_with_ever_new_jwks_uris_cannot_grow_the_fetched_keys_cache() {
    let h = Harness::start_with(Backend::Sqlite, |b| b.dev_mode(true)).await;
    let key = ClientKey::es256("k1");
    // More clients than the cache remembers URIs (512), each with its own unreachable
    // jwks_uri, each trying once.
    for i in 0..600 {
        let id = register(&h, json!({"token_endpoint_auth_method": "private_key_jwt",
            "jwks_uri": format!("http://127.0.0.1:9/jwks/{i}"), "grant_types": ["client_credentials"]})).await;
        let r = token_with(&h, &key.sign(&claims(&h, &id, &h.base)), &[]).await;
        assert_eq!(r.error(), "invalid_client");
    }
    let remembered = h.ls.operator().jwks_fetch_failures();
    assert!(
        remembered.len() <= 512,
        "{} URIs remembered",
        remembered.len()
    );
    assert!(
        remembered
            .iter()
            .any(|(uri, _)| uri == "http://127.0.0.1:9/jwks/599"),
        "the newest is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetched_jwk_set_holds_at_most_16_keys_like_an_inline_one() {
    let h = Harness::start_with(Backend::Sqlite, |b| b.dev_mode(true)).await;
    let keys: Vec<ClientKey> = (0..17)
        .map(|i| ClientKey::es256(&format!("k{i}")))
        .collect();
    let refs: Vec<&ClientKey> = keys.iter().collect();
    let server = jwks_server(jwks(&refs)).await;
    let id = register(&h, json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": server.url, "grant_types": ["client_credentials"]})).await;
    let r = token_with(&h, &keys[0].sign(&claims(&h, &id, &h.base)), &[]).await;
    assert_eq!(r.error(), "invalid_client");
    let failures = h.ls.operator().jwks_fetch_failures();
    assert!(
        failures
            .iter()
            .any(|(uri, err)| *uri == server.url && err.contains("at most 16 keys")),
        "{failures:?}"
    );
    // Sixteen are fine.
    let server = jwks_server(jwks(&refs[..16])).await;
    let id = register(&h, json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": server.url, "grant_types": ["client_credentials"]})).await;
    assert_eq!(
        token_with(&h, &keys[0].sign(&claims(&h, &id, &h.base)), &[])
            .await
            .status,
        200
    );
}
