//! The one path of every grant that redeems a single-use artifact — an authorization code, a
//! refresh token, an approved device code or an approved CIBA request (which a push redeems at
//! once, in the approval's transaction, with the same conditional write):
//!
//! 1. read the artifact's row;
//! 2. check the artifact's own rules against it, once (its client, its redirect URI and PKCE
//!    challenge, its certificate binding); the row's content never changes, only its state, so
//!    these are the rules of the row the transaction consumes;
//! 3. mint ahead: read the grant, fetch the host's claims, mint and sign every token of the
//!    response, so that host code and signatures never run while the transaction holds the
//!    database's write lock (which on SQLite every other write waits for);
//! 4. one transaction whose conditional consume decides: this request redeems the artifact;
//!    or it had been redeemed before, a replay, and its grant with every token issued from it
//!    is revoked (RFC 6749 §4.1.2, RFC 9700 §4.14.2); or it is gone. The grant must still be
//!    live inside that transaction;
//! 5. commit the minted tokens with the consume: the client gets all of them or none.
//!
//! A refused check still goes through the transaction, which rolls back: the artifact stays
//! unconsumed for its rightful client, and a refused request that races a redemption finds the
//! artifact consumed and revokes the grant as a replay.

use super::{AccessGrant, TokenResponse, mint_access_token, mint_refresh_token};
use crate::host::Claims;
use crate::model::authorization_details::AuthorizationDetails;
use crate::model::scope::ScopeSet;
use crate::protocol::client_auth::AuthenticatedClient;
use crate::protocol::error::OAuthError;
use crate::protocol::id_token::{self, IdTokenInput};
use crate::protocol::provider::Provider;
use crate::secrets::{Secret, token_key};
use crate::store::{
    Actor, CodeRecord, GrantRecord, Issued, Outcome, RefreshRecord, RevokedGrant, Store,
    StoreError, TOKEN_SINGLE_USE, TokenKind, TokenRecord, Tx, UserGrant,
};
use crate::store::{Consumed, SingleUseTable};

/// The row of an artifact consumed once: issued from a user's grant, kept in a table of
/// single-use artifacts under a kind.
pub(super) trait SingleUse: Sized {
    /// Its table.
    const TABLE: &'static SingleUseTable;
    /// Its kind in that table.
    const KIND: &'static str;
    /// The key the presented artifact is stored under.
    fn key(presented: &str) -> String;
    /// Its row, read without locking; `None` when there is none of this kind, or when the row
    /// is not (yet) redeemable as this type.
    fn peek(
        store: &Store,
        key: &str,
    ) -> impl Future<Output = Result<Option<Self>, StoreError>> + Send;
    /// What every row holds.
    fn issued(&self) -> &Issued;
    /// The grant it was issued from.
    fn user(&self) -> &UserGrant;
}

/// A token-table row of one kind, read by its key.
async fn peek_token<T>(
    store: &Store,
    key: &str,
    of_kind: impl FnOnce(TokenRecord) -> Option<T>,
) -> Result<Option<T>, StoreError> {
    Ok(store.peek_token(key).await?.and_then(of_kind))
}

impl SingleUse for CodeRecord {
    const TABLE: &'static SingleUseTable = &TOKEN_SINGLE_USE;
    const KIND: &'static str = TokenKind::Code.as_str();
    fn key(presented: &str) -> String {
        token_key(presented)
    }
    async fn peek(store: &Store, key: &str) -> Result<Option<Self>, StoreError> {
        peek_token(store, key, |record| match record {
            TokenRecord::Code(code) => Some(code),
            _ => None,
        })
        .await
    }
    fn issued(&self) -> &Issued {
        &self.issued
    }
    fn user(&self) -> &UserGrant {
        &self.user
    }
}

