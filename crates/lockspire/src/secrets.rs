//! Server secrets and the primitives every bearer artifact relies on (RFC 6819 §5.1.4.1.3, RFC 6749 §10.10).
//!
//! One host-supplied 256-bit key is expanded with HKDF into independent subkeys: one seals
//! private signing keys at rest (AES-256-GCM), one peppers client-secret digests (HMAC-SHA256),
//! one signs the consent form's CSRF tokens. Losing the database alone therefore yields neither
//! a usable private key nor a way to test client-secret guesses offline.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::{constant_time, digest, hkdf, hmac};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// base64url without padding (RFC 7515 §2), the encoding of every token, digest and JOSE part.
pub(crate) fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding.
pub(crate) fn b64_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// Fills `N` bytes from the operating system's CSPRNG.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The system RNG only fails when the OS cannot supply entropy; nothing safe can continue.
    if SystemRandom::new().fill(&mut buf).is_err() {
        panic!("the operating system's random number generator failed");
    }
    buf
}

/// A credential held in memory: a client secret, an assertion, a code or a token. `Debug` and
/// `Display` print `[redacted]`, so a value that holds one can be logged or printed without
/// leaking it (RFC 6819 §5.1.4.1.3, RFC 9700 §4.14); the credential itself is reached only
/// through [`Secret::expose`], and serializes as the plain string for the one response that
/// hands it over.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The credential itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// A fresh bearer artifact: 256 bits from the CSPRNG, base64url (43 characters) (RFC 6749 §10.10).
pub(crate) fn random_token() -> String {
    b64(random_bytes::<32>())
}

/// Bytes of issue time at the front of a [`time_ordered_token`]: milliseconds since the Unix
/// epoch, big-endian (48 bits last until the year 10889).
const ISSUE_TIME_BYTES: usize = 6;

/// Length of a [`time_ordered_token`]: 6 + 32 bytes in base64url.
const TIME_ORDERED_LEN: usize = 51;

/// A fresh token for the token table (codes, access and refresh tokens): 48 bits of issue time
/// in milliseconds, then 256 bits from the CSPRNG, base64url (51 characters). The time is not
/// secret (JWTs carry `iat`); the random part is what makes the token unguessable (RFC 6749 §10.10).
/// Its stored key ([`token_key`]) starts with that time, so the keys of a burst of
/// issuances sort next to each other: an insert touches the same few index pages as the last
/// one instead of a random page of an index that grows with every token, which keeps each
/// durable commit small and the working set of the index in cache.
pub(crate) fn time_ordered_token() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut raw = [0u8; ISSUE_TIME_BYTES + 32];
    raw[..ISSUE_TIME_BYTES].copy_from_slice(&millis.to_be_bytes()[8 - ISSUE_TIME_BYTES..]);
    raw[ISSUE_TIME_BYTES..].copy_from_slice(&random_bytes::<32>());
    b64(raw)
}

/// A fresh identifier: 128 bits, base64url. Identifiers are not secrets.
pub(crate) fn random_id() -> String {
    b64(random_bytes::<16>())
}

/// A generated `client_id` (RFC 6749 §2.2): 128 random bits, base64url. It never begins with
/// `-`, so an operator can pass it to a command (`lockspire client show ID`) without it being
/// read as an option.
pub(crate) fn new_client_id() -> String {
    loop {
        let id = random_id();
        if !id.starts_with('-') {
            return id;
        }
    }
}

/// SHA-256 digest of a bearer artifact, base64url: the only form in which it is stored (RFC
/// 6819 §5.1.4.1.3). Every artifact gets a digest of one length, so comparing digests takes
/// the same time whatever the presented value's length.
pub(crate) fn token_digest(token: &str) -> String {
    b64(digest::digest(&digest::SHA256, token.as_bytes()))
}

