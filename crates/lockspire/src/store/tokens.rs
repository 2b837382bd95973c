//! Codes, access tokens and refresh tokens, stored as digests (RFC 6819 §5.1.4.1.3). Codes and
//! refresh tokens are single-use: consumed by one conditional write, and a replay revokes the
//! grant they came from (RFC 6749 §4.1.2, RFC 9700 §4.14.2).

use super::db::{Param, Row, get, params, parse_json_list, to_json_list};
use super::driver::Tx;
use super::error::StoreError;
use super::group_commit;
use super::handle::Store;
use crate::clock::UnixTime;
use crate::config::AccessTokenFormat;
use crate::model::authorization_details::AuthorizationDetails;
use crate::model::client::ClientId;
use crate::model::scope::ScopeSet;

/// What a token row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// Authorization code (RFC 6749 §1.3.1).
    Code,
    /// Access token (RFC 6749 §1.4).
    Access,
    /// Refresh token (RFC 6749 §1.5).
    Refresh,
}

impl TokenKind {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Code => "code",
            Self::Access => "access",
            Self::Refresh => "refresh",
        }
    }
}

/// What every code and token row holds: who it was issued to, for what, and its state.
#[derive(Clone, Debug)]
pub struct Issued {
    /// SHA-256 digest of the artifact (RFC 6819 §5.1.4.1.3): the artifact itself is never
    /// stored.
    pub digest: String,
    /// Tenant.
    pub tenant_id: String,
    /// Client it was issued to.
    pub client_id: ClientId,
    /// Scopes (RFC 6749 §3.3).
    pub scopes: ScopeSet,
    /// Audiences (RFC 8707 resource indicators).
    pub resources: Vec<String>,
    /// What the user approved beyond scopes (RFC 9396 §2); empty when nothing was asked.
    pub authorization_details: AuthorizationDetails,
    /// Issue time.
    pub created_at: UnixTime,
    /// Expiry.
    pub expires_at: UnixTime,
    /// When used (codes, rotated refresh tokens).
    pub consumed_at: Option<UnixTime>,
    /// When revoked.
    pub revoked_at: Option<UnixTime>,
}

/// The user authorization a code or token was issued from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserGrant {
    /// The grant; revoking it revokes every code and token issued from it.
    pub grant_id: String,
    /// Its user (the host's local subject).
    pub subject: String,
}

/// An authorization code (RFC 6749 §4.1.2).
#[derive(Clone, Debug)]
pub struct CodeRecord {
    /// Common fields.
    pub issued: Issued,
    /// The grant it redeems into.
    pub user: UserGrant,
    /// The `redirect_uri` of the authorization request; `None` when the request omitted it
    /// (RFC 6749 §4.1.3: then the token request must omit it too).
    pub redirect_uri: Option<String>,
    /// The PKCE S256 challenge (RFC 7636 §4.2).
    pub code_challenge: String,
    /// The OIDC nonce (OIDC Core §3.1.2.1).
    pub nonce: Option<String>,
    /// RFC 9449 §10: the thumbprint of the DPoP key the code may be redeemed with.
    pub dpop_jkt: Option<String>,
}

/// What an access or refresh token is bound to (a sender-constrained token): a certificate or a
/// DPoP key, never both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Binding {
    /// RFC 8705 §3.1: the client certificate, by its `x5t#S256`.
    Certificate(String),
    /// RFC 9449 §6: the DPoP key, by its RFC 7638 thumbprint (`jkt`).
    Dpop(String),
}

impl Binding {
    /// The `cnf` member of a JWT access token or an introspection response (RFC 8705 §3.1,
    /// RFC 9449 §6).
    pub fn confirmation(&self) -> serde_json::Value {
        match self {
            Self::Certificate(x5t) => serde_json::json!({ "x5t#S256": x5t }),
            Self::Dpop(jkt) => serde_json::json!({ "jkt": jkt }),
        }
    }

    fn columns(binding: Option<&Binding>) -> (Option<&str>, Option<&str>) {
        match binding {
            Some(Self::Certificate(x5t)) => (Some(x5t), None),
            Some(Self::Dpop(jkt)) => (None, Some(jkt)),
            None => (None, None),
        }
    }

