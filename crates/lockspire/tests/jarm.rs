//! JWT Secured Authorization Response Mode (JARM): the authorization response as one JWT the
//! server signs for the client, in the query, the fragment or a form post. Verified here with
//! `jsonwebtoken` against the published JWKS; encrypted responses are decrypted with `josekit`.

mod common;

use common::{Consent, EncryptionKey, Harness, JWE_ALGS, JWE_ENCS, Outcome, Pkce, TestClient};
use lockspire::Clock;
use serde_json::{Value, json};

/// The `response` JWT a flow ended with, whichever way it travelled.
fn response_jwt(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Redirect(_) => {
            let params = outcome.redirect_params();
            assert_eq!(
                params.keys().collect::<Vec<_>>(),
                vec!["response"],
                "nothing travels beside the JWT: {params:?}"
            );
            params["response"].clone()
        }
        Outcome::Page(status, html) => {
            assert_eq!(status.as_u16(), 200, "{html}");
            assert!(!html.contains("name=\"code\""), "{html}");
            common::hidden_field(html, "response").expect("a form field named response")
        }
        other => panic!("expected a response, got {other:?}"),
    }
}

async fn flow(
    h: &Harness,
    client: &TestClient,
    pkce: &Pkce,
    extra: &[(&str, &str)],
    consent: Consent,
) -> Outcome {
    let url = h.authorize_url(client, "openid", pkce, extra);
    h.browser(Some("alice"))
        .run(&url, &client.redirect_uri, consent)
        .await
}

