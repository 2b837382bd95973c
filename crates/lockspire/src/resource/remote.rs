//! A resource server in a separate service: tokens verified against a remote issuer, JWTs with
//! its JWKS (RFC 7517) and opaque tokens by introspection (RFC 7662), both cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::refusal::{Refusal, Scheme};
use super::token::AccessToken;
use super::verify::{audience_includes, check_jwt_claims, looks_like_jwt};
use super::{
    NonceKey, ResourceServer, ResourceServerBuilder, ResourceServerError, Settings, Source, finish,
    parse_resource,
};
use crate::clock::{Clock, SystemClock};
use crate::fetch::Fetcher;
use crate::protocol::dpop;
use crate::protocol::error::{ErrorCode, OAuthError};
use crate::secrets::{SecretKey, token_key};

/// How long an introspection answer is used, by default.
const DEFAULT_INTROSPECTION_CACHE: Duration = Duration::from_secs(30);

/// Most introspection answers kept: the cache holds only active tokens' answers, so its size is
/// bounded by tokens in use, and past this the oldest go.
const MAX_INTROSPECTIONS: usize = 10_000;

/// Most DPoP proof ids remembered at once. A proof is remembered for two minutes (its `iat`
/// window); past this many, new proofs are refused rather than old ones forgotten, so a replay
/// is never let through (RFC 9449 §11.1).
const MAX_PROOFS: usize = 200_000;

/// Least time between two fetches of the JWKS forced by an unknown `kid`.
const MIN_FORCED_REFRESH: Duration = Duration::from_secs(30);

/// How long the issuer's keys are used without asking again.
const KEYS_TTL: Duration = Duration::from_secs(300);

/// Signature algorithms of access tokens: asymmetric only, so `none` and a key used as an HMAC
/// secret are impossible (RFC 8725 §3.1).
const JWT_ALGS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Verifying against a remote issuer (see [`ResourceServerBuilder`]).
pub struct Remote {
    issuer: String,
    resource: String,
    introspection_client: Option<(String, String)>,
    introspection_cache: Duration,
    allow_http_loopback: bool,
    secret_key: Option<SecretKey>,
    clock: Arc<dyn Clock>,
}

impl Remote {
    pub(crate) fn new(issuer: &str, resource: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            resource: resource.to_owned(),
            introspection_client: None,
            introspection_cache: DEFAULT_INTROSPECTION_CACHE,
            allow_http_loopback: false,
            secret_key: None,
            clock: Arc::new(SystemClock),
        }
    }
}

impl ResourceServerBuilder<Remote> {
    /// The client this resource server introspects tokens as (RFC 7662 §2.1; HTTP Basic). The
    /// issuer answers it about tokens for this resource when the client is registered as its
    /// resource server (`resource_server_for`). Without one, only JWT access tokens are
    /// accepted.
    pub fn introspection_client(mut self, client_id: &str, client_secret: &str) -> Self {
        self.mode.introspection_client = Some((client_id.to_owned(), client_secret.to_owned()));
        self
    }

    /// How long an introspection answer is reused before the issuer is asked again (never
    /// beyond the token's expiry): a revoked token may work this long. Default: 30 seconds;
    /// zero asks every time.
    pub fn introspection_cache(mut self, ttl: Duration) -> Self {
        self.mode.introspection_cache = ttl;
        self
    }

    /// Allows `http` URLs on loopback hosts (the issuer, the resource), for development only.
    pub fn allow_http_loopback(mut self, allowed: bool) -> Self {
        self.mode.allow_http_loopback = allowed;
        self
    }

    /// The key DPoP nonces derive from, when
    /// [`require_dpop_nonce`](ResourceServerBuilder::require_dpop_nonce) is on: give every
    /// process of the service the same one so they accept each other's nonces. Without it each
    /// process has its own.
    pub fn secret_key(mut self, key: SecretKey) -> Self {
        self.mode.secret_key = Some(key);
        self
    }

