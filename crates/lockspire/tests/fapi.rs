//! FAPI 2.0 Security Profile and FAPI 2.0 Message Signing, server-wide and per client: one
//! test module per requirement of the profiles, named after it, each on SQLite and PostgreSQL,
//! over HTTP against the running router. Clients authenticate with `private_key_jwt` (assertions
//! signed here by `jsonwebtoken`) or mutual TLS (certificates made by rcgen, forwarded as a
//! TLS-terminating proxy does in `Client-Cert`), and bind their tokens with DPoP or their
//! certificate. Every refusal test sends an unregistered redirect URI too, and shows that the
//! browser is never sent there.

mod common;

use std::collections::HashMap;

use common::{Backend, ClientKey, Consent, Harness, Pkce, Pki, Reply, jwks, jwt_parts};
use lockspire::{Builder, Clock, Lifetimes, MtlsConfig, SecurityProfile};
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde_json::{Value, json};

const SECURITY: SecurityProfile = SecurityProfile::Fapi2Security;
const SIGNING: SecurityProfile = SecurityProfile::Fapi2MessageSigning;

/// A redirect URI no client registered.
const ATTACKER: &str = "https://attacker.example/cb";

/// The signing algs FAPI 2.0 allows.
const FAPI_ALGS: [&str; 3] = ["PS256", "ES256", "EdDSA"];

/// A server with client certificates arriving from a trusted proxy (this test, on loopback).
struct Fapi {
    h: Harness,
    pki: Pki,
}

async fn server(backend: Backend, profile: SecurityProfile) -> Fapi {
    server_with(backend, move |b| b.security_profile(profile)).await
}

async fn server_with(backend: Backend, configure: impl FnOnce(Builder) -> Builder) -> Fapi {
    let pki = Pki::new("FAPI client CA");
    let ca = pki.ca_pem.clone().into_bytes();
    let h = Harness::start_with(backend, move |b| {
        configure(b.mtls(MtlsConfig {
            client_ca_pem: Some(ca),
            trusted_proxies: vec!["127.0.0.1".parse().expect("ip")],
            ..MtlsConfig::default()
        }))
    })
    .await;
    Fapi { h, pki }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Auth {
    PrivateKeyJwt,
    Mtls,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bind {
    Dpop,
    Certificate,
}

/// A registered client and what it holds.
struct Client {
    id: String,
    redirect_uri: String,
    /// Signs its assertions and request objects.
    key: ClientKey,
    auth: Auth,
    /// The `Client-Cert` header of its certificate, when it has one.
    cert: Option<String>,
    /// Its DPoP key, when it binds tokens with DPoP.
    dpop: Option<ClientKey>,
}

fn dns_name() -> String {
    let label: String = common::random_b64(8)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_lowercase();
    format!("c{label}.client.example")
}

impl Fapi {
    /// Registers a client that authenticates with `auth` and binds its tokens with `bind`.
    async fn client(&self, auth: Auth, bind: Bind, extra: Value) -> Client {
        let key = ClientKey::es256("sig-1");
        let name = dns_name();
        let mut meta = json!({
            "client_name": "FAPI client",
            "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
            "redirect_uris": ["https://rp.example/cb"],
            "jwks": jwks(&[&key]),
            "dpop_bound_access_tokens": bind == Bind::Dpop,
            "tls_client_certificate_bound_access_tokens": bind == Bind::Certificate,
        });
        match auth {
            Auth::PrivateKeyJwt => meta["token_endpoint_auth_method"] = json!("private_key_jwt"),
            Auth::Mtls => {
                meta["token_endpoint_auth_method"] = json!("tls_client_auth");
                meta["tls_client_auth_san_dns"] = json!(name);
            }
        }
        if let (Value::Object(m), Value::Object(e)) = (&mut meta, extra) {
            m.extend(e);
        }
        let registered = self
            .h
            .ls
            .create_client(None, meta.clone())
            .await
            .unwrap_or_else(|e| panic!("register {meta}: {e:?}"));
        let uses_cert = auth == Auth::Mtls || bind == Bind::Certificate;
        Client {
            id: registered.client_id,
            redirect_uri: meta["redirect_uris"][0]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            key,
            auth,
            cert: uses_cert.then(|| self.pki.client_cert_header(&name)),
            dpop: (bind == Bind::Dpop).then(|| ClientKey::es256("dpop-1")),
        }
    }
}

/// A DPoP proof (RFC 9449 §4.2) by `key` for `POST url`, issued `skew` seconds from now.
fn proof(h: &Harness, key: &ClientKey, url: &str, skew: i64) -> String {
    let header = json!({"typ": "dpop+jwt", "alg": key.alg_name(), "jwk": key.public_members()});
    let claims = json!({"jti": common::random_b64(16), "htm": "POST", "htu": url, "iat": h.clock.now() + skew});
    key.sign_with_header(&header, &claims)
}

impl Client {
    /// A client assertion (RFC 7523 §3) with the `aud` given, issued `skew` seconds from now.
    fn assertion_with(&self, h: &Harness, aud: Value, skew: i64) -> String {
        let now = h.clock.now() + skew;
        self.key.sign(&json!({
            "iss": self.id, "sub": self.id, "aud": aud, "jti": common::random_b64(16),
            "iat": now, "exp": now + 60,
        }))
    }

    /// POSTs `params` to `path` as this client: its authentication (an assertion whose `aud` is
    /// the issuer, or its certificate), its certificate, and a DPoP proof when it uses DPoP.
    async fn post(&self, h: &Harness, path: &str, params: &[(&str, &str)]) -> Reply {
        let assertion = self.assertion_with(h, json!(h.base), 0);
        self.post_raw(h, path, params, Some(&assertion), self.dpop.as_ref(), 0)
            .await
    }

    /// [`Client::post`] to the server at `base`, another process on the same database.
    async fn post_at(&self, h: &Harness, base: &str, path: &str, params: &[(&str, &str)]) -> Reply {
        let assertion = self.assertion_with(h, json!(h.base), 0);
        self.send(
            h,
            base,
            path,
            params,
            Some(&assertion),
            self.dpop.as_ref(),
            0,
        )
        .await
    }

    /// [`Client::post`] with the assertion and DPoP proof chosen by the caller.
    async fn post_raw(
        &self,
        h: &Harness,
        path: &str,
        params: &[(&str, &str)],
        assertion: Option<&str>,
        dpop: Option<&ClientKey>,
        dpop_skew: i64,
    ) -> Reply {
        self.send(h, &h.base, path, params, assertion, dpop, dpop_skew)
            .await
    }

    /// POSTs to `path` of the server at `base`; the proof and assertion name the issuer's URLs.
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        h: &Harness,
        base: &str,
        path: &str,
        params: &[(&str, &str)],
        assertion: Option<&str>,
        dpop: Option<&ClientKey>,
        dpop_skew: i64,
    ) -> Reply {
        let mut form: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        form.push(("client_id".into(), self.id.clone()));
        if let (Auth::PrivateKeyJwt, Some(assertion)) = (self.auth, assertion) {
            form.push((
                "client_assertion_type".into(),
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
            ));
            form.push(("client_assertion".into(), assertion.to_owned()));
        }
        let mut req = h.http().post(format!("{base}{path}"));
        if let Some(cert) = &self.cert {
            req = req.header("client-cert", cert);
        }
        if let Some(key) = dpop {
            req = req.header("dpop", proof(h, key, &h.url(path), dpop_skew));
        }
        Reply::from(req.form(&form).send().await.expect("request")).await
    }

    /// An authorization request's parameters (`client_id` apart: the push is authenticated).
    fn request(&self, pkce: &Pkce) -> Vec<(&'static str, String)> {
        vec![
            ("response_type", "code".into()),
            ("redirect_uri", self.redirect_uri.clone()),
            ("scope", "openid offline_access api:read".into()),
            ("state", "st-1".into()),
            ("nonce", "n-1".into()),
            ("code_challenge", pkce.challenge.clone()),
            ("code_challenge_method", "S256".into()),
        ]
    }

    /// The request as a signed request object (RFC 9101) with `nbf` and `exp` from now.
    fn request_object(&self, h: &Harness, params: &[(&str, String)], nbf: i64, exp: i64) -> String {
        let now = h.clock.now();
        let mut claims = json!({
            "iss": self.id, "client_id": self.id, "aud": h.base, "jti": common::random_b64(16),
            "iat": now, "nbf": now + nbf, "exp": now + exp,
        });
        for (k, v) in params {
            claims[*k] = json!(v);
        }
        self.key.sign(&claims)
    }

    /// Pushes the request (RFC 9126): under Message Signing as a signed request object.
    async fn push(
        &self,
        h: &Harness,
        profile: SecurityProfile,
        params: &[(&str, String)],
    ) -> Reply {
        if profile.signs_messages() {
            let object = self.request_object(h, params, 0, 300);
            self.post(h, "/par", &[("request", &object)]).await
        } else {
            let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            self.post(h, "/par", &pairs).await
        }
    }

    /// Alice's browser at `/authorize` with a pushed request: the parameters of the response
    /// (a JARM response's claims, verified with the server's JWKS).
    async fn authorize(&self, h: &Harness, request_uri: &str) -> HashMap<String, String> {
        let url = front_channel(h, &[("client_id", &self.id), ("request_uri", request_uri)]);
        let outcome = h
            .browser(Some("alice"))
            .run(&url, &self.redirect_uri, Consent::Allow)
            .await;
        let params = outcome.redirect_params();
        let Some(jwt) = params.get("response") else {
            return params;
        };
        let (header, _) = jwt_parts(jwt);
        assert!(
            FAPI_ALGS.contains(&header["alg"].as_str().unwrap_or("")),
            "{header}"
        );
        let claims = common::verify_with_jwks(h, jwt, &self.id).await;
        claims
            .as_object()
            .expect("claims")
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
            .collect()
    }

    /// Pushes, authorizes and redeems: the token response.
    async fn tokens(&self, h: &Harness, profile: SecurityProfile) -> Value {
        let pkce = Pkce::new();
        let pushed = self.push(h, profile, &self.request(&pkce)).await;
        assert_eq!(pushed.status, StatusCode::CREATED, "{}", pushed.text);
        let request_uri = pushed.body["request_uri"].as_str().expect("request_uri");
        let response = self.authorize(h, request_uri).await;
        let code = response
            .get("code")
            .unwrap_or_else(|| panic!("no code: {response:?}"));
        let reply = self.redeem(h, code, &pkce.verifier).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.body
    }

    async fn redeem(&self, h: &Harness, code: &str, verifier: &str) -> Reply {
        self.post(
            h,
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &self.redirect_uri),
                ("code_verifier", verifier),
            ],
        )
        .await
    }
}

