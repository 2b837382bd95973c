//! The cache of client key sets fetched from `jwks_uri` (RFC 7591 §2). A forced refresh (after
//! an unknown `kid` or a failed signature) happens at most once per [`MIN_FORCED_REFRESH`] per
//! URI, so an attacker cannot make the server hammer a URL; the cache is bounded in URIs, keys
//! and bytes, so clients cannot grow it without limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use serde_json::Value;

use crate::fetch::{FetchError, Fetcher};

/// How long fetched keys are used without asking again.
const TTL: Duration = Duration::from_secs(300);

/// Minimum time between forced refreshes of one URI.
pub(crate) const MIN_FORCED_REFRESH: Duration = Duration::from_secs(30);

/// Most URIs remembered. Registration is open to anyone under some policies, so a stream of
/// clients with new `jwks_uri`s must not grow memory: past this, the entries least recently used
/// make room. An evicted URI is simply fetched again when next used.
pub(crate) const MAX_URIS: usize = 512;

/// An entry unused for this long is dropped when room is needed, before any other.
const IDLE_LIMIT: Duration = Duration::from_secs(3600);

/// Most bytes of JSON all cached sets may hold together; each set holds at most 64 KiB and 16
/// keys, as inline `jwks` do, so the cache stays a few MiB whatever clients register.
const MAX_BYTES: usize = 4 * 1024 * 1024;

/// A fetched set is refused past this many keys or bytes (the limits of inline `jwks`).
const MAX_KEYS: usize = 16;
const MAX_SET_BYTES: usize = 64 * 1024;

#[derive(Default)]
struct Entry {
    /// The JSON size of the cached set, counted against [`MAX_BYTES`].
    weight: usize,
    /// When a lookup last used this entry.
    used_at: Option<Instant>,
    keys: Option<Arc<JwkSet>>,
    fetched_at: Option<Instant>,
    /// When a fetch last failed (a dead server is not asked again before the interval).
    failed_at: Option<Instant>,
    /// When a refresh was last forced by an unknown kid or a failed signature.
    forced_at: Option<Instant>,
    last_error: Option<FetchError>,
}

/// What the cache knows about a URI before deciding whether to fetch.
struct Snapshot {
    keys: Option<Arc<JwkSet>>,
    fresh: bool,
    may_force: bool,
    failed_recently: bool,
}

/// Fetched JWK sets by URI.
pub(crate) struct JwksCache {
    fetcher: Fetcher,
    entries: Mutex<HashMap<String, Entry>>,
}

/// The outcome of one lookup, telling the caller whether a refresh may still help.
pub(crate) struct Lookup {
    pub(crate) keys: Arc<JwkSet>,
    pub(crate) fresh: bool,
}

impl JwksCache {
    pub(crate) fn new(fetcher: Fetcher) -> Self {
        Self {
            fetcher,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn snapshot(&self, uri: &str) -> Snapshot {
        let mut entries = match self.entries.lock() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        };
        let recent = |t: Option<Instant>| t.is_some_and(|t| t.elapsed() < MIN_FORCED_REFRESH);
        if let Some(e) = entries.get_mut(uri) {
            e.used_at = Some(Instant::now());
        }
        match entries.get(uri) {
            Some(e) => Snapshot {
                keys: e.keys.clone(),
                fresh: e.fetched_at.is_some_and(|t| t.elapsed() < TTL),
                may_force: !recent(e.forced_at),
                failed_recently: recent(e.failed_at),
            },
            None => Snapshot {
                keys: None,
                fresh: false,
                may_force: true,
                failed_recently: false,
            },
        }
    }

    /// The keys at `uri`: cached while fresh; `force` asks again unless a refresh was already
    /// forced within [`MIN_FORCED_REFRESH`].
    pub(crate) async fn keys(&self, uri: &str, force: bool) -> Result<Lookup, FetchError> {
        let snap = self.snapshot(uri);
        let refetch = match (&snap.keys, force) {
            (Some(_), false) => !snap.fresh,
            (Some(_), true) => snap.may_force,
            (None, _) => !snap.failed_recently,
        };
        if !refetch {
            return match snap.keys {
                Some(keys) => Ok(Lookup { keys, fresh: false }),
                None => Err(FetchError::Transport(
                    "the last fetch failed moments ago; not retrying yet".into(),
                )),
            };
        }
        let fetched = self.fetcher.get_json(uri).await.and_then(|v| {
            let weight = v.to_string().len();
            let keys = v.get("keys").and_then(Value::as_array).map_or(0, Vec::len);
            if keys > MAX_KEYS || weight > MAX_SET_BYTES {
                return Err(FetchError::Body(format!(
                    "a client's JWK Set may hold at most {MAX_KEYS} keys in {MAX_SET_BYTES} bytes"
                )));
            }
            serde_json::from_value::<JwkSet>(v)
                .map(|set| (set, weight))
                .map_err(|e| FetchError::Body(format!("not a JWK set: {e}")))
        });
        let mut entries = match self.entries.lock() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Out while room is made, so that its own old size does not count.
        let mut entry = entries.remove(uri).unwrap_or_default();
        if let Ok((_, weight)) = &fetched {
            entry.weight = *weight;
        }
        make_room(&mut entries, Instant::now(), entry.weight);
        let entry = entries.entry(uri.to_owned()).or_insert(entry);
        entry.used_at = Some(Instant::now());
        if force {
            entry.forced_at = Some(Instant::now());
        }
        match fetched {
            Ok((set, _)) => {
                let keys = Arc::new(set);
                entry.keys = Some(keys.clone());
                entry.fetched_at = Some(Instant::now());
                entry.last_error = None;
                Ok(Lookup { keys, fresh: true })
            }
            Err(e) => {
                entry.failed_at = Some(Instant::now());
                entry.last_error = Some(e.clone());
                // Keep serving the last good keys.
                match &entry.keys {
                    Some(keys) => Ok(Lookup {
                        keys: keys.clone(),
                        fresh: false,
                    }),
                    None => Err(e),
                }
            }
        }
    }

    /// The last fetch error per URI, for operators.
    pub(crate) fn failures(&self) -> Vec<(String, String)> {
        let entries = match self.entries.lock() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        };
        entries
            .iter()
            .filter_map(|(uri, e)| {
                e.last_error
                    .as_ref()
                    .map(|err| (uri.clone(), err.to_string()))
            })
            .collect()
    }
}

