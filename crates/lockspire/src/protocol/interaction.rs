//! Interactions (RFC 6749 §4.1.1, OIDC Core §3.1.2.3-4): a validated authorization request waiting for the host to sign
//! the user in and for the user to consent.
//!
//! Each interaction is bound to the browser that started it (a cookie whose digest is stored)
//! so its id, which travels in URLs, cannot be completed from another browser. Completing it is
//! one conditional write, so a double-submitted consent form issues one code.

use http::request::Parts;

use super::authorize::{AuthorizationRequest, AuthorizationResponse, AuthorizeError};
use crate::host::{Context, InteractionResult, Session};
use crate::protocol::approval::{self, Approval};
use crate::protocol::endpoints::Endpoint;
use crate::protocol::error::{ErrorCode, OAuthError};
use crate::protocol::provider::Provider;
use crate::secrets::{constant_time_eq, random_token, time_ordered_token, token_digest, token_key};
use crate::store::{
    ClientRecord, ClientStatus, CodeRecord, InteractionRecord, Issued, TokenRecord, UserGrant,
};

/// What the browser should do next.
#[derive(Debug)]
pub(crate) enum Step {
    /// Go to the host's login page.
    Login(String),
    /// Go to the consent page for this interaction id.
    Consent(String),
    /// Return to the client.
    Respond(AuthorizationResponse),
}

/// A pending interaction with its parsed request and client.
struct Pending {
    id: String,
    record: InteractionRecord,
    request: AuthorizationRequest,
    client: ClientRecord,
}

/// What the consent page shows.
#[derive(Debug)]
pub(crate) struct ConsentView {
    pub(crate) interaction_id: String,
    pub(crate) csrf: String,
    pub(crate) client_id: String,
    pub(crate) client_name: String,
    pub(crate) client_uri: Option<String>,
    pub(crate) logo_uri: Option<String>,
    pub(crate) scopes: Vec<String>,
    pub(crate) resources: Vec<String>,
    /// Standard claims asked for beyond the scopes (OIDC Core §5.5).
    pub(crate) claims: Vec<String>,
    /// The user's preferred languages (`ui_locales`).
    pub(crate) ui_locales: Vec<String>,
    /// What the `authorization_details` grant, one line per object as its type describes it.
    pub(crate) authorization_details: Vec<String>,
    /// Who is signed in, as the host names them.
    pub(crate) signed_in_as: Option<String>,
}

fn expired() -> AuthorizeError {
    AuthorizeError::Direct(OAuthError::invalid_request(
        "this sign-in request has expired or was already completed; return to the application and start again",
    ))
}

fn resume_url(p: &Provider, id: &str) -> String {
    format!(
        "{}?interaction={id}",
        Endpoint::AuthorizeResume.url(&p.config.issuer)
    )
}

fn context(p: &Provider, pending: &Pending) -> Context {
    let req = &pending.request;
    Context {
        issuer: p.issuer().to_owned(),
        client_id: pending.client.client_id.to_string(),
        client_name: pending.client.metadata.client_name.clone(),
        scopes: req.scopes.to_vec(),
        interaction_id: Some(pending.id.clone()),
        return_to: Some(resume_url(p, &pending.id)),
        force_login: false,
        select_account: req.prompt.select_account,
        create_account: req.prompt.create,
        login_hint: req.login_hint.clone(),
        acr_values: req.requested_acr(),
        ui_locales: req.ui_locales.clone(),
        claims_locales: req.claims_locales.clone(),
    }
}