/// `/authorize` with `client`'s request `params` in the query.
fn browser_request(h: &Harness, client: &Client, params: &[(&'static str, String)]) -> String {
    let mut pairs: Vec<(&str, &str)> = vec![("client_id", client.id.as_str())];
    pairs.extend(params.iter().map(|(k, v)| (*k, v.as_str())));
    front_channel(h, &pairs)
}

/// `/authorize` with `params` in the query.
fn front_channel(h: &Harness, params: &[(&str, &str)]) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    h.url(&format!("/authorize?{query}"))
}

/// The request at `/authorize` is refused on a page: `400`, and no redirect anywhere.
async fn assert_shown_not_redirected(h: &Harness, url: &str) -> String {
    let resp = h.http().get(url).send().await.expect("authorize");
    let status = resp.status();
    let location = resp.headers().get(LOCATION).cloned();
    let body = resp.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
    assert!(location.is_none(), "{url} redirected to {location:?}");
    assert!(
        !body.contains("attacker.example"),
        "the page links the attacker: {body}"
    );
    body
}

/// The request at `/authorize` is refused by a redirect to the client's registered URI, with
/// `error` and `iss`: as one verified JARM response when `jarm`, else in the query.
async fn assert_refused_to(h: &Harness, client: &Client, url: &str, error: &str, jarm: bool) {
    let resp = h.http().get(url).send().await.expect("authorize");
    let location = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        location.starts_with(&client.redirect_uri),
        "{url} → {location:?}"
    );
    assert_refused_to_location(h, client, &location, error, jarm).await;
}

/// The redirect `location` carries `error` and `iss`: as one verified JARM response when
/// `jarm` (and nothing in the clear), else in the query.
async fn assert_refused_to_location(
    h: &Harness,
    client: &Client,
    location: &str,
    error: &str,
    jarm: bool,
) {
    let url = url::Url::parse(location).expect("location");
    let raw: HashMap<String, String> = url.query_pairs().into_owned().collect();
    let params: HashMap<String, String> = if jarm {
        assert_eq!(
            raw.keys().collect::<Vec<_>>(),
            ["response"],
            "only JARM: {raw:?}"
        );
        common::verify_with_jwks(h, &raw["response"], &client.id)
            .await
            .as_object()
            .expect("claims")
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
            .collect()
    } else {
        assert!(!raw.contains_key("response"), "{raw:?}");
        raw
    };
    assert_eq!(
        params.get("error").map(String::as_str),
        Some(error),
        "{params:?}"
    );
    assert_eq!(params.get("iss"), Some(&h.base), "RFC 9207 iss: {params:?}");
}

// ---------------------------------------------------------------------------------------------
// The full flow: {private_key_jwt, mTLS} × {DPoP, certificate-bound} under both profiles.

