//! Delivering the outbox: every process that makes such calls runs a worker that leases due
//! calls, POSTs each to its client through the guarded HTTP client (https only outside
//! development mode, no addresses inside the network, no redirects, short timeouts), and
//! records the outcome:
//!
//! - a 2xx answer: delivered;
//! - a 5xx answer, 408, 425 or 429, a timeout or a failed connection: tried again later, after
//!   2, 4, 8 … seconds (at most ten minutes, or the `Retry-After` asked for, up to an hour)
//!   with random jitter, so retries from many calls do not arrive together; after
//!   [`MAX_ATTEMPTS`] attempts, given up;
//! - any other answer (another 4xx, or a redirect, which a notification endpoint must not
//!   send): given up at once, since sending the same call again would get the same answer.
//!
//! A call given up is a dead letter, which operators list and retry. A call is delivered at
//! least once, and exactly once unless a process dies between the client's answer and its
//! record (then the lease runs out and another process sends it again): receivers of CIBA
//! notifications identify them by `auth_req_id`, and ending a session twice is ending it once.
//!
//! The calls: CIBA pings and pushes (CIBA Core §10.2, §10.3) and back-channel logout tokens
//! (OpenID Connect Back-Channel Logout 1.0 §2.5), signed afresh at each attempt.

use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use self::logout_call::{LogoutCall, logout_token};
use crate::fetch::FetchError;
use crate::protocol::provider::Provider;
use crate::secrets::{random_bytes, random_id};
use crate::store::{ClientStatus, Delivery, OutboxKind, OutboxMessage, Tx};

/// Attempts before a call is given up: with the waits of [`backoff`], about 40 minutes of a
/// client's server failing.
pub(crate) const MAX_ATTEMPTS: i64 = 12;

/// The longest `Retry-After` followed, in seconds.
const MAX_RETRY_AFTER: i64 = 3600;

/// Calls one worker leases at once; they are delivered concurrently.
const BATCH: i64 = 16;

/// How often an idle worker looks for due calls (it is woken at once for calls this process
/// writes): every second where CIBA notifications, which a waiting client is blocked on, may be
/// due; else every ten, since a logout call is woken at once in the process that ends the
/// session, and only retries (seconds apart anyway) and calls of a process that died wait for
/// a look.
const POLL: Duration = Duration::from_secs(1);
const QUIET_POLL: Duration = Duration::from_secs(10);

pub(crate) mod handle;
pub(crate) mod logout_call;

/// What a CIBA notification sends, sealed in its row.
#[derive(Serialize, Deserialize)]
pub(crate) struct Payload {
    /// The Bearer token the client gave for its notification endpoint (CIBA Core §7.1
    /// `client_notification_token`).
    pub(crate) bearer: Option<String>,
    /// The JSON body.
    pub(crate) body: Value,
}

/// Writes a call in `tx`, the transaction of the change that causes it. Call [`wake`] after
/// the commit so this process delivers it at once.
pub(crate) async fn enqueue(
    p: &Provider,
    tx: &mut Tx,
    kind: OutboxKind,
    client_id: &crate::model::client::ClientId,
    url: &str,
    payload: &impl Serialize,
) -> Result<(), crate::protocol::error::OAuthError> {
    let id = random_id();
    let json = serde_json::to_vec(payload)
        .map_err(|e| crate::protocol::error::OAuthError::internal(e.to_string()))?;
    let message = OutboxMessage {
        sealed: p.secrets.seal(&seal_context(&id), &json),
        id,
        tenant_id: p.tenant.clone(),
        kind,
        client_id: client_id.clone(),
        url: url.to_owned(),
        attempts: 0,
    };
    tx.enqueue(&message, p.now()).await?;
    Ok(())
}

/// Wakes this process's worker: a call was just committed.
pub(crate) fn wake(p: &Provider) {
    p.outbox.wake.notify_one();
}

/// The sealing context of a call: its payload cannot be moved to another row.
fn seal_context(id: &str) -> String {
    format!("outbox:{id}")
}

/// Runs this process's worker for as long as the provider lives.
pub(crate) fn spawn(provider: Weak<Provider>) {
    tokio::spawn(async move {
        loop {
            let Some(p) = provider.upgrade() else { return };
            let busy = match deliver_due(&p).await {
                Ok(leased) => leased > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "the outbox could not be read; will retry");
                    false
                }
            };
            let wake = p.outbox.wake.clone();
            let idle = if p.config.backchannel_enabled {
                POLL
            } else {
                QUIET_POLL
            };
            drop(p);
            if !busy {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(idle) => {}
                }
            }
        }
    });
}

