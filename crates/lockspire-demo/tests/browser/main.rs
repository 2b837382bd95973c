//! The demo in a real browser (headless Chromium over WebDriver): every form the demo and
//! Lockspire render is filled in and posted the way a person would, because browsers label
//! requests (`Origin`, `Sec-Fetch-Site`, `SameSite` cookies, referrer policy) in ways an HTTP
//! client does not. Screenshots of each step land in `target/screenshots/<test>/`.
//!
//! Without Chromium the tests print a loud notice and pass; CI installs it and sets
//! `LOCKSPIRE_BROWSER_TESTS=require`, which makes a missing browser a failure.

mod attacker;
mod demo;

use axum::Router;
use axum::extract::Query;
use axum::http::{HeaderMap, header};
use axum::response::Html;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lockspire_demo::{DEMO_PASSWORD, DEMO_USERNAME};
use serde_json::{Value, json};

use attacker::*;
use demo::*;

#[tokio::test]
async fn readme_demo_signs_alice_in_through_real_forms_consents_remembers_and_signs_out() {
    let _one = ONE_BROWSER.lock().await;
    let Some(mut b) = browser("readme-demo").await else {
        return;
    };
    let demo = start_readme_demo();
    let issuer = demo.issuer.as_str();

    // A newcomer opens /demo: the demo client sends the browser to /authorize, and Lockspire,
    // finding nobody signed in, to the host's sign-in form.
    b.goto(&format!("{issuer}/demo")).await.expect("open /demo");
    let login = b.wait_for_path("/login").await.expect("sign-in form");
    let return_to = login
        .query_pairs()
        .find(|(k, _)| k == "return_to")
        .map(|(_, v)| v.into_owned())
        .expect("return_to");
    assert!(
        return_to.starts_with(&format!("{issuer}/authorize/resume?")),
        "{return_to}"
    );
    b.screenshot("sign-in-form").await.expect("screenshot");

    // A wrong password is refused by the host, on a re-shown form that still works.
    b.fill("#username", DEMO_USERNAME).await.expect("username");
    b.fill("#password", "not-her-password")
        .await
        .expect("password");
    b.click("button[type=submit]").await.expect("submit");
    assert_eq!(
        b.text("p.error").await.expect("an error on the form"),
        "Wrong username or password."
    );
    b.screenshot("wrong-password").await.expect("screenshot");

    // The right password: back to Lockspire, which asks for consent.
    b.fill("#password", DEMO_PASSWORD).await.expect("password");
    b.click("button[type=submit]").await.expect("submit");
    b.wait_for_path("/consent").await.expect("consent page");
    let consent = b.text("main").await.expect("consent text");
    assert!(
        consent.contains("Allow Lockspire demo relying party to access your account?"),
        "{consent}"
    );
    for scope in ["openid", "profile", "email", "offline_access"] {
        assert!(consent.contains(scope), "{scope} listed: {consent}");
    }
    b.screenshot("consent").await.expect("screenshot");

    // Allow: the browser lands back on the demo client, which shows what it verified.
    b.click("button[name=decision][value=allow]")
        .await
        .expect("allow");
    b.wait_for_path("/demo/callback").await.expect("callback");
    let claims = json_at(&b, "#id-token-claims").await;
    assert_eq!(claims["iss"], issuer);
    assert_eq!(claims["aud"], "lockspire-demo");
    assert_eq!(claims["name"], "Alice Example");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["amr"], json!(["pwd"]));
    let subject = claims["sub"].as_str().expect("sub").to_owned();
    assert!(!subject.is_empty());
    let header = json_at(&b, "#id-token-header").await;
    assert_eq!(header["alg"], "RS256");
    assert!(header["kid"].is_string(), "{header}");
    let userinfo = json_at(&b, "#userinfo").await;
    assert_eq!(userinfo["sub"], subject.as_str());
    assert_eq!(userinfo["preferred_username"], DEMO_USERNAME);
    // The host's API, called with the token as bearer and, bound to a DPoP key, with a proof.
    let api = json_at(&b, "#api-bearer").await;
    assert_eq!(api["sub"], subject.as_str());
    assert_eq!(api["name"], "Alice Example");
    let bound = json_at(&b, "#api-dpop").await;
    assert_eq!(bound["sub"], subject.as_str());
    let jkt = b.text("#dpop-jkt").await.expect("thumbprint");
    assert_eq!(bound["bound_to"]["dpop_jkt"], jkt.as_str());
    assert_eq!(
        json_at(&b, "#api-dpop-as-bearer").await["error"],
        "invalid_token"
    );
    let challenge = b
        .text("#api-dpop-as-bearer-challenge")
        .await
        .expect("challenge");
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    // Each step of the flow is explained on the page.
    for step in [
        "#step-authorize",
        "#step-sign-in",
        "#step-callback",
        "#step-token",
        "#step-id-token",
        "#step-userinfo",
        "#step-api",
        "#step-dpop",
    ] {
        b.find(step).await.expect("the step is explained");
    }
    let page = b.text("main").await.expect("page text");
    assert!(
        page.contains(&format!("GET {issuer}/authorize")),
        "the authorization request is shown"
    );
    assert!(page.contains(&format!("POST {issuer}/token")), "{page}");
    b.screenshot("verified-claims").await.expect("screenshot");

    // /demo again: consent is remembered and alice is still signed in, so no page asks
    // anything; the browser goes straight through to the callback.
    b.goto(&format!("{issuer}/demo")).await.expect("open /demo");
    b.wait_for_path("/demo/callback")
        .await
        .expect("straight to callback");
    let again = json_at(&b, "#id-token-claims").await;
    assert_eq!(again["sub"], subject.as_str());
    assert_eq!(again["auth_time"], claims["auth_time"], "no new sign-in");
    b.screenshot("remembered-consent")
        .await
        .expect("screenshot");

    // Sign out with the home page's form; /demo then needs a sign-in again.
    b.goto(&format!("{issuer}/")).await.expect("home");
    assert_eq!(b.text("#subject").await.expect("subject"), subject);
    b.screenshot("home-signed-in").await.expect("screenshot");
    b.click("form[action='/logout'] button[type=submit]")
        .await
        .expect("sign out");
    b.find("#signed-out").await.expect("signed out");
    b.screenshot("signed-out").await.expect("screenshot");
    b.goto(&format!("{issuer}/demo")).await.expect("open /demo");
    b.wait_for_path("/login")
        .await
        .expect("sign-in needed again");
    b.close().await;
}

