//! Server keys (RFC 7517, RFC 7518 §3): signing keys and the encryption keys clients encrypt to,
//! their generation, JWK export, RFC 7638 `kid`, and the in-memory key ring that keeps every key
//! parsed once.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RSA_PSS_SHA256, RsaKeyPair,
};
use serde_json::{Value, json};

use super::jwe::EncryptionKeyType;
use crate::secrets::b64;

/// JWS algorithms Lockspire signs with (RFC 7518 §3.1, RFC 8037 §3.1). `none` and the HMAC
/// algorithms are deliberately absent: a server-signed token is always asymmetric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256; the OIDC default for ID tokens (OIDC Discovery §3).
    RS256,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// ECDSA P-256 with SHA-256; Lockspire's default for tokens it chooses the alg of.
    ES256,
    /// Ed25519 (RFC 8037).
    EdDSA,
}

impl SigningAlg {
    /// Every supported algorithm, in the order discovery lists them.
    pub const ALL: [SigningAlg; 4] = [Self::RS256, Self::PS256, Self::ES256, Self::EdDSA];

    /// The `alg` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::PS256 => "PS256",
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
        }
    }

    /// Hash used for `at_hash` / `c_hash` (OIDC Core §3.1.3.6): the hash of the alg's JWS
    /// signature; Ed25519 signs with SHA-512.
    pub(crate) fn half_hash_algorithm(self) -> &'static digest::Algorithm {
        match self {
            Self::EdDSA => &digest::SHA512,
            _ => &digest::SHA256,
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlg {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| KeyError::UnsupportedAlg(s.to_owned()))
    }
}

/// What a server key is for, as stored and as operators name it: signing under one JWS alg, or
/// decrypting what clients encrypt to the server (RFC 7516). An encryption key serves every JWE
/// algorithm of its kind, and is named after the kind's preferred one: `RSA-OAEP-256` for the
/// RSA key (which also decrypts `RSA-OAEP`), `ECDH-ES` for the P-256 key (which also decrypts
/// `ECDH-ES+A128KW` and `ECDH-ES+A256KW`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyAlg {
    /// A signing key.
    Sign(SigningAlg),
    /// An encryption key.
    Decrypt(EncryptionKeyType),
}

impl KeyAlg {
    /// Every kind of key the server keeps one active key of.
    pub const ALL: [KeyAlg; 6] = [
        Self::Sign(SigningAlg::RS256),
        Self::Sign(SigningAlg::PS256),
        Self::Sign(SigningAlg::ES256),
        Self::Sign(SigningAlg::EdDSA),
        Self::Decrypt(EncryptionKeyType::Rsa),
        Self::Decrypt(EncryptionKeyType::EcP256),
    ];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sign(alg) => alg.as_str(),
            Self::Decrypt(EncryptionKeyType::Rsa) => "RSA-OAEP-256",
            Self::Decrypt(EncryptionKeyType::EcP256) => "ECDH-ES",
        }
    }
}

impl From<SigningAlg> for KeyAlg {
    fn from(alg: SigningAlg) -> Self {
        Self::Sign(alg)
    }
}

impl fmt::Display for KeyAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyAlg {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| KeyError::UnsupportedAlg(s.to_owned()))
    }
}

/// Where a key is in its lifecycle: published before use, kept after retirement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyStatus {
    /// Published in JWKS, not yet used to sign.
    Upcoming,
    /// Signs new tokens of its alg.
    Active,
    /// No longer signs; still published so existing tokens verify.
    Retiring,
    /// Unpublished.
    Retired,
}

impl KeyStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Upcoming => "upcoming",
            Self::Active => "active",
            Self::Retiring => "retiring",
            Self::Retired => "retired",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "upcoming" => Some(Self::Upcoming),
            "active" => Some(Self::Active),
            "retiring" => Some(Self::Retiring),
            "retired" => Some(Self::Retired),
            _ => None,
        }
    }
}

