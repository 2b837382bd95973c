//! End-to-end: the demo app on a random port with a fresh SQLite database, driven like a
//! browser (cookies kept, redirects followed by hand) through the demo client's authorization
//! code + PKCE flow.

use std::time::Duration;

use lockspire::{RegistrationPolicy, SecretKey};
use lockspire_demo::{DEMO_PASSWORD, DEMO_USERNAME, Settings, app};
use reqwest::{Client, Response, StatusCode, header};
use url::Url;

/// The value of `<input … name="NAME" value="…">` in a server-rendered page.
fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .map(|i| i + marker.len())
        .unwrap_or_else(|| panic!("no {name} field in page:\n{html}"));
    let end = html[start..]
        .find('"')
        .map(|i| start + i)
        .unwrap_or_else(|| panic!("unterminated {name} field"));
    unescape(&html[start..end])
}

/// Undoes the HTML escaping askama applies to attribute values.
fn unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#47;", "/")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The JSON shown in `<pre id="ID">…</pre>`.
fn json_block(html: &str, id: &str) -> serde_json::Value {
    let marker = format!("<pre id=\"{id}\">");
    let start = html
        .find(&marker)
        .map(|i| i + marker.len())
        .unwrap_or_else(|| panic!("no {id} block in page:\n{html}"));
    let end = start + html[start..].find("</pre>").expect("closed <pre>");
    serde_json::from_str(&unescape(&html[start..end])).expect("the block is JSON")
}

/// The absolute target of a 303 response.
fn location(base: &Url, response: &Response) -> Url {
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "expected a redirect from {}",
        response.url()
    );
    let target = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .expect("a Location header");
    base.join(target).expect("a valid Location")
}

/// The demo app on a random port with a fresh SQLite database: its issuer, and the directory
/// that must outlive it.
async fn start() -> (String, tempfile::TempDir) {
    start_with(lockspire::SecurityProfile::None).await
}

/// [`start`] under a security profile.
async fn start_with(security_profile: lockspire::SecurityProfile) -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let issuer = format!("http://{addr}");
    let router = app(Settings {
        issuer: issuer.clone(),
        database_url: format!("sqlite://{}/demo.db", dir.path().display()),
        registration: RegistrationPolicy::Disabled,
        secret_key: SecretKey::generate(),
        mtls: None,
        dev_mode: true,
        key_refresh_interval: None,
        outbox_lease: None,
        extra_resources: Vec::new(),
        security_profile,
    })
    .await
    .expect("demo app starts");
    tokio::spawn(async move { axum::serve(listener, router).await });
    (issuer, dir)
}

/// A cookie-keeping client that follows no redirects, like a browser driven by hand.
fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// The page at `url`, as text.
async fn page(browser: &Client, url: String) -> String {
    browser.get(url).send().await.unwrap().text().await.unwrap()
}

/// Opens the sign-in form in `browser` (creating its session) and returns the form token.
async fn form_token(browser: &Client, issuer: &str) -> String {
    hidden_field(
        &page(browser, format!("{issuer}/login")).await,
        "form_token",
    )
}

