//! Request objects (RFC 9101): signed authorization requests by value at `/authorize` and inside
//! a push to `/par`. Objects are signed by `jsonwebtoken`, independently of Lockspire.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{ClientKey, Consent, Harness, Outcome, Pkce, TestClient};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use lockspire::Clock;
use serde_json::{Value, json};

/// A public client whose keys verify its request objects, with `extra` metadata.
async fn client_with_keys(h: &Harness, key: &ClientKey, extra: Value) -> TestClient {
    let mut meta = json!({"jwks": common::jwks(&[key])});
    if let (Value::Object(m), Value::Object(e)) = (&mut meta, extra) {
        m.extend(e);
    }
    h.public_client(meta).await
}

/// The claims of a valid request object for `client`: the code flow, with `state` and `nonce`
/// of its own.
fn claims(h: &Harness, client: &TestClient, pkce: &Pkce) -> Value {
    let now = h.clock.now();
    json!({
        "iss": client.id, "aud": h.base, "client_id": client.id,
        "exp": now + 300, "nbf": now, "iat": now, "jti": common::random_b64(16),
        "response_type": "code", "redirect_uri": client.redirect_uri, "scope": "openid",
        "state": "object-state", "nonce": "object-nonce",
        "code_challenge": pkce.challenge, "code_challenge_method": "S256",
    })
}

/// `/authorize` with `request` beside the query parameters `extra`.
fn authorize_url(
    h: &Harness,
    client: &TestClient,
    request: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("client_id", &client.id)
        .append_pair("request", request);
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    format!("{}/authorize?{}", h.base, q.finish())
}

/// Runs `/authorize` with `request` and returns where it ended.
async fn run(h: &Harness, client: &TestClient, request: &str, extra: &[(&str, &str)]) -> Outcome {
    h.browser(Some("alice"))
        .run(
            &authorize_url(h, client, request, extra),
            &client.redirect_uri,
            Consent::Allow,
        )
        .await
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    if let Value::Object(m) = &mut claims {
        if value.is_null() {
            m.remove(name);
        } else {
            m.insert(name.to_owned(), value);
        }
    }
    claims
}

