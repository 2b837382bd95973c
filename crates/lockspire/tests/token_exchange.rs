//! Token exchange (RFC 8693) over HTTP: the default policy allows only a client's own
//! narrowing, a host policy decides the rest, and no exchange widens scope, audience or
//! lifetime, or sheds a sender constraint.

mod common;

use std::sync::{Arc, Mutex};

use common::{Backend, ClientKey, Consent, Harness, Pkce, Reply, TestClient};
use lockspire::{
    Clock, ExchangeDecision, ExchangeRequest, HostError, PresentedKind, TokenExchangePolicy,
};
use serde_json::{Value, json};

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const REFRESH_TOKEN: &str = "urn:ietf:params:oauth:token-type:refresh_token";
const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
const API_A: &str = "https://api.example/a";
const API_B: &str = "https://api.example/b";
const API_C: &str = "https://api.example/c";

/// A host policy: the clients it trusts may exchange any token, as delegates when they present
/// an actor token; everyone else gets the default.
#[derive(Clone, Default)]
struct Trusted(Arc<Mutex<Vec<String>>>);

impl Trusted {
    fn trust(&self, client: &TestClient) {
        self.0.lock().expect("lock").push(client.id.clone());
    }
}

impl TokenExchangePolicy for Trusted {
    async fn decide(&self, r: &ExchangeRequest<'_>) -> Result<ExchangeDecision, HostError> {
        let trusted = self
            .0
            .lock()
            .map_err(|_| HostError::new("poisoned"))?
            .iter()
            .any(|c| c == r.client_id);
        let own_narrowing = r.subject_token.client_id == r.client_id
            && r.subject_token.kind == PresentedKind::AccessToken
            && r.actor_token.is_none();
        Ok(match (trusted, r.actor_token) {
            (true, Some(_)) => ExchangeDecision::Delegate,
            (true, None) => ExchangeDecision::Impersonate,
            _ if own_narrowing => ExchangeDecision::Impersonate,
            _ => ExchangeDecision::Deny,
        })
    }
}

/// A token request's form fields.
type Form<'a> = Vec<(&'a str, &'a str)>;

async fn exchanging_client(h: &Harness) -> TestClient {
    h.confidential_client(json!({
        "grant_types": ["authorization_code", "refresh_token", "client_credentials", EXCHANGE],
    }))
    .await
}

/// Alice's tokens for `client`, with `scope` and the resources named.
async fn user_tokens(h: &Harness, client: &TestClient, scope: &str, resources: &[&str]) -> Value {
    let pkce = Pkce::new();
    let extra: Vec<(&str, &str)> = resources.iter().map(|r| ("resource", *r)).collect();
    let url = h.authorize_url(client, scope, &pkce, &extra);
    let outcome = h
        .browser(Some("alice"))
        .run(&url, &client.redirect_uri, Consent::Allow)
        .await;
    let code = outcome.redirect_params()["code"].clone();
    let reply = h.redeem(client, &code, &pkce.verifier).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

async fn exchange(h: &Harness, client: &TestClient, params: &[(&str, &str)]) -> Reply {
    let mut form = vec![("grant_type", EXCHANGE)];
    form.extend_from_slice(params);
    h.post_as(client, "/token", &form).await
}

fn text<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {v}"))
}

async fn introspect(h: &Harness, caller: &TestClient, token: &str) -> Value {
    h.post_as(caller, "/introspect", &[("token", token)])
        .await
        .body
}