    fn from_columns(
        x5t: Option<String>,
        jkt: Option<String>,
    ) -> Result<Option<Binding>, StoreError> {
        match (x5t, jkt) {
            (Some(x5t), None) => Ok(Some(Self::Certificate(x5t))),
            (None, Some(jkt)) => Ok(Some(Self::Dpop(jkt))),
            (None, None) => Ok(None),
            (Some(_), Some(_)) => Err(StoreError::Corrupt(
                "a token bound to a certificate and a DPoP key".into(),
            )),
        }
    }
}

/// An access token (RFC 6749 §1.4).
#[derive(Clone, Debug)]
pub struct AccessRecord {
    /// Common fields.
    pub issued: Issued,
    /// The user authorization it was issued from; `None` for client credentials.
    pub user: Option<UserGrant>,
    /// Opaque, or an RFC 9068 JWT.
    pub format: AccessTokenFormat,
    /// The JWT id (RFC 7519 §4.1.7), also given for opaque tokens in introspection.
    pub jti: Option<String>,
    /// What the token is bound to, if anything.
    pub binding: Option<Binding>,
    /// The `act` claim (RFC 8693 §4.1) of a token issued by a delegation: who acts for the
    /// subject, nesting the earlier actors of a chain.
    pub act: Option<serde_json::Value>,
}

/// A refresh token (RFC 6749 §1.5).
#[derive(Clone, Debug)]
pub struct RefreshRecord {
    /// Common fields.
    pub issued: Issued,
    /// The user authorization it refreshes.
    pub user: UserGrant,
    /// What the token is bound to, if anything: a certificate, or the DPoP key of a public
    /// client (RFC 9449 §5).
    pub binding: Option<Binding>,
}

/// A row of the token table: a code, an access token or a refresh token.
#[derive(Clone, Debug)]
pub enum TokenRecord {
    /// An authorization code.
    Code(CodeRecord),
    /// An access token.
    Access(AccessRecord),
    /// A refresh token.
    Refresh(RefreshRecord),
}

impl TokenRecord {
    /// Its kind.
    pub fn kind(&self) -> TokenKind {
        match self {
            Self::Code(_) => TokenKind::Code,
            Self::Access(_) => TokenKind::Access,
            Self::Refresh(_) => TokenKind::Refresh,
        }
    }

    /// What every kind holds.
    pub fn issued(&self) -> &Issued {
        match self {
            Self::Code(c) => &c.issued,
            Self::Access(a) => &a.issued,
            Self::Refresh(r) => &r.issued,
        }
    }

    /// The user authorization it was issued from, if any.
    pub fn user(&self) -> Option<&UserGrant> {
        match self {
            Self::Code(c) => Some(&c.user),
            Self::Access(a) => a.user.as_ref(),
            Self::Refresh(r) => Some(&r.user),
        }
    }

