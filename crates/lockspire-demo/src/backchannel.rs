//! Backchannel authentication (CIBA) in the demo: this app plays both the user's
//! authentication device and a client that asks for them.
//!
//! * [`DemoBackchannel`] is the host's side of CIBA: it finds the user a client names (by
//!   username) and "reaches their device", which here is the `/demo/ciba` page: a signed-in
//!   user sees the requests waiting for them there and approves or denies each one, which
//!   the page tells Lockspire through `approve_backchannel` / `deny_backchannel`.
//! * The page also plays "the bank", a client of the poll mode (`lockspire-demo-bank`,
//!   authenticating with `private_key_jwt`), which asks Lockspire to sign the current user in
//!   on their device and polls for the result, as a call-centre or checkout system would.

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use lockspire::{
    BackchannelApproval, BackchannelAuthenticator, BackchannelRequest, Context, HintResolution,
    HostError, LoginHint, Subject,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::display::{pretty, redacted_tokens, truncate};
use crate::pages::{
    AUTH_TIME_KEY, cross_origin_refused, error_page, internal_error, render, see_other,
};
use crate::users::{AuthSession, Users};
use crate::{AppState, DEMO_BANK_CLIENT_ID, forms, random};

/// The host's side of CIBA: users are named by username; their device is `/demo/ciba`.
#[derive(Clone, Debug)]
pub(crate) struct DemoBackchannel {
    users: Users,
}

impl DemoBackchannel {
    pub(crate) fn new(users: Users) -> Self {
        Self { users }
    }
}

impl BackchannelAuthenticator for DemoBackchannel {
    async fn resolve_hint(
        &self,
        hint: LoginHint<'_>,
        _ctx: &Context,
    ) -> Result<HintResolution, HostError> {
        let user = match hint {
            LoginHint::LoginHint(username) => self.users.by_username(username).await,
            LoginHint::IdTokenHint(subject) => self.users.by_id(subject.as_str()).await,
            // The demo issues no login hint tokens of its own.
            LoginHint::LoginHintToken(_) => return Ok(HintResolution::Unknown),
        }
        .map_err(|e| HostError::new(format!("looking up the user: {e}")))?;
        Ok(match user {
            Some(user) => HintResolution::User(Subject::new(user.id)?),
            None => HintResolution::Unknown,
        })
    }

    async fn notify(&self, request: &BackchannelRequest) -> Result<(), HostError> {
        // A real host sends a push notification to the user's phone here.
        tracing::info!(
            subject = %request.subject.as_str(),
            client_id = %request.client_id,
            binding_message = request.binding_message.as_deref().unwrap_or("-"),
            "a backchannel request waits for its user at /demo/ciba"
        );
        Ok(())
    }
}

/// Session key of the bank's request in progress.
const BANK_KEY: &str = "demo_ciba.bank";

/// Session key of what the last button did, shown once on the page it redirects to.
const NOTICE_KEY: &str = "demo_ciba.notice";

/// The bank's memory: its request and the last answer of the token endpoint.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Bank {
    auth_req_id: String,
    binding_message: String,
    /// The backchannel authentication response, the `auth_req_id` shortened.
    acknowledgement: String,
    last_poll: Option<(u16, String)>,
}

#[derive(Template)]
#[template(path = "ciba.html")]
struct CibaPage<'a> {
    form_token: &'a str,
    requests: &'a [BackchannelRequest],
    bank: Option<&'a Bank>,
    notice: Option<&'a str>,
}

/// The forms of the page.
#[derive(Debug, Deserialize)]
pub(crate) struct CibaForm {
    form_token: Option<String>,
    /// `start`, `poll`, `approve` or `deny`.
    action: String,
    /// The request decided (`approve`, `deny`).
    id: Option<String>,
}

/// `GET /demo/ciba`: the user's authentication device, and the bank.
pub(crate) async fn page(State(app): State<AppState>, auth: AuthSession) -> Response {
    if let Some(off) = crate::pages::off_under_fapi(
        &app,
        "CIBA",
        "does not include CIBA (its authorization is not pushed)",
    ) {
        return off;
    }
    let notice = match auth.session.remove::<String>(NOTICE_KEY).await {
        Ok(notice) => notice,
        Err(e) => return internal_error("Reading the session failed", &e),
    };
    show(&app, &auth, notice.as_deref()).await
}

