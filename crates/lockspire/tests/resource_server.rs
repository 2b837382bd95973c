//! The resource-server toolkit over real HTTP: a host API behind `RequireToken`, in process
//! beside the issuer and as a separate service against it, called with tokens the issuer
//! granted (RFC 6750, RFC 9068, RFC 9449, RFC 9728), and introspection by resource servers
//! (RFC 7662 §4).

mod common;

use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Backend, ClientKey, Harness, Reply, TestClient};
use lockspire::Clock;
use lockspire::resource::{AccessToken, InProcess, ResourceServer, ResourceServerBuilder};
use serde_json::{Value, json};

on_both!(
    a_token_for_this_resource_reaches_the_handler_with_its_subject_scopes_and_claims,
    tokens_not_for_this_resource_or_expired_revoked_or_forged_are_invalid_token,
    a_token_without_the_routes_scope_is_answered_403_insufficient_scope_naming_it,
    a_dpop_bound_token_needs_a_proof_of_its_key_naming_this_request_and_token,
    a_resource_requiring_dpop_refuses_bearer_tokens,
    a_resource_requiring_dpop_nonces_asks_for_its_own_nonce,
    protected_resource_metadata_is_served_at_the_path_aware_well_known_url,
    a_remote_resource_server_verifies_jwts_with_the_jwks_and_opaque_tokens_by_introspection,
    introspection_shows_a_resource_server_the_tokens_for_its_audience_only,
);

/// The issuer and, on a listener of its own, a host API at `{api}/api/...` protected in process.
struct Api {
    h: Harness,
    /// `http://127.0.0.1:port`, where the API listens.
    origin: String,
    /// The resource identifier: `{origin}/api`.
    resource: String,
}

async fn me(token: AccessToken) -> Json<Value> {
    Json(json!({
        "sub": token.subject(),
        "client_id": token.client_id(),
        "scopes": token.scopes(),
        "binding": format!("{:?}", token.binding()),
        "claims": token.claims(),
    }))
}

/// The API's routes, nested under `/api` so the proof's `htu` must be the full path.
fn api_router(rs: &ResourceServer) -> Router {
    let api = Router::new()
        .route("/me", get(me))
        .route_layer(rs.require_token().scopes(["api:read"]))
        .merge(
            Router::new()
                .route("/write", get(me))
                .route_layer(rs.require_token().scopes(["api:read", "api:write"])),
        );
    Router::new().nest("/api", api).merge(rs.metadata_router())
}

/// The issuer, which grants tokens for an API at `{origin}/api` too, and the listener that API
/// is to be served on: the issuer, the listener, the origin and the resource identifier.
async fn issuer_for_api(
    backend: Backend,
    builder: impl FnOnce(lockspire::Builder) -> lockspire::Builder,
) -> (Harness, tokio::net::TcpListener, String, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let resource = format!("{origin}/api");
    let mut resources: Vec<String> = common::TEST_RESOURCES
        .iter()
        .map(|r| r.to_string())
        .collect();
    resources.push(resource.clone());
    let h = Harness::start_with(backend, |b| builder(b.resources(resources))).await;
    (h, listener, origin, resource)
}

async fn start_api(
    backend: Backend,
    configure: impl FnOnce(ResourceServerBuilder<InProcess>) -> ResourceServerBuilder<InProcess>,
    builder: impl FnOnce(lockspire::Builder) -> lockspire::Builder,
) -> Api {
    let (h, listener, origin, resource) = issuer_for_api(backend, builder).await;
    let rs = configure(h.ls.resource_server(&resource).expect("resource server")).build();
    serve_api(listener, &rs);
    Api {
        h,
        origin,
        resource,
    }
}

fn serve_api(listener: tokio::net::TcpListener, rs: &ResourceServer) {
    let app = api_router(rs);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
}

/// Serves `rs` on a new listener of its own; returns its `/api/me` URL. Its resource
/// identifier names another port, which only matters to DPoP proofs.
async fn another_listener(rs: &ResourceServer) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/api/me", listener.local_addr().expect("addr"));
    serve_api(listener, rs);
    url
}