    pub(crate) fn from_row(r: &Row<'_>) -> Result<Self, StoreError> {
        let kind: String = get(r, "kind")?;
        let issued = Issued {
            digest: get(r, "digest")?,
            tenant_id: get(r, "tenant_id")?,
            client_id: ClientId::new(get::<String>(r, "client_id")?),
            scopes: ScopeSet::from_stored(&get::<String>(r, "scopes")?),
            resources: parse_json_list(&get::<String>(r, "resources")?)?,
            authorization_details: AuthorizationDetails::from_stored(
                get::<Option<String>>(r, "authorization_details")?.as_deref(),
            ),
            created_at: get(r, "created_at")?,
            expires_at: get(r, "expires_at")?,
            consumed_at: get(r, "consumed_at")?,
            revoked_at: get(r, "revoked_at")?,
        };
        let grant_id: Option<String> = get(r, "grant_id")?;
        let subject: Option<String> = get(r, "subject")?;
        let user = match (grant_id, subject) {
            (Some(grant_id), Some(subject)) => Some(UserGrant { grant_id, subject }),
            (None, None) => None,
            _ => return Err(StoreError::Corrupt("a token with half a grant".into())),
        };
        let needs_user = |user: Option<UserGrant>| {
            user.ok_or_else(|| StoreError::Corrupt(format!("a {kind} without a grant")))
        };
        Ok(match kind.as_str() {
            "code" => Self::Code(CodeRecord {
                user: needs_user(user)?,
                // Rows of earlier releases recorded an omitted redirect_uri as ''.
                redirect_uri: get::<Option<String>>(r, "redirect_uri")?.filter(|u| !u.is_empty()),
                code_challenge: get::<Option<String>>(r, "code_challenge")?
                    .ok_or_else(|| StoreError::Corrupt("a code without a challenge".into()))?,
                nonce: get(r, "nonce")?,
                dpop_jkt: get(r, "cnf_jkt")?,
                issued,
            }),
            "access" => Self::Access(AccessRecord {
                user,
                format: match get::<Option<String>>(r, "format")?.as_deref() {
                    Some("jwt") => AccessTokenFormat::Jwt,
                    _ => AccessTokenFormat::Opaque,
                },
                jti: get(r, "jti")?,
                binding: Binding::from_columns(get(r, "cnf_x5t")?, get(r, "cnf_jkt")?)?,
                act: get::<Option<String>>(r, "act")?
                    .map(|act| serde_json::from_str(&act))
                    .transpose()
                    .map_err(|e| StoreError::Corrupt(format!("a token's act: {e}")))?,
                issued,
            }),
            "refresh" => Self::Refresh(RefreshRecord {
                user: needs_user(user)?,
                binding: Binding::from_columns(get(r, "cnf_x5t")?, get(r, "cnf_jkt")?)?,
                issued,
            }),
            other => return Err(StoreError::Corrupt(format!("token kind {other}"))),
        })
    }
}

/// The columns of a token row, qualified by the alias `t` (static text, so every statement
/// stays a `&'static str`).
macro_rules! token_columns {
    () => {
        "t.digest, t.tenant_id, t.kind, t.grant_id, t.client_id, t.subject, t.scopes, t.resources, \
         t.created_at, t.expires_at, t.consumed_at, t.revoked_at, t.redirect_uri, t.code_challenge, t.nonce, t.format, t.jti, t.cnf_x5t, t.authorization_details, t.cnf_jkt, t.act"
    };
}

/// Inserts one code or token row.
const INSERT_TOKEN: &str = "INSERT INTO tokens (digest, tenant_id, kind, grant_id, client_id, subject, scopes, resources, created_at, \
     expires_at, redirect_uri, code_challenge, nonce, format, jti, cnf_x5t, authorization_details, cnf_jkt, act) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)";

/// [`INSERT_TOKEN`] for many rows in one PostgreSQL statement: each parameter is one column's
/// values as an array, in [`INSERT_TOKEN`]'s order and types. A batch then costs one round trip
/// and one commit, where a transaction of single-row inserts costs one round trip per row.
const INSERT_TOKENS_PG: &str = "INSERT INTO tokens (digest, tenant_id, kind, grant_id, client_id, subject, scopes, resources, created_at, \
     expires_at, redirect_uri, code_challenge, nonce, format, jti, cnf_x5t, authorization_details, cnf_jkt, act) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
     $8::text[], $9::bigint[], $10::bigint[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[], $19::text[])";

/// The group commit appends with [`INSERT_TOKEN`] and [`INSERT_TOKENS_PG`].
pub(super) const TOKENS: group_commit::Table = group_commit::Table {
    insert: INSERT_TOKEN,
    insert_many_pg: INSERT_TOKENS_PG,
    key_params: 0,
};

