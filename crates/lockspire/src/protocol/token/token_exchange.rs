//! Token exchange (RFC 8693): a client presents a token this server issued (the subject
//! token, and optionally an actor token) and receives an access token standing for the same
//! user, never wider than the subject token: its scopes, audiences, `authorization_details`,
//! lifetime and sender constraint all come from it. The exchanged token hangs from the subject
//! token's grant, so revoking that grant revokes it too.
//!
//! Protocol checks come first (the tokens are live and this server's, a sender-constrained token
//! is presented with its key, a refresh token only by its own client, an actor token is the
//! caller's own, nothing is widened); then the host's policy, or the default one, decides
//! whether this client may make this exchange, and whether the result names an actor. RFC 8693
//! §2.2.2: every token that is invalid, or unacceptable by policy, is `invalid_request`.

use serde_json::{Value, json};

use super::request::ExchangeRequest as Request;
use super::{AccessGrant, TokenResponse, mint_access_token, narrow_scopes};
use crate::clock::UnixTime;
use crate::config::AccessTokenFormat;
use crate::exchange::{
    ACCESS_TOKEN_TYPE, ExchangeDecision, ExchangeRequest, ID_TOKEN_TYPE, JWT_TYPE, PresentedKind,
    PresentedToken, REFRESH_TOKEN_TYPE, default_decision,
};
use crate::host::Subject;
use crate::model::authorization_details::AuthorizationDetails;
use crate::model::scope::ScopeSet;
use crate::protocol::authorize::check_resources;
use crate::protocol::client_auth::AuthenticatedClient;
use crate::protocol::error::{ErrorCode, OAuthError};
use crate::protocol::id_token;
use crate::protocol::provider::Provider;
use crate::protocol::scope::{parse_scope, scope_error};
use crate::secrets::{Secret, token_key};
use crate::store::{Actor, Binding, ClientStatus, Outcome, TokenRecord, UserGrant};

/// How many actors an `act` claim may name, the current one and its predecessors (RFC 8693
/// §4.1 leaves chains unbounded; every hop makes the token longer and harder to reason about).
pub(crate) const MAX_ACTORS: usize = 4;

/// A presented token and what an exchanged token inherits from it.
struct Found {
    view: PresentedToken,
    scopes: ScopeSet,
    /// Its user grant; `None` for a client's own token.
    user: Option<UserGrant>,
    authorization_details: AuthorizationDetails,
    expires_at: UnixTime,
    /// The key or certificate it is bound to, which the exchanged token is bound to as well.
    binding: Option<Binding>,
    /// A JWT access token (RFC 9068), valid until it expires wherever it is not checked
    /// against the store.
    jwt: bool,
}

/// The scopes an ID token stands for: who the user is, what the client may learn about them
/// (OIDC Core §5.4). An ID token authorizes nothing else.
const IDENTITY_SCOPES: [&str; 5] = ["openid", "profile", "email", "address", "phone"];

/// Which of the two presented tokens an error is about.
#[derive(Clone, Copy)]
enum Role {
    Subject,
    Actor,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Self::Subject => "subject_token",
            Self::Actor => "actor_token",
        }
    }

    fn invalid(self) -> OAuthError {
        OAuthError::invalid_request(format!(
            "the {} is invalid, expired or revoked",
            self.name()
        ))
    }
}