/// Frees room for one more entry of `incoming` bytes: first every entry idle past
/// [`IDLE_LIMIT`], then, while the cache is still full by count or by bytes, the least recently
/// used one. Linear in the size of the cache, which is bounded and small, and run only after a
/// fetch.
fn make_room(entries: &mut HashMap<String, Entry>, now: Instant, incoming: usize) {
    let full = |entries: &HashMap<String, Entry>| {
        entries.len() >= MAX_URIS
            || entries.values().map(|e| e.weight).sum::<usize>() + incoming > MAX_BYTES
    };
    if !full(entries) {
        return;
    }
    let idle = |e: &Entry| {
        e.used_at
            .is_none_or(|t| now.saturating_duration_since(t) >= IDLE_LIMIT)
    };
    entries.retain(|_, e| !idle(e));
    while full(entries) {
        let oldest = entries
            .iter()
            .min_by_key(|(_, e)| e.used_at)
            .map(|(uri, _)| uri.clone());
        match oldest {
            Some(uri) => {
                entries.remove(&uri);
            }
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn used(at: Instant) -> Entry {
        Entry {
            used_at: Some(at),
            ..Entry::default()
        }
    }

    #[test]
    fn the_cache_never_holds_more_than_its_bound_and_keeps_the_recently_used() {
        let start = Instant::now();
        let mut entries = HashMap::new();
        for i in 0..MAX_URIS * 3 {
            let now = start + Duration::from_millis(i as u64);
            make_room(&mut entries, now, 0);
            entries.insert(format!("https://rp{i}.example/jwks"), used(now));
            assert!(entries.len() <= MAX_URIS);
        }
        // The newest survive.
        assert!(entries.contains_key(&format!("https://rp{}.example/jwks", MAX_URIS * 3 - 1)));
        assert!(!entries.contains_key("https://rp0.example/jwks"));
    }

    #[test]
    fn idle_entries_are_dropped_first() {
        let start = Instant::now();
        let later = start + IDLE_LIMIT + Duration::from_secs(1);
        let mut entries = HashMap::new();
        for i in 0..MAX_URIS {
            // Half were last used long ago.
            let at = if i % 2 == 0 { start } else { later };
            entries.insert(format!("u{i}"), used(at));
        }
        make_room(&mut entries, later, 0);
        assert_eq!(entries.len(), MAX_URIS / 2);
    }

    #[test]
    fn the_cache_never_holds_more_bytes_than_its_bound() {
        let start = Instant::now();
        let mut entries = HashMap::new();
        for i in 0..200 {
            let now = start + Duration::from_millis(i);
            make_room(&mut entries, now, MAX_SET_BYTES);
            let mut entry = used(now);
            entry.weight = MAX_SET_BYTES;
            entries.insert(format!("u{i}"), entry);
            let total: usize = entries.values().map(|e| e.weight).sum();
            assert!(total <= MAX_BYTES, "{total}");
        }
        assert_eq!(entries.len(), MAX_BYTES / MAX_SET_BYTES);
    }
}