/// The parameters of [`INSERT_TOKEN`].
pub(super) fn token_params(t: &TokenRecord) -> Vec<Param> {
    let i = t.issued();
    let user = t.user();
    // A code's `dpop_jkt` (RFC 9449 §10) shares the column of a token's DPoP binding.
    let act = match t {
        TokenRecord::Access(a) => a.act.as_ref().map(serde_json::Value::to_string),
        _ => None,
    };
    let (redirect_uri, code_challenge, nonce, format, jti, (cnf_x5t, cnf_jkt)) = match t {
        TokenRecord::Code(c) => (
            c.redirect_uri.as_deref(),
            Some(c.code_challenge.as_str()),
            c.nonce.as_deref(),
            None,
            None,
            (None, c.dpop_jkt.as_deref()),
        ),
        TokenRecord::Access(a) => (
            None,
            None,
            None,
            Some(a.format.as_str()),
            a.jti.as_deref(),
            Binding::columns(a.binding.as_ref()),
        ),
        TokenRecord::Refresh(r) => (
            None,
            None,
            None,
            None,
            None,
            Binding::columns(r.binding.as_ref()),
        ),
    };
    params![
        i.digest,
        i.tenant_id,
        t.kind().as_str(),
        user.map(|u| u.grant_id.as_str()),
        i.client_id,
        user.map(|u| u.subject.as_str()),
        i.scopes,
        to_json_list(&i.resources),
        i.created_at,
        i.expires_at,
        redirect_uri,
        code_challenge,
        nonce,
        format,
        jti,
        cnf_x5t,
        i.authorization_details.to_stored(),
        cnf_jkt,
        act,
    ]
}

/// A grant revoked because a token issued from it was replayed.
#[derive(Debug)]
pub struct RevokedGrant {
    /// The grant.
    pub id: String,
    /// The client it was issued to.
    pub client_id: ClientId,
    /// Its user.
    pub subject: String,
}

/// The result of trying to use a single-use token.
#[derive(Debug)]
pub enum Consumed {
    /// This call consumed it; no other call can. (Its content is what any earlier read saw:
    /// a row's content never changes, only its state.)
    Now,
    /// It had already been consumed: a replay. Its grant has been revoked in this transaction
    /// (`Some`: the grant this call revoked; `None`: an earlier replay revoked it already).
    Replayed(Option<Box<RevokedGrant>>),
    /// Unknown, expired or revoked.
    Invalid,
}

impl Store {
    /// A usable token: unexpired, unrevoked, unconsumed, its grant unrevoked, and its client and
    /// its grant's client active (they differ for a token exchanged by another client, RFC
    /// 8693). One indexed read.
    pub async fn active_token(
        &self,
        digest: &str,
        now: UnixTime,
    ) -> Result<Option<TokenRecord>, StoreError> {
        self.db.fetch_optional(concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens t \
             JOIN clients c ON c.tenant_id = t.tenant_id AND c.client_id = t.client_id \
             LEFT JOIN grants g ON g.id = t.grant_id \
             LEFT JOIN clients gc ON gc.tenant_id = g.tenant_id AND gc.client_id = g.client_id \
             WHERE t.digest = $1 AND t.expires_at > $2 AND t.revoked_at IS NULL AND t.consumed_at IS NULL \
               AND t.kind <> 'code' AND c.status = 'active' \
               AND (t.grant_id IS NULL OR (g.revoked_at IS NULL AND g.expires_at > $2 AND gc.status = 'active'))"
        ), params![digest, now], TokenRecord::from_row).await
    }
    /// A token of any state, for revocation (RFC 7009 accepts expired and used tokens).
    pub async fn any_token(&self, digest: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.db
            .fetch_optional(
                concat!(
                    "SELECT ",
                    token_columns!(),
                    " FROM tokens t WHERE t.digest = $1 AND t.kind <> 'code'"
                ),
                params![digest],
                TokenRecord::from_row,
            )
            .await
    }
    /// A token of any kind and state, read without locking: lets a step fetch what it needs from
    /// the host before its transaction starts. Decisions are still made by the conditional
    /// write inside the transaction.
    pub async fn peek_token(&self, digest: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.db
            .fetch_optional(
                concat!(
                    "SELECT ",
                    token_columns!(),
                    " FROM tokens t WHERE t.digest = $1"
                ),
                params![digest],
                TokenRecord::from_row,
            )
            .await
    }
    /// Inserts a token outside a transaction (client credentials: one write per token). The
    /// write joins a group commit: concurrent inserts share one transaction, and each caller
    /// returns only once its row is durably committed.
    pub async fn insert_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
        self.writer
            .insert(group_commit::Append {
                table: TOKENS,
                params: token_params(t),
            })
            .await
    }
    /// Revokes one access token (RFC 7009 §2.1: revoking an access token revokes only it).
    pub async fn revoke_token(&self, digest: &str, now: UnixTime) -> Result<(), StoreError> {
        self.db
            .execute(
                "UPDATE tokens SET revoked_at = $1 WHERE digest = $2 AND revoked_at IS NULL",
                params![now, digest],
            )
            .await?;
        Ok(())
    }
}