/// The key of a code, access or refresh token in the token table: its [`token_digest`], which
/// for a [`time_ordered_token`] follows the token's issue time in hex (hex sorts like the number
/// it encodes; base64url does not), so keys sort by issue time. Any other presented value (a
/// JWT, a token minted before time-ordered tokens) keys by its digest alone; the two shapes
/// differ in length, so they never collide. Only the token table uses this: everything else
/// keys by the plain digest.
pub(crate) fn token_key(token: &str) -> String {
    let digest = token_digest(token);
    let shaped = token.len() == TIME_ORDERED_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let time = shaped
        .then(|| URL_SAFE_NO_PAD.decode(&token[..8]).ok())
        .flatten()
        .filter(|time| time.len() == ISSUE_TIME_BYTES);
    match time {
        Some(time) => {
            let millis = time.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b));
            format!("{millis:012x}{digest}")
        }
        None => digest,
    }
}

/// Compares two byte strings in constant time.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// The host-supplied key from which all server secrets derive. Its `Debug` is redacted.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// Why a secret key could not be read.
#[derive(Debug, thiserror::Error)]
#[error("the secret key must be 32 bytes encoded as base64 or base64url (44 or 43 characters)")]
pub struct InvalidSecretKey;

impl SecretKey {
    /// A new random key, for hosts that store it themselves.
    pub fn generate() -> Self {
        Self(random_bytes())
    }

    /// Reads a key of exactly 32 bytes in base64 or base64url.
    pub fn from_base64(text: &str) -> Result<Self, InvalidSecretKey> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text))
            .map_err(|_| InvalidSecretKey)?;
        <[u8; 32]>::try_from(bytes.as_slice())
            .map(Self)
            .map_err(|_| InvalidSecretKey)
    }

    /// The key DPoP nonces derive from (see [`ServerSecrets::dpop_nonces`]).
    pub(crate) fn dpop_nonce_key(&self) -> [u8; 32] {
        derive(self, b"dpop-nonce")
    }

    /// The key in base64 (for a host that generated it and must store it). Handle with care.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

struct HkdfLen(usize);

impl hkdf::KeyType for HkdfLen {
    fn len(&self) -> usize {
        self.0
    }
}

fn derive(key: &SecretKey, label: &[u8]) -> [u8; 32] {
    let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"lockspire/v1");
    let prk = salt.extract(&key.0);
    let mut out = [0u8; 32];
    let info = [label];
    // HKDF-Expand fails only when asked for more than 255 blocks; 32 bytes is one block.
    let okm = prk.expand(&info, HkdfLen(32));
    if okm.and_then(|okm| okm.fill(&mut out)).is_err() {
        unreachable!("HKDF-SHA256 can always expand to 32 bytes");
    }
    out
}

/// Server-chosen DPoP nonces (RFC 9449 §8, §9): stateless and rotating. The nonce of a time
/// window is a MAC of the window's number under a key and a scope, so every process holding the
/// key issues and accepts the same values without storing any, and the scope keeps the nonces
/// of the authorization server and of each resource server apart (§9: a nonce from one is not
/// good at another). A nonce is accepted during its window and the next, so it lives between
/// one and two [`NONCE_PERIOD`]s; and during the window before its own, so a process whose clock
/// is a little behind the one that issued it still takes it.
#[derive(Clone)]
pub(crate) struct RotatingNonces {
    key: hmac::Key,
    scope: String,
}

/// How long one nonce is issued before the next replaces it, in seconds.
pub(crate) const NONCE_PERIOD: i64 = 120;

impl RotatingNonces {
    /// Nonces under `key` (any length; 32 random bytes are right) for `scope`.
    pub(crate) fn new(key: &[u8], scope: &str) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            scope: scope.to_owned(),
        }
    }

    fn of_window(&self, window: i64) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(self.scope.as_bytes());
        ctx.update(&[0]);
        ctx.update(&window.to_be_bytes());
        // 128 bits: unguessable, and short enough for a header on every response.
        b64(&ctx.sign().as_ref()[..16])
    }

    /// The nonce to hand out at `now`.
    pub(crate) fn current(&self, now: i64) -> String {
        self.of_window(now.div_euclid(NONCE_PERIOD))
    }

    /// True when `nonce` was issued in the window of `now`, the one before or the one after.
    pub(crate) fn accepts(&self, nonce: &str, now: i64) -> bool {
        let window = now.div_euclid(NONCE_PERIOD);
        // Every window is compared, so the time taken does not tell which one matched.
        [window.saturating_sub(1), window, window.saturating_add(1)]
            .iter()
            .fold(false, |found, w| {
                found | constant_time_eq(self.of_window(*w).as_bytes(), nonce.as_bytes())
            })
    }
}

