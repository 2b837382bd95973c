//! Logout across every client of a browser session: OpenID Connect RP-Initiated Logout 1.0
//! (the `end_session_endpoint`), Back-Channel Logout 1.0 (logout tokens through the outbox) and
//! Front-Channel Logout 1.0 (the iframes of the signed-out page).
//!
//! The OP session is a keyed hash of the browser cookie and the user: every grant made through
//! an authorization in that browser records it, with the session id its client knows it by
//! (`sid`, one per client), which the client's ID tokens carry. Ending it takes each of those
//! grants out of the session — revoking it, with its tokens, unless it holds `offline_access` and
//! its client did not ask otherwise — and tells each client that registered a logout URI.

use std::collections::BTreeMap;

use serde_json::json;

use super::id_token::{self, IssuedIdToken};
use super::params::Params;
use crate::host::Subject;
use crate::model::client::ClientId;
use crate::protocol::error::OAuthError;
use crate::protocol::outbox::{self, logout_call::LogoutCall};
use crate::protocol::provider::Provider;
use crate::secrets::{constant_time_eq, token_digest};
use crate::store::{Actor, ClientRecord, ClientStatus, OutboxKind, Outcome};

/// A logout request (RP-Initiated Logout 1.0 §2), checked: where the browser may go afterwards
/// is one of the client's registered URIs, never a URI only the request names.
pub(crate) struct LogoutRequest {
    /// The client the request names or its `id_token_hint` was issued to.
    pub(crate) client: Option<ClientRecord>,
    /// The verified `id_token_hint` (expired ones are accepted, §2).
    pub(crate) hint: Option<IssuedIdToken>,
    /// `post_logout_redirect_uri`, exactly as registered, with `state`.
    pub(crate) redirect: Option<(String, Option<String>)>,
    pub(crate) ui_locales: Vec<String>,
    pub(crate) logout_hint: Option<String>,
}

impl LogoutRequest {
    /// Where the browser goes once signed out: the registered URI with `state` (§3).
    pub(crate) fn redirect_location(&self) -> Option<String> {
        let (uri, state) = self.redirect.as_ref()?;
        let mut url = url::Url::parse(uri).ok()?;
        if let Some(state) = state {
            url.query_pairs_mut().append_pair("state", state);
        }
        Some(url.into())
    }
}

/// Checks a logout request's parameters (§2). Every failure is shown to the user, never sent
/// to a URI (§3: an unregistered or unverifiable destination is not redirected to).
pub(crate) async fn validate(p: &Provider, params: &Params) -> Result<LogoutRequest, OAuthError> {
    let hint = match params.get("id_token_hint")? {
        Some(token) => Some(id_token::verify(p, token).ok_or_else(|| {
            OAuthError::invalid_request("id_token_hint is not an ID token from this issuer")
        })?),
        None => None,
    };
    let named = params.get("client_id")?;
    let client_id = match (named, &hint) {
        (Some(named), Some(hint)) if named != hint.client_id => {
            return Err(OAuthError::invalid_request(
                "client_id is not the client the id_token_hint was issued to",
            ));
        }
        (Some(named), _) => Some(named),
        (None, Some(hint)) => Some(hint.client_id.as_str()),
        (None, None) => None,
    };
    // A client deleted or disabled since can still have its user signed out; it only cannot
    // have the browser sent back to it.
    let client = match client_id {
        Some(id) => p
            .store
            .client(&p.tenant, id)
            .await?
            .filter(|c| c.status == ClientStatus::Active),
        None => None,
    };
    let state = params.get("state")?.map(str::to_owned);
    let redirect = match params.get("post_logout_redirect_uri")? {
        None => None,
        Some(uri) => {
            let Some(client) = &client else {
                return Err(OAuthError::invalid_request(if client_id.is_some() {
                    "post_logout_redirect_uri names no URI of an active client"
                } else {
                    "post_logout_redirect_uri needs client_id or id_token_hint to name its client"
                }));
            };
            // Exact string comparison, as for redirect URIs (RFC 9700 §2.1).
            if !client
                .metadata
                .post_logout_redirect_uris
                .iter()
                .any(|r| r == uri)
            {
                return Err(OAuthError::invalid_request(
                    "post_logout_redirect_uri is not registered for this client",
                ));
            }
            Some((uri.to_owned(), state))
        }
    };
    Ok(LogoutRequest {
        client,
        hint,
        redirect,
        ui_locales: params
            .get("ui_locales")?
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        logout_hint: params.get("logout_hint")?.map(str::to_owned),
    })
}

/// The OP session of `subject` in the browser holding `cookie`.
pub(crate) fn op_session(p: &Provider, cookie: &str, subject: &Subject) -> String {
    p.secrets
        .session_id(&token_digest(cookie), subject.as_str())
}

