//! The server's encryption keys (RFC 7517 §4.2 `use: enc`): what clients encrypt request objects
//! to (RFC 9101 §6.1). Published in JWKS beside the signing keys, generated, sealed at rest and
//! rotated through the same lifecycle.

use std::fmt;

use aws_lc_rs::agreement::{self, ECDH_P256};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::{KeySize, OaepPrivateDecryptingKey, PrivateDecryptingKey};
use serde_json::{Value, json};

use super::jwe::{DecryptingKey, EncryptionKeyType};
use super::keys::{KeyError, rsa_public_jwk, thumbprint};
use crate::secrets::b64;

/// A parsed private encryption key, kept in memory so no request re-parses key material.
pub struct DecryptionKey {
    kid: String,
    pub(crate) private: DecryptingKey,
    public_jwk: Value,
}

impl fmt::Debug for DecryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecryptionKey")
            .field("kid", &self.kid)
            .field("type", &self.private.key_type())
            .finish_non_exhaustive()
    }
}

impl DecryptionKey {
    /// Parses a PKCS#8 private key of `key_type`; the `kid` is the RFC 7638 thumbprint.
    pub(crate) fn from_pkcs8(
        kid: Option<&str>,
        key_type: EncryptionKeyType,
        pkcs8: &[u8],
    ) -> Result<Self, KeyError> {
        let unusable = |why| KeyError::Unusable {
            kid: kid.unwrap_or_default().to_owned(),
            why,
        };
        let (private, mut public_jwk) = match key_type {
            EncryptionKeyType::Rsa => {
                let private = PrivateDecryptingKey::from_pkcs8(pkcs8)
                    .map_err(|_| unusable("not an RSA PKCS#8 key"))?;
                let jwk = rsa_public_jwk(pkcs8).ok_or_else(|| unusable("not an RSA PKCS#8 key"))?;
                let oaep =
                    OaepPrivateDecryptingKey::new(private).map_err(|_| unusable("RSA key"))?;
                (DecryptingKey::Rsa(oaep), jwk)
            }
            EncryptionKeyType::EcP256 => {
                let private = agreement::PrivateKey::from_private_key_der(&ECDH_P256, pkcs8)
                    .map_err(|_| unusable("not a P-256 PKCS#8 key"))?;
                let public = private
                    .compute_public_key()
                    .map_err(|_| unusable("P-256 key"))?;
                // Uncompressed SEC1 point: 0x04 ‖ x ‖ y.
                let (x, y) = public
                    .as_ref()
                    .get(1..)
                    .unwrap_or_default()
                    .split_at(public.as_ref().len().saturating_sub(1) / 2);
                let jwk = json!({ "kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y) });
                (DecryptingKey::Ec(private), jwk)
            }
        };
        let kid = thumbprint(&public_jwk);
        if let Value::Object(map) = &mut public_jwk {
            map.insert("kid".into(), Value::String(kid.clone()));
            // No `alg`: one key serves every algorithm of its kind (RSA-OAEP-256 and RSA-OAEP,
            // or ECDH-ES with and without key wrap), and RFC 7517 §4.4 makes `alg` optional.
            map.insert("use".into(), Value::String("enc".into()));
        }
        Ok(Self {
            kid,
            private,
            public_jwk,
        })
    }

    /// A new key of `key_type` (RSA 2048 or P-256) and its PKCS#8 document to seal and store.
    pub(crate) fn generate(key_type: EncryptionKeyType) -> Result<(Self, Vec<u8>), KeyError> {
        let pkcs8: Vec<u8> = match key_type {
            EncryptionKeyType::Rsa => {
                let k = PrivateDecryptingKey::generate(KeySize::Rsa2048)
                    .map_err(|_| KeyError::Crypto)?;
                AsDer::<Pkcs8V1Der>::as_der(&k)
                    .map_err(|_| KeyError::Crypto)?
                    .as_ref()
                    .to_vec()
            }
            EncryptionKeyType::EcP256 => {
                let k =
                    agreement::PrivateKey::generate(&ECDH_P256).map_err(|_| KeyError::Crypto)?;
                AsDer::<Pkcs8V1Der>::as_der(&k)
                    .map_err(|_| KeyError::Crypto)?
                    .as_ref()
                    .to_vec()
            }
        };
        Ok((Self::from_pkcs8(None, key_type, &pkcs8)?, pkcs8))
    }

    /// The key id: its RFC 7638 thumbprint.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The kind of key, and so which JWE algorithms it decrypts.
    pub fn key_type(&self) -> EncryptionKeyType {
        self.private.key_type()
    }

    /// The public JWK (RFC 7517 §4) with `kid` and `use: enc`; never private members.
    pub fn public_jwk(&self) -> &Value {
        &self.public_jwk
    }
}
