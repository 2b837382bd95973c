//! DPoP (RFC 9449) at the token endpoint: proofs built here, with key pairs made in the test and
//! signed by `jsonwebtoken`, bind the tokens issued to the proof's key.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{ClientKey, Consent, Harness, Pkce, TestClient};
use lockspire::Clock;
use serde_json::{Value, json};

/// A proof by `key` for `method` at `htu`, issued now, with a fresh `jti`.
fn proof_for(h: &Harness, key: &ClientKey, method: &str, htu: &str) -> String {
    let header = json!({"typ": "dpop+jwt", "alg": alg(key), "jwk": key.public_members()});
    let claims =
        json!({"jti": common::random_b64(16), "htm": method, "htu": htu, "iat": h.clock.now()});
    key.sign_with_header(&header, &claims)
}

fn alg(key: &ClientKey) -> &'static str {
    match key.alg {
        jsonwebtoken::Algorithm::EdDSA => "EdDSA",
        _ => "ES256",
    }
}

/// A proof for `POST /token`.
fn token_proof(h: &Harness, key: &ClientKey) -> String {
    proof_for(h, key, "POST", &h.url("/token"))
}

async fn client_credentials(
    h: &Harness,
    client: &TestClient,
    proof: Option<&str>,
) -> common::Reply {
    let headers: Vec<(&str, &str)> = proof.map(|p| ("DPoP", p)).into_iter().collect();
    h.post_with(
        client,
        "/token",
        &[("grant_type", "client_credentials"), ("scope", "api:read")],
        &headers,
    )
    .await
}