#[tokio::test]
async fn sign_in_and_sign_out_posted_from_another_origin_are_refused() {
    let _one = ONE_BROWSER.lock().await;
    let Some(mut b) = browser("cross-origin-forms").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let issuer = start_demo(&dir).await;
    let (session_cookie, form_token) = attacker_session(&issuer).await;
    let attacker = Attacker {
        issuer: issuer.clone(),
        session_cookie,
        form_token: form_token.clone(),
    };
    let port = serve(
        Router::new()
            .route("/login-csrf", get(login_csrf))
            .route("/sandboxed", get(sandboxed))
            .route("/logout-csrf", get(logout_csrf))
            .with_state(attacker),
    )
    .await;

    // Another site (localhost is a different site from 127.0.0.1): no session, no token, and
    // labelled as cross-site.
    b.goto(&format!("http://localhost:{port}/login-csrf"))
        .await
        .expect("attacker page");
    b.click("#go").await.expect("submit");
    b.wait_for_path("/login").await.expect("posted");
    b.screenshot("cross-site-login-refused")
        .await
        .expect("screenshot");
    assert_refused_and_signed_out(&b, &issuer).await;

    // Another port of the same host: the attacker tosses its own session cookie into the
    // browser and posts that session's valid token. Only the Origin label gives it away.
    b.goto(&format!("http://127.0.0.1:{port}/login-csrf?toss=1"))
        .await
        .expect("attacker page");
    b.click("#go").await.expect("submit");
    b.wait_for_path("/login").await.expect("posted");
    b.screenshot("tossed-session-login-refused")
        .await
        .expect("screenshot");
    assert_refused_and_signed_out(&b, &issuer).await;
    // The toss did work (the demo sees the attacker's session), so the refusal above came
    // from the origin check, not from a missing cookie.
    b.goto(&format!("{issuer}/login"))
        .await
        .expect("login page");
    assert_eq!(
        b.attr("input[name=form_token]", "value")
            .await
            .expect("token field"),
        Some(form_token)
    );

    // A sandboxed frame posts with an opaque origin (Origin: null) and the tossed token;
    // the browser still labels it cross-site.
    b.goto(&format!("http://127.0.0.1:{port}/sandboxed"))
        .await
        .expect("attacker page");
    b.enter_frame(0).await.expect("into the frame");
    b.click("#go").await.expect("submit");
    b.leave_frames().await.expect("back to the page");
    b.wait_for_path("/login").await.expect("posted");
    b.screenshot("sandboxed-login-refused")
        .await
        .expect("screenshot");
    assert_refused_and_signed_out(&b, &issuer).await;

    // Signed in for real, the user visits a page that posts to /logout: still signed in.
    sign_in_with_the_form(&b, &issuer).await;
    b.goto(&format!("http://127.0.0.1:{port}/logout-csrf"))
        .await
        .expect("attacker page");
    b.click("#go").await.expect("submit");
    b.wait_for_path("/logout").await.expect("posted");
    assert_eq!(b.text("h1").await.expect("a heading"), "Refused");
    b.screenshot("cross-origin-logout-refused")
        .await
        .expect("screenshot");
    b.goto(&format!("{issuer}/")).await.expect("home");
    b.find("#signed-in").await.expect("still signed in");
    b.close().await;
}