/// The three statements that use a single-use artifact of one table, each taking the same
/// parameters: `$1` now, `$2` the artifact's digest, `$3` its kind.
pub(crate) struct SingleUseTable {
    /// Consumes a usable artifact; one row changed when this call consumed it.
    pub(super) consume: &'static str,
    /// Revokes the grant of an artifact consumed before, returning it.
    pub(super) revoke_grant: &'static str,
    /// A row when the artifact had been consumed. It names `$1` only so that the three
    /// statements take the same parameters.
    pub(super) seen: &'static str,
}

/// Codes and refresh tokens.
pub(crate) const TOKEN_SINGLE_USE: SingleUseTable = SingleUseTable {
    consume: "UPDATE tokens SET consumed_at = $1 WHERE digest = $2 AND kind = $3 \
              AND consumed_at IS NULL AND revoked_at IS NULL AND expires_at > $1",
    revoke_grant: "UPDATE grants SET revoked_at = $1 WHERE revoked_at IS NULL AND id = \
             (SELECT grant_id FROM tokens WHERE digest = $2 AND kind = $3 AND consumed_at IS NOT NULL) \
             RETURNING id, client_id, subject",
    seen: "SELECT 1 FROM tokens WHERE $1 = $1 AND digest = $2 AND kind = $3 AND consumed_at IS NOT NULL",
};

impl Tx {
    /// Inserts a code or token.
    pub async fn insert_token(&mut self, t: &TokenRecord) -> Result<(), StoreError> {
        self.execute(INSERT_TOKEN, token_params(t)).await?;
        Ok(())
    }
    /// Redeems a code or rotates a refresh token: one conditional write. When the token was
    /// already consumed, this is a replay (RFC 6749 §4.1.2, RFC 9700 §4.14.2) and its grant —
    /// with every token issued from it — is revoked in the same transaction.
    #[cfg(test)]
    pub async fn consume(
        &mut self,
        kind: TokenKind,
        digest: &str,
        now: UnixTime,
    ) -> Result<Consumed, StoreError> {
        self.consume_in(&TOKEN_SINGLE_USE, kind.as_str(), digest, now)
            .await
    }

    /// [`Tx::consume`] for the artifacts of any table that holds single-use artifacts issued
    /// from a grant.
    pub(crate) async fn consume_in(
        &mut self,
        table: &SingleUseTable,
        kind: &str,
        digest: &str,
        now: UnixTime,
    ) -> Result<Consumed, StoreError> {
        // SQLite's RETURNING cannot name a table alias, so the row is returned unqualified.
        let consumed = self
            .execute(table.consume, params![now, digest, kind])
            .await?;
        if consumed == 1 {
            return Ok(Consumed::Now);
        }
        let revoked = self
            .fetch_optional(table.revoke_grant, params![now, digest, kind], |r| {
                Ok(RevokedGrant {
                    id: get(r, "id")?,
                    client_id: ClientId::new(get::<String>(r, "client_id")?),
                    subject: get(r, "subject")?,
                })
            })
            .await?;
        if let Some(grant) = revoked {
            return Ok(Consumed::Replayed(Some(Box::new(grant))));
        }
        let seen = self
            .fetch_optional(table.seen, params![now, digest, kind], |_| Ok(()))
            .await?;
        Ok(if seen.is_some() {
            Consumed::Replayed(None)
        } else {
            Consumed::Invalid
        })
    }
}