pub(super) async fn exchange(
    p: &Provider,
    client: &AuthenticatedClient,
    request: &Request<'_>,
) -> Result<TokenResponse, OAuthError> {
    // Registration refuses the grant to public clients; a client changed since is refused here.
    if !client.is_confidential() {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "token exchange requires client authentication",
        ));
    }
    let asks_jwt = match request.requested_token_type {
        None | Some(ACCESS_TOKEN_TYPE) => false,
        Some(JWT_TYPE) => true,
        Some(_) => {
            return Err(OAuthError::invalid_request(
                "requested_token_type must be an access token or a JWT",
            ));
        }
    };
    let (token, token_type) = request.subject;
    let subject = find(p, client, token, token_type, Role::Subject).await?;
    let Some(user) = subject.user.clone() else {
        // Said plainly only to the token's own client: to another it would tell that the token
        // is valid.
        return Err(if subject.view.client_id == client.id().as_str() {
            OAuthError::invalid_request(
                "the subject_token is this client's own token, which stands for no user; ask for another with client credentials",
            )
        } else {
            Role::Subject.invalid()
        });
    };
    // RFC 6749 §6: a refresh token is bound to the client it was issued to.
    if subject.view.kind == PresentedKind::RefreshToken
        && subject.view.client_id != client.id().as_str()
    {
        return Err(Role::Subject
            .invalid()
            .with_reason("another client's refresh token"));
    }
    let actor = match request.actor {
        Some((token, token_type)) => Some(find(p, client, token, token_type, Role::Actor).await?),
        None => None,
    };
    // The actor is who acts: the caller, or a user of the caller. Another client's token would
    // put a party in `act` that took no part.
    if actor
        .as_ref()
        .is_some_and(|a| a.view.client_id != client.id().as_str())
    {
        return Err(Role::Actor
            .invalid()
            .with_reason("an actor token of another client"));
    }
    // An opaque token is revoked the moment its grant is; a JWT lives until it expires. So the
    // exchanged token is a JWT only where the client's tokens are JWTs and so were the ones
    // presented: an exchange never makes an opaque token outlive its revocation.
    let jwt = p.config.access_token_format_for(&client.record().metadata) == AccessTokenFormat::Jwt
        && subject.jwt
        && actor.as_ref().is_none_or(|a| a.jwt);
    let issued_token_type = match (asks_jwt, jwt) {
        (true, false) => {
            return Err(OAuthError::invalid_request(
                "a JWT is issued only to a client of JWT access tokens, for JWT access tokens",
            ));
        }
        (true, true) => JWT_TYPE,
        (false, _) => ACCESS_TOKEN_TYPE,
    };
    let scopes = scopes(p, client, request.scope, &subject.scopes)?;
    let audiences = audiences(p, request, &subject.view.audiences)?;

    let scope_list = scopes.to_vec();
    let asked = ExchangeRequest {
        client_id: client.id().as_str(),
        subject_token: &subject.view,
        actor_token: actor.as_ref().map(|a| &a.view),
        scopes: &scope_list,
        audiences: &audiences,
    };
    let decision = match &p.exchange_policy {
        Some(policy) => policy.decide(&asked).await?,
        None => default_decision(&asked),
    };
    let act = match decision {
        ExchangeDecision::Deny => {
            return Err(OAuthError::invalid_request(
                "this client may not exchange this token",
            ));
        }
        // The subject token's own actors stay on record: impersonating a delegated token
        // does not erase who acted before.
        ExchangeDecision::Impersonate => subject.view.act.clone(),
        ExchangeDecision::Delegate => {
            let Some(actor) = &actor else {
                return Err(OAuthError::invalid_request(
                    "a delegation needs an actor_token",
                ));
            };
            Some(delegation(p, client, actor, subject.view.act.as_ref())?)
        }
    };

    let not_after = actor
        .as_ref()
        .map_or(subject.expires_at, |a| a.expires_at.min(subject.expires_at));
    if not_after <= p.now() {
        return Err(OAuthError::invalid_request(
            "the tokens presented expire now",
        ));
    }
    // The subject token's constraint carries over; the request has proved it holds its key.
    let binding = subject.binding.clone().or_else(|| client.binding());
    let grant = AccessGrant {
        client,
        user: Some(&user),
        scopes: &scopes,
        resources: &audiences,
        authorization_details: &subject.authorization_details,
        act: act.as_ref(),
        not_after: Some(not_after),
        binding: binding.clone(),
        opaque: !jwt,
    };
    let (access_token, record) = mint_access_token(p, &grant)?;
    p.store.insert_token(&record).await?;
    let event = p
        .security_event(
            "token_exchanged",
            Actor::Client(client.id()),
            Outcome::Done,
            Some(client.id()),
            Some(&user.subject),
            match decision {
                ExchangeDecision::Delegate => "delegation",
                _ => "impersonation",
            },
        )
        .as_action(
            "token_exchanged",
            json!({
                "subject_client": subject.view.client_id,
                "actor_client": actor.as_ref().map(|a| &a.view.client_id),
            }),
        );
    p.store.audit(&event).await?;
    Ok(TokenResponse {
        access_token: Secret::new(access_token),
        token_type: super::token_type(binding.as_ref()),
        expires_in: record.issued().expires_at - p.now(),
        scope: scopes.to_string(),
        refresh_token: None,
        id_token: None,
        authorization_details: subject.authorization_details.to_member(),
        issued_token_type: Some(issued_token_type),
    })
}

