//! Bad input: every malformed, missing, duplicated or oversized parameter gets the
//! RFC error and status — never a 500, never a panic.

mod common;

use common::Reply;
use serde_json::json;

/// A tiny deterministic generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const NAMES: &[&str] = &[
    "grant_type",
    "code",
    "redirect_uri",
    "code_verifier",
    "client_id",
    "client_secret",
    "refresh_token",
    "scope",
    "resource",
    "token",
    "token_type_hint",
    "response_type",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "claims",
    "id_token_hint",
    "response_mode",
    "request",
    "interaction",
    "csrf",
    "decision",
    "access_token",
    "x",
    "",
];

const VALUES: &[&str] = &[
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "openid",
    "openid email",
    "S256",
    "plain",
    "none",
    "login",
    "-1",
    "99999999999999999999999",
    "{\"id_token\":{\"email\":null}}",
    "{",
    "null",
    "a.b.c",
    "%00",
    "\u{0}",
    "é漢字🙂",
    "https://rp.example/cb",
    "javascript:alert(1)",
    "   ",
    "allow",
    "deny",
    "query",
    "form_post",
    "jwt",
    "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
];

fn garbage(rng: &mut Rng, client_id: &str) -> Vec<(String, String)> {
    let n = 1 + rng.next() % 8;
    let mut out = Vec::new();
    for _ in 0..n {
        let name = rng.pick(NAMES).to_owned();
        let value = match rng.next() % 10 {
            0 => client_id.to_owned(),
            1 => "x".repeat((rng.next() % 20_000) as usize),
            _ => rng.pick(VALUES).to_owned(),
        };
        out.push((name, value));
    }
    out
}

/// RFC 6749 §4.1.2.1: `error_description` uses %x20-21 / %x23-5B / %x5D-7E only.
fn assert_rfc_description(description: &serde_json::Value, context: &str) {
    let text = description.as_str().unwrap_or_default();
    assert!(
        text.chars()
            .all(|c| matches!(c, '\x20'..='\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E')),
        "{context}: {text:?}"
    );
}

/// Request text that must never come back: it holds characters the RFC forbids in
/// descriptions, and a marker to look for.
const HOSTILE: &str = "zq\"\\<é\u{7}MARKER";