on_both_stores! {
    async fn every_jarm_mode_carries_the_response_as_one_signed_jwt(h) {
        let client = h.confidential_client(json!({})).await;
        for mode in ["jwt", "query.jwt", "fragment.jwt", "form_post.jwt"] {
            let pkce = Pkce::new();
            let outcome = flow(&h, &client, &pkce, &[("response_mode", mode)], Consent::Allow).await;
            if let Outcome::Redirect(url) = &outcome {
                let in_fragment = url.fragment().is_some();
                assert_eq!(in_fragment, mode == "fragment.jwt", "{mode}: {url}");
            }
            let jwt = response_jwt(&outcome);
            let (header, _) = common::jwt_parts(&jwt);
            assert_eq!(header["alg"], "RS256", "{mode}: JARM's default");
            let claims = common::verify_with_jwks(&h, &jwt, &client.id).await;
            assert_eq!(claims["iss"], h.base.as_str(), "{mode}");
            assert_eq!(claims["state"], "st-123", "{mode}");
            let exp = claims["exp"].as_i64().expect("exp");
            let lives = exp - h.clock.now();
            assert!((1..=600).contains(&lives), "{mode}: a short-lived response ({lives} s)");
            let code = claims["code"].as_str().expect("the code is inside");
            let tokens = h.redeem(&client, code, &pkce.verifier).await;
            assert_eq!(tokens.status, 200, "{mode}: {}", tokens.text);
        }
        let doc: Value = h.discovery().await;
        for mode in ["jwt", "query.jwt", "fragment.jwt", "form_post.jwt"] {
            assert!(doc["response_modes_supported"].as_array().expect("modes").iter().any(|m| m == mode), "{mode}");
        }
        assert!(doc["authorization_signing_alg_values_supported"].as_array().expect("algs").iter().any(|a| a == "ES256"));
    }

    async fn a_client_gets_its_registered_jarm_alg_and_registration_refuses_others(h) {
        let client = h.confidential_client(json!({"authorization_signed_response_alg": "ES256"})).await;
        let outcome = flow(&h, &client, &Pkce::new(), &[("response_mode", "query.jwt")], Consent::Allow).await;
        let jwt = response_jwt(&outcome);
        assert_eq!(common::jwt_parts(&jwt).0["alg"], "ES256");
        common::verify_with_jwks(&h, &jwt, &client.id).await;
        for alg in ["none", "HS256"] {
            let refused = h.ls.create_client(None, json!({
                "redirect_uris": ["https://rp.example/cb"], "authorization_signed_response_alg": alg,
            })).await;
            assert!(refused.is_err(), "{alg} accepted");
        }
    }

    async fn errors_after_the_redirect_is_verified_are_jarm_wrapped_too(h) {
        let client = h.confidential_client(json!({})).await;
        let pkce = Pkce::new();
        let url = h.authorize_url(&client, "openid not-a-scope", &pkce, &[("response_mode", "query.jwt")]);
        let outcome = h.browser(Some("alice")).run(&url, &client.redirect_uri, Consent::Allow).await;
        let claims = common::verify_with_jwks(&h, &response_jwt(&outcome), &client.id).await;
        assert_eq!(claims["error"], "invalid_scope");
        assert_eq!(claims["state"], "st-123");
        assert!(claims.get("code").is_none());
        // The user's refusal travels the same way.
        let denied = flow(&h, &client, &pkce, &[("response_mode", "form_post.jwt")], Consent::Deny).await;
        let claims = common::verify_with_jwks(&h, &response_jwt(&denied), &client.id).await;
        assert_eq!(claims["error"], "access_denied");
    }

    async fn jarm_responses_are_encrypted_to_the_key_the_client_registered(h) {
        let rsa = EncryptionKey::rsa("rp-rsa");
        let ec = EncryptionKey::ec("rp-ec");
        let jwks = json!({"keys": [rsa.public, ec.public]});
        for (i, alg) in JWE_ALGS.into_iter().enumerate() {
            // Each alg once with each enc across the loop, and the spec's default enc once.
            let enc = JWE_ENCS.get(i).copied();
            let mut meta = json!({"jwks": jwks, "authorization_encrypted_response_alg": alg});
            if let Some(enc) = enc {
                meta["authorization_encrypted_response_enc"] = json!(enc);
            }
            let client = h.confidential_client(meta).await;
            for mode in ["query.jwt", "form_post.jwt"] {
                let pkce = Pkce::new();
                let outcome = flow(&h, &client, &pkce, &[("response_mode", mode)], Consent::Allow).await;
                let jwe = response_jwt(&outcome);
                assert_eq!(jwe.split('.').count(), 5, "{alg} {mode}: a compact JWE");
                let key = if alg.starts_with("RSA") { &rsa } else { &ec };
                let (nested, header) = key.decrypt(&jwe, alg);
                assert_eq!(header.content_encryption(), Some(enc.unwrap_or("A128CBC-HS256")), "{alg}");
                assert_eq!(header.content_type(), Some("JWT"), "a nested JWT (RFC 7519 §5.2)");
                let jwt = String::from_utf8(nested).expect("utf-8");
                let claims = common::verify_with_jwks(&h, &jwt, &client.id).await;
                assert_eq!(claims["state"], "st-123");
                let tokens = h.redeem(&client, claims["code"].as_str().expect("code"), &pkce.verifier).await;
                assert_eq!(tokens.status, 200, "{alg} {mode}: {}", tokens.text);
            }
        }
        // The user's refusal is encrypted the same way.
        let client = h.confidential_client(json!({"jwks": jwks, "authorization_encrypted_response_alg": "ECDH-ES"})).await;
        let denied = flow(&h, &client, &Pkce::new(), &[("response_mode", "fragment.jwt")], Consent::Deny).await;
        let (nested, _) = ec.decrypt(&response_jwt(&denied), "ECDH-ES");
        let claims = common::verify_with_jwks(&h, &String::from_utf8(nested).expect("utf-8"), &client.id).await;
        assert_eq!(claims["error"], "access_denied");
        let doc: Value = h.discovery().await;
        assert_eq!(doc["authorization_encryption_alg_values_supported"], json!(JWE_ALGS));
        assert_eq!(doc["authorization_encryption_enc_values_supported"].as_array().map(Vec::len), Some(JWE_ENCS.len()));
    }

    async fn registration_checks_jarm_encryption_metadata(h) {
        let ec = EncryptionKey::ec("rp-ec");
        let jwks = json!({"keys": [ec.public]});
        for (what, meta) in [
            ("RSA1_5", json!({"jwks": jwks, "authorization_encrypted_response_alg": "RSA1_5"})),
            ("dir", json!({"jwks": jwks, "authorization_encrypted_response_alg": "dir"})),
            ("an unknown enc", json!({"jwks": jwks, "authorization_encrypted_response_alg": "ECDH-ES", "authorization_encrypted_response_enc": "A192GCM"})),
            ("enc without alg", json!({"jwks": jwks, "authorization_encrypted_response_enc": "A128GCM"})),
            ("no keys to encrypt to", json!({"authorization_encrypted_response_alg": "ECDH-ES"})),
            ("only a key of another type", json!({"jwks": jwks, "authorization_encrypted_response_alg": "RSA-OAEP-256"})),
            ("only a signing key", json!({"jwks": common::jwks(&[&common::ClientKey::es256("sig")]), "authorization_encrypted_response_alg": "ECDH-ES"})),
            ("ID token encryption, which is not performed", json!({"id_token_encrypted_response_alg": "RSA-OAEP-256"})),
            ("userinfo encryption, which is not performed", json!({"userinfo_encrypted_response_alg": "RSA-OAEP-256"})),
        ] {
            let mut m = meta.clone();
            m["redirect_uris"] = json!(["https://rp.example/cb"]);
            assert!(h.ls.create_client(None, m).await.is_err(), "{what} accepted");
        }
        // The registration says which enc will be used when only the alg was given.
        let registered = h.ls.create_client(None, json!({
            "redirect_uris": ["https://rp.example/cb"], "jwks": jwks, "authorization_encrypted_response_alg": "ECDH-ES",
        })).await.expect("registered");
        assert_eq!(registered.metadata.authorization_encrypted_response_enc.as_deref(), Some("A128CBC-HS256"));
    }
}