    /// The clock tokens' times are compared with (tests move it by hand).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.mode.clock = Arc::new(clock);
        self
    }

    /// Fetches the issuer's authorization server metadata (RFC 8414 §3) and makes the
    /// resource server.
    pub async fn build(self) -> Result<ResourceServer, ResourceServerError> {
        let Self { policy, mode } = self;
        let parsed = parse_resource(&mode.resource, mode.allow_http_loopback)?;
        let issuer_error = ResourceServerError::Issuer;
        if policy.check_revocation && mode.introspection_client.is_none() {
            return Err(ResourceServerError::Misconfigured(
                "checking JWTs for revocation needs an introspection client",
            ));
        }
        let fetcher = Fetcher::for_configured_urls(mode.allow_http_loopback)
            .map_err(|e| issuer_error(e.to_string()))?;
        let metadata = fetcher
            .get_json(&metadata_location(&mode.issuer).map_err(issuer_error)?)
            .await
            .map_err(|e| issuer_error(format!("{}: {e}", mode.issuer)))?;
        // RFC 8414 §3.3: the document must name the issuer it was fetched for.
        if metadata.get("issuer").and_then(Value::as_str) != Some(mode.issuer.as_str()) {
            return Err(issuer_error(format!(
                "the metadata at {} names another issuer",
                mode.issuer
            )));
        }
        let url = |name: &str| {
            metadata
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let jwks_uri = url("jwks_uri").ok_or_else(|| issuer_error("no jwks_uri".into()))?;
        let introspection = match mode.introspection_client {
            Some((id, secret)) => Some(Introspection {
                endpoint: url("introspection_endpoint")
                    .ok_or_else(|| issuer_error("no introspection_endpoint".into()))?,
                client_id: id,
                secret,
            }),
            None => None,
        };
        let nonce_key = match &mode.secret_key {
            Some(key) => NonceKey::Shared(Arc::new(key.dpop_nonce_key())),
            None => NonceKey::Process,
        };
        let issuer = Issuer {
            issuer: mode.issuer.clone(),
            jwks_uri,
            introspection,
            fetcher,
            clock: mode.clock,
            cache_ttl: mode.introspection_cache,
            keys: Mutex::new(Keys::default()),
            fetching: tokio::sync::Mutex::new(()),
            answers: Mutex::new(HashMap::new()),
            proofs: Mutex::new(HashMap::new()),
        };
        Ok(finish(
            policy,
            mode.resource,
            parsed,
            mode.issuer,
            Source::Remote(Arc::new(issuer)),
            &nonce_key,
            Vec::new(),
        ))
    }
}

/// RFC 8414 §3.1: the well-known segment goes between the issuer's host and its path.
fn metadata_location(issuer: &str) -> Result<String, String> {
    let url = url::Url::parse(issuer).map_err(|_| format!("{issuer:?} is not a URL"))?;
    let path = url.path().trim_end_matches('/');
    Ok(format!(
        "{}/.well-known/oauth-authorization-server{path}",
        url.origin().ascii_serialization()
    ))
}

/// An introspection answer and when it stops being used.
type CachedAnswer = (Arc<Map<String, Value>>, Instant);

struct Introspection {
    endpoint: String,
    client_id: String,
    secret: String,
}

#[derive(Default)]
struct Keys {
    set: Option<Arc<JwkSet>>,
    /// When the keys were last fetched successfully.
    fetched_at: Option<Instant>,
    /// When a fetch was last begun, whatever came of it.
    attempted_at: Option<Instant>,
}

/// The remote issuer, as one resource server sees it.
pub(crate) struct Issuer {
    issuer: String,
    jwks_uri: String,
    introspection: Option<Introspection>,
    fetcher: Fetcher,
    clock: Arc<dyn Clock>,
    cache_ttl: Duration,
    keys: Mutex<Keys>,
    /// Held while the keys are fetched, so requests arriving meanwhile wait for that fetch
    /// instead of starting their own.
    fetching: tokio::sync::Mutex<()>,
    /// Introspection answers of active tokens, by token digest, with when they stop being
    /// used.
    answers: Mutex<HashMap<String, CachedAnswer>>,
    /// DPoP proofs seen, by key thumbprint and `jti`, with when they can be forgotten.
    proofs: Mutex<HashMap<String, i64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        // The maps stay consistent whatever panicked: every change is one insert or remove.
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn unavailable(reason: String) -> Refusal {
    Refusal::from(
        OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            "the token could not be verified: the issuer is unreachable",
        )
        .with_reason(reason),
    )
}

impl Issuer {
    pub(crate) fn now(&self) -> i64 {
        self.clock.now()
    }

    /// True while the last fetched JWKS holds the signing key `kid` (no fetch).
    pub(crate) fn publishes(&self, kid: &str) -> bool {
        lock(&self.keys)
            .set
            .as_ref()
            .is_some_and(|set| set.find(kid).is_some())
    }