impl SingleUse for RefreshRecord {
    const TABLE: &'static SingleUseTable = &TOKEN_SINGLE_USE;
    const KIND: &'static str = TokenKind::Refresh.as_str();
    fn key(presented: &str) -> String {
        token_key(presented)
    }
    async fn peek(store: &Store, key: &str) -> Result<Option<Self>, StoreError> {
        peek_token(store, key, |record| match record {
            TokenRecord::Refresh(refresh) => Some(refresh),
            _ => None,
        })
        .await
    }
    fn issued(&self) -> &Issued {
        &self.issued
    }
    fn user(&self) -> &UserGrant {
        &self.user
    }
}

/// A single-use artifact a grant redeems.
pub(super) trait Artifact {
    /// Its row.
    type Row: SingleUse;
    /// What the audit log calls a second redemption.
    const REPLAY_ACTION: &'static str;
    /// The `invalid_grant` it is refused with; `reason` goes to the log only.
    fn invalid(reason: &'static str) -> OAuthError;
    /// Its own rules, against its row.
    fn check(&self, client: &AuthenticatedClient, row: &Self::Row) -> Result<(), OAuthError>;
    /// What redeeming it issues.
    fn plan(
        &self,
        p: &Provider,
        client: &AuthenticatedClient,
        row: &Self::Row,
        grant: &GrantRecord,
    ) -> Result<Plan, OAuthError>;
}

/// Redeems `presented` as an `A` for `client`.
pub(super) async fn redeem<A: Artifact>(
    p: &Provider,
    client: &AuthenticatedClient,
    artifact: &A,
    presented: &str,
) -> Result<TokenResponse, OAuthError> {
    let digest = A::Row::key(presented);
    let row = A::Row::peek(&p.store, &digest)
        .await?
        .ok_or_else(|| A::invalid("unknown"))?;
    redeem_row(p, client, artifact, row).await
}

/// Redeems `presented` as an `A` that stays usable: a refresh token that is not rotated (FAPI
/// 2.0 §5.3.2.1). The same checks and minting as [`redeem`], but nothing is consumed: the
/// transaction stores the new tokens only while the grant is live, which revoking the token
/// ends (RFC 7009 §2.1).
pub(super) async fn reuse<A: Artifact>(
    p: &Provider,
    client: &AuthenticatedClient,
    artifact: &A,
    presented: &str,
) -> Result<TokenResponse, OAuthError> {
    let row = A::Row::peek(&p.store, &A::Row::key(presented))
        .await?
        .ok_or_else(|| A::invalid("unknown"))?;
    let state = row.issued();
    let now = p.now();
    // A token rotated before (while the client was held to no profile) stays spent, and
    // presenting it is the replay it always was: its grant is revoked (RFC 9700 §4.14.2).
    if state.consumed_at.is_some() {
        return redeem_row(p, client, artifact, row).await;
    }
    if state.revoked_at.is_some() || state.expires_at <= now {
        return Err(A::invalid("expired or revoked"));
    }
    let (minted, grant_id) = mint_ahead(p, client, artifact, &row, now).await?;
    let now = p.now();
    let mut tx = p.store.begin().await?;
    if tx.live_grant(&grant_id, now).await?.is_none() {
        return Err(A::invalid("grant revoked or client disabled"));
    }
    minted.commit(tx).await
}

/// [`redeem`] of a row the grant has read already.
pub(super) async fn redeem_row<A: Artifact>(
    p: &Provider,
    client: &AuthenticatedClient,
    artifact: &A,
    row: A::Row,
) -> Result<TokenResponse, OAuthError> {
    let now = p.now();
    let digest = row.issued().digest.clone();
    let state = row.issued();
    if state.consumed_at.is_none() && (state.revoked_at.is_some() || state.expires_at <= now) {
        // No request can consume it any more, so none can replay it either.
        return Err(A::invalid("expired or revoked"));
    }
    // The artifact's rules, checked once, then everything the response needs, minted ahead.
    // An artifact redeemed before skips this: the transaction records the replay and revokes
    // the grant whoever presents it.
    let ahead = if state.consumed_at.is_none() {
        Some(mint_ahead(p, client, artifact, &row, now).await)
    } else {
        None
    };
    // The transaction's own time: minting ahead may have waited for the host.
    let now = p.now();
    let mut tx = p.store.begin().await?;
    // The consume runs even when a check failed: a request with the wrong client or verifier
    // that races the rightful redemption must still find the artifact consumed and revoke the
    // grant, as a replay. When this request would be the one to consume it, the check's
    // refusal is the answer and the transaction rolls back, leaving it to its rightful client.
    match tx
        .consume_in(A::Row::TABLE, A::Row::KIND, &digest, now)
        .await?
    {
        Consumed::Now => {}
        Consumed::Replayed(revoked) => {
            replayed(p, tx, client, A::REPLAY_ACTION, revoked).await?;
            return Err(A::invalid("replayed: its grant and tokens are revoked"));
        }
        Consumed::Invalid => return Err(A::invalid("expired or revoked")),
    }
    // Consumed now, yet already consumed when read: not possible for one row, refused anyway.
    let (minted, grant_id) =
        ahead.ok_or_else(|| A::invalid("the artifact changed during the request"))??;
    if tx.live_grant(&grant_id, now).await?.is_none() {
        return Err(A::invalid("grant revoked or client disabled"));
    }
    minted.commit(tx).await
}

/// Checks `artifact`'s rules against its row and mints, outside any transaction, every token
/// redeeming it issues: reads the grant, fetches the host's claims, signs. Returns the tokens
/// and their grant's id, or the refusal the transaction answers with if it finds the artifact
/// still unconsumed.
async fn mint_ahead<A: Artifact>(
    p: &Provider,
    client: &AuthenticatedClient,
    artifact: &A,
    row: &A::Row,
    now: crate::clock::UnixTime,
) -> Result<(Minted, String), OAuthError> {
    artifact.check(client, row)?;
    let user = row.user();
    let grant = p
        .store
        .live_grant(&user.grant_id, now)
        .await?
        .ok_or_else(|| A::invalid("grant revoked or client disabled"))?;
    let plan = artifact.plan(p, client, row, &grant)?;
    let claims = if plan.scopes.contains("openid") {
        Some(id_token::host_claims(p, client.id(), &user.subject, &plan.scopes).await?)
    } else {
        None
    };
    Ok((
        mint_for_grant(p, client, &grant, &plan, claims.as_ref())?,
        grant.id,
    ))
}

/// What one redemption of a code or refresh token issues, decided from that token and its
/// grant (which only ever change by being consumed or revoked).
pub(crate) struct Plan {
    /// Scope and resources of the access token (possibly narrowed at token time).
    pub(crate) scopes: ScopeSet,
    pub(crate) resources: Vec<String>,
    /// Scope and resources of the refresh token, when one is issued.
    pub(crate) refresh: Option<(ScopeSet, Vec<String>)>,
    /// The authorization request's nonce (code grant only).
    pub(crate) nonce: Option<String>,
    /// The access token's `authorization_details` (possibly narrowed at token time, RFC 9396
    /// §6.2); a refresh token keeps the grant's.
    pub(crate) authorization_details: AuthorizationDetails,
    /// The `auth_req_id` of tokens pushed to a CIBA client, which their ID token names (CIBA
    /// Core §10.3.1).
    pub(crate) auth_req_id: Option<String>,
}

/// The tokens of one redemption, minted and signed, waiting for the step's transaction to
/// store them.
pub(crate) struct Minted {
    records: Vec<TokenRecord>,
    response: TokenResponse,
}

impl Minted {
    /// Stores the tokens in the step's transaction (which consumed the token they were minted
    /// for) and commits: the client gets all of them or none.
    pub(crate) async fn commit(self, mut tx: Tx) -> Result<TokenResponse, OAuthError> {
        self.store_in(&mut tx).await?;
        tx.commit().await?;
        Ok(self.response)
    }

