//! The host's own pages: home, login and logout. Lockspire sends the browser to `/login` (see
//! [`crate::resolver`]) and expects it back at `return_to` once someone is signed in.

use askama::Template;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use time::OffsetDateTime;
use url::Url;

use crate::AppState;
use crate::users::{AuthSession, Credentials, User};

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
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
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

/// A server-side failure: logged in full, shown to the user in general terms.
pub(crate) fn internal_error(context: &str, error: &dyn std::fmt::Display) -> Response {
    tracing::error!(%error, "{context}");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        &format!("{context}. The server log has the details."),
    )
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

/// `return_to` if it points into this issuer, else `/`. Anything else would make the login
/// page an open redirector (RFC 9700 §4.11).
fn safe_return_to<'a>(issuer: &str, return_to: &'a str) -> &'a str {
    match return_to.strip_prefix(issuer) {
        Some(rest) if rest.starts_with('/') => return_to,
        _ => "/",
    }
}

/// Refuses form posts that a browser says came from another site.
///
/// Without this, another site could post the attacker's credentials to `/login` and sign the
/// visitor into the attacker's account (login CSRF), or sign them out. Browsers label every
/// form post with `Origin` (and `Sec-Fetch-Site`); a request with neither comes from a
/// non-browser client such as curl, which cannot be a CSRF victim, so it is let through.
fn cross_site(headers: &HeaderMap, issuer: &str) -> bool {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let expected = Url::parse(issuer).map(|u| u.origin().ascii_serialization());
        return expected.map_or(true, |e| origin.as_bytes() != e.as_bytes());
    }
    headers
        .get("sec-fetch-site")
        .is_some_and(|v| !matches!(v.as_bytes(), b"same-origin" | b"none"))
}

/// The page shown for a refused cross-site form post.
fn cross_site_refused() -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "Refused",
        "This form was submitted from another site. Open the page on this server and try again.",
    )
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    user: Option<&'a User>,
}

/// `GET /`: who is signed in, and where to go next.
pub(crate) async fn home(auth: AuthSession) -> Response {
    render(
        StatusCode::OK,
        &HomePage {
            user: auth.user.as_ref(),
        },
    )
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    return_to: &'a str,
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
    render(
        StatusCode::OK,
        &LoginPage {
            return_to,
            username: query.login_hint.as_deref().unwrap_or_default(),
            force: query.force.as_deref() == Some("1"),
            signed_in_as: auth.user.as_ref().map(|u| u.username.as_str()),
            error: None,
        },
    )
}

/// What the login form posts.
#[derive(Deserialize)]
pub(crate) struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    return_to: String,
}

/// `POST /login`: checks the password, signs the user in, records the login time and returns
/// to `return_to` (only if it points into this issuer).
pub(crate) async fn login(
    State(app): State<AppState>,
    mut auth: AuthSession,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    if cross_site(&headers, &app.issuer) {
        return cross_site_refused();
    }
    let Ok(Form(form)) = form else {
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
    tracing::info!(username = %user.username, "signed in");
    see_other(return_to)
}

/// `POST /logout`: ends the session (and with it the demo client's pending state).
pub(crate) async fn logout(
    State(app): State<AppState>,
    mut auth: AuthSession,
    headers: HeaderMap,
) -> Response {
    if cross_site(&headers, &app.issuer) {
        return cross_site_refused();
    }
    if let Err(e) = auth.logout().await {
        return internal_error("Ending the session failed", &e);
    }
    see_other("/")
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::{cross_site, safe_return_to};

    #[test]
    fn form_posts_from_other_sites_are_refused() {
        let issuer = "http://127.0.0.1:4000";
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        assert!(!cross_site(&with(&[]), issuer));
        assert!(!cross_site(
            &with(&[("origin", "http://127.0.0.1:4000")]),
            issuer
        ));
        assert!(!cross_site(
            &with(&[("sec-fetch-site", "same-origin")]),
            issuer
        ));
        assert!(cross_site(
            &with(&[("origin", "https://evil.example")]),
            issuer
        ));
        assert!(cross_site(&with(&[("origin", "null")]), issuer));
        assert!(cross_site(
            &with(&[("sec-fetch-site", "cross-site")]),
            issuer
        ));
        assert!(cross_site(
            &with(&[("sec-fetch-site", "same-site")]),
            issuer
        ));
    }

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
