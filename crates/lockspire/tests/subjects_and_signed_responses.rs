//! Pairwise subjects (OIDC Core §8), signed userinfo (OIDC Core §5.3.2) and JWT introspection
//! responses (RFC 9701).

mod common;

use common::{Consent, Pkce, Reply};
use serde_json::json;

on_both_stores! {
    async fn pairwise_subjects_differ_per_sector_and_agree_across_endpoints(h) {
        let a = h.confidential_client(json!({"subject_type": "pairwise", "access_token_format": "jwt"})).await;
        let mut b = h.confidential_client(json!({"subject_type": "pairwise", "redirect_uris": ["https://other.example/cb"]})).await;
        b.redirect_uri = "https://other.example/cb".into();
        let public = h.confidential_client(json!({})).await;
        let ta = h.tokens(&a, "alice", "openid offline_access").await;
        let tb = h.tokens(&b, "alice", "openid").await;
        let tp = h.tokens(&public, "alice", "openid").await;
        let sub = |t: &serde_json::Value| common::jwt_parts(t["id_token"].as_str().expect("id")).1["sub"].as_str().expect("sub").to_owned();
        let (sa, sb, sp) = (sub(&ta), sub(&tb), sub(&tp));
        assert_eq!(sp, "alice");
        assert_ne!(sa, "alice");
        assert_ne!(sa, sb, "different sectors cannot correlate the user");
        let a_again = h.tokens(&a, "alice", "openid").await;
        assert_eq!(sub(&a_again), sa, "stable for a sector");
        let at = ta["access_token"].as_str().expect("at");
        assert_eq!(h.userinfo(at).await.body["sub"], sa);
        assert_eq!(h.post_as(&a, "/introspect", &[("token", at)]).await.body["sub"], sa);
        assert_eq!(common::jwt_parts(at).1["sub"], sa, "JWT access token uses the pairwise sub");
        // An id_token_hint carrying the pairwise sub matches the signed-in user.
        let hint = ta["id_token"].as_str().expect("id");
        let url = h.authorize_url(&a, "openid", &Pkce::new(), &[("id_token_hint", hint), ("prompt", "none")]);
        let outcome = h.browser(Some("alice")).run(&format!("{}/test-signin?user=alice&return_to={}", h.base,
            url::form_urlencoded::byte_serialize(url.as_bytes()).collect::<String>()), &a.redirect_uri, Consent::Allow).await;
        assert!(outcome.redirect_params().contains_key("code"), "{outcome:?}");
    }

    async fn pairwise_registration_needs_one_redirect_host(h) {
        let bad = h.ls.create_client(None, json!({
            "subject_type": "pairwise",
            "redirect_uris": ["https://a.example/cb", "https://b.example/cb"],
        })).await;
        assert_eq!(bad.err().map(|e| e.code().as_str()), Some("invalid_client_metadata"));
    }

    async fn signed_userinfo_is_a_jws_for_the_client(h) {
        let client = h.confidential_client(json!({"userinfo_signed_response_alg": "ES256"})).await;
        let t = h.tokens(&client, "alice", "openid email").await;
        let resp = h.userinfo(t["access_token"].as_str().expect("at")).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-type"), "application/jwt");
        let claims = common::verify_response_with_jwks(&h, &resp.text, &client.id).await;
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["email"], "alice@example.com");
    }

    async fn introspection_answers_as_a_signed_jwt_when_asked(h) {
        let client = h.confidential_client(json!({})).await;
        let t = h.tokens(&client, "alice", "openid").await;
        let resp = Reply::from(h.http().post(h.url("/introspect"))
            .basic_auth(&client.id, client.secret.as_deref())
            .header("accept", "application/token-introspection+jwt")
            .form(&[("token", t["access_token"].as_str().expect("at"))])
            .send().await.expect("send")).await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-type"), "application/token-introspection+jwt");
        let (header, _) = common::jwt_parts(&resp.text);
        assert_eq!(header["typ"], "token-introspection+jwt");
        let claims = common::verify_response_with_jwks(&h, &resp.text, &client.id).await;
        assert_eq!(claims["token_introspection"]["active"], true);
        assert_eq!(claims["token_introspection"]["sub"], "alice");
    }
}
