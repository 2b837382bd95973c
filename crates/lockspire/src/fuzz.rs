//! Entry points of the coverage-guided fuzz targets in the repository's `fuzz/` directory, one
//! per parser of untrusted bytes. Each states its invariant by panicking when it breaks: no
//! panic on any input, errors that are safe to send (RFC 6749 §4.1.2.1's character set, bounded
//! length), and parse → serialize → parse stable where a parser has a serialized form. The
//! seeds and the inputs the fuzzer found interesting are kept in `fuzz/corpus/<target>/`, and
//! this crate's tests run every one of them, so CI checks the corpora without a fuzzer.

use std::sync::OnceLock;

use serde_json::Value;

use crate::config::{
    AccessTokenFormat, Config, Issuer, Lifetimes, RegistrationPolicy, RegistrationRules,
};
use crate::jose::{
    DecryptionKey, EncryptionKeyType, KeyRing, KeyStatus, SigningAlg, SigningKey, jwe,
    verify_compact,
};
use crate::model::authorization_details::AuthorizationDetails;
use crate::model::client::GrantType;
use crate::protocol::client::{check_jwks, validate_metadata};
use crate::protocol::error::{MAX_DESCRIPTION, OAuthError};
use crate::protocol::mtls_auth::{matches_registered_attribute, parse_dn, subject_rdns};
use crate::protocol::params::Params;
use crate::protocol::token::request::TokenRequest;
use crate::store::{ClientRecord, ClientStatus};

/// A fuzz target: its corpus directory's name and its entry point.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, by the name of its directory under `fuzz/corpus/`.
pub const TARGETS: [Target; 12] = [
    ("params", params),
    ("token_request", token_request),
    ("compact_jws", compact_jws),
    ("jwks", jwks),
    ("client_metadata", client_metadata),
    ("subject_dn", subject_dn),
    ("client_cert_header", client_cert_header),
    ("compact_jwe", compact_jwe),
    ("authorization_details", authorization_details),
    ("dpop_proof", dpop_proof),
    ("protected_request", protected_request),
    ("decoupled_params", decoupled_params),
];

/// An error as it would reach the wire must be sendable: RFC 6749 §4.1.2.1's characters only,
/// at most [`MAX_DESCRIPTION`] of them.
fn assert_sendable(e: &OAuthError) {
    let d = e.description();
    assert!(
        d.chars().count() <= MAX_DESCRIPTION,
        "description too long: {d:?}"
    );
    assert!(
        d.chars()
            .all(|c| matches!(c, '\x20'..='\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E')),
        "description outside the RFC 6749 character set: {d:?}"
    );
}

/// Form and query parameters (RFC 6749 §3.1, §3.2, appendix B): decoding never panics, errors
/// are sendable, and the decoded pairs encode and decode back to themselves.
pub fn params(data: &[u8]) {
    let parsed = match Params::parse(data) {
        Ok(p) => p,
        Err(e) => return assert_sendable(&e),
    };
    if let Err(e) = parsed.refuse_repeats(&["resource"]) {
        assert_sendable(&e);
    }
    for name in ["client_id", "scope", "redirect_uri", "resource"] {
        if let Err(e) = parsed.get(name) {
            assert_sendable(&e);
        }
    }
    let mut encoded = form_urlencoded::Serializer::new(String::new());
    for (k, v) in parsed.pairs() {
        encoded.append_pair(k, v);
    }
    let again = Params::parse(encoded.finish().as_bytes());
    assert_eq!(
        again.ok().map(|p| p.pairs().to_vec()),
        Some(parsed.pairs().to_vec()),
        "pairs do not survive encoding"
    );
}

