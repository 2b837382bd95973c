//! Compact JWE (RFC 7516 §7.1) with the key management algorithms of RFC 7518 §4.3 (RSA-OAEP)
//! and §4.6 (ECDH-ES on P-256, direct or with AES key wrap) and the content encryption of
//! RFC 7518 §5.2 (AES-CBC with HMAC) and §5.3 (AES-GCM).
//!
//! Lockspire decrypts what clients encrypt to the server's `use: enc` keys (nested request
//! objects, RFC 9101 §6.1) and encrypts authorization responses to a client's key (JARM §2.3).
//! It is written on aws-lc-rs directly: that library already provides every primitive (RSA-OAEP,
//! ECDH, AES key wrap, AES-GCM, AES-CBC, HMAC) and is the one crypto library under rustls and
//! the signing code, while the Rust JOSE crates that do JWE bring OpenSSL or their own
//! primitives beside it.
//!
//! Every failure is the one [`JweError`], so nothing tells a sender which step failed (RFC 7516
//! §11.4, §11.5): an RSA decryption failure continues with a random content key and fails at the
//! authentication tag like any other tampering. RSA1_5 is not an algorithm here at all, and
//! compression (`zip`) is refused so a small ciphertext cannot expand into a large plaintext.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, ECDH_P256, UnparsedPublicKey};
use aws_lc_rs::cipher::{
    self, DecryptionContext, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey, UnboundCipherKey,
};
use aws_lc_rs::constant_time;
use aws_lc_rs::digest;
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::key_wrap::{self, AesKek, KeyWrap};
use aws_lc_rs::rsa::{
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepAlgorithm, OaepPrivateDecryptingKey,
    OaepPublicEncryptingKey, PublicEncryptingKey,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::secrets::{b64, b64_decode, random_bytes};

/// JWE key management algorithms (RFC 7518 §4.1) Lockspire decrypts and encrypts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyManagementAlg {
    /// RSAES OAEP with SHA-256 and MGF1 with SHA-256 (RFC 7518 §4.3).
    RsaOaep256,
    /// RSAES OAEP with SHA-1 and MGF1 with SHA-1 (RFC 7518 §4.3), for clients that have no other.
    RsaOaep,
    /// ECDH-ES key agreement used directly as the content key (RFC 7518 §4.6).
    EcdhEs,
    /// ECDH-ES key agreement, then AES-128 key wrap of the content key.
    EcdhEsA128Kw,
    /// ECDH-ES key agreement, then AES-256 key wrap of the content key.
    EcdhEsA256Kw,
}

impl KeyManagementAlg {
    /// Every supported algorithm, in the order discovery lists them.
    pub const ALL: [Self; 5] = [
        Self::RsaOaep256,
        Self::RsaOaep,
        Self::EcdhEs,
        Self::EcdhEsA128Kw,
        Self::EcdhEsA256Kw,
    ];

    /// The `alg` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RsaOaep256 => "RSA-OAEP-256",
            Self::RsaOaep => "RSA-OAEP",
            Self::EcdhEs => "ECDH-ES",
            Self::EcdhEsA128Kw => "ECDH-ES+A128KW",
            Self::EcdhEsA256Kw => "ECDH-ES+A256KW",
        }
    }

    /// Parses an `alg` value; `None` for any other (RSA1_5 and `dir` included).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The kind of key this algorithm encrypts to.
    pub fn key_type(self) -> EncryptionKeyType {
        match self {
            Self::RsaOaep256 | Self::RsaOaep => EncryptionKeyType::Rsa,
            _ => EncryptionKeyType::EcP256,
        }
    }

    fn oaep(self) -> &'static OaepAlgorithm {
        if self == Self::RsaOaep {
            &OAEP_SHA1_MGF1SHA1
        } else {
            &OAEP_SHA256_MGF1SHA256
        }
    }

    /// The AES key wrap of the ECDH-ES+KW algorithms.
    fn key_wrap(self) -> Option<&'static key_wrap::AesBlockCipher> {
        match self {
            Self::EcdhEsA128Kw => Some(&key_wrap::AES_128),
            Self::EcdhEsA256Kw => Some(&key_wrap::AES_256),
            _ => None,
        }
    }
}