async fn client_token(h: &Harness, client: &TestClient) -> String {
    let r = h
        .post_as(client, "/token", &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    text(&r.body, "access_token").to_owned()
}

on_both_stores! {
    async fn a_client_exchanges_its_own_access_token_for_a_narrower_one_by_default(h) {
        let client = exchanging_client(&h).await;
        let t = user_tokens(&h, &client, "openid api:read api:write", &[API_A, API_B]).await;
        let at = text(&t, "access_token");
        let r = exchange(&h, &client, &[
            ("subject_token", at), ("subject_token_type", ACCESS_TOKEN),
            ("scope", "api:read"), ("audience", API_A),
        ]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("cache-control"), "no-store");
        assert_eq!(r.body["issued_token_type"], ACCESS_TOKEN);
        assert_eq!(r.body["token_type"], "Bearer");
        assert_eq!(r.body["scope"], "api:read");
        assert!(r.body.get("refresh_token").is_none(), "{}", r.body);
        assert!(r.body["expires_in"].as_i64() <= t["expires_in"].as_i64());
        let new = text(&r.body, "access_token");
        assert_ne!(new, at);
        let seen = introspect(&h, &client, new).await;
        assert_eq!(seen["active"], true);
        assert_eq!(seen["sub"], "alice");
        assert_eq!(seen["scope"], "api:read");
        assert_eq!(seen["aud"], json!([API_A]));
        assert!(seen.get("act").is_none(), "an impersonation names no actor: {seen}");
        // Without scope or audience, the subject token's own.
        let same = exchange(&h, &client, &[("subject_token", at), ("subject_token_type", ACCESS_TOKEN)]).await;
        assert_eq!(same.status, 200, "{}", same.body);
        let seen = introspect(&h, &client, text(&same.body, "access_token")).await;
        assert_eq!(seen["scope"], "openid api:read api:write");
        assert_eq!(seen["aud"], json!([API_A, API_B]));
        let discovery = h.discovery().await;
        assert!(discovery["grant_types_supported"].as_array().expect("list").contains(&json!(EXCHANGE)));
    }

    async fn an_exchange_never_widens_scope_audience_or_lifetime(h) {
        let client = exchanging_client(&h).await;
        let t = user_tokens(&h, &client, "openid api:read", &[API_A]).await;
        let at = text(&t, "access_token");
        let subject = [("subject_token", at), ("subject_token_type", ACCESS_TOKEN)];
        let ask = |extra: Vec<(&'static str, &'static str)>| {
            let mut params = subject.to_vec();
            params.extend(extra);
            params
        };
        let refreshing = exchange(&h, &client, &ask(vec![("scope", "openid offline_access")])).await;
        assert_eq!(refreshing.error(), "invalid_scope", "an exchange issues no refresh token: {}", refreshing.body);
        let wider_scope = exchange(&h, &client, &ask(vec![("scope", "api:read api:write")])).await;
        assert_eq!((wider_scope.status.as_u16(), wider_scope.error()), (400, "invalid_scope"), "{}", wider_scope.body);
        let wider_audience = exchange(&h, &client, &ask(vec![("audience", API_B)])).await;
        assert_eq!((wider_audience.status.as_u16(), wider_audience.error()), (400, "invalid_target"), "{}", wider_audience.body);
        let wider_resource = exchange(&h, &client, &ask(vec![("resource", API_A), ("resource", API_C)])).await;
        assert_eq!(wider_resource.error(), "invalid_target", "{}", wider_resource.body);
        let unknown = exchange(&h, &client, &ask(vec![("audience", "https://elsewhere.example/")])).await;
        assert_eq!(unknown.error(), "invalid_target", "{}", unknown.body);
        let not_a_uri = exchange(&h, &client, &ask(vec![("audience", "orders-service")])).await;
        assert_eq!(not_a_uri.error(), "invalid_target", "{}", not_a_uri.body);
        // A token for the issuer's default audience cannot become one for a resource.
        let plain = user_tokens(&h, &client, "openid api:read", &[]).await;
        let targeted = exchange(&h, &client, &[
            ("subject_token", text(&plain, "access_token")), ("subject_token_type", ACCESS_TOKEN), ("audience", API_A),
        ]).await;
        assert_eq!(targeted.error(), "invalid_target", "{}", targeted.body);
        // Near its end the subject token bounds the new one.
        h.clock.advance(3500);
        let late = exchange(&h, &client, &subject).await;
        assert_eq!(late.status, 200, "{}", late.body);
        let left = late.body["expires_in"].as_i64().expect("expires_in");
        assert!((1..=100).contains(&left), "the exchanged token outlives its subject token: {left}");
        let seen = introspect(&h, &client, text(&late.body, "access_token")).await;
        assert_eq!(seen["exp"].as_i64(), Some(h.clock.now() + left));
    }

    async fn the_default_policy_refuses_every_exchange_but_a_clients_own_narrowing(h) {
        let client = exchanging_client(&h).await;
        let other = exchanging_client(&h).await;
        let t = user_tokens(&h, &client, "openid offline_access api:read", &[]).await;
        let at = text(&t, "access_token");
        let foreign = exchange(&h, &other, &[("subject_token", at), ("subject_token_type", ACCESS_TOKEN)]).await;
        assert_eq!((foreign.status.as_u16(), foreign.error()), (400, "invalid_request"), "{}", foreign.body);
        let actor = client_token(&h, &client).await;
        let delegated = exchange(&h, &client, &[
            ("subject_token", at), ("subject_token_type", ACCESS_TOKEN),
            ("actor_token", &actor), ("actor_token_type", ACCESS_TOKEN),
        ]).await;
        assert_eq!((delegated.status.as_u16(), delegated.error()), (400, "invalid_request"), "{}", delegated.body);
        let refresh = exchange(&h, &client, &[
            ("subject_token", text(&t, "refresh_token")), ("subject_token_type", REFRESH_TOKEN),
        ]).await;
        assert_eq!(refresh.error(), "invalid_request", "{}", refresh.body);
        let id = exchange(&h, &client, &[("subject_token", text(&t, "id_token")), ("subject_token_type", ID_TOKEN)]).await;
        assert_eq!(id.error(), "invalid_request", "{}", id.body);
        // A client's own token stands for no user.
        let own = exchange(&h, &client, &[("subject_token", &actor), ("subject_token_type", ACCESS_TOKEN)]).await;
        assert_eq!(own.error(), "invalid_request", "{}", own.body);
    }

    async fn malformed_exchanges_get_the_rfc_errors(h) {
        let client = exchanging_client(&h).await;
        let t = user_tokens(&h, &client, "openid api:read", &[]).await;
        let at = text(&t, "access_token");
        let cases: Vec<(&str, Form, &str)> = vec![
            ("no subject_token", vec![("subject_token_type", ACCESS_TOKEN)], "invalid_request"),
            ("no subject_token_type", vec![("subject_token", at)], "invalid_request"),
            ("an unknown token type", vec![("subject_token", at), ("subject_token_type", "urn:example:saml")], "invalid_request"),
            ("actor_token without its type", vec![("subject_token", at), ("subject_token_type", ACCESS_TOKEN), ("actor_token", at)], "invalid_request"),
            ("actor_token_type alone", vec![("subject_token", at), ("subject_token_type", ACCESS_TOKEN), ("actor_token_type", ACCESS_TOKEN)], "invalid_request"),
            ("a refresh token asked for", vec![("subject_token", at), ("subject_token_type", ACCESS_TOKEN), ("requested_token_type", REFRESH_TOKEN)], "invalid_request"),
            ("a repeated subject_token", vec![("subject_token", at), ("subject_token", at), ("subject_token_type", ACCESS_TOKEN)], "invalid_request"),
            ("an unknown token", vec![("subject_token", "not-a-token"), ("subject_token_type", ACCESS_TOKEN)], "invalid_request"),
            ("an access token declared a refresh token", vec![("subject_token", at), ("subject_token_type", REFRESH_TOKEN)], "invalid_request"),
            ("an opaque token declared a JWT", vec![("subject_token", at), ("subject_token_type", JWT)], "invalid_request"),
            ("an access token declared an ID token", vec![("subject_token", at), ("subject_token_type", ID_TOKEN)], "invalid_request"),
            ("a JWT asked of a client of opaque tokens", vec![("subject_token", at), ("subject_token_type", ACCESS_TOKEN), ("requested_token_type", JWT)], "invalid_request"),
        ];
        for (what, params, code) in cases {
            let r = exchange(&h, &client, &params).await;
            assert_eq!((r.status.as_u16(), r.error()), (400, code), "{what}: {}", r.body);
        }
        let unregistered = h.confidential_client(json!({})).await;
        let r = exchange(&h, &unregistered, &[("subject_token", at), ("subject_token_type", ACCESS_TOKEN)]).await;
        assert_eq!(r.error(), "unauthorized_client", "a client not registered for the grant: {}", r.body);
        let public = h.ls.create_client(None, json!({
            "token_endpoint_auth_method": "none", "grant_types": ["authorization_code", EXCHANGE],
            "redirect_uris": ["https://rp.example/cb"],
        })).await;
        assert!(public.is_err(), "a public client cannot register for token exchange");
    }

    async fn exchanged_tokens_are_revoked_with_the_subject_tokens_grant(h) {
        let client = exchanging_client(&h).await;
        let t = user_tokens(&h, &client, "openid offline_access api:read", &[]).await;
        let r = exchange(&h, &client, &[("subject_token", text(&t, "access_token")), ("subject_token_type", ACCESS_TOKEN)]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let exchanged = text(&r.body, "access_token");
        assert!(h.is_active(&client, exchanged).await);
        let revoked = h.post_as(&client, "/revoke", &[("token", text(&t, "refresh_token"))]).await;
        assert_eq!(revoked.status, 200);
        assert!(!h.is_active(&client, exchanged).await, "the exchanged token outlived its grant");
        assert_eq!(h.userinfo(exchanged).await.status, 401);
    }

    async fn a_sender_constrained_subject_token_is_exchanged_only_with_its_key(h) {
        let client = exchanging_client(&h).await;
        let key = ClientKey::es256("dpop");
        let pkce = Pkce::new();
        let url = h.authorize_url(&client, "openid api:read", &pkce, &[]);
        let outcome = h.browser(Some("alice")).run(&url, &client.redirect_uri, Consent::Allow).await;
        let code = outcome.redirect_params()["code"].clone();
        let token_url = h.url("/token");
        let proof = |key: &ClientKey| {
            let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_members()});
            let claims = json!({"jti": common::random_b64(16), "htm": "POST", "htu": token_url, "iat": h.clock.now()});
            key.sign_with_header(&header, &claims)
        };
        let bound = h.post_with(&client, "/token", &[
            ("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", &client.redirect_uri),
            ("code_verifier", &pkce.verifier),
        ], &[("DPoP", &proof(&key))]).await;
        assert_eq!(bound.body["token_type"], "DPoP", "{}", bound.body);
        let at = text(&bound.body, "access_token");
        let subject = [("grant_type", EXCHANGE), ("subject_token", at), ("subject_token_type", ACCESS_TOKEN)];
        let shed = h.post_as(&client, "/token", &subject).await;
        assert_eq!((shed.status.as_u16(), shed.error()), (400, "invalid_request"), "{}", shed.body);
        let stranger = ClientKey::es256("stranger");
        let wrong = h.post_with(&client, "/token", &subject, &[("DPoP", &proof(&stranger))]).await;
        assert_eq!(wrong.error(), "invalid_request", "{}", wrong.body);
        let held = h.post_with(&client, "/token", &subject, &[("DPoP", &proof(&key))]).await;
        assert_eq!(held.status, 200, "{}", held.body);
        assert_eq!(held.body["token_type"], "DPoP", "the exchanged token keeps the key: {}", held.body);
    }
}