async fn show(app: &AppState, auth: &AuthSession, notice: Option<&str>) -> Response {
    let Some(user) = &auth.user else {
        let return_to: String =
            url::form_urlencoded::byte_serialize(format!("{}/demo/ciba", app.issuer).as_bytes())
                .collect();
        return see_other(&format!("/login?return_to={return_to}"));
    };
    let subject = match Subject::new(user.id.clone()) {
        Ok(s) => s,
        Err(e) => return internal_error("Reading the user failed", &e),
    };
    let requests = match app.lockspire.backchannel_requests(&subject).await {
        Ok(r) => r,
        Err(e) => return internal_error("Listing the requests failed", &e),
    };
    let form_token = match forms::token(&auth.session).await {
        Ok(t) => t,
        Err(e) => return internal_error("Preparing the forms failed", &e),
    };
    let bank = match auth.session.get::<Bank>(BANK_KEY).await {
        Ok(b) => b,
        Err(e) => return internal_error("Reading the session failed", &e),
    };
    render(
        StatusCode::OK,
        &CibaPage {
            form_token: &form_token,
            requests: &requests,
            bank: bank.as_ref(),
            notice,
        },
    )
}

/// `POST /demo/ciba`: one of the page's buttons.
pub(crate) async fn act(
    State(app): State<AppState>,
    auth: AuthSession,
    headers: HeaderMap,
    form: Result<Form<CibaForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Incomplete form",
            "The form was incomplete.",
        );
    };
    match forms::check(
        &headers,
        &app.issuer,
        &auth.session,
        form.form_token.as_deref(),
    )
    .await
    {
        Ok(forms::Verdict::Genuine) => {}
        Ok(forms::Verdict::Stale) => {
            return show(
                &app,
                &auth,
                Some("That form had expired; nothing was done."),
            )
            .await;
        }
        Ok(forms::Verdict::CrossOrigin) => return cross_origin_refused(),
        Err(e) => return internal_error("Reading the session failed", &e),
    }
    let Some(user) = &auth.user else {
        return see_other("/demo/ciba");
    };
    let subject = match Subject::new(user.id.clone()) {
        Ok(s) => s,
        Err(e) => return internal_error("Reading the user failed", &e),
    };
    let notice = match (form.action.as_str(), form.id.as_deref()) {
        ("start", _) => match start(&app, &auth, &user.username).await {
            Ok(()) => {
                "The bank asked Lockspire to sign you in; your device below shows the request."
            }
            Err(Failed(response)) => return *response,
        },
        ("poll", _) => match poll(&app, &auth).await {
            Ok(()) => "The bank polled the token endpoint.",
            Err(Failed(response)) => return *response,
        },
        ("approve", Some(id)) => {
            let auth_time = match auth.session.get::<i64>(AUTH_TIME_KEY).await {
                Ok(t) => t.unwrap_or_else(|| OffsetDateTime::now_utc().unix_timestamp()),
                Err(e) => return internal_error("Reading the session failed", &e),
            };
            let approval = BackchannelApproval {
                subject,
                auth_time,
                acr: None,
                amr: vec!["pwd".to_owned()],
            };
            match app.lockspire.approve_backchannel(id, &approval).await {
                Ok(true) => {
                    "Approved. The client is told as its mode says: when it next polls, by a ping, or by its tokens pushed to it."
                }
                Ok(false) => "That request was already decided or has expired.",
                Err(e) => return internal_error("Approving failed", &e),
            }
        }
        ("deny", Some(id)) => match app.lockspire.deny_backchannel(id, &subject).await {
            Ok(true) => "Denied. The client is told access_denied.",
            Ok(false) => "That request was already decided or has expired.",
            Err(e) => return internal_error("Denying failed", &e),
        },
        _ => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Unknown action",
                "The form asked for something this page does not do.",
            );
        }
    };
    // Post, then redirect: reloading the page shows it again without acting again.
    if let Err(e) = auth.session.insert(NOTICE_KEY, notice).await {
        return internal_error("Saving the session failed", &e);
    }
    see_other("/demo/ciba")
}