async fn full_flow(backend: Backend, profile: SecurityProfile, auth: Auth, bind: Bind) {
    let f = server(backend, profile).await;
    let h = &f.h;
    let client = f.client(auth, bind, json!({})).await;
    let tokens = client.tokens(h, profile).await;
    let expected_type = if bind == Bind::Dpop { "DPoP" } else { "Bearer" };
    assert_eq!(tokens["token_type"], expected_type, "{tokens}");
    let id_token = tokens["id_token"].as_str().expect("id_token");
    let (header, _) = jwt_parts(id_token);
    assert!(
        FAPI_ALGS.contains(&header["alg"].as_str().unwrap_or("")),
        "{header}"
    );
    common::verify_with_jwks(h, id_token, &client.id).await;
    // The access token is sender-constrained: its confirmation names the key or certificate.
    let access = tokens["access_token"].as_str().expect("access_token");
    let introspected = client.post(h, "/introspect", &[("token", access)]).await;
    assert_eq!(introspected.body["active"], true, "{}", introspected.text);
    match bind {
        Bind::Dpop => {
            let jkt = client.dpop.as_ref().map(ClientKey::thumbprint);
            assert_eq!(introspected.body["cnf"]["jkt"].as_str(), jkt.as_deref());
        }
        Bind::Certificate => assert!(
            introspected.body["cnf"]["x5t#S256"].is_string(),
            "{}",
            introspected.text
        ),
    }
    // The refresh token is not rotated: used twice, it answers twice, and no new one comes.
    let refresh = tokens["refresh_token"].as_str().expect("refresh_token");
    for _ in 0..2 {
        let refreshed = client
            .post(
                h,
                "/token",
                &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
            )
            .await;
        assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text);
        assert!(
            refreshed.body.get("refresh_token").is_none(),
            "{}",
            refreshed.text
        );
        assert_eq!(refreshed.body["token_type"], expected_type);
    }
}