/// `/cb` of a test client: shows how it was reached and with which parameters.
async fn client_callback(
    method: axum::http::Method,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
    body: axum::body::Bytes,
) -> Html<String> {
    let params: Vec<(String, String)> = if method == axum::http::Method::POST {
        url::form_urlencoded::parse(&body).into_owned().collect()
    } else {
        query
    };
    let map: serde_json::Map<String, Value> = params
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    Html(format!(
        "<!doctype html><title>Client</title><p id=\"method\">{method}</p>\
         <p id=\"content-type\">{content_type}</p><pre id=\"params\">{}</pre>",
        Value::Object(map)
    ))
}

/// A PKCE verifier and its S256 challenge (RFC 7636 §4.1–4.2).
fn pkce() -> (String, String) {
    let mut raw = [0u8; 32];
    aws_lc_rs::rand::fill(&mut raw).expect("randomness");
    let verifier = URL_SAFE_NO_PAD.encode(raw);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    (verifier, URL_SAFE_NO_PAD.encode(digest))
}

#[tokio::test]
async fn form_post_response_auto_submits_in_the_browser_and_deny_returns_access_denied() {
    let _one = ONE_BROWSER.lock().await;
    let Some(mut b) = browser("form-post-and-deny").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let issuer = start_demo(&dir).await;
    let port = serve(Router::new().route("/cb", get(client_callback).post(client_callback))).await;
    let redirect_uri = format!("http://127.0.0.1:{port}/cb");
    let registered: Value = reqwest::Client::new()
        .post(format!("{issuer}/register"))
        .json(&json!({
            "client_name": "Browser test client",
            "application_type": "native",
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "redirect_uris": [redirect_uri],
        }))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("registration JSON");
    let client_id = registered["client_id"].as_str().expect("client_id");
    sign_in_with_the_form(&b, &issuer).await;

    // response_mode=form_post (OAuth 2.0 Form Post Response Mode): Lockspire's page posts the
    // response to the client with a script its CSP allows by nonce.
    let (verifier, challenge) = pkce();
    let authorize = |state: &str, extra: &str| {
        format!(
            "{issuer}/authorize?response_type=code&client_id={client_id}\
             &redirect_uri={}&scope=openid&state={state}&nonce=n-{state}\
             &code_challenge={challenge}&code_challenge_method=S256{extra}",
            url::form_urlencoded::byte_serialize(redirect_uri.as_bytes()).collect::<String>()
        )
    };
    b.goto(&authorize("s1", "&response_mode=form_post"))
        .await
        .expect("authorize");
    b.wait_for_path("/consent").await.expect("consent page");
    b.screenshot("consent").await.expect("screenshot");
    b.click("button[name=decision][value=allow]")
        .await
        .expect("allow");
    let landed = b.wait_for_path("/cb").await.expect("posted to the client");
    assert_eq!(landed.query(), None, "nothing in the address");
    assert_eq!(b.text("#method").await.expect("method"), "POST");
    assert_eq!(
        b.text("#content-type").await.expect("content type"),
        "application/x-www-form-urlencoded"
    );
    let params = json_at(&b, "#params").await;
    assert_eq!(params["state"], "s1");
    assert_eq!(params["iss"], issuer.as_str());
    let code = params["code"].as_str().expect("a code");
    b.screenshot("form-post-received")
        .await
        .expect("screenshot");
    // The code the browser carried is good at the token endpoint.
    let token = reqwest::Client::new()
        .post(format!("{issuer}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &redirect_uri),
            ("client_id", client_id),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(token.status(), reqwest::StatusCode::OK);

    // Deny on the consent page: the client hears access_denied (RFC 6749 §4.1.2.1).
    b.goto(&authorize("s2", "&prompt=consent"))
        .await
        .expect("authorize");
    b.wait_for_path("/consent").await.expect("consent page");
    b.click("button[name=decision][value=deny]")
        .await
        .expect("deny");
    b.wait_for_path("/cb")
        .await
        .expect("redirected to the client");
    assert_eq!(b.text("#method").await.expect("method"), "GET");
    let params = json_at(&b, "#params").await;
    assert_eq!(params["error"], "access_denied");
    assert_eq!(params["state"], "s2");
    assert_eq!(params["iss"], issuer.as_str());
    assert!(params.get("code").is_none());
    b.screenshot("denied").await.expect("screenshot");

    // form_post.jwt (JARM): the same auto-submitting page, posting one signed JWT.
    b.goto(&authorize("s3", "&response_mode=form_post.jwt"))
        .await
        .expect("authorize");
    b.wait_for_path("/cb").await.expect("posted to the client");
    assert_eq!(b.text("#method").await.expect("method"), "POST");
    let params = json_at(&b, "#params").await;
    let fields: Vec<&String> = params.as_object().expect("fields").keys().collect();
    assert_eq!(fields, vec!["response"], "only the JWT is posted");
    let jwt = params["response"].as_str().expect("response");
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(1).expect("claims"))
            .expect("base64url"),
    )
    .expect("claims JSON");
    assert_eq!(claims["state"], "s3");
    assert_eq!(claims["aud"], client_id);
    assert!(claims["code"].is_string(), "{claims}");
    b.screenshot("form-post-jwt-received")
        .await
        .expect("screenshot");
    b.close().await;
}