/// JWE content encryption algorithms (RFC 7518 §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContentEncryptionAlg {
    /// AES-128 in GCM (RFC 7518 §5.3).
    A128Gcm,
    /// AES-256 in GCM.
    A256Gcm,
    /// AES-128 in CBC with HMAC SHA-256 (RFC 7518 §5.2.3); JARM's default `enc`.
    A128CbcHs256,
    /// AES-256 in CBC with HMAC SHA-512 (RFC 7518 §5.2.5).
    A256CbcHs512,
}

impl ContentEncryptionAlg {
    /// Every supported algorithm, in the order discovery lists them.
    pub const ALL: [Self; 4] = [
        Self::A128CbcHs256,
        Self::A256CbcHs512,
        Self::A128Gcm,
        Self::A256Gcm,
    ];

    /// The `enc` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A128Gcm => "A128GCM",
            Self::A256Gcm => "A256GCM",
            Self::A128CbcHs256 => "A128CBC-HS256",
            Self::A256CbcHs512 => "A256CBC-HS512",
        }
    }

    /// Parses an `enc` value.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Length of the content encryption key: for the CBC algorithms, the MAC key and the
    /// encryption key together (RFC 7518 §5.2.2.1).
    fn key_len(self) -> usize {
        match self {
            Self::A128Gcm => 16,
            Self::A256Gcm | Self::A128CbcHs256 => 32,
            Self::A256CbcHs512 => 64,
        }
    }
}

/// The kinds of key the server decrypts with; each serves several [`KeyManagementAlg`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EncryptionKeyType {
    /// An RSA 2048 key, for RSA-OAEP-256 and RSA-OAEP.
    Rsa,
    /// A P-256 key, for ECDH-ES and ECDH-ES+A128KW / +A256KW.
    EcP256,
}

/// A JWE could not be decrypted or built. One variant on purpose: the sender learns nothing about
/// which step failed (RFC 7516 §11.4).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("JWE could not be processed")]
pub struct JweError;

/// The private half of a key clients encrypt to.
pub(crate) enum DecryptingKey {
    Rsa(OaepPrivateDecryptingKey),
    Ec(agreement::PrivateKey),
}

