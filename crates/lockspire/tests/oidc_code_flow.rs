//! OpenID Connect authorization code flow with PKCE, driven by the `openidconnect` crate as a
//! real relying party (OIDC Core §3.1, RFC 7636, RFC 9207).

mod common;

use common::{Consent, Harness, Outcome};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreUserInfoClaims,
};
use openidconnect::{
    AuthorizationCode, ClientId, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use serde_json::json;

/// Runs a full flow as `alice` with the openidconnect client and returns the verified claims'
/// subject, email and the ID token's alg, plus the raw token response pieces.
async fn oidc_flow(
    h: &Harness,
    client: &common::TestClient,
    algs: Vec<CoreJwsSigningAlgorithm>,
) -> FlowResult {
    let http = h.http();
    let metadata = CoreProviderMetadata::discover_async(
        IssuerUrl::new(h.base.clone()).expect("issuer"),
        &http,
    )
    .await
    .expect("discovery");
    let rp = CoreClient::from_provider_metadata(metadata, ClientId::new(client.id.clone()), None)
        .set_redirect_uri(RedirectUrl::new(client.redirect_uri.clone()).expect("redirect"));
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, state, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();
    let outcome = h
        .browser(Some("alice"))
        .run(auth_url.as_str(), &client.redirect_uri, Consent::Allow)
        .await;
    let params = outcome.redirect_params();
    assert_eq!(params.get("state"), Some(state.secret()), "state echoed");
    assert_eq!(
        params.get("iss"),
        Some(&h.base),
        "RFC 9207 iss on the authorization response"
    );
    let code = AuthorizationCode::new(params.get("code").cloned().expect("code"));
    let response = rp
        .exchange_code(code)
        .expect("token endpoint")
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("token exchange");
    let id_token = response.id_token().expect("ID token for an openid request");
    let verifier = rp.id_token_verifier().set_allowed_algs(algs);
    let claims = id_token
        .claims(&verifier, &nonce)
        .expect("ID token verifies")
        .clone();
    let alg = id_token.signing_alg().expect("alg").clone();
    // at_hash binds the access token to the ID token (OIDC Core §3.1.3.6); the crate checks it.
    let expected_hash = openidconnect::AccessTokenHash::from_token(
        response.access_token(),
        &alg,
        id_token.signing_key(&verifier).expect("signing key"),
    )
    .expect("hash");
    assert_eq!(claims.access_token_hash(), Some(&expected_hash));
    let userinfo: CoreUserInfoClaims = rp
        .user_info(
            response.access_token().clone(),
            Some(claims.subject().clone()),
        )
        .expect("userinfo endpoint")
        .request_async(&http)
        .await
        .expect("userinfo");
    FlowResult {
        subject: claims.subject().to_string(),
        email: claims.email().map(|e| e.to_string()),
        issuer: claims.issuer().to_string(),
        alg,
        userinfo_name: userinfo
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.to_string()),
        userinfo_email: userinfo.email().map(|e| e.to_string()),
        refresh_token: response.refresh_token().map(|r| r.secret().clone()),
    }
}

struct FlowResult {
    subject: String,
    email: Option<String>,
    issuer: String,
    alg: CoreJwsSigningAlgorithm,
    userinfo_name: Option<String>,
    userinfo_email: Option<String>,
    refresh_token: Option<String>,
}

