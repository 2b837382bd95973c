//! Pushed authorization requests (RFC 9126): the push, its `request_uri`, and how `/authorize`
//! honours it.

mod common;

use common::{Consent, Harness, Outcome, Pkce, TestClient};
use serde_json::{Value, json};

const PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// The authorization parameters of a code flow for `client`, with `extra` appended.
fn authorization(
    client: &TestClient,
    pkce: &Pkce,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = [
        ("response_type", "code"),
        ("redirect_uri", client.redirect_uri.as_str()),
        ("scope", "openid"),
        ("state", "pushed-state"),
        ("nonce", "pushed-nonce"),
        ("code_challenge", pkce.challenge.as_str()),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    params.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    params
}

/// Pushes `params` as `client`.
async fn push(h: &Harness, client: &TestClient, params: &[(String, String)]) -> common::Reply {
    let pairs: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    h.post_as(client, "/par", &pairs).await
}

/// The `/authorize` URL that sends a browser with `request_uri`, plus `extra` query parameters.
fn authorize_with(
    h: &Harness,
    client_id: &str,
    request_uri: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("client_id", client_id)
        .append_pair("request_uri", request_uri);
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    format!("{}/authorize?{}", h.base, q.finish())
}

/// The OAuth error code an error page shows.
fn page_error(outcome: &Outcome) -> (u16, String) {
    match outcome {
        Outcome::Page(status, html) => {
            let code = [
                "invalid_request_uri",
                "request_uri_not_supported",
                "invalid_request",
            ]
            .into_iter()
            .find(|c| html.contains(c))
            .unwrap_or("none");
            (status.as_u16(), code.to_owned())
        }
        other => panic!("expected an error page, got {other:?}"),
    }
}

fn request_uri(reply: &common::Reply) -> String {
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    reply.body["request_uri"]
        .as_str()
        .expect("request_uri")
        .to_owned()
}

on_both_stores! {
    async fn a_pushed_request_gets_a_short_lived_request_uri_that_runs_the_flow_once(h) {
        let client = h.confidential_client(json!({})).await;
        let pkce = Pkce::new();
        let reply = push(&h, &client, &authorization(&client, &pkce, &[])).await;
        let uri = request_uri(&reply);
        assert!(uri.starts_with(PREFIX), "{uri}");
        assert!(uri.len() > PREFIX.len() + 40, "the handle carries 256 random bits: {uri}");
        assert_eq!(reply.body["expires_in"], 60);
        assert_eq!(reply.header("cache-control"), "no-store");

        let browser = h.browser(Some("alice"));
        let outcome = browser.run(&authorize_with(&h, &client.id, &uri, &[]), &client.redirect_uri, Consent::Allow).await;
        let params = outcome.redirect_params();
        assert_eq!(params.get("state").map(String::as_str), Some("pushed-state"));
        let code = params.get("code").expect("code").clone();
        let tokens = h.redeem(&client, &code, &pkce.verifier).await;
        assert_eq!(tokens.status, 200, "{}", tokens.text);
        let (_, claims) = common::jwt_parts(tokens.body["id_token"].as_str().expect("id_token"));
        assert_eq!(claims["nonce"], "pushed-nonce", "the pushed nonce reached the ID token");

        // §4: the request_uri is used once.
        let again = browser.run(&authorize_with(&h, &client.id, &uri, &[]), &client.redirect_uri, Consent::Allow).await;
        assert_eq!(page_error(&again), (400, "invalid_request_uri".into()));
    }

    async fn query_parameters_beside_a_request_uri_are_ignored(h) {
        let client = h.confidential_client(json!({
            "redirect_uris": ["https://rp.example/cb", "https://rp.example/other"]
        })).await;
        let pkce = Pkce::new();
        let uri = request_uri(&push(&h, &client, &authorization(&client, &pkce, &[])).await);
        let url = authorize_with(&h, &client.id, &uri, &[
            ("state", "query-state"),
            ("redirect_uri", "https://rp.example/other"),
            ("scope", "openid profile email"),
            ("code_challenge", &Pkce::new().challenge),
        ]);
        let outcome = h.browser(Some("alice")).run(&url, &client.redirect_uri, Consent::Allow).await;
        let Outcome::Redirect(to) = &outcome else { panic!("redirect expected, got {outcome:?}") };
        assert!(to.as_str().starts_with("https://rp.example/cb?"), "the pushed redirect_uri: {to}");
        let params = outcome.redirect_params();
        assert_eq!(params.get("state").map(String::as_str), Some("pushed-state"));
        let tokens = h.redeem(&client, params.get("code").expect("code"), &pkce.verifier).await;
        assert_eq!(tokens.status, 200, "the pushed code_challenge holds: {}", tokens.text);
        assert_eq!(tokens.body["scope"], "openid", "the pushed scope, not the query's");
    }

    async fn a_request_uri_is_usable_only_by_the_client_that_pushed_it(h) {
        let client = h.confidential_client(json!({})).await;
        let other = h.confidential_client(json!({})).await;
        let pkce = Pkce::new();
        let uri = request_uri(&push(&h, &client, &authorization(&client, &pkce, &[])).await);
        let browser = h.browser(Some("alice"));
        let stolen = browser.run(&authorize_with(&h, &other.id, &uri, &[]), &other.redirect_uri, Consent::Allow).await;
        assert_eq!(page_error(&stolen), (400, "invalid_request_uri".into()));
        let missing_client = browser.run(&format!("{}/authorize?request_uri={}", h.base, url::form_urlencoded::byte_serialize(uri.as_bytes()).collect::<String>()), &client.redirect_uri, Consent::Allow).await;
        assert_eq!(page_error(&missing_client), (400, "invalid_request".into()));
        // Neither attempt used it up.
        let own = browser.run(&authorize_with(&h, &client.id, &uri, &[]), &client.redirect_uri, Consent::Allow).await;
        assert!(own.redirect_params().contains_key("code"));
    }

    async fn a_request_uri_expires_after_its_lifetime(h) {
        let client = h.confidential_client(json!({})).await;
        let uri = request_uri(&push(&h, &client, &authorization(&client, &Pkce::new(), &[])).await);
        h.clock.advance(61);
        let outcome = h.browser(Some("alice")).run(&authorize_with(&h, &client.id, &uri, &[]), &client.redirect_uri, Consent::Allow).await;
        assert_eq!(page_error(&outcome), (400, "invalid_request_uri".into()));
    }

    async fn a_request_uri_not_from_this_server_is_refused_and_discovery_says_so(h) {
        let client = h.confidential_client(json!({})).await;
        // Not fetched (RFC 9101 §5.2): refused to the client's verified redirect URI, as every
        // error once the client and its redirect URI are known.
        for foreign in ["https://rp.example/request.jwt", "urn:example:request", "urn:ietf:params:oauth:request_uri"] {
            let outcome = h.browser(Some("alice")).run(&authorize_with(&h, &client.id, foreign, &[("state", "s")]), &client.redirect_uri, Consent::Allow).await;
            let params = outcome.redirect_params();
            assert_eq!(params.get("error").map(String::as_str), Some("request_uri_not_supported"), "{foreign}");
            assert_eq!(params.get("state").map(String::as_str), Some("s"));
        }
        let unknown = format!("{PREFIX}{}", common::random_b64(32));
        let outcome = h.browser(Some("alice")).run(&authorize_with(&h, &client.id, &unknown, &[]), &client.redirect_uri, Consent::Allow).await;
        assert_eq!(page_error(&outcome), (400, "invalid_request_uri".into()));
        let doc: Value = h.discovery().await;
        assert_eq!(doc["pushed_authorization_request_endpoint"], h.url("/par"));
        assert_eq!(doc["request_uri_parameter_supported"], false);
        assert_eq!(doc["require_pushed_authorization_requests"], false);
    }

    async fn a_push_is_validated_as_authorize_would_and_refused_as_json(h) {
        let client = h.confidential_client(json!({})).await;
        let pkce = Pkce::new();
        let base = authorization(&client, &pkce, &[]);
        let with = |name: &str, value: &str| -> Vec<(String, String)> {
            let mut p: Vec<(String, String)> = base.iter().filter(|(k, _)| k != name).cloned().collect();
            if !value.is_empty() {
                p.push((name.to_owned(), value.to_owned()));
            }
            p
        };
        let cases = [
            (with("redirect_uri", "https://attacker.example/cb"), "invalid_request"),
            (with("code_challenge", ""), "invalid_request"),
            (with("code_challenge_method", "plain"), "invalid_request"),
            (with("response_type", "token"), "unsupported_response_type"),
            (with("scope", "openid not-a-scope"), "invalid_scope"),
            (with("request_uri", &format!("{PREFIX}x")), "invalid_request"),
            (with("request", "eyJhbGciOiJub25lIn0.e30."), "invalid_request_object"),
        ];
        for (params, code) in cases {
            let reply = push(&h, &client, &params).await;
            assert_eq!((reply.status.as_u16(), reply.error()), (400, code), "{params:?}: {}", reply.text);
            assert!(reply.header("location").is_empty(), "a push is never redirected");
            assert_eq!(reply.header("cache-control"), "no-store");
        }
        let mut repeated = base.clone();
        repeated.push(("state".into(), "twice".into()));
        let reply = push(&h, &client, &repeated).await;
        assert_eq!((reply.status.as_u16(), reply.error()), (400, "invalid_request"));

        // §2.1: a client_id in the body names the authenticated client, or authentication fails.
        let reply = push(&h, &client, &with("client_id", "someone-else")).await;
        assert_eq!((reply.status.as_u16(), reply.error()), (401, "invalid_client"));

        let wrong = TestClient { secret: Some("wrong".into()), ..client.clone() };
        let reply = push(&h, &wrong, &base).await;
        assert_eq!((reply.status.as_u16(), reply.error()), (401, "invalid_client"));
        assert!(reply.header("www-authenticate").starts_with("Basic"), "{:?}", reply.headers);

        let get = h.http().get(h.url("/par")).send().await.expect("get");
        assert_eq!(get.status().as_u16(), 405);
    }

    async fn a_public_client_pushes_with_its_client_id(h) {
        let client = h.public_client(json!({})).await;
        let pkce = Pkce::new();
        let uri = request_uri(&push(&h, &client, &authorization(&client, &pkce, &[])).await);
        let outcome = h.browser(Some("alice")).run(&authorize_with(&h, &client.id, &uri, &[]), &client.redirect_uri, Consent::Allow).await;
        let code = outcome.redirect_params().get("code").expect("code").clone();
        let tokens = h.redeem(&client, &code, &pkce.verifier).await;
        assert_eq!(tokens.status, 200, "{}", tokens.text);
    }

    async fn a_client_that_requires_pushed_requests_cannot_use_the_query(h) {
        let strict = h.confidential_client(json!({"require_pushed_authorization_requests": true})).await;
        let relaxed = h.confidential_client(json!({})).await;
        let pkce = Pkce::new();
        let outcome = h.browser(Some("alice")).run(&h.authorize_url(&strict, "openid", &pkce, &[]), &strict.redirect_uri, Consent::Allow).await;
        let params = outcome.redirect_params();
        assert_eq!(params.get("error").map(String::as_str), Some("invalid_request"), "{params:?}");
        assert_eq!(params.get("state").map(String::as_str), Some("st-123"));
        let uri = request_uri(&push(&h, &strict, &authorization(&strict, &pkce, &[])).await);
        let pushed = h.browser(Some("alice")).run(&authorize_with(&h, &strict.id, &uri, &[]), &strict.redirect_uri, Consent::Allow).await;
        assert!(pushed.redirect_params().contains_key("code"));
        let plain = h.browser(Some("alice")).run(&h.authorize_url(&relaxed, "openid", &Pkce::new(), &[]), &relaxed.redirect_uri, Consent::Allow).await;
        assert!(plain.redirect_params().contains_key("code"), "other clients are not affected");
        let registered = h.ls.operator().client(&strict.id).await.expect("read").expect("client");
        assert!(registered.metadata.require_pushed_authorization_requests);
    }

    async fn a_request_uri_raced_across_two_servers_is_accepted_exactly_once(h) {
        let client = h.confidential_client(json!({})).await;
        let (second, _ls) = h.second_server().await;
        let uri = request_uri(&push(&h, &client, &authorization(&client, &Pkce::new(), &[])).await);
        let mut tasks = Vec::new();
        for i in 0..12 {
            let base = if i % 2 == 0 { h.base.clone() } else { second.clone() };
            let url = authorize_with(&h, &client.id, &uri, &[]).replacen(&h.base, &base, 1);
            let http = h.http();
            tasks.push(tokio::spawn(async move {
                let resp = http.get(url).send().await.expect("authorize");
                let status = resp.status().as_u16();
                (status, resp.text().await.unwrap_or_default())
            }));
        }
        let mut accepted = 0;
        for t in tasks {
            let (status, body) = t.await.expect("task");
            if status == 400 {
                assert!(body.contains("invalid_request_uri"), "{body}");
            } else {
                assert!((300..400).contains(&status), "accepted means sent on to sign in: {status} {body}");
                accepted += 1;
            }
        }
        assert_eq!(accepted, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_requires_pushed_requests_refuses_the_query_and_says_so() {
    let h = Harness::start_with(common::Backend::Sqlite, |b| {
        b.require_pushed_authorization_requests(true)
    })
    .await;
    let client = h.confidential_client(json!({})).await;
    let pkce = Pkce::new();
    let outcome = h
        .browser(Some("alice"))
        .run(
            &h.authorize_url(&client, "openid", &pkce, &[]),
            &client.redirect_uri,
            Consent::Allow,
        )
        .await;
    assert_eq!(
        outcome.redirect_params().get("error").map(String::as_str),
        Some("invalid_request")
    );
    let uri = request_uri(&push(&h, &client, &authorization(&client, &pkce, &[])).await);
    let pushed = h
        .browser(Some("alice"))
        .run(
            &authorize_with(&h, &client.id, &uri, &[]),
            &client.redirect_uri,
            Consent::Allow,
        )
        .await;
    assert!(pushed.redirect_params().contains_key("code"));
    let doc: Value = h.discovery().await;
    assert_eq!(doc["require_pushed_authorization_requests"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_request_lifetime_outside_five_to_six_hundred_seconds_is_refused() {
    for seconds in [4, 601] {
        let db = common::TestDatabase::new(common::Backend::Sqlite).await;
        let built = lockspire::Lockspire::builder()
            .issuer("http://127.0.0.1:1")
            .expect("issuer")
            .database(&db.url)
            .secret_key(lockspire::SecretKey::generate())
            .lifetimes(lockspire::Lifetimes {
                pushed_request: seconds,
                ..Default::default()
            })
            .build_operator()
            .await;
        assert!(built.is_err(), "{seconds} s accepted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_may_let_confidential_clients_push_an_unregistered_redirect_uri() {
    let h = Harness::start_with(common::Backend::Sqlite, |b| {
        b.allow_unregistered_redirect_uris_in_pushed_requests(true)
    })
    .await;
    let client = h.confidential_client(json!({})).await;
    let elsewhere = TestClient {
        redirect_uri: "https://rp.example/elsewhere".into(),
        ..client.clone()
    };
    let pkce = Pkce::new();
    // RFC 9126 §2.4: the authenticated push carries the redirect URI.
    let uri = request_uri(&push(&h, &client, &authorization(&elsewhere, &pkce, &[])).await);
    let outcome = h
        .browser(Some("alice"))
        .run(
            &authorize_with(&h, &client.id, &uri, &[]),
            &elsewhere.redirect_uri,
            Consent::Allow,
        )
        .await;
    let code = outcome
        .redirect_params()
        .get("code")
        .expect("sent to the pushed redirect URI")
        .clone();
    let tokens = h.redeem(&elsewhere, &code, &pkce.verifier).await;
    assert_eq!(tokens.status, 200, "{}", tokens.text);

    // Still a well-formed redirect URI.
    for bad in [
        "http://rp.example/cb",
        "https://rp.example/cb#f",
        "https://*.example/cb",
    ] {
        let bad_client = TestClient {
            redirect_uri: bad.into(),
            ..client.clone()
        };
        let reply = push(&h, &client, &authorization(&bad_client, &pkce, &[])).await;
        assert_eq!(
            (reply.status.as_u16(), reply.error()),
            (400, "invalid_request"),
            "{bad}"
        );
    }
    // Through the browser, the registration still decides.
    let outcome = h
        .browser(Some("alice"))
        .run(
            &h.authorize_url(&elsewhere, "openid", &pkce, &[]),
            &elsewhere.redirect_uri,
            Consent::Allow,
        )
        .await;
    assert!(
        matches!(outcome, Outcome::Page(status, _) if status.as_u16() == 400),
        "{outcome:?}"
    );
    // A public client proves nothing when it pushes: its registration still decides.
    let public = h.public_client(json!({})).await;
    let public_elsewhere = TestClient {
        redirect_uri: "https://rp.example/elsewhere".into(),
        ..public.clone()
    };
    let reply = push(&h, &public, &authorization(&public_elsewhere, &pkce, &[])).await;
    assert_eq!(
        (reply.status.as_u16(), reply.error()),
        (400, "invalid_request")
    );
}
