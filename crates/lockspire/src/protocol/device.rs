//! The device authorization grant (RFC 8628): a device without a usable browser asks for a
//! pair of codes at `/device_authorization`, shows the user code, and polls the token endpoint
//! with the device code while the user, on another device, signs in at the verification page,
//! checks the code and approves or denies.
//!
//! The device code is a 256-bit random value stored as its digest. The user code is short, so
//! that people can type it: eight letters of an alphabet without vowels or look-alikes (§6.1),
//! about 34 bits, stored under a keyed digest. What keeps it from being guessed is that codes
//! live ten minutes, can only be entered by a signed-in user, and entry is limited per browser
//! and per source address (§5.1). The page shows the client, what it asks for and the code
//! before the user approves, so a code sent by someone else is recognised (§5.4).

use std::net::IpAddr;

use http::request::Parts;
use serde::Serialize;

use super::approval::{self, Approval};
use super::authorize::{check_resources, check_scope};
use super::client_auth;
use super::endpoints::Endpoint;
use super::error::{ErrorCode, OAuthError};
use super::params::Params;
use super::provider::Provider;
use super::scope::scope_requests;
use crate::clock::UnixTime;
use crate::host::{Context, DeviceConfirmation, DevicePage, InteractionResult, Session};
use crate::model::client::GrantType;
use crate::mtls::ClientCertificate;
use crate::secrets::{Secret, random_bytes, random_token, token_digest};
use crate::store::{
    ClientRecord, ClientStatus, Decision, DecoupledKind, DecoupledRecord, DecoupledStatus, Issued,
};

/// RFC 8628 §6.1: the user code alphabet — consonants only, so no word can be spelled, and none
/// of the letters people confuse with each other or with digits.
const ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";

/// Letters in a user code: 20^8, about 2^34.6 codes.
const USER_CODE_LEN: usize = 8;

/// The window, in seconds, over which code entries are counted.
const ENTRY_WINDOW: i64 = 15 * 60;
/// Codes one user, or one browser, may enter per window.
const ENTRIES_PER_USER: i64 = 10;
/// Codes one source address may enter per window (several users may share one).
const ENTRIES_PER_ADDRESS: i64 = 50;

/// The answer to a device authorization request (RFC 8628 §3.2).
#[derive(Debug, Serialize)]
pub(crate) struct DeviceAuthorization {
    device_code: Secret,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: String,
    expires_in: i64,
    interval: i64,
}

/// A fresh user code in canonical form (eight letters of [`ALPHABET`]), drawn from the CSPRNG
/// without bias: bytes of 240 or more are drawn again, so every letter is equally likely.
fn new_user_code() -> String {
    let mut code = String::with_capacity(USER_CODE_LEN);
    while code.len() < USER_CODE_LEN {
        for byte in random_bytes::<16>() {
            if byte < 240 && code.len() < USER_CODE_LEN {
                code.push(char::from(ALPHABET[usize::from(byte % 20)]));
            }
        }
    }
    code
}

/// What the user typed, as a canonical code (RFC 8628 §6.1): case-insensitive, separators and
/// spaces ignored. `None` when a letter or digit outside the alphabet is present or the length
/// is wrong.
pub(crate) fn canonical_user_code(typed: &str) -> Option<String> {
    if typed.len() > 64 {
        return None;
    }
    let mut code = String::with_capacity(USER_CODE_LEN);
    for c in typed.chars().filter(|c| c.is_alphanumeric()) {
        let upper = c.to_ascii_uppercase();
        if !upper.is_ascii() || !ALPHABET.contains(&(upper as u8)) {
            return None;
        }
        code.push(upper);
    }
    (code.len() == USER_CODE_LEN).then_some(code)
}

/// How a canonical code is shown: two groups of four.
pub(crate) fn display(canonical: &str) -> String {
    let (a, b) = canonical.split_at(USER_CODE_LEN / 2);
    format!("{a}-{b}")
}

/// The verification URI (RFC 8628 §3.2), optionally with the code filled in.
fn verification_uri(p: &Provider, canonical: Option<&str>) -> String {
    let base = Endpoint::DeviceVerification.url(&p.config.issuer);
    match canonical {
        Some(code) => format!("{base}?user_code={}", display(code)),
        None => base,
    }
}

