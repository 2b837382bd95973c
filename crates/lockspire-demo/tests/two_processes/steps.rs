//! The protocol steps the tests take against either process.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Client, StatusCode};
use serde_json::Value;

use super::processes::*;

/// Redeems an authorization code at `server`.
pub(crate) async fn redeem(
    server: &Server,
    id: &str,
    secret: &str,
    code: &str,
    verifier: &str,
) -> (StatusCode, Value) {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", "https://rp.example/cb"),
        ("code_verifier", verifier),
    ];
    token(&server.base, id, secret, &form).await
}

/// Rotates a refresh token at `server`.
pub(crate) async fn refresh(
    server: &Server,
    id: &str,
    secret: &str,
    refresh_token: &str,
) -> (StatusCode, Value) {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    token(&server.base, id, secret, &form).await
}

/// Sends [`RACERS`] concurrent token requests with one form, alternating between the two
/// processes; every loser must get `invalid_grant`. Returns the winners' responses.
pub(crate) async fn race(
    a: &Server,
    b: &Server,
    id: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> Vec<Value> {
    let form: Vec<(String, String)> = form
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        let base = [&a.base, &b.base][i % 2].clone();
        let (id, secret, form) = (id.to_owned(), secret.to_owned(), form.clone());
        tasks.push(tokio::spawn(async move {
            let form: Vec<(&str, &str)> =
                form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            token(&base, &id, &secret, &form).await
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (status, body) = t.await.expect("task");
        match status {
            StatusCode::OK => winners.push(body),
            StatusCode::BAD_REQUEST => assert_eq!(body["error"], "invalid_grant"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    winners
}

/// The `kid` of a JWS header.
pub(crate) fn kid_of(jws: &str) -> String {
    let header = jws.split('.').next().expect("header");
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("b64")).expect("json");
    header["kid"].as_str().expect("kid").to_owned()
}

/// The key ids `server` publishes.
pub(crate) async fn published_kids(server: &Server) -> Vec<String> {
    let jwks: Value = Client::new()
        .get(format!("{}/jwks", server.base))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

/// Runs a code flow entirely on `server` and returns the `kid` its ID token is signed with.
pub(crate) async fn id_token_kid(server: &Server, id: &str, secret: &str) -> String {
    let (code, verifier) = authorize(server, server, server, id).await;
    let (status, body) = redeem(server, id, secret, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    kid_of(body["id_token"].as_str().expect("id token"))
}

/// Polls `check` until it holds, failing after `bound`. Returns how long it took.
pub(crate) async fn within<F, Fut>(bound: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < bound, "{what}: not within {bound:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What `/authorize` on `server` answers for `client_id` with `redirect_uri`: 400 for an
/// unregistered redirect URI, a redirect (to the login page) otherwise.
pub(crate) async fn authorize_status(
    server: &Server,
    client_id: &str,
    redirect_uri: &str,
) -> StatusCode {
    let (_, challenge) = pkce();
    let url = format!(
        "{}/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid&nonce=n\
         &code_challenge={challenge}&code_challenge_method=S256",
        server.base,
        url::form_urlencoded::byte_serialize(redirect_uri.as_bytes()).collect::<String>()
    );
    browser().get(url).send().await.expect("authorize").status()
}

/// A client's notification endpoint (CIBA Core §10.2) on loopback: the first call it receives is
/// never answered, later ones get 204. Returns its URL and the bodies received, in order.
pub(crate) async fn notification_endpoint() -> (String, Arc<Mutex<Vec<Value>>>) {
    let calls: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = calls.clone();
    let app = axum::Router::new().route(
        "/cb",
        axum::routing::post(move |body: axum::Json<Value>| {
            let seen = seen.clone();
            async move {
                let first = seen
                    .lock()
                    .map(|mut c| {
                        c.push(body.0);
                        c.len() == 1
                    })
                    .unwrap_or(false);
                if first {
                    std::future::pending::<()>().await;
                }
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/cb", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, calls)
}

/// The demo's authentication device page on `server`, as `b` sees it.
async fn device_page(b: &Client, server: &Server) -> String {
    b.get(format!("{}/demo/ciba", server.base))
        .send()
        .await
        .expect("device page")
        .text()
        .await
        .expect("device page")
}

/// Signs alice in on `server` and approves the one backchannel request waiting for her on the
/// demo's authentication device page.
pub(crate) async fn approve_on_the_demo_device(server: &Server) {
    let b = signed_in(server).await;
    let page = device_page(&b, server).await;
    let approved = b
        .post(format!("{}/demo/ciba", server.base))
        .form(&[
            ("form_token", hidden(&page, "form_token")),
            ("id", hidden(&page, "id")),
            ("action", "approve".to_owned()),
        ])
        .send()
        .await
        .expect("approve");
    // The page redirects after its buttons, and says what the last one did.
    assert_eq!(approved.status(), StatusCode::SEE_OTHER);
    let page = device_page(&b, server).await;
    assert!(page.contains("Approved."), "{page}");
}