/// The derived server secrets.
pub(crate) struct ServerSecrets {
    seal: RandomizedNonceKey,
    pepper: hmac::Key,
    csrf: hmac::Key,
    pairwise: hmac::Key,
    user_code: hmac::Key,
    attempts: hmac::Key,
    session: hmac::Key,
    client_session: hmac::Key,
    dpop_nonce: [u8; 32],
}

/// A sealed value could not be opened: wrong key or tampered data.
#[derive(Debug, thiserror::Error)]
#[error("sealed data could not be opened with this secret key")]
pub struct UnsealError;

impl ServerSecrets {
    pub(crate) fn new(key: &SecretKey) -> Self {
        let seal_key = derive(key, b"seal");
        // AES-256-GCM accepts any 32-byte key.
        let seal = match RandomizedNonceKey::new(&AES_256_GCM, &seal_key) {
            Ok(k) => k,
            Err(_) => unreachable!("AES-256-GCM accepts a 32-byte key"),
        };
        Self {
            seal,
            pepper: hmac::Key::new(hmac::HMAC_SHA256, &derive(key, b"client-secret-pepper")),
            csrf: hmac::Key::new(hmac::HMAC_SHA256, &derive(key, b"csrf")),
            pairwise: hmac::Key::new(hmac::HMAC_SHA256, &derive(key, b"pairwise-subject")),
            user_code: hmac::Key::new(hmac::HMAC_SHA256, &derive(key, b"device-user-code")),
            attempts: hmac::Key::new(hmac::HMAC_SHA256, &derive(key, b"attempt-counters")),
            session: hmac::Key::new(hmac::HMAC_SHA256, &derive(key, b"op-browser-session")),
            client_session: hmac::Key::new(hmac::HMAC_SHA256, &derive(key, b"client-session-id")),
            dpop_nonce: derive(key, b"dpop-nonce"),
        }
    }

    /// The DPoP nonces of `scope` (the authorization server, or one resource server).
    pub(crate) fn dpop_nonces(&self, scope: &str) -> RotatingNonces {
        RotatingNonces::new(&self.dpop_nonce, scope)
    }

    /// The key DPoP nonces derive from, for resource servers that scope their own.
    pub(crate) fn dpop_nonce_key(&self) -> [u8; 32] {
        self.dpop_nonce
    }

