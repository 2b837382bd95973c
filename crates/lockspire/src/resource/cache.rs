//! JWT access tokens verified before, remembered until they expire: a client uses one access
//! token for many requests, and checking its signature each time would cost most of a
//! request. A token is found again by the SHA-256 of its text (the token itself is not kept),
//! so only the exact bytes that were verified match. Its expiry is checked on every use, and it
//! is forgotten as soon as the key that signed it is no longer published.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;

use super::token::AccessToken;
use crate::secrets::b64_decode;

/// Most tokens remembered. Only tokens that verified enter, so nobody can fill the memory
/// without holding valid tokens; past this, the expired ones go, and if none has, all do.
const MAX_TOKENS: usize = 10_000;

struct Entry {
    token: AccessToken,
    /// The key that signed it.
    kid: String,
}

/// The verified JWTs of one resource server.
#[derive(Default)]
pub(crate) struct VerifiedJwts {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

impl VerifiedJwts {
    /// What a token is remembered by.
    pub(crate) fn key(token: &str) -> [u8; 32] {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(digest.as_ref());
        key
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        match self.entries.lock() {
            Ok(g) => g,
            // One insert or remove at a time: a panic cannot leave the map half-changed.
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The token remembered under `key`, if it is unexpired at `now` and its key still
    /// `published`.
    pub(crate) fn get(
        &self,
        key: &[u8; 32],
        now: i64,
        published: impl Fn(&str) -> bool,
    ) -> Option<AccessToken> {
        let mut entries = self.lock();
        let entry = entries.get(key)?;
        if entry.token.expires_at() > now && published(&entry.kid) {
            return Some(entry.token.clone());
        }
        entries.remove(key);
        None
    }

    /// Remembers a token that verified at `now`.
    pub(crate) fn put(&self, key: [u8; 32], token: AccessToken, kid: String, now: i64) {
        let mut entries = self.lock();
        if entries.len() >= MAX_TOKENS {
            entries.retain(|_, e| e.token.expires_at() > now);
            if entries.len() >= MAX_TOKENS {
                entries.clear();
            }
        }
        entries.insert(key, Entry { token, kid });
    }
}

/// The `kid` of a compact JWS's header (RFC 7515 §4.1.4).
pub(crate) fn jwt_kid(token: &str) -> Option<String> {
    let header: Value = token
        .split('.')
        .next()
        .and_then(b64_decode)
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())?;
    header.get("kid").and_then(Value::as_str).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn token(exp: i64) -> AccessToken {
        let claims = json!({"client_id": "c", "exp": exp, "scope": "a"});
        match claims {
            Value::Object(map) => AccessToken::from_claims(map).expect("a token"),
            _ => unreachable!("an object"),
        }
    }

    #[test]
    fn a_remembered_token_is_given_back_only_while_unexpired_and_its_key_published() {
        let cache = VerifiedJwts::default();
        let key = VerifiedJwts::key("a.b.c");
        cache.put(key, token(100), "k1".into(), 50);
        assert!(cache.get(&key, 99, |_| true).is_some());
        assert!(
            cache
                .get(&VerifiedJwts::key("a.b.d"), 99, |_| true)
                .is_none(),
            "other bytes"
        );
        assert!(
            cache.get(&key, 99, |kid| kid != "k1").is_none(),
            "key withdrawn"
        );
        assert!(cache.get(&key, 99, |_| true).is_none(), "and forgotten");
        cache.put(key, token(100), "k1".into(), 50);
        assert!(cache.get(&key, 100, |_| true).is_none(), "expired");
    }

    #[test]
    fn the_cache_never_holds_more_than_its_bound() {
        let cache = VerifiedJwts::default();
        for i in 0..(MAX_TOKENS * 2 + 3) {
            cache.put(
                VerifiedJwts::key(&i.to_string()),
                token(1_000),
                "k".into(),
                0,
            );
            assert!(cache.lock().len() <= MAX_TOKENS);
        }
    }
}