/// Persists a validated request as a new interaction bound to `browser`, then advances it.
pub(crate) async fn start(
    p: &Provider,
    request: AuthorizationRequest,
    client: ClientRecord,
    browser: &str,
    parts: &mut Parts,
) -> Result<Step, AuthorizeError> {
    let now = p.now();
    let id = random_token();
    let record = InteractionRecord {
        id_digest: token_digest(&id),
        tenant_id: p.tenant.clone(),
        client_id: client.client_id.to_string(),
        request: serde_json::to_string(&request)
            .map_err(|e| OAuthError::internal(e.to_string()))?,
        browser_digest: token_digest(browser),
        subject: None,
        login_requested_at: None,
        created_at: now,
        expires_at: now + p.config.lifetimes.interaction,
    };
    p.store
        .insert_interaction(&record)
        .await
        .map_err(|e| AuthorizeError::Redirect(Box::new(request.redirect(&client)), e.into()))?;
    advance(
        p,
        Pending {
            id,
            record,
            request,
            client,
        },
        parts,
    )
    .await
}

/// Continues an interaction after the host's login page sends the browser back.
pub(crate) async fn resume(
    p: &Provider,
    id: &str,
    browser: Option<&str>,
    parts: &mut Parts,
) -> Result<Step, AuthorizeError> {
    let pending = load(p, id, browser).await?;
    advance(p, pending, parts).await
}

async fn load(p: &Provider, id: &str, browser: Option<&str>) -> Result<Pending, AuthorizeError> {
    let record = p
        .store
        .pending_interaction(&token_digest(id), p.now())
        .await
        .map_err(OAuthError::from)?
        .ok_or_else(expired)?;
    let same_browser = browser.is_some_and(|b| {
        constant_time_eq(token_digest(b).as_bytes(), record.browser_digest.as_bytes())
    });
    if !same_browser {
        return Err(AuthorizeError::Direct(OAuthError::new(
            ErrorCode::AccessDenied,
            "this sign-in request was started in another browser",
        )));
    }
    let request: AuthorizationRequest = serde_json::from_str(&record.request)
        .map_err(|e| OAuthError::internal(format!("stored interaction request: {e}")))?;
    let client = p
        .store
        .client(&p.tenant, &record.client_id)
        .await
        .map_err(OAuthError::from)?
        .filter(|c| c.status == ClientStatus::Active)
        .ok_or_else(|| {
            OAuthError::new(
                ErrorCode::InvalidClient,
                "this client is no longer available",
            )
        })?;
    Ok(Pending {
        id: id.to_owned(),
        record,
        request,
        client,
    })
}

/// Decides the next step: login, consent, or a response (OIDC Core §3.1.2.3–§3.1.2.4).
async fn advance(
    p: &Provider,
    pending: Pending,
    parts: &mut Parts,
) -> Result<Step, AuthorizeError> {
    let redirect = pending.request.redirect(&pending.client);
    let fail = |e: OAuthError| AuthorizeError::Redirect(Box::new(redirect.clone()), e);
    let mut ctx = context(p, &pending);
    let session = p
        .resolver
        .current(parts, &ctx)
        .await
        .map_err(|e| fail(e.into()))?;
    let req = &pending.request;
    let now = p.now();
    let Some(session) = session else {
        if req.prompt.none {
            return Err(fail(OAuthError::new(
                ErrorCode::LoginRequired,
                "the user is not signed in",
            )));
        }
        return send_to_login(p, &pending, parts, ctx).await.map_err(fail);
    };
    // prompt=login: the user must sign in after Lockspire asked the host for it. Comparing with
    // the request time instead would wrongly accept a sign-in from the same second.
    let stale_login = req.prompt.login
        && pending
            .record
            .login_requested_at
            .is_none_or(|asked| session.auth_time < asked);
    let too_old = req
        .max_age
        .is_some_and(|max| now.saturating_sub(session.auth_time) > max);
    let other_user = req
        .hint_subject
        .as_ref()
        .is_some_and(|h| *h != p.subject_for(&pending.client.metadata, session.subject.as_str()));
    if stale_login || too_old || other_user {
        if req.prompt.none {
            return Err(fail(OAuthError::new(
                ErrorCode::LoginRequired,
                "the user must sign in again",
            )));
        }
        if pending.record.login_requested_at.is_some() {
            // The host sent the browser back without the fresh sign-in it was asked for; asking
            // again would loop.
            return Err(fail(OAuthError::new(
                ErrorCode::LoginRequired,
                "the user did not sign in again",
            )));
        }
        ctx.force_login = true;
        return send_to_login(p, &pending, parts, ctx).await.map_err(fail);
    }
    p.store
        .set_interaction_subject(&pending.record.id_digest, session.subject.as_str())
        .await
        .map_err(|e| fail(e.into()))?;
    let consent = p
        .store
        .consent(
            &p.tenant,
            session.subject.as_str(),
            &pending.client.client_id,
        )
        .await
        .map_err(|e| fail(e.into()))?;
    let remembered = consent.is_some_and(|c| {
        c.covers(&req.scopes, &req.resources, &req.claims_beyond_scopes())
            && p.detail_types
                .covered(&c.authorization_details, &req.authorization_details)
    });
    if remembered && !req.prompt.consent {
        return issue_code(p, &pending, &session, false)
            .await
            .map(Step::Respond);
    }
    if req.prompt.none {
        return Err(fail(OAuthError::new(
            ErrorCode::ConsentRequired,
            "the user has not consented",
        )));
    }
    Ok(Step::Consent(pending.id))
}