/// Leases the due calls and delivers them concurrently; returns how many were leased.
pub(crate) async fn deliver_due(p: &Arc<Provider>) -> Result<usize, crate::store::StoreError> {
    let now = p.now();
    let leased = p
        .store
        .lease_outbox(
            &p.tenant,
            &p.outbox.worker,
            now,
            now + p.config.outbox_lease,
            BATCH,
        )
        .await?;
    let count = leased.len();
    let mut deliveries = tokio::task::JoinSet::new();
    for message in leased {
        let p = p.clone();
        deliveries.spawn(async move { deliver(&p, message).await });
    }
    while deliveries.join_next().await.is_some() {}
    Ok(count)
}

/// One attempt at one call, and its record.
async fn deliver(p: &Provider, message: OutboxMessage) {
    let outcome = attempt(p, &message).await;
    match &outcome {
        Delivery::Delivered => tracing::info!(
            id = %message.id, kind = message.kind.as_str(), client_id = %message.client_id,
            "outbox call delivered"
        ),
        Delivery::RetryAt(at, why) => tracing::warn!(
            id = %message.id, kind = message.kind.as_str(), client_id = %message.client_id,
            attempts = message.attempts, retry_at = at, reason = %why,
            "outbox call failed; will retry"
        ),
        Delivery::GiveUp(why) => tracing::warn!(
            id = %message.id, kind = message.kind.as_str(), client_id = %message.client_id,
            attempts = message.attempts, reason = %why,
            "outbox call given up: a dead letter"
        ),
    }
    if let Err(e) = p
        .store
        .finish_outbox(&message, &p.outbox.worker, &outcome, p.now())
        .await
    {
        // The lease runs out and the call is tried again.
        tracing::warn!(id = %message.id, error = %e, "recording an outbox delivery failed");
    }
}

async fn attempt(p: &Provider, message: &OutboxMessage) -> Delivery {
    let plain = p
        .secrets
        .open(&seal_context(&message.id), &message.sealed)
        .ok();
    let retry = |why: String, after: Option<i64>| {
        if message.attempts >= MAX_ATTEMPTS {
            Delivery::GiveUp(format!("{why} ({} attempts)", message.attempts))
        } else {
            let wait = backoff(message.attempts).max(after.unwrap_or(0).min(MAX_RETRY_AFTER));
            Delivery::RetryAt(p.now() + wait, why)
        }
    };
    // A process holding another server key cannot open it; one with the right key can.
    let Some(plain) = plain else {
        return retry(
            "its sealed payload cannot be opened with this key".into(),
            None,
        );
    };
    let unreadable = || Delivery::GiveUp(format!("its payload is not a {}", message.kind.as_str()));
    let answer = match message.kind {
        OutboxKind::CibaPing | OutboxKind::CibaPush => {
            let Ok(payload) = serde_json::from_slice::<Payload>(&plain) else {
                return unreadable();
            };
            let bearer = payload.bearer.as_deref();
            p.outbox
                .fetcher
                .post_json(&message.url, bearer, &payload.body)
                .await
        }
        OutboxKind::BackchannelLogout => {
            let Ok(call) = serde_json::from_slice::<LogoutCall>(&plain) else {
                return unreadable();
            };
            let client = match p.store.client(&p.tenant, &message.client_id).await {
                Ok(Some(client)) if client.status == ClientStatus::Active => client,
                Ok(_) => return Delivery::GiveUp("the client is deleted or disabled".into()),
                Err(e) => return retry(e.to_string(), None),
            };
            let token = match logout_token(p, &client, &call) {
                Ok(token) => token,
                Err(e) => return retry(format!("signing the logout token: {}", e.reason()), None),
            };
            let form = [("logout_token", token.as_str())];
            p.outbox.fetcher.post_form(&message.url, &form).await
        }
    };
    match answer {
        Ok((status, _)) if (200..300).contains(&status) => Delivery::Delivered,
        // The client's server failed, or asked for time (RFC 9110 §15.5.9, §15.6, RFC 6585 §4).
        Ok((status @ (408 | 425 | 429 | 500..), after)) => retry(format!("HTTP {status}"), after),
        Ok((status, _)) => Delivery::GiveUp(format!("HTTP {status}")),
        // The URL or its address is refused: it will be refused again.
        Err(e @ (FetchError::Url(_) | FetchError::Address(_))) => Delivery::GiveUp(e.to_string()),
        Err(e) => retry(e.to_string(), None),
    }
}

/// Seconds to wait after the `attempts`-th failure: 2, 4, 8 … up to ten minutes, plus up to
/// half as much again at random.
fn backoff(attempts: i64) -> i64 {
    let base = 2i64
        .saturating_pow(u32::try_from(attempts.clamp(1, 20)).unwrap_or(20))
        .min(600);
    let [r] = random_bytes::<1>();
    base + base * i64::from(r) / 510
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_two_seconds_up_to_ten_minutes_with_jitter_of_at_most_half() {
        for (attempts, base) in [(1, 2), (2, 4), (3, 8), (9, 512), (10, 600), (40, 600)] {
            for _ in 0..50 {
                let wait = backoff(attempts);
                assert!(
                    (base..=base + base / 2).contains(&wait),
                    "{attempts}: {wait}"
                );
            }
        }
    }
}