/// A step of the bank that failed: the page to show (boxed: a response is large).
struct Failed(Box<Response>);

impl Failed {
    /// The demo itself failed: logged in full, shown in general terms.
    fn internal(context: &str, error: &dyn std::fmt::Display) -> Self {
        Self(Box::new(internal_error(context, error)))
    }
}

/// A `private_key_jwt` client assertion of the bank (RFC 7523 §3), for `audience`.
fn assertion(app: &AppState) -> Result<String, Failed> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({
        "iss": DEMO_BANK_CLIENT_ID,
        "sub": DEMO_BANK_CLIENT_ID,
        "aud": &*app.issuer,
        "iat": now,
        "exp": now + 60,
        "jti": random::token::<16>().map_err(|e| Failed::internal("No randomness", &e))?,
    });
    app.client_key
        .sign_assertion(&claims)
        .map_err(|e| Failed::internal("Signing the client assertion failed", &e))
}

/// A POST to the provider as the bank; its status and JSON answer.
async fn call(
    app: &AppState,
    path: &str,
    params: &[(&str, &str)],
) -> Result<(StatusCode, Value), Failed> {
    let assertion = assertion(app)?;
    let mut form: Vec<(&str, &str)> = params.to_vec();
    form.push((
        "client_assertion_type",
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    ));
    form.push(("client_assertion", &assertion));
    let response = app
        .http
        .post(format!("{}{path}", app.issuer))
        .form(&form)
        .send()
        .await
        .map_err(|e| Failed::internal("Calling the provider failed", &e))?;
    let status = response.status();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, body))
}

/// The bank asks for `username` to be signed in on their device (CIBA Core §7.1).
async fn start(app: &AppState, auth: &AuthSession, username: &str) -> Result<(), Failed> {
    let digits = random::bytes::<2>().map_err(|e| Failed::internal("No randomness", &e))?;
    let binding_message = format!("BANK-{:04}", u16::from_be_bytes(digits) % 10_000);
    let (status, body) = call(
        app,
        "/bc-authorize",
        &[
            ("scope", "openid profile email"),
            ("login_hint", username),
            ("binding_message", &binding_message),
        ],
    )
    .await?;
    let Some(auth_req_id) = body.get("auth_req_id").and_then(Value::as_str) else {
        return Err(Failed(Box::new(error_page(
            StatusCode::BAD_GATEWAY,
            "The backchannel authentication request failed",
            &format!("HTTP {status}: {body}"),
        ))));
    };
    let mut shown = body.clone();
    shown["auth_req_id"] = Value::String(truncate(auth_req_id));
    let bank = Bank {
        auth_req_id: auth_req_id.to_owned(),
        binding_message,
        acknowledgement: pretty(&shown),
        last_poll: None,
    };
    auth.session
        .insert(BANK_KEY, &bank)
        .await
        .map_err(|e| Failed::internal("Saving the session failed", &e))
}

/// The bank polls the token endpoint once (CIBA Core §10.1).
async fn poll(app: &AppState, auth: &AuthSession) -> Result<(), Failed> {
    let mut bank = match auth.session.get::<Bank>(BANK_KEY).await {
        Ok(Some(bank)) => bank,
        Ok(None) => return Ok(()),
        Err(e) => return Err(Failed::internal("Reading the session failed", &e)),
    };
    let (status, body) = call(
        app,
        "/token",
        &[
            ("grant_type", "urn:openid:params:grant-type:ciba"),
            ("auth_req_id", &bank.auth_req_id),
        ],
    )
    .await?;
    bank.last_poll = Some((status.as_u16(), redacted_tokens(body)));
    auth.session
        .insert(BANK_KEY, &bank)
        .await
        .map_err(|e| Failed::internal("Saving the session failed", &e))
}