async fn send_to_login(
    p: &Provider,
    pending: &Pending,
    parts: &Parts,
    ctx: Context,
) -> Result<Step, OAuthError> {
    p.store
        .mark_login_requested(&pending.record.id_digest, p.now())
        .await?;
    let InteractionResult::Redirect(url) = p.resolver.login(parts, &ctx);
    Ok(Step::Login(url))
}

/// The consent page for an interaction, for the user the host reports as signed in.
pub(crate) async fn consent_view(
    p: &Provider,
    id: &str,
    browser: Option<&str>,
    parts: &mut Parts,
) -> Result<ConsentView, AuthorizeError> {
    let pending = load(p, id, browser).await?;
    let session = signed_in_subject(p, &pending, parts).await?;
    let signed_in_as = approval::account_label(p, &session, &context(p, &pending)).await;
    let client = &pending.client.metadata;
    Ok(ConsentView {
        signed_in_as,
        csrf: p.secrets.csrf_token(&csrf_binding(&pending.record)),
        interaction_id: pending.id.clone(),
        client_name: client
            .client_name
            .clone()
            .unwrap_or_else(|| pending.client.client_id.to_string()),
        client_id: pending.client.client_id.to_string(),
        logo_uri: client.logo_uri.clone(),
        client_uri: client.client_uri.clone(),
        scopes: pending.request.scopes.to_vec(),
        resources: pending.request.resources.clone(),
        claims: pending.request.claims_beyond_scopes(),
        ui_locales: pending.request.ui_locales.clone(),
        authorization_details: pending
            .request
            .authorization_details
            .iter()
            .map(|d| match p.detail_types.get(d.kind()) {
                Some(handler) => handler.describe(d),
                // Validation refused unknown types; a type the host stopped registering while
                // the request waited is still shown, as what it literally asks.
                None => serde_json::Value::Object(d.as_json().clone()).to_string(),
            })
            .collect(),
    })
}

fn csrf_binding(record: &InteractionRecord) -> String {
    format!("consent:{}:{}", record.id_digest, record.browser_digest)
}

/// The signed-in user must be the one the interaction was advanced for.
async fn signed_in_subject(
    p: &Provider,
    pending: &Pending,
    parts: &mut Parts,
) -> Result<Session, AuthorizeError> {
    let ctx = context(p, pending);
    let session = p
        .resolver
        .current(parts, &ctx)
        .await
        .map_err(OAuthError::from)?;
    match (session, &pending.record.subject) {
        (Some(s), Some(expected)) if s.subject.as_str() == expected => Ok(s),
        _ => Err(AuthorizeError::Direct(OAuthError::new(
            ErrorCode::AccessDenied,
            "the signed-in user changed; return to the application and start again",
        ))),
    }
}

