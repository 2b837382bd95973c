//! The host seam: how Lockspire learns who is signed in, without owning users,
//! passwords, sessions or login UI.
//!
//! The host implements [`AccountResolver`]. Lockspire calls it while an authorization is in
//! progress (is someone signed in? where do they sign in?) and when it needs claims (ID token,
//! userinfo). How the user proved who they are — password, passkey, social or enterprise login —
//! is invisible to Lockspire.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::request::Parts;
use serde_json::{Map, Value};

use crate::model::authorization_details::{AuthorizationDetail, AuthorizationDetails};

/// The subject (`sub`, OIDC Core §2): a stable, never reassigned identifier of the end user
/// within this issuer. Use an internal id, never an email address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Subject(String);

impl Subject {
    /// A subject; OIDC Core §2 limits it to 255 ASCII characters.
    pub fn new(id: impl Into<String>) -> Result<Self, HostError> {
        let id = id.into();
        if id.is_empty() || id.len() > 255 || !id.is_ascii() {
            return Err(HostError::new("subject must be 1 to 255 ASCII characters"));
        }
        Ok(Self(id))
    }

    /// The identifier.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A signed-in user as the host reports them.
#[derive(Debug)]
pub struct SignedIn<A> {
    /// The host's account value, handed back to [`AccountResolver::build_claims`].
    pub account: A,
    /// The stable subject identifier.
    pub subject: Subject,
    /// When the user last authenticated (seconds since the epoch), for `max_age`, `prompt=login`
    /// and the `auth_time` claim (OIDC Core §2, §3.1.2.1).
    pub auth_time: i64,
    /// Authentication Context Class Reference the host achieved, if it tracks one.
    pub acr: Option<String>,
    /// Authentication Methods References (RFC 8176), if the host tracks them.
    pub amr: Vec<String>,
}

/// The answer to "who is signed in in this browser?".
#[derive(Debug)]
pub enum Resolution<A> {
    /// A user is signed in.
    SignedIn(SignedIn<A>),
    /// Nobody is signed in; Lockspire will call [`AccountResolver::redirect_for_login`].
    NotSignedIn,
}

/// Claims the host supplies for a subject. Lockspire strips protocol-owned claims
/// (`iss`, `sub`, `aud`, `exp`, `iat`, `nonce`, `at_hash`, …) and filters the rest by the granted
/// scopes and the `claims` request parameter (OIDC Core §5.4, §5.5).
#[derive(Clone, Debug, Default)]
pub struct Claims {
    /// Claims that may appear in the ID token.
    pub id_token: Map<String, Value>,
    /// Claims served at `/userinfo`.
    pub userinfo: Map<String, Value>,
}

/// What the authorization in progress is about; passed to every host call.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The issuer identifier.
    pub issuer: String,
    /// The requesting client.
    pub client_id: String,
    /// The client's display name, if registered.
    pub client_name: Option<String>,
    /// Requested (or granted) scopes.
    pub scopes: Vec<String>,
    /// The pending interaction, when there is one. The login page must carry it back.
    pub interaction_id: Option<String>,
    /// Where the browser must return after signing in to resume the authorization.
    pub return_to: Option<String>,
    /// True when the user must authenticate again (`prompt=login`, `max_age` exceeded).
    pub force_login: bool,
    /// True when the client asked the user to choose an account (`prompt=select_account`).
    pub select_account: bool,
    /// True when the client asked for the account-creation page (`prompt=create`, OpenID
    /// Connect Initiating User Registration §3). A host without one shows its sign-in page.
    pub create_account: bool,
    /// `login_hint` from the request (OIDC Core §3.1.2.1), or the `logout_hint` of a logout
    /// request (OpenID Connect RP-Initiated Logout 1.0 §2); untrusted.
    pub login_hint: Option<String>,
    /// Requested authentication context classes, in order of preference: `acr_values`, then
    /// the values the `claims` request names for `acr` (OIDC Core §3.1.2.1, §5.5.1.1). Report
    /// the one achieved in [`SignedIn::acr`].
    pub acr_values: Vec<String>,
    /// Preferred UI languages (`ui_locales`, OIDC Core §3.1.2.1).
    pub ui_locales: Vec<String>,
    /// Preferred languages of the claims returned (`claims_locales`, OIDC Core §5.2).
    pub claims_locales: Vec<String>,
}

