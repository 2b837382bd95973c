//! Client-initiated backchannel authentication (OpenID Connect CIBA Core 1.0): a client that
//! knows who its user is (a call-centre agent's customer, a shop's checkout) asks Lockspire to
//! authenticate them on their own device. The host finds the user the client names and reaches
//! that device; the user approves or denies there, and the host tells Lockspire. The client
//! learns the result in the mode it registered: it polls the token endpoint (`poll`), is called
//! when the user decided and then asks once (`ping`), or is sent the tokens (`push`).
//!
//! `auth_req_id` is a 256-bit random value stored as its digest. The ping and push modes send
//! it back to the client, with the client's `client_notification_token`, so for them both are
//! also kept sealed under the server key until the request is decided. Notifications go
//! through the outbox: written in the transaction of the decision, delivered by any process.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::approval::{self, Approval};
use super::authorize::{check_id_token_hint, check_scope};
use super::client_auth::{self, AuthenticatedClient};
use super::endpoints::Endpoint;
use super::error::{ErrorCode, OAuthError};
use super::id_token;
use super::outbox::{self, Payload};
use super::params::Params;
use super::provider::Provider;
use super::token::decoupled;
use super::token::redeem::mint_for_grant;
use crate::host::{
    BackchannelApproval, BackchannelRequest, Context, HintResolution, LoginHint, Session, Subject,
};
use crate::model::client::{DeliveryMode, GrantType};
use crate::mtls::ClientCertificate;
use crate::secrets::{Secret, random_token, token_digest};
use crate::store::{
    ClientRecord, ClientStatus, Consumed, DECOUPLED_SINGLE_USE, Decision, DecoupledKind,
    DecoupledRecord, DecoupledStatus, Issued, OutboxKind,
};
use stored::Stored;

/// Longest `binding_message` accepted (CIBA Core §7.1: "relatively short").
const MAX_BINDING_MESSAGE: usize = 64;

/// Longest `client_notification_token` accepted (CIBA Core §7.1: at most 1024 characters).
const MAX_NOTIFICATION_TOKEN: usize = 1024;

/// Characters Unicode counts as letters that show as nothing (Hangul fillers).
const INVISIBLE_LETTERS: [char; 4] = ['\u{115F}', '\u{1160}', '\u{3164}', '\u{FFA0}'];

/// User codes checked per user per [`USER_CODE_WINDOW`].
const USER_CODE_CHECKS: i64 = 5;
/// The window, in seconds, over which user code checks are counted.
const USER_CODE_WINDOW: i64 = 15 * 60;

/// The answer to a backchannel authentication request (CIBA Core §7.3).
#[derive(Debug, Serialize)]
pub(crate) struct Acknowledgement {
    auth_req_id: Secret,
    expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    interval: Option<i64>,
}

pub(crate) mod stored;

/// What a ping or push must send back to the client.
#[derive(Serialize, Deserialize)]
struct Notify {
    auth_req_id: String,
    client_notification_token: String,
}

fn seal_context(digest: &str) -> String {
    format!("ciba:{digest}")
}

fn error(code: ErrorCode, description: &'static str) -> OAuthError {
    OAuthError::new(code, description)
}

