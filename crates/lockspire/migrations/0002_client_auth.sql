-- Client authentication by signed assertions (RFC 7523, OIDC Core §9), client configuration
-- (RFC 7592), initial access tokens (RFC 7591 §3) and the audit log.

-- client_secret_jwt needs the secret itself to check an HMAC: it is kept sealed (AES-256-GCM
-- under the host's secret key), and only for clients registered with that method.
ALTER TABLE clients ADD COLUMN sealed_secret TEXT;

-- SHA-256 of the RFC 7592 registration access token.
ALTER TABLE clients ADD COLUMN registration_token_digest TEXT;

-- When the client secret stops working (RFC 7591 client_secret_expires_at); NULL: never.
ALTER TABLE clients ADD COLUMN secret_expires_at BIGINT;

-- Values that may be seen once until they expire: assertion jti, later DPoP proof jti and
-- request-object jti. The primary key makes "record once" a single conditional insert.
CREATE TABLE replay (
    namespace   TEXT   NOT NULL,
    key_digest  TEXT   NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (namespace, key_digest)
);
CREATE INDEX replay_by_expiry ON replay (expires_at);

-- Initial access tokens for dynamic registration, minted by operators.
CREATE TABLE initial_access_tokens (
    -- Operators revoke by this id; the token itself appears only as its digest.
    id          TEXT   PRIMARY KEY,
    digest      TEXT   NOT NULL UNIQUE,
    tenant_id   TEXT   NOT NULL,
    -- NULL: any number of registrations.
    uses_left   BIGINT,
    created_at  BIGINT NOT NULL,
    -- NULL: no expiry.
    expires_at  BIGINT,
    revoked_at  BIGINT
);

-- Security-relevant events, written by the step they describe.
CREATE TABLE audit_events (
    id          TEXT   PRIMARY KEY,
    tenant_id   TEXT   NOT NULL,
    at          BIGINT NOT NULL,
    kind        TEXT   NOT NULL,
    client_id   TEXT,
    subject     TEXT,
    -- JSON object with the event's details (never a secret).
    detail      TEXT   NOT NULL
);
CREATE INDEX audit_by_time ON audit_events (tenant_id, at);

-- RFC 8705 §3: the SHA-256 thumbprint of the client certificate a token is bound to
-- (`cnf.x5t#S256`); NULL for bearer tokens.
ALTER TABLE tokens ADD COLUMN cnf_x5t TEXT;
