//! Client key pairs for tests that sign as a client (assertions, request objects): the private
//! half signs with `jsonwebtoken`, an implementation independent of Lockspire's; the public
//! half is registered as a JWK.

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// A client key pair: the private half signs, the public half is registered.
pub struct ClientKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Value,
}

impl ClientKey {
    pub fn es256(kid: &str) -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("generate");
        let pkcs8 = pair.to_pkcs8v1().expect("pkcs8");
        let point = pair.public_key().as_ref();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        Self {
            kid: kid.into(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk,
        }
    }

    pub fn eddsa(kid: &str) -> Self {
        let pair = Ed25519KeyPair::generate().expect("generate");
        let pkcs8 = pair.to_pkcs8().expect("pkcs8");
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())});
        Self {
            kid: kid.into(),
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
            jwk,
        }
    }

    /// An RSA 2048 key for RS256, made by `josekit`.
    pub fn rs256(kid: &str) -> Self {
        let pair = josekit::jws::RS256
            .generate_key_pair(2048)
            .expect("generate");
        // PKCS#1 RSAPrivateKey DER, the form `jsonwebtoken` reads.
        let der = pair.to_raw_private_key();
        let mut public = pair.to_jwk_public_key();
        public.set_key_id(kid);
        let jwk = serde_json::to_value(AsRef::<serde_json::Map<String, Value>>::as_ref(&public))
            .expect("json");
        Self {
            kid: kid.into(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_der(&der),
            jwk,
        }
    }

    /// The JWS `alg` name of this key.
    pub fn alg_name(&self) -> &'static str {
        match self.alg {
            Algorithm::EdDSA => "EdDSA",
            Algorithm::RS256 => "RS256",
            _ => "ES256",
        }
    }

    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }

    /// Signs `claims` under a header written as given: for proofs whose header carries more
    /// than `jsonwebtoken::Header` holds, or less than it requires.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature =
            jsonwebtoken::crypto::sign(input.as_bytes(), &self.encoding, self.alg).expect("sign");
        format!("{input}.{signature}")
    }

    /// The public JWK without `kid`, `use` and `alg`, as a DPoP proof's header carries it.
    pub fn public_members(&self) -> Value {
        let mut jwk = self.jwk.clone();
        if let Value::Object(m) = &mut jwk {
            for member in ["kid", "use", "alg"] {
                m.remove(member);
            }
        }
        jwk
    }

    /// RFC 7638 thumbprint of the public key, computed here independently of Lockspire.
    pub fn thumbprint(&self) -> String {
        let j = &self.jwk;
        let canonical = match j["kty"].as_str() {
            Some("EC") => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                j["crv"].as_str().unwrap_or_default(),
                j["x"].as_str().unwrap_or_default(),
                j["y"].as_str().unwrap_or_default()
            ),
            _ => format!(
                r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
                j["crv"].as_str().unwrap_or_default(),
                j["x"].as_str().unwrap_or_default()
            ),
        };
        URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            canonical.as_bytes(),
        ))
    }
}

