//! Mutual TLS client authentication and certificate-bound tokens (RFC 8705), with Lockspire
//! terminating TLS itself. Certificates are made with rcgen at test time.

mod common;

use std::sync::Arc;

use common::{Pki, TestResolver, default_users};
use lockspire::{Lockspire, MtlsConfig, SecretKey};
use rcgen::{CertificateParams, DnType, KeyPair, SanType};
use reqwest013 as reqwest;
use serde_json::{Value, json};

/// A self-signed client certificate and the JWK of its key.
fn self_signed(cn: &str) -> (String, String, Value) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, cn);
    let cert = params.self_signed(&key).expect("self-signed");
    let raw = key.public_key_raw();
    use base64::Engine;
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let jwk = json!({"kty": "EC", "crv": "P-256", "x": b.encode(&raw[1..33]), "y": b.encode(&raw[33..65])});
    (cert.pem(), key.serialize_pem(), jwk)
}

struct Server {
    base: String,
    ls: Lockspire,
    server_ca: String,
    _db: common::TestDatabase,
}

async fn start(client_ca: &Pki) -> Server {
    let server_pki = Pki::new("Test server CA");
    let (server_cert, server_key) = server_pki.issue(
        "127.0.0.1",
        vec![SanType::IpAddress("127.0.0.1".parse().expect("ip"))],
        false,
    );
    let db = common::TestDatabase::new(common::Backend::Sqlite).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("https://{}", listener.local_addr().expect("addr"));
    let ls = Lockspire::builder()
        .issuer(&base)
        .expect("issuer")
        .database(&db.url)
        .secret_key(SecretKey::generate())
        .account_resolver(TestResolver::new(default_users()))
        .mtls(MtlsConfig {
            client_ca_pem: Some(client_ca.ca_pem.clone().into_bytes()),
            ..MtlsConfig::default()
        })
        .build()
        .await
        .expect("build");
    let app: axum::Router = ls.router();
    tokio::spawn(async move {
        let _ = lockspire::serve_tls(listener, app, server_cert.as_bytes(), server_key.as_bytes())
            .await;
    });
    Server {
        base,
        ls,
        server_ca: server_pki.ca_pem,
        _db: db,
    }
}

fn client(server: &Server, identity: Option<(&str, &str)>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(server.server_ca.as_bytes()).expect("ca")])
        .redirect(reqwest::redirect::Policy::none());
    if let Some((cert, key)) = identity {
        b = b.identity(
            reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).expect("identity"),
        );
    }
    b.build().expect("client")
}

/// Alice authorizes `client_id` in a browser (which presents no certificate); returns the code
/// and PKCE verifier.
async fn authorize_as_alice(server: &Server, client_id: &str) -> (String, String) {
    // The test host has no login route here: alice's session cookie goes straight in the jar.
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let now = lockspire::Clock::now(&lockspire::SystemClock);
    jar.add_cookie_str(
        &format!("test_session=alice.{now}; Path=/"),
        &server.base.parse().expect("url"),
    );
    let browser = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(server.server_ca.as_bytes()).expect("ca")])
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(jar)
        .build()
        .expect("browser");
    let pkce = common::Pkce::new();
    let authorize = format!(
        "{}/authorize?response_type=code&client_id={client_id}&redirect_uri=https%3A%2F%2Frp.example%2Fcb&scope=openid%20offline_access&code_challenge={}&code_challenge_method=S256",
        server.base, pkce.challenge
    );
    let to_consent = browser.get(&authorize).send().await.expect("authorize");
    let consent_url = to_consent.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let html = browser
        .get(&consent_url)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    let decided = browser
        .post(format!("{}/consent", server.base))
        .form(&[
            (
                "interaction",
                common::hidden_field(&html, "interaction").expect("ix"),
            ),
            ("csrf", common::hidden_field(&html, "csrf").expect("csrf")),
            ("decision", "allow".into()),
        ])
        .send()
        .await
        .expect("consent");
    let back =
        url::Url::parse(decided.headers()["location"].to_str().expect("location")).expect("url");
    (
        back.query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .expect("code"),
        pkce.verifier,
    )
}