on_both_stores! {
    async fn error_descriptions_use_the_rfc_charset_and_never_echo_request_text(h) {
        let client = h.confidential_client(json!({})).await;
        let mut replies = vec![
            h.post_as(&client, "/token", &[("grant_type", "client_credentials"), (HOSTILE, "1"), (HOSTILE, "2")]).await,
            h.post_as(&client, "/token", &[("grant_type", HOSTILE)]).await,
            h.post_as(&client, "/token", &[("grant_type", "client_credentials"), ("scope", "MARKER")]).await,
            h.post_as(&client, "/introspect", &[("token", "t"), (HOSTILE, "1"), (HOSTILE, "2")]).await,
        ];
        for body in [
            json!({"redirect_uris": ["https://rp.example/cb"], "token_endpoint_auth_method": HOSTILE}),
            json!({"redirect_uris": [HOSTILE]}),
            json!({"redirect_uris": ["https://rp.example/cb"], "scope": "openid MARKER"}),
            json!({"redirect_uris": ["https://rp.example/cb"], "grant_types": [HOSTILE]}),
            json!({"redirect_uris": ["https://rp.example/cb"], "id_token_signed_response_alg": HOSTILE}),
            json!({"redirect_uris": ["https://rp.example/cb"], "userinfo_signed_response_alg": HOSTILE}),
        ] {
            replies.push(Reply::from(h.http().post(h.url("/register")).json(&body).send().await.expect("register")).await);
        }
        for r in &replies {
            assert!(r.status.is_client_error(), "{}", r.text);
            assert!(!r.text.contains("MARKER"), "echoed: {}", r.text);
            assert_rfc_description(&r.body["error_description"], &r.text);
        }
        // Errors sent back to the client's redirect URI.
        let public = h.public_client(json!({})).await;
        for (scope, extra, code) in [
            ("openid", vec![("prompt", HOSTILE)], "invalid_request"),
            ("openid", vec![(HOSTILE, "1"), (HOSTILE, "2")], "invalid_request"),
            ("openid MARKER_Visit_evil.example", vec![], "invalid_scope"),
            ("openid", vec![("resource", "https://MARKER.example/")], "invalid_target"),
        ] {
            let url = h.authorize_url(&public, scope, &common::Pkce::new(), &extra);
            let outcome = h.browser(None).run(&url, &public.redirect_uri, common::Consent::Stop).await;
            let params = outcome.redirect_params();
            assert_eq!(params.get("error").map(String::as_str), Some(code), "{params:?}");
            let description = params.get("error_description").cloned().unwrap_or_default();
            assert!(!description.contains("MARKER"), "{description}");
            assert_rfc_description(&json!(description), "redirect");
        }
    }


    async fn random_garbage_never_yields_a_server_error(h) {
        let client = h.confidential_client(json!({})).await;
        let browser = h.browser(Some("alice"));
        let mut rng = Rng(0x5eed_1234_abcd_0042);
        for i in 0..150 {
            let params = garbage(&mut rng, &client.id);
            let encoded: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&params).finish();
            for path in ["/token", "/introspect", "/revoke", "/userinfo", "/consent"] {
                let mut req = h.http().post(h.url(path)).header("content-type", "application/x-www-form-urlencoded").body(encoded.clone());
                if i % 3 == 0 {
                    req = req.basic_auth(&client.id, client.secret.as_deref());
                }
                let resp = req.send().await.expect("send");
                let status = resp.status();
                assert!(!status.is_server_error(), "{path} {params:?} -> {status}");
                if path != "/consent" && !status.is_success() {
                    let r = Reply::from(resp).await;
                    assert!(!r.error().is_empty(), "{path} error body has an error code: {}", r.text);
                    assert_rfc_description(&r.body["error_description"], path);
                }
            }
            for path in ["/authorize", "/authorize/resume", "/consent", "/userinfo"] {
                let status = browser.client.get(format!("{}{path}?{encoded}", h.base)).send().await.expect("get").status();
                assert!(!status.is_server_error(), "GET {path}?{encoded} -> {status}");
            }
            let json_body = serde_json::Value::Object(params.iter().map(|(k, v)| (k.clone(), json!(v))).collect());
            let status = h.http().post(h.url("/register")).json(&json_body).send().await.expect("register").status();
            assert!(!status.is_server_error(), "register {json_body} -> {status}");
        }
    }

    async fn token_endpoint_checks_content_type_size_and_duplicates(h) {
        let client = h.confidential_client(json!({})).await;
        let json_body = Reply::from(h.http().post(h.url("/token")).basic_auth(&client.id, client.secret.as_deref())
            .json(&json!({"grant_type": "client_credentials"})).send().await.expect("send")).await;
        assert_eq!((json_body.status.as_u16(), json_body.error()), (400, "invalid_request"));
        let huge = format!("grant_type=client_credentials&scope={}", "a".repeat(70 * 1024));
        let big = Reply::from(h.http().post(h.url("/token")).basic_auth(&client.id, client.secret.as_deref())
            .header("content-type", "application/x-www-form-urlencoded").body(huge).send().await.expect("send")).await;
        assert_eq!((big.status.as_u16(), big.error()), (413, "invalid_request"));
        let dup = h.post_as(&client, "/token", &[("grant_type", "client_credentials"), ("scope", "a"), ("scope", "b")]).await;
        assert_eq!((dup.status.as_u16(), dup.error()), (400, "invalid_request"));
        let dup_grant = h.post_as(&client, "/token", &[("grant_type", "client_credentials"), ("grant_type", "client_credentials")]).await;
        assert_eq!(dup_grant.error(), "invalid_request");
        let missing = h.post_as(&client, "/token", &[]).await;
        assert_eq!((missing.status.as_u16(), missing.error()), (400, "invalid_request"));
        assert_eq!(missing.header("cache-control"), "no-store", "error responses are not cached either");
        let long_param = h.post_as(&client, "/token", &[("grant_type", "authorization_code"), ("code", &"c".repeat(9000)), ("code_verifier", &"v".repeat(50))]).await;
        assert_eq!(long_param.error(), "invalid_request");
    }

    async fn a_request_with_more_parameters_than_the_cap_is_refused_as_invalid_request(h) {
        let client = h.confidential_client(json!({})).await;
        // Just under the 64 KiB body limit: 7,000 parameters of distinct names (the worst case
        // for a repeat check that compares every pair), then the real ones.
        let many: String = (0..7_000).map(|i| format!("p{i}=1&")).collect::<String>() + "grant_type=client_credentials";
        assert!(many.len() < 64 * 1024);
        for path in ["/token", "/introspect", "/revoke", "/userinfo"] {
            let r = Reply::from(h.http().post(h.url(path)).basic_auth(&client.id, client.secret.as_deref())
                .header("content-type", "application/x-www-form-urlencoded").body(many.clone()).send().await.expect("send")).await;
            assert_eq!((r.status.as_u16(), r.error()), (400, "invalid_request"), "{path}: {}", r.text);
            assert!(r.text.contains("too many parameters"), "{path}: {}", r.text);
        }
        // Browser endpoints answer with an error page (the client is not verified yet).
        for path in ["/authorize", "/consent"] {
            let resp = h.http().post(h.url(path)).header("content-type", "application/x-www-form-urlencoded")
                .body(many.clone()).send().await.expect("send");
            assert_eq!(resp.status(), 400, "{path}");
            assert!(resp.text().await.expect("page").contains("too many parameters"), "{path}");
        }
        let query = "a=&".repeat(65);
        for path in ["/authorize", "/authorize/resume", "/consent"] {
            let resp = h.http().get(format!("{}?{query}", h.url(path))).send().await.expect("send");
            assert_eq!(resp.status(), 400, "GET {path}");
        }
        // Requests with a normal number of parameters are unaffected.
        let ok = h.post_as(&client, "/token", &[("grant_type", "client_credentials")]).await;
        assert_eq!(ok.status, 200, "{}", ok.text);
    }

    async fn a_panic_in_a_handler_answers_500_server_error_and_the_server_goes_on(h) {
        let client = h.public_client(json!({})).await;
        let url = h.authorize_url(&client, "openid", &common::Pkce::new(), &[]);
        let r = Reply::from(h.http().get(&url).header("cookie", format!("test_session={}.0", common::PANICKING_SUBJECT))
            .send().await.expect("a response, not a dropped connection")).await;
        assert_eq!((r.status.as_u16(), r.error()), (500, "server_error"), "{}", r.text);
        assert_eq!(h.http().get(h.url("/jwks")).send().await.expect("jwks").status(), 200);
    }

    async fn a_host_auth_time_at_the_limit_of_i64_does_not_overflow_max_age(h) {
        let client = h.public_client(json!({})).await;
        let url = h.authorize_url(&client, "openid", &common::Pkce::new(), &[("max_age", "60"), ("prompt", "none")]);
        let r = h.http().get(&url).header("cookie", format!("test_session=alice.{}", i64::MIN)).send().await.expect("authorize");
        assert_eq!(r.status(), 303);
        let location = r.headers()["location"].to_str().expect("location").to_owned();
        assert!(location.contains("error=login_required"), "{location}");
    }

    async fn a_client_id_with_a_nul_byte_names_no_client(h) {
        let token = Reply::from(h.http().post(h.url("/token")).basic_auth("a\0b", Some("s"))
            .form(&[("grant_type", "client_credentials")]).send().await.expect("token")).await;
        assert_eq!((token.status.as_u16(), token.error()), (401, "invalid_client"));
        let token = Reply::from(h.http().post(h.url("/token"))
            .form(&[("grant_type", "client_credentials"), ("client_id", "a\0b"), ("client_secret", "s")]).send().await.expect("token")).await;
        assert_eq!((token.status.as_u16(), token.error()), (401, "invalid_client"));
        let authorize = h.http().get(h.url("/authorize?response_type=code&client_id=a%00b")).send().await.expect("authorize");
        assert_eq!(authorize.status(), 400);
        let manage = h.http().get(h.url("/register/a%00b")).bearer_auth("t").send().await.expect("register");
        assert_eq!(manage.status(), 401);
    }

    async fn malformed_authorization_headers_are_client_errors(h) {
        for value in ["Basic !!!", "Basic", "Basic Zm9v", "Bearer x", "Digest abc"] {
            let r = Reply::from(h.http().post(h.url("/token")).header("authorization", value)
                .form(&[("grant_type", "client_credentials")]).send().await.expect("send")).await;
            assert!(r.status.is_client_error(), "{value}: {}", r.status);
            assert_eq!(r.error(), "invalid_client", "{value}");
        }
        // RFC 6750 §3.1: a protected resource asked with another scheme has no token of its
        // method, so the answer is a bare challenge without an error code; a Bearer value that
        // is not one b64token is malformed (400).
        let r = Reply::from(h.http().get(h.url("/userinfo")).header("authorization", "Basic abc").send().await.expect("send")).await;
        assert_eq!(r.status, 401);
        assert_eq!(r.header("www-authenticate"), r#"Bearer realm="lockspire""#);
        let r = Reply::from(h.http().get(h.url("/userinfo")).header("authorization", "Bearer a b").send().await.expect("send")).await;
        assert_eq!((r.status.as_u16(), r.error()), (400, "invalid_request"));
    }
}
