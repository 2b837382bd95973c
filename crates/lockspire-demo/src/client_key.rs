//! The demo relying party's own signing key, for the request objects it signs (RFC 9101): an
//! Ed25519 key whose seed lives in the demo's database, so every demo process sharing that
//! database signs with the key the provider has registered for the demo client.

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sqlx::{AnyPool, Row};

use crate::random;

/// TEXT and BIGINT only, so the same statement runs on SQLite and PostgreSQL.
const CREATE: &str = "CREATE TABLE IF NOT EXISTS demo_client_key (
    id BIGINT PRIMARY KEY,
    seed TEXT NOT NULL
)";

/// The key id the demo client's JWKS names it by.
const KID: &str = "demo-request-objects";

/// The relying party's key: signs, and publishes its public half as a JWK.
pub(crate) struct ClientKey {
    encoding: EncodingKey,
    jwk: Value,
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKey")
            .field("jwk", &self.jwk)
            .finish_non_exhaustive()
    }
}

impl ClientKey {
    /// The stored key, or a new one when none is stored yet. The first process to store one
    /// wins; every other reads it back.
    pub(crate) async fn load_or_create(pool: &AnyPool) -> anyhow::Result<Self> {
        sqlx::query(CREATE).execute(pool).await?;
        let fresh = URL_SAFE_NO_PAD.encode(random::bytes::<32>()?);
        sqlx::query(
            "INSERT INTO demo_client_key (id, seed) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        )
        .bind(fresh)
        .execute(pool)
        .await?;
        let row = sqlx::query("SELECT seed FROM demo_client_key WHERE id = 1")
            .fetch_one(pool)
            .await?;
        let seed = URL_SAFE_NO_PAD.decode(row.try_get::<String, _>("seed")?)?;
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|e| anyhow::anyhow!("the stored demo client key is unusable: {e}"))?;
        let pkcs8 = pair
            .to_pkcs8()
            .map_err(|e| anyhow::anyhow!("encoding the demo client key: {e}"))?;
        Ok(Self {
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
            jwk: json!({
                "kty": "OKP", "crv": "Ed25519", "kid": KID, "use": "sig", "alg": "EdDSA",
                "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            }),
        })
    }

    /// The JWK set to register for the demo client.
    pub(crate) fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk] })
    }

    /// Signs `claims` as a request object (RFC 9101 §4: `typ` `oauth-authz-req+jwt`).
    pub(crate) fn sign(&self, claims: &Value) -> Result<String, jsonwebtoken::errors::Error> {
        self.sign_typed("oauth-authz-req+jwt", claims)
    }

    /// Signs `claims` as a client assertion (RFC 7523 §3, `private_key_jwt`).
    pub(crate) fn sign_assertion(
        &self,
        claims: &Value,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        self.sign_typed("JWT", claims)
    }

    fn sign_typed(&self, typ: &str, claims: &Value) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(KID.to_owned());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding)
    }
}
