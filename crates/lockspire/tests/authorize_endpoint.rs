//! The authorization endpoint and interactions (RFC 6749 §3.1, §4.1.2.1; RFC 9700 §4.11;
//! OIDC Core §3.1.2; RFC 9207).

mod common;

use common::{Consent, Outcome, Pkce};
use serde_json::{Value, json};

on_both_stores! {
    async fn unknown_client_gets_an_error_page_never_a_redirect(h) {
        let client = h.public_client(json!({})).await;
        let mut fake = client.clone();
        fake.id = "no-such-client".into();
        let url = h.authorize_url(&fake, "openid", &Pkce::new(), &[]);
        let outcome = h.browser(Some("alice")).run(&url, &client.redirect_uri, Consent::Allow).await;
        let Outcome::Page(status, html) = outcome else { panic!("must not redirect: {outcome:?}") };
        assert_eq!(status, 400);
        assert!(html.contains("invalid_client"));
    }

    async fn unregistered_redirect_uri_gets_an_error_page_never_a_redirect(h) {
        let client = h.public_client(json!({})).await;
        for evil in ["https://evil.example/cb", "https://rp.example/cb/", "https://rp.example/cb?x=1", "https://rp.example/CB"] {
            let mut c = client.clone();
            c.redirect_uri = evil.into();
            let url = h.authorize_url(&c, "openid", &Pkce::new(), &[]);
            let resp = h.http().get(&url).send().await.expect("get");
            assert_eq!(resp.status(), 400, "{evil}");
            assert!(resp.headers().get("location").is_none(), "{evil} must not redirect");
            assert!(resp.headers()["content-type"].to_str().unwrap_or("").starts_with("text/html"));
        }
    }

    async fn a_loopback_redirect_uri_matches_any_port_for_native_clients_only(h) {
        for (application_type, other_port_allowed) in [("web", false), ("native", true)] {
            let client = h.public_client(json!({"application_type": application_type, "redirect_uris": ["http://127.0.0.1:8080/cb"]})).await;
            for (uri, allowed) in [("http://127.0.0.1:8080/cb", true), ("http://127.0.0.1:8081/cb", other_port_allowed)] {
                let mut c = client.clone();
                c.redirect_uri = uri.into();
                let resp = h.http().get(h.authorize_url(&c, "openid", &Pkce::new(), &[])).send().await.expect("get");
                let status = resp.status();
                assert_eq!(status == 400 && resp.headers().get("location").is_none(), !allowed, "{application_type} {uri}: {status}");
            }
        }
    }

    async fn duplicated_client_id_is_an_error_page(h) {
        let client = h.public_client(json!({})).await;
        let url = format!("{}&client_id={}", h.authorize_url(&client, "openid", &Pkce::new(), &[]), client.id);
        let resp = h.http().get(&url).send().await.expect("get");
        assert_eq!(resp.status(), 400);
        assert!(resp.headers().get("location").is_none());
    }

    async fn later_errors_redirect_with_state_and_iss(h) {
        let client = h.public_client(json!({})).await;
        let browser = h.browser(Some("alice"));
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("response_type", "token")], "unsupported_response_type"),
            (&[("scope", "openid unknown-scope")], "invalid_scope"),
            (&[("prompt", "none login")], "invalid_request"),
            (&[("max_age", "-1")], "invalid_request"),
            (&[("response_mode", "web_message")], "invalid_request"),
            (&[("request", "eyJ.x.y")], "invalid_request_object"),
            (&[("request_uri", "urn:x")], "request_uri_not_supported"),
            (&[("resource", "not a uri")], "invalid_target"),
            (&[("claims", "not json")], "invalid_request"),
            (&[("id_token_hint", "a.b.c")], "invalid_request"),
        ];
        for (extra, code) in cases {
            let mut q: Vec<(String, String)> = vec![
                ("response_type".into(), "code".into()),
                ("client_id".into(), client.id.clone()),
                ("redirect_uri".into(), client.redirect_uri.clone()),
                ("scope".into(), "openid".into()),
                ("state".into(), "xyz".into()),
                ("code_challenge".into(), Pkce::new().challenge),
                ("code_challenge_method".into(), "S256".into()),
            ];
            for (k, v) in extra.iter() {
                q.retain(|(name, _)| name != k);
                q.push((k.to_string(), v.to_string()));
            }
            let query: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&q).finish();
            let outcome = browser.run(&format!("{}/authorize?{query}", h.base), &client.redirect_uri, Consent::Allow).await;
            let params = outcome.redirect_params();
            assert_eq!(params.get("error").map(String::as_str), Some(*code), "{extra:?}");
            assert_eq!(params.get("state").map(String::as_str), Some("xyz"), "{extra:?}");
            assert_eq!(params.get("iss"), Some(&h.base), "{extra:?}");
        }
    }

    async fn pkce_is_required_and_plain_is_refused(h) {
        let client = h.public_client(json!({})).await;
        let browser = h.browser(Some("alice"));
        let base = format!(
            "{}/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid&state=s",
            h.base,
            client.id,
            url::form_urlencoded::byte_serialize(client.redirect_uri.as_bytes()).collect::<String>()
        );
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        for extra in ["".to_owned(), format!("&code_challenge={verifier}&code_challenge_method=plain"), format!("&code_challenge={verifier}")] {
            let outcome = browser.run(&format!("{base}{extra}"), &client.redirect_uri, Consent::Allow).await;
            let params = outcome.redirect_params();
            assert_eq!(params.get("error").map(String::as_str), Some("invalid_request"), "{extra}");
        }
    }

    async fn nobody_signed_in_goes_to_the_host_login_with_return_to(h) {
        let client = h.public_client(json!({})).await;
        let url = h.authorize_url(&client, "openid", &Pkce::new(), &[]);
        let outcome = h.browser(None).run(&url, &client.redirect_uri, Consent::Allow).await;
        let Outcome::Login(login) = outcome else { panic!("expected login, got {outcome:?}") };
        let login = url::Url::parse(&login).expect("url");
        let return_to = login.query_pairs().find(|(k, _)| k == "return_to").map(|(_, v)| v.into_owned()).expect("return_to");
        assert!(return_to.starts_with(&format!("{}/authorize/resume?interaction=", h.base)));
    }

    async fn free_form_values_are_capped_so_an_anonymous_request_stores_a_small_row(h) {
        let client = h.public_client(json!({})).await;
        // A claims request of exactly 2,048 bytes.
        let claims = |len: usize| {
            let head = r#"{"userinfo":{"name":null},"x":""#;
            format!("{head}{}\"}}", "a".repeat(len - head.len() - 2))
        };
        let at_cap = [("state", "s".repeat(1024)), ("nonce", "n".repeat(512)), ("login_hint", "h".repeat(512)),
            ("acr_values", "a".repeat(512)), ("ui_locales", "u".repeat(512)), ("claims", claims(2048))];
        // The harness's URL carries a short state and nonce; these replace them.
        let url_with = |values: &[(&str, &str)]| {
            let pkce = Pkce::new();
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            q.append_pair("response_type", "code").append_pair("client_id", &client.id)
                .append_pair("redirect_uri", &client.redirect_uri).append_pair("scope", "openid")
                .append_pair("code_challenge", &pkce.challenge).append_pair("code_challenge_method", "S256");
            for (k, v) in values {
                q.append_pair(k, v);
            }
            format!("{}/authorize?{}", h.base, q.finish())
        };
        for (name, value) in &at_cap {
            let over = if *name == "claims" { claims(2049) } else { format!("{value}x") };
            let mut values: Vec<(&str, &str)> = vec![("nonce", "n")];
            values.retain(|(k, _)| k != name);
            values.push((name, &over));
            let url = url_with(&values);
            let outcome = h.browser(None).run(&url, &client.redirect_uri, Consent::Stop).await;
            let params = outcome.redirect_params();
            assert_eq!(params.get("error").map(String::as_str), Some("invalid_request"), "{name}: {params:?}");
        }
        // Every value at its cap at once: the request is kept, and its row stays small.
        let all: Vec<(&str, &str)> = at_cap.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let url = url_with(&all);
        let outcome = h.browser(None).run(&url, &client.redirect_uri, Consent::Stop).await;
        assert!(matches!(outcome, Outcome::Login(_)), "{outcome:?}");
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&h.db.url).await.expect("db");
        let sizes: Vec<(String,)> = sqlx::query_as("SELECT request FROM interactions").fetch_all(&pool).await.expect("select");
        assert_eq!(sizes.len(), 1, "refused requests store nothing");
        let stored = sizes[0].0.len();
        assert!(stored < 8 * 1024, "one interaction row holds {stored} bytes of request");

        // Nothing grows between the check and the row: numbers written out in full, or a
        // native client's loopback redirect URI spelled with dot segments.
        let numbers = format!("{{\"x\":[{}9e15]}}", "9e15,".repeat(400));
        assert!(numbers.len() <= 2048);
        let url = url_with(&[("nonce", "n"), ("claims", &numbers)]);
        let outcome = h.browser(None).run(&url, &client.redirect_uri, Consent::Stop).await;
        assert_eq!(outcome.redirect_params().get("error").map(String::as_str), Some("invalid_request"));
        let native = h.public_client(json!({"redirect_uris": ["http://127.0.0.1/cb"]})).await;
        let mut dotted = native.clone();
        dotted.redirect_uri = format!("http://127.0.0.1:5000/{}cb", "x/../".repeat(500));
        let resp = h.http().get(h.authorize_url(&dotted, "openid", &Pkce::new(), &[])).send().await.expect("get");
        assert_eq!(resp.status(), 400, "refused on a page, never stored or redirected to");
    }

    async fn prompt_none_without_session_is_login_required(h) {
        let client = h.public_client(json!({})).await;
        let url = h.authorize_url(&client, "openid", &Pkce::new(), &[("prompt", "none")]);
        let outcome = h.browser(None).run(&url, &client.redirect_uri, Consent::Allow).await;
        assert_eq!(outcome.redirect_params().get("error").map(String::as_str), Some("login_required"));
    }

    async fn prompt_none_without_consent_is_consent_required(h) {
        let client = h.public_client(json!({})).await;
        let url = h.authorize_url(&client, "openid", &Pkce::new(), &[("prompt", "none")]);
        let outcome = h.browser(Some("alice")).run(&format!("{}/test-signin?user=alice&return_to={}", h.base,
            url::form_urlencoded::byte_serialize(url.as_bytes()).collect::<String>()), &client.redirect_uri, Consent::Allow).await;
        assert_eq!(outcome.redirect_params().get("error").map(String::as_str), Some("consent_required"));
    }

    async fn remembered_consent_skips_the_page_unless_prompt_consent(h) {
        let client = h.public_client(json!({})).await;
        let browser = h.browser(Some("alice"));
        let first = browser.run(&h.authorize_url(&client, "openid email", &Pkce::new(), &[]), &client.redirect_uri, Consent::Allow).await;
        assert!(first.redirect_params().contains_key("code"));
        // Covered scopes: no consent page, even with prompt=none.
        let again = browser.run(&h.authorize_url(&client, "openid", &Pkce::new(), &[("prompt", "none")]), &client.redirect_uri, Consent::Stop).await;
        assert!(again.redirect_params().contains_key("code"), "remembered consent: {again:?}");
        // prompt=consent forces the page.
        let forced = browser.run(&h.authorize_url(&client, "openid", &Pkce::new(), &[("prompt", "consent")]), &client.redirect_uri, Consent::Stop).await;
        assert!(matches!(forced, Outcome::ConsentPage(..)), "{forced:?}");
        // A new scope asks again.
        let wider = browser.run(&h.authorize_url(&client, "openid profile", &Pkce::new(), &[]), &client.redirect_uri, Consent::Stop).await;
        let Outcome::ConsentPage(_, html) = wider else { panic!("new scope needs consent") };
        assert!(html.contains("Allow") && html.contains("Deny") && html.contains("profile"));
        assert!(html.contains("Test public client"));
        assert!(html.contains("Signed in as <strong>Alice Example</strong>"), "the page names the account that approves: {html}");
    }

    async fn consent_page_refuses_framing_and_caching(h) {
        let client = h.public_client(json!({})).await;
        let browser = h.browser(Some("alice"));
        let outcome = browser.run(&h.authorize_url(&client, "openid", &Pkce::new(), &[]), &client.redirect_uri, Consent::Stop).await;
        let Outcome::ConsentPage(url, _) = outcome else { panic!("consent page expected") };
        let resp = browser.client.get(&url).send().await.expect("page");
        assert_eq!(resp.headers()["x-frame-options"], "DENY");
        assert!(resp.headers()["content-security-policy"].to_str().unwrap_or("").contains("frame-ancestors 'none'"));
        assert_eq!(resp.headers()["cache-control"], "no-store");
    }

    async fn denying_consent_returns_access_denied(h) {
        let client = h.public_client(json!({})).await;
        let outcome = h.browser(Some("alice")).run(&h.authorize_url(&client, "openid", &Pkce::new(), &[]), &client.redirect_uri, Consent::Deny).await;
        let params = outcome.redirect_params();
        assert_eq!(params.get("error").map(String::as_str), Some("access_denied"));
        assert_eq!(params.get("state").map(String::as_str), Some("st-123"));
        assert_eq!(params.get("iss"), Some(&h.base));
    }

    async fn consent_form_needs_csrf_token_and_the_same_browser(h) {
        let client = h.public_client(json!({})).await;
        let browser = h.browser(Some("alice"));
        let outcome = browser.run(&h.authorize_url(&client, "openid", &Pkce::new(), &[]), &client.redirect_uri, Consent::Stop).await;
        let Outcome::ConsentPage(_, html) = outcome else { panic!("consent page expected") };
        let interaction = common::hidden_field(&html, "interaction").expect("interaction");
        let forged = browser.client.post(h.url("/consent"))
            .form(&[("interaction", interaction.as_str()), ("csrf", "forged"), ("decision", "allow")])
            .send().await.expect("post");
        assert_eq!(forged.status(), 403);
        assert!(forged.headers().get("location").is_none());
        // Another browser (same user, no interaction cookie) cannot complete it.
        let other = h.browser(Some("alice"));
        let _ = other.client.get(format!("{}/test-signin?user=alice&return_to=/jwks", h.base)).send().await;
        let stolen = other.submit_consent(&html, "allow").await;
        assert_eq!(stolen.status(), 403);
        // The rightful browser still can, exactly once.
        let ok = browser.submit_consent(&html, "allow").await;
        assert_eq!(ok.status(), 303);
        assert!(ok.headers()["location"].to_str().unwrap_or("").contains("code="));
        let twice = browser.submit_consent(&html, "allow").await;
        assert_eq!(twice.status(), 400, "an interaction completes once");
    }

    async fn prompt_login_and_max_age_force_a_fresh_sign_in(h) {
        let client = h.public_client(json!({})).await;
        let browser = h.browser(Some("alice"));
        let first = browser.run(&h.authorize_url(&client, "openid", &Pkce::new(), &[]), &client.redirect_uri, Consent::Allow).await;
        assert!(first.is_redirect());
        h.clock.advance(120);
        // max_age=60: the session is 120 s old, so the host is asked to sign the user in again.
        let resp = browser.client.get(h.authorize_url(&client, "openid", &Pkce::new(), &[("max_age", "60")])).send().await.expect("get");
        let location = resp.headers()["location"].to_str().unwrap_or("").to_owned();
        assert!(location.starts_with("/test-login") && location.contains("force=1"), "{location}");
        // prompt=none with a stale session: login_required.
        let stale = browser.run(&h.authorize_url(&client, "openid", &Pkce::new(), &[("max_age", "60"), ("prompt", "none")]), &client.redirect_uri, Consent::Allow).await;
        assert_eq!(stale.redirect_params().get("error").map(String::as_str), Some("login_required"));
        // After signing in again the flow completes and auth_time is fresh.
        let fresh = browser.run(&h.authorize_url(&client, "openid", &Pkce::new(), &[("prompt", "login")]), &client.redirect_uri, Consent::Allow).await;
        assert!(fresh.redirect_params().contains_key("code"));
    }

    async fn id_token_hint_for_another_user_requires_login(h) {
        let client = h.public_client(json!({})).await;
        let tokens = h.tokens(&client, "bob", "openid").await;
        let hint = tokens["id_token"].as_str().expect("id token").to_owned();
        let url = h.authorize_url(&client, "openid", &Pkce::new(), &[("id_token_hint", &hint), ("prompt", "none")]);
        let as_alice = h.browser(Some("alice"));
        let outcome = as_alice.run(&format!("{}/test-signin?user=alice&return_to={}", h.base,
            url::form_urlencoded::byte_serialize(url.as_bytes()).collect::<String>()), &client.redirect_uri, Consent::Allow).await;
        assert_eq!(outcome.redirect_params().get("error").map(String::as_str), Some("login_required"));
    }

    async fn post_authorize_is_supported(h) {
        let client = h.public_client(json!({})).await;
        let pkce = Pkce::new();
        let browser = h.browser(Some("alice"));
        let form = [
            ("response_type", "code"), ("client_id", client.id.as_str()), ("redirect_uri", client.redirect_uri.as_str()),
            ("scope", "openid"), ("code_challenge", pkce.challenge.as_str()), ("code_challenge_method", "S256"),
        ];
        // Without the browser cookie (a POST from another site carries no SameSite=Lax one) the
        // request goes on as a GET, which carries it, rather than replacing it.
        let resp = browser.client.post(h.url("/authorize")).form(&form).send().await.expect("post");
        assert_eq!(resp.status(), 303);
        assert!(resp.headers().get("set-cookie").is_none());
        let next = resp.headers()["location"].to_str().unwrap_or("").to_owned();
        assert!(next.starts_with(&format!("{}/authorize?", h.base)), "{next}");
        assert!(next.contains(&format!("client_id={}", client.id)), "{next}");
        let followed = browser.client.get(&next).send().await.expect("get");
        assert!(followed.headers()["location"].to_str().unwrap_or("").starts_with("/test-login"));
        // With it, the POST is answered at once.
        let resp = browser.client.post(h.url("/authorize")).form(&form).send().await.expect("post");
        assert_eq!(resp.status(), 303);
        assert!(resp.headers()["location"].to_str().unwrap_or("").starts_with("/test-login"));
    }

    async fn prompt_login_asks_again_even_within_the_same_second(h) {
        let client = h.public_client(json!({})).await;
        let browser = h.browser(Some("alice"));
        let _ = browser.client.get(format!("{}/test-signin?user=alice&return_to=/jwks", h.base)).send().await.expect("sign in");
        // The clock has not moved: the session's auth_time equals the request time.
        let resp = browser.client.get(h.authorize_url(&client, "openid", &Pkce::new(), &[("prompt", "login")])).send().await.expect("get");
        let location = resp.headers()["location"].to_str().unwrap_or("").to_owned();
        assert!(location.starts_with("/test-login") && location.contains("force=1"), "{location}");
        let done = browser.run(&h.authorize_url(&client, "openid", &Pkce::new(), &[("prompt", "login")]), &client.redirect_uri, Consent::Allow).await;
        assert!(done.redirect_params().contains_key("code"), "a fresh sign-in completes: {done:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_render_their_own_consent_page() {
    let h = common::Harness::start_with(common::Backend::Sqlite, |b| {
        b.consent_renderer(|page: &lockspire::ConsentPage| {
            let scopes: Vec<String> = page.scopes.iter().map(|s| s.name.clone()).collect();
            Ok(format!(
                r#"<h1>Acme asks: {name} wants {scopes}</h1><form method="post" action="{action}">
<input type="hidden" name="interaction" value="{ix}"><input type="hidden" name="csrf" value="{csrf}">
<button name="decision" value="allow">OK</button></form>"#,
                name = page.client_name,
                scopes = scopes.join(","),
                action = page.action,
                ix = page.interaction_id,
                csrf = page.csrf,
            ))
        })
    })
    .await;
    let client = h.public_client(json!({})).await;
    let browser = h.browser(Some("alice"));
    let stop = browser
        .run(
            &h.authorize_url(&client, "openid email", &Pkce::new(), &[]),
            &client.redirect_uri,
            Consent::Stop,
        )
        .await;
    let Outcome::ConsentPage(url, html) = stop else {
        panic!("consent page")
    };
    assert!(
        html.contains("Acme asks: Test public client wants openid,email"),
        "{html}"
    );
    let resp = browser.client.get(&url).send().await.expect("page");
    assert_eq!(
        resp.headers()["x-frame-options"],
        "DENY",
        "Lockspire still sets the security headers"
    );
    let done = browser
        .run(
            &h.authorize_url(&client, "openid email", &Pkce::new(), &[]),
            &client.redirect_uri,
            Consent::Allow,
        )
        .await;
    assert!(done.redirect_params().contains_key("code"));
}

on_both_stores! {
    async fn the_host_hears_the_acr_locales_and_account_pages_the_client_asked_for(h) {
        let client = h.confidential_client(json!({})).await;
        let pkce = Pkce::new();
        let claims = json!({"id_token": {"acr": {"essential": true, "values": ["urn:mfa", "urn:pwd"]}}}).to_string();
        let url = h.authorize_url(&client, "openid", &pkce, &[
            ("acr_values", "urn:pwd urn:hw"), ("ui_locales", "fr-CA fr"), ("claims_locales", "de"),
            ("prompt", "create select_account"), ("claims", &claims),
        ]);
        let outcome = h.browser(None).run(&url, &client.redirect_uri, Consent::Allow).await;
        let Outcome::Login(login) = outcome else { panic!("the host's sign-in page, got {outcome:?}") };
        let told: std::collections::HashMap<String, String> = url::Url::parse(&login).expect("url").query_pairs().into_owned().collect();
        assert_eq!(told["acr"], "urn:pwd urn:hw urn:mfa", "acr_values first, then the claims request's");
        assert_eq!(told["ui_locales"], "fr-CA fr");
        assert_eq!(told["claims_locales"], "de");
        assert_eq!(told["create"], "1");
        assert_eq!(told["select"], "1");

        // prompt=none asks for no page at all, so it cannot ask for the account-creation page.
        let url = h.authorize_url(&client, "openid", &pkce, &[("prompt", "none create")]);
        let outcome = h.browser(Some("alice")).run(&url, &client.redirect_uri, Consent::Allow).await;
        assert_eq!(outcome.redirect_params().get("error").map(String::as_str), Some("invalid_request"));
        let doc: Value = h.discovery().await;
        assert!(doc["prompt_values_supported"].as_array().expect("prompts").iter().any(|p| p == "create"));
    }
}
