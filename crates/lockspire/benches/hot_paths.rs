//! Micro-benchmarks of the hot paths: JWS signing and verification per alg, and — through the
//! real router, in process, on a SQLite file — token issuance, client authentication and a full
//! code redemption. `cargo bench -p lockspire`.

use std::hint::black_box;

use axum::Router;
use axum::body::Body;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, StatusCode};
use lockspire::jose::{KeyRing, KeyStatus, SigningAlg, SigningKey, sign_compact, verify_compact};
use lockspire::{
    AccountResolver, Claims, Context, HostError, InteractionResult, Lockspire, Resolution,
    SecretKey, SignedIn, Subject,
};
use serde_json::{Value, json};
use tower::ServiceExt;

fn jws(c: &mut Criterion) {
    let claims = json!({"iss": "https://auth.example", "sub": "alice", "aud": "client", "exp": 2_000_000_000, "iat": 1_700_000_000});
    for alg in SigningAlg::ALL {
        let Ok(key) = SigningKey::generate(alg) else {
            panic!("generate {alg}")
        };
        let Ok(token) = sign_compact(&key, "JWT", &claims) else {
            panic!("sign {alg}")
        };
        c.bench_function(&format!("jws_sign_{alg}"), |b| {
            b.iter(|| sign_compact(black_box(&key), "JWT", black_box(&claims)))
        });
        let ring = KeyRing::new(vec![(key, KeyStatus::Active)]);
        c.bench_function(&format!("jws_verify_{alg}"), |b| {
            b.iter(|| verify_compact(black_box(&ring), black_box(&token)))
        });
    }
}

/// Alice is always signed in.
struct Alice;

impl AccountResolver for Alice {
    type Account = ();
    async fn resolve_current_account(
        &self,
        _: &mut http::request::Parts,
        _: &Context,
    ) -> Result<Resolution<()>, HostError> {
        Ok(Resolution::SignedIn(SignedIn {
            account: (),
            subject: Subject::new("alice")?,
            auth_time: 1_700_000_000,
            acr: None,
            amr: vec![],
        }))
    }
    async fn resolve_account(&self, _: &Subject, _: &Context) -> Result<Option<()>, HostError> {
        Ok(Some(()))
    }
    async fn build_claims(&self, _: &(), _: &Context) -> Result<Claims, HostError> {
        Ok(Claims::default())
    }
    fn redirect_for_login(&self, _: &http::request::Parts, _: &Context) -> InteractionResult {
        InteractionResult::Redirect("/login".into())
    }
    async fn sign_out(
        &self,
        _: &mut http::request::Parts,
        _: &Context,
    ) -> Result<http::HeaderMap, HostError> {
        Ok(http::HeaderMap::new())
    }
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, http::HeaderMap, Vec<u8>) {
    // The router's error type is `Infallible`.
    let Ok(resp) = app.clone().oneshot(req).await;
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        panic!("body")
    };
    (parts.status, parts.headers, bytes.to_vec())
}

fn form(uri: &str, auth: Option<&str>, body: String) -> Request<Body> {
    let mut b = Request::post(uri).header("content-type", "application/x-www-form-urlencoded");
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    let Ok(req) = b.body(Body::from(body)) else {
        panic!("request")
    };
    req
}