#[tokio::test]
async fn sign_in_started_in_two_tabs_completes_in_both() {
    let _one = ONE_BROWSER.lock().await;
    let Some(mut b) = browser("two-tabs").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let issuer = start_demo(&dir).await;
    let client = b.client().clone();
    let first = client.window().await.expect("first tab");

    // /demo in two tabs: each waits at the sign-in form with its own pending request.
    b.goto(&format!("{issuer}/demo")).await.expect("open /demo");
    b.wait_for_path("/login").await.expect("sign-in form");
    let second = client.new_window(true).await.expect("second tab").handle;
    client
        .switch_to_window(second.clone())
        .await
        .expect("to the second tab");
    b.goto(&format!("{issuer}/demo")).await.expect("open /demo");
    b.wait_for_path("/login").await.expect("sign-in form");

    // Signed in and approved in the first tab.
    client
        .switch_to_window(first)
        .await
        .expect("to the first tab");
    b.fill("#username", DEMO_USERNAME).await.expect("username");
    b.fill("#password", DEMO_PASSWORD).await.expect("password");
    b.click("button[type=submit]").await.expect("sign in");
    b.wait_for_path("/consent").await.expect("consent");
    b.click("button[name=decision][value=allow]")
        .await
        .expect("allow");
    b.wait_for_path("/demo/callback").await.expect("callback");
    b.find("#id-token-claims")
        .await
        .expect("the first tab completes");

    // The second tab's form predates that sign-in: it is shown again, saying why, and works.
    client
        .switch_to_window(second)
        .await
        .expect("to the second tab");
    b.fill("#username", DEMO_USERNAME).await.expect("username");
    b.fill("#password", DEMO_PASSWORD).await.expect("password");
    b.click("button[type=submit]").await.expect("sign in");
    let why = b.text("p.error").await.expect("the form says why");
    assert!(why.contains("expired"), "{why}");
    b.screenshot("second-tab-form-expired")
        .await
        .expect("screenshot");
    b.fill("#password", DEMO_PASSWORD).await.expect("password");
    b.click("button[type=submit]").await.expect("sign in");
    // Consent is remembered from the first tab: straight back to the demo client, whose
    // pending request for this tab is still there.
    b.wait_for_path("/demo/callback").await.expect("callback");
    b.find("#id-token-claims")
        .await
        .expect("the second tab completes");
    b.screenshot("second-tab-completed")
        .await
        .expect("screenshot");
    b.close().await;
}

#[tokio::test]
async fn the_demo_pushes_its_request_first_and_the_browser_carries_only_a_reference() {
    let _one = ONE_BROWSER.lock().await;
    // The home page offers the pushed flow; following its link, the client pushes the request
    // (RFC 9126) and the browser reaches the consent page with a request_uri alone.
    let Some((mut b, issuer, _dir, _)) =
        demo_variant_from_home("demo-pushed-request", "/demo?via=par").await
    else {
        return;
    };
    b.find("#step-push").await.expect("the push is explained");
    let pushed = b.text("#pushed-params").await.expect("pushed parameters");
    for name in ["redirect_uri", "code_challenge", "nonce", "scope"] {
        assert!(pushed.contains(name), "{name} was pushed: {pushed}");
    }
    let page = b.text("main").await.expect("page text");
    assert!(page.contains(&format!("POST {issuer}/par")), "{page}");
    assert!(
        page.contains("urn:ietf:params:oauth:request_uri:"),
        "the browser's request carried the request_uri: {page}"
    );
    let claims = json_at(&b, "#id-token-claims").await;
    assert_eq!(claims["iss"], issuer.as_str());
    assert_eq!(claims["name"], "Alice Example");
    b.screenshot("verified-claims").await.expect("screenshot");
    b.close().await;
}