    /// Verifies `token`: a JWT with the issuer's keys (and introspection when revocation is
    /// checked), an opaque token by introspection.
    pub(crate) async fn token(
        &self,
        s: &Settings,
        token: &str,
        scheme: Scheme,
    ) -> Result<AccessToken, Refusal> {
        let now = self.clock.now();
        let invalid = |reason| Refusal::invalid_token(reason, Some(scheme));
        if looks_like_jwt(token) {
            let (typ, claims) = self.verify_signature(token, scheme).await?;
            let claims = check_jwt_claims(s, typ.as_deref(), claims, now, scheme)?;
            if s.check_revocation {
                self.introspect(token, now, scheme).await?;
            }
            return AccessToken::from_claims(claims).ok_or_else(|| invalid("the JWT lacks claims"));
        }
        let answer = self.introspect(token, now, scheme).await?;
        if answer
            .get("iss")
            .is_some_and(|iss| iss.as_str() != Some(self.issuer.as_str()))
        {
            return Err(invalid("introspection names another issuer"));
        }
        if !audience_includes(answer.get("aud"), &s.resource) {
            return Err(invalid("the token is not for this resource (aud)"));
        }
        // RFC 7662 §2.2 `token_type`: an access token's type (RFC 6749 §7.1), or nothing; any
        // other kind of token, such as a refresh token, is not for a resource.
        if let Some(kind) = answer.get("token_type") {
            let access = kind.as_str().is_some_and(|k| {
                ["bearer", "dpop", "n_a"]
                    .iter()
                    .any(|t| k.eq_ignore_ascii_case(t))
            });
            if !access {
                return Err(invalid(
                    "introspection names a token that is not an access token",
                ));
            }
        }
        AccessToken::from_claims((*answer).clone())
            .ok_or_else(|| invalid("introspection lacks claims"))
    }

