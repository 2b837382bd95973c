//! The one seam between the host and Lockspire: [`AccountResolver`].
//!
//! Lockspire asks "who is signed in in this browser?" with the request's `Parts`, so the answer
//! comes from the same axum-login extractor the host's own handlers use. It never sees
//! passwords, the user table or the session store.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use lockspire::{
    AccountResolver, Claims, Context, HostError, InteractionResult, Resolution, SignedIn, Subject,
};
use serde_json::{Map, Value};
use url::form_urlencoded;

use crate::pages::AUTH_TIME_KEY;
use crate::users::{AuthSession, User, Users};

/// Resolves accounts from axum-login sessions and the `demo_users` table.
#[derive(Clone, Debug)]
pub struct DemoResolver {
    users: Users,
}

impl DemoResolver {
    /// A resolver over the host's users.
    pub fn new(users: Users) -> Self {
        Self { users }
    }
}

impl AccountResolver for DemoResolver {
    type Account = User;

    async fn resolve_current_account(
        &self,
        req: &mut Parts,
        _ctx: &Context,
    ) -> Result<Resolution<User>, HostError> {
        // axum-login's extractor only reads the request extension its layer inserted, so any
        // state type works; `()` is the simplest.
        let auth = AuthSession::from_request_parts(req, &())
            .await
            .map_err(|(_, why)| HostError::new(why))?;
        let Some(user) = auth.user else {
            return Ok(Resolution::NotSignedIn);
        };
        let auth_time = auth
            .session
            .get::<i64>(AUTH_TIME_KEY)
            .await
            .map_err(|e| HostError::new(format!("reading the session: {e}")))?;
        // Without a login time Lockspire cannot honour max_age or prompt=login; asking the
        // user to sign in again is the safe answer.
        let Some(auth_time) = auth_time else {
            return Ok(Resolution::NotSignedIn);
        };
        Ok(Resolution::SignedIn(SignedIn {
            subject: Subject::new(user.id.clone())?,
            account: user,
            auth_time,
            acr: None,
            // RFC 8176: the demo only knows passwords.
            amr: vec!["pwd".to_owned()],
        }))
    }

    async fn resolve_account(
        &self,
        subject: &Subject,
        _ctx: &Context,
    ) -> Result<Option<User>, HostError> {
        self.users
            .by_id(subject.as_str())
            .await
            .map_err(|e| HostError::new(format!("looking up the user: {e}")))
    }

    async fn build_claims(&self, user: &User, _ctx: &Context) -> Result<Claims, HostError> {
        // Offer everything; Lockspire releases only what the granted scopes allow.
        let mut id_token = Map::new();
        id_token.insert("name".into(), Value::from(user.name.as_str()));
        id_token.insert("email".into(), Value::from(user.email.as_str()));
        id_token.insert("email_verified".into(), Value::from(user.email_verified));
        let mut userinfo = id_token.clone();
        userinfo.insert(
            "preferred_username".into(),
            Value::from(user.username.as_str()),
        );
        Ok(Claims { id_token, userinfo })
    }

    fn redirect_for_login(&self, _req: &Parts, ctx: &Context) -> InteractionResult {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(return_to) = &ctx.return_to {
            query.append_pair("return_to", return_to);
        }
        if ctx.force_login {
            // The login page then asks for the password even if someone is signed in.
            query.append_pair("force", "1");
        }
        if let Some(hint) = &ctx.login_hint {
            query.append_pair("login_hint", hint);
        }
        InteractionResult::Redirect(format!("/login?{}", query.finish()))
    }

    async fn sign_out(&self, req: &mut Parts, _ctx: &Context) -> Result<HeaderMap, HostError> {
        let mut auth = AuthSession::from_request_parts(req, &())
            .await
            .map_err(|(_, why)| HostError::new(why))?;
        // The session layer around Lockspire's router writes the ended session (and its
        // cookie) on the way out.
        auth.logout()
            .await
            .map_err(|e| HostError::new(format!("signing out: {e}")))?;
        Ok(HeaderMap::new())
    }
}
