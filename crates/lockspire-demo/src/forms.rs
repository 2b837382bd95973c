//! Cross-site request forgery defence for the demo's own forms (sign-in and sign-out).
//!
//! Without it, another site could post the attacker's credentials to `/login` and sign the
//! visitor into the attacker's account (login CSRF), or sign them out. Two checks, both needed:
//!
//! * **A form token** (the synchronizer-token pattern): a random value kept in the browser's
//!   session, also before anyone signs in, and written into every form as a hidden field. A page
//!   on another origin can make the browser post, but it cannot read the token.
//! * **The browser's own labels**: a post whose `Sec-Fetch-Site` or `Origin` names another origin
//!   is refused even with a token. `Origin: null` (an opaque origin: a sandboxed frame, or a page
//!   whose referrer policy is `no-referrer`) proves nothing either way, so such a post passes on
//!   the token alone.
//!
//! A post that is not labelled as foreign but carries no valid token is most often an honest
//! one from a page that went stale: the session ended, or the user signed in or out in another
//! tab, which starts a new token. It is not acted on either; the caller shows the form again
//! with a fresh token and says why.
//!
//! The demo's pages send `Referrer-Policy: same-origin`, under which browsers put the page's real
//! origin on its own form posts; `no-referrer` would make them send `Origin: null`.

use axum::http::{HeaderMap, header};
use axum_login::tower_sessions::{Session, session};
use url::Url;

use crate::random;

/// The session key holding the form token; forms carry it in the hidden field `form_token`.
const FORM_TOKEN_KEY: &str = "demo.form_token";

/// Why a form token could not be read or made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenError {
    /// The session store failed.
    #[error("the session could not be read or written: {0}")]
    Session(#[from] session::Error),
    /// The operating system gave no randomness.
    #[error("no randomness for a form token: {0}")]
    Random(#[from] getrandom::Error),
}

/// The session's form token, created (and with it the session cookie) on first use.
pub(crate) async fn token(session: &Session) -> Result<String, TokenError> {
    if let Some(token) = session.get::<String>(FORM_TOKEN_KEY).await? {
        return Ok(token);
    }
    let token = random::token::<32>()?;
    session.insert(FORM_TOKEN_KEY, &token).await?;
    Ok(token)
}

/// Forgets the token, so the next form gets a fresh one. Called when the session changes hands
/// (a sign-in), so a token seen before it says nothing about the session after.
pub(crate) async fn rotate(session: &Session) -> Result<(), TokenError> {
    session.remove::<String>(FORM_TOKEN_KEY).await?;
    Ok(())
}

/// What to do with a form post.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not labelled as foreign, and it carries this session's token: act on it.
    Genuine,
    /// Not acted on: no valid token, but nothing says it came from elsewhere. Show the form
    /// again, with a fresh token.
    Stale,
    /// Refused: the browser labels it as posted by another origin's page.
    CrossOrigin,
}

/// Decides about a form post.
pub(crate) async fn check(
    headers: &HeaderMap,
    issuer: &str,
    session: &Session,
    presented: Option<&str>,
) -> Result<Verdict, TokenError> {
    if labelled_cross_origin(headers, issuer) {
        tracing::info!("refused a form post labelled as coming from another origin");
        return Ok(Verdict::CrossOrigin);
    }
    let expected = session.get::<String>(FORM_TOKEN_KEY).await?;
    match (expected, presented) {
        (Some(expected), Some(presented)) if random::constant_time_eq(&expected, presented) => {
            Ok(Verdict::Genuine)
        }
        _ => {
            tracing::info!("did not act on a form post without this session's form token");
            Ok(Verdict::Stale)
        }
    }
}

/// True when `Sec-Fetch-Site` (Fetch Metadata) or `Origin` (RFC 6454 §7) names another origin.
/// `Sec-Fetch-Site: none` is a navigation the user started (address bar, bookmark).
fn labelled_cross_origin(headers: &HeaderMap, issuer: &str) -> bool {
    let fetch_site_foreign = headers
        .get("sec-fetch-site")
        .is_some_and(|v| !matches!(v.as_bytes(), b"same-origin" | b"none"));
    let origin_foreign = headers.get(header::ORIGIN).is_some_and(|origin| {
        let origin = origin.as_bytes();
        if origin == b"null" {
            return false;
        }
        Url::parse(issuer)
            .map(|u| u.origin().ascii_serialization())
            .map_or(true, |own| origin != own.as_bytes())
    });
    fetch_site_foreign || origin_foreign
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::labelled_cross_origin;

    fn with(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    const ISSUER: &str = "http://127.0.0.1:4000";

    #[test]
    fn posts_labelled_with_this_origin_or_an_opaque_one_pass_to_the_token_check() {
        for headers in [
            with(&[]),
            with(&[("origin", "http://127.0.0.1:4000")]),
            with(&[("origin", "null"), ("sec-fetch-site", "same-origin")]),
            with(&[("sec-fetch-site", "same-origin")]),
            with(&[("sec-fetch-site", "none")]),
        ] {
            assert!(!labelled_cross_origin(&headers, ISSUER), "{headers:?}");
        }
    }

    #[test]
    fn posts_labelled_with_another_origin_are_refused_whatever_they_carry() {
        for headers in [
            with(&[("origin", "https://evil.example")]),
            // Same site (ports do not count for sites), another origin.
            with(&[("origin", "http://127.0.0.1:4001")]),
            with(&[("origin", "http://localhost:4000")]),
            with(&[("sec-fetch-site", "cross-site")]),
            with(&[("sec-fetch-site", "same-site")]),
            with(&[("origin", "null"), ("sec-fetch-site", "cross-site")]),
            with(&[
                ("origin", "http://127.0.0.1:4000"),
                ("sec-fetch-site", "same-site"),
            ]),
        ] {
            assert!(labelled_cross_origin(&headers, ISSUER), "{headers:?}");
        }
    }
}