#[tokio::test]
async fn the_demo_asks_for_a_signed_response_and_verifies_it_before_reading_the_code() {
    let _one = ONE_BROWSER.lock().await;
    // JARM: the home page's link asks for response_mode=query.jwt; the callback receives one
    // signed JWT and shows it verified.
    let Some((mut b, issuer, _dir, landed)) =
        demo_variant_from_home("demo-signed-response", "/demo?via=jarm").await
    else {
        return;
    };
    let query: Vec<String> = landed.query_pairs().map(|(k, _)| k.into_owned()).collect();
    assert_eq!(query, vec!["response"], "only the JWT came back: {landed}");
    let header = json_at(&b, "#jarm-header").await;
    assert_eq!(header["alg"], "RS256");
    let claims = json_at(&b, "#jarm-claims").await;
    assert_eq!(claims["iss"], issuer.as_str());
    assert_eq!(claims["aud"], "lockspire-demo");
    assert!(
        claims["code"].is_string() && claims["state"].is_string(),
        "{claims}"
    );
    let id = json_at(&b, "#id-token-claims").await;
    assert_eq!(id["name"], "Alice Example", "the code inside redeemed");
    b.screenshot("verified-signed-response")
        .await
        .expect("screenshot");

    // A response JWT that does not verify is refused before anything in it is used.
    b.goto(&format!(
        "{issuer}/demo/callback?response=eyJhbGciOiJSUzI1NiJ9.eyJjb2RlIjoieCJ9.c2ln"
    ))
    .await
    .expect("forged callback");
    let page = b.text("main").await.expect("page");
    assert!(page.contains("The signed response is invalid"), "{page}");
    b.close().await;
}

#[tokio::test]
async fn the_demo_pushes_a_request_object_it_signed_and_the_provider_verifies_it() {
    let _one = ONE_BROWSER.lock().await;
    // RFC 9126 with RFC 9101: the push holds only client_id and the signed request.
    let Some((mut b, issuer, _dir, _)) =
        demo_variant_from_home("demo-signed-request", "/demo?via=signed-par").await
    else {
        return;
    };
    let pushed = b.text("#pushed-params").await.expect("pushed parameters");
    assert!(
        pushed.contains("request") && !pushed.contains("code_challenge"),
        "{pushed}"
    );
    let header = json_at(&b, "#request-object-header").await;
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "oauth-authz-req+jwt");
    let claims = json_at(&b, "#request-object-claims").await;
    assert_eq!(claims["iss"], "lockspire-demo");
    assert_eq!(claims["aud"], issuer.as_str());
    assert!(
        claims["code_challenge"].is_string() && claims["jti"].is_string(),
        "{claims}"
    );
    let id = json_at(&b, "#id-token-claims").await;
    assert_eq!(
        id["name"], "Alice Example",
        "the signed request was honoured"
    );
    b.screenshot("verified-signed-request")
        .await
        .expect("screenshot");
    b.close().await;
}

#[tokio::test]
async fn the_demo_asks_for_authorization_details_and_the_consent_page_says_what_they_grant() {
    let _one = ONE_BROWSER.lock().await;
    let Some(mut b) = browser("demo-authorization-details").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let issuer = start_demo(&dir).await;
    sign_in_with_the_form(&b, &issuer).await;
    b.goto(&format!("{issuer}/")).await.expect("home");
    b.click("a[href='/demo?via=rar']")
        .await
        .expect("the link on the home page");
    b.wait_for_path("/consent").await.expect("consent page");
    let consent = b.text("main").await.expect("consent text");
    assert!(
        consent.contains(
            "Account information: see the list of your accounts and read your account balances"
        ),
        "the host's words for the details: {consent}"
    );
    b.screenshot("consent-with-details")
        .await
        .expect("screenshot");
    b.click("button[name=decision][value=allow]")
        .await
        .expect("allow");
    b.wait_for_path("/demo/callback").await.expect("callback");
    let tokens = json_at(&b, "#token-response").await;
    assert_eq!(
        tokens["authorization_details"][0]["actions"],
        serde_json::json!(["list_accounts", "read_balances"]),
        "the granted details, as the token endpoint returned them: {tokens}"
    );
    b.find("#granted-details").await.expect("explained");
    let id = json_at(&b, "#id-token-claims").await;
    assert_eq!(id["name"], "Alice Example");
    b.close().await;
}

#[tokio::test]
async fn under_fapi_message_signing_the_demo_signs_and_pushes_its_request_and_reads_a_jarm_response()
 {
    let _one = ONE_BROWSER.lock().await;
    let Some(mut b) = browser("demo-fapi").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let issuer = start_demo_with(&dir, lockspire::SecurityProfile::Fapi2MessageSigning).await;
    sign_in_with_the_form(&b, &issuer).await;
    b.goto(&format!("{issuer}/")).await.expect("home");
    let home = b.text("main").await.expect("home page");
    assert!(home.contains("fapi2_message_signing"), "{home}");
    assert!(
        !home.contains("/demo/device"),
        "the device demo is off: {home}"
    );
    b.click("a.button.primary[href='/demo']")
        .await
        .expect("the demo link");
    b.wait_for_path("/consent").await.expect("consent page");
    b.click("button[name=decision][value=allow]")
        .await
        .expect("allow");
    let landed = b.wait_for_path("/demo/callback").await.expect("callback");
    let query: Vec<String> = landed.query_pairs().map(|(k, _)| k.into_owned()).collect();
    assert_eq!(
        query,
        vec!["response"],
        "only the JARM response came back: {landed}"
    );
    assert_eq!(json_at(&b, "#jarm-header").await["alg"], "ES256");
    assert_eq!(json_at(&b, "#jarm-claims").await["iss"], issuer.as_str());
    assert!(json_at(&b, "#request-object-claims").await["nbf"].is_number());
    assert_eq!(json_at(&b, "#id-token-header").await["alg"], "ES256");
    let page = b.text("main").await.expect("result page");
    assert!(
        page.contains("private_key_jwt") && page.contains("not rotated"),
        "{page}"
    );
    assert_eq!(b.text("#api-bearer-status").await.expect("status"), "401");
    assert_eq!(b.text("#api-dpop-status").await.expect("status"), "200");
    b.screenshot("fapi-result").await.expect("screenshot");
    b.close().await;
}

