//! The device authorization grant (RFC 8628) end to end: a device asks for codes, polls the
//! token endpoint, and the user approves or denies at the verification page in a browser with
//! cookies, signed in through the host. The happy path is driven by the `openidconnect` crate
//! as the device; the polling errors, limits and refusals by raw HTTP.

mod common;

use std::time::Duration;

use common::{Browser, ClientKey, Harness, Outcome, Reply, TestClient, hidden_field};
use lockspire::Clock;
use openidconnect::core::{CoreClient, CoreDeviceAuthorizationResponse, CoreProviderMetadata};
use openidconnect::{
    ClientId, DeviceAuthorizationUrl, IssuerUrl, Nonce, OAuth2TokenResponse, Scope, TokenResponse,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A public client of the device grant (a TV app), with refresh tokens.
async fn device_client(h: &Harness) -> TestClient {
    h.public_client(json!({
        "client_name": "Living-room TV",
        "grant_types": [DEVICE_GRANT, "refresh_token"],
        "redirect_uris": [],
    }))
    .await
}

/// `POST /device_authorization` as `client`.
async fn start(h: &Harness, client: &TestClient, params: &[(&str, &str)]) -> Reply {
    h.post_as(client, "/device_authorization", params).await
}

/// Starts a flow that must succeed; returns its response.
async fn codes(h: &Harness, client: &TestClient, scope: &str) -> Value {
    let reply = start(h, client, &[("scope", scope)]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.header("cache-control"), "no-store");
    reply.body
}

/// One poll of the token endpoint with `device_code`.
async fn poll(h: &Harness, client: &TestClient, device_code: &str) -> Reply {
    h.post_as(
        client,
        "/token",
        &[("grant_type", DEVICE_GRANT), ("device_code", device_code)],
    )
    .await
}

/// Opens `url` in `browser`, signing in through the host when sent there; the page it lands on.
async fn open(browser: &Browser, url: &str) -> (StatusCode, String) {
    match browser.run(url, "unused:", common::Consent::Stop).await {
        Outcome::Page(status, html) => (status, html),
        other => panic!("expected a page, got {other:?}"),
    }
}

/// Submits the confirmation form in `html` with `decision`.
async fn decide(browser: &Browser, html: &str, decision: &str) -> (StatusCode, String) {
    let user_code = hidden_field(html, "user_code").expect("user_code field");
    let csrf = hidden_field(html, "csrf").expect("csrf field");
    let resp = browser
        .client
        .post(format!("{}/device", browser.base))
        .form(&[
            ("user_code", user_code.as_str()),
            ("csrf", csrf.as_str()),
            ("decision", decision),
        ])
        .send()
        .await
        .expect("decision");
    let status = resp.status();
    (status, resp.text().await.unwrap_or_default())
}

/// Approves or denies `user_code` as `user` through the verification page.
async fn answer(h: &Harness, user: &str, user_code: &str, decision: &str) -> String {
    let browser = h.browser(Some(user));
    let (status, html) = open(&browser, &h.url(&format!("/device?user_code={user_code}"))).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let (status, done) = decide(&browser, &html, decision).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    done
}

fn is_user_code(code: &str) -> bool {
    let alphabet = "BCDFGHJKLMNPQRSTVWXZ";
    let (a, b) = code.split_once('-').unwrap_or_default();
    a.len() == 4 && b.len() == 4 && a.chars().chain(b.chars()).all(|c| alphabet.contains(c))
}

on_both_stores! {
    async fn the_device_flow_through_the_verification_page_issues_tokens_and_an_id_token_to_an_openidconnect_device(h) {
        let client = device_client(&h).await;
        let discovery = h.discovery().await;
        assert_eq!(discovery["device_authorization_endpoint"], h.url("/device_authorization"), "RFC 8628 §4");
        assert!(discovery["grant_types_supported"].as_array().expect("grants").contains(&json!(DEVICE_GRANT)));
        let http = h.http();
        let metadata = CoreProviderMetadata::discover_async(IssuerUrl::new(h.base.clone()).expect("issuer"), &http)
            .await
            .expect("discovery");
        let device = CoreClient::from_provider_metadata(metadata, ClientId::new(client.id.clone()), None)
            .set_device_authorization_url(DeviceAuthorizationUrl::new(h.url("/device_authorization")).expect("url"));
        let details: CoreDeviceAuthorizationResponse = device
            .exchange_device_code()
            .add_scope(Scope::new("profile".into()))
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("offline_access".into()))
            .request_async(&http)
            .await
            .expect("device authorization");
        let user_code = details.user_code().secret().clone();
        assert!(is_user_code(&user_code), "RFC 8628 §6.1: {user_code}");
        assert_eq!(details.verification_uri().as_str(), h.url("/device"));
        let complete = details.verification_uri_complete().expect("verification_uri_complete").secret().clone();
        assert_eq!(complete, h.url(&format!("/device?user_code={user_code}")));
        assert_eq!(details.expires_in(), Duration::from_secs(600), "RFC 8628 §3.2 default");
        assert_eq!(details.interval(), Duration::from_secs(5));

        // The device polls while the user goes to the page; its waits move the server's clock.
        let clock = h.clock.clone();
        let polling = tokio::spawn(async move {
            let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
            device
                .exchange_device_access_token(&details)
                .expect("token endpoint")
                .request_async(&http, |wait: Duration| {
                    let clock = clock.clone();
                    async move {
                        clock.advance(wait.as_secs() as i64);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }, Some(Duration::from_secs(60)))
                .await
                .map(|tokens| (tokens, device))
        });

        // The user opens the bare verification URI, signs in, and types the code their way.
        let browser = h.browser(Some("alice"));
        let (status, form) = open(&browser, &h.url("/device")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(form.contains("name=\"user_code\""), "the code form: {form}");
        let typed = user_code.to_lowercase().replace('-', " ");
        let (status, confirm) = open(&browser, &h.url(&format!("/device?user_code={}", urlencode(&typed)))).await;
        assert_eq!(status, StatusCode::OK, "{confirm}");
        assert!(confirm.contains(&user_code), "RFC 8628 §5.4: the page shows the code to compare");
        assert!(confirm.contains("Signed in as <strong>Alice Example</strong>"), "and the account that approves");
        assert!(confirm.contains("Living-room TV") && confirm.contains("email"), "{confirm}");
        let (status, done) = decide(&browser, &confirm, "allow").await;
        assert_eq!(status, StatusCode::OK, "{done}");
        assert!(done.contains("Device connected"), "{done}");

        let (tokens, device) = polling.await.expect("join").expect("the device gets its tokens");
        assert!(tokens.refresh_token().is_some(), "offline_access granted a refresh token");
        let id_token = tokens.id_token().expect("openid granted: an ID token");
        let verifier = device.id_token_verifier();
        // A device request carries no nonce, so the ID token has none.
        let claims = id_token
            .claims(&verifier, |nonce: Option<&Nonce>| match nonce {
                None => Ok(()),
                Some(_) => Err("a nonce nobody sent".to_owned()),
            })
            .expect("the ID token verifies");
        assert_eq!(claims.subject().as_str(), "alice");
        assert_eq!(claims.email().map(|e| e.as_str()), Some("alice@example.com"));
        let info = h.userinfo(tokens.access_token().secret()).await;
        assert_eq!(info.status, StatusCode::OK, "{}", info.text);
        assert_eq!(info.body["name"], "Alice Example");
    }

    async fn polling_before_the_user_decides_is_authorization_pending_and_too_early_is_slow_down_with_an_interval_five_seconds_longer(h) {
        let client = device_client(&h).await;
        let started = codes(&h, &client, "openid").await;
        let device_code = started["device_code"].as_str().expect("device_code");
        let pending = poll(&h, &client, device_code).await;
        assert_eq!((pending.status, pending.error()), (StatusCode::BAD_REQUEST, "authorization_pending"), "{}", pending.text);
        assert_eq!(pending.header("cache-control"), "no-store");
        // At once again: too early; the interval is 10 s from now on.
        let early = poll(&h, &client, device_code).await;
        assert_eq!((early.status, early.error()), (StatusCode::BAD_REQUEST, "slow_down"));
        h.clock.advance(9);
        // 9 s is enough for the first interval, not the remembered one (now 15 s).
        assert_eq!(poll(&h, &client, device_code).await.error(), "slow_down");
        h.clock.advance(15);
        assert_eq!(poll(&h, &client, device_code).await.error(), "authorization_pending");
        h.clock.advance(14);
        assert_eq!(poll(&h, &client, device_code).await.error(), "slow_down", "the longer interval is remembered");
    }

    async fn a_denied_request_is_access_denied_and_an_expired_one_expired_token(h) {
        let client = device_client(&h).await;
        let denied = codes(&h, &client, "profile").await;
        let page = answer(&h, "alice", denied["user_code"].as_str().expect("code"), "deny").await;
        assert!(page.contains("denied"), "{page}");
        let reply = poll(&h, &client, denied["device_code"].as_str().expect("code")).await;
        assert_eq!((reply.status, reply.error()), (StatusCode::BAD_REQUEST, "access_denied"), "{}", reply.text);

        let late = codes(&h, &client, "profile").await;
        h.clock.advance(601);
        let reply = poll(&h, &client, late["device_code"].as_str().expect("code")).await;
        assert_eq!((reply.status, reply.error()), (StatusCode::BAD_REQUEST, "expired_token"), "{}", reply.text);
        // Nor can the user approve it any more.
        let browser = h.browser(Some("alice"));
        let (_, page) = open(&browser, late["verification_uri_complete"].as_str().expect("uri")).await;
        assert!(page.contains("not recognised") && !page.contains("name=\"csrf\""), "{page}");
    }

    async fn an_approved_device_code_redeems_once_and_its_replay_revokes_what_it_issued(h) {
        let client = device_client(&h).await;
        let started = codes(&h, &client, "openid offline_access").await;
        answer(&h, "alice", started["user_code"].as_str().expect("code"), "allow").await;
        let device_code = started["device_code"].as_str().expect("code");
        let first = poll(&h, &client, device_code).await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.text);
        assert_eq!(first.body["token_type"], "Bearer");
        let access = first.body["access_token"].as_str().expect("access_token");
        let refresh = first.body["refresh_token"].as_str().expect("refresh_token");
        assert_eq!(h.userinfo(access).await.status, StatusCode::OK);
        let replay = poll(&h, &client, device_code).await;
        assert_eq!(replay.error(), "invalid_grant", "{}", replay.text);
        assert_eq!(h.userinfo(access).await.status, StatusCode::UNAUTHORIZED, "the replay revoked the access token");
        let refreshed = h
            .post_as(&client, "/token", &[("grant_type", "refresh_token"), ("refresh_token", refresh)])
            .await;
        assert_eq!(refreshed.error(), "invalid_grant", "and the refresh token");
    }

    async fn concurrent_polls_of_an_approved_device_code_on_two_processes_redeem_it_once(h) {
        let client = device_client(&h).await;
        let started = codes(&h, &client, "profile").await;
        answer(&h, "alice", started["user_code"].as_str().expect("code"), "allow").await;
        let (second, _ls) = h.second_server().await;
        let device_code = started["device_code"].as_str().expect("code").to_owned();
        let mut polls = Vec::new();
        for i in 0..8 {
            let base = if i % 2 == 0 { h.base.clone() } else { second.clone() };
            let form = [("grant_type", DEVICE_GRANT.to_owned()), ("device_code", device_code.clone()), ("client_id", client.id.clone())];
            let http = h.http();
            polls.push(tokio::spawn(async move {
                http.post(format!("{base}/token")).form(&form).send().await.expect("poll").status()
            }));
        }
        let mut issued = 0;
        for poll in polls {
            if poll.await.expect("join") == StatusCode::OK {
                issued += 1;
            }
        }
        assert_eq!(issued, 1, "one redemption across processes");
    }

    async fn a_device_code_redeems_only_for_the_client_it_was_issued_to(h) {
        // A confidential device client authenticates at both endpoints as at /token.
        let client = h
            .confidential_client(json!({"grant_types": [DEVICE_GRANT], "redirect_uris": []}))
            .await;
        let other = device_client(&h).await;
        let started = codes(&h, &client, "profile").await;
        answer(&h, "bob", started["user_code"].as_str().expect("code"), "allow").await;
        let device_code = started["device_code"].as_str().expect("code");
        let stolen = poll(&h, &other, device_code).await;
        assert_eq!(stolen.error(), "invalid_grant", "{}", stolen.text);
        let rightful = poll(&h, &client, device_code).await;
        assert_eq!(rightful.status, StatusCode::OK, "the other client's attempt consumed nothing: {}", rightful.text);
        assert!(rightful.body.get("refresh_token").is_none(), "not registered for refresh tokens");
        let unauthenticated = h
            .http()
            .post(h.url("/device_authorization"))
            .form(&[("client_id", client.id.as_str())])
            .send()
            .await
            .expect("request");
        assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED, "a confidential client must authenticate");
    }

    async fn a_dpop_proof_at_the_poll_binds_the_device_flow_tokens(h) {
        let client = device_client(&h).await;
        let started = codes(&h, &client, "profile").await;
        answer(&h, "alice", started["user_code"].as_str().expect("code"), "allow").await;
        let key = ClientKey::es256("device");
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_members()});
        let claims = json!({"jti": common::random_b64(16), "htm": "POST", "htu": h.url("/token"), "iat": h.clock.now()});
        let proof = key.sign_with_header(&header, &claims);
        let reply = h
            .post_with(
                &client,
                "/token",
                &[("grant_type", DEVICE_GRANT), ("device_code", started["device_code"].as_str().expect("code"))],
                &[("DPoP", proof.as_str())],
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.body["token_type"], "DPoP", "RFC 9449 §5");
    }

    async fn the_verification_page_asks_the_host_to_sign_the_user_in_and_comes_back_with_the_code(h) {
        let client = device_client(&h).await;
        let started = codes(&h, &client, "profile").await;
        let complete = started["verification_uri_complete"].as_str().expect("uri");
        match h.browser(None).run(complete, "unused:", common::Consent::Stop).await {
            Outcome::Login(login) => {
                let url = url::Url::parse(&login).expect("login url");
                let return_to = url.query_pairs().find(|(k, _)| k == "return_to").map(|(_, v)| v.into_owned());
                assert_eq!(return_to.as_deref(), Some(complete), "back to the page with the code");
            }
            other => panic!("expected the host's sign-in, got {other:?}"),
        }
        let posted = h
            .browser(None)
            .client
            .post(h.url("/device"))
            .form(&[("user_code", "BCDF-GHJK"), ("csrf", "x"), ("decision", "allow")])
            .send()
            .await
            .expect("post");
        assert_eq!(posted.status(), StatusCode::BAD_REQUEST, "no browser cookie: refused");
    }

    async fn user_code_entry_is_limited_per_user_browser_and_source_address_with_a_clear_page(h) {
        let client = device_client(&h).await;
        let started = codes(&h, &client, "profile").await;
        let real = started["user_code"].as_str().expect("code");
        let browser = h.browser(Some("alice"));
        for i in 0..10 {
            let (status, page) = open(&browser, &h.url("/device?user_code=BBBB-BBBB")).await;
            assert_eq!(status, StatusCode::OK, "entry {i}");
            assert!(page.contains("not recognised"), "{page}");
        }
        let (status, page) = open(&browser, &h.url(&format!("/device?user_code={real}"))).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "the 11th entry of one user, even of the right code");
        assert!(page.contains("Too many codes"), "{page}");
        // Bob, signing in in alice's browser, is held by the browser's limit.
        let switched = browser
            .client
            .get(h.url("/test-signin?user=bob&return_to=/device"))
            .send()
            .await
            .expect("sign in as bob");
        assert_eq!(switched.status(), StatusCode::SEE_OTHER);
        let (status, _) = open(&browser, &h.url("/device?user_code=BBBB-BBBB")).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "one browser's entries, whoever signs in");
        // Other users in their own browsers on the same address go on until the address has
        // entered 50 codes (each user entering at most 10).
        if let Ok(mut users) = h.users.lock() {
            for n in 0..5 {
                users.insert(format!("user{n}"), common::TestUser { name: format!("User {n}"), email: format!("u{n}@example.com") });
            }
        }
        let mut entered = 10;
        'users: for n in 0..5 {
            let browser = h.browser(Some(&format!("user{n}")));
            for _ in 0..10 {
                if entered == 50 {
                    break 'users;
                }
                let (status, _) = open(&browser, &h.url("/device?user_code=BBBB-BBBC")).await;
                entered += 1;
                assert_eq!(status, StatusCode::OK, "entry {entered} from the address");
            }
        }
        let (status, _) = open(&h.browser(Some("user4")), &h.url(&format!("/device?user_code={real}"))).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "the 51st entry from one address");
        // The window passes (and with it the first code's life).
        h.clock.advance(15 * 60);
        let fresh = codes(&h, &client, "profile").await;
        let fresh = fresh["verification_uri_complete"].as_str().expect("uri");
        let (status, page) = open(&h.browser(Some("bob")), fresh).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page.contains("name=\"csrf\""), "{page}");
    }

    async fn only_guesses_count_so_reopening_ones_own_confirmation_page_is_never_limited(h) {
        let client = device_client(&h).await;
        let started = codes(&h, &client, "profile").await;
        let complete = started["verification_uri_complete"].as_str().expect("uri");
        let browser = h.browser(Some("alice"));
        for i in 0..15 {
            let (status, page) = open(&browser, complete).await;
            assert_eq!(status, StatusCode::OK, "opening {}", i + 1);
            assert!(page.contains("name=\"csrf\""), "{page}");
        }
    }

    async fn codes_are_read_only_for_a_browser_that_keeps_its_cookie_and_made_up_browsers_share_their_users_limit(h) {
        let client = device_client(&h).await;
        let started = codes(&h, &client, "profile").await;
        let code = started["user_code"].as_str().expect("code");
        let signed_in = format!("test_session=alice.{}", h.clock.now());
        // Without the browser cookie: sent back to the same page with it, nothing looked up.
        let first = h
            .http()
            .get(h.url(&format!("/device?user_code={code}")))
            .header("cookie", &signed_in)
            .send()
            .await
            .expect("get");
        assert_eq!(first.status(), StatusCode::SEE_OTHER);
        let back = first.headers()["location"].to_str().unwrap_or("").to_owned();
        assert!(back.ends_with(&format!("/device?user_code={code}&cookie_check=1")), "{back}");
        assert!(first.headers()["set-cookie"].to_str().unwrap_or("").starts_with("lockspire_browser="));
        // A browser that comes back without it does not keep cookies: told so, not looped.
        let again = h.http().get(&back).header("cookie", &signed_in).send().await.expect("get");
        assert_eq!(again.status(), StatusCode::BAD_REQUEST);
        assert!(again.text().await.unwrap_or_default().contains("does not keep cookies"));
        // A new made-up browser cookie for every guess buys nothing: the user's limit counts.
        for i in 0..11 {
            let made_up = format!("{signed_in}; lockspire_browser={}", common::random_b64(32));
            let reply = h
                .http()
                .get(h.url("/device?user_code=BBBB-BBBB"))
                .header("cookie", made_up)
                .send()
                .await
                .expect("get");
            let expected = if i < 10 { StatusCode::OK } else { StatusCode::TOO_MANY_REQUESTS };
            assert_eq!(reply.status(), expected, "guess {}", i + 1);
        }
    }

    async fn the_confirmation_form_is_bound_to_its_code_browser_and_user(h) {
        let client = device_client(&h).await;
        let started = codes(&h, &client, "profile").await;
        let code = started["user_code"].as_str().expect("code");
        let alice = h.browser(Some("alice"));
        let (_, confirm) = open(&alice, &h.url(&format!("/device?user_code={code}"))).await;
        let csrf = hidden_field(&confirm, "csrf").expect("csrf");
        // Another user's browser, holding the form's values, cannot answer it.
        let bob = h.browser(Some("bob"));
        let _ = open(&bob, &h.url("/device")).await;
        let forged = bob
            .client
            .post(h.url("/device"))
            .form(&[("user_code", code), ("csrf", csrf.as_str()), ("decision", "allow")])
            .send()
            .await
            .expect("post");
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);
        // Nor can alice's own second browser (signed in as her too) use this browser's form.
        let elsewhere = h.browser(Some("alice"));
        let _ = open(&elsewhere, &h.url("/device")).await;
        let copied = elsewhere
            .client
            .post(h.url("/device"))
            .form(&[("user_code", code), ("csrf", csrf.as_str()), ("decision", "allow")])
            .send()
            .await
            .expect("post");
        assert_eq!(copied.status(), StatusCode::FORBIDDEN, "the form is bound to its browser");
        // Nor is the token good for another code.
        let other = codes(&h, &client, "profile").await;
        let moved = alice
            .client
            .post(h.url("/device"))
            .form(&[("user_code", other["user_code"].as_str().expect("code")), ("csrf", csrf.as_str()), ("decision", "allow")])
            .send()
            .await
            .expect("post");
        assert_eq!(moved.status(), StatusCode::FORBIDDEN);
        // The rightful answer works once; a second submit changes nothing.
        let (status, _) = decide(&alice, &confirm, "deny").await;
        assert_eq!(status, StatusCode::OK);
        let (_, again) = decide(&alice, &confirm, "allow").await;
        assert!(again.contains("not recognised"), "{again}");
        let reply = poll(&h, &client, started["device_code"].as_str().expect("code")).await;
        assert_eq!(reply.error(), "access_denied");
    }

    async fn bad_device_requests_get_the_rfc_error(h) {
        let code_client = h.public_client(json!({})).await;
        let reply = start(&h, &code_client, &[("scope", "profile")]).await;
        assert_eq!(reply.error(), "unauthorized_client", "{}", reply.text);
        let client = device_client(&h).await;
        assert_eq!(start(&h, &client, &[("scope", "no-such-scope")]).await.error(), "invalid_scope");
        assert_eq!(start(&h, &client, &[("resource", "https://elsewhere.example/")]).await.error(), "invalid_target");
        assert_eq!(start(&h, &client, &[("scope", "a"), ("scope", "b")]).await.error(), "invalid_request");
        let reply = h.post_as(&client, "/token", &[("grant_type", DEVICE_GRANT)]).await;
        assert_eq!(reply.error(), "invalid_request", "device_code is required");
        assert_eq!(poll(&h, &client, "no-such-code").await.error(), "invalid_grant");
        let unknown = h
            .http()
            .post(h.url("/device_authorization"))
            .form(&[("client_id", "nobody")])
            .send()
            .await
            .expect("request");
        assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
        // Dynamic registration takes the grant without redirect URIs.
        let registered = h
            .http()
            .post(h.url("/register"))
            .json(&json!({"grant_types": [DEVICE_GRANT], "token_endpoint_auth_method": "none"}))
            .send()
            .await
            .expect("register");
        assert_eq!(registered.status(), StatusCode::CREATED);
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
