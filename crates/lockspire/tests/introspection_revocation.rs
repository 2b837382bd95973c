//! Token introspection (RFC 7662) and revocation (RFC 7009).

mod common;

use serde_json::json;

on_both_stores! {
    async fn introspection_describes_own_tokens_and_hides_others(h) {
        let client = h.confidential_client(json!({})).await;
        let other = h.confidential_client(json!({})).await;
        let t = h.tokens(&client, "alice", "openid offline_access").await;
        let at = t["access_token"].as_str().expect("at");
        let r = h.post_as(&client, "/introspect", &[("token", at)]).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("cache-control"), "no-store");
        assert_eq!(r.body["active"], true);
        assert_eq!(r.body["client_id"], client.id);
        assert_eq!(r.body["sub"], "alice");
        assert_eq!(r.body["scope"], "openid offline_access");
        assert_eq!(r.body["token_type"], "Bearer");
        assert_eq!(r.body["iss"], h.base);
        assert!(r.body["exp"].as_i64() > r.body["iat"].as_i64());
        let rt = h.post_as(&client, "/introspect", &[("token", t["refresh_token"].as_str().expect("rt"))]).await;
        assert_eq!(rt.body["active"], true);
        let hidden = h.post_as(&other, "/introspect", &[("token", at)]).await;
        assert_eq!(hidden.body, json!({"active": false}), "another client's token is inactive to the caller");
        let unknown = h.post_as(&client, "/introspect", &[("token", "nope")]).await;
        assert_eq!(unknown.body, json!({"active": false}));
        h.clock.advance(3601);
        assert_eq!(h.post_as(&client, "/introspect", &[("token", at)]).await.body, json!({"active": false}), "expired");
    }

    async fn introspection_requires_client_authentication(h) {
        let public = h.public_client(json!({})).await;
        let r = h.post_as(&public, "/introspect", &[("token", "x")]).await;
        assert_eq!((r.status.as_u16(), r.error()), (401, "invalid_client"));
        let anonymous = common::Reply::from(h.http().post(h.url("/introspect")).form(&[("token", "x")]).send().await.expect("send")).await;
        assert_eq!((anonymous.status.as_u16(), anonymous.error()), (401, "invalid_client"));
        let missing = h.post_as(&h.confidential_client(json!({})).await, "/introspect", &[]).await;
        assert_eq!(missing.error(), "invalid_request");
    }

    async fn revoking_an_access_token_revokes_only_it(h) {
        let client = h.public_client(json!({})).await;
        let t = h.tokens(&client, "alice", "openid offline_access").await;
        let at = t["access_token"].as_str().expect("at");
        let r = h.post_as(&client, "/revoke", &[("token", at), ("token_type_hint", "access_token")]).await;
        assert_eq!(r.status, 200);
        assert_eq!(h.userinfo(at).await.status, 401);
        let refreshed = h.post_as(&client, "/token", &[("grant_type", "refresh_token"), ("refresh_token", t["refresh_token"].as_str().expect("rt"))]).await;
        assert_eq!(refreshed.status, 200, "the refresh token survives: {}", refreshed.body);
    }

    async fn revoking_unknown_tokens_succeeds_and_foreign_tokens_are_refused(h) {
        let client = h.public_client(json!({})).await;
        let other = h.public_client(json!({})).await;
        assert_eq!(h.post_as(&client, "/revoke", &[("token", "never-issued")]).await.status, 200);
        let t = h.tokens(&client, "alice", "openid").await;
        let at = t["access_token"].as_str().expect("at");
        let foreign = h.post_as(&other, "/revoke", &[("token", at)]).await;
        assert_eq!(foreign.status, 400);
        assert_eq!(h.userinfo(at).await.status, 200, "another client cannot revoke it");
        let missing = h.post_as(&client, "/revoke", &[]).await;
        assert_eq!(missing.error(), "invalid_request");
    }
}