/// A JWK set of the public halves.
pub fn jwks(keys: &[&ClientKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
}

/// An encryption key pair made by `josekit`, an implementation independent of Lockspire's: the
/// public half is registered with (or read from) a JWKS, the private half decrypts.
pub struct EncryptionKey {
    pub private: josekit::jwk::Jwk,
    pub public: Value,
}

impl EncryptionKey {
    /// An RSA 2048 key for RSA-OAEP-256 and RSA-OAEP.
    pub fn rsa(kid: &str) -> Self {
        let pair = josekit::jwe::RSA_OAEP_256
            .generate_key_pair(2048)
            .expect("generate");
        Self::from_jwk(josekit::jwk::KeyPair::to_jwk_key_pair(&pair), kid)
    }

    /// A P-256 key for ECDH-ES with and without key wrap.
    pub fn ec(kid: &str) -> Self {
        let pair = josekit::jwe::ECDH_ES
            .generate_ec_key_pair(josekit::jwk::alg::ec::EcCurve::P256)
            .expect("generate");
        Self::from_jwk(josekit::jwk::KeyPair::to_jwk_key_pair(&pair), kid)
    }

    fn from_jwk(generated: josekit::jwk::Jwk, kid: &str) -> Self {
        // One key for every alg of its kind: the generator's `alg` member would pin one.
        let mut map = AsRef::<serde_json::Map<String, Value>>::as_ref(&generated).clone();
        map.remove("alg");
        let mut private = josekit::jwk::Jwk::from_map(map).expect("jwk");
        private.set_key_id(kid);
        private.set_key_use("enc");
        let mut public = private.to_public_key().expect("public half");
        // josekit's public half drops the kid; the registered key names it.
        public.set_key_id(kid);
        let public = serde_json::to_value(AsRef::<serde_json::Map<String, Value>>::as_ref(&public))
            .expect("json");
        Self { private, public }
    }

    /// Decrypts a compact JWE addressed to this key under `alg`; returns the plaintext and the
    /// protected header.
    pub fn decrypt(&self, jwe: &str, alg: &str) -> (Vec<u8>, josekit::jwe::JweHeader) {
        let decrypter: Box<dyn josekit::jwe::JweDecrypter> = match alg {
            "RSA-OAEP-256" => Box::new(
                josekit::jwe::RSA_OAEP_256
                    .decrypter_from_jwk(&self.private)
                    .expect("decrypter"),
            ),
            "RSA-OAEP" => Box::new(
                josekit::jwe::RSA_OAEP
                    .decrypter_from_jwk(&self.private)
                    .expect("decrypter"),
            ),
            "ECDH-ES" => Box::new(
                josekit::jwe::ECDH_ES
                    .decrypter_from_jwk(&self.private)
                    .expect("decrypter"),
            ),
            "ECDH-ES+A128KW" => Box::new(
                josekit::jwe::ECDH_ES_A128KW
                    .decrypter_from_jwk(&self.private)
                    .expect("decrypter"),
            ),
            "ECDH-ES+A256KW" => Box::new(
                josekit::jwe::ECDH_ES_A256KW
                    .decrypter_from_jwk(&self.private)
                    .expect("decrypter"),
            ),
            other => panic!("no decrypter for {other}"),
        };
        josekit::jwe::deserialize_compact(jwe, &*decrypter).expect("decrypts")
    }
}

/// Encrypts `payload` to the public JWK `to` with `josekit` (RFC 7516 compact form). `cty` is
/// `JWT` for a nested JWT.
pub fn encrypt_to(to: &Value, alg: &str, enc: &str, cty: Option<&str>, payload: &[u8]) -> String {
    let Value::Object(mut map) = to.clone() else {
        panic!("a JWK object")
    };
    // josekit refuses a key whose `alg` differs from the one used; Lockspire's keys carry none.
    map.remove("alg");
    let jwk = josekit::jwk::Jwk::from_map(map).expect("jwk");
    let mut header = josekit::jwe::JweHeader::new();
    header.set_content_encryption(enc);
    if let Some(kid) = to.get("kid").and_then(Value::as_str) {
        header.set_key_id(kid);
    }
    if let Some(cty) = cty {
        header.set_content_type(cty);
    }
    let encrypter: Box<dyn josekit::jwe::JweEncrypter> = match alg {
        "RSA-OAEP-256" => Box::new(
            josekit::jwe::RSA_OAEP_256
                .encrypter_from_jwk(&jwk)
                .expect("encrypter"),
        ),
        "RSA-OAEP" => Box::new(
            josekit::jwe::RSA_OAEP
                .encrypter_from_jwk(&jwk)
                .expect("encrypter"),
        ),
        // Only to prove it is refused (RFC 8725 §3.2: its padding oracle).
        #[allow(deprecated)]
        "RSA1_5" => Box::new(
            josekit::jwe::RSA1_5
                .encrypter_from_jwk(&jwk)
                .expect("encrypter"),
        ),
        "ECDH-ES" => Box::new(
            josekit::jwe::ECDH_ES
                .encrypter_from_jwk(&jwk)
                .expect("encrypter"),
        ),
        "ECDH-ES+A128KW" => Box::new(
            josekit::jwe::ECDH_ES_A128KW
                .encrypter_from_jwk(&jwk)
                .expect("encrypter"),
        ),
        "ECDH-ES+A256KW" => Box::new(
            josekit::jwe::ECDH_ES_A256KW
                .encrypter_from_jwk(&jwk)
                .expect("encrypter"),
        ),
        other => panic!("no encrypter for {other}"),
    };
    josekit::jwe::serialize_compact(payload, &header, &*encrypter).expect("encrypt")
}

/// Every JWE `alg` and `enc` Lockspire supports.
pub const JWE_ALGS: [&str; 5] = [
    "RSA-OAEP-256",
    "RSA-OAEP",
    "ECDH-ES",
    "ECDH-ES+A128KW",
    "ECDH-ES+A256KW",
];
pub const JWE_ENCS: [&str; 4] = ["A128CBC-HS256", "A256CBC-HS512", "A128GCM", "A256GCM"];