/// Typed token requests (RFC 6749 §4.1.3, §6, §4.4; RFC 8693 §2.1): reading any decoded form as any grant's
/// request never panics, errors are sendable, and a request keeps exactly the values the
/// form carried.
pub fn token_request(data: &[u8]) {
    let Ok(params) = Params::parse(data) else {
        return;
    };
    for grant in GrantType::SUPPORTED {
        match TokenRequest::parse(grant, &params) {
            Err(e) => assert_sendable(&e),
            Ok(TokenRequest::AuthorizationCode(r)) => {
                assert_eq!(params.get("code").ok().flatten(), Some(r.code));
                assert_eq!(params.all("resource").count(), r.resources.len());
            }
            Ok(TokenRequest::RefreshToken(r)) => {
                assert_eq!(
                    params.get("refresh_token").ok().flatten(),
                    Some(r.refresh_token)
                );
                assert_eq!(params.get("scope").ok().flatten(), r.scope);
            }
            Ok(TokenRequest::ClientCredentials(r)) => {
                assert_eq!(params.get("scope").ok().flatten(), r.scope);
            }
            Ok(TokenRequest::Ciba(r)) => {
                assert_eq!(
                    params.get("auth_req_id").ok().flatten(),
                    Some(r.auth_req_id)
                );
            }
            Ok(TokenRequest::DeviceCode(r)) => {
                assert_eq!(
                    params.get("device_code").ok().flatten(),
                    Some(r.device_code)
                );
            }
            Ok(TokenRequest::TokenExchange(r)) => {
                let one = |name| params.get(name).ok().flatten();
                assert_eq!(
                    (one("subject_token"), one("subject_token_type")),
                    (Some(r.subject.0), Some(r.subject.1))
                );
                // RFC 8693 §2.1: an actor token and its type come together or not at all.
                assert_eq!(
                    (one("actor_token"), one("actor_token_type")),
                    (r.actor.map(|a| a.0), r.actor.map(|a| a.1))
                );
                assert_eq!(params.all("audience").count(), r.audiences.len());
                assert_eq!(params.all("resource").count(), r.resources.len());
            }
        }
    }
}

/// The values people and clients type into the decoupled flows (RFC 8628 §6.1, CIBA Core §7.1):
/// a user code reads back as eight letters of its alphabet or not at all, and its display form
/// reads back the same; a binding message and a notification token are accepted within their
/// bounds or refused with a sendable error; a poll-mode request never needs a notification
/// token.
pub fn decoupled_params(data: &[u8]) {
    use crate::model::client::DeliveryMode;
    use crate::protocol::ciba::{binding_message, notification_token};
    use crate::protocol::device::{canonical_user_code, display};
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(code) = canonical_user_code(text)
    {
        assert_eq!(code.len(), 8, "{code}");
        assert!(
            code.bytes().all(|b| b"BCDFGHJKLMNPQRSTVWXZ".contains(&b)),
            "{code}"
        );
        assert_eq!(
            canonical_user_code(&display(&code)).as_deref(),
            Some(code.as_str())
        );
    }
    let Ok(params) = Params::parse(data) else {
        return;
    };
    match binding_message(&params) {
        Err(e) => assert_sendable(&e),
        Ok(Some(m)) => assert!(!m.is_empty() && m.chars().count() <= 64, "{m:?}"),
        Ok(None) => {}
    }
    for mode in DeliveryMode::ALL {
        match notification_token(mode, &params) {
            Err(e) => assert_sendable(&e),
            Ok(Some(t)) => assert!(mode != DeliveryMode::Poll && !t.is_empty() && t.len() <= 1024),
            Ok(None) => assert_eq!(mode, DeliveryMode::Poll),
        }
    }
}

/// A ring with one published key, for the JWS target.
fn ring() -> &'static KeyRing {
    static RING: OnceLock<KeyRing> = OnceLock::new();
    RING.get_or_init(|| {
        let keys = SigningKey::generate(SigningAlg::ES256)
            .map(|k| vec![(k, KeyStatus::Active)])
            .unwrap_or_default();
        KeyRing::new(keys)
    })
}

/// Compact JWS (RFC 7515 §7.1) as ID token hints arrive: never panics, and nothing the fuzzer
/// writes verifies, since it holds no key of the ring.
pub fn compact_jws(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    assert!(
        verify_compact(ring(), text).is_err(),
        "an input not signed by the ring verified"
    );
}

/// The server's encryption keys, one of each kind, made once per process.
fn decryption_keys() -> &'static [DecryptionKey] {
    static KEYS: OnceLock<Vec<DecryptionKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        [EncryptionKeyType::Rsa, EncryptionKeyType::EcP256]
            .into_iter()
            .filter_map(|t| DecryptionKey::generate(t).ok().map(|(k, _)| k))
            .collect()
    })
}

/// Compact JWE (RFC 7516 §7.1) as a client would send a nested request object: the header
/// parses or is refused without a panic, and no input decrypts, since none was encrypted to
/// these keys and every tag is checked.
pub fn compact_jwe(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(addressed) = jwe::Addressed::parse(text) else {
        return;
    };
    for key in decryption_keys() {
        assert!(
            addressed.decrypt(&key.private).is_err(),
            "an input not encrypted to the key decrypted"
        );
    }
}

