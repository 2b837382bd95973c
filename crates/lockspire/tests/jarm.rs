//! JWT Secured Authorization Response Mode (JARM): the authorization response as one JWT the
//! server signs for the client, in the query, the fragment or a form post. Verified here with
//! `jsonwebtoken` against the published JWKS.

mod common;

use common::{Consent, Harness, Outcome, Pkce, TestClient};
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
        let doc: Value = h.http().get(h.url("/.well-known/openid-configuration")).send().await.expect("discovery").json().await.expect("json");
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
}