/// A refresh-token request from the client `c` (with whatever certificate it presents).
async fn refresh(server: &Server, c: &reqwest::Client, rt: &str, client_id: &str) -> (u16, Value) {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", rt),
        ("client_id", client_id),
    ];
    post(c, format!("{}/token", server.base), &form).await
}

async fn post(c: &reqwest::Client, url: String, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = c.post(url).form(form).send().await.expect("post");
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_auth_matches_the_registered_subject_and_binds_tokens() {
    let ca = Pki::new("Client CA");
    let server = start(&ca).await;
    let doc: Value = client(&server, None)
        .get(format!("{}/.well-known/openid-configuration", server.base))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(doc["tls_client_certificate_bound_access_tokens"], true);
    assert!(
        doc["token_endpoint_auth_methods_supported"]
            .as_array()
            .expect("methods")
            .iter()
            .any(|m| m == "tls_client_auth")
    );

    let id = server.ls.create_client(None, json!({
        "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_dns": "client.example",
        "grant_types": ["client_credentials"],
    })).await.expect("register").client_id;
    let (good_cert, good_key) = ca.issue(
        "client-1",
        vec![SanType::DnsName("client.example".try_into().expect("dns"))],
        true,
    );
    let with_cert = client(&server, Some((&good_cert, &good_key)));
    let (status, tokens) = post(
        &with_cert,
        format!("{}/token", server.base),
        &[("grant_type", "client_credentials"), ("client_id", &id)],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let at = tokens["access_token"].as_str().expect("at").to_owned();

    // Introspection shows the binding.
    let (_, intro) = post(
        &with_cert,
        format!("{}/introspect", server.base),
        &[("token", &at), ("client_id", &id)],
    )
    .await;
    assert_eq!(intro["active"], true);
    assert!(
        intro["cnf"]["x5t#S256"]
            .as_str()
            .is_some_and(|t| t.len() == 43),
        "{intro}"
    );

    // Wrong subject, another CA, or no certificate at all: invalid_client.
    let (wrong_cert, wrong_key) = ca.issue(
        "client-2",
        vec![SanType::DnsName("other.example".try_into().expect("dns"))],
        true,
    );
    let (s, e) = post(
        &client(&server, Some((&wrong_cert, &wrong_key))),
        format!("{}/token", server.base),
        &[("grant_type", "client_credentials"), ("client_id", &id)],
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (401, Some("invalid_client")),
        "wrong SAN"
    );
    let rogue_ca = Pki::new("Rogue CA");
    let (rogue_cert, rogue_key) = rogue_ca.issue(
        "client-1",
        vec![SanType::DnsName("client.example".try_into().expect("dns"))],
        true,
    );
    let (s, e) = post(
        &client(&server, Some((&rogue_cert, &rogue_key))),
        format!("{}/token", server.base),
        &[("grant_type", "client_credentials"), ("client_id", &id)],
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (401, Some("invalid_client")),
        "a certificate from another CA"
    );
    let (s, _) = post(
        &client(&server, None),
        format!("{}/token", server.base),
        &[("grant_type", "client_credentials"), ("client_id", &id)],
    )
    .await;
    assert_eq!(s, 401, "no certificate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_auth_authenticates_a_pushed_authorization_request() {
    // RFC 9126 §2: the push takes the client authentication of the token endpoint, mTLS
    // included.
    let ca = Pki::new("Client CA");
    let server = start(&ca).await;
    let id = server.ls.create_client(None, json!({
        "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_dns": "client.example",
        "redirect_uris": ["https://rp.example/cb"],
    })).await.expect("register").client_id;
    let (cert, key) = ca.issue(
        "client-1",
        vec![SanType::DnsName("client.example".try_into().expect("dns"))],
        true,
    );
    let challenge = common::Pkce::new().challenge;
    let form = [
        ("client_id", id.as_str()),
        ("response_type", "code"),
        ("redirect_uri", "https://rp.example/cb"),
        ("scope", "openid"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let (status, pushed) = post(
        &client(&server, Some((&cert, &key))),
        format!("{}/par", server.base),
        &form,
    )
    .await;
    assert_eq!(status, 201, "{pushed}");
    assert!(
        pushed["request_uri"]
            .as_str()
            .is_some_and(|u| u.starts_with("urn:ietf:params:oauth:request_uri:"))
    );
    let (status, refused) = post(
        &client(&server, None),
        format!("{}/par", server.base),
        &form,
    )
    .await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (401, Some("invalid_client")),
        "no certificate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_token_replayed_without_its_certificate_is_refused_at_userinfo() {
    let ca = Pki::new("Client CA");
    let server = start(&ca).await;
    let (cert, key, jwk) = self_signed("native app");
    let id = server.ls.create_client(None, json!({
        "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": {"keys": [jwk]},
        "grant_types": ["authorization_code", "refresh_token"], "redirect_uris": ["https://rp.example/cb"],
    })).await.expect("register").client_id;
    let with_cert = client(&server, Some((&cert, &key)));
    let (code, verifier) = authorize_as_alice(&server, &id).await;
    let pkce = common::Pkce {
        verifier,
        challenge: String::new(),
    };
    let (status, tokens) = post(
        &with_cert,
        format!("{}/token", server.base),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://rp.example/cb"),
            ("code_verifier", &pkce.verifier),
            ("client_id", &id),
        ],
    )
    .await;
    assert_eq!(
        status, 200,
        "self-signed certificate matching the registered key: {tokens}"
    );
    let at = tokens["access_token"].as_str().expect("at");
    let ok = with_cert
        .get(format!("{}/userinfo", server.base))
        .bearer_auth(at)
        .send()
        .await
        .expect("userinfo");
    assert_eq!(ok.status(), 200, "with its certificate");
    let stolen = client(&server, None)
        .get(format!("{}/userinfo", server.base))
        .bearer_auth(at)
        .send()
        .await
        .expect("userinfo");
    assert_eq!(stolen.status(), 401, "replayed without the certificate");
    assert!(
        stolen.headers()["www-authenticate"]
            .to_str()
            .unwrap_or("")
            .contains("invalid_token")
    );
    // Refresh needs the same certificate too.
    let rt = tokens["refresh_token"].as_str().expect("rt");
    let (other_cert, other_key, _) = self_signed("attacker");
    let (s, _) = refresh(
        &server,
        &client(&server, Some((&other_cert, &other_key))),
        rt,
        &id,
    )
    .await;
    assert_eq!(
        s, 401,
        "another certificate does not authenticate this client"
    );
    let (s, refreshed) = refresh(&server, &with_cert, rt, &id).await;
    assert_eq!(s, 200, "{refreshed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_methods_need_mutual_tls_configured() {
    let h = common::Harness::start(common::Backend::Sqlite).await;
    let r = h.ls.create_client(None, json!({"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_dns": "c.example", "grant_types": ["client_credentials"]})).await;
    assert_eq!(
        r.err().map(|e| e.code().as_str()),
        Some("invalid_client_metadata")
    );
    let doc: Value = h
        .http()
        .get(h.url("/.well-known/openid-configuration"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert!(
        !doc["token_endpoint_auth_methods_supported"]
            .as_array()
            .expect("methods")
            .iter()
            .any(|m| m == "tls_client_auth"),
        "discovery is truthful"
    );
    assert!(
        doc.get("tls_client_certificate_bound_access_tokens")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_cert_header_is_believed_only_from_trusted_proxies() {
    let ca = Pki::new("Client CA");
    let (cert_pem, _) = ca.issue(
        "client-1",
        vec![SanType::DnsName("client.example".try_into().expect("dns"))],
        true,
    );
    let header = common::client_cert_header(&cert_pem);
    for (trusted, expected) in [
        (vec!["127.0.0.1".parse().expect("ip")], 200u16),
        (vec![], 401u16),
    ] {
        let db = common::TestDatabase::new(common::Backend::Sqlite).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let ls = Lockspire::builder()
            .issuer(&base)
            .expect("issuer")
            .database(&db.url)
            .secret_key(SecretKey::generate())
            .account_resolver(TestResolver::new(default_users()))
            .mtls(MtlsConfig {
                client_ca_pem: Some(ca.ca_pem.clone().into_bytes()),
                trusted_proxies: trusted,
                ..MtlsConfig::default()
            })
            .build()
            .await
            .expect("build");
        let id = ls.create_client(None, json!({
            "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_dns": "client.example", "grant_types": ["client_credentials"],
        })).await.expect("register").client_id;
        let app: axum::Router = ls.router();
        tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await;
        });
        let resp = reqwest::Client::new()
            .post(format!("{base}/token"))
            .header("client-cert", &header)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id.as_str()),
            ])
            .send()
            .await
            .expect("token");
        assert_eq!(
            resp.status().as_u16(),
            expected,
            "trusted proxy: {}",
            expected == 200
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_refresh_token_needs_the_same_certificate() {
    let ca = Pki::new("Client CA");
    let server = start(&ca).await;
    let id = server.ls.create_client(None, json!({
        "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_dns": "client.example",
        "grant_types": ["authorization_code", "refresh_token"], "redirect_uris": ["https://rp.example/cb"],
    })).await.expect("register").client_id;
    // Two valid certificates for the same client identity.
    let san = || vec![SanType::DnsName("client.example".try_into().expect("dns"))];
    let (first_cert, first_key) = ca.issue("client-a", san(), true);
    let (second_cert, second_key) = ca.issue("client-b", san(), true);
    let first = client(&server, Some((&first_cert, &first_key)));
    let second = client(&server, Some((&second_cert, &second_key)));
    let (code, verifier) = authorize_as_alice(&server, &id).await;
    let (status, tokens) = post(
        &first,
        format!("{}/token", server.base),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://rp.example/cb"),
            ("code_verifier", &verifier),
            ("client_id", &id),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let rt = tokens["refresh_token"].as_str().expect("rt");
    let (s, e) = refresh(&server, &second, rt, &id).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "the client authenticates, but not with the bound certificate"
    );
    let (s, _) = refresh(&server, &first, rt, &id).await;
    assert_eq!(s, 200, "the refused attempt did not consume the token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_names_the_mtls_endpoint_aliases_when_configured() {
    let db = common::TestDatabase::new(common::Backend::Sqlite).await;
    let ls = Lockspire::builder()
        .issuer("https://auth.example")
        .expect("issuer")
        .database(&db.url)
        .secret_key(SecretKey::generate())
        .account_resolver(TestResolver::new(default_users()))
        .mtls(MtlsConfig {
            endpoint_base: Some("https://mtls.auth.example".into()),
            ..MtlsConfig::default()
        })
        .build()
        .await
        .expect("build");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app: axum::Router = ls.router();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let doc: Value = reqwest::get(format!("{base}/.well-known/openid-configuration"))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(
        doc["mtls_endpoint_aliases"]["token_endpoint"],
        "https://mtls.auth.example/token"
    );
    assert_eq!(
        doc["mtls_endpoint_aliases"]["pushed_authorization_request_endpoint"],
        "https://mtls.auth.example/par"
    );
    assert_eq!(doc["tls_client_certificate_bound_access_tokens"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_dn_matching_cannot_be_forged_with_a_comma_in_a_value() {
    let ca = Pki::new("Client CA");
    let server = start(&ca).await;
    let id = server.ls.create_client(None, json!({
        "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "CN=payments,O=Acme",
        "grant_types": ["client_credentials"],
    })).await.expect("register").client_id;
    let (good_cert, good_key) = ca.issue("payments", vec![], true);
    let (s, body) = post(
        &client(&server, Some((&good_cert, &good_key))),
        format!("{}/token", server.base),
        &[("grant_type", "client_credentials"), ("client_id", &id)],
    )
    .await;
    assert_eq!(s, 200, "the registered subject: {body}");
    // One CN whose value contains ", O=Acme": it must not read as two attributes.
    let (forged_cert, forged_key) = ca.issue("payments, O=Acme", vec![], true);
    let (s, _) = post(
        &client(&server, Some((&forged_cert, &forged_key))),
        format!("{}/token", server.base),
        &[("grant_type", "client_credentials"), ("client_id", &id)],
    )
    .await;
    assert_eq!(s, 401, "a comma inside a value is not an RDN boundary");
    let bad = server.ls.create_client(None, json!({"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "not a dn", "grant_types": ["client_credentials"]})).await;
    assert_eq!(
        bad.err().map(|e| e.code().as_str()),
        Some("invalid_client_metadata")
    );
}

/// RFC 8705 §3 at a protected resource of the host: a certificate-bound token works with its
/// certificate, and without it (or with another) it is `invalid_token`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_bound_token_reaches_a_protected_resource_only_with_its_certificate_sqlite() {
    a_certificate_bound_token_reaches_a_protected_resource_only_with_its_certificate(
        common::Backend::Sqlite,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_bound_token_reaches_a_protected_resource_only_with_its_certificate_postgres()
{
    a_certificate_bound_token_reaches_a_protected_resource_only_with_its_certificate(
        common::Backend::Postgres,
    )
    .await;
}

async fn a_certificate_bound_token_reaches_a_protected_resource_only_with_its_certificate(
    backend: common::Backend,
) {
    let ca = Pki::new("Client CA");
    let header_of = common::client_cert_header;
    let san = |name: &str| vec![SanType::DnsName(name.try_into().expect("dns"))];
    let (cert, _) = ca.issue("client-1", san("client.example"), true);
    let (other, _) = ca.issue("client-2", san("other.example"), true);
    let db = common::TestDatabase::new(backend).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let resource = format!("{base}/api");
    let ls = Lockspire::builder()
        .issuer(&base)
        .expect("issuer")
        .database(&db.url)
        .secret_key(SecretKey::generate())
        .account_resolver(TestResolver::new(default_users()))
        .resources([resource.clone()])
        .mtls(MtlsConfig {
            client_ca_pem: Some(ca.ca_pem.clone().into_bytes()),
            trusted_proxies: vec!["127.0.0.1".parse().expect("ip")],
            ..MtlsConfig::default()
        })
        .build()
        .await
        .expect("build");
    let id = ls.create_client(None, json!({
        "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_dns": "client.example",
        "grant_types": ["client_credentials"], "tls_client_certificate_bound_access_tokens": true,
    })).await.expect("register").client_id;
    let rs = ls.resource_server(&resource).expect("resource").build();
    let app: axum::Router = axum::Router::new()
        .route(
            "/api/me",
            axum::routing::get(|t: lockspire::resource::AccessToken| async move {
                format!("{:?}", t.binding())
            }),
        )
        .route_layer(rs.require_token())
        .merge(rs.metadata_router())
        .merge(ls.router());
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await;
    });
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{base}/token"))
        .header("client-cert", header_of(&cert))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("resource", resource.as_str()),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let at = token["access_token"].as_str().expect("access_token");
    let call = |cert: Option<String>| {
        let mut req = http.get(format!("{base}/api/me")).bearer_auth(at);
        if let Some(h) = cert {
            req = req.header("client-cert", h);
        }
        async move { req.send().await.expect("api") }
    };
    let ok = call(Some(header_of(&cert))).await;
    assert_eq!(ok.status(), 200);
    assert!(
        ok.text().await.expect("body").contains("Certificate"),
        "the handler sees the binding"
    );
    for (what, presented) in [
        ("no certificate", None),
        ("another certificate", Some(header_of(&other))),
    ] {
        let refused = call(presented).await;
        assert_eq!(refused.status(), 401, "{what}");
        let challenge = refused.headers()["www-authenticate"]
            .to_str()
            .unwrap_or("")
            .to_owned();
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains("invalid_token"),
            "{what}: {challenge}"
        );
    }
    let doc: Value = http
        .get(format!("{base}/.well-known/oauth-protected-resource/api"))
        .send()
        .await
        .expect("metadata")
        .json()
        .await
        .expect("json");
    assert_eq!(
        doc["tls_client_certificate_bound_access_tokens"], true,
        "RFC 9728 §2"
    );
}
