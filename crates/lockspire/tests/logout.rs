//! Logout (OpenID Connect RP-Initiated, Back-Channel and Front-Channel Logout 1.0) over HTTP:
//! two clients of one browser session, logout from one, the other told by a logout token.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use common::{Backend, Browser, Consent, Harness, Pkce, TestClient};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A relying party's back-channel logout endpoint: keeps every `logout_token` it receives.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<String>>>);

impl Receiver {
    /// Serves `POST /backchannel` on a free port; returns its URL.
    async fn start(&self) -> String {
        async fn receive(
            State(r): State<Receiver>,
            axum::Form(form): axum::Form<std::collections::HashMap<String, String>>,
        ) -> StatusCode {
            match form.get("logout_token") {
                Some(token) => {
                    r.0.lock().expect("lock").push(token.clone());
                    StatusCode::OK
                }
                None => StatusCode::BAD_REQUEST,
            }
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "http://{}/backchannel",
            listener.local_addr().expect("addr")
        );
        let app = axum::Router::new()
            .route("/backchannel", post(receive))
            .with_state(self.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        url
    }

    fn tokens(&self) -> Vec<String> {
        self.0.lock().expect("lock").clone()
    }

    /// Waits (up to five seconds) until `n` logout tokens arrived.
    async fn wait_for(&self, n: usize) -> Vec<String> {
        for _ in 0..100 {
            if self.tokens().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.tokens()
    }
}

/// A harness whose clients may use loopback http logout endpoints (development mode).
async fn start(backend: Backend) -> Harness {
    Harness::start_with(backend, |b| b.dev_mode(true)).await
}

async fn rp(h: &Harness, name: &str, extra: Value) -> TestClient {
    let mut meta = json!({
        "client_name": name,
        "redirect_uris": [format!("https://{name}.example/cb")],
        "post_logout_redirect_uris": [format!("https://{name}.example/signed-out")],
    });
    if let (Value::Object(m), Value::Object(e)) = (&mut meta, extra) {
        m.extend(e);
    }
    h.confidential_client(meta).await
}

/// Signs `browser` in to `client` and returns its tokens.
async fn sign_in(h: &Harness, browser: &Browser, client: &TestClient, scope: &str) -> Value {
    let pkce = Pkce::new();
    let url = h.authorize_url(client, scope, &pkce, &[]);
    let outcome = browser
        .run(&url, &client.redirect_uri, Consent::Allow)
        .await;
    let code = outcome.redirect_params()["code"].clone();
    let reply = h.redeem(client, &code, &pkce.verifier).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

fn text<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {v}"))
}

fn end_session_url(h: &Harness, params: &[(&str, &str)]) -> String {
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    format!("{}/end_session?{q}", h.base)
}

/// The browser sent to the end-session endpoint by the client `name` (see [`rp`]), with the ID
/// token of `tokens` as the hint, its registered post-logout URI and `extra` parameters.
async fn rp_logout(
    h: &Harness,
    browser: &Browser,
    tokens: &Value,
    name: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let post_logout = format!("https://{name}.example/signed-out");
    let mut params = vec![
        ("id_token_hint", text(tokens, "id_token")),
        ("post_logout_redirect_uri", post_logout.as_str()),
    ];
    params.extend_from_slice(extra);
    get(browser, &end_session_url(h, &params)).await
}

async fn get(browser: &Browser, url: &str) -> reqwest::Response {
    browser.client.get(url).send().await.expect("request")
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// `prompt=none` for `client` in `browser`: the error, or "code" when it succeeded.
async fn silent(h: &Harness, browser: &Browser, client: &TestClient) -> String {
    let pkce = Pkce::new();
    let url = h.authorize_url(client, "openid", &pkce, &[("prompt", "none")]);
    let params = browser
        .run(&url, &client.redirect_uri, Consent::Stop)
        .await
        .redirect_params();
    params
        .get("error")
        .cloned()
        .unwrap_or_else(|| "code".into())
}

/// The done-when of logout: logout from one client ends the session, the other client's
/// back-channel endpoint gets one valid logout token, and `prompt=none` afterwards answers
/// `login_required`.
async fn rp_initiated_logout_ends_the_session_and_tells_every_client_by_back_channel(
    backend: Backend,
) {
    let h = start(backend).await;
    let receiver = Receiver::default();
    let endpoint = receiver.start().await;
    let a = rp(&h, "shop", json!({})).await;
    let b = rp(
        &h,
        "forum",
        json!({"backchannel_logout_uri": endpoint, "backchannel_logout_session_required": true}),
    )
    .await;
    let browser = h.browser(Some("alice"));
    let ta = sign_in(&h, &browser, &a, "openid").await;
    let tb = sign_in(&h, &browser, &b, "openid").await;
    let (_, claims_a) = common::jwt_parts(text(&ta, "id_token"));
    let (_, claims_b) = common::jwt_parts(text(&tb, "id_token"));
    let sid = claims_b["sid"]
        .as_str()
        .expect("the ID token carries sid")
        .to_owned();
    // One session, known to each client by its own id, so that clients cannot correlate the
    // user through it.
    assert!(claims_a["sid"].is_string(), "{claims_a}");
    assert_ne!(claims_a["sid"], sid, "each client has its own sid");
    assert_eq!(silent(&h, &browser, &b).await, "code", "signed in before");

    let resp = rp_logout(&h, &browser, &ta, "shop", &[("state", "s-1")]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), "https://shop.example/signed-out?state=s-1");

    let tokens = receiver.wait_for(1).await;
    assert_eq!(tokens.len(), 1, "exactly one logout token: {tokens:?}");
    let logout = common::verify_with_jwks(&h, &tokens[0], &b.id).await;
    let (header, _) = common::jwt_parts(&tokens[0]);
    assert_eq!(header["typ"], "logout+jwt");
    assert_eq!(logout["iss"], h.base);
    assert_eq!(logout["sub"], "alice");
    assert_eq!(logout["sid"], sid);
    assert!(logout["jti"].is_string() && logout["iat"].is_i64());
    assert_eq!(
        logout["events"],
        json!({"http://schemas.openid.net/event/backchannel-logout": {}})
    );
    assert!(
        logout.get("nonce").is_none(),
        "a logout token never carries a nonce"
    );

    assert_eq!(silent(&h, &browser, &b).await, "login_required");
    assert!(
        !h.is_active(&b, text(&tb, "access_token")).await,
        "the session's tokens are revoked"
    );
    assert!(!h.is_active(&a, text(&ta, "access_token")).await);
    // Still exactly one: nothing was sent twice.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.tokens().len(), 1);
}

/// Without an `id_token_hint` of this browser's session, the user is asked, on a page whose
/// form only this browser can submit.
async fn logout_without_a_matching_hint_asks_the_user_on_a_csrf_protected_page(backend: Backend) {
    let h = start(backend).await;
    let a = rp(&h, "shop", json!({})).await;
    let browser = h.browser(Some("alice"));
    let ta = sign_in(&h, &browser, &a, "openid").await;

    let page = get(
        &browser,
        &end_session_url(
            &h,
            &[
                ("client_id", &a.id),
                (
                    "post_logout_redirect_uri",
                    "https://shop.example/signed-out",
                ),
                ("state", "s-2"),
            ],
        ),
    )
    .await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().await.expect("html");
    assert!(html.contains("Sign out?"), "{html}");
    let csrf = common::hidden_field(&html, "csrf").expect("csrf field");
    assert_eq!(
        silent(&h, &browser, &a).await,
        "code",
        "asking signed nobody out"
    );

    // A form forged with another browser's CSRF token does not work (a browser without the
    // cookie is only shown the question).
    let stranger = h.browser(Some("alice"));
    let _ = get(&stranger, &h.url("/end_session")).await;
    let forged = stranger
        .client
        .post(h.url("/end_session"))
        .form(&[("csrf", csrf.as_str()), ("client_id", a.id.as_str())])
        .send()
        .await
        .expect("post");
    // It confirms nothing: the stranger, signed in nowhere, has nothing to sign out of.
    assert_eq!(forged.status(), StatusCode::OK);
    assert!(
        forged
            .text()
            .await
            .expect("html")
            .contains("You are signed out")
    );
    assert_eq!(silent(&h, &browser, &a).await, "code");

    // A hint from another browser's session is not proof either.
    let other_browser = h.browser(Some("bob"));
    let tb = sign_in(&h, &other_browser, &a, "openid").await;
    let mismatched = get(
        &browser,
        &end_session_url(&h, &[("id_token_hint", text(&tb, "id_token"))]),
    )
    .await;
    assert_eq!(
        mismatched.status(),
        StatusCode::OK,
        "a hint of another session asks first"
    );
    assert_eq!(
        silent(&h, &other_browser, &a).await,
        "code",
        "bob's session is untouched"
    );

    // A browser with no session to end cannot end another browser's with its ID token.
    let bystander = h.browser(None);
    let _ = get(&bystander, &h.url("/end_session")).await;
    let nothing = get(
        &bystander,
        &end_session_url(&h, &[("id_token_hint", text(&tb, "id_token"))]),
    )
    .await;
    assert_eq!(nothing.status(), StatusCode::OK);
    assert!(
        nothing
            .text()
            .await
            .expect("html")
            .contains("You are signed out")
    );
    assert_eq!(
        silent(&h, &other_browser, &a).await,
        "code",
        "bob's session is still untouched"
    );

    let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
    for name in ["client_id", "post_logout_redirect_uri", "state"] {
        assert!(
            html.contains(&format!("name=\"{name}\"")),
            "{name} carried: {html}"
        );
    }
    form.extend([
        ("client_id", a.id.as_str()),
        (
            "post_logout_redirect_uri",
            "https://shop.example/signed-out",
        ),
        ("state", "s-2"),
    ]);
    let confirmed = browser
        .client
        .post(h.url("/end_session"))
        .form(&form)
        .send()
        .await
        .expect("post");
    assert_eq!(confirmed.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&confirmed),
        "https://shop.example/signed-out?state=s-2"
    );
    assert_eq!(silent(&h, &browser, &a).await, "login_required");
    assert!(!h.is_active(&a, text(&ta, "access_token")).await);
    // The same form sent again (another tab): nothing is left to sign out of, so it goes on.
    let again = browser
        .client
        .post(h.url("/end_session"))
        .form(&form)
        .send()
        .await
        .expect("post");
    assert_eq!(
        location(&again),
        "https://shop.example/signed-out?state=s-2"
    );
}

/// Every bad destination is shown as an error, never redirected to.
async fn a_logout_request_never_redirects_to_an_unregistered_uri(backend: Backend) {
    let h = start(backend).await;
    let a = rp(&h, "shop", json!({})).await;
    let b = rp(&h, "forum", json!({})).await;
    let browser = h.browser(Some("alice"));
    let ta = sign_in(&h, &browser, &a, "openid").await;
    let hint = text(&ta, "id_token");
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "an unregistered URI",
            vec![
                ("id_token_hint", hint),
                ("post_logout_redirect_uri", "https://evil.example/"),
            ],
        ),
        (
            "another client's URI",
            vec![
                ("id_token_hint", hint),
                (
                    "post_logout_redirect_uri",
                    "https://forum.example/signed-out",
                ),
            ],
        ),
        (
            "a longer spelling",
            vec![
                ("id_token_hint", hint),
                (
                    "post_logout_redirect_uri",
                    "https://shop.example/signed-out/",
                ),
            ],
        ),
        (
            "no client named",
            vec![(
                "post_logout_redirect_uri",
                "https://shop.example/signed-out",
            )],
        ),
        (
            "a client_id other than the hint's",
            vec![("id_token_hint", hint), ("client_id", &b.id)],
        ),
        (
            "a forged hint",
            vec![
                ("id_token_hint", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9."),
                (
                    "post_logout_redirect_uri",
                    "https://shop.example/signed-out",
                ),
            ],
        ),
        (
            "an unknown client",
            vec![
                ("client_id", "nobody"),
                (
                    "post_logout_redirect_uri",
                    "https://shop.example/signed-out",
                ),
            ],
        ),
    ];
    for (what, params) in cases {
        let resp = get(&browser, &end_session_url(&h, &params)).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{what}");
        assert!(location(&resp).is_empty(), "{what}: redirected");
    }
    assert_eq!(
        silent(&h, &browser, &a).await,
        "code",
        "nobody was signed out"
    );
    // An expired hint still proves the session (RP-Initiated Logout 1.0 §2).
    h.clock.advance(7200);
    let resp = get(
        &browser,
        &end_session_url(
            &h,
            &[
                ("id_token_hint", hint),
                (
                    "post_logout_redirect_uri",
                    "https://shop.example/signed-out",
                ),
            ],
        ),
    )
    .await;
    assert_eq!(location(&resp), "https://shop.example/signed-out");
}