/// Key material errors; never shown to clients.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The alg is not one Lockspire signs or decrypts with.
    #[error("unsupported key algorithm {0}")]
    UnsupportedAlg(String),
    /// Generation or signing failed inside the crypto library.
    #[error("cryptographic operation failed")]
    Crypto,
    /// A stored private key could not be unsealed (wrong secret key) or parsed.
    #[error("stored key {kid} could not be opened: {why}")]
    Unusable {
        /// Key id.
        kid: String,
        /// What went wrong.
        why: &'static str,
    },
    /// No active key exists for an alg that must be signed with.
    #[error("no active signing key for {0}")]
    NoActiveKey(SigningAlg),
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A parsed private signing key, kept in memory so no request re-parses key material.
pub struct SigningKey {
    kid: String,
    alg: SigningAlg,
    pair: Pair,
    public_jwk: Value,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Parses a PKCS#8 private key for `alg`.
    pub(crate) fn from_pkcs8(kid: &str, alg: SigningAlg, pkcs8: &[u8]) -> Result<Self, KeyError> {
        let unusable = |why| KeyError::Unusable {
            kid: kid.to_owned(),
            why,
        };
        let pair = match alg {
            SigningAlg::RS256 | SigningAlg::PS256 => Pair::Rsa(
                RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| unusable("not an RSA PKCS#8 key"))?,
            ),
            SigningAlg::ES256 => Pair::Ec(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                    .map_err(|_| unusable("not a P-256 PKCS#8 key"))?,
            ),
            SigningAlg::EdDSA => Pair::Ed(
                Ed25519KeyPair::from_pkcs8(pkcs8)
                    .map_err(|_| unusable("not an Ed25519 PKCS#8 key"))?,
            ),
        };
        let public_jwk = public_jwk(&pair, alg);
        Ok(Self {
            kid: kid.to_owned(),
            alg,
            pair,
            public_jwk,
        })
    }

    /// A new key for `alg` (RSA 2048 for RS256/PS256); its `kid` is its RFC 7638 thumbprint.
    pub fn generate(alg: SigningAlg) -> Result<Self, KeyError> {
        generate_signing_key(alg).map(|(key, _)| key)
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm this key signs with.
    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// The public JWK (RFC 7517 §4), with `kid`, `alg` and `use`; never private members.
    pub fn public_jwk(&self) -> &Value {
        &self.public_jwk
    }

    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256,
            UnparsedPublicKey,
        };
        match (&self.pair, self.alg) {
            (Pair::Rsa(k), SigningAlg::PS256) => {
                UnparsedPublicKey::new(&RSA_PSS_2048_8192_SHA256, k.public_key().as_ref())
                    .verify(message, signature)
                    .is_ok()
            }
            (Pair::Rsa(k), _) => {
                UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, k.public_key().as_ref())
                    .verify(message, signature)
                    .is_ok()
            }
            (Pair::Ec(k), _) => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, k.public_key().as_ref())
                    .verify(message, signature)
                    .is_ok()
            }
            (Pair::Ed(k), _) => UnparsedPublicKey::new(&ED25519, k.public_key().as_ref())
                .verify(message, signature)
                .is_ok(),
        }
    }

    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match (&self.pair, self.alg) {
            (Pair::Rsa(k), alg) => {
                let scheme = if alg == SigningAlg::PS256 {
                    &RSA_PSS_SHA256
                } else {
                    &RSA_PKCS1_SHA256
                };
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(scheme, &SystemRandom::new(), message, &mut sig)
                    .map_err(|_| KeyError::Crypto)?;
                Ok(sig)
            }
            (Pair::Ec(k), _) => k
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Crypto),
            (Pair::Ed(k), _) => Ok(k.sign(message).as_ref().to_vec()),
        }
    }
}

fn public_jwk(pair: &Pair, alg: SigningAlg) -> Value {
    let mut jwk = match pair {
        Pair::Rsa(k) => rsa_members(k),
        Pair::Ec(k) => {
            // Uncompressed SEC1 point: 0x04 ‖ x ‖ y, 32 bytes each for P-256.
            let point = k.public_key().as_ref();
            let (x, y) = point
                .get(1..)
                .unwrap_or_default()
                .split_at(point.len().saturating_sub(1) / 2);
            json!({ "kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y) })
        }
        Pair::Ed(k) => json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(k.public_key().as_ref()) }),
    };
    let kid = thumbprint(&jwk);
    if let Value::Object(map) = &mut jwk {
        map.insert("kid".into(), Value::String(kid));
        map.insert("alg".into(), Value::String(alg.as_str().into()));
        map.insert("use".into(), Value::String("sig".into()));
    }
    jwk
}

fn rsa_members(k: &RsaKeyPair) -> Value {
    let public = k.public_key();
    json!({
        "kty": "RSA",
        "n": b64(public.modulus().big_endian_without_leading_zero()),
        "e": b64(public.exponent().big_endian_without_leading_zero()),
    })
}

/// The public members (`kty`, `n`, `e`) of an RSA PKCS#8 private key.
pub(crate) fn rsa_public_jwk(pkcs8: &[u8]) -> Option<Value> {
    RsaKeyPair::from_pkcs8(pkcs8).ok().map(|k| rsa_members(&k))
}

/// RFC 7638 JWK thumbprint: SHA-256 over the required members in lexicographic order.
pub(crate) fn thumbprint(jwk: &Value) -> String {
    let member = |k: &str| {
        jwk.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let canonical = match member("kty").as_str() {
        "RSA" => format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            member("e"),
            member("n")
        ),
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            member("crv"),
            member("x"),
            member("y")
        ),
        _ => format!(
            r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
            member("crv"),
            member("x")
        ),
    };
    b64(digest::digest(&digest::SHA256, canonical.as_bytes()))
}

pub(super) fn generate_signing_key(alg: SigningAlg) -> Result<(SigningKey, Vec<u8>), KeyError> {
    let pkcs8: Vec<u8> = match alg {
        SigningAlg::RS256 | SigningAlg::PS256 => {
            let k = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Crypto)?;
            k.as_der().map_err(|_| KeyError::Crypto)?.as_ref().to_vec()
        }
        SigningAlg::ES256 => {
            let k = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .map_err(|_| KeyError::Crypto)?;
            k.to_pkcs8v1()
                .map_err(|_| KeyError::Crypto)?
                .as_ref()
                .to_vec()
        }
        SigningAlg::EdDSA => {
            let k = Ed25519KeyPair::generate().map_err(|_| KeyError::Crypto)?;
            k.to_pkcs8v1()
                .map_err(|_| KeyError::Crypto)?
                .as_ref()
                .to_vec()
        }
    };
    let provisional = SigningKey::from_pkcs8("", alg, &pkcs8)?;
    let kid = provisional
        .public_jwk
        .get("kid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Ok((SigningKey { kid, ..provisional }, pkcs8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_thumbprint_example() {
        // RFC 7638 §3.1 example key and its thumbprint.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            thumbprint(&jwk),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
