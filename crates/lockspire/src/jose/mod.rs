//! JOSE: signing keys, their lifecycle and sealing at rest, JWKS, and compact JWS
//! (RFC 7515, RFC 7517, RFC 7518, RFC 7638, RFC 8037).

mod jws;
mod keys;

pub use jws::sign_compact;
pub use jws::{JwsVerifyError, MAX_JWT_LEN, verify_compact};
pub(crate) use keys::generate_key;
pub use keys::{KeyError, KeyRing, KeyStatus, SigningAlg, SigningKey};