/// Finds a presented token by its declared type (RFC 8693 §3).
async fn find(
    p: &Provider,
    client: &AuthenticatedClient,
    token: &str,
    token_type: &str,
    role: Role,
) -> Result<Found, OAuthError> {
    let kind = match token_type {
        ACCESS_TOKEN_TYPE | JWT_TYPE => PresentedKind::AccessToken,
        REFRESH_TOKEN_TYPE => PresentedKind::RefreshToken,
        ID_TOKEN_TYPE => return from_id_token(p, token, role).await,
        _ => {
            return Err(OAuthError::invalid_request(format!(
                "{}_type is not a token type this server issues",
                role.name()
            )));
        }
    };
    let record = p
        .store
        .active_token(&token_key(token), p.now())
        .await?
        .ok_or_else(|| role.invalid())?;
    let (binding, act) = match (&record, kind) {
        // `jwt` names an access token issued in the JWT format (RFC 9068).
        (TokenRecord::Access(a), PresentedKind::AccessToken)
            if token_type != JWT_TYPE || a.format == AccessTokenFormat::Jwt =>
        {
            (a.binding.as_ref(), a.act.clone())
        }
        (TokenRecord::Refresh(r), PresentedKind::RefreshToken) => (r.binding.as_ref(), None),
        _ => {
            return Err(role
                .invalid()
                .with_reason("a token of another type than declared"));
        }
    };
    // A sender-constrained token (RFC 8705 §3, RFC 9449 §6) is presented with its key:
    // exchanging it must not be a way to shed the constraint.
    if binding.is_some_and(|b| !client.holds(b)) {
        return Err(role
            .invalid()
            .with_reason("a sender-constrained token presented without its key"));
    }
    let issued = record.issued();
    let user = record.user().cloned();
    Ok(Found {
        view: PresentedToken {
            kind,
            client_id: issued.client_id.to_string(),
            subject: user
                .as_ref()
                .map(|u| Subject::new(u.subject.clone()))
                .transpose()
                .map_err(|e| OAuthError::internal(e.to_string()))?,
            scopes: issued.scopes.to_vec(),
            audiences: issued.resources.clone(),
            act,
            sender_constrained: binding.is_some(),
        },
        scopes: issued.scopes.clone(),
        user,
        authorization_details: issued.authorization_details.clone(),
        expires_at: issued.expires_at,
        binding: binding.cloned(),
        jwt: matches!(&record, TokenRecord::Access(a) if a.format == AccessTokenFormat::Jwt),
    })
}

/// An unexpired ID token stands for the sign-in it tells of (its `auth_time`) in the browser
/// session it was issued in (its `sid`): the grant its client holds there, while that session
/// lasts. It authorizes no more than it says — who the user is — so what can be exchanged for it
/// is within the grant's identity scopes (OIDC Core §5.4), for no audience. An ID token issued
/// without a browser session (device flow, CIBA) stands for nothing that can be exchanged.
async fn from_id_token(p: &Provider, token: &str, role: Role) -> Result<Found, OAuthError> {
    let now = p.now();
    let id = id_token::verify(p, token).ok_or_else(|| role.invalid())?;
    if id.expires_at <= now {
        return Err(role.invalid().with_reason("an expired ID token"));
    }
    let Some(sid) = id.sid.as_deref() else {
        return Err(role
            .invalid()
            .with_reason("an ID token issued without a browser session"));
    };
    let client = p
        .store
        .client(&p.tenant, &id.client_id)
        .await?
        .filter(|c| c.status == ClientStatus::Active)
        .ok_or_else(|| {
            role.invalid()
                .with_reason("the ID token's client is not active")
        })?;
    let grant = p
        .store
        .grants_by_sid(&p.tenant, sid, now)
        .await?
        .into_iter()
        .rev()
        .find(|g| {
            g.client_id.as_str() == id.client_id
                && g.auth_time == id.auth_time
                && p.subject_for(&client.metadata, &g.subject) == id.sub
        })
        .ok_or_else(|| {
            role.invalid()
                .with_reason("the ID token's session has ended")
        })?;
    let scopes: ScopeSet = grant
        .scopes
        .iter()
        .filter(|s| IDENTITY_SCOPES.contains(&s.as_str()))
        .collect();
    Ok(Found {
        view: PresentedToken {
            kind: PresentedKind::IdToken,
            client_id: id.client_id,
            subject: Some(
                Subject::new(grant.subject.clone())
                    .map_err(|e| OAuthError::internal(e.to_string()))?,
            ),
            scopes: scopes.to_vec(),
            audiences: Vec::new(),
            act: None,
            // A bearer artifact, whatever the grant's tokens are bound to.
            sender_constrained: false,
        },
        scopes,
        user: Some(UserGrant {
            grant_id: grant.id,
            subject: grant.subject,
        }),
        authorization_details: AuthorizationDetails::default(),
        expires_at: id.expires_at,
        binding: None,
        // Its session can end before it expires.
        jwt: false,
    })
}