/// A client-credentials token for `resource`, in `format`, bound to `key` when given.
async fn token_for(
    h: &Harness,
    client: &TestClient,
    resource: &str,
    scope: &str,
    key: Option<&ClientKey>,
) -> String {
    let proof = key.map(|k| proof(h, k, "POST", &h.url("/token"), None));
    let headers: Vec<(&str, &str)> = proof.as_deref().map(|p| ("DPoP", p)).into_iter().collect();
    let reply = h
        .post_with(
            client,
            "/token",
            &[
                ("grant_type", "client_credentials"),
                ("scope", scope),
                ("resource", resource),
            ],
            &headers,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// Alice's tokens for `client` by the code flow, for `resource`: the token response.
async fn user_tokens(h: &Harness, client: &TestClient, scope: &str, resource: &str) -> Value {
    let pkce = common::Pkce::new();
    let url = h.authorize_url(client, scope, &pkce, &[("resource", resource)]);
    let code = h
        .browser(Some("alice"))
        .run(&url, &client.redirect_uri, common::Consent::Allow)
        .await
        .redirect_params()
        .get("code")
        .cloned()
        .expect("code");
    let reply = h
        .post_as(
            client,
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &client.redirect_uri),
                ("code_verifier", &pkce.verifier),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body
}

/// A DPoP proof by `key` (RFC 9449 §4.2), with `ath` when `token` is given.
fn proof(h: &Harness, key: &ClientKey, method: &str, htu: &str, token: Option<&str>) -> String {
    proof_with(h, key, json!({"htm": method, "htu": htu}), token)
}

fn proof_with(h: &Harness, key: &ClientKey, mut claims: Value, token: Option<&str>) -> String {
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_members()});
    claims["jti"] = json!(common::random_b64(16));
    if claims.get("iat").is_none() {
        claims["iat"] = json!(h.clock.now());
    }
    if let Some(token) = token {
        claims["ath"] = json!(URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            token.as_bytes()
        )));
    }
    key.sign_with_header(&header, &claims)
}

/// GETs `url` with an Authorization header `{scheme} {token}` and the given proof.
async fn call(url: &str, scheme: &str, token: &str, proof: Option<&str>) -> Reply {
    let mut req = reqwest::Client::new()
        .get(url)
        .header("authorization", format!("{scheme} {token}"));
    if let Some(proof) = proof {
        req = req.header("DPoP", proof);
    }
    Reply::from(req.send().await.expect("api call")).await
}

/// The API's RFC 9728 metadata, fetched from its path-aware well-known URL.
async fn metadata(api: &Api) -> Reply {
    let url = format!("{}/.well-known/oauth-protected-resource/api", api.origin);
    Reply::from(reqwest::get(url).await.expect("get")).await
}

fn challenge(reply: &Reply) -> String {
    reply
        .headers
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(" | ")
}

async fn a_token_for_this_resource_reaches_the_handler_with_its_subject_scopes_and_claims(
    backend: Backend,
) {
    let api = start_api(backend, |rs| rs, |b| b).await;
    let h = &api.h;
    let url = format!("{}/api/me", api.origin);
    for format in ["opaque", "jwt"] {
        let client = h
            .confidential_client(json!({"access_token_format": format}))
            .await;
        let token = token_for(h, &client, &api.resource, "api:read", None).await;
        let reply = call(&url, "Bearer", &token, None).await;
        assert_eq!(reply.status, 200, "{format}: {}", reply.text);
        assert_eq!(reply.body["client_id"], client.id.as_str());
        assert_eq!(
            reply.body["sub"],
            client.id.as_str(),
            "RFC 9068 §2.2: a client's own token"
        );
        assert_eq!(reply.body["scopes"], json!(["api:read"]));
        assert_eq!(reply.body["binding"], "None");
        assert_eq!(reply.body["claims"]["iss"], h.base.as_str());
        assert_eq!(
            reply.body["claims"]["aud"],
            if format == "jwt" {
                json!(api.resource)
            } else {
                json!([api.resource])
            }
        );
    }
    // A user's token: the handler sees the user as the client knows them.
    let client = h
        .confidential_client(json!({"access_token_format": "jwt"}))
        .await;
    let tokens = user_tokens(h, &client, "openid api:read", &api.resource).await;
    let token = tokens["access_token"].as_str().expect("access_token");
    let reply = call(&url, "Bearer", token, None).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let id_token_sub =
        common::jwt_parts(tokens["id_token"].as_str().expect("id_token")).1["sub"].clone();
    assert_eq!(reply.body["sub"], id_token_sub);
}

