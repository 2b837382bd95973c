//! Randomness from the operating system, for ids, salts and CSRF tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// `N` bytes from the operating system's CSPRNG.
pub(crate) fn bytes<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf)?;
    Ok(buf)
}

/// `N` random bytes as base64url without padding: URL-, cookie- and HTML-safe.
pub(crate) fn token<const N: usize>() -> Result<String, getrandom::Error> {
    Ok(URL_SAFE_NO_PAD.encode(bytes::<N>()?))
}

/// Compares two strings in time independent of where they differ, for secrets such as CSRF
/// tokens and OAuth `state`.
pub(crate) fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