/// Where to send the browser.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InteractionResult {
    /// Redirect (303) to this URL, usually the host's login page.
    Redirect(String),
}

/// A failure inside host code. Logged; the client sees `server_error`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HostError(String);

impl HostError {
    /// A host failure with a reason for the logs.
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

/// The one trait a host implements.
///
/// `Parts` is the incoming request, so the implementation can run the host's own extractors
/// (for example axum-login's `AuthSession`) to read its session.
pub trait AccountResolver: Send + Sync + 'static {
    /// The host's account type.
    type Account: Send + Sync + 'static;

    /// Who is signed in in the browser making this request.
    fn resolve_current_account(
        &self,
        req: &mut Parts,
        ctx: &Context,
    ) -> impl Future<Output = Result<Resolution<Self::Account>, HostError>> + Send;

    /// Looks up an account by subject, for token-time and userinfo claims. `None` when the
    /// account no longer exists: its tokens then stop yielding claims.
    fn resolve_account(
        &self,
        subject: &Subject,
        ctx: &Context,
    ) -> impl Future<Output = Result<Option<Self::Account>, HostError>> + Send;

    /// The claims of an account. `ctx.scopes` holds the granted scopes.
    fn build_claims(
        &self,
        account: &Self::Account,
        ctx: &Context,
    ) -> impl Future<Output = Result<Claims, HostError>> + Send;

    /// Where to send the browser to sign in. The host must preserve `ctx.return_to` and
    /// `ctx.interaction_id` and send the browser to `return_to` once signed in; when
    /// `ctx.force_login` is set it must authenticate the user again.
    fn redirect_for_login(&self, req: &Parts, ctx: &Context) -> InteractionResult;

    /// Ends the host's session in the browser making this request: RP-initiated logout (OpenID
    /// Connect RP-Initiated Logout 1.0 §2) signs the user out of the host, not only of its
    /// clients. With axum-login, call `AuthSession::logout` (extracted from `req`, as in
    /// [`Self::resolve_current_account`]); the host's session layer then writes the change on
    /// the way out. A host whose session lives in a cookie returns the headers that clear it
    /// (`Set-Cookie`), which Lockspire adds to its response.
    ///
    /// Lockspire calls it once the user confirmed, or the client proved the session with an
    /// `id_token_hint`, and after it has revoked the session's tokens and queued the clients'
    /// back-channel logout calls. Afterwards [`Self::resolve_current_account`] must answer
    /// [`Resolution::NotSignedIn`] for this browser, so that a `prompt=none` request gets
    /// `login_required`.
    fn sign_out(
        &self,
        req: &mut Parts,
        ctx: &Context,
    ) -> impl Future<Output = Result<http::HeaderMap, HostError>> + Send;
}

/// The resolver of an [`crate::Operator`] built without a host: operator tools never run
/// authorizations, so every call is an error.
pub(crate) struct NoHost;