async fn tokens_not_for_this_resource_or_expired_revoked_or_forged_are_invalid_token(
    backend: Backend,
) {
    let api = start_api(backend, |rs| rs, |b| b).await;
    let h = &api.h;
    let url = format!("{}/api/me", api.origin);
    // No token at all: a bare challenge per scheme, pointing at the metadata (RFC 6750 §3.1,
    // RFC 9728 §5.1).
    let bare = Reply::from(reqwest::get(&url).await.expect("get")).await;
    assert_eq!(bare.status.as_u16(), 401);
    let metadata = format!(
        r#"resource_metadata="{}/.well-known/oauth-protected-resource/api""#,
        api.origin
    );
    let c = challenge(&bare);
    assert!(
        c.contains(&format!("Bearer {metadata}"))
            && c.contains("DPoP algs=")
            && !c.contains("error="),
        "{c}"
    );
    let opaque = h.confidential_client(json!({})).await;
    let jwt = h
        .confidential_client(json!({"access_token_format": "jwt"}))
        .await;
    let other_resource = "https://api.example/a";
    let mut refused = vec![
        ("garbage", "not-a-token".to_owned()),
        (
            "an opaque token for another resource",
            token_for(h, &opaque, other_resource, "api:read", None).await,
        ),
        (
            "a JWT for another resource",
            token_for(h, &jwt, other_resource, "api:read", None).await,
        ),
    ];
    // A JWT signed by a key the issuer never published, and an ID token (typ JWT).
    let forger = ClientKey::es256("forged");
    let exp = h.clock.now() + 300;
    refused.push(("a forged JWT", forger.sign(&json!({"iss": h.base, "aud": api.resource, "exp": exp, "client_id": "x", "scope": "api:read"}))));
    let tokens = {
        let (code, verifier) = h.authorize(&jwt, "alice", "openid api:read").await;
        h.post_as(
            &jwt,
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &jwt.redirect_uri),
                ("code_verifier", &verifier),
            ],
        )
        .await
    };
    refused.push((
        "an ID token",
        tokens.body["id_token"]
            .as_str()
            .expect("id_token")
            .to_owned(),
    ));
    let revoked = token_for(h, &opaque, &api.resource, "api:read", None).await;
    assert_eq!(
        h.post_as(&opaque, "/revoke", &[("token", &revoked)])
            .await
            .status,
        200
    );
    refused.push(("a revoked opaque token", revoked));
    for (what, token) in refused {
        let reply = call(&url, "Bearer", &token, None).await;
        assert_eq!(reply.status.as_u16(), 401, "{what}: {}", reply.text);
        let c = challenge(&reply);
        assert!(
            c.starts_with("Bearer ")
                && c.contains(r#"error="invalid_token""#)
                && c.contains(&metadata),
            "{what}: {c}"
        );
    }
    // A revoked JWT is verified without any call, so it works until it expires, unless the
    // resource server also checks revocation.
    let revoked_jwt = token_for(h, &jwt, &api.resource, "api:read", None).await;
    assert_eq!(
        h.post_as(&jwt, "/revoke", &[("token", &revoked_jwt)])
            .await
            .status,
        200
    );
    assert_eq!(call(&url, "Bearer", &revoked_jwt, None).await.status, 200);
    let strict =
        h.ls.resource_server(&api.resource)
            .expect("resource server")
            .check_revocation(true)
            .build();
    let strict_url = another_listener(&strict).await;
    assert_eq!(
        call(&strict_url, "Bearer", &revoked_jwt, None)
            .await
            .status
            .as_u16(),
        401
    );
    let live = token_for(h, &jwt, &api.resource, "api:read", None).await;
    assert_eq!(call(&strict_url, "Bearer", &live, None).await.status, 200);
    // Expiry: a token works until its lifetime is over.
    let opaque_token = token_for(h, &opaque, &api.resource, "api:read", None).await;
    let jwt_token = token_for(h, &jwt, &api.resource, "api:read", None).await;
    assert_eq!(call(&url, "Bearer", &jwt_token, None).await.status, 200);
    h.clock.advance(3601);
    for token in [opaque_token, jwt_token] {
        assert_eq!(
            call(&url, "Bearer", &token, None).await.status.as_u16(),
            401,
            "expired"
        );
    }
    // A malformed header is a bad request, not an unknown token (RFC 6750 §2.1, §3.1): another
    // scheme, a value that is not one b64token, two headers.
    for header in ["Bearer a b", "Bearer a,b", "DPoP a b"] {
        let malformed = Reply::from(
            reqwest::Client::new()
                .get(&url)
                .header("authorization", header)
                .send()
                .await
                .expect("get"),
        )
        .await;
        assert_eq!(
            malformed.status.as_u16(),
            400,
            "{header}: {}",
            malformed.text
        );
        let c = challenge(&malformed);
        assert!(c.contains(r#"error="invalid_request""#), "{header}: {c}");
        // The challenge names the scheme the client tried (RFC 9449 §7.1).
        assert_eq!(
            c.starts_with("DPoP "),
            header.starts_with("DPoP"),
            "{header}: {c}"
        );
    }
    // Another scheme carries no token of this resource's methods: a bare challenge per scheme
    // and no error code (RFC 6750 §3.1).
    let basic = Reply::from(
        reqwest::Client::new()
            .get(&url)
            .header("authorization", "Basic Zm9vOmJhcg==")
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(basic.status.as_u16(), 401, "{}", basic.text);
    assert!(
        !challenge(&basic).contains("error="),
        "{}",
        challenge(&basic)
    );
    let two = Reply::from(
        reqwest::Client::new()
            .get(&url)
            .header("authorization", "Bearer a")
            .header("authorization", "Bearer b")
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(two.status.as_u16(), 400, "{}", two.text);
}

async fn a_token_without_the_routes_scope_is_answered_403_insufficient_scope_naming_it(
    backend: Backend,
) {
    let api = start_api(backend, |rs| rs, |b| b).await;
    let h = &api.h;
    let client = h.confidential_client(json!({})).await;
    let token = token_for(h, &client, &api.resource, "api:read", None).await;
    assert_eq!(
        call(&format!("{}/api/me", api.origin), "Bearer", &token, None)
            .await
            .status,
        200
    );
    let reply = call(&format!("{}/api/write", api.origin), "Bearer", &token, None).await;
    assert_eq!(reply.status.as_u16(), 403, "{}", reply.text);
    let c = challenge(&reply);
    assert!(
        c.contains(r#"error="insufficient_scope""#) && c.contains(r#"scope="api:read api:write""#),
        "{c}"
    );
    let both = token_for(h, &client, &api.resource, "api:read api:write", None).await;
    assert_eq!(
        call(&format!("{}/api/write", api.origin), "Bearer", &both, None)
            .await
            .status,
        200
    );
}

async fn a_dpop_bound_token_needs_a_proof_of_its_key_naming_this_request_and_token(
    backend: Backend,
) {
    let api = start_api(backend, |rs| rs, |b| b).await;
    let h = &api.h;
    let url = format!("{}/api/me", api.origin);
    let key = ClientKey::es256("k1");
    for format in ["opaque", "jwt"] {
        let client = h
            .confidential_client(json!({"access_token_format": format}))
            .await;
        let token = token_for(h, &client, &api.resource, "api:read", Some(&key)).await;
        let good = proof(h, &key, "GET", &url, Some(&token));
        let ok = call(&url, "DPoP", &token, Some(&good)).await;
        assert_eq!(ok.status, 200, "{format}: {}", ok.text);
        assert!(
            ok.body["binding"]
                .as_str()
                .expect("binding")
                .contains(&key.thumbprint())
        );
        // The same proof again: a replay (RFC 9449 §11.1).
        let replay = call(&url, "DPoP", &token, Some(&good)).await;
        assert_eq!(replay.status.as_u16(), 401);
        assert!(
            challenge(&replay).contains(r#"error="invalid_dpop_proof""#),
            "{}",
            challenge(&replay)
        );
        let cases: Vec<(&str, &str, Option<String>, &str)> = vec![
            ("as a bearer token", "Bearer", None, "invalid_token"),
            ("without a proof", "DPoP", None, "invalid_dpop_proof"),
            (
                "a proof without ath",
                "DPoP",
                Some(proof(h, &key, "GET", &url, None)),
                "invalid_dpop_proof",
            ),
            (
                "a proof for another token",
                "DPoP",
                Some(proof(h, &key, "GET", &url, Some("another-token"))),
                "invalid_dpop_proof",
            ),
            (
                "a proof for POST",
                "DPoP",
                Some(proof(h, &key, "POST", &url, Some(&token))),
                "invalid_dpop_proof",
            ),
            (
                "a proof for the path without its prefix",
                "DPoP",
                Some(proof(
                    h,
                    &key,
                    "GET",
                    &format!("{}/me", api.origin),
                    Some(&token),
                )),
                "invalid_dpop_proof",
            ),
            (
                "a proof of another key",
                "DPoP",
                Some(proof(h, &ClientKey::es256("k2"), "GET", &url, Some(&token))),
                "invalid_token",
            ),
            (
                "a stale proof",
                "DPoP",
                Some(proof_with(
                    h,
                    &key,
                    json!({"htm": "GET", "htu": url, "iat": h.clock.now() - 300}),
                    Some(&token),
                )),
                "invalid_dpop_proof",
            ),
        ];
        for (what, scheme, proof, error) in cases {
            let reply = call(&url, scheme, &token, proof.as_deref()).await;
            assert_eq!(
                reply.status.as_u16(),
                401,
                "{format} {what}: {}",
                reply.text
            );
            let c = challenge(&reply);
            assert!(
                c.contains(&format!(r#"error="{error}""#)),
                "{format} {what}: {c}"
            );
        }
    }
    // A bearer token sent with the DPoP scheme and a proof is refused too.
    let client = h.confidential_client(json!({})).await;
    let bearer = token_for(h, &client, &api.resource, "api:read", None).await;
    let reply = call(
        &url,
        "DPoP",
        &bearer,
        Some(&proof(h, &key, "GET", &url, Some(&bearer))),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 401);
    assert!(
        challenge(&reply).starts_with("DPoP ")
            && challenge(&reply).contains(r#"error="invalid_token""#)
    );
}

async fn a_resource_requiring_dpop_refuses_bearer_tokens(backend: Backend) {
    let api = start_api(backend, |rs| rs.require_dpop(true), |b| b).await;
    let h = &api.h;
    let url = format!("{}/api/me", api.origin);
    let client = h.confidential_client(json!({})).await;
    let bearer = token_for(h, &client, &api.resource, "api:read", None).await;
    let reply = call(&url, "Bearer", &bearer, None).await;
    assert_eq!(reply.status.as_u16(), 401, "{}", reply.text);
    // The challenge names the only scheme this resource accepts (RFC 9449 §7.1).
    let c = challenge(&reply);
    assert!(
        c.starts_with("DPoP ") && c.contains(r#"error="invalid_token""#),
        "{c}"
    );
    let bare = Reply::from(reqwest::get(&url).await.expect("get")).await;
    assert!(
        challenge(&bare).starts_with("DPoP ") && !challenge(&bare).contains("Bearer"),
        "{}",
        challenge(&bare)
    );
    let key = ClientKey::es256("k1");
    let bound = token_for(h, &client, &api.resource, "api:read", Some(&key)).await;
    assert_eq!(
        call(
            &url,
            "DPoP",
            &bound,
            Some(&proof(h, &key, "GET", &url, Some(&bound)))
        )
        .await
        .status,
        200
    );
    let doc = metadata(&api).await;
    assert_eq!(doc.body["dpop_bound_access_tokens_required"], true);
}

async fn a_resource_requiring_dpop_nonces_asks_for_its_own_nonce(backend: Backend) {
    let api = start_api(
        backend,
        |rs| rs.require_dpop_nonce(true),
        |b| b.require_dpop_nonce(true),
    )
    .await;
    let h = &api.h;
    let url = format!("{}/api/me", api.origin);
    let key = ClientKey::es256("k1");
    let client = h.confidential_client(json!({})).await;
    // The issuer's nonce, to get a token.
    let asked = h
        .post_with(
            &client,
            "/token",
            &[("grant_type", "client_credentials")],
            &[("DPoP", &proof(h, &key, "POST", &h.url("/token"), None))],
        )
        .await;
    assert_eq!(asked.error(), "use_dpop_nonce");
    let issuer_nonce = asked.header("dpop-nonce").to_owned();
    let token_proof = proof_with(
        h,
        &key,
        json!({"htm": "POST", "htu": h.url("/token"), "nonce": issuer_nonce}),
        None,
    );
    let tokens = h
        .post_with(
            &client,
            "/token",
            &[
                ("grant_type", "client_credentials"),
                ("scope", "api:read"),
                ("resource", &api.resource),
            ],
            &[("DPoP", &token_proof)],
        )
        .await;
    assert_eq!(tokens.status, 200, "{}", tokens.text);
    let token = tokens.body["access_token"].as_str().expect("access_token");
    // At the resource: no nonce, then the issuer's nonce, are both answered use_dpop_nonce
    // with the resource's own (RFC 9449 §9).
    for nonce in [None, Some(issuer_nonce.as_str())] {
        let mut claims = json!({"htm": "GET", "htu": url});
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        let reply = call(
            &url,
            "DPoP",
            token,
            Some(&proof_with(h, &key, claims, Some(token))),
        )
        .await;
        assert_eq!(reply.status.as_u16(), 401, "{}", reply.text);
        assert!(
            challenge(&reply).contains(r#"error="use_dpop_nonce""#),
            "{}",
            challenge(&reply)
        );
        assert!(!reply.header("dpop-nonce").is_empty());
        assert_ne!(
            reply.header("dpop-nonce"),
            issuer_nonce,
            "the resource's nonces are its own"
        );
    }
    let first = call(
        &url,
        "DPoP",
        token,
        Some(&proof_with(
            h,
            &key,
            json!({"htm": "GET", "htu": url}),
            Some(token),
        )),
    )
    .await;
    assert_eq!(first.status.as_u16(), 401, "{}", first.text);
    assert!(challenge(&first).contains(r#"error="use_dpop_nonce""#));
    let nonce = first.header("dpop-nonce").to_owned();
    let ok = call(
        &url,
        "DPoP",
        token,
        Some(&proof_with(
            h,
            &key,
            json!({"htm": "GET", "htu": url, "nonce": nonce}),
            Some(token),
        )),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(
        ok.header("dpop-nonce"),
        nonce,
        "answers carry the current nonce"
    );
}

async fn protected_resource_metadata_is_served_at_the_path_aware_well_known_url(backend: Backend) {
    let api = start_api(
        backend,
        |rs| {
            rs.resource_name("Test API")
                .scopes_supported(["api:read", "api:write"])
        },
        |b| b,
    )
    .await;
    let doc = metadata(&api).await;
    assert_eq!(doc.status, 200, "{}", doc.text);
    assert_eq!(
        doc.body["resource"],
        api.resource.as_str(),
        "RFC 9728 §3.3: the resource it describes"
    );
    assert_eq!(doc.body["authorization_servers"], json!([api.h.base]));
    assert_eq!(
        doc.body["scopes_supported"],
        json!(["api:read", "api:write"])
    );
    assert_eq!(doc.body["bearer_methods_supported"], json!(["header"]));
    assert_eq!(
        doc.body["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA", "PS256", "RS256"])
    );
    assert_eq!(doc.body["resource_name"], "Test API");
    // A resource that is not one the issuer grants tokens for cannot be protected by it.
    assert!(
        api.h
            .ls
            .resource_server("https://elsewhere.example/api")
            .is_err()
    );
    assert!(
        api.h
            .ls
            .resource_server("https://api.example/a?x=1")
            .is_err()
    );
}

async fn a_remote_resource_server_verifies_jwts_with_the_jwks_and_opaque_tokens_by_introspection(
    backend: Backend,
) {
    // The issuer alone; the API is a separate service that knows only its URL.
    let (h, listener, origin, resource) = issuer_for_api(backend, |b| b).await;
    let rs_client = h.confidential_client(json!({"resource_server_for": [resource], "grant_types": ["client_credentials"], "redirect_uris": []})).await;
    let rs = ResourceServer::remote(&h.base, &resource)
        .introspection_client(&rs_client.id, rs_client.secret.as_deref().expect("secret"))
        .introspection_cache(std::time::Duration::from_secs(30))
        .allow_http_loopback(true)
        .clock(h.clock.clone())
        .build()
        .await
        .expect("remote resource server");
    serve_api(listener, &rs);
    let url = format!("{origin}/api/me");
    let key = ClientKey::es256("k1");
    for format in ["jwt", "opaque"] {
        let client = h
            .confidential_client(json!({"access_token_format": format}))
            .await;
        let token = token_for(&h, &client, &resource, "api:read", None).await;
        let reply = call(&url, "Bearer", &token, None).await;
        assert_eq!(reply.status, 200, "{format}: {}", reply.text);
        assert_eq!(reply.body["client_id"], client.id.as_str());
        assert_eq!(reply.body["scopes"], json!(["api:read"]));
        // DPoP-bound, remotely: the proof is checked and remembered by the service.
        let bound = token_for(&h, &client, &resource, "api:read", Some(&key)).await;
        let good = proof(&h, &key, "GET", &url, Some(&bound));
        assert_eq!(
            call(&url, "DPoP", &bound, Some(&good)).await.status,
            200,
            "{format}"
        );
        assert_eq!(
            call(&url, "DPoP", &bound, Some(&good))
                .await
                .status
                .as_u16(),
            401,
            "{format}: replayed proof"
        );
        assert_eq!(
            call(&url, "Bearer", &bound, None).await.status.as_u16(),
            401,
            "{format}: bound token as bearer"
        );
        // Another resource's token.
        let other = token_for(&h, &client, "https://api.example/a", "api:read", None).await;
        assert_eq!(
            call(&url, "Bearer", &other, None).await.status.as_u16(),
            401,
            "{format}: not for this resource"
        );
    }
    // Revocation of an opaque token is seen once the cached answer is older than its bound.
    let client = h.confidential_client(json!({})).await;
    let token = token_for(&h, &client, &resource, "api:read", None).await;
    assert_eq!(call(&url, "Bearer", &token, None).await.status, 200);
    assert_eq!(
        h.post_as(&client, "/revoke", &[("token", &token)])
            .await
            .status,
        200
    );
    let fresh = ResourceServer::remote(&h.base, &resource)
        .introspection_client(&rs_client.id, rs_client.secret.as_deref().expect("secret"))
        .introspection_cache(std::time::Duration::ZERO)
        .allow_http_loopback(true)
        .clock(h.clock.clone())
        .build()
        .await
        .expect("remote resource server");
    let uncached = another_listener(&fresh).await;
    assert_eq!(
        call(&uncached, "Bearer", &token, None)
            .await
            .status
            .as_u16(),
        401,
        "revoked, asked afresh"
    );
    // Without an introspection client, opaque tokens cannot be verified; JWTs still can.
    let jwt_only = ResourceServer::remote(&h.base, &resource)
        .allow_http_loopback(true)
        .clock(h.clock.clone())
        .build()
        .await
        .expect("build");
    let jwt_url = another_listener(&jwt_only).await;
    let opaque = token_for(&h, &client, &resource, "api:read", None).await;
    assert_eq!(
        call(&jwt_url, "Bearer", &opaque, None)
            .await
            .status
            .as_u16(),
        401
    );
    // A remote issuer that is not what it claims is refused at build.
    assert!(
        ResourceServer::remote("http://127.0.0.1:9/nothing", &resource)
            .allow_http_loopback(true)
            .build()
            .await
            .is_err()
    );
    assert!(
        ResourceServer::remote(&h.base, &resource)
            .build()
            .await
            .is_err(),
        "http refused without allow_http_loopback"
    );
    let unverifiable = ResourceServer::remote(&h.base, &resource)
        .allow_http_loopback(true)
        .check_revocation(true)
        .build()
        .await;
    assert!(
        unverifiable.is_err(),
        "revocation checks need an introspection client"
    );
    // RFC 8414 §3.3: metadata naming another issuer than the one asked is refused at build.
    let impostor = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let impostor_url = format!("http://{}", impostor.local_addr().expect("addr"));
    let doc = json!({"issuer": h.base, "jwks_uri": h.url("/jwks")});
    let app = Router::new().route(
        "/.well-known/oauth-authorization-server",
        get(move || {
            let doc = doc.clone();
            async move { Json(doc) }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(impostor, app).await;
    });
    let refused = ResourceServer::remote(&impostor_url, &resource)
        .allow_http_loopback(true)
        .build()
        .await;
    assert!(
        matches!(
            refused,
            Err(lockspire::resource::ResourceServerError::Issuer(_))
        ),
        "{refused:?}"
    );
}

async fn introspection_shows_a_resource_server_the_tokens_for_its_audience_only(backend: Backend) {
    let h = Harness::start(backend).await;
    let rs = h
        .confidential_client(json!({"resource_server_for": ["https://api.example/a"]}))
        .await;
    let bystander = h.confidential_client(json!({})).await;
    let client = h.confidential_client(json!({})).await;
    let for_a = token_for(&h, &client, "https://api.example/a", "api:read", None).await;
    let for_b = token_for(&h, &client, "https://api.example/b", "api:read", None).await;
    let seen = h.post_as(&rs, "/introspect", &[("token", &for_a)]).await;
    assert_eq!(seen.body["active"], true, "{}", seen.text);
    assert_eq!(seen.body["client_id"], client.id.as_str());
    assert_eq!(seen.body["aud"], json!(["https://api.example/a"]));
    // A refresh token is never for a resource server, whatever its audience.
    let tokens = user_tokens(
        &h,
        &client,
        "openid offline_access api:read",
        "https://api.example/a",
    )
    .await;
    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned();
    let access = tokens["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    assert_eq!(
        h.post_as(&rs, "/introspect", &[("token", &access)])
            .await
            .body["active"],
        true
    );
    assert_eq!(
        h.post_as(&client, "/introspect", &[("token", &refresh)])
            .await
            .body["active"],
        true,
        "its own client sees it"
    );
    assert_eq!(
        h.post_as(&rs, "/introspect", &[("token", &refresh)])
            .await
            .body,
        json!({"active": false}),
        "RFC 7662 §4"
    );
    for (who, caller, token) in [
        ("another resource's token", &rs, &for_b),
        ("a bystander", &bystander, &for_a),
    ] {
        let reply = h.post_as(caller, "/introspect", &[("token", token)]).await;
        assert_eq!(reply.body, json!({"active": false}), "{who}: RFC 7662 §4");
    }
    // Clients cannot make themselves resource servers.
    let registered = h.http().post(h.url("/register")).json(&json!({
        "redirect_uris": ["https://rp.example/cb"], "resource_server_for": ["https://api.example/a"],
    })).send().await.expect("register");
    let registered = Reply::from(registered).await;
    assert_eq!(
        (registered.status.as_u16(), registered.error()),
        (400, "invalid_client_metadata"),
        "{}",
        registered.text
    );
    let unknown = h.ls.create_client(None, json!({"redirect_uris": ["https://rp.example/cb"], "resource_server_for": ["https://not-ours.example/"]})).await;
    assert!(
        unknown.is_err(),
        "only resources the issuer grants tokens for"
    );
}
