//! The host's own pages: home, login and logout. Lockspire sends the browser to `/login` (see
//! [`crate::resolver`]) and expects it back at `return_to` once someone is signed in.

use askama::Template;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::users::{AuthSession, Credentials, User};
use crate::{AppState, forms};

/// Session key holding when the user last proved who they are (seconds since the epoch). The
/// resolver reports it to Lockspire as `auth_time`, which drives `max_age` and `prompt=login`.
pub(crate) const AUTH_TIME_KEY: &str = "demo.auth_time";

/// No caching, no framing (clickjacking a login form), no scripts.
const PAGE_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'";

/// An HTML response with the headers every page of the demo carries.
pub(crate) fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, Html(body)).into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    // `same-origin`: addresses (which carry interaction ids) never leave in a Referer, and
    // the browser keeps labelling the demo's own form posts with their real Origin, which
    // `no-referrer` would turn into `Origin: null` (see `forms`).
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Renders a template; a template failure becomes a plain error page rather than a panic.
pub(crate) fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => html(status, body),
        Err(e) => {
            tracing::error!(error = %e, "template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "This page could not be rendered.",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    detail: &'a str,
}

/// A readable error page.
pub(crate) fn error_page(status: StatusCode, title: &str, detail: &str) -> Response {
    render(status, &ErrorPage { title, detail })
}

/// The page of a demo whose client the server's FAPI 2.0 profile does not allow (a public
/// client, or a grant whose authorization is not pushed); `None` when the demo runs.
pub(crate) fn off_under_fapi(app: &crate::AppState, demo: &str, why: &str) -> Option<Response> {
    app.profile.is_fapi().then(|| {
        error_page(
            StatusCode::NOT_FOUND,
            "Not under FAPI 2.0",
            &format!(
                "The {demo} demo is off: this server runs the {} profile, which {why}. Try /demo, or run the demo without --security-profile.",
                app.profile
            ),
        )
    })
}

/// A server-side failure: logged in full, shown to the user in general terms.
pub(crate) fn internal_error(context: &str, error: &dyn std::fmt::Display) -> Response {
    tracing::error!(%error, "{context}");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        &format!("{context}. The server log has the details."),
    )
}

/// The value of the cookie `name` the browser sent, if any.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(found, _)| *found == name)
        .map(|(_, value)| value.to_owned())
}

/// 303 See Other: after a POST the browser follows with GET (RFC 9110 §15.4.4).
pub(crate) fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => {
            let mut response = StatusCode::SEE_OTHER.into_response();
            response.headers_mut().insert(header::LOCATION, value);
            response
        }
        Err(_) => error_page(
            StatusCode::BAD_REQUEST,
            "Invalid redirect",
            "The redirect target is not a valid URL.",
        ),
    }
}

/// The page shown for a form post the browser labels as coming from another origin.
pub(crate) fn cross_origin_refused() -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "Refused",
        "This form was posted from another site's page, so nothing was done. To sign in or \
         out, use this site's own pages.",
    )
}

/// `return_to` if it points into this issuer, else `/`. Anything else would make the login
/// page an open redirector (RFC 9700 §4.11).
fn safe_return_to<'a>(issuer: &str, return_to: &'a str) -> &'a str {
    match return_to.strip_prefix(issuer) {
        Some(rest) if rest.starts_with('/') => return_to,
        _ => "/",
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    user: Option<&'a User>,
    /// For the sign-out form, shown only to a signed-in user.
    form_token: &'a str,
    notice: Option<&'a str>,
    /// The server's security profile: under FAPI 2.0 some demos are off.
    profile: lockspire::SecurityProfile,
}

/// `GET /`: who is signed in, and where to go next.
pub(crate) async fn home(State(app): State<AppState>, auth: AuthSession) -> Response {
    home_page(&app, &auth, StatusCode::OK, None).await
}