impl DynResolver for NoHost {
    fn current<'a>(
        &'a self,
        _: &'a mut Parts,
        _: &'a Context,
    ) -> BoxFuture<'a, Result<Option<Session>, HostError>> {
        Box::pin(async {
            Err(HostError::new(
                "no account resolver: this is an operator-only instance",
            ))
        })
    }

    fn claims<'a>(
        &'a self,
        _: &'a Subject,
        _: &'a Context,
    ) -> BoxFuture<'a, Result<Option<Claims>, HostError>> {
        Box::pin(async {
            Err(HostError::new(
                "no account resolver: this is an operator-only instance",
            ))
        })
    }

    fn login(&self, _: &Parts, ctx: &Context) -> InteractionResult {
        InteractionResult::Redirect(ctx.issuer.clone())
    }

    fn sign_out<'a>(
        &'a self,
        _: &'a mut Parts,
        _: &'a Context,
    ) -> BoxFuture<'a, Result<http::HeaderMap, HostError>> {
        Box::pin(async {
            Err(HostError::new(
                "no account resolver: this is an operator-only instance",
            ))
        })
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a consent page shows, and what its form must post back to `action`: the fields
/// `interaction` and `csrf` unchanged, and `decision` = `allow` or `deny`. Its `Debug` leaves
/// out those two values: they are what lets a browser answer the consent.
#[derive(Clone)]
pub struct ConsentPage {
    /// Where the form posts (`POST`, `application/x-www-form-urlencoded`).
    pub action: String,
    /// Hidden field `interaction`.
    pub interaction_id: String,
    /// Hidden field `csrf`.
    pub csrf: String,
    /// The requesting client.
    pub client_id: String,
    /// Its registered name, or its id.
    pub client_name: String,
    /// Its home page, if registered.
    pub client_uri: Option<String>,
    /// Its logo, if registered.
    pub logo_uri: Option<String>,
    /// The scopes asked for, with a plain-language description of the standard ones.
    pub scopes: Vec<ScopeRequest>,
    /// The resources (RFC 8707) the tokens will be for.
    pub resources: Vec<String>,
    /// Standard claims (OIDC Core §5.1) the client asks for by name through the `claims`
    /// parameter (§5.5), beyond what the scopes release. The page must show them: approving
    /// the page releases them.
    pub claims: Vec<String>,
    /// The user's preferred languages (`ui_locales`, OIDC Core §3.1.2.1), for a renderer that
    /// translates.
    pub ui_locales: Vec<String>,
    /// What the `authorization_details` of the request grant (RFC 9396 §2), one line per
    /// object as its type's [`AuthorizationDetailsType::describe`] says it. The page must show
    /// them: approving the page grants them.
    pub authorization_details: Vec<String>,
    /// Who is signed in, as the host's userinfo claims name them (`name`, else
    /// `preferred_username`, else `email`), so the user can tell which account approves.
    pub signed_in_as: Option<String>,
}

impl std::fmt::Debug for ConsentPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsentPage")
            .field("action", &self.action)
            .field("interaction_id", &"[redacted]")
            .field("csrf", &"[redacted]")
            .field("client_id", &self.client_id)
            .field("client_name", &self.client_name)
            .field("client_uri", &self.client_uri)
            .field("logo_uri", &self.logo_uri)
            .field("scopes", &self.scopes)
            .field("resources", &self.resources)
            .field("claims", &self.claims)
            .field("authorization_details", &self.authorization_details)
            .field("signed_in_as", &self.signed_in_as)
            .finish()
    }
}

/// One requested scope on the consent page.
#[derive(Clone, Debug)]
pub struct ScopeRequest {
    /// The scope value.
    pub name: String,
    /// What it grants, for the standard scopes; empty for the host's own.
    pub description: String,
}

/// Renders the consent page as the host wants it to look. The HTML must contain a form that
/// posts the fields listed on [`ConsentPage`], and must show what approving it grants: the
/// scopes, the resources, the claims ([`ConsentPage::claims`], released by the approval,
/// OIDC Core §5.5) and the authorization details ([`ConsentPage::authorization_details`], RFC
/// 9396). Lockspire adds the security headers (no framing, no caching).
pub trait ConsentRenderer: Send + Sync + 'static {
    /// The page's HTML.
    fn render(&self, page: &ConsentPage) -> Result<String, HostError>;
}

impl<F> ConsentRenderer for F
where
    F: Fn(&ConsentPage) -> Result<String, HostError> + Send + Sync + 'static,
{
    fn render(&self, page: &ConsentPage) -> Result<String, HostError> {
        self(page)
    }
}

