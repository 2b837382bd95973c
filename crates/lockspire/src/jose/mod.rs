//! JOSE: server keys, their lifecycle and sealing at rest, JWKS, compact JWS and compact JWE
//! (RFC 7515, RFC 7516, RFC 7517, RFC 7518, RFC 7638, RFC 8037).

mod decryption_key;
pub(crate) mod jwe;
mod jws;
mod keys;
mod ring;

pub use decryption_key::DecryptionKey;
pub use jwe::{ContentEncryptionAlg, EncryptionKeyType, KeyManagementAlg};
pub(crate) use jws::alg_name;
pub use jws::sign_compact;
pub use jws::{JwsVerifyError, MAX_JWT_LEN, verify_compact};
pub(crate) use keys::thumbprint;
pub use keys::{KeyAlg, KeyError, KeyStatus, SigningAlg, SigningKey};
pub(crate) use ring::generate_key;
pub use ring::{KeyRing, ServerKey};