on_both_stores! {
    async fn a_signed_request_object_is_the_request_and_query_only_parameters_are_ignored(h) {
        for key in [ClientKey::es256("k1"), ClientKey::eddsa("k2")] {
            let client = client_with_keys(&h, &key, json!({})).await;
            let pkce = Pkce::new();
            let request = key.sign(&claims(&h, &client, &pkce));
            let outcome = run(&h, &client, &request, &[
                ("response_type", "code"), ("scope", "openid profile email"),
                ("state", "query-state"), ("nonce", "query-nonce"),
            ]).await;
            let params = outcome.redirect_params();
            assert_eq!(params.get("state").map(String::as_str), Some("object-state"), "{:?}", key.alg);
            let tokens = h.redeem(&client, params.get("code").expect("code"), &pkce.verifier).await;
            assert_eq!(tokens.status, 200, "{}", tokens.text);
            assert_eq!(tokens.body["scope"], "openid", "the object's scope, not the query's");
            let (_, id) = common::jwt_parts(tokens.body["id_token"].as_str().expect("id_token"));
            assert_eq!(id["nonce"], "object-nonce");
        }
        let doc: Value = h.http().get(h.url("/.well-known/openid-configuration")).send().await.expect("discovery").json().await.expect("json");
        assert_eq!(doc["request_parameter_supported"], true);
        assert_eq!(doc["request_object_signing_alg_values_supported"], json!(["PS256", "ES256", "EdDSA", "RS256"]));
    }

    async fn every_request_object_rule_is_enforced(h) {
        let key = ClientKey::es256("k1");
        let other_key = ClientKey::es256("k1");
        let client = client_with_keys(&h, &key, json!({})).await;
        let strict = client_with_keys(&h, &key, json!({"request_object_signing_alg": "EdDSA"})).await;
        let pkce = Pkce::new();
        let now = h.clock.now();
        let good = claims(&h, &client, &pkce);
        let unsigned = {
            let header = URL_SAFE_NO_PAD.encode(json!({"alg": "none"}).to_string());
            let body = URL_SAFE_NO_PAD.encode(good.to_string());
            format!("{header}.{body}.")
        };
        let hs256 = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &good, &EncodingKey::from_secret(b"a-shared-secret-of-enough-length").expect("key")).expect("sign");
        let tampered = {
            let signed = key.sign(&good);
            let parts: Vec<&str> = signed.split('.').collect();
            let body = URL_SAFE_NO_PAD.encode(with(good.clone(), "scope", json!("openid profile")).to_string());
            format!("{}.{body}.{}", parts[0], parts[2])
        };
        let cases: Vec<(&str, String, &TestClient)> = vec![
            ("alg none", unsigned, &client),
            ("a shared-secret alg", hs256, &client),
            ("another key", other_key.sign(&good), &client),
            ("a tampered payload", tampered, &client),
            ("iss of another client", key.sign(&with(good.clone(), "iss", json!("someone-else"))), &client),
            ("aud of another server", key.sign(&with(good.clone(), "aud", json!("https://other.example"))), &client),
            ("no exp", key.sign(&with(good.clone(), "exp", Value::Null)), &client),
            ("expired", key.sign(&with(good.clone(), "exp", json!(now - 60))), &client),
            ("exp over an hour ahead", key.sign(&with(good.clone(), "exp", json!(now + 3700))), &client),
            ("nbf in the future", key.sign(&with(good.clone(), "nbf", json!(now + 600))), &client),
            ("nbf over an hour old", key.sign(&with(good.clone(), "nbf", json!(now - 3700))), &client),
            ("no jti", key.sign(&with(good.clone(), "jti", Value::Null)), &client),
            ("client_id of another client", key.sign(&with(good.clone(), "client_id", json!("someone-else"))), &client),
            ("a request_uri inside", key.sign(&with(good.clone(), "request_uri", json!("urn:x"))), &client),
            ("an alg other than the registered one", key.sign(&with(claims(&h, &strict, &pkce), "jti", json!("x1"))), &strict),
            ("encrypted", "a.b.c.d.e".to_owned(), &client),
        ];
        for (what, request, who) in cases {
            let outcome = run(&h, who, &request, &[("state", "query-state")]).await;
            let params = outcome.redirect_params();
            assert_eq!(params.get("error").map(String::as_str), Some("invalid_request_object"), "{what}: {params:?}");
            assert_eq!(params.get("state").map(String::as_str), Some("query-state"), "{what}");
            assert!(!params.contains_key("code"), "{what}");
        }
        // Without a verifiable client and redirect URI, the error is shown, not redirected.
        let unknown = TestClient { id: "no-such-client".into(), ..client.clone() };
        let shown = run(&h, &unknown, &key.sign(&good), &[]).await;
        assert!(matches!(shown, Outcome::Page(status, _) if status.as_u16() == 400), "{shown:?}");
    }

    async fn a_request_object_is_accepted_once(h) {
        let key = ClientKey::es256("k1");
        let client = client_with_keys(&h, &key, json!({})).await;
        let request = key.sign(&claims(&h, &client, &Pkce::new()));
        assert!(run(&h, &client, &request, &[]).await.redirect_params().contains_key("code"));
        let again = run(&h, &client, &request, &[("state", "s")]).await.redirect_params();
        assert_eq!(again.get("error").map(String::as_str), Some("invalid_request_object"), "{again:?}");
    }

    async fn a_request_object_inside_a_push_is_the_pushed_request(h) {
        let key = ClientKey::es256("k1");
        let client = client_with_keys(&h, &key, json!({})).await;
        let pkce = Pkce::new();
        let request = key.sign(&claims(&h, &client, &pkce));
        let pushed = h.post_as(&client, "/par", &[
            ("request", request.as_str()), ("state", "outer-state"), ("scope", "openid profile"),
        ]).await;
        assert_eq!(pushed.status, 201, "{}", pushed.text);
        let uri = pushed.body["request_uri"].as_str().expect("request_uri");
        let url = format!("{}/authorize?client_id={}&request_uri={}", h.base, client.id,
            url::form_urlencoded::byte_serialize(uri.as_bytes()).collect::<String>());
        let outcome = h.browser(Some("alice")).run(&url, &client.redirect_uri, Consent::Allow).await;
        let params = outcome.redirect_params();
        assert_eq!(params.get("state").map(String::as_str), Some("object-state"));
        let tokens = h.redeem(&client, params.get("code").expect("code"), &pkce.verifier).await;
        assert_eq!(tokens.body["scope"], "openid");
        // A bad object fails the push, as JSON.
        let bad = h.post_as(&client, "/par", &[("request", "not.a.jwt")]).await;
        assert_eq!((bad.status.as_u16(), bad.error()), (400, "invalid_request_object"), "{}", bad.text);
    }

    async fn a_request_object_raced_across_two_servers_is_accepted_exactly_once(h) {
        let key = ClientKey::es256("k1");
        let client = client_with_keys(&h, &key, json!({})).await;
        let (second, _ls) = h.second_server().await;
        let request = key.sign(&claims(&h, &client, &Pkce::new()));
        let mut tasks = Vec::new();
        for i in 0..12 {
            let base = if i % 2 == 0 { h.base.clone() } else { second.clone() };
            let url = authorize_url(&h, &client, &request, &[]).replacen(&h.base, &base, 1);
            let http = h.http();
            tasks.push(tokio::spawn(async move {
                let resp = http.get(url).send().await.expect("authorize");
                resp.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
            }));
        }
        let mut accepted = 0;
        for t in tasks {
            let location = t.await.expect("task");
            if location.contains("error=invalid_request_object") {
                continue;
            }
            assert!(location.contains("/test-login"), "accepted means sent on to sign in: {location}");
            accepted += 1;
        }
        assert_eq!(accepted, 1);
    }

    async fn registration_accepts_only_request_object_algs_it_can_verify(h) {
        let key = ClientKey::es256("k1");
        for alg in ["none", "HS256", "RS512"] {
            let refused = h.ls.create_client(None, json!({
                "redirect_uris": ["https://rp.example/cb"], "jwks": common::jwks(&[&key]),
                "request_object_signing_alg": alg,
            })).await;
            assert!(refused.is_err(), "{alg} accepted");
        }
        let without_keys = h.ls.create_client(None, json!({
            "redirect_uris": ["https://rp.example/cb"], "request_object_signing_alg": "ES256",
        })).await;
        assert!(without_keys.is_err(), "an alg without keys to verify with");
        let ok = h.ls.create_client(None, json!({
            "redirect_uris": ["https://rp.example/cb"], "jwks": common::jwks(&[&key]),
            "request_object_signing_alg": "ES256",
        })).await.expect("registered");
        assert_eq!(ok.metadata.request_object_signing_alg.as_deref(), Some("ES256"));
    }
}
