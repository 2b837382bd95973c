//! A browser for the tests: cookies, no automatic redirects, and the steps of a flow through
//! the test host's sign-in and the consent page.

use super::*;

/// What the browser does on the consent page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consent {
    Allow,
    Deny,
    /// Stop at the consent page and return it.
    Stop,
}

/// Where a browser flow ended.
#[derive(Debug)]
pub enum Outcome {
    /// Redirected to the client's redirect URI.
    Redirect(url::Url),
    /// Stopped at the host's login page (no user to sign in as).
    Login(String),
    /// Stopped on the consent page.
    ConsentPage(String, String),
    /// Any other page (errors, form_post).
    Page(StatusCode, String),
}

impl Outcome {
    /// The query (or fragment) parameters of the redirect back to the client.
    pub fn redirect_params(&self) -> HashMap<String, String> {
        match self {
            Outcome::Redirect(url) => {
                let raw = url.query().or(url.fragment()).unwrap_or_default();
                url::form_urlencoded::parse(raw.as_bytes())
                    .into_owned()
                    .collect()
            }
            other => panic!("expected a redirect to the client, got {other:?}"),
        }
    }

    pub fn is_redirect(&self) -> bool {
        matches!(self, Outcome::Redirect(_))
    }
}

/// A browser with a cookie jar, driven step by step.
pub struct Browser {
    pub client: reqwest::Client,
    pub base: String,
    pub user: Option<String>,
}

/// The value of a hidden form field in server-rendered HTML.
pub fn hidden_field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}

impl Browser {
    fn absolute(&self, location: &str) -> String {
        if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location.to_owned()
        }
    }

    /// Follows a flow from `url` until it leaves for `redirect_uri` or stops on a page.
    pub async fn run(&self, url: &str, redirect_uri: &str, consent: Consent) -> Outcome {
        let mut next = url.to_owned();
        for _ in 0..20 {
            let resp = self
                .client
                .get(&next)
                .send()
                .await
                .expect("browser request");
            let status = resp.status();
            if !status.is_redirection() {
                let body = resp.text().await.unwrap_or_default();
                return Outcome::Page(status, body);
            }
            let location = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .expect("redirect without Location");
            if location.starts_with(redirect_uri) {
                return Outcome::Redirect(url::Url::parse(&location).expect("redirect URL"));
            }
            let absolute = self.absolute(&location);
            if absolute.starts_with(&format!("{}/test-login", self.base)) {
                let Some(user) = &self.user else {
                    return Outcome::Login(absolute);
                };
                let parsed = url::Url::parse(&absolute).expect("login URL");
                let return_to = parsed
                    .query_pairs()
                    .find(|(k, _)| k == "return_to")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                let q: String = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("user", user)
                    .append_pair("return_to", &return_to)
                    .finish();
                next = format!("{}/test-signin?{q}", self.base);
                continue;
            }
            if absolute.starts_with(&format!("{}/consent", self.base)) {
                let page = self
                    .client
                    .get(&absolute)
                    .send()
                    .await
                    .expect("consent page");
                let page_status = page.status();
                let html = page.text().await.unwrap_or_default();
                if page_status != StatusCode::OK {
                    return Outcome::Page(page_status, html);
                }
                let decision = match consent {
                    Consent::Stop => return Outcome::ConsentPage(absolute, html),
                    Consent::Allow => "allow",
                    Consent::Deny => "deny",
                };
                let resp = self.submit_consent(&html, decision).await;
                let status = resp.status();
                if !status.is_redirection() {
                    return Outcome::Page(status, resp.text().await.unwrap_or_default());
                }
                let location = resp
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                if location.starts_with(redirect_uri) {
                    return Outcome::Redirect(url::Url::parse(location).expect("redirect URL"));
                }
                next = self.absolute(location);
                continue;
            }
            next = absolute;
        }
        panic!("flow did not finish within 20 redirects");
    }

    /// Submits the consent form found in `html`.
    pub async fn submit_consent(&self, html: &str, decision: &str) -> reqwest::Response {
        let interaction = hidden_field(html, "interaction").expect("interaction field");
        let csrf = hidden_field(html, "csrf").expect("csrf field");
        self.client
            .post(format!("{}/consent", self.base))
            .form(&[
                ("interaction", interaction.as_str()),
                ("csrf", csrf.as_str()),
                ("decision", decision),
            ])
            .send()
            .await
            .expect("consent post")
    }
}