macro_rules! full_flows {
    ($($name:ident: $profile:expr, $auth:expr, $bind:expr;)*) => {
        mod full_flow_passes { $(
            mod $name {
                use super::super::*;
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() { full_flow(Backend::Sqlite, $profile, $auth, $bind).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() { full_flow(Backend::Postgres, $profile, $auth, $bind).await }
            }
        )* }
    };
}

full_flows! {
    security_private_key_jwt_dpop: SECURITY, Auth::PrivateKeyJwt, Bind::Dpop;
    security_private_key_jwt_certificate_bound: SECURITY, Auth::PrivateKeyJwt, Bind::Certificate;
    security_mtls_dpop: SECURITY, Auth::Mtls, Bind::Dpop;
    security_mtls_certificate_bound: SECURITY, Auth::Mtls, Bind::Certificate;
    message_signing_private_key_jwt_dpop: SIGNING, Auth::PrivateKeyJwt, Bind::Dpop;
    message_signing_private_key_jwt_certificate_bound: SIGNING, Auth::PrivateKeyJwt, Bind::Certificate;
    message_signing_mtls_dpop: SIGNING, Auth::Mtls, Bind::Dpop;
    message_signing_mtls_certificate_bound: SIGNING, Auth::Mtls, Bind::Certificate;
}

// ---------------------------------------------------------------------------------------------
// FAPI 2.0 Security Profile §5.3.2.2: authorization requests are pushed.

async fn pushed_authorization_requests_are_required(backend: Backend) {
    for profile in [SECURITY, SIGNING] {
        let f = server(backend, profile).await;
        let h = &f.h;
        let doc = h.discovery().await;
        assert_eq!(doc["require_pushed_authorization_requests"], true);
        let client = f.client(Auth::PrivateKeyJwt, Bind::Dpop, json!({})).await;
        let pkce = Pkce::new();
        let mut params = client.request(&pkce);
        // Through the browser, with the registered redirect URI: refused there.
        assert_refused_to(
            h,
            &client,
            &browser_request(h, &client, &params),
            "invalid_request",
            profile.signs_messages(),
        )
        .await;
        // With an unregistered one: shown, never redirected.
        params.retain(|(k, _)| *k != "redirect_uri");
        params.push(("redirect_uri", ATTACKER.into()));
        assert_shown_not_redirected(h, &browser_request(h, &client, &params)).await;
        // A request_uri is usable once.
        let pushed = client.push(h, profile, &client.request(&pkce)).await;
        let request_uri = pushed.body["request_uri"]
            .as_str()
            .expect("request_uri")
            .to_owned();
        client.authorize(h, &request_uri).await;
        let again = front_channel(
            h,
            &[("client_id", &client.id), ("request_uri", &request_uri)],
        );
        assert_shown_not_redirected(h, &again).await;
    }
}

// FAPI 2.0 §5.3.2.2: the redirect URI is named in the push and matches a registered one exactly.

async fn pushed_requests_name_a_registered_https_redirect_uri(backend: Backend) {
    // Even where the server lets confidential clients push unregistered redirect URIs (RFC
    // 9126 §2.4), a FAPI client cannot.
    let f = server_with(backend, |b| {
        b.allow_unregistered_redirect_uris_in_pushed_requests(true)
    })
    .await;
    let h = &f.h;
    let fapi = f
        .client(
            Auth::PrivateKeyJwt,
            Bind::Dpop,
            json!({"security_profile": "fapi2_security"}),
        )
        .await;
    let plain = h.confidential_client(json!({})).await;
    let pkce = Pkce::new();
    let mut params = fapi.request(&pkce);
    params.retain(|(k, _)| *k != "redirect_uri");
    let mut attacker = params.clone();
    attacker.push(("redirect_uri", ATTACKER.into()));
    let refused = fapi.push(h, SECURITY, &attacker).await;
    assert_eq!(
        (refused.status, refused.error()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let plain_push = h
        .post_as(
            &plain,
            "/par",
            &[
                ("response_type", "code"),
                ("redirect_uri", "https://elsewhere.example/cb"),
                ("scope", "openid"),
                ("code_challenge", &pkce.challenge),
                ("code_challenge_method", "S256"),
            ],
        )
        .await;
    assert_eq!(
        plain_push.status,
        StatusCode::CREATED,
        "RFC 9126 §2.4 for others: {}",
        plain_push.text
    );
    // The push must name its redirect URI, even when only one is registered.
    let unnamed = fapi.push(h, SECURITY, &params).await;
    assert_eq!(
        (unnamed.status, unnamed.error()),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "{}",
        unnamed.text
    );
    // Registration: https only; a private-use scheme, fine for others, is refused.
    // (http on loopback stays allowed for this development issuer, which is http itself.)
    for uri in ["com.example.app:/cb"] {
        let refused = h
            .ls
            .create_client(None, json!({
                "security_profile": "fapi2_security", "token_endpoint_auth_method": "private_key_jwt",
                "jwks": jwks(&[&ClientKey::es256("k")]), "redirect_uris": [uri],
            }))
            .await;
        let Err(e) = refused else {
            panic!("{uri} was registered")
        };
        assert_eq!(
            e.code(),
            lockspire::ErrorCode::InvalidRedirectUri,
            "{uri}: {e:?}"
        );
    }
}

// FAPI 2.0 §5.3.2.2: response_type=code only; PKCE with S256.

async fn only_the_code_response_type_with_pkce_s256(backend: Backend) {
    let f = server(backend, SECURITY).await;
    let h = &f.h;
    let client = f.client(Auth::Mtls, Bind::Certificate, json!({})).await;
    let pkce = Pkce::new();
    let with = |name: &'static str, value: Option<&str>| {
        let mut p = client.request(&pkce);
        p.retain(|(k, _)| *k != name);
        if let Some(v) = value {
            p.push((name, v.to_owned()));
        }
        p
    };
    let cases = [
        (
            with("response_type", Some("token")),
            "unsupported_response_type",
        ),
        (
            with("response_type", Some("code id_token")),
            "unsupported_response_type",
        ),
        (with("code_challenge", None), "invalid_request"),
        (
            with("code_challenge_method", Some("plain")),
            "invalid_request",
        ),
        (with("code_challenge_method", None), "invalid_request"),
    ];
    for (params, error) in cases {
        let reply = client.push(h, SECURITY, &params).await;
        assert_eq!(
            (reply.status, reply.error()),
            (StatusCode::BAD_REQUEST, error),
            "{params:?}: {}",
            reply.text
        );
        assert!(reply.headers.get(LOCATION).is_none());
        // The same request through the browser, naming an unregistered redirect URI.
        let mut attacker = params.clone();
        attacker.retain(|(k, _)| *k != "redirect_uri");
        attacker.push(("redirect_uri", ATTACKER.into()));
        assert_shown_not_redirected(h, &browser_request(h, &client, &attacker)).await;
    }
}

// FAPI 2.0 §5.3.2.1: confidential clients only, authenticating with private_key_jwt or mTLS.

async fn confidential_clients_authenticate_with_private_key_jwt_or_mtls(backend: Backend) {
    let f = server(backend, SECURITY).await;
    let h = &f.h;
    for method in [
        "none",
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
    ] {
        let refused = h
            .ls
            .create_client(None, json!({
                "token_endpoint_auth_method": method, "redirect_uris": ["https://rp.example/cb"],
            }))
            .await;
        let e = refused
            .err()
            .unwrap_or_else(|| panic!("{method} was registered"));
        assert_eq!(
            e.code(),
            lockspire::ErrorCode::InvalidClientMetadata,
            "{method}"
        );
    }
    let doc = h.discovery().await;
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        json!([
            "private_key_jwt",
            "tls_client_auth",
            "self_signed_tls_client_auth"
        ])
    );
    // A client registered before the server took the profile cannot authenticate under it.
    let plain = Harness::start(backend).await;
    let old = plain.confidential_client(json!({})).await;
    let form = [("grant_type", "client_credentials"), ("scope", "api:read")];
    assert_eq!(
        plain.post_as(&old, "/token", &form).await.status,
        StatusCode::OK
    );
    let (base, _ls) = plain
        .second_server_with(|b| b.security_profile(SECURITY))
        .await;
    let secret = old.secret.clone().unwrap_or_default();
    for path in ["/token", "/par"] {
        let reply = Reply::from(
            plain
                .http()
                .post(format!("{base}{path}"))
                .basic_auth(&old.id, Some(&secret))
                .form(&form)
                .send()
                .await
                .expect("request"),
        )
        .await;
        assert_eq!(
            (reply.status, reply.error()),
            (StatusCode::UNAUTHORIZED, "invalid_client"),
            "{path}: {}",
            reply.text
        );
        assert!(reply.text.contains("security profile"), "{}", reply.text);
    }
}

// FAPI 2.0 §5.3.2.1: only sender-constrained access tokens.

async fn access_tokens_are_sender_constrained(backend: Backend) {
    let f = server(backend, SECURITY).await;
    let h = &f.h;
    // A private_key_jwt client with no DPoP key and no certificate gets no token at all.
    let mut client = f
        .client(
            Auth::PrivateKeyJwt,
            Bind::Dpop,
            json!({"dpop_bound_access_tokens": false}),
        )
        .await;
    let dpop = client.dpop.take();
    let refused = client
        .post(
            h,
            "/token",
            &[("grant_type", "client_credentials"), ("scope", "api:read")],
        )
        .await;
    assert_eq!(
        (refused.status, refused.error()),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "{}",
        refused.text
    );
    // With a DPoP proof: DPoP-bound.
    client.dpop = dpop;
    let bound = client
        .post(
            h,
            "/token",
            &[("grant_type", "client_credentials"), ("scope", "api:read")],
        )
        .await;
    assert_eq!(bound.body["token_type"], "DPoP", "{}", bound.text);
    // With a certificate and no proof: bound to the certificate, though it registered neither.
    client.dpop = None;
    client.cert = Some(f.pki.client_cert_header(&dns_name()));
    let by_cert = client
        .post(
            h,
            "/token",
            &[("grant_type", "client_credentials"), ("scope", "api:read")],
        )
        .await;
    assert_eq!(by_cert.status, StatusCode::OK, "{}", by_cert.text);
    let token = by_cert.body["access_token"].as_str().expect("access_token");
    let introspected = client.post(h, "/introspect", &[("token", token)]).await;
    assert!(
        introspected.body["cnf"]["x5t#S256"].is_string(),
        "{}",
        introspected.text
    );
}

// The resource-server toolkit refuses bearer tokens where sender constraint is required.

async fn resource_servers_refuse_bearer_tokens(backend: Backend) {
    use axum::routing::get;
    let h = Harness::start(backend).await;
    let resource = common::TEST_RESOURCES[0];
    let rs =
        h.ls.resource_server(resource)
            .expect("resource")
            .require_sender_constrained(true)
            .build();
    let app: axum::Router = axum::Router::new()
        .route("/api/me", get(|| async { "ok" }))
        .route_layer(rs.require_token());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await;
    });
    let client = h.confidential_client(json!({})).await;
    let bearer = h
        .post_as(
            &client,
            "/token",
            &[("grant_type", "client_credentials"), ("resource", resource)],
        )
        .await;
    let token = bearer.body["access_token"].as_str().expect("access_token");
    let refused = h
        .http()
        .get(format!("{base}/api/me"))
        .bearer_auth(token)
        .send()
        .await
        .expect("call");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let challenge = refused.headers()["www-authenticate"]
        .to_str()
        .unwrap_or_default()
        .to_owned();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    // A DPoP-bound token with its proof passes.
    let key = ClientKey::es256("rs-dpop");
    let bound = h
        .post_with(
            &client,
            "/token",
            &[("grant_type", "client_credentials"), ("resource", resource)],
            &[("DPoP", &proof(&h, &key, &h.url("/token"), 0))],
        )
        .await;
    let token = bound.body["access_token"].as_str().expect("access_token");
    let ath = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            token.as_bytes(),
        ))
    };
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_members()});
    // The resource's own origin, as its clients address it (RFC 9449 §4.3).
    let claims = json!({"jti": common::random_b64(16), "htm": "GET", "htu": "https://api.example/api/me", "iat": h.clock.now(), "ath": ath});
    let ok = h
        .http()
        .get(format!("{base}/api/me"))
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", key.sign_with_header(&header, &claims))
        .send()
        .await
        .expect("call");
    assert_eq!(
        ok.status(),
        StatusCode::OK,
        "{:?}",
        ok.headers().get("www-authenticate")
    );
}

// FAPI 2.0 §5.3.2.1: refresh tokens are not rotated, and stay bound to their client.