/// A fresh demo with alice signed in through its form, then one of the home page's demo links
/// followed through the consent page to the callback. Returns the browser, the issuer, the
/// demo's data folder (kept until the test ends) and the callback's URL.
async fn demo_variant_from_home(
    test: &str,
    link: &str,
) -> Option<(
    lockspire_browser::Browser,
    String,
    tempfile::TempDir,
    url::Url,
)> {
    let mut b = browser(test).await?;
    let dir = tempfile::tempdir().expect("temp dir");
    let issuer = start_demo(&dir).await;
    sign_in_with_the_form(&b, &issuer).await;
    b.goto(&format!("{issuer}/")).await.expect("home");
    b.click(&format!("a[href='{link}']"))
        .await
        .expect("the demo link on the home page");
    b.wait_for_path("/consent").await.expect("consent page");
    b.screenshot("consent").await.expect("screenshot");
    b.click("button[name=decision][value=allow]")
        .await
        .expect("allow");
    let landed = b.wait_for_path("/demo/callback").await.expect("callback");
    Some((b, issuer, dir, landed))
}

#[tokio::test]
async fn the_demo_device_shows_a_code_that_the_user_approves_at_the_verification_page_then_its_poll_gets_tokens()
 {
    let _one = ONE_BROWSER.lock().await;
    let Some(mut b) = browser("demo-device-flow").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let issuer = start_demo(&dir).await;
    // Nobody is signed in: the device starts from the home page's link.
    b.goto(&format!("{issuer}/")).await.expect("home");
    b.click("a[href='/demo/device']")
        .await
        .expect("the device link on the home page");
    b.wait_for_path("/demo/device/status")
        .await
        .expect("the device's screen");
    let user_code = b.text("#user-code").await.expect("the user code");
    assert_eq!(user_code.len(), 9, "XXXX-XXXX: {user_code}");
    let authorization = json_at(&b, "#device-authorization").await;
    assert_eq!(
        authorization["verification_uri"],
        format!("{issuer}/device")
    );
    b.screenshot("device-screen").await.expect("screenshot");
    // Before the user decides, a poll is authorization_pending (RFC 8628 §3.5).
    b.click("#poll").await.expect("poll");
    b.wait_for_path("/demo/device/status").await.expect("back");
    let pending = json_at(&b, "#poll-answer").await;
    assert_eq!(pending["error"], "authorization_pending", "{pending}");

    // The user opens the verification URI, is asked to sign in by the host, and comes back.
    let verification = b
        .attr("#verification-uri", "href")
        .await
        .expect("link")
        .expect("href");
    b.goto(&verification).await.expect("verification page");
    b.wait_for_path("/login").await.expect("the host's sign-in");
    b.fill("#username", DEMO_USERNAME).await.expect("username");
    b.fill("#password", DEMO_PASSWORD).await.expect("password");
    b.click("button[type=submit]").await.expect("sign in");
    b.wait_for_path("/device").await.expect("back at the page");
    // Typed in lower case, without the dash: the page reads it all the same (RFC 8628 §6.1).
    b.fill("#user_code", &user_code.to_lowercase().replace('-', ""))
        .await
        .expect("type the code");
    b.screenshot("code-entered").await.expect("screenshot");
    b.click("button[type=submit]").await.expect("continue");
    b.find("#user-code").await.expect("the confirmation");
    assert_eq!(
        b.text("#user-code").await.expect("code"),
        user_code,
        "RFC 8628 §5.4: the code to compare with the device's"
    );
    let confirm = b.text("main").await.expect("confirmation text");
    assert!(confirm.contains("Lockspire demo TV"), "{confirm}");
    assert_eq!(
        b.text("#signed-in-as").await.expect("who approves"),
        "Signed in as Alice Example."
    );
    b.screenshot("confirm").await.expect("screenshot");
    b.click("button[name=decision][value=allow]")
        .await
        .expect("allow");
    let done = b.text("#device-finished").await.expect("done");
    assert!(done.contains("Device connected"), "{done}");
    b.screenshot("approved").await.expect("screenshot");

    // Back on the device, the next poll turns into tokens.
    b.goto(&format!("{issuer}/demo/device/status"))
        .await
        .expect("the device");
    b.click("#poll").await.expect("poll");
    b.find("#device-approved").await.expect("tokens");
    let tokens = json_at(&b, "#device-tokens").await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(
        tokens["id_token"].is_string(),
        "openid was granted: {tokens}"
    );
    let userinfo = json_at(&b, "#device-userinfo").await;
    assert_eq!(userinfo["name"], "Alice Example");
    b.screenshot("device-tokens").await.expect("screenshot");
    b.close().await;
}