/// A gateway the host trusts exchanges a user's token for one naming it as the actor; a
/// service behind it does the same, and the chain nests, up to its limit.
async fn a_delegation_names_the_actor_in_act_and_nests_chains(backend: Backend) {
    let trusted = Trusted::default();
    let policy = trusted.clone();
    let h = Harness::start_with(backend, |b| b.token_exchange_policy(policy)).await;
    // Its access tokens are JWTs, as the gateway's: the gateway's exchange may then be one.
    let app = h
        .confidential_client(json!({
            "grant_types": ["authorization_code", "refresh_token", EXCHANGE],
            "access_token_format": "jwt",
        }))
        .await;
    // Its access tokens are JWTs, so it may ask for one.
    let gateway = h
        .confidential_client(json!({
            "grant_types": ["client_credentials", EXCHANGE],
            "access_token_format": "jwt",
        }))
        .await;
    let service = exchanging_client(&h).await;
    let untrusted = exchanging_client(&h).await;
    trusted.trust(&gateway);
    trusted.trust(&service);
    let t = user_tokens(&h, &app, "openid api:read api:write", &[API_A, API_B]).await;
    let at = text(&t, "access_token");
    let gateway_actor = client_token(&h, &gateway).await;

    let refused = exchange(
        &h,
        &untrusted,
        &[("subject_token", at), ("subject_token_type", ACCESS_TOKEN)],
    )
    .await;
    // The actor is the caller: another client's token cannot be named as the one acting.
    let borrowed = exchange(
        &h,
        &service,
        &[
            ("subject_token", at),
            ("subject_token_type", ACCESS_TOKEN),
            ("actor_token", &gateway_actor),
            ("actor_token_type", ACCESS_TOKEN),
        ],
    )
    .await;
    assert_eq!(borrowed.error(), "invalid_request", "{}", borrowed.body);
    assert_eq!(
        refused.error(),
        "invalid_request",
        "the policy did not allow it: {}",
        refused.body
    );

    let first = exchange(
        &h,
        &gateway,
        &[
            ("subject_token", at),
            ("subject_token_type", ACCESS_TOKEN),
            ("actor_token", &gateway_actor),
            ("actor_token_type", ACCESS_TOKEN),
            ("requested_token_type", JWT),
            ("audience", API_A),
            ("scope", "api:read"),
        ],
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["issued_token_type"], JWT);
    let jwt = text(&first.body, "access_token");
    let claims = common::verify_with_jwks(&h, jwt, API_A).await;
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["client_id"], gateway.id);
    assert_eq!(claims["scope"], "api:read");
    assert_eq!(
        claims["act"],
        json!({"sub": gateway.id, "client_id": gateway.id})
    );
    assert_eq!(common::jwt_parts(jwt).0["typ"], "at+jwt");
    let seen = introspect(&h, &gateway, jwt).await;
    assert_eq!(
        seen["act"], claims["act"],
        "introspection shows act: {seen}"
    );

    // The service, holding the gateway's token, acts in turn.
    let service_actor = client_token(&h, &service).await;
    let second = exchange(
        &h,
        &service,
        &[
            ("subject_token", jwt),
            ("subject_token_type", JWT),
            ("actor_token", &service_actor),
            ("actor_token_type", ACCESS_TOKEN),
        ],
    )
    .await;
    assert_eq!(second.status, 200, "{}", second.body);
    let chained = text(&second.body, "access_token");
    let seen = introspect(&h, &service, chained).await;
    assert_eq!(
        seen["act"],
        json!({
            "sub": service.id, "client_id": service.id,
            "act": {"sub": gateway.id, "client_id": gateway.id},
        })
    );
    assert_eq!(seen["scope"], "api:read", "a chain never widens: {seen}");
    // The service's tokens are opaque, and exchanged by the JWT-minded gateway they stay so: an
    // exchange never lets an opaque token outlive its revocation.
    let back = [
        ("subject_token", chained),
        ("subject_token_type", ACCESS_TOKEN),
    ];
    let kept = exchange(&h, &gateway, &back).await;
    assert_eq!(kept.status, 200, "{}", kept.body);
    assert_eq!(
        text(&kept.body, "access_token").split('.').count(),
        1,
        "an opaque token: {}",
        kept.body
    );
    let mut as_jwt = back.to_vec();
    as_jwt.push(("requested_token_type", JWT));
    assert_eq!(
        exchange(&h, &gateway, &as_jwt).await.error(),
        "invalid_request"
    );

    // An impersonation keeps the actors already on record.
    let impersonated = exchange(
        &h,
        &service,
        &[
            ("subject_token", chained),
            ("subject_token_type", ACCESS_TOKEN),
        ],
    )
    .await;
    assert_eq!(impersonated.status, 200, "{}", impersonated.body);
    let seen = introspect(&h, &service, text(&impersonated.body, "access_token")).await;
    assert_eq!(seen["act"]["sub"], service.id);

    // Four actors at most.
    let mut token = chained.to_owned();
    let mut refused = None;
    for _ in 0..3 {
        let r = exchange(
            &h,
            &service,
            &[
                ("subject_token", &token),
                ("subject_token_type", ACCESS_TOKEN),
                ("actor_token", &service_actor),
                ("actor_token_type", ACCESS_TOKEN),
            ],
        )
        .await;
        if r.status != 200 {
            refused = Some(r);
            break;
        }
        token = text(&r.body, "access_token").to_owned();
    }
    let last = refused.expect("a fifth actor is refused");
    assert_eq!(
        (last.status.as_u16(), last.error()),
        (400, "invalid_request"),
        "a fifth actor: {}",
        last.body
    );
    let seen = introspect(&h, &service, &token).await;
    let mut depth = 0;
    let mut act = Some(&seen["act"]);
    while let Some(a) = act.filter(|a| a.is_object()) {
        depth += 1;
        act = a.get("act");
    }
    assert_eq!(depth, 4, "{seen}");
}

