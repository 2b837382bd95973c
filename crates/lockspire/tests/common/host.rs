//! The test host: its users, the resolver that reads its session cookie, and its sign-in
//! routes.

use super::*;

/// A user of the test host.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub name: String,
    pub email: String,
}

/// A session cookie for this subject makes the test host's resolver panic.
pub const PANICKING_SUBJECT: &str = "host-bug";

/// The test host's accounts, shared with the resolver so tests can delete them.
pub type Users = Arc<Mutex<HashMap<String, TestUser>>>;

/// The host seam as a test host implements it: the session is a cookie `test_session` holding
/// `<subject>.<auth_time>`, set by the host's `/test-signin` route.
pub struct TestResolver {
    pub(crate) users: Users,
}

fn session_cookie(parts: &http::request::Parts) -> Option<(String, i64)> {
    parts
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|p| p.trim().strip_prefix("test_session="))
        .filter_map(|v| v.split_once('.'))
        .filter_map(|(s, t)| Some((s.to_owned(), t.parse().ok()?)))
        .next()
}

impl TestResolver {
    pub fn new(users: Users) -> Self {
        Self { users }
    }
}

impl AccountResolver for TestResolver {
    type Account = (String, TestUser);

    async fn resolve_current_account(
        &self,
        req: &mut http::request::Parts,
        _ctx: &Context,
    ) -> Result<Resolution<Self::Account>, HostError> {
        let Some((subject, auth_time)) = session_cookie(req) else {
            return Ok(Resolution::NotSignedIn);
        };
        // A host with a bug, for the tests that a panic in host code answers 500.
        assert_ne!(subject, PANICKING_SUBJECT, "the host's resolver panicked");
        let user = self
            .users
            .lock()
            .map_err(|_| HostError::new("poisoned"))?
            .get(&subject)
            .cloned();
        Ok(match user {
            Some(user) => Resolution::SignedIn(SignedIn {
                subject: Subject::new(subject.clone())?,
                account: (subject, user),
                auth_time,
                acr: None,
                amr: vec!["pwd".into()],
            }),
            None => Resolution::NotSignedIn,
        })
    }

    async fn resolve_account(
        &self,
        subject: &Subject,
        _ctx: &Context,
    ) -> Result<Option<Self::Account>, HostError> {
        let users = self.users.lock().map_err(|_| HostError::new("poisoned"))?;
        Ok(users
            .get(subject.as_str())
            .cloned()
            .map(|u| (subject.as_str().to_owned(), u)))
    }

    async fn build_claims(
        &self,
        account: &Self::Account,
        _ctx: &Context,
    ) -> Result<Claims, HostError> {
        let (subject, user) = account;
        let mut claims = Claims::default();
        claims.id_token.insert("email".into(), json!(user.email));
        claims.id_token.insert("email_verified".into(), json!(true));
        // A host value for a protocol claim must never reach a token.
        claims
            .id_token
            .insert("iss".into(), json!("https://evil.example"));
        claims.userinfo.insert("name".into(), json!(user.name));
        claims.userinfo.insert("email".into(), json!(user.email));
        claims.userinfo.insert("email_verified".into(), json!(true));
        claims
            .userinfo
            .insert("preferred_username".into(), json!(subject));
        claims.userinfo.insert("sub".into(), json!("someone-else"));
        Ok(claims)
    }

    fn redirect_for_login(&self, _req: &http::request::Parts, ctx: &Context) -> InteractionResult {
        let return_to = ctx.return_to.clone().unwrap_or_default();
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("return_to", &return_to)
            .append_pair("force", if ctx.force_login { "1" } else { "0" })
            // What else the host is told, for the tests that check it.
            .append_pair("acr", &ctx.acr_values.join(" "))
            .append_pair("ui_locales", &ctx.ui_locales.join(" "))
            .append_pair("claims_locales", &ctx.claims_locales.join(" "))
            .append_pair("create", if ctx.create_account { "1" } else { "0" })
            .append_pair("select", if ctx.select_account { "1" } else { "0" })
            .finish();
        InteractionResult::Redirect(format!("/test-login?{q}"))
    }