/// The user's answer on the consent page.
pub(crate) async fn decide(
    p: &Provider,
    id: &str,
    browser: Option<&str>,
    csrf: Option<&str>,
    allow: bool,
    parts: &mut Parts,
) -> Result<AuthorizationResponse, AuthorizeError> {
    let pending = load(p, id, browser).await?;
    let csrf_ok = csrf.is_some_and(|t| p.secrets.verify_csrf(&csrf_binding(&pending.record), t));
    if !csrf_ok {
        return Err(AuthorizeError::Direct(OAuthError::new(
            ErrorCode::AccessDenied,
            "the consent form is invalid",
        )));
    }
    let session = signed_in_subject(p, &pending, parts).await?;
    if allow {
        return issue_code(p, &pending, &session, true).await;
    }
    let redirect = pending.request.redirect(&pending.client);
    let mut tx = p.store.begin().await.map_err(OAuthError::from)?;
    if !tx
        .complete_interaction(&pending.record.id_digest, p.now())
        .await
        .map_err(OAuthError::from)?
    {
        return Err(expired());
    }
    tx.commit().await.map_err(OAuthError::from)?;
    let denied = OAuthError::new(ErrorCode::AccessDenied, "the user denied the request");
    Ok(AuthorizationResponse::error(p, redirect, &denied).await?)
}

/// Completes the interaction and issues an authorization code (RFC 6749 §4.1.2) in one
/// transaction: the interaction can complete once, and the grant, consent and code appear
/// together or not at all.
async fn issue_code(
    p: &Provider,
    pending: &Pending,
    session: &Session,
    consented_now: bool,
) -> Result<AuthorizationResponse, AuthorizeError> {
    let req = &pending.request;
    let redirect = req.redirect(&pending.client);
    let fail = |e: OAuthError| AuthorizeError::Redirect(Box::new(redirect.clone()), e);
    let now = p.now();
    let subject = session.subject.as_str();
    // Read before the transaction: its first statement must be a write (see `Store::begin`).
    let previous = if consented_now {
        p.store
            .consent(&p.tenant, subject, &pending.client.client_id)
            .await
            .map_err(|e| fail(e.into()))?
    } else {
        None
    };
    let mut tx = p.store.begin().await.map_err(|e| fail(e.into()))?;
    if !tx
        .complete_interaction(&pending.record.id_digest, now)
        .await
        .map_err(|e| fail(e.into()))?
    {
        return Err(expired());
    }
    let approval = Approval {
        client_id: &pending.client.client_id,
        session,
        scopes: &req.scopes,
        resources: &req.resources,
        claims: req.claims.clone(),
        claims_beyond_scopes: req.claims_beyond_scopes(),
        authorization_details: &req.authorization_details,
        asked: consented_now.then_some(previous),
        on: "approved on the consent page",
        op_session: Some(
            p.secrets
                .session_id(&pending.record.browser_digest, subject),
        ),
    };
    let grant = approval::record(p, &mut tx, approval).await.map_err(fail)?;
    let code = time_ordered_token();
    tx.insert_token(&TokenRecord::Code(CodeRecord {
        issued: Issued {
            digest: token_key(&code),
            tenant_id: p.tenant.clone(),
            client_id: grant.client_id.clone(),
            scopes: grant.scopes.clone(),
            resources: grant.resources.clone(),
            authorization_details: req.authorization_details.clone(),
            created_at: now,
            expires_at: now + p.config.code_lifetime_for(&pending.client.metadata),
            consumed_at: None,
            revoked_at: None,
        },
        user: UserGrant {
            grant_id: grant.id.clone(),
            subject: subject.to_owned(),
        },
        redirect_uri: req.redirect_uri_given.then(|| req.redirect_uri.clone()),
        code_challenge: req.code_challenge.clone(),
        nonce: req.nonce.clone(),
        dpop_jkt: req.dpop_jkt.clone(),
    }))
    .await
    .map_err(|e| fail(e.into()))?;
    tx.commit().await.map_err(|e| fail(e.into()))?;
    Ok(AuthorizationResponse::new(p, redirect, vec![("code", code)]).await?)
}
