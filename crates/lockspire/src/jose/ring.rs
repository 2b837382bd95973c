//! The keys of one issuer as the server holds them: each parsed once, signing and decryption
//! keys side by side, and the key set published at `jwks_uri` (RFC 7517 §5, RFC 8414 §2).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::decryption_key::DecryptionKey;
use super::jwe::{DecryptingKey, EncryptionKeyType};
use super::keys::{KeyAlg, KeyError, KeyStatus, SigningAlg, SigningKey, generate_signing_key};

/// A key the server holds, parsed once.
#[derive(Debug)]
pub enum ServerKey {
    /// Signs tokens and responses.
    Signing(SigningKey),
    /// Decrypts what clients encrypt to the server.
    Decryption(DecryptionKey),
}

impl ServerKey {
    /// Parses a stored PKCS#8 private key of `alg`.
    pub(crate) fn from_pkcs8(kid: &str, alg: KeyAlg, pkcs8: &[u8]) -> Result<Self, KeyError> {
        Ok(match alg {
            KeyAlg::Sign(alg) => Self::Signing(SigningKey::from_pkcs8(kid, alg, pkcs8)?),
            KeyAlg::Decrypt(t) => Self::Decryption(DecryptionKey::from_pkcs8(Some(kid), t, pkcs8)?),
        })
    }

    /// The key id: its RFC 7638 thumbprint.
    pub fn kid(&self) -> &str {
        match self {
            Self::Signing(k) => k.kid(),
            Self::Decryption(k) => k.kid(),
        }
    }

    /// What the key is for.
    pub fn alg(&self) -> KeyAlg {
        match self {
            Self::Signing(k) => KeyAlg::Sign(k.alg()),
            Self::Decryption(k) => KeyAlg::Decrypt(k.key_type()),
        }
    }

    /// The public JWK, as published.
    pub fn public_jwk(&self) -> &Value {
        match self {
            Self::Signing(k) => k.public_jwk(),
            Self::Decryption(k) => k.public_jwk(),
        }
    }
}

impl From<SigningKey> for ServerKey {
    fn from(key: SigningKey) -> Self {
        Self::Signing(key)
    }
}

impl From<DecryptionKey> for ServerKey {
    fn from(key: DecryptionKey) -> Self {
        Self::Decryption(key)
    }
}

/// A freshly generated key: its parsed form and the PKCS#8 document to seal and store.
pub(crate) struct GeneratedKey {
    pub(crate) key: ServerKey,
    pub(crate) pkcs8: Vec<u8>,
}

/// Generates a key for `alg` (RSA 2048 for the RSA algorithms). Its `kid` is its RFC 7638
/// thumbprint.
pub(crate) fn generate_key(alg: KeyAlg) -> Result<GeneratedKey, KeyError> {
    let (key, pkcs8) = match alg {
        KeyAlg::Sign(alg) => {
            let (key, pkcs8) = generate_signing_key(alg)?;
            (ServerKey::Signing(key), pkcs8)
        }
        KeyAlg::Decrypt(t) => {
            let (key, pkcs8) = DecryptionKey::generate(t)?;
            (ServerKey::Decryption(key), pkcs8)
        }
    };
    Ok(GeneratedKey { key, pkcs8 })
}

/// The keys of one issuer, parsed once: the active key per alg and the published JWKS body,
/// serialized ahead of time so `/jwks` writes bytes without building JSON.
pub struct KeyRing {
    active: HashMap<SigningAlg, Arc<SigningKey>>,
    by_kid: HashMap<String, Arc<SigningKey>>,
    /// Every published encryption key: a client may encrypt to any key it saw in JWKS, upcoming
    /// and retiring ones included.
    decrypting: Vec<DecryptionKey>,
    jwks_body: Arc<str>,
}

impl KeyRing {
    /// Builds the ring from published keys with their status.
    pub fn new<K: Into<ServerKey>>(keys: Vec<(K, KeyStatus)>) -> Self {
        let mut active = HashMap::new();
        let mut by_kid = HashMap::new();
        let mut decrypting = Vec::new();
        let mut published = Vec::new();
        for (key, status) in keys {
            if status == KeyStatus::Retired {
                continue;
            }
            let key = match key.into() {
                ServerKey::Signing(key) => key,
                ServerKey::Decryption(key) => {
                    published.push(key.public_jwk().clone());
                    decrypting.push(key);
                    continue;
                }
            };
            published.push(key.public_jwk().clone());
            let key = Arc::new(key);
            if status == KeyStatus::Active {
                active.insert(key.alg(), key.clone());
            }
            by_kid.insert(key.kid().to_owned(), key);
        }
        let jwks_body = json!({ "keys": published }).to_string().into();
        Self {
            active,
            by_kid,
            decrypting,
            jwks_body,
        }
    }

    /// The active key for `alg`.
    pub fn active(&self, alg: SigningAlg) -> Result<&Arc<SigningKey>, KeyError> {
        self.active.get(&alg).ok_or(KeyError::NoActiveKey(alg))
    }

    /// A published key by id, for verifying tokens this server issued.
    pub fn get(&self, kid: &str) -> Option<&Arc<SigningKey>> {
        self.by_kid.get(kid)
    }

    /// The algs that have an active key.
    pub fn active_algs(&self) -> impl Iterator<Item = SigningAlg> + '_ {
        self.active.keys().copied()
    }

    /// The published encryption keys of `key_type`, the one named `kid` only when the sender
    /// named one.
    pub(crate) fn decrypting_keys(
        &self,
        key_type: EncryptionKeyType,
        kid: Option<&str>,
    ) -> impl Iterator<Item = &DecryptingKey> {
        self.decrypting
            .iter()
            .filter(move |k| k.key_type() == key_type && kid.is_none_or(|kid| k.kid() == kid))
            .map(|k| &k.private)
    }

    /// The key kinds clients can encrypt to.
    pub(crate) fn encryption_key_types(&self) -> impl Iterator<Item = EncryptionKeyType> + '_ {
        self.decrypting.iter().map(DecryptionKey::key_type)
    }

    /// The JWKS document (RFC 7517 §5), public members only.
    pub fn jwks_json(&self) -> &str {
        &self.jwks_body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_publish_no_private_members() {
        for alg in KeyAlg::ALL {
            let k = generate_key(alg).map(|g| g.key).ok();
            let jwk = k
                .as_ref()
                .map(|k| k.public_jwk().clone())
                .unwrap_or_default();
            for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
                assert!(
                    jwk.get(private).is_none(),
                    "{alg}: JWK has private member {private}"
                );
            }
            match alg {
                KeyAlg::Sign(alg) => assert_eq!(jwk["alg"], alg.as_str()),
                KeyAlg::Decrypt(_) => {
                    assert_eq!(jwk["use"], "enc");
                    assert!(jwk.get("alg").is_none(), "one key serves several algs");
                }
            }
            assert_eq!(jwk["kid"].as_str().map(str::len), Some(43));
        }
    }
}