    /// The session lives in the `test_session` cookie: signing out clears it.
    async fn sign_out(
        &self,
        _req: &mut http::request::Parts,
        _ctx: &Context,
    ) -> Result<http::HeaderMap, HostError> {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::SET_COOKIE,
            http::HeaderValue::from_static("test_session=; Path=/; Max-Age=0"),
        );
        Ok(headers)
    }
}

/// The user code of every test user.
pub const TEST_USER_CODE: &str = "4321";

/// The test host's side of backchannel authentication: `login_hint` is a username;
/// `login_hint_token` is `valid:<username>` or `expired`; every user's code is
/// [`TEST_USER_CODE`]; every request it is told about is kept for the test to answer, unless
/// `unreachable` is set, when reaching the user fails.
#[derive(Clone)]
pub struct TestBackchannel {
    pub users: Users,
    pub notified: Arc<Mutex<Vec<lockspire::BackchannelRequest>>>,
    pub unreachable: Arc<std::sync::atomic::AtomicBool>,
}

impl TestBackchannel {
    pub fn new(users: Users) -> Self {
        Self {
            users,
            notified: Arc::default(),
            unreachable: Arc::default(),
        }
    }

    /// The requests the host was asked to show its users, oldest first.
    pub fn requests(&self) -> Vec<lockspire::BackchannelRequest> {
        self.notified.lock().map(|n| n.clone()).unwrap_or_default()
    }

    fn known(&self, name: &str) -> lockspire::HintResolution {
        match self.users.lock().ok().filter(|u| u.contains_key(name)) {
            Some(_) => match Subject::new(name) {
                Ok(s) => lockspire::HintResolution::User(s),
                Err(_) => lockspire::HintResolution::Unknown,
            },
            None => lockspire::HintResolution::Unknown,
        }
    }
}

impl lockspire::BackchannelAuthenticator for TestBackchannel {
    async fn resolve_hint(
        &self,
        hint: lockspire::LoginHint<'_>,
        _ctx: &Context,
    ) -> Result<lockspire::HintResolution, HostError> {
        Ok(match hint {
            lockspire::LoginHint::LoginHint(name) => self.known(name),
            lockspire::LoginHint::LoginHintToken("expired") => lockspire::HintResolution::Expired,
            lockspire::LoginHint::LoginHintToken(token) => match token.strip_prefix("valid:") {
                Some(name) => self.known(name),
                None => lockspire::HintResolution::Unknown,
            },
            lockspire::LoginHint::IdTokenHint(subject) => self.known(subject.as_str()),
        })
    }

    const USER_CODES: bool = true;

    async fn verify_user_code(
        &self,
        _subject: &Subject,
        code: &str,
        _ctx: &Context,
    ) -> Result<bool, HostError> {
        Ok(code == TEST_USER_CODE)
    }

    async fn notify(&self, request: &lockspire::BackchannelRequest) -> Result<(), HostError> {
        if self.unreachable.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(HostError::new("the user's device is unreachable"));
        }
        self.notified
            .lock()
            .map_err(|_| HostError::new("poisoned"))?
            .push(request.clone());
        Ok(())
    }
}

#[derive(Clone)]
pub(crate) struct HostState {
    pub(crate) clock: ManualClock,
}

/// The host's sign-in: sets the session cookie and returns to Lockspire.
pub(crate) async fn test_signin(
    State(s): State<HostState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let user = q.get("user").cloned().unwrap_or_default();
    let return_to = q.get("return_to").cloned().unwrap_or_else(|| "/".into());
    let cookie = format!("test_session={user}.{}; Path=/; HttpOnly", s.clock.now());
    (
        StatusCode::SEE_OTHER,
        [(LOCATION, return_to), (http::header::SET_COOKIE, cookie)],
    )
        .into_response()
}

/// The host's own sign-out, which Lockspire does not see.
pub(crate) async fn test_signout() -> Response {
    (
        StatusCode::OK,
        [(http::header::SET_COOKIE, "test_session=; Path=/; Max-Age=0")],
    )
        .into_response()
}

pub(crate) async fn test_login_page() -> &'static str {
    "login page"
}