/// `POST /bc-authorize` (CIBA Core §7): authenticates the client, checks what it asks, finds
/// the user through the host, stores the request, asks the host to reach the user, and answers
/// with the `auth_req_id`.
pub(crate) async fn request(
    p: &Provider,
    authorization: Option<&str>,
    certificate: Option<ClientCertificate>,
    params: &Params,
) -> Result<Acknowledgement, OAuthError> {
    let Some(host) = &p.backchannel else {
        return Err(OAuthError::internal(
            "backchannel authentication without an authenticator",
        ));
    };
    let client = client_auth::authenticate(
        p,
        client_auth::presented(authorization, params)?,
        Endpoint::BackchannelAuthentication,
        certificate,
    )
    .await?;
    let metadata = &client.record().metadata;
    let mode = match metadata.backchannel_token_delivery_mode {
        Some(mode) if client.is_confidential() && metadata.allows_grant(GrantType::Ciba) => mode,
        _ => {
            return Err(error(
                ErrorCode::UnauthorizedClient,
                "this client may not use backchannel authentication",
            ));
        }
    };
    // CIBA Core §7.1.1: a signed request is the request; parameters outside it but the
    // client's authentication are not used. A client that registered a signing alg signs
    // every request (§4), so an unsigned one is not its own.
    let signed;
    let params = match params.get("request")? {
        Some(jwt) => {
            signed = super::request_object::backchannel_parameters(p, client.record(), jwt).await?;
            &signed
        }
        None if metadata
            .backchannel_authentication_request_signing_alg
            .is_some() =>
        {
            return Err(OAuthError::invalid_request(
                "this client signs its authentication requests: send them in request",
            ));
        }
        None => params,
    };
    if params.get("scope")?.is_none() {
        return Err(OAuthError::invalid_request(
            "scope is required, with openid among its values",
        ));
    }
    let scopes = check_scope(p, client.record(), params)?;
    if !scopes.contains("openid") {
        return Err(error(
            ErrorCode::InvalidScope,
            "a backchannel authentication request must ask for openid",
        ));
    }
    let token = notification_token(mode, params)?;
    let binding_message = binding_message(params)?;
    let lifetime = p.config.lifetimes.backchannel_request;
    let expires_in = match params.get("requested_expiry")? {
        None => lifetime,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n > 0 && v.bytes().all(|b| b.is_ascii_digit()) => n.min(lifetime),
            _ => {
                return Err(OAuthError::invalid_request(
                    "requested_expiry must be a positive integer",
                ));
            }
        },
    };
    let acr_values: Vec<String> = params
        .get("acr_values")?
        .map(|v| {
            v.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let ctx = Context {
        issuer: p.issuer().to_owned(),
        client_id: client.id().to_string(),
        client_name: metadata.client_name.clone(),
        scopes: scopes.to_vec(),
        login_hint: params.get("login_hint")?.map(str::to_owned),
        acr_values: acr_values.clone(),
        ..Context::default()
    };
    let subject = user(p, host.as_ref(), client.record(), params, &ctx).await?;
    check_user_code(p, host.as_ref(), &client, &subject, params, &ctx).await?;

    let auth_req_id = random_token();
    let digest = token_digest(&auth_req_id);
    let notify = match token {
        Some(token) => {
            let notify = Notify {
                auth_req_id: auth_req_id.clone(),
                client_notification_token: token.to_owned(),
            };
            let json =
                serde_json::to_vec(&notify).map_err(|e| OAuthError::internal(e.to_string()))?;
            Some(p.secrets.seal(&seal_context(&digest), &json))
        }
        None => None,
    };
    let stored = Stored {
        mode,
        endpoint: match mode {
            DeliveryMode::Poll => None,
            _ => metadata.backchannel_client_notification_endpoint.clone(),
        },
        binding_message: binding_message.clone(),
        acr_values: acr_values.clone(),
        notify,
    };
    let now = p.now();
    let record = DecoupledRecord {
        issued: Issued {
            digest: digest.clone(),
            tenant_id: p.tenant.clone(),
            client_id: client.id().clone(),
            scopes: scopes.clone(),
            resources: Vec::new(),
            authorization_details: Default::default(),
            created_at: now,
            expires_at: now + expires_in,
            consumed_at: None,
            revoked_at: None,
        },
        kind: DecoupledKind::Ciba,
        user_code: None,
        subject: Some(subject.as_str().to_owned()),
        request: serde_json::to_string(&stored).map_err(|e| OAuthError::internal(e.to_string()))?,
        status: DecoupledStatus::Pending,
        poll_interval: p.config.poll_interval,
    };
    if !p.store.insert_decoupled(&record).await? {
        return Err(OAuthError::internal(
            "a fresh auth_req_id was already taken",
        ));
    }
    let request = BackchannelRequest {
        id: digest,
        subject,
        client_id: client.id().to_string(),
        client_name: display_name(client.record()),
        scopes: scopes.to_vec(),
        binding_message,
        acr_values,
        expires_at: now + expires_in,
    };
    if let Err(e) = host.notify(&request).await {
        // The client is told the request failed: it must not stay answerable.
        p.store.withdraw_decoupled(&request.id).await?;
        return Err(e.into());
    }
    Ok(Acknowledgement {
        auth_req_id: Secret::new(auth_req_id),
        expires_in,
        interval: (mode != DeliveryMode::Push).then_some(p.config.poll_interval),
    })
}

/// CIBA Core §7.1: `client_notification_token`, required of ping and push clients, a bearer
/// credential (RFC 6750 §2.1 syntax) the server sends back with its notification.
pub(crate) fn notification_token(
    mode: DeliveryMode,
    params: &Params,
) -> Result<Option<&str>, OAuthError> {
    if mode == DeliveryMode::Poll {
        return Ok(None);
    }
    let token = params.get("client_notification_token")?.ok_or_else(|| {
        OAuthError::invalid_request("client_notification_token is required in this mode")
    })?;
    // RFC 6750 §2.1: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    let body = token.trim_end_matches('=');
    let b64token = !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        });
    if token.len() > MAX_NOTIFICATION_TOKEN || !b64token {
        return Err(OAuthError::invalid_request(
            "client_notification_token must be a bearer token of at most 1024 characters",
        ));
    }
    Ok(Some(token))
}

