//! Rich authorization requests (RFC 9396): `authorization_details` at `/authorize`, in a push
//! and inside a request object; checked by the host's type, shown on the consent page, kept with
//! the grant and returned in the token response, JWT access tokens and introspection.

mod common;

use common::{Backend, ClientKey, Consent, Harness, Outcome, Pkce, TestClient};
use lockspire::{AuthorizationDetail, AuthorizationDetailsType, Clock};
use serde_json::{Value, json};

/// The host's one type: reading account information, for the accounts it names.
struct AccountInformation;

impl AuthorizationDetailsType for AccountInformation {
    fn validate(&self, detail: &AuthorizationDetail) -> Result<(), String> {
        let actions = detail.get("actions").and_then(Value::as_array);
        match actions {
            Some(a)
                if !a.is_empty()
                    && a.iter()
                        .all(|x| x == "list_accounts" || x == "read_balances") =>
            {
                Ok(())
            }
            _ => Err("actions must be list_accounts and/or read_balances".into()),
        }
    }

    fn describe(&self, detail: &AuthorizationDetail) -> String {
        let actions: Vec<&str> = detail
            .get("actions")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        format!("Account information: {}", actions.join(" and "))
    }

    /// An approval covers a request for the same or fewer actions.
    fn covers(&self, approved: &AuthorizationDetail, requested: &AuthorizationDetail) -> bool {
        let actions = |d: &AuthorizationDetail| {
            d.get("actions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let had = actions(approved);
        actions(requested).iter().all(|a| had.contains(a))
    }
}

/// A second type, so that a client can be limited to one of two.
struct PaymentInitiation;

impl AuthorizationDetailsType for PaymentInitiation {
    fn validate(&self, detail: &AuthorizationDetail) -> Result<(), String> {
        match detail.get("actions") {
            Some(a) if a == &json!(["initiate"]) => Ok(()),
            _ => Err("actions must be [initiate]".into()),
        }
    }

    fn describe(&self, _: &AuthorizationDetail) -> String {
        "Start a payment".into()
    }
}

async fn start(backend: Backend) -> Harness {
    Harness::start_with(backend, |b| {
        b.authorization_details_type("account_information", AccountInformation)
            .authorization_details_type("payment_initiation", PaymentInitiation)
    })
    .await
}

macro_rules! rar_tests {
    ($( async fn $name:ident($h:ident) $body:block )*) => { $(
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() { let $h = start(Backend::Sqlite).await; $body }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() { let $h = start(Backend::Postgres).await; $body }
        }
    )* };
}

const READ_ALL: &str = r#"[{"type":"account_information","actions":["list_accounts","read_balances"],"locations":["https://bank.example/accounts"]}]"#;
const LIST_ONLY: &str = r#"[{"type":"account_information","actions":["list_accounts"],"locations":["https://bank.example/accounts"]}]"#;

async fn flow(
    h: &Harness,
    client: &TestClient,
    pkce: &Pkce,
    details: &str,
    consent: Consent,
) -> Outcome {
    flow_for(h, client, "openid", pkce, details, consent).await
}

async fn flow_for(
    h: &Harness,
    client: &TestClient,
    scope: &str,
    pkce: &Pkce,
    details: &str,
    consent: Consent,
) -> Outcome {
    let url = h.authorize_url(client, scope, pkce, &[("authorization_details", details)]);
    h.browser(Some("alice"))
        .run(&url, &client.redirect_uri, consent)
        .await
}

rar_tests! {
    async fn authorization_details_are_consented_and_travel_with_every_token(h) {
        let client = h.confidential_client(json!({"access_token_format": "jwt"})).await;
        let pkce = Pkce::new();
        // The consent page says what the details grant, as the host's type describes them.
        let Outcome::ConsentPage(_, html) = flow(&h, &client, &pkce, READ_ALL, Consent::Stop).await else { panic!("a consent page") };
        assert!(html.contains("Account information: list_accounts and read_balances"), "{html}");
        // A plain OAuth request, so that a refresh token is issued too.
        let outcome = flow_for(&h, &client, "api:read", &pkce, READ_ALL, Consent::Allow).await;
        let code = outcome.redirect_params().get("code").cloned().expect("code");
        let tokens = h.redeem(&client, &code, &pkce.verifier).await;
        assert_eq!(tokens.status, 200, "{}", tokens.text);
        let expected: Value = serde_json::from_str(READ_ALL).expect("json");
        assert_eq!(tokens.body["authorization_details"], expected, "RFC 9396 §7: in the token response");
        let access = tokens.body["access_token"].as_str().expect("access_token");
        let claims = common::verify_with_jwks(&h, access, h.base.as_str()).await;
        assert_eq!(claims["authorization_details"], expected, "§9.1: in the JWT access token");
        let introspected = h.post_as(&client, "/introspect", &[("token", access)]).await;
        assert_eq!(introspected.body["authorization_details"], expected, "§9.2: in introspection");
        // A refreshed access token keeps them.
        let refresh = tokens.body["refresh_token"].as_str().expect("refresh_token");
        let refreshed = h.post_as(&client, "/token", &[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await;
        assert_eq!(refreshed.body["authorization_details"], expected, "{}", refreshed.text);
        let refreshed_access = refreshed.body["access_token"].as_str().expect("access_token");
        let introspected = h.post_as(&client, "/introspect", &[("token", refreshed_access)]).await;
        assert_eq!(introspected.body["authorization_details"], expected);
        // Without details, nothing is added.
        let plain = h.tokens(&client, "alice", "openid").await;
        assert!(plain.get("authorization_details").is_none(), "{plain}");
        let doc: Value = h.discovery().await;
        assert_eq!(doc["authorization_details_types_supported"], json!(["account_information", "payment_initiation"]));
    }

    async fn remembered_consent_is_reused_only_when_it_covers_the_new_details(h) {
        let client = h.confidential_client(json!({})).await;
        let pkce = Pkce::new();
        assert!(flow(&h, &client, &pkce, LIST_ONLY, Consent::Allow).await.redirect_params().contains_key("code"));
        // The same, or less: no page.
        let again = flow(&h, &client, &pkce, LIST_ONLY, Consent::Stop).await;
        assert!(again.redirect_params().contains_key("code"), "{again:?}");
        // The host's list of connected apps shows what was approved.
        let apps = h.ls.authorizations(&lockspire::Subject::new("alice").expect("subject")).await.expect("list");
        assert_eq!(apps[0].authorization_details.to_json(), serde_json::from_str::<Value>(LIST_ONLY).expect("json"));
        // More actions than approved: asked again.
        let wider = flow(&h, &client, &pkce, READ_ALL, Consent::Stop).await;
        assert!(matches!(wider, Outcome::ConsentPage(..)), "{wider:?}");
        // And a signed-in browser asking with prompt=none cannot proceed without the page.
        let browser = h.browser(Some("alice"));
        let signed_in = browser.run(&h.authorize_url(&client, "openid", &pkce, &[]), &client.redirect_uri, Consent::Allow).await;
        assert!(signed_in.redirect_params().contains_key("code"));
        let url = h.authorize_url(&client, "openid", &pkce, &[("authorization_details", READ_ALL), ("prompt", "none")]);
        let silent = browser.run(&url, &client.redirect_uri, Consent::Stop).await;
        assert_eq!(silent.redirect_params().get("error").map(String::as_str), Some("consent_required"));
    }

    async fn a_token_request_may_narrow_the_granted_details_but_never_widen_them(h) {
        let client = h.confidential_client(json!({})).await;
        // Granted: only listing accounts. Asking at the token endpoint for more is refused.
        let pkce = Pkce::new();
        let outcome = flow_for(&h, &client, "api:read", &pkce, LIST_ONLY, Consent::Allow).await;
        let code = outcome.redirect_params().get("code").cloned().expect("code");
        let wider = h.post_as(&client, "/token", &[
            ("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", &client.redirect_uri),
            ("code_verifier", &pkce.verifier), ("authorization_details", READ_ALL),
        ]).await;
        assert_eq!((wider.status.as_u16(), wider.error()), (400, "invalid_authorization_details"), "{}", wider.text);
        // Granted both actions; the token request narrows the access token to one.
        let pkce = Pkce::new();
        let outcome = flow_for(&h, &client, "api:read", &pkce, READ_ALL, Consent::Allow).await;
        let code = outcome.redirect_params().get("code").cloned().expect("code");
        let narrowed = h.post_as(&client, "/token", &[
            ("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", &client.redirect_uri),
            ("code_verifier", &pkce.verifier), ("authorization_details", LIST_ONLY),
        ]).await;
        assert_eq!(narrowed.status, 200, "{}", narrowed.text);
        let list_only: Value = serde_json::from_str(LIST_ONLY).expect("json");
        let read_all: Value = serde_json::from_str(READ_ALL).expect("json");
        assert_eq!(narrowed.body["authorization_details"], list_only);
        let access = narrowed.body["access_token"].as_str().expect("access_token");
        assert_eq!(h.post_as(&client, "/introspect", &[("token", access)]).await.body["authorization_details"], list_only);
        // The refresh token keeps the whole grant: a refresh without the parameter gets it all back.
        let refresh = narrowed.body["refresh_token"].as_str().expect("refresh_token");
        let refreshed = h.post_as(&client, "/token", &[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await;
        assert_eq!(refreshed.body["authorization_details"], read_all, "{}", refreshed.text);
        let bad = h.post_as(&client, "/token", &[
            ("grant_type", "refresh_token"), ("refresh_token", refreshed.body["refresh_token"].as_str().expect("rt")),
            ("authorization_details", "not json"),
        ]).await;
        assert_eq!(bad.error(), "invalid_authorization_details", "{}", bad.text);
    }

    async fn every_bad_authorization_details_value_is_invalid_authorization_details(h) {
        let client = h.confidential_client(json!({})).await;
        let limited = h.confidential_client(json!({"authorization_details_types": ["payment_initiation"]})).await;
        let cases: Vec<(&str, &str, &TestClient)> = vec![
            ("not JSON", "{not json", &client),
            ("an object, not an array", r#"{"type":"account_information"}"#, &client),
            ("an empty array", "[]", &client),
            ("an entry without type", r#"[{"actions":["list_accounts"]}]"#, &client),
            ("an unknown type", r#"[{"type":"unknown_type"}]"#, &client),
            ("a common field of the wrong JSON type", r#"[{"type":"account_information","actions":"list_accounts"}]"#, &client),
            ("what the host's type refuses", r#"[{"type":"account_information","actions":["transfer"]}]"#, &client),
            ("a type the client did not register", LIST_ONLY, &limited),
        ];
        // Registration accepts only types the server supports.
        let refused = h.ls.create_client(None, json!({"redirect_uris": ["https://rp.example/cb"], "authorization_details_types": ["unknown_type"]})).await;
        assert!(refused.is_err(), "an unsupported type registered");
        for (what, details, who) in cases {
            let outcome = flow(&h, who, &Pkce::new(), details, Consent::Allow).await;
            let params = outcome.redirect_params();
            assert_eq!(params.get("error").map(String::as_str), Some("invalid_authorization_details"), "{what}: {params:?}");
            assert_eq!(params.get("state").map(String::as_str), Some("st-123"), "{what}");
            assert!(!params.contains_key("code"), "{what}");
        }
        let refused = h.post_as(&client, "/par", &[
            ("response_type", "code"), ("redirect_uri", &client.redirect_uri), ("scope", "openid"),
            ("code_challenge", &Pkce::new().challenge), ("code_challenge_method", "S256"),
            ("authorization_details", r#"[{"type":"account_information","actions":["transfer"]}]"#),
        ]).await;
        assert_eq!((refused.status.as_u16(), refused.error()), (400, "invalid_authorization_details"), "{}", refused.text);
        assert!(refused.body["error_description"].as_str().is_some_and(|d| d.contains("list_accounts")), "the host's reason: {}", refused.text);
    }

    async fn authorization_details_in_a_push_and_in_a_request_object_are_honoured(h) {
        let client = h.confidential_client(json!({})).await;
        let pkce = Pkce::new();
        let pushed = h.post_as(&client, "/par", &[
            ("response_type", "code"), ("redirect_uri", &client.redirect_uri), ("scope", "openid"),
            ("code_challenge", &pkce.challenge), ("code_challenge_method", "S256"),
            ("authorization_details", LIST_ONLY),
        ]).await;
        assert_eq!(pushed.status, 201, "{}", pushed.text);
        let url = format!("{}/authorize?client_id={}&request_uri={}", h.base, client.id,
            url::form_urlencoded::byte_serialize(pushed.body["request_uri"].as_str().expect("uri").as_bytes()).collect::<String>());
        let outcome = h.browser(Some("alice")).run(&url, &client.redirect_uri, Consent::Allow).await;
        let tokens = h.redeem(&client, outcome.redirect_params().get("code").expect("code"), &pkce.verifier).await;
        assert_eq!(tokens.body["authorization_details"], serde_json::from_str::<Value>(LIST_ONLY).expect("json"));
        // A request object carries them as a JSON array claim.
        let key = ClientKey::es256("k1");
        let signer = h.public_client(json!({"jwks": common::jwks(&[&key])})).await;
        let pkce = Pkce::new();
        let now = h.clock.now();
        let request = key.sign(&json!({
            "iss": signer.id, "aud": h.base, "exp": now + 300, "jti": common::random_b64(16),
            "response_type": "code", "redirect_uri": signer.redirect_uri, "scope": "openid",
            "code_challenge": pkce.challenge, "code_challenge_method": "S256",
            "authorization_details": serde_json::from_str::<Value>(READ_ALL).expect("json"),
        }));
        let url = format!("{}/authorize?client_id={}&request={request}", h.base, signer.id);
        let Outcome::ConsentPage(_, html) = h.browser(Some("alice")).run(&url, &signer.redirect_uri, Consent::Stop).await else { panic!("consent page") };
        assert!(html.contains("list_accounts and read_balances"), "{html}");
    }
}

/// Without a registered type every `authorization_details` value is refused, and discovery lists
/// none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_types_refuses_authorization_details() {
    let h = Harness::start(Backend::Sqlite).await;
    let client = h.confidential_client(json!({})).await;
    let outcome = flow(&h, &client, &Pkce::new(), LIST_ONLY, Consent::Allow).await;
    assert_eq!(
        outcome.redirect_params().get("error").map(String::as_str),
        Some("invalid_authorization_details")
    );
    let doc: Value = h.discovery().await;
    assert_eq!(doc["authorization_details_types_supported"], json!([]));
}
