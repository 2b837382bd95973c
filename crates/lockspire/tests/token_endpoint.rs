//! Refresh rotation, client credentials, client authentication and access token formats
//! (RFC 6749 §2.3, §4.4, §5.2, §6; RFC 9700 §4.14; RFC 9068; RFC 8707).

mod common;

use serde_json::json;

async fn refresh(
    h: &common::Harness,
    c: &common::TestClient,
    rt: &str,
    extra: &[(&str, &str)],
) -> common::Reply {
    let mut params = vec![("grant_type", "refresh_token"), ("refresh_token", rt)];
    params.extend_from_slice(extra);
    h.post_as(c, "/token", &params).await
}

on_both_stores! {
    async fn refresh_rotates_and_reuse_of_a_rotated_token_revokes_the_family(h) {
        let client = h.public_client(json!({})).await;
        let t0 = h.tokens(&client, "alice", "openid offline_access").await;
        let rt0 = t0["refresh_token"].as_str().expect("rt0").to_owned();
        let r1 = refresh(&h, &client, &rt0, &[]).await;
        assert_eq!(r1.status, 200, "{}", r1.body);
        assert_eq!(r1.header("cache-control"), "no-store");
        let rt1 = r1.body["refresh_token"].as_str().expect("rt1").to_owned();
        let at1 = r1.body["access_token"].as_str().expect("at1").to_owned();
        assert_ne!(rt0, rt1, "rotation issues a new refresh token");
        assert!(r1.body["id_token"].is_string());
        assert_eq!(h.userinfo(&at1).await.status, 200);
        // Reusing rt0 (already rotated) is theft: the whole family dies.
        let reuse = refresh(&h, &client, &rt0, &[]).await;
        assert_eq!(reuse.error(), "invalid_grant");
        assert_eq!(refresh(&h, &client, &rt1, &[]).await.error(), "invalid_grant", "the newest refresh token is revoked too");
        assert_eq!(h.userinfo(&at1).await.status, 401, "access tokens of the family are revoked");
        assert_eq!(h.userinfo(t0["access_token"].as_str().expect("at0")).await.status, 401);
    }

    async fn refresh_scope_can_narrow_but_never_widen(h) {
        let client = h.public_client(json!({})).await;
        let t = h.tokens(&client, "alice", "openid email offline_access").await;
        let rt = t["refresh_token"].as_str().expect("rt").to_owned();
        let wider = refresh(&h, &client, &rt, &[("scope", "openid email profile")]).await;
        assert_eq!(wider.error(), "invalid_scope");
        let narrow = refresh(&h, &client, &rt, &[("scope", "openid")]).await;
        assert_eq!(narrow.status, 200, "a refused widening did not consume the token: {}", narrow.body);
        assert_eq!(narrow.body["scope"], "openid");
        let info = h.userinfo(narrow.body["access_token"].as_str().expect("at")).await;
        assert!(info.body.get("email").is_none(), "narrowed access token lost email");
        // The family keeps its original scope.
        let rt2 = narrow.body["refresh_token"].as_str().expect("rt2").to_owned();
        let again = refresh(&h, &client, &rt2, &[("scope", "openid email")]).await;
        assert_eq!(again.status, 200, "{}", again.body);
    }

    async fn disabled_client_is_refused_everywhere_and_its_tokens_are_suspended_until_enabled(h) {
        let client = h.confidential_client(json!({})).await;
        let t = h.tokens(&client, "alice", "openid offline_access").await;
        let at = t["access_token"].as_str().expect("at").to_owned();
        let rt = t["refresh_token"].as_str().expect("rt").to_owned();
        assert!(h.ls.disable_client(&client.id).await.expect("disable"));
        assert_eq!(h.userinfo(&at).await.status, 401);
        let r = refresh(&h, &client, &rt, &[]).await;
        assert_eq!((r.status.as_u16(), r.error()), (401, "invalid_client"));
        let cc = h.post_as(&client, "/token", &[("grant_type", "client_credentials")]).await;
        assert_eq!(cc.error(), "invalid_client");
        let intro = h.post_as(&client, "/introspect", &[("token", &at)]).await;
        assert_eq!(intro.error(), "invalid_client");
        let resp = h.http().get(h.authorize_url(&client, "openid", &common::Pkce::new(), &[])).send().await.expect("get");
        assert_eq!(resp.status(), 400);
        assert!(resp.headers().get("location").is_none());
        // Disabling is a suspension: enabling the client again restores its live tokens.
        assert!(h.ls.enable_client(&client.id).await.expect("enable"));
        assert_eq!(h.userinfo(&at).await.status, 200, "tokens are only suspended while the client is disabled");
    }

    async fn revoked_grant_stops_refresh(h) {
        let client = h.public_client(json!({})).await;
        let t = h.tokens(&client, "alice", "openid offline_access").await;
        let rt = t["refresh_token"].as_str().expect("rt").to_owned();
        let revoke = h.post_as(&client, "/revoke", &[("token", &rt), ("token_type_hint", "refresh_token")]).await;
        assert_eq!(revoke.status, 200);
        assert_eq!(refresh(&h, &client, &rt, &[]).await.error(), "invalid_grant");
        assert_eq!(h.userinfo(t["access_token"].as_str().expect("at")).await.status, 401, "RFC 7009 §2.1: grant's access tokens go too");
    }

    async fn unregistered_grant_type_is_unauthorized_client(h) {
        let client = h.confidential_client(json!({"grant_types": ["authorization_code"]})).await;
        let r = h.post_as(&client, "/token", &[("grant_type", "client_credentials")]).await;
        assert_eq!((r.status.as_u16(), r.error()), (400, "unauthorized_client"));
        let r = h.post_as(&client, "/token", &[("grant_type", "refresh_token"), ("refresh_token", "x")]).await;
        assert_eq!(r.error(), "unauthorized_client");
        let r = h.post_as(&client, "/token", &[("grant_type", "password")]).await;
        assert_eq!(r.error(), "unsupported_grant_type");
    }

    async fn mixing_client_authentication_methods_is_invalid_client(h) {
        let client = h.confidential_client(json!({})).await;
        let secret = client.secret.clone().expect("secret");
        let resp = h.http().post(h.url("/token"))
            .basic_auth(&client.id, Some(&secret))
            .form(&[("grant_type", "client_credentials"), ("client_id", client.id.as_str()), ("client_secret", secret.as_str())])
            .send().await.expect("send");
        let reply = common::Reply::from(resp).await;
        assert_eq!((reply.status.as_u16(), reply.error()), (401, "invalid_client"));
        assert!(reply.header("www-authenticate").starts_with("Basic"));
        // Registered for Basic, used post: refused, no silent fallback.
        let mut as_post = client.clone();
        as_post.auth = "client_secret_post".into();
        let reply = h.post_as(&as_post, "/token", &[("grant_type", "client_credentials")]).await;
        assert_eq!((reply.status.as_u16(), reply.error()), (401, "invalid_client"));
        assert!(!reply.header("www-authenticate").is_empty(), "a 401 always carries a challenge");
        // Wrong secret.
        let mut wrong = client.clone();
        wrong.secret = Some("wrong".into());
        let reply = h.post_as(&wrong, "/token", &[("grant_type", "client_credentials")]).await;
        assert_eq!((reply.status.as_u16(), reply.error()), (401, "invalid_client"));
        // A confidential client cannot drop to "none".
        let mut none = client.clone();
        none.auth = "none".into();
        let reply = h.post_as(&none, "/token", &[("grant_type", "client_credentials")]).await;
        assert_eq!(reply.error(), "invalid_client");
    }

    async fn client_credentials_issues_opaque_tokens_for_allowed_scopes(h) {
        let client = h.confidential_client(json!({"scope": "api:read"})).await;
        let r = h.post_as(&client, "/token", &[("grant_type", "client_credentials"), ("scope", "api:read")]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("cache-control"), "no-store");
        assert_eq!(r.body["scope"], "api:read");
        assert!(r.body.get("refresh_token").is_none() && r.body.get("id_token").is_none());
        let at = r.body["access_token"].as_str().expect("at");
        assert_eq!(at.len(), 51, "opaque: 48 bits of issue time and 256 random bits, base64url");
        assert!(h.is_active(&client, at).await);
        let denied = h.post_as(&client, "/token", &[("grant_type", "client_credentials"), ("scope", "api:write")]).await;
        assert_eq!(denied.error(), "invalid_scope");
        let openid = h.post_as(&client, "/token", &[("grant_type", "client_credentials"), ("scope", "openid")]).await;
        assert_eq!(openid.error(), "invalid_scope");
        let post_client = h.confidential_client(json!({"token_endpoint_auth_method": "client_secret_post"})).await;
        let r = h.post_as(&post_client, "/token", &[("grant_type", "client_credentials")]).await;
        assert_eq!(r.status, 200, "client_secret_post works: {}", r.body);
    }

    async fn jwt_access_tokens_follow_rfc9068_and_resource_becomes_aud(h) {
        let client = h.confidential_client(json!({"access_token_format": "jwt"})).await;
        let r = h.post_as(&client, "/token", &[
            ("grant_type", "client_credentials"), ("scope", "api:read"), ("resource", "https://api.example/"),
        ]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let at = r.body["access_token"].as_str().expect("at");
        let (header, _) = common::jwt_parts(at);
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["alg"], "ES256");
        let claims = common::verify_with_jwks(&h, at, "https://api.example/").await;
        assert_eq!(claims["client_id"], client.id);
        assert_eq!(claims["sub"], client.id);
        assert_eq!(claims["scope"], "api:read");
        assert!(claims["jti"].is_string() && claims["iat"].is_i64());
        assert!(h.is_active(&client, at).await, "JWT access tokens are introspectable");
        let bad = h.post_as(&client, "/token", &[("grant_type", "client_credentials"), ("resource", "https://api.example/#frag")]).await;
        assert_eq!(bad.error(), "invalid_target");
        // RFC 9700 §2.3: only resources the issuer serves become audiences.
        let foreign = h.post_as(&client, "/token", &[("grant_type", "client_credentials"), ("resource", "https://internal-admin.example/")]).await;
        assert_eq!((foreign.status.as_u16(), foreign.error()), (400, "invalid_target"));
        let pkce = common::Pkce::new();
        let url = h.authorize_url(&client, "openid", &pkce, &[("resource", "https://internal-admin.example/")]);
        let outcome = h.browser(Some("alice")).run(&url, &client.redirect_uri, common::Consent::Allow).await;
        assert_eq!(outcome.redirect_params().get("error").map(String::as_str), Some("invalid_target"));
    }

    async fn resource_at_authorize_becomes_aud_and_token_time_resource_must_be_granted(h) {
        let client = h.confidential_client(json!({"access_token_format": "jwt"})).await;
        let pkce = common::Pkce::new();
        let url = h.authorize_url(&client, "openid offline_access", &pkce, &[("resource", "https://api.example/a"), ("resource", "https://api.example/b")]);
        let outcome = h.browser(Some("alice")).run(&url, &client.redirect_uri, common::Consent::Allow).await;
        let code = outcome.redirect_params().get("code").cloned().expect("code");
        let r = h.post_as(&client, "/token", &[
            ("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", "https://rp.example/cb"),
            ("code_verifier", &pkce.verifier), ("resource", "https://api.example/a"),
        ]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let claims = common::verify_with_jwks(&h, r.body["access_token"].as_str().expect("at"), "https://api.example/a").await;
        assert_eq!(claims["sub"], "alice");
        let rt = r.body["refresh_token"].as_str().expect("rt").to_owned();
        let other = refresh(&h, &client, &rt, &[("resource", "https://api.example/c")]).await;
        assert_eq!(other.error(), "invalid_target");
        let b = refresh(&h, &client, &rt, &[("resource", "https://api.example/b")]).await;
        assert_eq!(b.status, 200, "{}", b.body);
        common::verify_with_jwks(&h, b.body["access_token"].as_str().expect("at"), "https://api.example/b").await;
    }

    async fn deleted_account_stops_token_issuance_and_userinfo(h) {
        let client = h.public_client(json!({})).await;
        let t = h.tokens(&client, "bob", "openid offline_access").await;
        h.users.lock().expect("users").remove("bob");
        assert_eq!(h.userinfo(t["access_token"].as_str().expect("at")).await.status, 401);
        let r = refresh(&h, &client, t["refresh_token"].as_str().expect("rt"), &[]).await;
        assert_eq!(r.error(), "invalid_grant");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_may_issue_refresh_tokens_without_offline_access() {
    let h = common::Harness::start_with(common::Backend::Sqlite, |b| {
        b.offline_access_required(false)
    })
    .await;
    let client = h.public_client(json!({})).await;
    let t = h.tokens(&client, "alice", "openid").await;
    assert!(t["refresh_token"].is_string());
    let strict = common::Harness::start(common::Backend::Sqlite).await;
    let client = strict.public_client(json!({})).await;
    assert!(
        strict
            .tokens(&client, "alice", "openid")
            .await
            .get("refresh_token")
            .is_none()
    );
    assert!(
        strict.tokens(&client, "alice", "api:read").await["refresh_token"].is_string(),
        "plain OAuth keeps refresh tokens"
    );
}

on_both_stores! {
    async fn concurrent_token_issuance_commits_every_token(h) {
        // Concurrent client_credentials writes share group commits; every acknowledged token
        // must be stored.
        let client = h.confidential_client(json!({})).await;
        let mut tasks = Vec::new();
        for _ in 0..60 {
            let (base, c) = (h.base.clone(), client.clone());
            tasks.push(tokio::spawn(async move {
                let r = reqwest::Client::new().post(format!("{base}/token")).basic_auth(&c.id, c.secret.as_deref())
                    .form(&[("grant_type", "client_credentials")]).send().await.expect("send");
                assert_eq!(r.status(), 200);
                let body: serde_json::Value = r.json().await.expect("json");
                body["access_token"].as_str().expect("at").to_owned()
            }));
        }
        let mut tokens = Vec::new();
        for t in tasks {
            tokens.push(t.await.expect("task"));
        }
        for t in &tokens {
            assert!(h.is_active(&client, t).await, "an acknowledged token is stored");
        }
    }
}
