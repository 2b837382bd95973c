-- Authorizations a client waits for while the user decides on another device: the device
-- authorization grant (RFC 8628), and backchannel authentication (CIBA) beside it. The client
-- polls with a code (device_code, auth_req_id) stored only as its digest. Once the user decides,
-- the row is approved with the grant the approval created, or denied; the approved code is
-- redeemed once (consumed_at), and a second redemption revokes that grant.
CREATE TABLE decoupled_requests (
    digest         TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    -- 'device' (RFC 8628) or 'ciba'.
    kind           TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    -- Keyed digest of the user code in its canonical form (device requests only).
    user_code      TEXT,
    scopes         TEXT NOT NULL,
    resources      TEXT NOT NULL,
    -- What else the request asked, as JSON (its `claims`, `acr_values`, binding message, …).
    request        TEXT NOT NULL,
    -- 'pending', 'approved' or 'denied'.
    status         TEXT NOT NULL,
    subject        TEXT,
    grant_id       TEXT,
    -- Seconds the client must wait between polls; slow_down adds 5 (RFC 8628 §3.5).
    poll_interval  BIGINT NOT NULL,
    last_polled_at BIGINT,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    decided_at     BIGINT,
    consumed_at    BIGINT
);
CREATE UNIQUE INDEX decoupled_requests_user_code ON decoupled_requests (tenant_id, user_code);
CREATE INDEX decoupled_requests_expiry ON decoupled_requests (expires_at);

-- Attempts counted per key (a browser, a source address) in a fixed window, for limits on
-- guessing: user code entry (RFC 8628 §5.1). Keys are stored as digests.
CREATE TABLE attempts (
    key_digest   TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    count        BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX attempts_expiry ON attempts (expires_at);
-- Pending backchannel requests are listed per user for the host's authentication device.
CREATE INDEX decoupled_requests_subject ON decoupled_requests (tenant_id, subject, status);

-- Calls this server makes to clients (CIBA ping and push notifications, back-channel logout
-- tokens), each written in the transaction of the change that causes it and delivered by a
-- worker of any process: leased for a while, then delivered, retried later, or given up as a
-- dead letter that an operator can retry. What is sent (the bearer token and the body, which
-- for a push holds tokens) is sealed under the server key and cleared once delivered.
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    client_id       TEXT NOT NULL,
    url             TEXT NOT NULL,
    sealed          TEXT NOT NULL,
    -- 'pending', 'delivered' or 'dead'.
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT,
    leased_by       TEXT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    finished_at     BIGINT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