/// Front-channel clients are loaded in iframes, with `iss` and `sid` when they asked, under a
/// CSP that frames exactly them; `offline_access` grants outlive the session unless the client
/// registered otherwise.
async fn the_signed_out_page_frames_front_channel_clients_and_offline_grants_survive(
    backend: Backend,
) {
    let h = start(backend).await;
    let front = rp(
        &h,
        "news",
        json!({
            "frontchannel_logout_uri": "https://news.example/logout",
            "frontchannel_logout_session_required": true,
            "grant_types": ["authorization_code", "refresh_token"],
        }),
    )
    .await;
    let keeper = rp(
        &h,
        "backup",
        json!({"grant_types": ["authorization_code", "refresh_token"]}),
    )
    .await;
    let strict = rp(&h, "bank", json!({"grant_types": ["authorization_code", "refresh_token"], "logout_revokes_offline_access": true})).await;
    let browser = h.browser(Some("alice"));
    let tf = sign_in(&h, &browser, &front, "openid").await;
    let tk = sign_in(&h, &browser, &keeper, "openid offline_access").await;
    let ts = sign_in(&h, &browser, &strict, "openid offline_access").await;
    let sid = common::jwt_parts(text(&tf, "id_token")).1["sid"]
        .as_str()
        .expect("sid")
        .to_owned();

    let resp = rp_logout(&h, &browser, &tf, "news", &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(
        csp.contains("frame-src https://news.example/logout;"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let html = resp.text().await.expect("html");
    let iss = url::form_urlencoded::byte_serialize(h.base.as_bytes()).collect::<String>();
    let expected = format!("<iframe src=\"https://news.example/logout?iss={iss}&#38;sid={sid}\"");
    assert!(html.contains(&expected), "{expected} in {html}");
    assert!(
        html.contains("href=\"https://news.example/signed-out\""),
        "{html}"
    );

    assert!(!h.is_active(&front, text(&tf, "access_token")).await);
    let kept = h
        .post_as(
            &keeper,
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", text(&tk, "refresh_token")),
            ],
        )
        .await;
    assert_eq!(
        kept.status, 200,
        "offline access outlives the session: {}",
        kept.body
    );
    let revoked = h
        .post_as(
            &strict,
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", text(&ts, "refresh_token")),
            ],
        )
        .await;
    assert_eq!(
        revoked.error(),
        "invalid_grant",
        "the client asked for its offline grants to end: {}",
        revoked.body
    );
    // A refreshed ID token no longer names the ended session.
    let refreshed = common::jwt_parts(text(&kept.body, "id_token")).1;
    assert!(refreshed.get("sid").is_none(), "{refreshed}");
}

async fn registration_validates_the_logout_metadata(backend: Backend) {
    let h = Harness::start(backend).await;
    let refused = [
        json!({"post_logout_redirect_uris": ["https://rp.example/out#x"]}),
        json!({"post_logout_redirect_uris": ["http://rp.example/out"]}),
        json!({"backchannel_logout_uri": "http://rp.example/bcl"}),
        json!({"backchannel_logout_uri": "http://127.0.0.1:9/bcl"}),
        json!({"backchannel_logout_uri": "https://10.0.0.1/bcl"}),
        json!({"frontchannel_logout_uri": "https://rp.example/fcl;x"}),
        json!({"frontchannel_logout_uri": "https://rp.example/fcl\n"}),
        json!({"frontchannel_logout_uri": "https://rp.example/a/../fcl"}),
        json!({"frontchannel_logout_uri": "https://rp.example/f cl"}),
        json!({"frontchannel_logout_uri": "https://tracker.example/fcl"}),
        json!({"backchannel_logout_uri": "https://rp.example/bcl#x"}),
        json!({"frontchannel_logout_uri": "javascript:alert(1)"}),
        json!({"backchannel_logout_session_required": "yes"}),
    ];
    for extra in refused {
        let mut meta = json!({"redirect_uris": ["https://rp.example/cb"]});
        if let (Value::Object(m), Value::Object(e)) = (&mut meta, extra.clone()) {
            m.extend(e);
        }
        let r = common::Reply::from(
            h.http()
                .post(h.url("/register"))
                .json(&meta)
                .send()
                .await
                .expect("register"),
        )
        .await;
        assert_eq!(
            (r.status.as_u16(), r.error()),
            (400, "invalid_client_metadata"),
            "{extra}: {}",
            r.body
        );
    }
    let ok = common::Reply::from(
        h.http()
            .post(h.url("/register"))
            .json(&json!({
                "redirect_uris": ["https://rp.example/cb"],
                "post_logout_redirect_uris": ["https://rp.example/out"],
                "backchannel_logout_uri": "https://rp.example/bcl",
                "backchannel_logout_session_required": true,
                "frontchannel_logout_uri": "https://rp.example/fcl",
            }))
            .send()
            .await
            .expect("register"),
    )
    .await;
    assert_eq!(ok.status, 201, "{}", ok.body);
    assert_eq!(ok.body["backchannel_logout_uri"], "https://rp.example/bcl");
    assert_eq!(
        ok.body["post_logout_redirect_uris"],
        json!(["https://rp.example/out"])
    );
}

on_both!(
    rp_initiated_logout_ends_the_session_and_tells_every_client_by_back_channel,
    logout_without_a_matching_hint_asks_the_user_on_a_csrf_protected_page,
    a_logout_request_never_redirects_to_an_unregistered_uri,
    the_signed_out_page_frames_front_channel_clients_and_offline_grants_survive,
    registration_validates_the_logout_metadata,
);

/// A browser the host already signed out (its own sign-out, unseen by Lockspire) still ends its
/// provider session when a client sends it with an ID token of that session: the other clients
/// are told.
async fn a_hint_ends_its_session_in_the_browser_the_host_already_signed_out(backend: Backend) {
    let h = start(backend).await;
    let receiver = Receiver::default();
    let endpoint = receiver.start().await;
    let a = rp(&h, "shop", json!({})).await;
    let b = rp(&h, "forum", json!({"backchannel_logout_uri": endpoint})).await;
    let browser = h.browser(Some("alice"));
    let ta = sign_in(&h, &browser, &a, "openid").await;
    let tb = sign_in(&h, &browser, &b, "openid").await;
    let _ = get(&browser, &h.url("/test-signout")).await;
    let resp = rp_logout(&h, &browser, &ta, "shop", &[]).await;
    assert_eq!(location(&resp), "https://shop.example/signed-out");
    assert_eq!(receiver.wait_for(1).await.len(), 1, "the forum was told");
    assert!(!h.is_active(&b, text(&tb, "access_token")).await);
}

on_both!(a_hint_ends_its_session_in_the_browser_the_host_already_signed_out);

/// Signing in again (`prompt=login`) is a new authentication in the same session (OIDC Core
/// §3.1.2.1): logout afterwards still ends every client of it.
async fn a_re_authentication_stays_in_the_session_that_logout_ends(backend: Backend) {
    let h = start(backend).await;
    let receiver = Receiver::default();
    let endpoint = receiver.start().await;
    let a = rp(&h, "shop", json!({"backchannel_logout_uri": endpoint})).await;
    let b = rp(&h, "forum", json!({})).await;
    let browser = h.browser(Some("alice"));
    let ta = sign_in(&h, &browser, &a, "openid").await;
    h.clock.advance(60);
    let pkce = Pkce::new();
    let url = h.authorize_url(&b, "openid", &pkce, &[("prompt", "login")]);
    let code = browser
        .run(&url, &b.redirect_uri, Consent::Allow)
        .await
        .redirect_params()["code"]
        .clone();
    let tb = h.redeem(&b, &code, &pkce.verifier).await.body;
    let resp = rp_logout(&h, &browser, &tb, "forum", &[]).await;
    assert_eq!(
        location(&resp),
        "https://forum.example/signed-out",
        "the hint proves the session"
    );
    assert!(
        !h.is_active(&a, text(&ta, "access_token")).await,
        "the earlier client's tokens end too"
    );
    assert_eq!(
        receiver.wait_for(1).await.len(),
        1,
        "the earlier client is told"
    );
}

/// A logout request POSTed from a client's site carries none of the provider's SameSite
/// cookies: it is sent on as a GET of the same request, which does, and nothing replaces the
/// browser's cookie on the way.
async fn a_cross_site_post_is_sent_on_as_a_get_and_keeps_the_browser_cookie(backend: Backend) {
    let h = start(backend).await;
    let a = rp(&h, "shop", json!({})).await;
    let browser = h.browser(Some("alice"));
    let ta = sign_in(&h, &browser, &a, "openid").await;
    let cookieless = h.http();
    let form = [
        ("id_token_hint", text(&ta, "id_token")),
        (
            "post_logout_redirect_uri",
            "https://shop.example/signed-out",
        ),
        ("state", "s-3"),
    ];
    let posted = cookieless
        .post(h.url("/end_session"))
        .form(&form)
        .send()
        .await
        .expect("post");
    assert_eq!(posted.status(), StatusCode::SEE_OTHER);
    assert!(
        posted.headers().get("set-cookie").is_none(),
        "no cookie is set on the way"
    );
    let next = location(&posted);
    assert!(
        next.starts_with(&format!("{}/end_session?", h.base)),
        "{next}"
    );
    for (name, value) in form {
        let pair = url::form_urlencoded::Serializer::new(String::new())
            .append_pair(name, value)
            .finish();
        assert!(next.contains(&pair), "{name} carried: {next}");
    }
    // The browser follows with its cookies: the hint proves its session.
    let followed = get(&browser, &next).await;
    assert_eq!(
        location(&followed),
        "https://shop.example/signed-out?state=s-3"
    );
    assert!(!h.is_active(&a, text(&ta, "access_token")).await);
    // A question shown without cookies sets none that names a session.
    let asked = get(
        &h.browser(None),
        &end_session_url(&h, &[("client_id", &a.id)]),
    )
    .await;
    let cookies: Vec<String> = asked
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        cookies.iter().all(|c| !c.starts_with("lockspire_browser=")),
        "{cookies:?}"
    );
}

