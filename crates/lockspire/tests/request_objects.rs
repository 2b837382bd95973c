//! Request objects (RFC 9101): signed authorization requests by value at `/authorize` and inside
//! a push to `/par`. Objects are signed by `jsonwebtoken`, independently of Lockspire.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{
    ClientKey, Consent, EncryptionKey, Harness, JWE_ALGS, JWE_ENCS, Outcome, Pkce, TestClient,
};
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

/// The server's published encryption key for `alg` (RFC 7517 `use: enc`), read from its JWKS.
async fn server_encryption_key(h: &Harness, alg: &str) -> Value {
    let jwks: Value = h.jwks().await;
    let kty = if alg.starts_with("RSA") { "RSA" } else { "EC" };
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["use"] == "enc" && k["kty"] == kty)
        .unwrap_or_else(|| panic!("no {kty} encryption key in {jwks}"))
        .clone()
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
        let doc: Value = h.discovery().await;
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
            ("claims as a string of JSON", key.sign(&with(good.clone(), "claims", json!(r#"{"userinfo":{}}"#))), &client),
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
        // The client is told which rule its object broke.
        assert!(again.get("error_description").is_some_and(|d| d.contains("replayed")), "{again:?}");
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

    async fn a_signed_request_object_nested_in_a_jwe_to_the_server_is_the_request(h) {
        let key = ClientKey::es256("k1");
        let client = client_with_keys(&h, &key, json!({})).await;
        // Every alg with every enc, encrypted by josekit to the key the server publishes.
        for alg in JWE_ALGS {
            let to = server_encryption_key(&h, alg).await;
            for enc in JWE_ENCS {
                let pkce = Pkce::new();
                let signed = key.sign(&claims(&h, &client, &pkce));
                let request = common::encrypt_to(&to, alg, enc, Some("JWT"), signed.as_bytes());
                let outcome = run(&h, &client, &request, &[("state", "query-state")]).await;
                let params = outcome.redirect_params();
                assert_eq!(params.get("state").map(String::as_str), Some("object-state"), "{alg} {enc}: {params:?}");
                let tokens = h.redeem(&client, params.get("code").expect("code"), &pkce.verifier).await;
                assert_eq!(tokens.status, 200, "{alg} {enc}: {}", tokens.text);
            }
        }
        // Inside a push too.
        let pkce = Pkce::new();
        let to = server_encryption_key(&h, "ECDH-ES").await;
        let request = common::encrypt_to(&to, "ECDH-ES", "A256GCM", Some("JWT"), key.sign(&claims(&h, &client, &pkce)).as_bytes());
        let pushed = h.post_as(&client, "/par", &[("request", request.as_str())]).await;
        assert_eq!(pushed.status, 201, "{}", pushed.text);
        let doc: Value = h.discovery().await;
        assert_eq!(doc["request_object_encryption_alg_values_supported"], json!(JWE_ALGS));
        let encs = doc["request_object_encryption_enc_values_supported"].as_array().expect("encs");
        assert!(JWE_ENCS.iter().all(|e| encs.iter().any(|x| x == e)), "{encs:?}");
    }

    async fn an_encrypted_request_object_that_does_not_decrypt_to_a_signed_object_is_invalid(h) {
        let key = ClientKey::es256("k1");
        let client = client_with_keys(&h, &key, json!({})).await;
        let pkce = Pkce::new();
        let good = claims(&h, &client, &pkce);
        let rsa = server_encryption_key(&h, "RSA-OAEP-256").await;
        let ec = server_encryption_key(&h, "ECDH-ES").await;
        let stranger = EncryptionKey::ec("not-the-server");
        let with_kid = |jwk: &Value, kid: &str| { let mut k = jwk.clone(); k["kid"] = json!(kid); k };
        let tampered = {
            let jwe = common::encrypt_to(&rsa, "RSA-OAEP-256", "A128GCM", None, key.sign(&good).as_bytes());
            let mut parts: Vec<String> = jwe.split('.').map(str::to_owned).collect();
            let mut ciphertext = URL_SAFE_NO_PAD.decode(&parts[3]).expect("b64");
            ciphertext[0] ^= 1;
            parts[3] = URL_SAFE_NO_PAD.encode(ciphertext);
            parts.join(".")
        };
        let signed = |jti: &str| key.sign(&with(good.clone(), "jti", json!(jti)));
        let cases: Vec<(&str, String)> = vec![
            ("a tampered ciphertext", tampered),
            ("a key the server does not hold", common::encrypt_to(&stranger.public, "ECDH-ES", "A128GCM", None, signed("j1").as_bytes())),
            ("the server's key under another kid", common::encrypt_to(&with_kid(&ec, "no-such-kid"), "ECDH-ES", "A128GCM", None, signed("j2").as_bytes())),
            ("RSA1_5, never accepted", common::encrypt_to(&rsa, "RSA1_5", "A128CBC-HS256", None, signed("j3").as_bytes())),
            ("an encrypted but unsigned request", common::encrypt_to(&ec, "ECDH-ES+A128KW", "A128GCM", None, good.to_string().as_bytes())),
            ("an encrypted alg none object", common::encrypt_to(&ec, "ECDH-ES", "A256GCM", Some("JWT"), format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), URL_SAFE_NO_PAD.encode(good.to_string())).as_bytes())),
            ("a signed object from another key, encrypted properly", common::encrypt_to(&ec, "ECDH-ES", "A128GCM", Some("JWT"), ClientKey::es256("k1").sign(&good).as_bytes())),
        ];
        for (what, request) in cases {
            let outcome = run(&h, &client, &request, &[("state", "query-state")]).await;
            let params = outcome.redirect_params();
            assert_eq!(params.get("error").map(String::as_str), Some("invalid_request_object"), "{what}: {params:?}");
            assert!(!params.contains_key("code"), "{what}");
        }
    }

    async fn a_rotated_encryption_key_decrypts_from_publication_until_it_leaves_the_key_set(h) {
        let key = ClientKey::es256("k1");
        let client = client_with_keys(&h, &key, json!({})).await;
        let op = h.ls.operator();
        let old = server_encryption_key(&h, "ECDH-ES").await;
        let upcoming = op.generate_key(lockspire::jose::KeyAlg::Decrypt(lockspire::jose::EncryptionKeyType::EcP256)).await.expect("generate");
        assert_eq!(upcoming.alg, "ECDH-ES");
        let jwks: Value = h.jwks().await;
        let new = jwks["keys"].as_array().expect("keys").iter().find(|k| k["kid"] == upcoming.kid.as_str()).expect("published at once").clone();
        assert_eq!(new["use"], "enc");
        // A client that saw the new key may use it before it is active, and the old one still works.
        for to in [&new, &old] {
            let pkce = Pkce::new();
            let request = common::encrypt_to(to, "ECDH-ES+A256KW", "A256CBC-HS512", Some("JWT"), key.sign(&claims(&h, &client, &pkce)).as_bytes());
            assert!(run(&h, &client, &request, &[]).await.redirect_params().contains_key("code"), "{to}");
        }
        h.clock.advance(lockspire::PUBLISH_BEFORE_USE + 1);
        op.activate_key(&upcoming.kid).await.expect("activate");
        let old_kid = old["kid"].as_str().expect("kid");
        let keys = op.keys().await.expect("keys");
        let old_info = keys.iter().find(|k| k.kid == old_kid).expect("old key");
        let lockspire::KeyState::Retiring { until } = old_info.state else { panic!("{:?}", old_info.state) };
        // Retiring: still decrypts. Retired: gone from JWKS and no longer decrypts.
        let pkce = Pkce::new();
        let request = common::encrypt_to(&old, "ECDH-ES", "A128GCM", Some("JWT"), key.sign(&claims(&h, &client, &pkce)).as_bytes());
        assert!(run(&h, &client, &request, &[]).await.redirect_params().contains_key("code"));
        h.clock.advance(until - h.clock.now() + 1);
        op.reload_keys().await.expect("reload");
        let pkce = Pkce::new();
        let request = common::encrypt_to(&old, "ECDH-ES", "A128GCM", Some("JWT"), key.sign(&claims(&h, &client, &pkce)).as_bytes());
        let params = run(&h, &client, &request, &[("state", "s")]).await.redirect_params();
        assert_eq!(params.get("error").map(String::as_str), Some("invalid_request_object"), "{params:?}");
    }

    async fn registration_checks_the_request_object_encryption_it_declares(h) {
        let key = ClientKey::es256("k1");
        for (field, value) in [("request_object_encryption_alg", "RSA1_5"), ("request_object_encryption_alg", "dir"), ("request_object_encryption_enc", "A128GCM")] {
            let refused = h.ls.create_client(None, json!({
                "redirect_uris": ["https://rp.example/cb"], "jwks": common::jwks(&[&key]), field: value,
            })).await;
            assert!(refused.is_err(), "{field} {value} accepted");
        }
        let ok = h.ls.create_client(None, json!({
            "redirect_uris": ["https://rp.example/cb"], "jwks": common::jwks(&[&key]),
            "request_object_encryption_alg": "ECDH-ES", "request_object_encryption_enc": "A256GCM",
        })).await.expect("registered");
        assert_eq!(ok.metadata.request_object_encryption_alg.as_deref(), Some("ECDH-ES"));
    }
}