/// Posts alice's credentials to `/login` with `form_token` and extra `headers`.
async fn post_login(
    browser: &Client,
    issuer: &str,
    form_token: Option<&str>,
    headers: &[(&'static str, &str)],
) -> Response {
    let mut form = vec![("username", DEMO_USERNAME), ("password", DEMO_PASSWORD)];
    if let Some(token) = form_token {
        form.push(("form_token", token));
    }
    let mut request = browser.post(format!("{issuer}/login")).form(&form);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// Whether `browser`'s session is signed in, as the home page says.
async fn signed_in(browser: &Client, issuer: &str) -> bool {
    page(browser, format!("{issuer}/"))
        .await
        .contains("id=\"signed-in\"")
}

#[tokio::test]
async fn sign_in_needs_this_sessions_form_token() {
    let (issuer, _dir) = start().await;
    let victim = browser();
    let victim_token = form_token(&victim, &issuer).await;
    let attacker = browser();
    let attacker_token = form_token(&attacker, &issuer).await;

    // No token, even with nothing that labels the post as foreign.
    let none = post_login(&victim, &issuer, None, &[]).await;
    assert_eq!(none.status(), StatusCode::FORBIDDEN);
    // A token of another session.
    let foreign = post_login(&victim, &issuer, Some(&attacker_token), &[]).await;
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    // A session with no token yet (the form was never shown to this browser).
    let fresh = post_login(&browser(), &issuer, Some(&victim_token), &[]).await;
    assert_eq!(fresh.status(), StatusCode::FORBIDDEN);
    assert!(!signed_in(&victim, &issuer).await);

    // The session's own token signs in.
    let own = post_login(&victim, &issuer, Some(&victim_token), &[]).await;
    assert_eq!(own.status(), StatusCode::SEE_OTHER);
    assert!(signed_in(&victim, &issuer).await);
}

#[tokio::test]
async fn a_post_labelled_with_another_origin_is_refused_even_with_a_valid_token() {
    let (issuer, _dir) = start().await;
    let b = browser();
    let token = form_token(&b, &issuer).await;
    for labels in [
        &[("origin", "http://127.0.0.1:1")][..],
        &[("origin", "https://evil.example")],
        &[("sec-fetch-site", "same-site")],
        &[("sec-fetch-site", "cross-site")],
        &[("origin", "null"), ("sec-fetch-site", "cross-site")],
    ] {
        let refused = post_login(&b, &issuer, Some(&token), labels).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{labels:?}");
    }
    assert!(!signed_in(&b, &issuer).await);
}

#[tokio::test]
async fn an_opaque_origin_with_this_sessions_token_signs_in() {
    // `Origin: null` is what a page under `Referrer-Policy: no-referrer` sends on its own form
    // posts: it proves nothing either way, so the token decides.
    let (issuer, _dir) = start().await;
    let b = browser();
    let token = form_token(&b, &issuer).await;
    let labels = [("origin", "null"), ("sec-fetch-site", "same-origin")];
    let accepted = post_login(&b, &issuer, Some(&token), &labels).await;
    assert_eq!(accepted.status(), StatusCode::SEE_OTHER);
    assert!(signed_in(&b, &issuer).await);
}

#[tokio::test]
async fn sign_out_needs_this_sessions_form_token_and_a_new_one_follows_sign_in() {
    let (issuer, _dir) = start().await;
    let b = browser();
    let before = form_token(&b, &issuer).await;
    let own = post_login(&b, &issuer, Some(&before), &[]).await;
    assert_eq!(own.status(), StatusCode::SEE_OTHER);
    let home = b
        .get(format!("{issuer}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let after = hidden_field(&home, "form_token");
    assert_ne!(after, before, "signing in rotates the token");

    for token in [None, Some(before.as_str())] {
        let mut form = Vec::new();
        if let Some(token) = token {
            form.push(("form_token", token));
        }
        let refused = b
            .post(format!("{issuer}/logout"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{token:?}");
        assert!(signed_in(&b, &issuer).await);
    }
    let signed_out = b
        .post(format!("{issuer}/logout"))
        .form(&[("form_token", after.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), StatusCode::SEE_OTHER);
    assert!(!signed_in(&b, &issuer).await);
}

#[tokio::test]
async fn alice_completes_code_and_pkce_flow_and_demo_client_shows_verified_id_token_claims() {
    let (issuer, _dir) = start().await;
    let base = Url::parse(&issuer).expect("issuer URL");
    let browser = browser();

    // The demo client sends the browser to /authorize with PKCE, state and nonce.
    let start = browser
        .get(base.join("/demo").unwrap())
        .send()
        .await
        .unwrap();
    let authorize = location(&base, &start);
    assert_eq!(authorize.path(), "/authorize");
    let params: Vec<(String, String)> = authorize.query_pairs().into_owned().collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(param("code_challenge_method").as_deref(), Some("S256"));
    assert!(param("code_challenge").is_some_and(|c| c.len() == 43));

    // Nobody is signed in: Lockspire asks the host's resolver where to log in.
    let to_login = browser.get(authorize).send().await.unwrap();
    let login_url = location(&base, &to_login);
    assert_eq!(login_url.path(), "/login");
    let login_page = browser.get(login_url).send().await.unwrap();
    assert_eq!(login_page.status(), StatusCode::OK);
    let login_html = login_page.text().await.unwrap();
    let return_to = hidden_field(&login_html, "return_to");
    assert!(return_to.starts_with(&format!("{issuer}/authorize/resume?")));

    let form_token = hidden_field(&login_html, "form_token");

    // A wrong password re-shows the form, with the same token.
    let wrong = browser
        .post(base.join("/login").unwrap())
        // As a browser would label a same-origin form post.
        .header(header::ORIGIN, &issuer)
        .form(&[
            ("username", DEMO_USERNAME),
            ("password", "not-her-password"),
            ("return_to", &return_to),
            ("form_token", &form_token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        hidden_field(&wrong.text().await.unwrap(), "form_token"),
        form_token
    );

    // The right one returns to Lockspire, which now asks for consent.
    let signed_in = browser
        .post(base.join("/login").unwrap())
        // As a browser would label a same-origin form post.
        .header(header::ORIGIN, &issuer)
        .form(&[
            ("username", DEMO_USERNAME),
            ("password", DEMO_PASSWORD),
            ("return_to", &return_to),
            ("form_token", &form_token),
        ])
        .send()
        .await
        .unwrap();
    let resume = location(&base, &signed_in);
    assert_eq!(resume.as_str(), return_to);
    let to_consent = browser.get(resume).send().await.unwrap();
    let consent_url = location(&base, &to_consent);
    assert_eq!(consent_url.path(), "/consent");
    let consent_html = browser
        .get(consent_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(consent_html.contains("Lockspire demo relying party"));
    let decided = browser
        .post(base.join("/consent").unwrap())
        .form(&[
            ("interaction", hidden_field(&consent_html, "interaction")),
            ("csrf", hidden_field(&consent_html, "csrf")),
            ("decision", "allow".to_owned()),
        ])
        .send()
        .await
        .unwrap();

    // Back at the demo client, which redeems the code and verifies everything.
    let callback = location(&base, &decided);
    assert_eq!(callback.path(), "/demo/callback");
    let result = browser.get(callback).send().await.unwrap();
    let status = result.status();
    let result_html = result.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{result_html}");

    // The subject is alice's stable id, as the home page reports it, never her email.
    let home = browser
        .get(base.join("/").unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let marker = "<code id=\"subject\">";
    let subject_start = home.find(marker).expect("subject on home page") + marker.len();
    let subject_len = home[subject_start..].find('<').expect("closed <code>");
    let subject = &home[subject_start..subject_start + subject_len];
    assert!(!subject.is_empty() && !subject.contains('@'));
    assert!(
        result_html.contains(&format!("<code id=\"verified-subject\">{subject}</code>")),
        "{result_html}"
    );
    let claims = json_block(&result_html, "id-token-claims");
    assert_eq!(claims["iss"], issuer.as_str());
    assert_eq!(claims["sub"], subject);
    assert_eq!(claims["aud"], "lockspire-demo");
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["name"], "Alice Example");
    let userinfo = json_block(&result_html, "userinfo");
    assert_eq!(userinfo["sub"], subject);
    assert_eq!(userinfo["preferred_username"], DEMO_USERNAME);
    assert_eq!(userinfo["email"], "alice@example.com");
    // Bearer secrets are not echoed in full.
    assert!(result_html.contains(" (51 characters)"));
    // The host's API took the access token (its audience is the API) and named alice...
    assert!(
        result_html.contains(r#"<code id="api-bearer-status">200</code>"#),
        "{result_html}"
    );
    let api = json_block(&result_html, "api-bearer");
    assert_eq!(api["sub"], subject);
    assert_eq!(api["username"], DEMO_USERNAME);
    assert_eq!(api["bound_to"], serde_json::Value::Null);
    // ...then a token bound to the client's DPoP key, with a proof, and refused it without one.
    let refreshed = json_block(&result_html, "dpop-refresh");
    assert_eq!(refreshed["token_type"], "DPoP");
    assert!(
        result_html.contains(r#"<code id="api-dpop-status">200</code>"#),
        "{result_html}"
    );
    let bound = json_block(&result_html, "api-dpop");
    assert_eq!(bound["sub"], subject);
    let jkt = html_code(&result_html, "dpop-jkt");
    assert_eq!(bound["bound_to"]["dpop_jkt"], jkt.as_str());
    assert!(
        result_html.contains(r#"<code id="api-dpop-as-bearer-status">401</code>"#),
        "{result_html}"
    );
    let refused = json_block(&result_html, "api-dpop-as-bearer");
    assert_eq!(refused["error"], "invalid_token");
    let challenge = html_code(&result_html, "api-dpop-as-bearer-challenge");
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains("resource_metadata="),
        "{challenge}"
    );
    // The API's RFC 9728 metadata names the issuer.
    let metadata: serde_json::Value = browser
        .get(
            base.join("/.well-known/oauth-protected-resource/api")
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["resource"], format!("{issuer}/api"));
    assert_eq!(
        metadata["authorization_servers"],
        serde_json::json!([issuer])
    );
}

/// Alice signs in and consents from `/demo` on: the demo client's result page, and the URL
/// the browser was sent to at `/authorize`.
async fn sign_in_through_the_demo_client(browser: &Client, issuer: &str) -> (String, Url) {
    let base = Url::parse(issuer).expect("issuer URL");
    let start = browser
        .get(base.join("/demo").unwrap())
        .send()
        .await
        .unwrap();
    let authorize = location(&base, &start);
    let to_login = browser.get(authorize.clone()).send().await.unwrap();
    let login_html = browser
        .get(location(&base, &to_login))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let signed_in = browser
        .post(base.join("/login").unwrap())
        .header(header::ORIGIN, issuer)
        .form(&[
            ("username", DEMO_USERNAME),
            ("password", DEMO_PASSWORD),
            ("return_to", &hidden_field(&login_html, "return_to")),
            ("form_token", &hidden_field(&login_html, "form_token")),
        ])
        .send()
        .await
        .unwrap();
    let to_consent = browser
        .get(location(&base, &signed_in))
        .send()
        .await
        .unwrap();
    let consent_html = browser
        .get(location(&base, &to_consent))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let decided = browser
        .post(base.join("/consent").unwrap())
        .form(&[
            ("interaction", hidden_field(&consent_html, "interaction")),
            ("csrf", hidden_field(&consent_html, "csrf")),
            ("decision", "allow".to_owned()),
        ])
        .send()
        .await
        .unwrap();
    let callback = location(&base, &decided);
    assert_eq!(callback.path(), "/demo/callback");
    let result = browser.get(callback).send().await.unwrap();
    let status = result.status();
    let html = result.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{html}");
    (html, authorize)
}

#[tokio::test]
async fn under_each_fapi_profile_the_demo_client_pushes_authenticates_with_its_key_and_binds_tokens_with_dpop()
 {
    for profile in [
        lockspire::SecurityProfile::Fapi2Security,
        lockspire::SecurityProfile::Fapi2MessageSigning,
    ] {
        let (issuer, _dir) = start_with(profile).await;
        let (html, authorize) = sign_in_through_the_demo_client(&browser(), &issuer).await;
        // The browser carried only the pushed request's handle.
        let names: Vec<String> = authorize
            .query_pairs()
            .map(|(k, _)| k.into_owned())
            .collect();
        assert_eq!(names, ["client_id", "request_uri"], "{profile}");
        let claims = json_block(&html, "id-token-claims");
        assert_eq!(claims["iss"], issuer.as_str());
        assert_eq!(claims["aud"], lockspire_demo::DEMO_FAPI_CLIENT_ID);
        let header = json_block(&html, "id-token-header");
        assert_eq!(
            header["alg"], "ES256",
            "{profile}: FAPI 2.0 signs with no RS256"
        );
        // The access token is DPoP-bound from the start: as a bearer token the API refuses it.
        assert!(
            html.contains(r#"<code id="api-bearer-status">401</code>"#),
            "{profile}: {html}"
        );
        assert!(
            html.contains(r#"<code id="api-dpop-status">200</code>"#),
            "{profile}"
        );
        if profile.signs_messages() {
            let jarm = json_block(&html, "jarm-claims");
            assert_eq!(jarm["iss"], issuer.as_str(), "a JARM response");
            assert!(json_block(&html, "request-object-claims")["nbf"].is_number());
        }
        // Discovery says the profile.
        let doc: serde_json::Value = browser()
            .get(format!("{issuer}/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(doc["require_pushed_authorization_requests"], true);
    }
}

/// The text of `<code id="{id}">`.
fn html_code(html: &str, id: &str) -> String {
    let marker = format!("<code id=\"{id}\">");
    let start = html
        .find(&marker)
        .map(|i| i + marker.len())
        .unwrap_or_else(|| panic!("no {id}"));
    let end = start + html[start..].find('<').expect("closed <code>");
    unescape(&html[start..end])
}
