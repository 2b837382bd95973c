//! The `claims` request parameter (OIDC Core §5.5) releases a standard claim only with the
//! user's consent: through a granted scope, or through a consent page that named the claim.

mod common;

use common::{Consent, Outcome, Pkce, jwt_parts};
use serde_json::json;

const EXTRA_CLAIMS: &str =
    r#"{"userinfo":{"email":null,"address":{"essential":true}},"id_token":{"email":null}}"#;

/// A browser in which alice is signed in at the host.
async fn signed_in_browser(h: &common::Harness) -> common::Browser {
    let browser = h.browser(Some("alice"));
    browser
        .client
        .get(format!("{}/test-signin?user=alice&return_to=/jwks", h.base))
        .send()
        .await
        .expect("sign in");
    browser
}

on_both_stores! {
    async fn claims_beyond_the_granted_scopes_are_released_only_after_the_user_approves_them(h) {
        let client = h.public_client(json!({})).await;
        // Approved for openid alone, and remembered.
        let tokens = h.tokens(&client, "alice", "openid").await;
        let info = h.userinfo(tokens["access_token"].as_str().expect("access token")).await;
        assert!(info.body.get("email").is_none(), "{}", info.body);

        let browser = signed_in_browser(&h).await;
        let pkce = Pkce::new();
        // prompt=none may show no page, and nobody approved these claims.
        let silent = h.authorize_url(&client, "openid", &pkce, &[("claims", EXTRA_CLAIMS), ("prompt", "none")]);
        let outcome = browser.run(&silent, &client.redirect_uri, Consent::Stop).await;
        assert_eq!(outcome.redirect_params().get("error").map(String::as_str), Some("consent_required"));

        // Otherwise the consent page asks, naming each claim.
        let asking = h.authorize_url(&client, "openid", &pkce, &[("claims", EXTRA_CLAIMS)]);
        let Outcome::ConsentPage(_, html) = browser.run(&asking, &client.redirect_uri, Consent::Stop).await else {
            panic!("the consent page is shown")
        };
        assert!(html.contains("<strong>email</strong>") && html.contains("<strong>address</strong>"), "{html}");

        // Approved: the claims are released where they were asked for.
        let outcome = browser.run(&asking, &client.redirect_uri, Consent::Allow).await;
        let code = outcome.redirect_params().get("code").cloned().expect("a code");
        let reply = h.redeem(&client, &code, &pkce.verifier).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let (_, id_claims) = jwt_parts(reply.body["id_token"].as_str().expect("id token"));
        assert_eq!(id_claims["email"], "alice@example.com");
        let info = h.userinfo(reply.body["access_token"].as_str().expect("access token")).await;
        assert_eq!(info.body["email"], "alice@example.com");
        // The host supplies no address: an essential claim it cannot supply is simply absent.
        assert!(info.body.get("address").is_none());

        // The approval is remembered: the same request now passes without a page.
        let pkce = Pkce::new();
        let silent = h.authorize_url(&client, "openid", &pkce, &[("claims", EXTRA_CLAIMS), ("prompt", "none")]);
        let outcome = browser.run(&silent, &client.redirect_uri, Consent::Stop).await;
        assert!(outcome.redirect_params().contains_key("code"), "{outcome:?}");
    }

    async fn a_claims_request_within_the_granted_scopes_needs_no_new_consent(h) {
        let client = h.public_client(json!({})).await;
        h.tokens(&client, "alice", "openid email").await;
        let browser = signed_in_browser(&h).await;
        let pkce = Pkce::new();
        let url = h.authorize_url(&client, "openid email", &pkce, &[("claims", r#"{"userinfo":{"email":null,"nickname_of_the_host":null}}"#), ("prompt", "none")]);
        let outcome = browser.run(&url, &client.redirect_uri, Consent::Stop).await;
        assert!(outcome.redirect_params().contains_key("code"), "{outcome:?}");
    }
}