#[tokio::test]
async fn the_demo_bank_asks_to_sign_alice_in_on_her_device_where_she_approves_and_its_poll_gets_tokens()
 {
    let _one = ONE_BROWSER.lock().await;
    let Some(mut b) = browser("demo-ciba").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let issuer = start_demo(&dir).await;
    sign_in_with_the_form(&b, &issuer).await;
    b.click("a[href='/demo/ciba']")
        .await
        .expect("the CIBA link on the home page");
    b.wait_for_path("/demo/ciba").await.expect("the CIBA page");
    b.find("#no-requests").await.expect("nothing waits yet");
    b.click("#bank-start").await.expect("the bank asks");
    b.find("#request-1")
        .await
        .expect("alice's device shows the request");
    let binding = b
        .text("#bank-binding-message")
        .await
        .expect("the bank's binding message");
    assert_eq!(
        b.text("#request-1 .binding-message").await.expect("shown"),
        binding,
        "both devices show the same binding message (CIBA Core §7.1)"
    );
    let ack = json_at(&b, "#bank-acknowledgement").await;
    assert_eq!(ack["interval"], 5);
    b.screenshot("request-on-the-device")
        .await
        .expect("screenshot");
    b.click("#bank-poll").await.expect("poll");
    let pending = json_at(&b, "#bank-poll-answer").await;
    assert_eq!(pending["error"], "authorization_pending", "{pending}");
    b.click("#request-1 button[value=approve]")
        .await
        .expect("approve");
    b.find("#no-requests").await.expect("decided");
    b.click("#bank-poll").await.expect("poll");
    // The page before the click showed an answer too: wait for the new one.
    let mut tokens = Value::Null;
    for _ in 0..100 {
        if let Ok(text) = b.text("#bank-poll-answer").await
            && let Ok(answer) = serde_json::from_str::<Value>(&text)
            && answer.get("token_type").is_some()
        {
            tokens = answer;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(tokens["token_type"], "Bearer", "{tokens}");
    assert!(tokens["id_token"].is_string(), "{tokens}");
    b.screenshot("bank-tokens").await.expect("screenshot");
    b.close().await;
}

#[tokio::test]
async fn sign_out_everywhere_ends_the_session_and_the_forum_gets_a_back_channel_logout_token() {
    let _one = ONE_BROWSER.lock().await;
    let Some(mut b) = browser("sign-out-everywhere").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let issuer = start_demo(&dir).await;
    sign_in_with_the_form(&b, &issuer).await;

    // The forum: a second client of the same browser session.
    let forum_sid = sign_in_to_the_forum(&b, &issuer).await;
    b.find("#no-logout-tokens")
        .await
        .expect("none received yet");
    b.screenshot("forum-signed-in").await.expect("screenshot");

    // The demo client, in the same browser session.
    b.goto(&format!("{issuer}/demo")).await.expect("demo");
    b.wait_for_path("/consent")
        .await
        .expect("consent for the demo client");
    b.click("button[name=decision][value=allow]")
        .await
        .expect("allow");
    b.wait_for_path("/demo/callback").await.expect("callback");
    let claims = json_at(&b, "#id-token-claims").await;
    // One provider session, which each client knows by its own id.
    let demo_sid = claims["sid"].as_str().expect("the ID token carries sid");
    assert_ne!(demo_sid, forum_sid, "each client has its own sid");
    b.find("#step-sign-out").await.expect("sign-out explained");

    // Sign out everywhere: the hint proves the session, so no page asks; back at the client.
    b.click("#sign-out-everywhere").await.expect("sign out");
    b.wait_for_path("/demo/signed-out")
        .await
        .expect("signed out");
    b.find("#signed-out-everywhere")
        .await
        .expect("state matched");
    b.screenshot("signed-out-everywhere")
        .await
        .expect("screenshot");

    // The forum was told over the back channel: its session ended.
    wait_for_the_forum_to_end(&b, &issuer).await;
    let received = b.text("#logout-tokens").await.expect("the token is listed");
    assert!(received.contains(&forum_sid), "{received}");
    b.screenshot("forum-ended").await.expect("screenshot");

    // The host's own session ended too: the demo client needs a sign-in again.
    b.goto(&format!("{issuer}/")).await.expect("home");
    b.find("#signed-out").await.expect("signed out of the host");
    b.goto(&format!("{issuer}/demo")).await.expect("demo");
    b.wait_for_path("/login")
        .await
        .expect("sign-in needed again");
    b.close().await;
}

#[tokio::test]
async fn a_logout_request_without_a_hint_asks_first_and_the_page_works_in_a_browser() {
    let _one = ONE_BROWSER.lock().await;
    let Some(mut b) = browser("logout-confirmation").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let issuer = start_demo(&dir).await;
    sign_in_with_the_form(&b, &issuer).await;
    b.goto(&format!("{issuer}/demo")).await.expect("demo");
    b.wait_for_path("/consent").await.expect("consent");
    b.click("button[name=decision][value=allow]")
        .await
        .expect("allow");
    b.wait_for_path("/demo/callback").await.expect("callback");

    // A link to the end-session endpoint with nothing proving a client sent it: asked first.
    b.goto(&format!(
        "{issuer}/end_session?client_id=lockspire-demo&post_logout_redirect_uri={}&state=st",
        url::form_urlencoded::byte_serialize(format!("{issuer}/demo/signed-out").as_bytes())
            .collect::<String>()
    ))
    .await
    .expect("end session");
    let page = b.text("main").await.expect("page");
    assert!(page.contains("Sign out?"), "{page}");
    assert!(page.contains("Stay signed in"), "{page}");
    // A bare client_id is anyone's to send: the page does not say that client asks.
    assert!(!page.contains("Lockspire demo relying party"), "{page}");
    b.screenshot("confirm").await.expect("screenshot");
    // Still signed in until the user confirms.
    b.goto(&format!("{issuer}/")).await.expect("home");
    b.find("#signed-in").await.expect("still signed in");
    b.goto(&format!(
        "{issuer}/end_session?client_id=lockspire-demo&post_logout_redirect_uri={}&state=st",
        url::form_urlencoded::byte_serialize(format!("{issuer}/demo/signed-out").as_bytes())
            .collect::<String>()
    ))
    .await
    .expect("end session");
    // The form posts from the provider's own page, with the browser's own labels and cookies.
    b.click("#sign-out").await.expect("confirm");
    let landed = b
        .wait_for_path("/demo/signed-out")
        .await
        .expect("redirected");
    assert!(
        landed.query_pairs().any(|(k, v)| k == "state" && v == "st"),
        "{landed}"
    );
    b.screenshot("after-confirm").await.expect("screenshot");
    b.goto(&format!("{issuer}/")).await.expect("home");
    b.find("#signed-out").await.expect("signed out of the host");
    b.close().await;
}

#[tokio::test]
async fn the_hosts_own_sign_out_ends_the_provider_session_and_the_forum_is_told() {
    let _one = ONE_BROWSER.lock().await;
    let Some(mut b) = browser("host-sign-out").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let issuer = start_demo(&dir).await;
    sign_in_with_the_form(&b, &issuer).await;
    sign_in_to_the_forum(&b, &issuer).await;

    // The home page's own Sign out: the host calls Lockspire::end_session before ending its
    // session.
    b.goto(&format!("{issuer}/")).await.expect("home");
    b.click("form[action='/logout'] button[type=submit]")
        .await
        .expect("sign out");
    b.find("#signed-out").await.expect("signed out");
    wait_for_the_forum_to_end(&b, &issuer).await;
    b.screenshot("forum-ended").await.expect("screenshot");
    b.close().await;
}

/// Signs the browser's user in to the forum (the demo's second client); returns the forum's sid.
async fn sign_in_to_the_forum(b: &lockspire_browser::Browser, issuer: &str) -> String {
    b.goto(&format!("{issuer}/demo/forum"))
        .await
        .expect("forum");
    b.find("#forum-signed-out")
        .await
        .expect("not yet signed in");
    b.click("#forum-sign-in")
        .await
        .expect("sign in to the forum");
    b.wait_for_path("/consent")
        .await
        .expect("consent for the forum");
    b.click("button[name=decision][value=allow]")
        .await
        .expect("allow");
    b.wait_for_path("/demo/forum")
        .await
        .expect("back at the forum");
    b.find("#forum-signed-in")
        .await
        .expect("signed in to the forum");
    b.text("#forum-sid").await.expect("sid")
}

/// Waits (up to five seconds) until the forum's page shows its session ended by a logout token.
async fn wait_for_the_forum_to_end(b: &lockspire_browser::Browser, issuer: &str) {
    for _ in 0..50 {
        b.goto(&format!("{issuer}/demo/forum"))
            .await
            .expect("forum");
        if b.find("#forum-ended").await.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the forum's session was not ended by a logout token");
}