/// How a backchannel authentication request names its user (CIBA Core §7.1): exactly one hint.
#[derive(Debug)]
pub enum LoginHint<'a> {
    /// `login_hint`: an identifier of the host's choosing (an email address, a phone number, a
    /// username), untrusted.
    LoginHint(&'a str),
    /// `login_hint_token`: a token of the host's format naming the user, untrusted.
    LoginHintToken(&'a str),
    /// `id_token_hint`: an ID token this server issued to the client (verified, expired
    /// allowed), naming this subject.
    IdTokenHint(&'a Subject),
}

/// Who a hint names.
#[derive(Debug)]
pub enum HintResolution {
    /// This user.
    User(Subject),
    /// Nobody the host knows: the client gets `unknown_user_id`.
    Unknown,
    /// The `login_hint_token` has expired: the client gets `expired_login_hint_token`.
    Expired,
}

/// A backchannel authentication request waiting for its user (CIBA Core §7): what the host
/// shows on the user's authentication device before they approve or deny it.
#[derive(Clone, Debug)]
pub struct BackchannelRequest {
    /// Its id, for [`crate::Lockspire::approve_backchannel`] and
    /// [`crate::Lockspire::deny_backchannel`]. Not the `auth_req_id` the client holds.
    pub id: String,
    /// The user it is for.
    pub subject: Subject,
    /// The requesting client.
    pub client_id: String,
    /// Its registered name, or its id.
    pub client_name: String,
    /// The scopes asked for.
    pub scopes: Vec<String>,
    /// `binding_message`: the text the client also shows on its own device, so the user can
    /// tell this request is the one they started. Show it.
    pub binding_message: Option<String>,
    /// `acr_values`: the authentication the client asks for, in order of preference.
    pub acr_values: Vec<String>,
    /// When it expires.
    pub expires_at: i64,
}

/// How the user approved a backchannel request on their authentication device, for the grant
/// and the ID token (`auth_time`, `acr`, `amr`).
#[derive(Clone, Debug)]
pub struct BackchannelApproval {
    /// The user who approved: the request's user.
    pub subject: Subject,
    /// When they authenticated to approve it (seconds since the epoch).
    pub auth_time: i64,
    /// The authentication context class achieved, if the host tracks one.
    pub acr: Option<String>,
    /// Authentication methods (RFC 8176), if the host tracks them.
    pub amr: Vec<String>,
}

/// The host's part of backchannel authentication (CIBA Core): finding the user a client names
/// and reaching their authentication device. Register it with
/// [`crate::Builder::backchannel_authenticator`]; without one the endpoint is not offered.
/// When the user has decided, call [`crate::Lockspire::approve_backchannel`] or
/// [`crate::Lockspire::deny_backchannel`].
pub trait BackchannelAuthenticator: Send + Sync + 'static {
    /// The user `hint` names. `ctx` holds the client and the scopes.
    fn resolve_hint(
        &self,
        hint: LoginHint<'_>,
        ctx: &Context,
    ) -> impl Future<Output = Result<HintResolution, HostError>> + Send;

    /// A request is waiting for `request.subject`: reach their authentication device (a push
    /// notification, a message). It returns once the user has been reached, not decided; an
    /// error answers the client `server_error` and the request is dropped. The user's answer
    /// comes later, through [`crate::Lockspire::approve_backchannel`]: approving from inside
    /// this call, then failing it, would leave the client told of a failure that was approved.
    fn notify(
        &self,
        request: &BackchannelRequest,
    ) -> impl Future<Output = Result<(), HostError>> + Send;

    /// True when the host's users have a backchannel user code (CIBA Core §7.1 `user_code`: a
    /// secret the user knows, such as a PIN, that a client sends with its request so that not
    /// anyone knowing a user's identifier can send them requests) and
    /// [`Self::verify_user_code`] checks it. Discovery then says so
    /// (`backchannel_user_code_parameter_supported`), and clients may register
    /// `backchannel_user_code_parameter`. Default: false.
    const USER_CODES: bool = false;

    /// Whether `code` is `subject`'s user code. Lockspire limits how many codes are checked
    /// per user. Called only when [`Self::USER_CODES`] is true.
    fn verify_user_code(
        &self,
        _subject: &Subject,
        _code: &str,
        _ctx: &Context,
    ) -> impl Future<Output = Result<bool, HostError>> + Send {
        async { Ok(false) }
    }
}

/// Object-safe view of a [`BackchannelAuthenticator`].
pub(crate) trait DynBackchannel: Send + Sync + 'static {
    fn resolve<'a>(
        &'a self,
        hint: LoginHint<'a>,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<HintResolution, HostError>>;
    fn notify<'a>(
        &'a self,
        request: &'a BackchannelRequest,
    ) -> BoxFuture<'a, Result<(), HostError>>;
    fn user_codes(&self) -> bool;
    fn verify_user_code<'a>(
        &'a self,
        subject: &'a Subject,
        code: &'a str,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<bool, HostError>>;
}