    /// Seals `plaintext` with AES-256-GCM; `context` is bound as associated data so a sealed
    /// value cannot be moved to another row. Output: base64url(nonce ‖ ciphertext ‖ tag).
    pub(crate) fn seal(&self, context: &str, plaintext: &[u8]) -> String {
        let mut in_out = plaintext.to_vec();
        let Ok(nonce) = self
            .seal
            .seal_in_place_append_tag(Aad::from(context.as_bytes()), &mut in_out)
        else {
            unreachable!("AES-GCM sealing of an in-memory buffer cannot fail");
        };
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&in_out);
        b64(out)
    }

    /// Opens a value sealed by [`Self::seal`] with the same `context`.
    pub(crate) fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>, UnsealError> {
        let data = b64_decode(sealed).ok_or(UnsealError)?;
        if data.len() < NONCE_LEN {
            return Err(UnsealError);
        }
        let (nonce, ciphertext) = data.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| UnsealError)?;
        let mut in_out = ciphertext.to_vec();
        let plain = self
            .seal
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut in_out)
            .map_err(|_| UnsealError)?;
        Ok(plain.to_vec())
    }

    /// Keyed digest of a client secret (RFC 6819 §5.1.4.1.3): HMAC-SHA256 under the server pepper.
    pub(crate) fn client_secret_digest(&self, secret: &str) -> String {
        b64(hmac::sign(&self.pepper, secret.as_bytes()))
    }

    /// Verifies a presented client secret against its stored digest in constant time.
    pub(crate) fn verify_client_secret(&self, secret: &str, digest: &str) -> bool {
        let Some(expected) = b64_decode(digest) else {
            return false;
        };
        hmac::verify(&self.pepper, secret.as_bytes(), &expected).is_ok()
    }

    /// A pairwise subject (OIDC Core §8.1): a keyed hash of the sector and the local subject, so
    /// clients of different sectors cannot correlate users and nobody can reverse it.
    pub(crate) fn pairwise_subject(&self, sector: &str, local: &str) -> String {
        let mut input = Vec::with_capacity(sector.len() + local.len() + 1);
        input.extend_from_slice(sector.as_bytes());
        input.push(0);
        input.extend_from_slice(local.as_bytes());
        b64(hmac::sign(&self.pairwise, &input))
    }

    /// The stored form of a device user code (RFC 8628 §6.1): keyed, because its few bits of
    /// entropy (34) would let anyone holding the database find a plain digest's code by trying
    /// them all.
    pub(crate) fn user_code_digest(&self, canonical: &str) -> String {
        b64(hmac::sign(&self.user_code, canonical.as_bytes()))
    }

    /// The stored form of what attempts are counted under (a user, a browser, an address):
    /// keyed, so the table of counters names nobody to whoever reads the database.
    pub(crate) fn attempt_key(&self, key: &str) -> String {
        b64(hmac::sign(&self.attempts, key.as_bytes()))
    }

    /// The OP session of `subject` in the browser whose cookie has digest `browser`: the same
    /// for every client the user authorizes in that browser, re-authentications included (OIDC
    /// Core §3.1.2.1 asks the user again, in the same session), until the cookie is replaced at
    /// logout; different for another user or browser, and linkable to neither by whoever reads
    /// it (a keyed hash). Clients never see it: each gets its own [`Self::client_session_id`].
    pub(crate) fn session_id(&self, browser: &str, subject: &str) -> String {
        let parts: [&[u8]; 2] = [browser.as_bytes(), subject.as_bytes()];
        b64(hmac::sign(&self.session, &parts.join(&0u8)))
    }

    /// The session id (`sid`, OpenID Connect Back-Channel Logout 1.0 §2.1) a client knows the
    /// OP session `op_session` by: different for each client, so clients cannot correlate a
    /// user through it, as pairwise subjects promise (OIDC Core §8).
    pub(crate) fn client_session_id(&self, op_session: &str, client_id: &str) -> String {
        let parts: [&[u8]; 2] = [op_session.as_bytes(), client_id.as_bytes()];
        b64(hmac::sign(&self.client_session, &parts.join(&0u8)))
    }

    /// CSRF token for a form bound to `binding` (an interaction and the browser that started it).
    pub(crate) fn csrf_token(&self, binding: &str) -> String {
        b64(hmac::sign(&self.csrf, binding.as_bytes()))
    }

    /// Verifies a CSRF token in constant time.
    pub(crate) fn verify_csrf(&self, binding: &str, token: &str) -> bool {
        match b64_decode(token) {
            Some(tag) => hmac::verify(&self.csrf, binding.as_bytes(), &tag).is_ok(),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dpop_nonce_lives_its_window_and_the_next_and_only_in_its_scope() {
        let secrets = ServerSecrets::new(&SecretKey::generate());
        let server = secrets.dpop_nonces("authorization-server");
        let resource = secrets.dpop_nonces("resource\0https://api.example/");
        let start = 10 * NONCE_PERIOD;
        let nonce = server.current(start);
        assert!(server.accepts(&nonce, start));
        assert!(server.accepts(&nonce, start + NONCE_PERIOD + NONCE_PERIOD / 2));
        assert!(!server.accepts(&nonce, start + 2 * NONCE_PERIOD));
        // A clock a little behind the issuer's still takes it; one a window behind does not.
        assert!(server.accepts(&nonce, start - 1));
        assert!(!server.accepts(&nonce, start - NONCE_PERIOD - 1));
        assert!(!resource.accepts(&nonce, start));
        assert_ne!(server.current(start + NONCE_PERIOD), nonce);
        // Another key (another deployment) issues other nonces.
        let other = ServerSecrets::new(&SecretKey::generate()).dpop_nonces("authorization-server");
        assert!(!other.accepts(&nonce, start));
        assert!(!server.accepts("", start));
    }

    /// One base64url id in 64 begins with `-`: across 4 000 ids, a generator that let them
    /// through would be caught all but once in 10^27 runs.
    #[test]
    fn generated_client_ids_never_look_like_command_line_options() {
        for _ in 0..4000 {
            let id = new_client_id();
            assert!(!id.starts_with('-'), "{id}");
            assert_eq!(id.len(), 22);
        }
    }

    #[test]
    fn a_secret_never_prints_but_serializes_for_its_response() {
        let secret = Secret::new("s3cr3t-value");
        assert!(!format!("{secret:?} {secret}").contains("s3cr3t"));
        assert_eq!(secret.expose(), "s3cr3t-value");
        assert_eq!(
            serde_json::to_string(&secret).ok().as_deref(),
            Some("\"s3cr3t-value\"")
        );
    }

    #[test]
    fn time_ordered_tokens_key_by_issue_time_then_digest() {
        let earlier = time_ordered_token();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later = time_ordered_token();
        assert_eq!(earlier.len(), TIME_ORDERED_LEN);
        assert_eq!(b64_decode(&earlier).map(|raw| raw.len()), Some(38));
        let (a, b) = (token_key(&earlier), token_key(&later));
        assert!(a < b, "keys sort by issue time: {a} !< {b}");
        // The key is the time in hex, then the SHA-256 of the whole token.
        let sha = b64(digest::digest(&digest::SHA256, earlier.as_bytes()));
        assert_eq!(&a[12..], sha);
        let millis = u64::from_str_radix(&a[..12], 16).expect("hex time");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as u64;
        assert!(now >= millis && now - millis < 60_000, "{millis} vs {now}");
        // Other artifacts (JWTs, tokens minted before) key by their digest alone.
        let plain = random_token();
        assert_eq!(
            token_key(&plain),
            b64(digest::digest(&digest::SHA256, plain.as_bytes()))
        );
        // 51 characters that are not base64url are not a time-ordered token either.
        let odd = format!("{}!", "a".repeat(50));
        assert_eq!(token_key(&odd).len(), 43);
        let wide = format!("é{}", "a".repeat(49));
        assert_eq!(token_key(&wide).len(), 43);
    }

    #[test]
    fn sealed_value_opens_only_with_same_key_and_context() {
        let a = ServerSecrets::new(&SecretKey::generate());
        let b = ServerSecrets::new(&SecretKey::generate());
        let sealed = a.seal("kid-1", b"private");
        assert_eq!(
            a.open("kid-1", &sealed).ok().as_deref(),
            Some(&b"private"[..])
        );
        assert!(a.open("kid-2", &sealed).is_err());
        assert!(b.open("kid-1", &sealed).is_err());
    }

    #[test]
    fn client_secret_digest_depends_on_pepper() {
        let a = ServerSecrets::new(&SecretKey::generate());
        let b = ServerSecrets::new(&SecretKey::generate());
        let d = a.client_secret_digest("s3cret");
        assert!(a.verify_client_secret("s3cret", &d));
        assert!(!a.verify_client_secret("s3cret!", &d));
        assert!(!b.verify_client_secret("s3cret", &d));
    }

    #[test]
    fn secret_key_round_trips_and_rejects_wrong_length() {
        let k = SecretKey::generate();
        assert!(SecretKey::from_base64(&k.to_base64()).is_ok());
        assert!(SecretKey::from_base64("c2hvcnQ=").is_err());
    }
}