on_both_stores! {
    async fn openid_code_flow_issues_rs256_id_token_and_userinfo(h) {
        let client = h.public_client(json!({})).await;
        let r = oidc_flow(&h, &client, vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]).await;
        assert_eq!(r.alg, CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, "OIDC default alg is RS256");
        assert_eq!(r.subject, "alice");
        assert_eq!(r.issuer, h.base, "host cannot override iss");
        assert_eq!(r.email.as_deref(), Some("alice@example.com"));
        assert_eq!(r.userinfo_name.as_deref(), Some("Alice Example"));
        assert_eq!(r.userinfo_email.as_deref(), Some("alice@example.com"));
        assert!(r.refresh_token.is_some(), "offline_access yields a refresh token");
    }

    async fn registered_id_token_alg_is_honoured(h) {
        for (name, alg) in [
            ("PS256", CoreJwsSigningAlgorithm::RsaSsaPssSha256),
            ("ES256", CoreJwsSigningAlgorithm::EcdsaP256Sha256),
            ("EdDSA", CoreJwsSigningAlgorithm::EdDsa),
        ] {
            let client = h.public_client(json!({"id_token_signed_response_alg": name})).await;
            let r = oidc_flow(&h, &client, vec![alg.clone()]).await;
            assert_eq!(r.alg, alg, "{name} requested at registration");
        }
    }

    async fn userinfo_answers_get_and_post_and_never_lets_host_replace_sub(h) {
        let client = h.public_client(json!({})).await;
        let tokens = h.tokens(&client, "alice", "openid profile email").await;
        let at = tokens["access_token"].as_str().expect("access token");
        let get = h.userinfo(at).await;
        assert_eq!(get.status, 200);
        assert_eq!(get.body["sub"], "alice");
        assert_eq!(get.body["email"], "alice@example.com");
        let post = common::Reply::from(
            h.http().post(h.url("/userinfo")).form(&[("access_token", at)]).send().await.expect("post"),
        )
        .await;
        assert_eq!(post.status, 200);
        assert_eq!(post.body, get.body);
        let both = common::Reply::from(
            h.http().post(h.url("/userinfo")).bearer_auth(at).form(&[("access_token", at)]).send().await.expect("post"),
        )
        .await;
        assert_eq!(both.status, 400, "RFC 6750 §2: one method only");
        let none = common::Reply::from(h.http().get(h.url("/userinfo")).send().await.expect("get")).await;
        assert_eq!(none.status, 401);
        assert!(none.header("www-authenticate").starts_with("Bearer"));
        let bad = h.userinfo("not-a-token").await;
        assert_eq!(bad.status, 401);
        assert!(bad.header("www-authenticate").contains("invalid_token"));
    }

    async fn userinfo_claims_follow_granted_scopes(h) {
        let client = h.public_client(json!({})).await;
        let tokens = h.tokens(&client, "alice", "openid profile").await;
        let info = h.userinfo(tokens["access_token"].as_str().expect("at")).await;
        assert_eq!(info.body["name"], "Alice Example");
        assert!(info.body.get("email").is_none(), "email needs the email scope");
    }

    async fn token_without_openid_scope_cannot_call_userinfo(h) {
        let client = h.public_client(json!({})).await;
        let tokens = h.tokens(&client, "alice", "api:read").await;
        assert!(tokens.get("id_token").is_none(), "no ID token without openid");
        let info = h.userinfo(tokens["access_token"].as_str().expect("at")).await;
        assert_eq!(info.status, 403);
        assert!(info.header("www-authenticate").contains("insufficient_scope"));
    }

    async fn nonce_and_auth_time_reach_the_id_token(h) {
        let client = h.public_client(json!({})).await;
        let tokens = h.tokens(&client, "alice", "openid").await;
        let (header, claims) = common::jwt_parts(tokens["id_token"].as_str().expect("id token"));
        assert_eq!(header["alg"], "RS256");
        assert_eq!(claims["nonce"], "n-456");
        assert!(claims["auth_time"].is_i64());
        assert_eq!(claims["aud"], client.id);
        assert!(claims.get("email").is_none(), "email scope not granted");
        let verified = common::verify_with_jwks(&h, tokens["id_token"].as_str().expect("id"), &client.id).await;
        assert_eq!(verified["sub"], "alice");
    }

    async fn form_post_and_fragment_response_modes_deliver_the_code(h) {
        let client = h.public_client(json!({})).await;
        let pkce = common::Pkce::new();
        let url = h.authorize_url(&client, "openid", &pkce, &[("response_mode", "form_post")]);
        let outcome = h.browser(Some("alice")).run(&url, &client.redirect_uri, Consent::Allow).await;
        let Outcome::Page(status, html) = outcome else { panic!("form_post renders a page, got {outcome:?}") };
        assert_eq!(status, 200);
        assert!(html.contains(r#"action="https://rp.example/cb""#));
        let code = common::hidden_field(&html, "code").expect("code field");
        assert_eq!(common::hidden_field(&html, "iss").as_deref(), Some(h.base.as_str()));
        assert_eq!(h.redeem(&client, &code, &pkce.verifier).await.status, 200);

        let pkce = common::Pkce::new();
        let url = h.authorize_url(&client, "openid", &pkce, &[("response_mode", "fragment")]);
        let outcome = h.browser(Some("alice")).run(&url, &client.redirect_uri, Consent::Allow).await;
        let Outcome::Redirect(location) = &outcome else { panic!("fragment redirects") };
        assert!(location.query().is_none() && location.fragment().is_some_and(|f| f.contains("code=")));
    }
}