on_both!(
    a_re_authentication_stays_in_the_session_that_logout_ends,
    a_cross_site_post_is_sent_on_as_a_get_and_keeps_the_browser_cookie,
);

/// The client an `id_token_hint` was issued to may be gone: the hint still names the browser's
/// session, so the user is signed out; only the browser is not sent back to that client.
async fn a_hint_of_a_deleted_client_still_signs_the_user_out(backend: Backend) {
    let h = start(backend).await;
    let a = rp(&h, "shop", json!({})).await;
    let browser = h.browser(Some("alice"));
    let ta = sign_in(&h, &browser, &a, "openid").await;
    assert!(h.ls.delete_client(&a.id).await.expect("delete"));
    let hint = text(&ta, "id_token");
    let back = get(
        &browser,
        &end_session_url(
            &h,
            &[
                ("id_token_hint", hint),
                (
                    "post_logout_redirect_uri",
                    "https://shop.example/signed-out",
                ),
            ],
        ),
    )
    .await;
    assert_eq!(
        back.status(),
        StatusCode::BAD_REQUEST,
        "no redirect to a deleted client"
    );
    let b = rp(&h, "forum", json!({})).await;
    assert_eq!(
        silent(&h, &browser, &b).await,
        "consent_required",
        "signed in, yet to consent"
    );
    let done = get(&browser, &end_session_url(&h, &[("id_token_hint", hint)])).await;
    assert_eq!(done.status(), StatusCode::OK);
    let html = done.text().await.expect("html");
    assert!(
        html.contains("You are signed out") && html.contains("id=\"home\""),
        "{html}"
    );
    assert_eq!(silent(&h, &browser, &b).await, "login_required");
    // Without a hint the user is asked, and may stay.
    let browser = h.browser(Some("alice"));
    sign_in(&h, &browser, &b, "openid").await;
    let asked = get(&browser, &end_session_url(&h, &[("client_id", &b.id)])).await;
    let html = asked.text().await.expect("html");
    assert!(
        html.contains("Sign out?") && html.contains("Stay signed in"),
        "{html}"
    );
    assert!(
        !html.contains("forum asks"),
        "a bare client_id is not named as asking: {html}"
    );
}

on_both!(a_hint_of_a_deleted_client_still_signs_the_user_out);