impl DecryptingKey {
    pub(crate) fn key_type(&self) -> EncryptionKeyType {
        match self {
            Self::Rsa(_) => EncryptionKeyType::Rsa,
            Self::Ec(_) => EncryptionKeyType::EcP256,
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    enc: String,
    kid: Option<String>,
    epk: Option<Value>,
    apu: Option<String>,
    apv: Option<String>,
    zip: Option<Value>,
    crit: Option<Value>,
}

/// The `kid` and algorithms a compact JWE names, read before choosing a key.
pub(crate) struct Addressed<'a> {
    parts: [&'a str; 5],
    header: Header,
    /// The key management algorithm.
    pub(crate) alg: KeyManagementAlg,
    /// The content encryption algorithm.
    pub(crate) enc: ContentEncryptionAlg,
}

impl<'a> Addressed<'a> {
    /// Parses the protected header of a compact JWE.
    pub(crate) fn parse(token: &'a str) -> Result<Self, JweError> {
        let mut split = token.split('.');
        let mut parts = [""; 5];
        for part in &mut parts {
            *part = split.next().ok_or(JweError)?;
        }
        if split.next().is_some() {
            return Err(JweError);
        }
        let header: Header =
            serde_json::from_slice(&b64_decode(parts[0]).ok_or(JweError)?).map_err(|_| JweError)?;
        // RFC 7516 §4.1.3 / §4.1.11: no compression, and no extension this code does not know.
        if header.zip.is_some() || header.crit.is_some() {
            return Err(JweError);
        }
        let alg = KeyManagementAlg::parse(&header.alg).ok_or(JweError)?;
        let enc = ContentEncryptionAlg::parse(&header.enc).ok_or(JweError)?;
        Ok(Self {
            parts,
            header,
            alg,
            enc,
        })
    }

    /// The `kid` header, when the sender named the key.
    pub(crate) fn kid(&self) -> Option<&str> {
        self.header.kid.as_deref()
    }

    /// Decrypts with `key`, which must be of the kind the `alg` names; returns the plaintext.
    pub(crate) fn decrypt(&self, key: &DecryptingKey) -> Result<Vec<u8>, JweError> {
        let [protected, encrypted_key, iv, ciphertext, tag] = self.parts;
        let encrypted_key = b64_decode(encrypted_key).ok_or(JweError)?;
        let cek = match key {
            DecryptingKey::Rsa(k) if self.alg.key_type() == EncryptionKeyType::Rsa => {
                let mut out = vec![0u8; k.min_output_size()];
                match k.decrypt(self.alg.oaep(), &encrypted_key, &mut out, None) {
                    Ok(cek) if cek.len() == self.enc.key_len() => cek.to_vec(),
                    // RFC 7516 §11.5: carry on with a random key, so a bad encrypted key fails at
                    // the tag like any other tampering instead of earlier and faster.
                    _ => random_key(self.enc.key_len()),
                }
            }
            DecryptingKey::Ec(k) if self.alg.key_type() == EncryptionKeyType::EcP256 => {
                let epk = self.header.epk.as_ref().ok_or(JweError)?;
                let agreed = agree(k, epk, self, self.enc)?;
                match self.alg.key_wrap() {
                    None if encrypted_key.is_empty() => agreed,
                    None => return Err(JweError),
                    Some(cipher) => {
                        let kek = AesKek::new(cipher, &agreed).map_err(|_| JweError)?;
                        let mut out = vec![0u8; encrypted_key.len()];
                        let cek = kek.unwrap(&encrypted_key, &mut out).map_err(|_| JweError)?;
                        if cek.len() != self.enc.key_len() {
                            return Err(JweError);
                        }
                        cek.to_vec()
                    }
                }
            }
            _ => return Err(JweError),
        };
        open(
            self.enc,
            &cek,
            protected.as_bytes(),
            &b64_decode(iv).ok_or(JweError)?,
            b64_decode(ciphertext).ok_or(JweError)?,
            &b64_decode(tag).ok_or(JweError)?,
        )
    }
}

fn random_key(len: usize) -> Vec<u8> {
    let bytes: [u8; 64] = random_bytes();
    bytes[..len.min(64)].to_vec()
}

/// The ECDH-ES shared secret run through the Concat KDF (RFC 7518 §4.6.2): the content key for
/// direct agreement, the key-wrapping key otherwise.
fn agree(
    private: &agreement::PrivateKey,
    epk: &Value,
    addressed: &Addressed<'_>,
    enc: ContentEncryptionAlg,
) -> Result<Vec<u8>, JweError> {
    let point = ec_point(epk).ok_or(JweError)?;
    let (algorithm_id, key_len) = kdf_target(addressed.alg, enc);
    let apu = decode_party(addressed.header.apu.as_deref())?;
    let apv = decode_party(addressed.header.apv.as_deref())?;
    agreement::agree(
        private,
        UnparsedPublicKey::new(&ECDH_P256, point),
        JweError,
        |z| Ok(concat_kdf(z, algorithm_id, &apu, &apv, key_len)),
    )
}

fn decode_party(value: Option<&str>) -> Result<Vec<u8>, JweError> {
    value.map_or(Ok(Vec::new()), |v| b64_decode(v).ok_or(JweError))
}

/// RFC 7518 §4.6.2: direct agreement derives the content key under the `enc` name; key
/// wrapping derives the wrapping key under the `alg` name.
fn kdf_target(alg: KeyManagementAlg, enc: ContentEncryptionAlg) -> (&'static str, usize) {
    match alg {
        KeyManagementAlg::EcdhEsA128Kw => (alg.as_str(), 16),
        KeyManagementAlg::EcdhEsA256Kw => (alg.as_str(), 32),
        _ => (enc.as_str(), enc.key_len()),
    }
}

/// The uncompressed SEC1 point of a P-256 public JWK; aws-lc checks that it is on the curve,
/// which stops invalid-curve attacks on the static key.
fn ec_point(jwk: &Value) -> Option<Vec<u8>> {
    if jwk.get("kty")?.as_str()? != "EC" || jwk.get("crv")?.as_str()? != "P-256" {
        return None;
    }
    let x = b64_decode(jwk.get("x")?.as_str()?)?;
    let y = b64_decode(jwk.get("y")?.as_str()?)?;
    if x.len() != 32 || y.len() != 32 {
        return None;
    }
    let mut point = Vec::with_capacity(65);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Some(point)
}

/// The single-step KDF of NIST SP 800-56A §5.8.1 with SHA-256, as RFC 7518 §4.6.2 profiles it.
fn concat_kdf(z: &[u8], algorithm_id: &str, apu: &[u8], apv: &[u8], key_len: usize) -> Vec<u8> {
    let mut other_info = Vec::with_capacity(algorithm_id.len() + apu.len() + apv.len() + 16);
    for field in [algorithm_id.as_bytes(), apu, apv] {
        other_info.extend_from_slice(&(field.len() as u32).to_be_bytes());
        other_info.extend_from_slice(field);
    }
    other_info.extend_from_slice(&((key_len * 8) as u32).to_be_bytes());
    let mut out = Vec::with_capacity(key_len + 32);
    let mut counter: u32 = 1;
    while out.len() < key_len {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(&counter.to_be_bytes());
        ctx.update(z);
        ctx.update(&other_info);
        out.extend_from_slice(ctx.finish().as_ref());
        counter += 1;
    }
    out.truncate(key_len);
    out
}

/// Authenticates and decrypts the content (RFC 7516 §5.2 steps 14–16).
fn open(
    enc: ContentEncryptionAlg,
    cek: &[u8],
    aad: &[u8],
    iv: &[u8],
    mut ciphertext: Vec<u8>,
    tag: &[u8],
) -> Result<Vec<u8>, JweError> {
    match enc {
        ContentEncryptionAlg::A128Gcm | ContentEncryptionAlg::A256Gcm => {
            let key = gcm_key(enc, cek)?;
            let nonce = Nonce::try_assume_unique_for_key(iv).map_err(|_| JweError)?;
            if tag.len() != aead::MAX_TAG_LEN {
                return Err(JweError);
            }
            ciphertext.extend_from_slice(tag);
            let len = key
                .open_in_place(nonce, Aad::from(aad), &mut ciphertext)
                .map_err(|_| JweError)?
                .len();
            ciphertext.truncate(len);
            Ok(ciphertext)
        }
        ContentEncryptionAlg::A128CbcHs256 | ContentEncryptionAlg::A256CbcHs512 => {
            let (mac_key, enc_key) = cek.split_at(cek.len() / 2);
            let expected = cbc_tag(enc, mac_key, aad, iv, &ciphertext);
            // RFC 7518 §5.2.2.2: the tag is checked before anything is decrypted, in constant
            // time, so the padding never answers.
            constant_time::verify_slices_are_equal(&expected, tag).map_err(|_| JweError)?;
            let iv: [u8; 16] = iv.try_into().map_err(|_| JweError)?;
            let key = PaddedBlockDecryptingKey::cbc_pkcs7(
                UnboundCipherKey::new(aes(enc_key)?, enc_key).map_err(|_| JweError)?,
            )
            .map_err(|_| JweError)?;
            let len = key
                .decrypt(
                    &mut ciphertext,
                    DecryptionContext::Iv128(FixedLength::from(iv)),
                )
                .map_err(|_| JweError)?
                .len();
            ciphertext.truncate(len);
            Ok(ciphertext)
        }
    }
}

fn gcm_key(enc: ContentEncryptionAlg, cek: &[u8]) -> Result<LessSafeKey, JweError> {
    let algorithm = if enc == ContentEncryptionAlg::A128Gcm {
        &aead::AES_128_GCM
    } else {
        &aead::AES_256_GCM
    };
    UnboundKey::new(algorithm, cek)
        .map(LessSafeKey::new)
        .map_err(|_| JweError)
}

fn aes(key: &[u8]) -> Result<&'static cipher::Algorithm, JweError> {
    match key.len() {
        16 => Ok(&cipher::AES_128),
        32 => Ok(&cipher::AES_256),
        _ => Err(JweError),
    }
}

/// RFC 7518 §5.2.2.1: HMAC over AAD ‖ IV ‖ ciphertext ‖ AL (the AAD's length in bits, 64-bit
/// big-endian), truncated to half the MAC's output.
fn cbc_tag(
    enc: ContentEncryptionAlg,
    mac_key: &[u8],
    aad: &[u8],
    iv: &[u8],
    ciphertext: &[u8],
) -> Vec<u8> {
    let algorithm = if enc == ContentEncryptionAlg::A128CbcHs256 {
        hmac::HMAC_SHA256
    } else {
        hmac::HMAC_SHA512
    };
    let mut ctx = hmac::Context::with_key(&hmac::Key::new(algorithm, mac_key));
    ctx.update(aad);
    ctx.update(iv);
    ctx.update(ciphertext);
    ctx.update(&((aad.len() as u64) * 8).to_be_bytes());
    let full = ctx.sign();
    full.as_ref()[..mac_key.len()].to_vec()
}

/// Encrypts `plaintext` to the public JWK `recipient` (RFC 7516 §5.1). `cty` is `JWT` for a
/// nested JWT (RFC 7519 §5.2). The recipient's `kid`, when it has one, is named in the header.
pub(crate) fn encrypt(
    plaintext: &[u8],
    recipient: &Value,
    alg: KeyManagementAlg,
    enc: ContentEncryptionAlg,
    cty: Option<&str>,
) -> Result<String, JweError> {
    let mut header = Map::new();
    header.insert("alg".into(), alg.as_str().into());
    header.insert("enc".into(), enc.as_str().into());
    if let Some(kid) = recipient.get("kid").and_then(Value::as_str) {
        header.insert("kid".into(), kid.into());
    }
    if let Some(cty) = cty {
        header.insert("cty".into(), cty.into());
    }
    let (cek, encrypted_key) = match alg.key_type() {
        EncryptionKeyType::Rsa => {
            let public = rsa_public_key(recipient)?;
            let cek = random_key(enc.key_len());
            let mut out = vec![0u8; public.ciphertext_size()];
            let encrypted = public
                .encrypt(alg.oaep(), &cek, &mut out, None)
                .map_err(|_| JweError)?
                .to_vec();
            (cek, encrypted)
        }
        EncryptionKeyType::EcP256 => {
            let point = ec_point(recipient).ok_or(JweError)?;
            let ephemeral = agreement::PrivateKey::generate(&ECDH_P256).map_err(|_| JweError)?;
            let public = ephemeral.compute_public_key().map_err(|_| JweError)?;
            let (x, y) = public.as_ref().get(1..).ok_or(JweError)?.split_at(32);
            header.insert(
                "epk".into(),
                serde_json::json!({ "kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y) }),
            );
            let (algorithm_id, key_len) = kdf_target(alg, enc);
            let agreed = agreement::agree(
                &ephemeral,
                UnparsedPublicKey::new(&ECDH_P256, point),
                JweError,
                |z| Ok(concat_kdf(z, algorithm_id, &[], &[], key_len)),
            )?;
            match alg.key_wrap() {
                None => (agreed, Vec::new()),
                Some(cipher) => {
                    let cek = random_key(enc.key_len());
                    let kek = AesKek::new(cipher, &agreed).map_err(|_| JweError)?;
                    let mut out = vec![0u8; cek.len() + 8];
                    let wrapped = kek.wrap(&cek, &mut out).map_err(|_| JweError)?.to_vec();
                    (cek, wrapped)
                }
            }
        }
    };
    let protected = b64(serde_json::to_vec(&header).map_err(|_| JweError)?);
    let (iv, ciphertext, tag) = seal(enc, &cek, protected.as_bytes(), plaintext)?;
    Ok([
        protected,
        b64(encrypted_key),
        b64(iv),
        b64(ciphertext),
        b64(tag),
    ]
    .join("."))
}

/// Encrypts and authenticates the content (RFC 7516 §5.1 steps 11–15): IV, ciphertext, tag.
type Sealed = (Vec<u8>, Vec<u8>, Vec<u8>);

fn seal(
    enc: ContentEncryptionAlg,
    cek: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Sealed, JweError> {
    let mut buffer = plaintext.to_vec();
    match enc {
        ContentEncryptionAlg::A128Gcm | ContentEncryptionAlg::A256Gcm => {
            let iv: [u8; 12] = random_bytes();
            let tag = gcm_key(enc, cek)?
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(iv),
                    Aad::from(aad),
                    &mut buffer,
                )
                .map_err(|_| JweError)?;
            Ok((iv.to_vec(), buffer, tag.as_ref().to_vec()))
        }
        ContentEncryptionAlg::A128CbcHs256 | ContentEncryptionAlg::A256CbcHs512 => {
            let (mac_key, enc_key) = cek.split_at(cek.len() / 2);
            let key = PaddedBlockEncryptingKey::cbc_pkcs7(
                UnboundCipherKey::new(aes(enc_key)?, enc_key).map_err(|_| JweError)?,
            )
            .map_err(|_| JweError)?;
            let context = key.encrypt(&mut buffer).map_err(|_| JweError)?;
            let iv: &[u8] = (&context).try_into().map_err(|_| JweError)?;
            let iv = iv.to_vec();
            let tag = cbc_tag(enc, mac_key, aad, &iv, &buffer);
            Ok((iv, buffer, tag))
        }
    }
}

/// RSA public key from a JWK's `n` and `e`, at least 2048 bits.
///
/// aws-lc-rs takes encryption keys only as DER `SubjectPublicKeyInfo`, so the two integers are
/// wrapped in that structure here (RFC 8017 A.1.1 inside RFC 5280 §4.1.2.7); no crate in the
/// dependency tree builds it from JWK members.
fn rsa_public_key(jwk: &Value) -> Result<OaepPublicEncryptingKey, JweError> {
    if jwk.get("kty").and_then(Value::as_str) != Some("RSA") {
        return Err(JweError);
    }
    let member = |name| {
        jwk.get(name)
            .and_then(Value::as_str)
            .and_then(b64_decode)
            .ok_or(JweError)
    };
    let (n, e) = (member("n")?, member("e")?);
    let rsa_public_key = der_sequence(&[der_integer(&n), der_integer(&e)].concat());
    // AlgorithmIdentifier: rsaEncryption (1.2.840.113549.1.1.1) with NULL parameters.
    let algorithm = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bit_string = vec![0x00];
    bit_string.extend_from_slice(&rsa_public_key);
    let spki = der_sequence(&[&algorithm[..], &der_tlv(0x03, &bit_string)].concat());
    let key = PublicEncryptingKey::from_der(&spki).map_err(|_| JweError)?;
    if key.key_size_bits() < 2048 {
        return Err(JweError);
    }
    OaepPublicEncryptingKey::new(key).map_err(|_| JweError)
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn der_sequence(content: &[u8]) -> Vec<u8> {
    der_tlv(0x30, content)
}

/// A positive INTEGER: leading zeros dropped, one added back when the high bit is set.
fn der_integer(big_endian: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = match big_endian.iter().position(|b| *b != 0) {
        Some(i) => &big_endian[i..],
        None => &[0],
    };
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed[0] & 0x80 != 0 {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    der_tlv(0x02, &content)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::{KeySize, PrivateDecryptingKey};

    fn rsa_pair() -> (DecryptingKey, Value) {
        let private = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
        let pkcs8 = private.as_der().unwrap();
        let jwk = super::super::keys::rsa_public_jwk(pkcs8.as_ref()).unwrap();
        (
            DecryptingKey::Rsa(OaepPrivateDecryptingKey::new(private).unwrap()),
            jwk,
        )
    }

    fn ec_pair() -> (DecryptingKey, Value) {
        let private = agreement::PrivateKey::generate(&ECDH_P256).unwrap();
        let public = private.compute_public_key().unwrap();
        let (x, y) = public.as_ref()[1..].split_at(32);
        let jwk = serde_json::json!({ "kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y) });
        (DecryptingKey::Ec(private), jwk)
    }

    #[test]
    fn every_alg_and_enc_round_trips() {
        let rsa = rsa_pair();
        let ec = ec_pair();
        for alg in KeyManagementAlg::ALL {
            let (key, jwk) = if alg.key_type() == EncryptionKeyType::Rsa {
                (&rsa.0, &rsa.1)
            } else {
                (&ec.0, &ec.1)
            };
            for enc in ContentEncryptionAlg::ALL {
                let jwe = encrypt(b"a nested JWT", jwk, alg, enc, Some("JWT")).unwrap();
                let addressed = Addressed::parse(&jwe).unwrap();
                assert_eq!((addressed.alg, addressed.enc), (alg, enc));
                let out = addressed.decrypt(key).unwrap();
                assert_eq!(out, b"a nested JWT", "{alg:?} {enc:?}");
            }
        }
    }

    #[test]
    fn tampering_anywhere_is_one_error() {
        let (key, jwk) = rsa_pair();
        for enc in ContentEncryptionAlg::ALL {
            let jwe = encrypt(b"payload", &jwk, KeyManagementAlg::RsaOaep256, enc, None).unwrap();
            let parts: Vec<&str> = jwe.split('.').collect();
            for i in 1..5 {
                let mut bytes = b64_decode(parts[i]).unwrap();
                bytes[0] ^= 1;
                let mut tampered = parts.clone();
                let replaced = b64(&bytes);
                tampered[i] = &replaced;
                let tampered = tampered.join(".");
                assert_eq!(
                    Addressed::parse(&tampered).unwrap().decrypt(&key).err(),
                    Some(JweError),
                    "{enc:?} part {i}"
                );
            }
        }
    }

    #[test]
    fn a_key_of_the_other_kind_or_another_key_does_not_decrypt() {
        let (rsa, rsa_jwk) = rsa_pair();
        let (ec, ec_jwk) = ec_pair();
        let (other_ec, _) = ec_pair();
        let to_rsa = encrypt(
            b"x",
            &rsa_jwk,
            KeyManagementAlg::RsaOaep,
            ContentEncryptionAlg::A128Gcm,
            None,
        )
        .unwrap();
        assert!(Addressed::parse(&to_rsa).unwrap().decrypt(&ec).is_err());
        let to_ec = encrypt(
            b"x",
            &ec_jwk,
            KeyManagementAlg::EcdhEs,
            ContentEncryptionAlg::A256Gcm,
            None,
        )
        .unwrap();
        assert!(Addressed::parse(&to_ec).unwrap().decrypt(&rsa).is_err());
        assert!(
            Addressed::parse(&to_ec)
                .unwrap()
                .decrypt(&other_ec)
                .is_err()
        );
        assert!(Addressed::parse(&to_ec).unwrap().decrypt(&ec).is_ok());
    }

    #[test]
    fn refused_headers() {
        let header = |h: &str| format!("{}.AA.AA.AA.AA", b64(h));
        for h in [
            r#"{"alg":"RSA1_5","enc":"A128GCM"}"#,
            r#"{"alg":"dir","enc":"A128GCM"}"#,
            r#"{"alg":"RSA-OAEP","enc":"A192GCM"}"#,
            r#"{"alg":"RSA-OAEP","enc":"A128GCM","zip":"DEF"}"#,
            r#"{"alg":"RSA-OAEP","enc":"A128GCM","crit":["exp"]}"#,
            r#"{"enc":"A128GCM"}"#,
        ] {
            assert!(Addressed::parse(&header(h)).is_err(), "{h}");
        }
        assert!(Addressed::parse("a.b.c").is_err());
        assert!(Addressed::parse("a.b.c.d.e.f").is_err());
    }

    /// RFC 7518 Appendix C: the Concat KDF example (ECDH-ES, A128GCM, apu "Alice", apv "Bob").
    #[test]
    fn rfc7518_concat_kdf_vector() {
        let z = [
            158, 86, 217, 29, 129, 113, 53, 211, 114, 131, 66, 131, 191, 132, 38, 156, 251, 49,
            110, 163, 218, 128, 106, 72, 246, 218, 167, 121, 140, 254, 144, 196,
        ];
        let key = concat_kdf(&z, "A128GCM", b"Alice", b"Bob", 16);
        assert_eq!(b64(key), "VqqN6vgjbSBcIijNcacQGg");
    }

    /// RFC 7518 Appendix B.1: AES_128_CBC_HMAC_SHA_256 test case (tag and ciphertext).
    #[test]
    fn rfc7518_cbc_hmac_vector() {
        let cek: Vec<u8> = (0u8..32).collect();
        let plaintext = b"A cipher system must not be required to be secret, and it must be able to fall into the hands of the enemy without inconvenience";
        let iv = [
            0x1a, 0xf3, 0x8c, 0x2d, 0xc2, 0xb9, 0x6f, 0xfd, 0xd8, 0x66, 0x94, 0x09, 0x23, 0x41,
            0xbc, 0x04,
        ];
        let aad = b"The second principle of Auguste Kerckhoffs";
        let (mac_key, enc_key) = cek.split_at(16);
        let mut buffer = plaintext.to_vec();
        let enc_key = PaddedBlockEncryptingKey::cbc_pkcs7(
            UnboundCipherKey::new(&cipher::AES_128, enc_key).unwrap(),
        )
        .unwrap();
        enc_key
            .less_safe_encrypt(
                &mut buffer,
                cipher::EncryptionContext::Iv128(FixedLength::from(iv)),
            )
            .unwrap();
        let tag = cbc_tag(
            ContentEncryptionAlg::A128CbcHs256,
            mac_key,
            aad,
            &iv,
            &buffer,
        );
        assert_eq!(
            tag,
            [
                0x65, 0x2c, 0x3f, 0xa3, 0x6b, 0x0a, 0x7c, 0x5b, 0x32, 0x19, 0xfa, 0xb3, 0xa3, 0x0b,
                0xc1, 0xc4
            ]
        );
        let opened = open(
            ContentEncryptionAlg::A128CbcHs256,
            &cek,
            aad,
            &iv,
            buffer,
            &tag,
        )
        .unwrap();
        assert_eq!(opened, plaintext);
    }
}