/// A client that publishes its encryption key at a `jwks_uri` gets responses encrypted to it;
/// the set is fetched through the guarded fetcher (loopback http in dev mode only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jarm_responses_are_encrypted_to_a_key_published_at_the_clients_jwks_uri() {
    let h = Harness::start_with(common::Backend::Sqlite, |b| b.dev_mode(true)).await;
    let ec = EncryptionKey::ec("published");
    let jwks_uri =
        serve_jwks(json!({"keys": [common::ClientKey::es256("sig").jwk, ec.public]})).await;
    let client = h
        .confidential_client(json!({"jwks_uri": jwks_uri, "authorization_encrypted_response_alg": "ECDH-ES+A128KW", "authorization_encrypted_response_enc": "A256GCM"}))
        .await;
    let pkce = Pkce::new();
    let outcome = flow(
        &h,
        &client,
        &pkce,
        &[("response_mode", "query.jwt")],
        Consent::Allow,
    )
    .await;
    let (nested, header) = ec.decrypt(&response_jwt(&outcome), "ECDH-ES+A128KW");
    assert_eq!(
        header.key_id(),
        Some("published"),
        "the key the client published"
    );
    let claims =
        common::verify_with_jwks(&h, &String::from_utf8(nested).expect("utf-8"), &client.id).await;
    let tokens = h
        .redeem(
            &client,
            claims["code"].as_str().expect("code"),
            &pkce.verifier,
        )
        .await;
    assert_eq!(tokens.status, 200, "{}", tokens.text);
}

/// A client whose `jwks_uri` holds no key for its registered encryption alg is stopped at
/// `/authorize`, before sign-in and consent, on an error page: no response could reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_uri_without_a_key_for_the_encryption_alg_is_refused_before_the_user_is_asked() {
    let h = Harness::start_with(common::Backend::Sqlite, |b| b.dev_mode(true)).await;
    let ec = EncryptionKey::ec("ec-only");
    let jwks_uri = serve_jwks(json!({"keys": [ec.public]})).await;
    let client = h
        .confidential_client(
            json!({"jwks_uri": jwks_uri, "authorization_encrypted_response_alg": "RSA-OAEP-256"}),
        )
        .await;
    let outcome = flow(
        &h,
        &client,
        &Pkce::new(),
        &[("response_mode", "query.jwt")],
        Consent::Allow,
    )
    .await;
    let Outcome::Page(status, html) = &outcome else {
        panic!("an error page, not {outcome:?}")
    };
    assert_eq!(status.as_u16(), 400);
    assert!(
        html.contains("no key to encrypt its responses to"),
        "{html}"
    );
    // A push says so in JSON.
    let pkce = Pkce::new();
    let pushed = h
        .post_as(
            &client,
            "/par",
            &[
                ("response_type", "code"),
                ("redirect_uri", &client.redirect_uri),
                ("scope", "openid"),
                ("code_challenge", &pkce.challenge),
                ("code_challenge_method", "S256"),
                ("response_mode", "jwt"),
            ],
        )
        .await;
    assert_eq!(
        (pushed.status.as_u16(), pushed.error()),
        (400, "invalid_request"),
        "{}",
        pushed.text
    );
}

/// Serves `set` at a loopback `/jwks` and returns its URL.
async fn serve_jwks(set: Value) -> String {
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let set = set.clone();
            async move { axum::Json(set) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/jwks", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}