impl<B: BackchannelAuthenticator> DynBackchannel for B {
    fn resolve<'a>(
        &'a self,
        hint: LoginHint<'a>,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<HintResolution, HostError>> {
        Box::pin(self.resolve_hint(hint, ctx))
    }

    fn notify<'a>(
        &'a self,
        request: &'a BackchannelRequest,
    ) -> BoxFuture<'a, Result<(), HostError>> {
        Box::pin(BackchannelAuthenticator::notify(self, request))
    }

    fn user_codes(&self) -> bool {
        B::USER_CODES
    }

    fn verify_user_code<'a>(
        &'a self,
        subject: &'a Subject,
        code: &'a str,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<bool, HostError>> {
        Box::pin(BackchannelAuthenticator::verify_user_code(
            self, subject, code, ctx,
        ))
    }
}

/// The device verification page (RFC 8628 §3.3), in the state the user has reached. The user
/// is signed in (through [`AccountResolver`]) before any state is shown.
#[derive(Clone)]
pub enum DevicePage {
    /// Asks for the code the device shows. The form sends `user_code` with `GET` to `action`;
    /// `error` says why the last code was not accepted.
    EnterCode {
        /// Where the form goes (`GET`).
        action: String,
        /// Why the code just entered was not accepted, if one was.
        error: Option<String>,
    },
    /// Shows what the device asks for and the code, to compare with the device's screen
    /// (RFC 8628 §5.4), with a form that posts the fields listed on [`DeviceConfirmation`].
    Confirm(DeviceConfirmation),
    /// The user decided; the device gets its answer when it next polls.
    Finished {
        /// True when the user approved.
        approved: bool,
        /// The client the user decided for.
        client_name: String,
    },
    /// This browser or network entered too many codes; the user must wait (RFC 8628 §5.1).
    TooManyAttempts,
}

impl std::fmt::Debug for DevicePage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::EnterCode { action, error } => f
                .debug_struct("EnterCode")
                .field("action", action)
                .field("error", error)
                .finish(),
            Self::Confirm(c) => f.debug_tuple("Confirm").field(c).finish(),
            Self::Finished {
                approved,
                client_name,
            } => f
                .debug_struct("Finished")
                .field("approved", approved)
                .field("client_name", client_name)
                .finish(),
            Self::TooManyAttempts => f.write_str("TooManyAttempts"),
        }
    }
}

/// What the confirmation step of the device verification page shows, and what its form must
/// post back to `action`: the fields `user_code` and `csrf` unchanged, and `decision` = `allow`
/// or `deny`. Its `Debug` leaves out the CSRF token.
#[derive(Clone)]
pub struct DeviceConfirmation {
    /// Where the form posts (`POST`, `application/x-www-form-urlencoded`).
    pub action: String,
    /// The user code, as the device shows it (`XXXX-XXXX`); also the hidden field `user_code`.
    pub user_code: String,
    /// Hidden field `csrf`.
    pub csrf: String,
    /// The requesting client.
    pub client_id: String,
    /// Its registered name, or its id.
    pub client_name: String,
    /// Its home page, if registered.
    pub client_uri: Option<String>,
    /// Its logo, if registered.
    pub logo_uri: Option<String>,
    /// The scopes asked for, with a plain-language description of the standard ones.
    pub scopes: Vec<ScopeRequest>,
    /// The resources (RFC 8707) the tokens will be for.
    pub resources: Vec<String>,
    /// Who is signed in, as the host's userinfo claims name them (`name`, else
    /// `preferred_username`, else `email`), so the user can tell which account approves.
    pub signed_in_as: Option<String>,
}

