//! PKCE (RFC 7636), S256 only: `plain` offers no protection against a leaked authorization
//! request (RFC 9700 §2.1.1), so it is refused.

use aws_lc_rs::digest;

use crate::protocol::error::OAuthError;
use crate::secrets::{b64, constant_time_eq};

/// A verified S256 code challenge (RFC 7636 §4.2): exactly 43 base64url characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CodeChallenge(String);

impl CodeChallenge {
    /// Parses `code_challenge` and `code_challenge_method` from an authorization request.
    pub(crate) fn parse(challenge: Option<&str>, method: Option<&str>) -> Result<Self, OAuthError> {
        let challenge = challenge
            .ok_or_else(|| OAuthError::invalid_request("code_challenge is required (PKCE)"))?;
        match method {
            Some("S256") => {}
            // RFC 7636 §4.3: an absent method means plain.
            None | Some("plain") => {
                return Err(OAuthError::invalid_request(
                    "code_challenge_method must be S256; plain is not allowed",
                ));
            }
            Some(_) => {
                return Err(OAuthError::invalid_request(
                    "code_challenge_method is not supported",
                ));
            }
        }
        if challenge.len() != 43 || !challenge.bytes().all(is_base64url) {
            return Err(OAuthError::invalid_request(
                "code_challenge must be a base64url SHA-256 digest",
            ));
        }
        Ok(Self(challenge.to_owned()))
    }

    pub(crate) fn from_stored(s: String) -> Self {
        Self(s)
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// RFC 7636 §4.6: BASE64URL(SHA256(verifier)) must equal the challenge.
    pub(crate) fn verify(&self, verifier: &str) -> bool {
        let computed = b64(digest::digest(&digest::SHA256, verifier.as_bytes()));
        constant_time_eq(computed.as_bytes(), self.0.as_bytes())
    }
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// RFC 7636 §4.1: 43–128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
pub(crate) fn check_verifier(verifier: &str) -> Result<(), OAuthError> {
    let ok = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if ok {
        Ok(())
    } else {
        Err(OAuthError::invalid_request(
            "code_verifier must be 43 to 128 unreserved characters",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_vector() {
        let c = CodeChallenge::parse(
            Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
            Some("S256"),
        );
        let Ok(c) = c else {
            panic!("valid challenge refused")
        };
        assert!(c.verify("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"));
        assert!(!c.verify("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj"));
    }

    #[test]
    fn plain_code_challenge_method_is_refused() {
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(CodeChallenge::parse(Some(v), Some("plain")).is_err());
        assert!(CodeChallenge::parse(Some(v), None).is_err());
    }

    #[test]
    fn verifier_charset_and_length() {
        assert!(check_verifier(&"a".repeat(42)).is_err());
        assert!(check_verifier(&"a".repeat(43)).is_ok());
        assert!(check_verifier(&"a".repeat(129)).is_err());
        assert!(check_verifier(&format!("{}+", "a".repeat(43))).is_err());
    }
}