/// The home page, with a notice above it.
async fn home_page(
    app: &AppState,
    auth: &AuthSession,
    status: StatusCode,
    notice: Option<&str>,
) -> Response {
    // Nobody signed in: no form, so no token and no session to create.
    let form_token = match &auth.user {
        Some(_) => match forms::token(&auth.session).await {
            Ok(token) => token,
            Err(e) => return internal_error("Preparing the sign-out form failed", &e),
        },
        None => String::new(),
    };
    render(
        status,
        &HomePage {
            user: auth.user.as_ref(),
            form_token: &form_token,
            notice,
            profile: app.profile,
        },
    )
}

/// `GET /logout`: someone typed the address; signing out takes the form on the home page.
pub(crate) async fn logout_page() -> Response {
    see_other("/")
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    return_to: &'a str,
    form_token: &'a str,
    username: &'a str,
    force: bool,
    signed_in_as: Option<&'a str>,
    error: Option<&'a str>,
}

/// The query Lockspire's redirect (via the resolver) puts on `/login`.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginQuery {
    return_to: Option<String>,
    force: Option<String>,
    login_hint: Option<String>,
}

/// `GET /login`: the sign-in form. It is shown even when someone is signed in: Lockspire only
/// sends the browser here when nobody is, or when it needs a fresh login (`force=1`).
pub(crate) async fn login_form(
    State(app): State<AppState>,
    auth: AuthSession,
    query: Result<Query<LoginQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Invalid sign-in link",
            "The sign-in link is malformed. Start again from the application.",
        );
    };
    let return_to = safe_return_to(&app.issuer, query.return_to.as_deref().unwrap_or("/"));
    // Login CSRF is possible before anyone is signed in, so the token (and with it a session)
    // exists from the first view of the form.
    let form_token = match forms::token(&auth.session).await {
        Ok(token) => token,
        Err(e) => return internal_error("Preparing the sign-in form failed", &e),
    };
    render(
        StatusCode::OK,
        &LoginPage {
            return_to,
            form_token: &form_token,
            username: query.login_hint.as_deref().unwrap_or_default(),
            force: query.force.as_deref() == Some("1"),
            signed_in_as: auth.user.as_ref().map(|u| u.username.as_str()),
            error: None,
        },
    )
}

/// What the login form posts. Every field may be missing, so that a form that reaches the
/// handler always gets its token checked first; empty credentials are simply wrong ones.
#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    return_to: String,
    form_token: Option<String>,
}

/// What the sign-out form posts.
#[derive(Deserialize)]
pub(crate) struct LogoutForm {
    form_token: Option<String>,
}