impl std::fmt::Debug for DeviceConfirmation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceConfirmation")
            .field("action", &self.action)
            .field("user_code", &self.user_code)
            .field("csrf", &"[redacted]")
            .field("client_id", &self.client_id)
            .field("client_name", &self.client_name)
            .field("scopes", &self.scopes)
            .field("resources", &self.resources)
            .field("signed_in_as", &self.signed_in_as)
            .finish()
    }
}

/// Renders the device verification page as the host wants it to look, registered with
/// [`crate::Builder::device_page`]. The confirmation must show the user code beside what
/// approving grants, so the user can check it against the device (RFC 8628 §5.4). Lockspire
/// adds the security headers (no framing, no caching).
pub trait DeviceRenderer: Send + Sync + 'static {
    /// The page's HTML.
    fn render(&self, page: &DevicePage) -> Result<String, HostError>;
}

impl<F> DeviceRenderer for F
where
    F: Fn(&DevicePage) -> Result<String, HostError> + Send + Sync + 'static,
{
    fn render(&self, page: &DevicePage) -> Result<String, HostError> {
        self(page)
    }
}

/// An `authorization_details` type the host understands (RFC 9396 §2), registered with
/// [`crate::Builder::authorization_details_type`]. A request naming a type no host registered is
/// refused with `invalid_authorization_details` (RFC 9396 §5). Lockspire checks the common fields
/// (§2.2) before calling [`Self::validate`].
///
/// The user approves what [`Self::describe`] says, and the client is granted the whole object:
/// refuse in `validate` every field your description does not put into words, and compare every
/// field in [`Self::covers`].
///
/// ```
/// use lockspire::{AuthorizationDetail, AuthorizationDetailsType};
///
/// /// `{"type": "account_information", "actions": [...]}`, nothing else.
/// struct AccountInformation;
///
/// const ACTIONS: [(&str, &str); 2] = [
///     ("list_accounts", "see the list of your accounts"),
///     ("read_balances", "read your account balances"),
/// ];
///
/// fn actions(detail: &AuthorizationDetail) -> Vec<&str> {
///     let listed = detail.get("actions").and_then(|a| a.as_array());
///     listed.map(|a| a.iter().filter_map(|x| x.as_str()).collect()).unwrap_or_default()
/// }
///
/// impl AuthorizationDetailsType for AccountInformation {
///     fn validate(&self, detail: &AuthorizationDetail) -> Result<(), String> {
///         if detail.as_json().keys().any(|k| k != "type" && k != "actions") {
///             return Err("account_information takes only actions".into());
///         }
///         let asked = actions(detail);
///         let known = |a: &&str| ACTIONS.iter().any(|(name, _)| name == a);
///         if asked.is_empty() || !asked.iter().all(known) {
///             return Err("actions must be list_accounts and/or read_balances".into());
///         }
///         Ok(())
///     }
///
///     fn describe(&self, detail: &AuthorizationDetail) -> String {
///         let asked = actions(detail);
///         let words: Vec<&str> = ACTIONS.iter()
///             .filter(|(name, _)| asked.contains(name))
///             .map(|(_, words)| *words)
///             .collect();
///         format!("Account information: {}", words.join(" and "))
///     }
///
///     fn covers(&self, approved: &AuthorizationDetail, requested: &AuthorizationDetail) -> bool {
///         let had = actions(approved);
///         actions(requested).iter().all(|a| had.contains(a))
///     }
/// }
///
/// // On the builder:
/// // Lockspire::builder().authorization_details_type("account_information", AccountInformation)
/// ```
pub trait AuthorizationDetailsType: Send + Sync + 'static {
    /// Checks one object of this type. The error text is sent to the client as the
    /// `error_description` of `invalid_authorization_details`: say what is wrong, reveal
    /// nothing; `"` and `\` are outside the characters RFC 6749 §4.1.2.1 allows there and are
    /// replaced.
    fn validate(&self, detail: &AuthorizationDetail) -> Result<(), String>;

    /// One line for the consent page saying what approving this object grants; the user's
    /// approval covers exactly what the lines say.
    fn describe(&self, detail: &AuthorizationDetail) -> String;

    /// Whether an object the user approved earlier covers a requested one, so the remembered
    /// consent can be reused without asking again. By default only an identical object does.
    fn covers(&self, approved: &AuthorizationDetail, requested: &AuthorizationDetail) -> bool {
        approved == requested
    }
}

