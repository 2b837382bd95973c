//! DPoP proofs (RFC 9449 §4.2) the generator signs, a fresh one per request, with one ES256 key
//! per run: what a sender-constrained client pays, and makes the server pay, per token request.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

use super::*;

/// The `ath` of `token` (RFC 9449 §4.2): its SHA-256 hash, base64url.
pub(crate) fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        token.as_bytes(),
    ))
}

/// An ES256 key and the encoded proof header naming its public half.
pub(crate) struct ProofSigner {
    pair: EcdsaKeyPair,
    header: String,
    htu: String,
    rng: SystemRandom,
}

impl ProofSigner {
    /// A new key, for proofs to `POST htu`.
    pub(crate) fn new(htu: &str) -> anyhow::Result<Self> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| anyhow::anyhow!("generating the DPoP key failed"))?;
        let point = pair.public_key().as_ref().to_vec();
        let (x, y) = point.get(1..).context("public key")?.split_at(32);
        let header = json!({
            "typ": "dpop+jwt", "alg": "ES256",
            "jwk": {"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)},
        });
        Ok(Self {
            pair,
            header: URL_SAFE_NO_PAD.encode(header.to_string()),
            htu: htu.to_owned(),
            rng: SystemRandom::new(),
        })
    }

    /// A proof for one `POST` to the token endpoint: a random `jti`, `iat` now.
    pub(crate) fn proof(&self) -> anyhow::Result<String> {
        self.proof_for("POST", &self.htu, None)
    }

    /// A proof for `method` at `htu`, naming the access token whose hash is `ath` at a
    /// resource (§4.2).
    pub(crate) fn proof_for(
        &self,
        method: &str,
        htu: &str,
        ath: Option<&str>,
    ) -> anyhow::Result<String> {
        let mut jti = [0u8; 16];
        aws_lc_rs::rand::SecureRandom::fill(&self.rng, &mut jti)
            .map_err(|_| anyhow::anyhow!("random"))?;
        let iat = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let mut claims =
            json!({"jti": URL_SAFE_NO_PAD.encode(jti), "htm": method, "htu": htu, "iat": iat});
        if let Some(ath) = ath {
            claims["ath"] = json!(ath);
        }
        let input = format!(
            "{}.{}",
            self.header,
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .pair
            .sign(&self.rng, input.as_bytes())
            .map_err(|_| anyhow::anyhow!("signing the proof failed"))?;
        Ok(format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }
}