/// `authorization_details` (RFC 9396 §2): parsing never panics, and what parses is stored and
/// read back unchanged.
pub fn authorization_details(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(details) = AuthorizationDetails::parse(text) else {
        return;
    };
    let stored = details.to_stored();
    assert!(stored.is_some(), "parsed details are never empty");
    assert_eq!(
        AuthorizationDetails::from_stored(stored.as_deref()),
        details,
        "stored details read back differently"
    );
}

/// DPoP proofs (RFC 9449 §4.3) as the `DPoP` header brings them: never a panic, whatever the
/// numbers and shapes inside; refusals are sendable; an accepted proof names a thumbprint.
pub fn dpop_proof(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let uris = ["https://issuer.example/token".to_owned()];
    let nonces = crate::secrets::RotatingNonces::new(&[7; 32], "fuzz");
    let mut request = crate::protocol::dpop::Request {
        method: "POST",
        uris: &uris,
        access_token: Some("an-access-token"),
        nonces: None,
        profile: crate::model::profile::SecurityProfile::None,
    };
    let now = 1_700_000_000;
    let without_nonce = crate::protocol::dpop::check(text, &request, now);
    match &without_nonce {
        Ok(checked) => assert_eq!(checked.proof.jkt.len(), 43, "a thumbprint is 43 characters"),
        Err(e) => assert_sendable(e),
    }
    // Requiring a nonce only ever refuses more.
    request.nonces = Some(&nonces);
    match crate::protocol::dpop::check(text, &request, now) {
        Ok(_) => assert!(
            without_nonce.is_ok(),
            "a nonce made a refused proof acceptable"
        ),
        Err(e) => assert_sendable(&e),
    }
}

/// A request to a protected resource: its `Authorization` header (the first line) and the
/// claims of its token (the rest, as JSON). Never a panic; a refused header is sendable; a
/// verified token has a client, an expiry, and a binding only when its `cnf` is one this
/// toolkit checks.
pub fn protected_request(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (header, claims) = text.split_once('\n').unwrap_or((text, ""));
    match crate::protocol::userinfo::presented_token(Some(header), None) {
        Ok(crate::protocol::userinfo::Presented::Bearer(token))
        | Ok(crate::protocol::userinfo::Presented::Dpop(token)) => {
            let _ = crate::resource::jwt_kid(token);
        }
        Err(e) => assert_sendable(&e),
    }
    let Ok(Value::Object(claims)) = serde_json::from_str::<Value>(claims) else {
        return;
    };
    let cnf = claims.get("cnf").cloned();
    let exp = claims.get("exp").and_then(Value::as_i64);
    let client_id = claims
        .get("client_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let Some(token) = crate::resource::AccessToken::from_claims(claims) {
        assert_eq!(Some(token.expires_at()), exp, "the expiry is the claims'");
        assert_eq!(
            Some(token.client_id()),
            client_id.as_deref(),
            "the client is the claims'"
        );
        match (&cnf, token.binding()) {
            (None, Some(_)) => panic!("a binding without a cnf"),
            (Some(_), None) => panic!("a cnf taken for no binding"),
            _ => {}
        }
    }
}

/// Private JWK members (RFC 7518 §6.2.2, §6.3.2, §6.4.1), which a client's key set must never
/// carry into storage.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A client's inline `jwks` (RFC 7517 §5, RFC 7591 §2): never panics, errors are sendable, an
/// accepted set holds no private member, and accepting is idempotent.
pub fn jwks(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let accepted = match check_jwks(&value) {
        Ok(v) => v,
        Err(e) => return assert_sendable(&e),
    };
    let keys = accepted.get("keys").and_then(Value::as_array);
    for key in keys.into_iter().flatten() {
        for member in PRIVATE_MEMBERS {
            assert!(
                key.get(member).is_none(),
                "accepted a private member {member}"
            );
        }
    }
    let again = check_jwks(&accepted);
    assert_eq!(
        again.ok(),
        Some(accepted),
        "accepting the accepted set changed it"
    );
}