fn endpoints(c: &mut Criterion) {
    let Ok(rt) = tokio::runtime::Runtime::new() else {
        panic!("runtime")
    };
    let Ok(dir) = tempfile::tempdir() else {
        panic!("tempdir")
    };
    let (app, basic, public_id) = rt.block_on(async {
        let Ok(builder) = Lockspire::builder().issuer("http://127.0.0.1:4000") else { panic!("issuer") };
        let Ok(ls) = builder
            .database(&format!("sqlite://{}/bench.db", dir.path().display()))
            .secret_key(SecretKey::generate())
            .account_resolver(Alice)
            .build()
            .await
        else {
            panic!("build")
        };
        let Ok(confidential) = ls.create_client(None, json!({"grant_types": ["client_credentials"]})).await else { panic!("client") };
        let basic = format!("Basic {}", STANDARD.encode(format!("{}:{}", confidential.client_id, confidential.client_secret.unwrap_or_default())));
        let Ok(public) = ls
            .create_client(None, json!({"token_endpoint_auth_method": "none", "redirect_uris": ["https://rp.example/cb"]}))
            .await
        else {
            panic!("public client")
        };
        (ls.router(), basic, public.client_id)
    });

    c.bench_function("token_client_credentials", |b| {
        b.to_async(&rt).iter(|| async {
            let (status, _, _) = call(
                &app,
                form(
                    "/token",
                    Some(&basic),
                    "grant_type=client_credentials".into(),
                ),
            )
            .await;
            assert_eq!(status, StatusCode::OK);
        })
    });
    c.bench_function("client_authentication_and_introspection", |b| {
        b.to_async(&rt).iter(|| async {
            let (status, _, _) = call(
                &app,
                form("/introspect", Some(&basic), "token=unknown".into()),
            )
            .await;
            assert_eq!(status, StatusCode::OK);
        })
    });
    // Bodies at the size limit are refused early and in time linear in their size, however
    // they are split into parameters: many tiny parameters cost about what one large one does.
    // Distinct names: the worst case for a repeat check that compares every pair.
    let many: String = (0..7_000).map(|i| format!("p{i}=1&")).collect::<String>()
        + "grant_type=client_credentials";
    let one = format!("x={}", "a".repeat(many.len() - 2));
    for (name, body) in [
        ("token_refuses_64kib_of_many_parameters", many),
        ("token_refuses_64kib_in_one_parameter", one),
    ] {
        c.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let (status, _, _) = call(&app, form("/token", Some(&basic), body.clone())).await;
                assert_eq!(status, StatusCode::BAD_REQUEST);
            })
        });
    }
    // Consent once; afterwards every authorization is answered with a code straight away.
    let authorize = |challenge: &str| {
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &public_id)
            .append_pair("redirect_uri", "https://rp.example/cb")
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256")
            .finish();
        format!("/authorize?{q}")
    };
    rt.block_on(async {
        let Ok(req) = Request::get(authorize(&"x".repeat(43))).body(Body::empty()) else {
            panic!("request")
        };
        let (_, headers, _) = call(&app, req).await;
        let consent = headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let cookie = headers
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let cookie = cookie.split(';').next().unwrap_or_default().to_owned();
        let path = consent.trim_start_matches("http://127.0.0.1:4000");
        let Ok(req) = Request::get(path)
            .header("cookie", &cookie)
            .body(Body::empty())
        else {
            panic!("request")
        };
        let (_, _, page) = call(&app, req).await;
        let page = String::from_utf8_lossy(&page).into_owned();
        let field = |name: &str| -> String {
            let marker = format!("name=\"{name}\" value=\"");
            let start = page.find(&marker).map(|i| i + marker.len()).unwrap_or(0);
            page[start..start + page[start..].find('"').unwrap_or(0)].to_owned()
        };
        let mut req = form(
            "/consent",
            None,
            format!(
                "interaction={}&csrf={}&decision=allow",
                field("interaction"),
                field("csrf")
            ),
        );
        if let Ok(v) = cookie.parse() {
            req.headers_mut().insert("cookie", v);
        }
        call(&app, req).await;
    });
    c.bench_function("authorize_and_redeem_code", |b| {
        b.to_async(&rt).iter(|| async {
            let mut raw = [0u8; 32];
            let _ = aws_lc_rs::rand::fill(&mut raw);
            let verifier = URL_SAFE_NO_PAD.encode(raw);
            let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()));
            let Ok(req) = Request::get(authorize(&challenge)).body(Body::empty()) else { panic!("request") };
            let (_, headers, _) = call(&app, req).await;
            let location = headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or_default();
            let Ok(url) = url::Url::parse(location) else { panic!("no code: {location}") };
            let code = url.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()).unwrap_or_default();
            let body = format!(
                "grant_type=authorization_code&code={code}&redirect_uri=https%3A%2F%2Frp.example%2Fcb&code_verifier={verifier}&client_id={public_id}"
            );
            let (status, _, tokens) = call(&app, form("/token", None, body)).await;
            assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&tokens));
            let _: Value = serde_json::from_slice(&tokens).unwrap_or_default();
        })
    });
}

criterion_group!(benches, jws, endpoints);
criterion_main!(benches);