/// `POST /login`: checks the password, signs the user in, records the login time and returns
/// to `return_to` (only if it points into this issuer).
pub(crate) async fn login(
    State(app): State<AppState>,
    mut auth: AuthSession,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let mut form = form.ok().map(|Form(form)| form);
    let presented = form.as_mut().and_then(|f| f.form_token.take());
    let checked = forms::check(&headers, &app.issuer, &auth.session, presented.as_deref()).await;
    match checked {
        Ok(forms::Verdict::Genuine) => {}
        Ok(forms::Verdict::Stale) => {
            let (return_to, username) = form
                .as_ref()
                .map(|f| {
                    (
                        safe_return_to(&app.issuer, &f.return_to),
                        f.username.as_str(),
                    )
                })
                .unwrap_or(("/", ""));
            let form_token = match forms::token(&auth.session).await {
                Ok(token) => token,
                Err(e) => return internal_error("Preparing the sign-in form failed", &e),
            };
            return render(
                StatusCode::FORBIDDEN,
                &LoginPage {
                    return_to,
                    form_token: &form_token,
                    username,
                    force: false,
                    signed_in_as: auth.user.as_ref().map(|u| u.username.as_str()),
                    error: Some(
                        "This sign-in form had expired (perhaps you signed in or out in another \
                         tab), so it was not used. Please sign in again.",
                    ),
                },
            );
        }
        Ok(forms::Verdict::CrossOrigin) => return cross_origin_refused(),
        Err(e) => return internal_error("Reading the session failed", &e),
    }
    let Some(form) = form else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Incomplete form",
            "The sign-in form was incomplete. Go back and try again.",
        );
    };
    let return_to = safe_return_to(&app.issuer, &form.return_to);
    let credentials = Credentials {
        username: form.username.clone(),
        password: form.password,
    };
    let user = match auth.authenticate(credentials).await {
        Ok(Some(user)) => user,
        Ok(None) => {
            tracing::info!(username = %form.username, "sign-in failed: wrong username or password");
            return render(
                StatusCode::UNAUTHORIZED,
                &LoginPage {
                    return_to,
                    form_token: presented.as_deref().unwrap_or_default(),
                    username: &form.username,
                    force: false,
                    signed_in_as: None,
                    error: Some("Wrong username or password."),
                },
            );
        }
        Err(e) => return internal_error("Checking the password failed", &e),
    };
    if let Err(e) = auth.login(&user).await {
        return internal_error("Starting the session failed", &e);
    }
    let now = OffsetDateTime::now_utc().unix_timestamp();
    if let Err(e) = auth.session.insert(AUTH_TIME_KEY, now).await {
        return internal_error("Writing the session failed", &e);
    }
    if let Err(e) = forms::rotate(&auth.session).await {
        return internal_error("Writing the session failed", &e);
    }
    tracing::info!(username = %user.username, "signed in");
    see_other(return_to)
}

/// `POST /logout`: ends the session (and with it the demo client's pending state).
pub(crate) async fn logout(
    State(app): State<AppState>,
    mut auth: AuthSession,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Response {
    let presented = form.as_ref().ok().and_then(|f| f.form_token.as_deref());
    match forms::check(&headers, &app.issuer, &auth.session, presented).await {
        Ok(forms::Verdict::Genuine) => {}
        Ok(forms::Verdict::Stale) => {
            let notice = if auth.user.is_some() {
                "That sign-out form had expired (perhaps you signed in again in another tab), \
                 so it was not used. Press Sign out again."
            } else {
                "You are already signed out."
            };
            return home_page(&app, &auth, StatusCode::FORBIDDEN, Some(notice)).await;
        }
        Ok(forms::Verdict::CrossOrigin) => return cross_origin_refused(),
        Err(e) => return internal_error("Reading the session failed", &e),
    }
    // The provider's session of this browser ends with the host's: its tokens are revoked and
    // its clients (the forum) told by back-channel logout.
    let mut provider_headers = HeaderMap::new();
    if let Some(user) = &auth.user
        && let Ok(subject) = lockspire::Subject::new(user.id.clone())
    {
        match app.lockspire.end_session(&headers, &subject).await {
            Ok(headers) => provider_headers = headers,
            Err(e) => return internal_error("Ending the provider session failed", &e),
        }
    }
    if let Err(e) = auth.logout().await {
        return internal_error("Ending the session failed", &e);
    }
    let mut response = see_other("/");
    response.headers_mut().extend(provider_headers);
    response
}

#[cfg(test)]
mod tests {
    use super::safe_return_to;

    #[test]
    fn return_to_must_stay_inside_the_issuer() {
        let issuer = "http://127.0.0.1:4000";
        for ok in [
            "http://127.0.0.1:4000/authorize/resume?interaction=x",
            "http://127.0.0.1:4000/",
        ] {
            assert_eq!(safe_return_to(issuer, ok), ok);
        }
        for bad in [
            "",
            "/",
            "//evil.example/",
            "https://evil.example/",
            "http://127.0.0.1:4000",
            "http://127.0.0.1:4000@evil.example/",
            "http://127.0.0.1:40000/",
            "http://127.0.0.1:4000.evil.example/",
        ] {
            assert_eq!(safe_return_to(issuer, bad), "/", "{bad}");
        }
    }
}