/// The scopes of the exchanged token (RFC 8693 §2.1): those asked for, each within the subject
/// token's and the client's registration; without `scope`, the subject token's that the
/// client may hold.
fn scopes(
    p: &Provider,
    client: &AuthenticatedClient,
    asked: Option<&str>,
    held: &ScopeSet,
) -> Result<ScopeSet, OAuthError> {
    let metadata = &client.record().metadata;
    // `offline_access` asks for refresh tokens (OIDC Core §11); an exchange issues none.
    let asked_scopes = parse_scope(asked)?;
    if asked_scopes.contains("offline_access") {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "offline_access is not for exchanged tokens: an exchange issues no refresh token",
        ));
    }
    let held: ScopeSet = held.iter().filter(|s| *s != "offline_access").collect();
    let held = &held;
    if asked_scopes.is_empty() {
        return Ok(held
            .iter()
            .filter(|s| p.config.allows_scope(metadata, s))
            .collect());
    }
    let scopes = narrow_scopes(asked, held)?;
    if let Some(bad) = scopes.iter().find(|s| !p.config.allows_scope(metadata, s)) {
        return Err(scope_error(
            &p.config,
            ErrorCode::InvalidScope,
            bad,
            "is not allowed for this client",
        ));
    }
    Ok(scopes)
}

/// The audiences of the exchanged token: the `audience` and `resource` values (RFC 8693 §2.1;
/// this server names its resource servers by their resource indicators, RFC 8707), each served
/// here and within the subject token's; without any, the subject token's.
fn audiences(
    p: &Provider,
    request: &Request<'_>,
    held: &[String],
) -> Result<Vec<String>, OAuthError> {
    let named = check_resources(
        &p.config,
        request.audiences.iter().chain(&request.resources).copied(),
    )
    .map_err(|e| {
        OAuthError::new(
            ErrorCode::InvalidTarget,
            "audience and resource must be the absolute URIs of resources this server serves",
        )
        .with_reason(e.reason().to_owned())
    })?;
    if named.is_empty() {
        return Ok(held.to_vec());
    }
    if let Some(wider) = named.iter().find(|a| !held.contains(a)) {
        return Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            "an exchanged token's audience must lie within the subject token's",
        )
        .with_reason(format!("audience {wider} is not the subject token's")));
    }
    Ok(named)
}

/// The `act` claim of a delegation (RFC 8693 §4.1): the actor as this client knows it, with
/// the subject token's own actors nested beneath as its predecessors.
fn delegation(
    p: &Provider,
    client: &AuthenticatedClient,
    actor: &Found,
    earlier: Option<&Value>,
) -> Result<Value, OAuthError> {
    let sub = match &actor.user {
        Some(user) => p.subject_for(&client.record().metadata, &user.subject),
        // A client acting on its own behalf is named by its id, as its JWT access tokens
        // name it (RFC 9068 §2.2).
        None => actor.view.client_id.clone(),
    };
    let mut act = json!({ "sub": sub, "client_id": actor.view.client_id });
    if let Some(earlier) = earlier {
        act["act"] = earlier.clone();
    }
    if actors(&act) > MAX_ACTORS {
        return Err(OAuthError::invalid_request(
            "the chain of delegations is too long",
        ));
    }
    Ok(act)
}

/// How many actors an `act` claim names.
fn actors(act: &Value) -> usize {
    std::iter::successors(Some(act), |a| a.get("act")).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_counts_every_nested_actor() {
        assert_eq!(actors(&json!({ "sub": "a" })), 1);
        assert_eq!(
            actors(&json!({ "sub": "c", "act": { "sub": "b", "act": { "sub": "a" } } })),
            3
        );
    }
}