    /// Stores the tokens in `tx`, which the caller commits.
    pub(crate) async fn store_in(&self, tx: &mut Tx) -> Result<(), OAuthError> {
        for record in &self.records {
            tx.insert_token(record).await?;
        }
        Ok(())
    }

    /// The token response.
    pub(crate) fn response(&self) -> &TokenResponse {
        &self.response
    }
}

/// Finishes a step that met a replayed code or refresh token (RFC 6749 §4.1.2, RFC 9700
/// §4.14.2): the grant was revoked in `tx`; the replay is audited in the same transaction and
/// logged, then committed.
async fn replayed(
    p: &Provider,
    mut tx: Tx,
    client: &AuthenticatedClient,
    action: &str,
    revoked: Option<Box<RevokedGrant>>,
) -> Result<(), OAuthError> {
    let (owner, subject, grant) = match &revoked {
        Some(g) => (
            Some(&g.client_id),
            Some(g.subject.as_str()),
            Some(g.id.as_str()),
        ),
        None => (None, None, None),
    };
    tracing::warn!(
        client_id = %client.id(),
        issued_to = owner.map_or("-", |o| o.as_str()),
        grant = grant.unwrap_or("-"),
        "{action}: the grant and every token issued from it are revoked"
    );
    let reason = if revoked.is_some() {
        "replayed: grant revoked"
    } else {
        "replayed again: grant already revoked"
    };
    let event = p
        .security_event(
            action,
            Actor::Client(client.id()),
            Outcome::Refused,
            owner.or(Some(client.id())),
            subject,
            reason,
        )
        .as_action(action, serde_json::json!({ "grant": grant }));
    tx.audit(&event).await?;
    tx.commit().await?;
    Ok(())
}

/// Mints the access token, the refresh token and the ID token of a user grant.
pub(crate) fn mint_for_grant(
    p: &Provider,
    client: &AuthenticatedClient,
    grant: &GrantRecord,
    plan: &Plan,
    claims: Option<&Claims>,
) -> Result<Minted, OAuthError> {
    let subject = grant.subject.as_str();
    let details = grant.details()?;
    let user = UserGrant {
        grant_id: grant.id.clone(),
        subject: grant.subject.clone(),
    };
    let access = AccessGrant {
        client,
        user: Some(&user),
        scopes: &plan.scopes,
        resources: &plan.resources,
        authorization_details: &plan.authorization_details,
        act: None,
        not_after: None,
        binding: client.binding(),
        opaque: false,
    };
    let (access_token, access_record) = mint_access_token(p, &access)?;
    let mut records = vec![access_record];
    let refresh_token = match &plan.refresh {
        Some((scopes, resources)) => {
            let family = AccessGrant {
                scopes,
                resources,
                authorization_details: &details.authorization_details,
                ..access
            };
            let (token, record) = mint_refresh_token(p, &family, &user, grant.expires_at);
            records.push(record);
            Some(token)
        }
        None => None,
    };
    let id_token = if plan.scopes.contains("openid") {
        let input = IdTokenInput {
            client: client.record(),
            subject,
            auth_time: grant.auth_time,
            nonce: plan.nonce.as_deref(),
            access_token: Some(&access_token),
            scopes: &plan.scopes,
            details: &details,
            sid: grant.sid.as_deref(),
            pushed: plan.auth_req_id.as_deref().map(|id| id_token::Pushed {
                auth_req_id: id,
                refresh_token: refresh_token.as_deref(),
            }),
        };
        let claims = claims.ok_or_else(|| {
            OAuthError::internal("host claims were not fetched before the transaction")
        })?;
        Some(id_token::issue(p, input, claims)?)
    } else {
        None
    };
    Ok(Minted {
        records,
        response: TokenResponse {
            access_token: Secret::new(access_token),
            token_type: super::token_type(client.binding().as_ref()),
            expires_in: p.config.lifetimes.access_token,
            scope: plan.scopes.to_string(),
            refresh_token: refresh_token.map(Secret::new),
            id_token: id_token.map(Secret::new),
            authorization_details: plan.authorization_details.to_member(),
            issued_token_type: None,
        },
    })
}