/// The OP session an `id_token_hint` names, when it is a session of the browser holding
/// `cookie`: `current` (the browser's signed-in session) when the hint's `sid` is its client's
/// id of it; else one the host already signed out in this browser, found by its grants. Never
/// another browser's session, whoever holds an ID token of it.
pub(crate) async fn hinted_session(
    p: &Provider,
    cookie: &str,
    hint: &IssuedIdToken,
    current: Option<&str>,
) -> Result<Option<String>, OAuthError> {
    let Some(sid) = hint.sid.as_deref() else {
        return Ok(None);
    };
    let names = |op_session: &str| {
        let expected = p.secrets.client_session_id(op_session, &hint.client_id);
        constant_time_eq(expected.as_bytes(), sid.as_bytes())
    };
    if let Some(current) = current.filter(|c| names(c)) {
        return Ok(Some(current.to_owned()));
    }
    let digest = token_digest(cookie);
    let grants = p.store.grants_by_sid(&p.tenant, sid, p.now()).await?;
    Ok(grants.into_iter().find_map(|g| {
        let here = p.secrets.session_id(&digest, &g.subject);
        let op_session = g.op_session?;
        (g.client_id.as_str() == hint.client_id
            && constant_time_eq(here.as_bytes(), op_session.as_bytes()))
        .then_some(op_session)
    }))
}

/// The binding of the confirmation form's CSRF token: the cookie set with the form, for this
/// purpose only.
pub(crate) fn csrf_binding(cookie: &str) -> String {
    format!("logout:{}", token_digest(cookie))
}

/// What ending a session leaves for the signed-out page: the front-channel logout URIs to load
/// (Front-Channel Logout 1.0 §3), with `iss` and `sid` where the client asked for them.
#[derive(Debug, Default)]
pub(crate) struct Ended {
    pub(crate) frontchannel: Vec<String>,
}

/// Ends the OP session `op_session`: in one transaction, takes every grant out of it — one
/// conditional write, so that of two requests ending it at once only one finds its grants —
/// revokes those without `offline_access` (and those with it when their client asked), queues a
/// logout token for every client of the session with a `backchannel_logout_uri`, and audits it.
pub(crate) async fn end(p: &Provider, op_session: &str) -> Result<Ended, OAuthError> {
    let now = p.now();
    // Read before the transaction, whose connection is the only one of an in-memory database:
    // the clients of the session's grants. A grant made meanwhile whose client is not among them
    // is still revoked, its client not told.
    let mut clients: BTreeMap<ClientId, ClientRecord> = BTreeMap::new();
    for client_id in p.store.session_clients(&p.tenant, op_session).await? {
        if let Some(client) = p.store.client(&p.tenant, &client_id).await? {
            clients.insert(client_id, client);
        }
    }
    let mut tx = p.store.begin().await?;
    // Grants already revoked or expired leave the session too, but are told of no further.
    let grants: Vec<_> = tx
        .end_session(&p.tenant, op_session)
        .await?
        .into_iter()
        .filter(|g| g.live_at(now))
        .collect();
    let Some(subject) = grants.first().map(|g| g.subject.clone()) else {
        tx.commit().await?;
        return Ok(Ended::default());
    };
    clients.retain(|id, _| grants.iter().any(|g| &g.client_id == id));
    let mut revoked = 0;
    for grant in &grants {
        // OIDC Core §11: offline access is meant to outlive the session that granted it.
        let revoke = !grant.scopes.contains("offline_access")
            || clients
                .get(&grant.client_id)
                .is_none_or(|c| c.metadata.logout_revokes_offline_access);
        if revoke {
            tx.revoke_grant(&grant.id, now).await?;
            revoked += 1;
        }
    }
    let mut ended = Ended::default();
    for client in clients
        .values()
        .filter(|c| c.status == ClientStatus::Active)
    {
        let sub = p.subject_for(&client.metadata, &subject);
        let sid = p.secrets.client_session_id(op_session, &client.client_id);
        if let Some(uri) = &client.metadata.backchannel_logout_uri {
            let call = LogoutCall {
                sub,
                sid: sid.clone(),
            };
            let kind = OutboxKind::BackchannelLogout;
            outbox::enqueue(p, &mut tx, kind, &client.client_id, uri, &call).await?;
        }
        if let Some(uri) = &client.metadata.frontchannel_logout_uri {
            ended.frontchannel.push(frontchannel_url(
                p,
                uri,
                client.metadata.frontchannel_logout_session_required,
                &sid,
            ));
        }
    }
    let event = p
        .security_event(
            "session_ended",
            Actor::User(&subject),
            Outcome::Done,
            None,
            Some(&subject),
            "signed out",
        )
        .as_action(
            "session_ended",
            json!({
                "clients": clients.keys().collect::<Vec<_>>(),
                "grants_revoked": revoked,
                "grants_kept": grants.len() - revoked,
            }),
        );
    tx.audit(&event).await?;
    tx.commit().await?;
    outbox::wake(p);
    Ok(ended)
}

/// Front-Channel Logout 1.0 §2: the client's URI, with `iss` and `sid` added to its query when
/// it registered `frontchannel_logout_session_required`.
fn frontchannel_url(p: &Provider, uri: &str, with_session: bool, sid: &str) -> String {
    match url::Url::parse(uri) {
        Ok(mut url) if with_session => {
            url.query_pairs_mut()
                .append_pair("iss", p.issuer())
                .append_pair("sid", sid);
            url.into()
        }
        _ => uri.to_owned(),
    }
}