/// The registered [`AuthorizationDetailsType`]s, by type name.
#[derive(Clone, Default)]
pub(crate) struct DetailTypes(BTreeMap<String, Arc<dyn AuthorizationDetailsType>>);

impl std::fmt::Debug for DetailTypes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl DetailTypes {
    pub(crate) fn insert(&mut self, name: String, handler: Arc<dyn AuthorizationDetailsType>) {
        self.0.insert(name, handler);
    }

    pub(crate) fn get(&self, name: &str) -> Option<&dyn AuthorizationDetailsType> {
        self.0.get(name).map(|h| &**h)
    }

    /// The type names, for discovery (`authorization_details_types_supported`).
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// True when `approved` covers every object of `requested`, each through its type's rule.
    pub(crate) fn covered(
        &self,
        approved: &AuthorizationDetails,
        requested: &AuthorizationDetails,
    ) -> bool {
        requested.iter().all(|wanted| {
            let Some(handler) = self.get(wanted.kind()) else {
                return false;
            };
            approved
                .iter()
                .any(|had| had.kind() == wanted.kind() && handler.covers(had, wanted))
        })
    }
}

/// A signed-in session with the account erased: what protocol code needs.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub(crate) subject: Subject,
    pub(crate) auth_time: i64,
    pub(crate) acr: Option<String>,
    pub(crate) amr: Vec<String>,
}

/// Object-safe view of an [`AccountResolver`], so `Lockspire` need not be generic over it.
pub(crate) trait DynResolver: Send + Sync + 'static {
    fn current<'a>(
        &'a self,
        req: &'a mut Parts,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Option<Session>, HostError>>;
    fn claims<'a>(
        &'a self,
        subject: &'a Subject,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Option<Claims>, HostError>>;
    fn login(&self, req: &Parts, ctx: &Context) -> InteractionResult;
    fn sign_out<'a>(
        &'a self,
        req: &'a mut Parts,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<http::HeaderMap, HostError>>;
}

impl<R: AccountResolver> DynResolver for R {
    fn current<'a>(
        &'a self,
        req: &'a mut Parts,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Option<Session>, HostError>> {
        Box::pin(async move {
            Ok(match self.resolve_current_account(req, ctx).await? {
                Resolution::SignedIn(s) => Some(Session {
                    subject: s.subject,
                    auth_time: s.auth_time,
                    acr: s.acr,
                    amr: s.amr,
                }),
                Resolution::NotSignedIn => None,
            })
        })
    }

    fn claims<'a>(
        &'a self,
        subject: &'a Subject,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<Option<Claims>, HostError>> {
        Box::pin(async move {
            match self.resolve_account(subject, ctx).await? {
                Some(account) => Ok(Some(self.build_claims(&account, ctx).await?)),
                None => Ok(None),
            }
        })
    }

    fn login(&self, req: &Parts, ctx: &Context) -> InteractionResult {
        self.redirect_for_login(req, ctx)
    }

    fn sign_out<'a>(
        &'a self,
        req: &'a mut Parts,
        ctx: &'a Context,
    ) -> BoxFuture<'a, Result<http::HeaderMap, HostError>> {
        Box::pin(AccountResolver::sign_out(self, req, ctx))
    }
}