/// CIBA Core §7.1: `binding_message`, short plain text shown on both devices.
pub(crate) fn binding_message(params: &Params) -> Result<Option<String>, OAuthError> {
    let Some(message) = params.get("binding_message")? else {
        return Ok(None);
    };
    // A limited set: letters and digits of any script, spaces and ASCII punctuation but for
    // markup. No control or formatting characters (bidirectional overrides, zero-width
    // characters), which could make the text the user compares read as something else.
    let plain = message.chars().all(|c| {
        (c.is_alphanumeric() && !INVISIBLE_LETTERS.contains(&c))
            || c == ' '
            || (c.is_ascii_punctuation() && c != '<' && c != '>')
    });
    if message.is_empty() || message.chars().count() > MAX_BINDING_MESSAGE || !plain {
        return Err(error(
            ErrorCode::InvalidBindingMessage,
            "binding_message must be 1 to 64 characters of plain text",
        ));
    }
    Ok(Some(message.to_owned()))
}

/// The user the request names with exactly one hint (CIBA Core §7.1): `id_token_hint` verified
/// here (expired allowed), `login_hint` and `login_hint_token` through the host.
async fn user(
    p: &Provider,
    host: &dyn crate::host::DynBackchannel,
    client: &ClientRecord,
    params: &Params,
    ctx: &Context,
) -> Result<Subject, OAuthError> {
    let login_hint = params.get("login_hint")?;
    let hint_token = params.get("login_hint_token")?;
    let id_token_subject = check_id_token_hint(p, client, params)?;
    let given = [
        login_hint.is_some(),
        hint_token.is_some(),
        id_token_subject.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(OAuthError::invalid_request(
            "exactly one of login_hint, login_hint_token and id_token_hint is required",
        ));
    }
    let unknown = || error(ErrorCode::UnknownUserId, "the user is not known");
    let resolution = match (login_hint, hint_token, id_token_subject) {
        (Some(hint), _, _) => host.resolve(LoginHint::LoginHint(hint), ctx).await?,
        (_, Some(token), _) => host.resolve(LoginHint::LoginHintToken(token), ctx).await?,
        (_, _, Some(sub)) => {
            // A pairwise `sub` (OIDC Core §8) cannot be turned back into the user it hides.
            if client.metadata.sector().is_some() {
                return Err(unknown());
            }
            let subject = Subject::new(sub).map_err(|_| unknown())?;
            host.resolve(LoginHint::IdTokenHint(&subject), ctx).await?
        }
        _ => return Err(unknown()),
    };
    match resolution {
        HintResolution::User(subject) => Ok(subject),
        HintResolution::Unknown => Err(unknown()),
        HintResolution::Expired => Err(error(
            ErrorCode::ExpiredLoginHintToken,
            "the login_hint_token has expired",
        )),
    }
}

/// CIBA Core §7.1: a client registered with `backchannel_user_code_parameter` sends the user's
/// secret `user_code`, which the host checks; other clients send none.
async fn check_user_code(
    p: &Provider,
    host: &dyn crate::host::DynBackchannel,
    client: &AuthenticatedClient,
    subject: &Subject,
    params: &Params,
    ctx: &Context,
) -> Result<(), OAuthError> {
    let code = params.get("user_code")?;
    let registered = client.record().metadata.backchannel_user_code_parameter;
    let code = match (registered, code) {
        (false, None) => return Ok(()),
        (false, Some(_)) => {
            return Err(OAuthError::invalid_request(
                "this client is not registered to send user_code",
            ));
        }
        (true, None) => return Err(error(ErrorCode::MissingUserCode, "user_code is required")),
        (true, Some(code)) => code,
    };
    // A user code is a short secret: its checks are limited per user, as code entry is.
    let key = p
        .secrets
        .attempt_key(&format!("backchannel-user-code\0{}", subject.as_str()));
    let (count, window) = p
        .store
        .count_attempt(&key, USER_CODE_WINDOW, p.now())
        .await?;
    if count > USER_CODE_CHECKS {
        return Err(error(
            ErrorCode::InvalidUserCode,
            "too many user codes were checked for this user; try again later",
        ));
    }
    if host.verify_user_code(subject, code, ctx).await? {
        // Only wrong codes count: a client that knows the code is no guesser.
        p.store.refund_attempt(&key, window).await?;
        Ok(())
    } else {
        Err(error(
            ErrorCode::InvalidUserCode,
            "the user_code is invalid",
        ))
    }
}