on_both_stores! {
    async fn a_dpop_proof_binds_the_access_token_to_its_key(h) {
        for key in [ClientKey::es256("k1"), ClientKey::eddsa("k2")] {
            for format in ["opaque", "jwt"] {
                let client = h.confidential_client(json!({"access_token_format": format})).await;
                let reply = client_credentials(&h, &client, Some(&token_proof(&h, &key))).await;
                assert_eq!(reply.status, 200, "{}", reply.text);
                assert_eq!(reply.body["token_type"], "DPoP", "RFC 9449 §5");
                let token = reply.body["access_token"].as_str().expect("access_token");
                let introspected = h.post_as(&client, "/introspect", &[("token", token)]).await;
                assert_eq!(introspected.body["cnf"]["jkt"], key.thumbprint().as_str(), "§6.2");
                assert_eq!(introspected.body["token_type"], "DPoP");
                if format == "jwt" {
                    let claims = common::verify_with_jwks(&h, token, h.base.as_str()).await;
                    assert_eq!(claims["cnf"]["jkt"], key.thumbprint().as_str(), "§6.1");
                }
            }
        }
        // Without a proof, a bearer token as before.
        let client = h.confidential_client(json!({})).await;
        let bearer = client_credentials(&h, &client, None).await;
        assert_eq!(bearer.body["token_type"], "Bearer");
        let token = bearer.body["access_token"].as_str().expect("access_token");
        assert!(h.post_as(&client, "/introspect", &[("token", token)]).await.body.get("cnf").is_none());
        let doc = h.discovery().await;
        assert_eq!(doc["dpop_signing_alg_values_supported"], json!(["ES256", "EdDSA", "PS256", "RS256"]));
    }

    async fn every_dpop_proof_rule_is_enforced(h) {
        let client = h.confidential_client(json!({})).await;
        let key = ClientKey::es256("k1");
        let other = ClientKey::es256("k2");
        let now = h.clock.now();
        let token_url = h.url("/token");
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_members()});
        let claims = |jti: &str| json!({"jti": jti, "htm": "POST", "htu": token_url, "iat": now});
        let with = |mut v: Value, name: &str, value: Value| {
            if let Value::Object(m) = &mut v {
                if value.is_null() { m.remove(name); } else { m.insert(name.to_owned(), value); }
            }
            v
        };
        let mut private_jwk = key.public_members();
        private_jwk["d"] = json!(URL_SAFE_NO_PAD.encode([7u8; 32]));
        let unsigned = format!("{}.{}.", URL_SAFE_NO_PAD.encode(json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.public_members()}).to_string()), URL_SAFE_NO_PAD.encode(claims("n1").to_string()));
        let hs256 = {
            let h256 = json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}});
            let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(h256.to_string()), URL_SAFE_NO_PAD.encode(claims("n2").to_string()));
            let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &jsonwebtoken::EncodingKey::from_secret(b"a-shared-secret-of-enough-length").expect("key"), jsonwebtoken::Algorithm::HS256).expect("sign");
            format!("{input}.{sig}")
        };
        let cases: Vec<(&str, String)> = vec![
            ("not a JWT", "garbage".into()),
            ("typ JWT", key.sign_with_header(&with(header.clone(), "typ", json!("JWT")), &claims("a1"))),
            ("no jwk", key.sign_with_header(&with(header.clone(), "jwk", Value::Null), &claims("a2"))),
            ("a private jwk", key.sign_with_header(&with(header.clone(), "jwk", private_jwk), &claims("a3"))),
            ("alg none", unsigned),
            ("a shared-secret alg", hs256),
            ("signed by a key other than its jwk", other.sign_with_header(&header, &claims("a4"))),
            ("htm GET", key.sign_with_header(&header, &with(claims("a5"), "htm", json!("GET")))),
            ("htu of another endpoint", key.sign_with_header(&header, &with(claims("a6"), "htu", json!(h.url("/par"))))),
            ("htu of another host", key.sign_with_header(&header, &with(claims("a7"), "htu", json!("https://elsewhere.example/token")))),
            ("iat two minutes old", key.sign_with_header(&header, &with(claims("a8"), "iat", json!(now - 120)))),
            ("iat two minutes ahead", key.sign_with_header(&header, &with(claims("a9"), "iat", json!(now + 120)))),
            ("no iat", key.sign_with_header(&header, &with(claims("a10"), "iat", Value::Null))),
            ("no jti", key.sign_with_header(&header, &with(claims("a11"), "jti", Value::Null))),
        ];
        for (what, proof) in cases {
            let reply = client_credentials(&h, &client, Some(&proof)).await;
            assert_eq!((reply.status.as_u16(), reply.error()), (400, "invalid_dpop_proof"), "{what}: {}", reply.text);
        }
        // Query and fragment of htu are ignored (§4.3); the proof is then accepted once.
        let proof = key.sign_with_header(&header, &with(claims("q1"), "htu", json!(format!("{token_url}?x=1#f"))));
        assert_eq!(client_credentials(&h, &client, Some(&proof)).await.status, 200);
        let replayed = client_credentials(&h, &client, Some(&proof)).await;
        assert_eq!(replayed.error(), "invalid_dpop_proof", "a jti is accepted once: {}", replayed.text);
        // Two DPoP headers.
        let a = token_proof(&h, &key);
        let b = token_proof(&h, &key);
        let two = h.post_with(&client, "/token", &[("grant_type", "client_credentials")], &[("DPoP", &a), ("DPoP", &b)]).await;
        assert_eq!(two.error(), "invalid_dpop_proof", "{}", two.text);
    }

    async fn a_public_clients_refresh_token_is_bound_to_its_dpop_key(h) {
        let client = h.public_client(json!({})).await;
        let key = ClientKey::es256("k1");
        let (code, verifier) = h.authorize(&client, "alice", "api:read").await;
        let tokens = h.post_with(&client, "/token", &[
            ("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", &client.redirect_uri), ("code_verifier", &verifier),
        ], &[("DPoP", &token_proof(&h, &key))]).await;
        assert_eq!(tokens.status, 200, "{}", tokens.text);
        assert_eq!(tokens.body["token_type"], "DPoP");
        let refresh = tokens.body["refresh_token"].as_str().expect("refresh_token");
        let refresh_with = |proof: Option<String>| {
            let h = &h;
            let client = &client;
            async move {
                let headers: Vec<(&str, String)> = proof.map(|p| ("DPoP", p)).into_iter().collect();
                let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                h.post_with(client, "/token", &[("grant_type", "refresh_token"), ("refresh_token", refresh)], &headers).await
            }
        };
        let without = refresh_with(None).await;
        assert_eq!(without.error(), "invalid_grant", "no proof: {}", without.text);
        let another = refresh_with(Some(token_proof(&h, &ClientKey::es256("k2")))).await;
        assert_eq!(another.error(), "invalid_grant", "another key: {}", another.text);
        let same = refresh_with(Some(token_proof(&h, &key))).await;
        assert_eq!(same.status, 200, "{}", same.text);
        assert_eq!(same.body["token_type"], "DPoP");
    }

    async fn a_confidential_clients_refresh_token_is_bound_by_its_authentication_not_the_key(h) {
        let client = h.confidential_client(json!({})).await;
        let key = ClientKey::es256("k1");
        let (code, verifier) = h.authorize(&client, "alice", "api:read").await;
        let tokens = h.post_with(&client, "/token", &[
            ("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", &client.redirect_uri), ("code_verifier", &verifier),
        ], &[("DPoP", &token_proof(&h, &key))]).await;
        let refresh = tokens.body["refresh_token"].as_str().expect("refresh_token");
        let refreshed = h.post_as(&client, "/token", &[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await;
        assert_eq!(refreshed.status, 200, "RFC 9449 §5: {}", refreshed.text);
        assert_eq!(refreshed.body["token_type"], "Bearer", "no proof now, so a bearer token");
    }

    async fn a_client_registered_for_dpop_bound_tokens_must_send_a_proof(h) {
        let client = h.confidential_client(json!({"dpop_bound_access_tokens": true})).await;
        let without = client_credentials(&h, &client, None).await;
        assert_eq!((without.status.as_u16(), without.error()), (400, "invalid_dpop_proof"), "{}", without.text);
        let with = client_credentials(&h, &client, Some(&token_proof(&h, &ClientKey::es256("k1")))).await;
        assert_eq!(with.body["token_type"], "DPoP", "{}", with.text);
    }

    async fn userinfo_takes_a_dpop_bound_token_only_with_a_proof_of_its_key_and_its_hash(h) {
        let client = h.confidential_client(json!({})).await;
        let key = ClientKey::es256("k1");
        let dpop_token = tokens_with(&h, &client, Some(&key)).await;
        let bearer_token = tokens_with(&h, &client, None).await;
        let userinfo = h.url("/userinfo");
        let call = |scheme: &'static str, token: String, proof: Option<String>| {
            let http = h.http();
            let userinfo = userinfo.clone();
            async move {
                let mut req = http.get(userinfo).header("authorization", format!("{scheme} {token}"));
                if let Some(proof) = proof {
                    req = req.header("DPoP", proof);
                }
                common::Reply::from(req.send().await.expect("userinfo")).await
            }
        };
        let proof = |key: &ClientKey, token: &str, ath: Option<&str>| {
            let header = json!({"typ": "dpop+jwt", "alg": alg(key), "jwk": key.public_members()});
            let ath = ath.map_or_else(|| URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes())), str::to_owned);
            key.sign_with_header(&header, &json!({"jti": common::random_b64(16), "htm": "GET", "htu": userinfo, "iat": h.clock.now(), "ath": ath}))
        };
        // The right key, the token's hash: the claims.
        let ok = call("DPoP", dpop_token.clone(), Some(proof(&key, &dpop_token, None))).await;
        assert_eq!(ok.status, 200, "{}", ok.text);
        assert!(ok.body["sub"].is_string());
        // The scheme is case-insensitive (RFC 9110 §11.1).
        assert_eq!(call("dpop", dpop_token.clone(), Some(proof(&key, &dpop_token, None))).await.status, 200);
        // As a bearer token: refused with a Bearer challenge.
        let as_bearer = call("Bearer", dpop_token.clone(), None).await;
        assert_eq!(as_bearer.status.as_u16(), 401);
        assert!(as_bearer.header("www-authenticate").starts_with("Bearer") && as_bearer.header("www-authenticate").contains("invalid_token"), "{as_bearer:?}");
        let cases: Vec<(&str, &str, String, Option<String>, &str)> = vec![
            ("no proof", "DPoP", dpop_token.clone(), None, "invalid_dpop_proof"),
            ("ath of another token", "DPoP", dpop_token.clone(), Some(proof(&key, &dpop_token, Some("bm90LXRoZS1oYXNo"))), "invalid_dpop_proof"),
            ("a proof of another key", "DPoP", dpop_token.clone(), Some(proof(&ClientKey::es256("k2"), &dpop_token, None)), "invalid_token"),
            ("a bearer token with the DPoP scheme", "DPoP", bearer_token.clone(), Some(proof(&key, &bearer_token, None)), "invalid_token"),
        ];
        for (what, scheme, token, proof, error) in cases {
            let reply = call(scheme, token, proof).await;
            assert_eq!(reply.status.as_u16(), 401, "{what}: {}", reply.text);
            let challenge = reply.header("www-authenticate");
            assert!(challenge.starts_with("DPoP") && challenge.contains(&format!(r#"error="{error}""#)) && challenge.contains("algs="), "{what}: {challenge}");
        }
    }

    async fn a_code_bound_by_dpop_jkt_is_redeemed_only_with_a_proof_of_that_key(h) {
        let client = h.public_client(json!({})).await;
        let key = ClientKey::es256("k1");
        let redeem = |code: String, verifier: String, proof: Option<String>| {
            let (h, client) = (&h, &client);
            async move {
                let headers: Vec<(&str, String)> = proof.map(|p| ("DPoP", p)).into_iter().collect();
                let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                h.post_with(client, "/token", &[
                    ("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", &client.redirect_uri), ("code_verifier", &verifier),
                ], &headers).await
            }
        };
        // dpop_jkt at /authorize (RFC 9449 §10).
        for proof in [None, Some(token_proof(&h, &ClientKey::es256("k2")))] {
            let pkce = Pkce::new();
            let url = h.authorize_url(&client, "api:read", &pkce, &[("dpop_jkt", &key.thumbprint())]);
            let code = h.browser(Some("alice")).run(&url, &client.redirect_uri, Consent::Allow).await.redirect_params().get("code").cloned().expect("code");
            let refused = redeem(code, pkce.verifier.clone(), proof).await;
            assert_eq!(refused.error(), "invalid_grant", "{}", refused.text);
        }
        let pkce = Pkce::new();
        let url = h.authorize_url(&client, "api:read", &pkce, &[("dpop_jkt", &key.thumbprint())]);
        let code = h.browser(Some("alice")).run(&url, &client.redirect_uri, Consent::Allow).await.redirect_params().get("code").cloned().expect("code");
        let ok = redeem(code, pkce.verifier.clone(), Some(token_proof(&h, &key))).await;
        assert_eq!((ok.status.as_u16(), ok.body["token_type"].as_str()), (200, Some("DPoP")), "{}", ok.text);
        // A malformed dpop_jkt is refused at /authorize.
        let url = h.authorize_url(&client, "api:read", &Pkce::new(), &[("dpop_jkt", "not-a-thumbprint")]);
        let params = h.browser(Some("alice")).run(&url, &client.redirect_uri, Consent::Allow).await.redirect_params();
        assert_eq!(params.get("error").map(String::as_str), Some("invalid_request"), "{params:?}");
        // A proof sent with the push binds the code the same way (§10.1).
        let pkce = Pkce::new();
        let par_proof = proof_for(&h, &key, "POST", &h.url("/par"));
        let push = |extra: Vec<(&'static str, String)>, proof: String| {
            let (h, client, pkce) = (&h, &client, &pkce);
            async move {
                let mut params: Vec<(&str, String)> = vec![
                    ("response_type", "code".into()), ("redirect_uri", client.redirect_uri.clone()), ("scope", "api:read".into()),
                    ("code_challenge", pkce.challenge.clone()), ("code_challenge_method", "S256".into()), ("state", "st-123".into()),
                ];
                params.extend(extra);
                let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
                h.post_with(client, "/par", &params, &[("DPoP", &proof)]).await
            }
        };
        let pushed = push(vec![], par_proof).await;
        assert_eq!(pushed.status, 201, "{}", pushed.text);
        let url = format!("{}/authorize?client_id={}&request_uri={}", h.base, client.id,
            url::form_urlencoded::byte_serialize(pushed.body["request_uri"].as_str().expect("uri").as_bytes()).collect::<String>());
        let code = h.browser(Some("alice")).run(&url, &client.redirect_uri, Consent::Allow).await.redirect_params().get("code").cloned().expect("code");
        let unproven = redeem(code, pkce.verifier.clone(), None).await;
        assert_eq!(unproven.error(), "invalid_grant", "{}", unproven.text);
        // A dpop_jkt naming another key than the push's proof is refused.
        let mismatched = push(vec![("dpop_jkt", ClientKey::es256("k3").thumbprint())], proof_for(&h, &key, "POST", &h.url("/par"))).await;
        assert_eq!((mismatched.status.as_u16(), mismatched.error()), (400, "invalid_dpop_proof"), "{}", mismatched.text);
    }

    async fn a_dpop_proof_raced_across_two_servers_is_accepted_exactly_once(h) {
        let client = h.confidential_client(json!({})).await;
        let (second, _ls) = h.second_server().await;
        let key = ClientKey::es256("k1");
        // One proof, its htu the issuer's token endpoint, which both servers serve.
        let proof = token_proof(&h, &key);
        let mut tasks = Vec::new();
        for i in 0..12 {
            let base = if i % 2 == 0 { h.base.clone() } else { second.clone() };
            let http = h.http();
            let (proof, id, secret) = (proof.clone(), client.id.clone(), client.secret.clone().unwrap_or_default());
            tasks.push(tokio::spawn(async move {
                http.post(format!("{base}/token"))
                    .basic_auth(id, Some(secret))
                    .header("DPoP", proof)
                    .form(&[("grant_type", "client_credentials")])
                    .send().await.expect("token").status().as_u16()
            }));
        }
        let mut accepted = 0;
        for t in tasks {
            if t.await.expect("task") == 200 {
                accepted += 1;
            }
        }
        assert_eq!(accepted, 1);
    }
}

/// A proof for `POST /token` carrying `nonce`.
fn token_proof_with_nonce(h: &Harness, key: &ClientKey, nonce: &str) -> String {
    let header = json!({"typ": "dpop+jwt", "alg": alg(key), "jwk": key.public_members()});
    let claims = json!({"jti": common::random_b64(16), "htm": "POST", "htu": h.url("/token"), "iat": h.clock.now(), "nonce": nonce});
    key.sign_with_header(&header, &claims)
}

on_both_stores! {
    async fn a_client_that_requires_dpop_nonces_gets_tokens_only_with_a_current_server_nonce(h) {
        // At the start of a nonce window (they last 120 s), so the steps below cross windows
        // exactly as they say.
        h.clock.advance(120 - h.clock.now().rem_euclid(120));
        let client = h.confidential_client(json!({"require_dpop_nonce": true})).await;
        let key = ClientKey::es256("k1");
        // No nonce: use_dpop_nonce, with the nonce to use (RFC 9449 §8.1).
        let first = client_credentials(&h, &client, Some(&token_proof(&h, &key))).await;
        assert_eq!((first.status.as_u16(), first.error()), (400, "use_dpop_nonce"), "{}", first.text);
        let nonce = first.header("dpop-nonce").to_owned();
        assert!(nonce.len() >= 20, "a DPoP-Nonce header: {first:?}");
        // With it: tokens, and the current nonce again (§8.2).
        let ok = client_credentials(&h, &client, Some(&token_proof_with_nonce(&h, &key, &nonce))).await;
        assert_eq!((ok.status.as_u16(), ok.body["token_type"].as_str()), (200, Some("DPoP")), "{}", ok.text);
        assert_eq!(ok.header("dpop-nonce"), nonce);
        // A made-up nonce, and one past its lifetime, are refused like a missing one.
        let made_up = client_credentials(&h, &client, Some(&token_proof_with_nonce(&h, &key, "bm90LWEtbm9uY2U"))).await;
        assert_eq!(made_up.error(), "use_dpop_nonce", "{}", made_up.text);
        h.clock.advance(121);
        let still = client_credentials(&h, &client, Some(&token_proof_with_nonce(&h, &key, &nonce))).await;
        assert_eq!(still.status, 200, "a nonce outlives its window by one: {}", still.text);
        assert_ne!(still.header("dpop-nonce"), nonce, "the nonce rotates");
        h.clock.advance(120);
        let stale = client_credentials(&h, &client, Some(&token_proof_with_nonce(&h, &key, &nonce))).await;
        assert_eq!(stale.error(), "use_dpop_nonce", "{}", stale.text);
        // A client that does not require them is not asked, but is handed one.
        let relaxed = h.confidential_client(json!({})).await;
        let plain = client_credentials(&h, &relaxed, Some(&token_proof(&h, &key))).await;
        assert_eq!(plain.status, 200, "{}", plain.text);
        assert!(!plain.header("dpop-nonce").is_empty());
        // A request without a proof gets no nonce.
        assert!(client_credentials(&h, &relaxed, None).await.header("dpop-nonce").is_empty());
    }
}

/// A server that requires nonces of every client, at the token endpoint and at userinfo,
/// where the refusal is a 401 DPoP challenge (RFC 9449 §9).
async fn a_server_requiring_dpop_nonces_asks_every_client_and_userinfo_caller(
    backend: common::Backend,
) {
    let h = Harness::start_with(backend, |b| b.require_dpop_nonce(true)).await;
    let client = h.confidential_client(json!({})).await;
    let key = ClientKey::es256("k1");
    let first = client_credentials(&h, &client, Some(&token_proof(&h, &key))).await;
    assert_eq!(first.error(), "use_dpop_nonce", "{}", first.text);
    let nonce = first.header("dpop-nonce").to_owned();
    // The code flow, with the nonce.
    let (code, verifier) = h.authorize(&client, "alice", "openid profile").await;
    let tokens = h
        .post_with(
            &client,
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &client.redirect_uri),
                ("code_verifier", &verifier),
            ],
            &[("DPoP", &token_proof_with_nonce(&h, &key, &nonce))],
        )
        .await;
    assert_eq!(tokens.status, 200, "{}", tokens.text);
    let token = tokens.body["access_token"].as_str().expect("access_token");
    let ath = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        token.as_bytes(),
    ));
    let userinfo = |nonce: Option<&str>| {
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_members()});
        let mut claims = json!({"jti": common::random_b64(16), "htm": "GET", "htu": h.url("/userinfo"), "iat": h.clock.now(), "ath": ath});
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        let proof = key.sign_with_header(&header, &claims);
        let req = h
            .http()
            .get(h.url("/userinfo"))
            .header("authorization", format!("DPoP {token}"))
            .header("DPoP", proof);
        async move { common::Reply::from(req.send().await.expect("userinfo")).await }
    };
    let asked = userinfo(None).await;
    assert_eq!(asked.status.as_u16(), 401, "{}", asked.text);
    assert!(
        asked.header("www-authenticate").starts_with("DPoP")
            && asked
                .header("www-authenticate")
                .contains(r#"error="use_dpop_nonce""#),
        "{asked:?}"
    );
    let nonce = asked.header("dpop-nonce").to_owned();
    let answered = userinfo(Some(&nonce)).await;
    assert_eq!(answered.status, 200, "{}", answered.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_requiring_dpop_nonces_asks_every_client_and_userinfo_caller_sqlite() {
    a_server_requiring_dpop_nonces_asks_every_client_and_userinfo_caller(common::Backend::Sqlite)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_requiring_dpop_nonces_asks_every_client_and_userinfo_caller_postgres() {
    a_server_requiring_dpop_nonces_asks_every_client_and_userinfo_caller(common::Backend::Postgres)
        .await;
}

/// A user's access token for `client` by the code flow, bound to `key` when one is given.
async fn tokens_with(h: &Harness, client: &TestClient, key: Option<&ClientKey>) -> String {
    let (code, verifier) = h.authorize(client, "alice", "openid profile").await;
    let proof = key.map(|k| token_proof(h, k));
    let headers: Vec<(&str, &str)> = proof.as_deref().map(|p| ("DPoP", p)).into_iter().collect();
    let tokens = h
        .post_with(
            client,
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &client.redirect_uri),
                ("code_verifier", &verifier),
            ],
            &headers,
        )
        .await;
    assert_eq!(tokens.status, 200, "{}", tokens.text);
    tokens.body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}