    /// The JWT's header `typ` and claims, once its signature verifies with one of the issuer's
    /// keys, by `kid`; an unknown `kid` refreshes the keys, at most every
    /// [`MIN_FORCED_REFRESH`], so rotation is followed and nobody can make the service hammer
    /// the issuer.
    async fn verify_signature(
        &self,
        token: &str,
        scheme: Scheme,
    ) -> Result<(Option<String>, Value), Refusal> {
        let invalid = |reason| Refusal::invalid_token(reason, Some(scheme));
        if token.len() > crate::jose::MAX_JWT_LEN {
            return Err(invalid("the JWT is too large"));
        }
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed JWT header"))?;
        if !JWT_ALGS.contains(&header.alg) {
            return Err(invalid("the JWT's alg is not an asymmetric signature"));
        }
        let kid = header
            .kid
            .as_deref()
            .ok_or_else(|| invalid("the JWT names no kid"))?;
        let mut set = self.key_set(false).await?;
        if set.find(kid).is_none() {
            set = self.key_set(true).await?;
        }
        let jwk = set
            .keys
            .iter()
            .find(|k| {
                k.common.key_id.as_deref() == Some(kid)
                    // A key published for encryption never verifies a signature.
                    && k.common.public_key_use != Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
            })
            .ok_or_else(|| invalid("the JWT's kid is not among the issuer's signing keys"))?;
        // RFC 8725 §3.1: a key that names its algorithm is used with that one only.
        if let Some(alg) = &jwk.common.key_algorithm
            && alg.to_string() != format!("{:?}", header.alg)
        {
            return Err(invalid("the JWT's alg is not its key's"));
        }
        let key =
            DecodingKey::from_jwk(jwk).map_err(|_| invalid("the issuer's key is unusable"))?;
        let mut validation = Validation::new(header.alg);
        // The claims are checked by the caller, against its own clock and audience.
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|_| invalid("the JWT's signature does not verify with the issuer's keys"))?
            .claims;
        Ok((header.typ, claims))
    }

    /// The cached keys when they may be used without fetching: fresh, or fetched (or tried)
    /// too recently to ask again. `None` when a fetch is due.
    fn cached_keys(&self, force: bool) -> Option<Result<Arc<JwkSet>, Refusal>> {
        let keys = lock(&self.keys);
        let fresh = keys.fetched_at.is_some_and(|t| t.elapsed() < KEYS_TTL);
        let tried_recently = keys
            .attempted_at
            .is_some_and(|t| t.elapsed() < MIN_FORCED_REFRESH);
        match &keys.set {
            Some(set) if (fresh && !force) || tried_recently => Some(Ok(set.clone())),
            // A dead issuer is not asked again on every request.
            None if tried_recently => Some(Err(unavailable(
                "the issuer's keys could not be fetched moments ago".into(),
            ))),
            _ => None,
        }
    }

    /// The issuer's JWK set: cached while fresh; `force` (an unknown `kid`) fetches again, but
    /// never within [`MIN_FORCED_REFRESH`] of the last attempt, and one fetch at a time.
    async fn key_set(&self, force: bool) -> Result<Arc<JwkSet>, Refusal> {
        if let Some(cached) = self.cached_keys(force) {
            return cached;
        }
        let _one_fetch = self.fetching.lock().await;
        // Whoever held the lock before may have just fetched.
        if let Some(cached) = self.cached_keys(force) {
            return cached;
        }
        lock(&self.keys).attempted_at = Some(Instant::now());
        // Key by key: one key of a kind this library cannot read (an encryption key of another
        // curve, say) must not stop the others from verifying.
        let fetched = self.fetcher.get_json(&self.jwks_uri).await.and_then(|v| {
            match v.get("keys").and_then(Value::as_array) {
                Some(keys) => Ok(JwkSet {
                    keys: keys
                        .iter()
                        .filter_map(|k| serde_json::from_value(k.clone()).ok())
                        .collect(),
                }),
                None => Err(crate::fetch::FetchError::Body("not a JWK set".into())),
            }
        });
        let mut keys = lock(&self.keys);
        match fetched {
            Ok(set) => {
                let set = Arc::new(set);
                keys.set = Some(set.clone());
                keys.fetched_at = Some(Instant::now());
                Ok(set)
            }
            // The last good keys keep working while the issuer is away.
            Err(e) => keys
                .set
                .clone()
                .ok_or_else(|| unavailable(format!("JWKS: {e}"))),
        }
    }

    /// The issuer's introspection answer for an active token, cached for the configured time;
    /// an inactive token is `invalid_token`.
    async fn introspect(
        &self,
        token: &str,
        now: i64,
        scheme: Scheme,
    ) -> Result<Arc<Map<String, Value>>, Refusal> {
        let invalid = |reason| Refusal::invalid_token(reason, Some(scheme));
        let Some(client) = &self.introspection else {
            return Err(invalid(
                "opaque token, and no introspection client is configured",
            ));
        };
        let digest = token_key(token);
        if let Some((answer, until)) = lock(&self.answers).get(&digest)
            && *until > Instant::now()
            && answer
                .get("exp")
                .and_then(Value::as_i64)
                .is_some_and(|exp| exp > now)
        {
            return Ok(answer.clone());
        }
        let answer = self
            .fetcher
            .post_form_json(
                &client.endpoint,
                &client.client_id,
                &client.secret,
                &[("token", token), ("token_type_hint", "access_token")],
            )
            .await
            .map_err(|e| unavailable(format!("introspection: {e}")))?;
        let Value::Object(answer) = answer else {
            return Err(unavailable(
                "introspection answered something else than an object".into(),
            ));
        };
        if answer.get("active") != Some(&Value::Bool(true)) {
            lock(&self.answers).remove(&digest);
            return Err(invalid("introspection says the token is not active"));
        }
        let Some(exp) = answer
            .get("exp")
            .and_then(Value::as_i64)
            .filter(|exp| *exp > now)
        else {
            return Err(invalid("introspection gives no future exp"));
        };
        let answer = Arc::new(answer);
        let ttl = self
            .cache_ttl
            .min(Duration::from_secs(u64::try_from(exp - now).unwrap_or(0)));
        if !ttl.is_zero() {
            let mut answers = lock(&self.answers);
            if answers.len() >= MAX_INTROSPECTIONS {
                let now = Instant::now();
                answers.retain(|_, (_, until)| *until > now);
                // Still full of live answers: start afresh rather than scan for the oldest;
                // they are only a cache.
                if answers.len() >= MAX_INTROSPECTIONS {
                    answers.clear();
                }
            }
            if let Some(until) = Instant::now().checked_add(ttl) {
                answers.insert(digest, (answer.clone(), until));
            }
        }
        Ok(answer)
    }

    /// Remembers a checked proof's `jti` in this process (RFC 9449 §11.1), refusing one seen
    /// before. Several processes of one service do not share what they remember (see
    /// `docs/scaling.md`).
    pub(crate) fn remember(&self, checked: &dpop::Checked) -> Result<(), OAuthError> {
        let now = self.clock.now();
        let key = format!("{}\u{0}{}", checked.proof.jkt, checked.jti);
        let mut proofs = lock(&self.proofs);
        if proofs.get(&key).is_some_and(|until| *until > now) {
            return Err(OAuthError::new(
                ErrorCode::InvalidDpopProof,
                "the DPoP proof was used before (its jti was seen)",
            ));
        }
        if proofs.len() >= MAX_PROOFS {
            proofs.retain(|_, until| *until > now);
            if proofs.len() >= MAX_PROOFS {
                return Err(OAuthError::new(
                    ErrorCode::TemporarilyUnavailable,
                    "too many DPoP proofs in flight",
                ));
            }
        }
        proofs.insert(key, checked.iat.saturating_add(dpop::IAT_WINDOW + 1));
        Ok(())
    }
}