/// `POST /device_authorization` (RFC 8628 §3.1): authenticates the client as the token endpoint
/// would (a public client by its `client_id`), checks what it asks for, and issues the codes.
pub(crate) async fn authorize(
    p: &Provider,
    authorization: Option<&str>,
    certificate: Option<ClientCertificate>,
    params: &Params,
) -> Result<DeviceAuthorization, OAuthError> {
    let client = client_auth::authenticate(
        p,
        client_auth::presented(authorization, params)?,
        Endpoint::DeviceAuthorization,
        certificate,
    )
    .await?;
    if !client.record().metadata.allows_grant(GrantType::DeviceCode) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client may not use the device authorization grant",
        ));
    }
    let scopes = check_scope(p, client.record(), params)?;
    let resources = check_resources(&p.config, params.all("resource"))?;
    let now = p.now();
    let lifetime = p.config.lifetimes.device_code;
    // A user code is taken while its row lasts; with 2^34 codes a clash is rare, and a fresh
    // draw settles it.
    for _ in 0..4 {
        let device_code = random_token();
        let user_code = new_user_code();
        let record = DecoupledRecord {
            issued: Issued {
                digest: token_digest(&device_code),
                tenant_id: p.tenant.clone(),
                client_id: client.id().clone(),
                scopes: scopes.clone(),
                resources: resources.clone(),
                authorization_details: Default::default(),
                created_at: now,
                expires_at: now + lifetime,
                consumed_at: None,
                revoked_at: None,
            },
            kind: DecoupledKind::Device,
            user_code: Some(p.secrets.user_code_digest(&user_code)),
            subject: None,
            request: "{}".to_owned(),
            status: DecoupledStatus::Pending,
            poll_interval: p.config.poll_interval,
        };
        if p.store.insert_decoupled(&record).await? {
            return Ok(DeviceAuthorization {
                device_code: Secret::new(device_code),
                verification_uri: verification_uri(p, None),
                verification_uri_complete: verification_uri(p, Some(&user_code)),
                user_code: display(&user_code),
                expires_in: lifetime,
                interval: p.config.poll_interval,
            });
        }
    }
    Err(OAuthError::internal(
        "four user codes in a row were already taken",
    ))
}

/// What the browser gets from the verification page.
#[derive(Debug)]
pub(crate) enum Step {
    /// Go to the host's sign-in page first.
    Login(String),
    /// This page (boxed: its confirmation is large).
    Page(Box<DevicePage>),
}

/// A browser at the verification page: the request the host's resolver reads, the
/// browser-binding cookie, and the source address.
pub(crate) struct Visitor<'a> {
    pub(crate) parts: &'a mut Parts,
    pub(crate) browser: &'a str,
    pub(crate) address: Option<IpAddr>,
}

/// The user signed in at the verification page, or where to sign in; `typed` is the code to
/// come back with.
async fn signed_in(
    p: &Provider,
    visitor: &mut Visitor<'_>,
    typed: Option<&str>,
) -> Result<Result<Session, Step>, OAuthError> {
    let return_to = match typed.and_then(canonical_user_code) {
        Some(code) => verification_uri(p, Some(&code)),
        None => verification_uri(p, None),
    };
    let ctx = Context {
        issuer: p.issuer().to_owned(),
        return_to: Some(return_to),
        ..Context::default()
    };
    Ok(match p.resolver.current(visitor.parts, &ctx).await? {
        Some(session) => Ok(session),
        None => {
            let InteractionResult::Redirect(url) = p.resolver.login(visitor.parts, &ctx);
            Err(Step::Login(url))
        }
    })
}

fn enter_code(p: &Provider, error: Option<&str>) -> Step {
    Step::Page(Box::new(DevicePage::EnterCode {
        action: verification_uri(p, None),
        error: error.map(str::to_owned),
    }))
}

const NOT_RECOGNISED: &str =
    "That code is not recognised, or it has expired. Check the code on your device and try again.";