fn display_name(client: &ClientRecord) -> String {
    client
        .metadata
        .client_name
        .clone()
        .unwrap_or_else(|| client.client_id.to_string())
}

/// The pending requests for `subject`, oldest first, for the host's authentication device.
pub(crate) async fn pending(
    p: &Provider,
    subject: &Subject,
) -> Result<Vec<BackchannelRequest>, OAuthError> {
    let rows = p
        .store
        .pending_backchannel_requests(&p.tenant, subject.as_str(), p.now())
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let (Some(client), Some(stored)) =
            (active_client(p, &row).await?, Stored::read(&row.request))
        else {
            continue;
        };
        out.push(BackchannelRequest {
            id: row.issued.digest.clone(),
            subject: subject.clone(),
            client_id: client.client_id.to_string(),
            client_name: display_name(&client),
            scopes: row.issued.scopes.to_vec(),
            binding_message: stored.binding_message,
            acr_values: stored.acr_values,
            expires_at: row.issued.expires_at,
        });
    }
    Ok(out)
}

async fn active_client(
    p: &Provider,
    row: &DecoupledRecord,
) -> Result<Option<ClientRecord>, OAuthError> {
    Ok(p.store
        .client(&p.tenant, &row.issued.client_id)
        .await?
        .filter(|c| c.status == ClientStatus::Active))
}

/// A pending request being decided: its row, its client, what it keeps, and how the client
/// is told.
struct Deciding {
    row: DecoupledRecord,
    client: ClientRecord,
    stored: Stored,
    /// Where and what to send, for the ping and push modes.
    notify: Option<(String, Notify)>,
}

impl Deciding {
    /// What the row keeps once decided: no longer what a notification sends back.
    fn decided_request(&self) -> Result<String, OAuthError> {
        let kept = Stored {
            notify: None,
            endpoint: None,
            ..self.stored.clone()
        };
        serde_json::to_string(&kept).map_err(|e| OAuthError::internal(e.to_string()))
    }
}

/// The pending, unexpired request `id` for `subject`, with its client.
async fn pending_request(
    p: &Provider,
    id: &str,
    subject: &Subject,
) -> Result<Option<Deciding>, OAuthError> {
    let Some(row) = p.store.decoupled(id).await? else {
        return Ok(None);
    };
    let live = row.kind == DecoupledKind::Ciba
        && row.status == DecoupledStatus::Pending
        && row.issued.expires_at > p.now()
        && row.subject.as_deref() == Some(subject.as_str());
    if !live {
        return Ok(None);
    }
    let Some(client) = active_client(p, &row).await? else {
        return Ok(None);
    };
    let stored = Stored::read(&row.request)
        .ok_or_else(|| OAuthError::internal("a stored backchannel request is unreadable"))?;
    let notify = match (stored.mode, &stored.endpoint, &stored.notify) {
        (DeliveryMode::Poll, _, _) => None,
        (_, Some(url), Some(sealed)) => {
            let plain = p
                .secrets
                .open(&seal_context(&row.issued.digest), sealed)
                .map_err(|e| OAuthError::internal(e.to_string()))?;
            let notify: Notify =
                serde_json::from_slice(&plain).map_err(|e| OAuthError::internal(e.to_string()))?;
            Some((url.clone(), notify))
        }
        _ => {
            return Err(OAuthError::internal(
                "a ping or push request without its notification",
            ));
        }
    };
    Ok(Some(Deciding {
        row,
        client,
        stored,
        notify,
    }))
}