/// The configuration client metadata is checked against: registration open, every default.
fn config() -> &'static Config {
    static CONFIG: OnceLock<Option<Config>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        Some(Config {
            issuer: Issuer::parse("https://issuer.example").ok()?,
            lifetimes: Lifetimes::default(),
            registration: RegistrationPolicy::Open,
            access_token_format: AccessTokenFormat::Opaque,
            access_token_alg: SigningAlg::ES256,
            extra_scopes: vec!["api".into()],
            offline_access_required: true,
            dev_mode: false,
            registration_rules: RegistrationRules::default(),
            mtls_enabled: true,
            mtls_endpoint_base: None,
            resources: Vec::new(),
            audit_retention: 86_400,
            authorization_details_types: vec!["account_information".into()],
            require_pushed_requests: false,
            pushed_unregistered_redirect_uris: false,
            require_dpop_nonce: false,
            poll_interval: 5,
            trusted_proxies: Vec::new(),
            outbox_lease: 30,
            backchannel_enabled: true,
            backchannel_user_codes: true,
            operator_tool: false,
            security_profile: crate::model::profile::SecurityProfile::None,
        })
    });
    match config {
        Some(c) => c,
        None => panic!("the fuzz configuration's issuer is invalid"),
    }
}

/// Client registration metadata (RFC 7591 §2, OIDC Registration §2): never panics, errors are
/// sendable, and accepted metadata, as stored and echoed, is accepted again unchanged.
pub fn client_metadata(data: &[u8]) {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let accepted = match validate_metadata(config(), &body) {
        Ok(m) => m,
        Err(e) => return assert_sendable(&e),
    };
    let Ok(Value::Object(echoed)) = serde_json::to_value(&accepted) else {
        panic!("accepted metadata does not serialize as an object");
    };
    let again = validate_metadata(config(), &echoed).map(|m| serde_json::to_value(&m).ok());
    assert_eq!(
        again.ok().flatten(),
        Some(Value::Object(echoed)),
        "stored metadata is not accepted as it is"
    );
}

/// RFC 4514 §2.4: every byte but letters and digits escaped as `\XX`, which any parser of the
/// format reads back as the same value.
fn escape_dn_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("\\{b:02X}")
            }
        })
        .collect()
}

/// Registered subject DNs (RFC 4514, RFC 8705 §2.1.2): never panics, and a parsed DN written
/// back in RFC 4514 form parses to itself.
pub fn subject_dn(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(rdns) = parse_dn(text) else { return };
    let written = rdns
        .iter()
        .map(|rdn| {
            rdn.iter()
                .map(|(oid, value)| format!("{oid}={}", escape_dn_value(value)))
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(
        parse_dn(&written),
        Some(rdns),
        "{text:?} written as {written:?}"
    );
}

/// A client registered with every certificate attribute, for the certificate target.
fn certificate_client() -> &'static ClientRecord {
    static CLIENT: OnceLock<ClientRecord> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let mut metadata = crate::model::client::example_metadata(&["https://app.example/cb"]);
        metadata.tls_client_auth_san_dns = Some("client.example".into());
        metadata.tls_client_auth_san_uri = Some("https://client.example/".into());
        metadata.tls_client_auth_san_ip = Some("192.0.2.1".into());
        metadata.tls_client_auth_san_email = Some("ops@client.example".into());
        ClientRecord {
            tenant_id: "default".into(),
            client_id: crate::model::client::ClientId::new("fuzz"),
            secret_digest: None,
            metadata,
            status: ClientStatus::Active,
            created_at: 0,
            sealed_secret: None,
            registration_token_digest: None,
            secret_expires_at: None,
        }
    })
}

/// `Client-Cert` header values from a trusted proxy (RFC 9440 §2): the byte sequence and the
/// DER inside it never panic the decoder, the subject reader or the attribute matching.
pub fn client_cert_header(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(der) = crate::mtls::byte_sequence(text) else {
        return;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
        return;
    };
    let _ = subject_rdns(&cert);
    let _ = matches_registered_attribute(certificate_client(), &cert);
}

#[cfg(test)]
mod tests {
    use super::TARGETS;

    /// Every input of every committed corpus, as a plain test: what the fuzzer once found
    /// interesting keeps being checked on every build.
    #[test]
    fn every_corpus_input_keeps_its_invariant() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
        let mut ran = 0;
        for (name, target) in TARGETS {
            let dir = root.join(name);
            let entries =
                std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()));
            for entry in entries.flatten() {
                let data = std::fs::read(entry.path())
                    .unwrap_or_else(|e| panic!("{}: {e}", entry.path().display()));
                target(&data);
                ran += 1;
            }
        }
        assert!(ran >= TARGETS.len(), "the corpora are empty");
    }
}
