//! Security profiles: sets of rules stricter than plain OAuth that a whole server, or one
//! client, is held to — the FAPI 2.0 Security Profile and FAPI 2.0 Message Signing.

use serde::{Deserialize, Serialize};

/// The security profile a server or a client is held to. A client is held to the stricter of
/// its own and the server's; registration refuses a client profile weaker than the server's.
///
/// - [`SecurityProfile::Fapi2Security`]: FAPI 2.0 Security Profile §5.3 (final). Pushed
///   authorization requests only (RFC 9126), PKCE with S256, confidential clients
///   authenticating with `private_key_jwt` (RFC 7523) or mutual TLS (RFC 8705), access tokens
///   sender-constrained by DPoP (RFC 9449) or mTLS, PS256, ES256 or EdDSA signatures only,
///   authorization codes of at most 60 s, exact https redirect URIs, client assertions whose
///   `aud` is the issuer as a string, refresh tokens that are not rotated.
/// - [`SecurityProfile::Fapi2MessageSigning`]: all of that, plus FAPI 2.0 Message Signing §5:
///   every pushed request is a signed request object (RFC 9101) with `nbf` and at most 60
///   minutes between `nbf` and `exp`, and every authorization response is a signed JARM
///   response.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProfile {
    /// OAuth 2.0 and OpenID Connect with Lockspire's own defaults (RFC 9700).
    #[default]
    None,
    /// FAPI 2.0 Security Profile.
    #[serde(rename = "fapi2_security")]
    Fapi2Security,
    /// FAPI 2.0 Message Signing, on top of the Security Profile.
    #[serde(rename = "fapi2_message_signing")]
    Fapi2MessageSigning,
}

/// FAPI 2.0 Security Profile §5.4.1: the only JWS algorithms, for what the server signs and
/// for what clients sign.
pub(crate) const FAPI_ALGS: [&str; 3] = ["PS256", "ES256", "EdDSA"];

/// FAPI 2.0 Security Profile §5.3.2.1: the longest an authorization code lives, in seconds.
pub(crate) const FAPI_CODE_LIFETIME: i64 = 60;

/// FAPI 2.0 Security Profile §5.3.2.2: a pushed request's `request_uri` expires in less than
/// 600 seconds.
pub(crate) const FAPI_PUSHED_LIFETIME: i64 = 599;

impl SecurityProfile {
    /// Every profile, from the least strict.
    pub const ALL: [SecurityProfile; 3] =
        [Self::None, Self::Fapi2Security, Self::Fapi2MessageSigning];

    /// The value of the `security_profile` setting and client metadata member.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Fapi2Security => "fapi2_security",
            Self::Fapi2MessageSigning => "fapi2_message_signing",
        }
    }

    /// The profile named `s` (`none`, `fapi2_security`, `fapi2_message_signing`).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// True under either FAPI 2.0 profile.
    pub fn is_fapi(self) -> bool {
        self != Self::None
    }

    /// True under FAPI 2.0 Message Signing: signed request objects and JARM responses.
    pub fn signs_messages(self) -> bool {
        self == Self::Fapi2MessageSigning
    }

    /// Whether a JWS `alg` may be used under this profile (FAPI 2.0 §5.4.1).
    pub fn allows_alg(self, alg: &str) -> bool {
        !self.is_fapi() || FAPI_ALGS.contains(&alg)
    }

    /// Whether refresh tokens are rotated at each use. RFC 9700 §4.14.2 rotates those of every
    /// client; FAPI 2.0 §5.3.2.1 forbids rotation, since its clients are confidential and
    /// their refresh tokens sender-constrained, and a lost response would strand the client.
    pub fn rotates_refresh_tokens(self) -> bool {
        !self.is_fapi()
    }
}

impl std::fmt::Display for SecurityProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_order_from_least_strict() {
        assert!(SecurityProfile::None < SecurityProfile::Fapi2Security);
        assert!(SecurityProfile::Fapi2Security < SecurityProfile::Fapi2MessageSigning);
        for p in SecurityProfile::ALL {
            assert_eq!(SecurityProfile::parse(p.as_str()), Some(p));
            let json = serde_json::to_value(p).ok();
            assert_eq!(json, Some(serde_json::Value::from(p.as_str())));
        }
        assert_eq!(SecurityProfile::parse("fapi2"), None);
    }

    #[test]
    fn fapi_allows_only_its_algorithms() {
        let fapi = SecurityProfile::Fapi2Security;
        assert!(!fapi.allows_alg("RS256"));
        assert!(fapi.allows_alg("PS256") && fapi.allows_alg("ES256") && fapi.allows_alg("EdDSA"));
        assert!(SecurityProfile::None.allows_alg("RS256"));
    }
}