async fn refresh_tokens_are_not_rotated_and_stay_with_their_client(backend: Backend) {
    let f = server(backend, SECURITY).await;
    let h = &f.h;
    let client = f.client(Auth::PrivateKeyJwt, Bind::Dpop, json!({})).await;
    let tokens = client.tokens(h, SECURITY).await;
    let refresh = tokens["refresh_token"].as_str().expect("refresh_token");
    let other = f.client(Auth::PrivateKeyJwt, Bind::Dpop, json!({})).await;
    let stolen = other
        .post(
            h,
            "/token",
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await;
    assert_eq!(stolen.error(), "invalid_grant", "{}", stolen.text);
    for _ in 0..3 {
        let refreshed = client
            .post(
                h,
                "/token",
                &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
            )
            .await;
        assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text);
        assert!(refreshed.body.get("refresh_token").is_none());
    }
    // Revoked, it ends.
    let revoked = client.post(h, "/revoke", &[("token", refresh)]).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    let after = client
        .post(
            h,
            "/token",
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await;
    assert_eq!(after.error(), "invalid_grant");
}

// FAPI 2.0 §5.4.1: PS256, ES256 and EdDSA only, for the server's signatures and the clients'.

async fn signatures_use_ps256_es256_or_eddsa_only(backend: Backend) {
    let f = server(backend, SECURITY).await;
    let h = &f.h;
    let doc = h.discovery().await;
    for field in [
        "id_token_signing_alg_values_supported",
        "userinfo_signing_alg_values_supported",
        "authorization_signing_alg_values_supported",
        "introspection_signing_alg_values_supported",
        "token_endpoint_auth_signing_alg_values_supported",
        "request_object_signing_alg_values_supported",
        "dpop_signing_alg_values_supported",
    ] {
        let algs = doc[field].as_array().unwrap_or_else(|| panic!("{field}"));
        assert!(!algs.is_empty(), "{field}");
        assert!(
            algs.iter()
                .all(|a| FAPI_ALGS.contains(&a.as_str().unwrap_or(""))),
            "{field}: {algs:?}"
        );
    }
    // Registration refuses RS256 and fills in ES256 where the client names nothing.
    let refused = h
        .ls
        .create_client(None, json!({
            "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks(&[&ClientKey::es256("k")]),
            "redirect_uris": ["https://rp.example/cb"], "id_token_signed_response_alg": "RS256",
        }))
        .await;
    assert_eq!(
        refused.err().map(|e| e.code()),
        Some(lockspire::ErrorCode::InvalidClientMetadata)
    );
    let client = f.client(Auth::PrivateKeyJwt, Bind::Dpop, json!({})).await;
    let info =
        h.ls.operator()
            .client(&client.id)
            .await
            .expect("read")
            .expect("client");
    let meta = serde_json::to_value(&info.metadata).expect("json");
    for field in [
        "id_token_signed_response_alg",
        "authorization_signed_response_alg",
        "introspection_signed_response_alg",
    ] {
        assert_eq!(meta[field], "ES256", "{field}");
    }
    // A client whose key is RSA: its RS256 assertion and RS256 DPoP proof are refused.
    let rsa = ClientKey::rs256("rsa-1");
    let rsa_client = f
        .client(
            Auth::PrivateKeyJwt,
            Bind::Dpop,
            json!({"jwks": jwks(&[&rsa])}),
        )
        .await;
    let assertion = rsa.sign(&json!({
        "iss": rsa_client.id, "sub": rsa_client.id, "aud": h.base, "jti": common::random_b64(16),
        "iat": h.clock.now(), "exp": h.clock.now() + 60,
    }));
    let by_rs256 = rsa_client
        .post_raw(
            h,
            "/token",
            &[("grant_type", "client_credentials")],
            Some(&assertion),
            rsa_client.dpop.as_ref(),
            0,
        )
        .await;
    assert_eq!(by_rs256.error(), "invalid_client", "{}", by_rs256.text);
    let rs256_proof = client
        .post_raw(
            h,
            "/token",
            &[("grant_type", "client_credentials")],
            Some(&client.assertion_with(h, json!(h.base), 0)),
            Some(&rsa),
            0,
        )
        .await;
    assert_eq!(
        rs256_proof.error(),
        "invalid_dpop_proof",
        "{}",
        rs256_proof.text
    );
}

/// Builds a server with `lifetimes`, without a profile then with FAPI 2.0: `None` when both
/// build; the setting named in the refusal when only the first does.
async fn refused_setting(backend: Backend, lifetimes: Lifetimes) -> Option<String> {
    let db = common::TestDatabase::new(backend).await;
    let build = |profile: SecurityProfile| {
        lockspire::Lockspire::builder()
            .issuer("http://127.0.0.1:9")
            .expect("issuer")
            .database(&db.url)
            .secret_key(lockspire::SecretKey::generate())
            .account_resolver(common::TestResolver::new(common::default_users()))
            .lifetimes(lifetimes)
            .security_profile(profile)
            .build()
    };
    assert!(
        build(SecurityProfile::None).await.is_ok(),
        "{lifetimes:?} without a profile"
    );
    match build(SECURITY).await {
        Ok(_) => None,
        Err(lockspire::ConfigError::Invalid(field, _)) => Some(field.to_owned()),
        Err(e) => panic!("{e:?}"),
    }
}

// FAPI 2.0 §5.3.2.1: authorization codes live at most 60 s.

async fn authorization_codes_live_at_most_60_seconds(backend: Backend) {
    // A server-wide profile refuses a longer setting.
    let lifetimes = Lifetimes {
        authorization_code: 120,
        ..Lifetimes::default()
    };
    assert_eq!(
        refused_setting(backend, lifetimes).await.as_deref(),
        Some("lifetimes")
    );
    // A FAPI client of a server whose codes live 300 s gets codes of 60 s.
    let f = server_with(backend, |b| {
        b.lifetimes(Lifetimes {
            authorization_code: 300,
            ..Lifetimes::default()
        })
    })
    .await;
    let h = &f.h;
    let client = f
        .client(
            Auth::PrivateKeyJwt,
            Bind::Dpop,
            json!({"security_profile": "fapi2_security"}),
        )
        .await;
    let pkce = Pkce::new();
    let pushed = client.push(h, SECURITY, &client.request(&pkce)).await;
    let response = client
        .authorize(h, pushed.body["request_uri"].as_str().expect("request_uri"))
        .await;
    h.clock.advance(61);
    let late = client.redeem(h, &response["code"], &pkce.verifier).await;
    assert_eq!(late.error(), "invalid_grant", "{}", late.text);
}

// FAPI 2.0 §5.3.2.2: a pushed request's request_uri expires in less than 600 s.

async fn pushed_request_uris_expire_in_less_than_600_seconds(backend: Backend) {
    let lifetimes = Lifetimes {
        pushed_request: 600,
        ..Lifetimes::default()
    };
    assert_eq!(
        refused_setting(backend, lifetimes).await.as_deref(),
        Some("lifetimes")
    );
    let f = server_with(backend, |b| {
        b.lifetimes(Lifetimes {
            pushed_request: 600,
            ..Lifetimes::default()
        })
    })
    .await;
    let h = &f.h;
    let client = f
        .client(
            Auth::Mtls,
            Bind::Dpop,
            json!({"security_profile": "fapi2_security"}),
        )
        .await;
    let pushed = client
        .push(h, SECURITY, &client.request(&Pkce::new()))
        .await;
    assert_eq!(pushed.status, StatusCode::CREATED, "{}", pushed.text);
    assert_eq!(pushed.body["expires_in"], 599);
}

// RFC 9207 and FAPI 2.0 §5.3.2.2: `iss` in every authorization response, success or error.

async fn every_authorization_response_names_the_issuer(backend: Backend) {
    for profile in [SECURITY, SIGNING] {
        let f = server(backend, profile).await;
        let h = &f.h;
        let client = f.client(Auth::PrivateKeyJwt, Bind::Dpop, json!({})).await;
        let pkce = Pkce::new();
        let pushed = client.push(h, profile, &client.request(&pkce)).await;
        let response = client
            .authorize(h, pushed.body["request_uri"].as_str().expect("request_uri"))
            .await;
        assert_eq!(response.get("iss"), Some(&h.base), "{response:?}");
        // An error after the redirect URI is verified: asked again, the user denies.
        let mut again = client.request(&pkce);
        again.push(("prompt", "consent".into()));
        let pushed = client.push(h, profile, &again).await;
        let url = front_channel(
            h,
            &[
                ("client_id", &client.id),
                (
                    "request_uri",
                    pushed.body["request_uri"].as_str().expect("uri"),
                ),
            ],
        );
        let outcome = h
            .browser(Some("alice"))
            .run(&url, &client.redirect_uri, Consent::Deny)
            .await;
        let common::Outcome::Redirect(location) = outcome else {
            panic!("{outcome:?}")
        };
        assert_refused_to_location(
            h,
            &client,
            location.as_str(),
            "access_denied",
            profile.signs_messages(),
        )
        .await;
    }
}

// FAPI 2.0 §5.3.2.1 (RFC 7523bis): a client assertion's aud is the issuer, as a string.

async fn client_assertion_audience_is_the_issuer_string(backend: Backend) {
    let f = server(backend, SECURITY).await;
    let h = &f.h;
    let client = f.client(Auth::PrivateKeyJwt, Bind::Dpop, json!({})).await;
    let form = [("grant_type", "client_credentials"), ("scope", "api:read")];
    for aud in [
        json!([h.base]),
        json!(h.url("/token")),
        json!([h.base, "https://other.example"]),
    ] {
        let assertion = client.assertion_with(h, aud.clone(), 0);
        let reply = client
            .post_raw(
                h,
                "/token",
                &form,
                Some(&assertion),
                client.dpop.as_ref(),
                0,
            )
            .await;
        assert_eq!(reply.error(), "invalid_client", "aud {aud}: {}", reply.text);
    }
    let assertion = client.assertion_with(h, json!(h.base), 0);
    let ok = client
        .post_raw(
            h,
            "/token",
            &form,
            Some(&assertion),
            client.dpop.as_ref(),
            0,
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    // Without the profile, the token endpoint's URL is an audience too (RFC 7523 §3).
    let plain = Harness::start(backend).await;
    let key = ClientKey::es256("k");
    let id = plain
        .ls
        .create_client(None, json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": jwks(&[&key]), "grant_types": ["client_credentials"]}))
        .await
        .expect("register")
        .client_id;
    let now = plain.clock.now();
    let assertion = key.sign(&json!({"iss": id, "sub": id, "aud": plain.url("/token"), "jti": common::random_b64(16), "exp": now + 60}));
    let reply = Reply::from(
        plain
            .http()
            .post(plain.url("/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion.as_str()),
            ])
            .send()
            .await
            .expect("token"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

// FAPI 2.0 §5.3.2.1: JWTs whose iat or nbf is up to 10 s ahead are accepted; over 60 s, refused.

async fn clock_skew_of_10_seconds_is_tolerated_and_60_is_not(backend: Backend) {
    let f = server(backend, SIGNING).await;
    let h = &f.h;
    let client = f.client(Auth::PrivateKeyJwt, Bind::Dpop, json!({})).await;
    let form = [("grant_type", "client_credentials"), ("scope", "api:read")];
    for (skew, ok) in [(10, true), (61, false)] {
        let assertion = client.assertion_with(h, json!(h.base), skew);
        let reply = client
            .post_raw(
                h,
                "/token",
                &form,
                Some(&assertion),
                client.dpop.as_ref(),
                0,
            )
            .await;
        assert_eq!(
            reply.status == StatusCode::OK,
            ok,
            "assertion iat +{skew}: {}",
            reply.text
        );
        let assertion = client.assertion_with(h, json!(h.base), 0);
        let reply = client
            .post_raw(
                h,
                "/token",
                &form,
                Some(&assertion),
                client.dpop.as_ref(),
                skew,
            )
            .await;
        assert_eq!(
            reply.status == StatusCode::OK,
            ok,
            "DPoP iat +{skew}: {}",
            reply.text
        );
        let object = client.request_object(h, &client.request(&Pkce::new()), skew, 300);
        let reply = client.post(h, "/par", &[("request", &object)]).await;
        assert_eq!(
            reply.status == StatusCode::CREATED,
            ok,
            "request object nbf +{skew}: {}",
            reply.text
        );
    }
}

// A client's profile is the stricter of its own and the server's; never weaker.

async fn no_client_metadata_weakens_the_servers_profile(backend: Backend) {
    let f = server(backend, SIGNING).await;
    let h = &f.h;
    for weaker in ["none", "fapi2_security"] {
        let refused = h
            .ls
            .create_client(None, json!({
                "security_profile": weaker, "token_endpoint_auth_method": "private_key_jwt",
                "jwks": jwks(&[&ClientKey::es256("k")]), "redirect_uris": ["https://rp.example/cb"],
            }))
            .await;
        assert_eq!(
            refused.err().map(|e| e.code()),
            Some(lockspire::ErrorCode::InvalidClientMetadata),
            "{weaker}"
        );
    }
    // Through dynamic registration, the answer is the RFC 7591 §3.2.2 error.
    let reply = Reply::from(
        h.http().post(h.url("/register"))
            .json(&json!({"security_profile": "none", "token_endpoint_auth_method": "private_key_jwt",
                "jwks": jwks(&[&ClientKey::es256("k")]), "redirect_uris": ["https://rp.example/cb"]}))
            .send().await.expect("register"),
    ).await;
    assert_eq!(
        (reply.status, reply.error()),
        (StatusCode::BAD_REQUEST, "invalid_client_metadata"),
        "{}",
        reply.text
    );
    // Nor through an update: RFC 7592 §2.2, or the host's own.
    let meta = json!({"token_endpoint_auth_method": "private_key_jwt",
        "jwks": jwks(&[&ClientKey::es256("k")]), "redirect_uris": ["https://rp.example/cb"]});
    let registered = Reply::from(
        h.http()
            .post(h.url("/register"))
            .json(&meta)
            .send()
            .await
            .expect("register"),
    )
    .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.text
    );
    let id = registered.body["client_id"]
        .as_str()
        .expect("client_id")
        .to_owned();
    let mut weaker = meta.clone();
    weaker["client_id"] = json!(id);
    weaker["security_profile"] = json!("none");
    let updated = Reply::from(
        h.http()
            .put(
                registered.body["registration_client_uri"]
                    .as_str()
                    .expect("uri"),
            )
            .bearer_auth(
                registered.body["registration_access_token"]
                    .as_str()
                    .expect("token"),
            )
            .json(&weaker)
            .send()
            .await
            .expect("update"),
    )
    .await;
    assert_eq!(
        (updated.status, updated.error()),
        (StatusCode::BAD_REQUEST, "invalid_client_metadata"),
        "{}",
        updated.text
    );
    let by_host = h.ls.update_client(&id, weaker).await;
    assert_eq!(
        by_host.err().map(|e| e.code()),
        Some(lockspire::ErrorCode::InvalidClientMetadata)
    );
    // A stricter client on a plain server is held to its own profile.
    let plain = server(backend, SecurityProfile::None).await;
    let strict = plain
        .client(
            Auth::PrivateKeyJwt,
            Bind::Dpop,
            json!({"security_profile": "fapi2_message_signing"}),
        )
        .await;
    let pkce = Pkce::new();
    let unsigned: Vec<(&str, String)> = strict.request(&pkce);
    let pairs: Vec<(&str, &str)> = unsigned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let reply = strict.post(&plain.h, "/par", &pairs).await;
    assert_eq!(reply.error(), "invalid_request", "{}", reply.text);
    assert_refused_to(
        &plain.h,
        &strict,
        &browser_request(&plain.h, &strict, &unsigned),
        "invalid_request",
        true,
    )
    .await;
}

// FAPI 2.0 Message Signing §5.3.1: pushed requests are signed request objects whose nbf is at
// most 60 minutes before exp.

async fn message_signing_requires_signed_request_objects_within_60_minutes(backend: Backend) {
    let f = server(backend, SIGNING).await;
    let h = &f.h;
    let client = f.client(Auth::Mtls, Bind::Certificate, json!({})).await;
    let params = client.request(&Pkce::new());
    let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let unsigned = client.post(h, "/par", &pairs).await;
    assert_eq!(
        (unsigned.status, unsigned.error()),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "{}",
        unsigned.text
    );
    let too_long = client.request_object(h, &params, -300, 3600 - 299);
    let reply = client.post(h, "/par", &[("request", &too_long)]).await;
    assert_eq!(
        reply.error(),
        "invalid_request_object",
        "exp - nbf over 60 min: {}",
        reply.text
    );
    let now = h.clock.now();
    let mut claims =
        json!({"iss": client.id, "aud": h.base, "jti": common::random_b64(16), "exp": now + 300});
    for (k, v) in &params {
        claims[*k] = json!(v);
    }
    let without_nbf = client.key.sign(&claims);
    let reply = client.post(h, "/par", &[("request", &without_nbf)]).await;
    assert_eq!(
        reply.error(),
        "invalid_request_object",
        "no nbf: {}",
        reply.text
    );
    let within = client.request_object(h, &params, -60, 3600 - 61);
    let reply = client.post(h, "/par", &[("request", &within)]).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
}

// FAPI 2.0 Message Signing §5.4: authorization responses are JARM responses, errors included.

async fn message_signing_answers_with_jarm_responses(backend: Backend) {
    let f = server(backend, SIGNING).await;
    let h = &f.h;
    let doc = h.discovery().await;
    let modes = doc["response_modes_supported"].as_array().expect("modes");
    assert!(
        modes
            .iter()
            .all(|m| m.as_str().is_some_and(|m| m.contains("jwt"))),
        "{modes:?}"
    );
    let client = f.client(Auth::PrivateKeyJwt, Bind::Dpop, json!({})).await;
    let pkce = Pkce::new();
    let pushed = client.push(h, SIGNING, &client.request(&pkce)).await;
    let url = front_channel(
        h,
        &[
            ("client_id", &client.id),
            (
                "request_uri",
                pushed.body["request_uri"].as_str().expect("uri"),
            ),
        ],
    );
    let outcome = h
        .browser(Some("alice"))
        .run(&url, &client.redirect_uri, Consent::Allow)
        .await;
    let raw = outcome.redirect_params();
    assert!(
        !raw.contains_key("code") && raw.contains_key("response"),
        "{raw:?}"
    );
    // A plain response mode is refused, at the push, and through the browser (in JARM).
    let mut plain = client.request(&pkce);
    plain.push(("response_mode", "query".into()));
    let refused = client.push(h, SIGNING, &plain).await;
    assert_eq!(refused.error(), "invalid_request", "{}", refused.text);
    assert_refused_to(
        h,
        &client,
        &browser_request(h, &client, &plain),
        "invalid_request",
        true,
    )
    .await;
}

// RFC 9701 under FAPI 2.0 Message Signing: signed introspection responses, by an allowed alg.

async fn message_signing_offers_signed_introspection_responses(backend: Backend) {
    let f = server(backend, SIGNING).await;
    let h = &f.h;
    let client = f.client(Auth::PrivateKeyJwt, Bind::Dpop, json!({})).await;
    let tokens = client.tokens(h, SIGNING).await;
    let access = tokens["access_token"].as_str().expect("access_token");
    let assertion = client.assertion_with(h, json!(h.base), 0);
    let resp = h
        .http()
        .post(h.url("/introspect"))
        .header("accept", "application/token-introspection+jwt")
        .form(&[
            ("token", access),
            ("client_id", &client.id),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &assertion),
        ])
        .send()
        .await
        .expect("introspect");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"],
        "application/token-introspection+jwt"
    );
    let jwt = resp.text().await.expect("body");
    let (header, _) = jwt_parts(&jwt);
    assert_eq!(header["typ"], "token-introspection+jwt");
    assert!(
        FAPI_ALGS.contains(&header["alg"].as_str().unwrap_or("")),
        "{header}"
    );
    let claims = common::verify_response_with_jwks(h, &jwt, &client.id).await;
    assert_eq!(claims["token_introspection"]["active"], true, "{claims}");
}

// Discovery says what each profile allows, and nothing else.

async fn discovery_is_truthful_under_each_profile(backend: Backend) {
    for profile in [SecurityProfile::None, SECURITY, SIGNING] {
        let f = server(backend, profile).await;
        let doc = f.h.discovery().await;
        let fapi = profile.is_fapi();
        assert_eq!(
            doc["require_pushed_authorization_requests"], fapi,
            "{profile}"
        );
        assert_eq!(doc["response_types_supported"], json!(["code"]));
        assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
        let listed = |field: &str, value: &str| {
            doc[field]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v == value))
        };
        assert_eq!(
            listed("id_token_signing_alg_values_supported", "RS256"),
            !fapi,
            "{profile}"
        );
        assert_eq!(
            listed(
                "token_endpoint_auth_methods_supported",
                "client_secret_basic"
            ),
            !fapi
        );
        assert_eq!(
            listed("token_endpoint_auth_signing_alg_values_supported", "HS256"),
            !fapi
        );
        assert_eq!(
            listed(
                "grant_types_supported",
                "urn:ietf:params:oauth:grant-type:device_code"
            ),
            !fapi
        );
        assert_eq!(doc.get("device_authorization_endpoint").is_some(), !fapi);
        assert_eq!(
            listed("response_modes_supported", "query"),
            !profile.signs_messages()
        );
        assert!(listed("response_modes_supported", "jwt"));
        assert!(listed(
            "token_endpoint_auth_methods_supported",
            "private_key_jwt"
        ));
        assert_eq!(
            doc["require_signed_request_object"],
            profile.signs_messages()
        );
    }
    // A FAPI server with CIBA configured does not offer it.
    let users = common::default_users();
    let f = server_with(backend, move |b| {
        b.security_profile(SECURITY)
            .backchannel_authenticator(common::TestBackchannel::new(users))
    })
    .await;
    let doc = f.h.discovery().await;
    for field in [
        "backchannel_authentication_endpoint",
        "backchannel_token_delivery_modes_supported",
        "backchannel_authentication_request_signing_alg_values_supported",
    ] {
        assert!(doc.get(field).is_none(), "{field}");
    }
}

// The server keeps an active key of every FAPI alg: the last one cannot retire.

async fn key_lifecycle_never_leaves_a_profile_without_a_key(backend: Backend) {
    let f = server(backend, SECURITY).await;
    let operator = f.h.ls.operator();
    let keys = operator.keys().await.expect("keys");
    for alg in FAPI_ALGS {
        let active: Vec<_> = keys
            .iter()
            .filter(|k| k.alg == alg && k.state == lockspire::KeyState::Active)
            .collect();
        assert_eq!(active.len(), 1, "{alg}");
        let refused = operator.retire_key(&active[0].kid).await;
        assert!(
            matches!(refused, Err(lockspire::OperatorError::Refused(_))),
            "{alg}: {refused:?}"
        );
    }
}

// A server that takes a profile later holds what was registered and issued before to it.

async fn what_came_before_a_stricter_profile_is_held_to_it(backend: Backend) {
    let f = server(backend, SecurityProfile::None).await;
    let h = &f.h;
    // A client that meets FAPI 2.0 (its algs named, since registration under no profile gives
    // RS256 ones), but binds its tokens to an RSA key, with RS256 proofs.
    let algs = json!({
        "id_token_signed_response_alg": "ES256",
        "authorization_signed_response_alg": "ES256",
        "introspection_signed_response_alg": "ES256",
    });
    let mut client = f.client(Auth::PrivateKeyJwt, Bind::Dpop, algs).await;
    client.dpop = Some(ClientKey::rs256("dpop-rsa"));
    let tokens = client.tokens(h, SecurityProfile::None).await;
    let first = tokens["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned();
    let rotated = client
        .post(
            h,
            "/token",
            &[("grant_type", "refresh_token"), ("refresh_token", &first)],
        )
        .await;
    let second = rotated.body["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_owned();
    let access = rotated.body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    let plain_client = h.confidential_client(json!({})).await;
    // The same database, served under FAPI 2.0.
    let (base, _fapi) = h.second_server_with(|b| b.security_profile(SECURITY)).await;
    // Its token's RS256 proof works here, and not under the profile.
    let rsa = client.dpop.as_ref().expect("key");
    for (at, expected) in [(&h.base, StatusCode::OK), (&base, StatusCode::UNAUTHORIZED)] {
        let ath = {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA256,
                access.as_bytes(),
            ))
        };
        let header = json!({"typ": "dpop+jwt", "alg": "RS256", "jwk": rsa.public_members()});
        let claims = json!({"jti": common::random_b64(16), "htm": "GET",
            "htu": h.url("/userinfo"), "iat": h.clock.now(), "ath": ath});
        let reply = h
            .http()
            .get(format!("{at}/userinfo"))
            .header("authorization", format!("DPoP {access}"))
            .header("dpop", rsa.sign_with_header(&header, &claims))
            .send()
            .await
            .expect("userinfo");
        assert_eq!(reply.status(), expected, "userinfo at {at}");
    }
    // The client that does not meet the profile: shown a page at /authorize, never redirected.
    let pkce = Pkce::new();
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("client_id", plain_client.id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", plain_client.redirect_uri.as_str()),
            ("scope", "openid"),
            ("code_challenge", pkce.challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .finish();
    assert_shown_not_redirected(h, &format!("{base}/authorize?{query}")).await;
    // The refresh token rotated before is spent, and presenting it is still a replay: the
    // grant is revoked, with the refresh token that replaced it.
    client.dpop = Some(ClientKey::es256("dpop-2"));
    let replayed = client
        .post_at(
            h,
            &base,
            "/token",
            &[("grant_type", "refresh_token"), ("refresh_token", &first)],
        )
        .await;
    assert_eq!(replayed.error(), "invalid_grant", "{}", replayed.text);
    let after = client
        .post_at(
            h,
            &base,
            "/token",
            &[("grant_type", "refresh_token"), ("refresh_token", &second)],
        )
        .await;
    assert_eq!(after.error(), "invalid_grant", "{}", after.text);
}

// An in-process resource server of a FAPI server refuses bearer tokens without being told.

async fn a_fapi_servers_resource_servers_refuse_bearer_tokens_by_default(backend: Backend) {
    use axum::routing::get;
    let h = Harness::start(backend).await;
    let resource = common::TEST_RESOURCES[0];
    let client = h.confidential_client(json!({})).await;
    let bearer = h
        .post_as(
            &client,
            "/token",
            &[("grant_type", "client_credentials"), ("resource", resource)],
        )
        .await;
    let token = bearer.body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    let (_, fapi) = h.second_server_with(|b| b.security_profile(SECURITY)).await;
    for (ls, expected) in [(&h.ls, StatusCode::OK), (&fapi, StatusCode::UNAUTHORIZED)] {
        let rs = ls.resource_server(resource).expect("resource").build();
        let app: axum::Router = axum::Router::new()
            .route("/api/me", get(|| async { "ok" }))
            .route_layer(rs.require_token());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
            let _ = axum::serve(listener, service).await;
        });
        let reply = h
            .http()
            .get(format!("{base}/api/me"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("call");
        assert_eq!(reply.status(), expected);
    }
}

on_both!(
    pushed_authorization_requests_are_required,
    pushed_requests_name_a_registered_https_redirect_uri,
    only_the_code_response_type_with_pkce_s256,
    confidential_clients_authenticate_with_private_key_jwt_or_mtls,
    access_tokens_are_sender_constrained,
    resource_servers_refuse_bearer_tokens,
    refresh_tokens_are_not_rotated_and_stay_with_their_client,
    signatures_use_ps256_es256_or_eddsa_only,
    authorization_codes_live_at_most_60_seconds,
    pushed_request_uris_expire_in_less_than_600_seconds,
    every_authorization_response_names_the_issuer,
    client_assertion_audience_is_the_issuer_string,
    clock_skew_of_10_seconds_is_tolerated_and_60_is_not,
    no_client_metadata_weakens_the_servers_profile,
    message_signing_requires_signed_request_objects_within_60_minutes,
    message_signing_answers_with_jarm_responses,
    message_signing_offers_signed_introspection_responses,
    discovery_is_truthful_under_each_profile,
    key_lifecycle_never_leaves_a_profile_without_a_key,
    what_came_before_a_stricter_profile_is_held_to_it,
    a_fapi_servers_resource_servers_refuse_bearer_tokens_by_default,
);
