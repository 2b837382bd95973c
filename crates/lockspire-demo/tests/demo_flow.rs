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

#[tokio::test]
async fn alice_completes_code_and_pkce_flow_and_demo_client_shows_verified_id_token_claims() {
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
    })
    .await
    .expect("demo app starts");
    tokio::spawn(async move { axum::serve(listener, router).await });

    let base = Url::parse(&issuer).expect("issuer URL");
    let browser = Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");

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

    // A wrong password re-shows the form.
    let wrong = browser
        .post(base.join("/login").unwrap())
        // As a browser would label a same-origin form post.
        .header(header::ORIGIN, &issuer)
        .form(&[
            ("username", DEMO_USERNAME),
            ("password", "not-her-password"),
            ("return_to", &return_to),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    // The right one returns to Lockspire, which now asks for consent.
    let signed_in = browser
        .post(base.join("/login").unwrap())
        // As a browser would label a same-origin form post.
        .header(header::ORIGIN, &issuer)
        .form(&[
            ("username", DEMO_USERNAME),
            ("password", DEMO_PASSWORD),
            ("return_to", &return_to),
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
    assert_eq!(claims["aud"], serde_json::json!(["lockspire-demo"]));
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["name"], "Alice Example");
    let userinfo = json_block(&result_html, "userinfo");
    assert_eq!(userinfo["sub"], subject);
    assert_eq!(userinfo["preferred_username"], DEMO_USERNAME);
    assert_eq!(userinfo["email"], "alice@example.com");
    // Bearer secrets are not echoed in full.
    assert!(result_html.contains("… (51 characters)"));
}