/// Counts the entry now being made against this user, this browser and its network; `None`
/// when one of them has entered more codes than allowed in the current window, otherwise the
/// counters it moved (an entry of a code that turns out to be live is taken back: only
/// guesses count, so reloading one's own confirmation page costs nothing). The user is always
/// known here (only a signed-in user enters codes), so making up browsers or addresses does not
/// buy more guesses than accounts do; the browser and network limits bound one person's
/// several accounts.
async fn count_entry(
    p: &Provider,
    visitor: &Visitor<'_>,
    session: &Session,
) -> Result<Option<Vec<(String, UnixTime)>>, OAuthError> {
    let mut keys = vec![
        (
            format!("user\0{}", session.subject.as_str()),
            ENTRIES_PER_USER,
        ),
        (format!("browser\0{}", visitor.browser), ENTRIES_PER_USER),
    ];
    if let Some(ip) = visitor.address {
        keys.push((format!("network\0{}", network(ip)), ENTRIES_PER_ADDRESS));
    }
    let mut counted = Vec::new();
    for (key, limit) in keys {
        let key = p.secrets.attempt_key(&format!("device-code-entry\0{key}"));
        // Past one limit the entry is refused; the other counters need not move.
        let (count, window) = p.store.count_attempt(&key, ENTRY_WINDOW, p.now()).await?;
        if count > limit {
            return Ok(None);
        }
        counted.push((key, window));
    }
    Ok(Some(counted))
}