/// With the host's leave, an ID token and a refresh token are exchanged: the ID token stands for
/// the sign-in of its browser session and authorizes only its identity scopes; a refresh token
/// only by its own client.
async fn id_and_refresh_tokens_are_exchanged_only_when_the_policy_allows(backend: Backend) {
    let trusted = Trusted::default();
    let policy = trusted.clone();
    let h = Harness::start_with(backend, |b| b.token_exchange_policy(policy)).await;
    let app = exchanging_client(&h).await;
    let backend_service = exchanging_client(&h).await;
    trusted.trust(&backend_service);
    trusted.trust(&app);
    let t = user_tokens(&h, &app, "openid profile offline_access api:read", &[API_A]).await;
    let id_token = text(&t, "id_token");
    let id = [
        ("subject_token", id_token),
        ("subject_token_type", ID_TOKEN),
    ];
    assert!(
        common::jwt_parts(id_token).1["sid"].is_string(),
        "an ID token of a browser session carries sid"
    );

    // An ID token tells who the user is and authorizes nothing more: its identity scopes, for
    // no audience.
    let from_id = exchange(&h, &backend_service, &id).await;
    assert_eq!(from_id.status, 200, "{}", from_id.body);
    let exchanged = text(&from_id.body, "access_token");
    let seen = introspect(&h, &backend_service, exchanged).await;
    assert_eq!(
        (seen["sub"].as_str(), seen["scope"].as_str()),
        (Some("alice"), Some("openid profile"))
    );
    assert!(seen.get("aud").is_none(), "{seen}");
    for (wider, code) in [
        (("scope", "api:read"), "invalid_scope"),
        (("audience", API_A), "invalid_target"),
    ] {
        let mut params = id.to_vec();
        params.push(wider);
        let r = exchange(&h, &backend_service, &params).await;
        assert_eq!(r.error(), code, "{wider:?}: {}", r.body);
    }

    // A refresh token only by its own client (RFC 6749 §6), whatever the policy says.
    let refresh = [
        ("subject_token", text(&t, "refresh_token")),
        ("subject_token_type", REFRESH_TOKEN),
    ];
    let foreign = exchange(&h, &backend_service, &refresh).await;
    assert_eq!(foreign.error(), "invalid_request", "{}", foreign.body);
    let from_refresh = exchange(&h, &app, &refresh).await;
    assert_eq!(from_refresh.status, 200, "{}", from_refresh.body);
    assert_eq!(
        from_refresh.body["scope"], "openid profile api:read",
        "offline_access asks for refresh tokens, which an exchange does not issue"
    );
    // The refresh token was not used up by it.
    let refreshed = h
        .post_as(
            &app,
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", text(&t, "refresh_token")),
            ],
        )
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);

    // Disabling the subject token's client suspends what others exchanged from its grant.
    assert!(h.is_active(&backend_service, exchanged).await);
    h.ls.disable_client(&app.id).await.expect("disable");
    assert!(
        !h.is_active(&backend_service, exchanged).await,
        "the grant's client is disabled"
    );
    h.ls.enable_client(&app.id).await.expect("enable");

    // Expired, the same ID token stands for nothing.
    h.clock.advance(3601);
    let expired = exchange(&h, &backend_service, &id).await;
    assert_eq!(expired.error(), "invalid_request", "{}", expired.body);
}

on_both!(
    a_delegation_names_the_actor_in_act_and_nests_chains,
    id_and_refresh_tokens_are_exchanged_only_when_the_policy_allows,
);