/// The user approved request `id` on their authentication device: records the grant, and
/// notifies the client as the mode of its request says — a ping, or the tokens themselves.
/// False when there is no such pending request for this user (decided already, expired, or
/// another user's).
pub(crate) async fn approve(
    p: &Provider,
    id: &str,
    approval: &BackchannelApproval,
) -> Result<bool, OAuthError> {
    let Some(deciding) = pending_request(p, id, &approval.subject).await? else {
        return Ok(false);
    };
    let (row, client) = (&deciding.row, &deciding.client);
    let session = Session {
        subject: approval.subject.clone(),
        auth_time: approval.auth_time,
        acr: approval.acr.clone(),
        amr: approval.amr.clone(),
    };
    // Read before the transaction: its first statement must be a write (see `Store::begin`).
    let previous = p
        .store
        .consent(&p.tenant, session.subject.as_str(), &client.client_id)
        .await?;
    let approval = Approval::of_request(
        row,
        &session,
        previous,
        "approved on the user's authentication device",
    );
    let grant = approval.grant(p)?;
    // Push: the tokens are minted now, before the transaction (host claims, signatures).
    let pushed = match (deciding.stored.mode, &deciding.notify) {
        (DeliveryMode::Push, Some((_, notify))) => {
            // Nothing authenticates now, so the profile check of authentication happens here:
            // a client that no longer meets its profile (FAPI 2.0) gets no tokens.
            crate::protocol::client::check_profile(&p.config, &client.metadata)?;
            let push_client = AuthenticatedClient::for_push(client.clone());
            let mut plan = decoupled::plan(p, &push_client, &grant)?;
            plan.auth_req_id = Some(notify.auth_req_id.clone());
            let claims =
                id_token::host_claims(p, &client.client_id, session.subject.as_str(), &plan.scopes)
                    .await?;
            Some(mint_for_grant(
                p,
                &push_client,
                &grant,
                &plan,
                Some(&claims),
            )?)
        }
        _ => None,
    };
    let request = deciding.decided_request()?;
    let now = p.now();
    let mut tx = p.store.begin().await?;
    let grant = approval::record_grant(p, &mut tx, approval, grant).await?;
    let decided = tx
        .decide_decoupled(
            id,
            session.subject.as_str(),
            Decision::Approve(&grant.id),
            &request,
            now,
        )
        .await?;
    if !decided {
        return Ok(false);
    }
    match (deciding.notify, pushed) {
        (None, _) => {}
        (Some((url, notify)), None) => {
            let body = serde_json::json!({ "auth_req_id": notify.auth_req_id });
            let payload = Payload {
                bearer: Some(notify.client_notification_token),
                body,
            };
            outbox::enqueue(
                p,
                &mut tx,
                OutboxKind::CibaPing,
                &client.client_id,
                &url,
                &payload,
            )
            .await?;
        }
        (Some((url, notify)), Some(minted)) => {
            // CIBA Core §10.3: the request is redeemed by the push itself.
            let consumed = tx
                .consume_in(&DECOUPLED_SINGLE_USE, DecoupledKind::Ciba.as_str(), id, now)
                .await?;
            if !matches!(consumed, Consumed::Now) {
                return Ok(false);
            }
            minted.store_in(&mut tx).await?;
            let mut body = serde_json::to_value(minted.response())
                .map_err(|e| OAuthError::internal(e.to_string()))?;
            if let Value::Object(map) = &mut body {
                map.insert("auth_req_id".into(), Value::String(notify.auth_req_id));
            }
            let payload = Payload {
                bearer: Some(notify.client_notification_token),
                body,
            };
            outbox::enqueue(
                p,
                &mut tx,
                OutboxKind::CibaPush,
                &client.client_id,
                &url,
                &payload,
            )
            .await?;
        }
    }
    tx.commit().await?;
    outbox::wake(p);
    Ok(true)
}

/// The user denied request `id`: the client learns it as the mode of its request says
/// (`access_denied` when it polls; a ping; or the error pushed, CIBA Core §12). False when
/// there is no such pending request for this user.
pub(crate) async fn deny(p: &Provider, id: &str, subject: &Subject) -> Result<bool, OAuthError> {
    let Some(deciding) = pending_request(p, id, subject).await? else {
        return Ok(false);
    };
    let request = deciding.decided_request()?;
    let mut tx = p.store.begin().await?;
    if !tx
        .decide_decoupled(id, subject.as_str(), Decision::Deny, &request, p.now())
        .await?
    {
        return Ok(false);
    }
    if let Some((url, notify)) = deciding.notify {
        let (kind, body) = if deciding.stored.mode == DeliveryMode::Ping {
            (
                OutboxKind::CibaPing,
                serde_json::json!({ "auth_req_id": notify.auth_req_id }),
            )
        } else {
            (
                OutboxKind::CibaPush,
                serde_json::json!({
                    "auth_req_id": notify.auth_req_id,
                    "error": "access_denied",
                    "error_description": "the user denied the request",
                }),
            )
        };
        let payload = Payload {
            bearer: Some(notify.client_notification_token),
            body,
        };
        outbox::enqueue(p, &mut tx, kind, &deciding.client.client_id, &url, &payload).await?;
    }
    tx.commit().await?;
    outbox::wake(p);
    Ok(true)
}