/// What a source address is counted as: an IPv4 address, or an IPv6 /64 (one subscriber's
/// allocation, whose addresses a client can change at will).
fn network(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// The pending request `canonical` names, with its client while that is active.
async fn pending(
    p: &Provider,
    canonical: &str,
) -> Result<Option<(DecoupledRecord, ClientRecord)>, OAuthError> {
    let digest = p.secrets.user_code_digest(canonical);
    let Some(record) = p
        .store
        .pending_device_request(&p.tenant, &digest, p.now())
        .await?
    else {
        return Ok(None);
    };
    let client = p
        .store
        .client(&p.tenant, &record.issued.client_id)
        .await?
        .filter(|c| c.status == ClientStatus::Active);
    Ok(client.map(|c| (record, c)))
}

/// What the confirmation form's CSRF token is bound to: the code, the browser and the user, so
/// a token is good for one of them only.
fn csrf_binding(canonical: &str, browser: &str, session: &Session) -> String {
    format!(
        "device\0{canonical}\0{}\0{}",
        token_digest(browser),
        session.subject.as_str()
    )
}

/// `GET /device`: the code entry form, or, with `user_code` (typed into that form, or from
/// `verification_uri_complete`), what the device asks for and the code, to approve or deny.
pub(crate) async fn show(
    p: &Provider,
    mut visitor: Visitor<'_>,
    typed: Option<&str>,
) -> Result<Step, OAuthError> {
    let session = match signed_in(p, &mut visitor, typed).await? {
        Ok(session) => session,
        Err(login) => return Ok(login),
    };
    let Some(typed) = typed.filter(|t| !t.trim().is_empty()) else {
        return Ok(enter_code(p, None));
    };
    let Some(counted) = count_entry(p, &visitor, &session).await? else {
        return Ok(Step::Page(Box::new(DevicePage::TooManyAttempts)));
    };
    let Some(canonical) = canonical_user_code(typed) else {
        return Ok(enter_code(p, Some(NOT_RECOGNISED)));
    };
    let Some((record, client)) = pending(p, &canonical).await? else {
        return Ok(enter_code(p, Some(NOT_RECOGNISED)));
    };
    for (key, window) in &counted {
        p.store.refund_attempt(key, *window).await?;
    }
    let metadata = &client.metadata;
    let ctx = Context {
        issuer: p.issuer().to_owned(),
        client_id: client.client_id.to_string(),
        scopes: record.issued.scopes.to_vec(),
        ..Context::default()
    };
    let signed_in_as = approval::account_label(p, &session, &ctx).await;
    Ok(Step::Page(Box::new(DevicePage::Confirm(
        DeviceConfirmation {
            signed_in_as,
            action: verification_uri(p, None),
            user_code: display(&canonical),
            csrf: p
                .secrets
                .csrf_token(&csrf_binding(&canonical, visitor.browser, &session)),
            client_name: metadata
                .client_name
                .clone()
                .unwrap_or_else(|| client.client_id.to_string()),
            client_id: client.client_id.to_string(),
            client_uri: metadata.client_uri.clone(),
            logo_uri: metadata.logo_uri.clone(),
            scopes: scope_requests(record.issued.scopes.to_vec()),
            resources: record.issued.resources.clone(),
        },
    ))))
}

/// `POST /device`: the user's decision on the confirmation form. CSRF-protected and bound to
/// the code, the browser and the user; the request is decided once, by one conditional write,
/// in the transaction that records the grant of an approval.
pub(crate) async fn decide(
    p: &Provider,
    mut visitor: Visitor<'_>,
    typed: &str,
    csrf: &str,
    allow: bool,
) -> Result<Step, OAuthError> {
    let session = match signed_in(p, &mut visitor, Some(typed)).await? {
        Ok(session) => session,
        Err(login) => return Ok(login),
    };
    let forged = || {
        OAuthError::new(
            ErrorCode::AccessDenied,
            "this confirmation is not valid for this browser and account; enter the code again",
        )
    };
    let canonical = canonical_user_code(typed).ok_or_else(forged)?;
    if !p
        .secrets
        .verify_csrf(&csrf_binding(&canonical, visitor.browser, &session), csrf)
    {
        return Err(forged());
    }
    let Some((record, client)) = pending(p, &canonical).await? else {
        return Ok(enter_code(p, Some(NOT_RECOGNISED)));
    };
    let subject = session.subject.as_str();
    // Read before the transaction: its first statement must be a write (see `Store::begin`).
    let previous = if allow {
        p.store
            .consent(&p.tenant, subject, &client.client_id)
            .await?
    } else {
        None
    };
    let mut tx = p.store.begin().await?;
    let decision = if allow {
        let approval = Approval::of_request(
            &record,
            &session,
            previous,
            "approved on the device verification page",
        );
        let grant = approval::record(p, &mut tx, approval).await?;
        tx.decide_decoupled(
            &record.issued.digest,
            subject,
            Decision::Approve(&grant.id),
            &record.request,
            p.now(),
        )
        .await?
    } else {
        tx.decide_decoupled(
            &record.issued.digest,
            subject,
            Decision::Deny,
            &record.request,
            p.now(),
        )
        .await?
    };
    if !decision {
        // Decided in another tab, or expired: the transaction rolls back.
        return Ok(enter_code(p, Some(NOT_RECOGNISED)));
    }
    tx.commit().await?;
    Ok(Step::Page(Box::new(DevicePage::Finished {
        approved: allow,
        client_name: client
            .metadata
            .client_name
            .clone()
            .unwrap_or_else(|| client.client_id.to_string()),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_eight_letters_of_the_alphabet_and_read_back_however_typed() {
        for _ in 0..200 {
            let code = new_user_code();
            assert_eq!(code.len(), USER_CODE_LEN);
            assert!(code.bytes().all(|b| ALPHABET.contains(&b)), "{code}");
            let shown = display(&code);
            assert_eq!(canonical_user_code(&shown).as_deref(), Some(code.as_str()));
            let typed = format!(" {} ", shown.to_lowercase().replace('-', " "));
            assert_eq!(canonical_user_code(&typed).as_deref(), Some(code.as_str()));
        }
    }

    #[test]
    fn a_user_code_with_a_letter_outside_the_alphabet_or_the_wrong_length_is_refused() {
        for typed in [
            "BCDF-GHJA",
            "BCDF-GHJ1",
            "BCDF-GHJ",
            "BCDF-GHJKL",
            "",
            "ÄCDF-GHJK",
        ] {
            assert_eq!(canonical_user_code(typed), None, "{typed}");
        }
    }

    #[test]
    fn every_letter_of_the_alphabet_is_drawn() {
        let mut seen = [false; 20];
        for _ in 0..100 {
            for b in new_user_code().bytes() {
                if let Some(i) = ALPHABET.iter().position(|a| *a == b) {
                    seen[i] = true;
                }
            }
        }
        assert!(seen.iter().all(|s| *s), "{seen:?}");
    }
}
