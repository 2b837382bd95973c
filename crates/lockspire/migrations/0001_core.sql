-- Lockspire core schema. One file serves SQLite and PostgreSQL: every type used here
-- (TEXT, BIGINT) means the same in both. Applied migrations are never edited; changes go in a
-- new numbered file.
--
-- Conventions:
--   * timestamps are BIGINT seconds since the Unix epoch (UTC);
--   * ids are TEXT; bearer artifacts (codes, tokens, interaction ids) appear only as
--     base64url SHA-256 digests, never in clear;
--   * every row carries tenant_id so one database can serve several issuers (SURFACE S29);
--   * "state" columns are nullable timestamps (consumed_at, revoked_at), so a single-use
--     transition is one conditional UPDATE ... WHERE x IS NULL.

-- Registered clients (RFC 7591 metadata as JSON).
CREATE TABLE clients (
    tenant_id      TEXT   NOT NULL,
    client_id      TEXT   NOT NULL,
    -- HMAC-SHA256(server pepper, secret), base64url; NULL for public clients.
    secret_digest  TEXT,
    -- Registered metadata (JSON object), echoed by registration responses.
    metadata       TEXT   NOT NULL,
    -- 'active' | 'disabled'. A disabled client is refused everywhere.
    status         TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, client_id)
);

-- Signing keys. The private key is sealed (AES-256-GCM) under the host's secret key.
CREATE TABLE signing_keys (
    tenant_id      TEXT   NOT NULL,
    kid            TEXT   NOT NULL,
    alg            TEXT   NOT NULL,
    -- 'upcoming' | 'active' | 'retiring' | 'retired'
    status         TEXT   NOT NULL,
    public_jwk     TEXT   NOT NULL,
    sealed_private TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    activated_at   BIGINT,
    retired_at     BIGINT,
    PRIMARY KEY (tenant_id, kid)
);

-- A pending /authorize request waiting for login and consent.
CREATE TABLE interactions (
    -- SHA-256 of the interaction id carried in the browser's URLs.
    id_digest          TEXT   PRIMARY KEY,
    tenant_id          TEXT   NOT NULL,
    client_id          TEXT   NOT NULL,
    -- The validated authorization request (JSON).
    request            TEXT   NOT NULL,
    -- SHA-256 of the browser-binding cookie set when the interaction started.
    browser_digest     TEXT   NOT NULL,
    -- Set once the host reports a signed-in user.
    subject            TEXT,
    -- Set when Lockspire sent the browser to the host's login page.
    login_requested_at BIGINT,
    created_at         BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL,
    -- Set once, atomically, when the authorization ends (code issued or denied).
    completed_at       BIGINT
);

-- What a user approved for one client in one authorization: the spine every code, access and
-- refresh token points at, so revoking it revokes all of them.
CREATE TABLE grants (
    id          TEXT   PRIMARY KEY,
    tenant_id   TEXT   NOT NULL,
    client_id   TEXT   NOT NULL,
    subject     TEXT   NOT NULL,
    -- Space-separated granted scopes.
    scopes      TEXT   NOT NULL,
    -- JSON array of RFC 8707 resource indicators.
    resources   TEXT   NOT NULL,
    -- JSON of the OIDC claims request and the host's authentication facts.
    details     TEXT   NOT NULL,
    auth_time   BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX grants_by_subject ON grants (tenant_id, subject, client_id);

-- Standing consent reused by later authorizations of the same client for the same user.
CREATE TABLE consents (
    tenant_id   TEXT   NOT NULL,
    subject     TEXT   NOT NULL,
    client_id   TEXT   NOT NULL,
    scopes      TEXT   NOT NULL,
    resources   TEXT   NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, subject, client_id)
);

-- Codes, access tokens and refresh tokens, keyed by the SHA-256 of the artifact.
CREATE TABLE tokens (
    digest         TEXT   PRIMARY KEY,
    tenant_id      TEXT   NOT NULL,
    -- 'code' | 'access' | 'refresh'
    kind           TEXT   NOT NULL,
    -- NULL only for client_credentials access tokens, which have no user grant.
    grant_id       TEXT,
    client_id      TEXT   NOT NULL,
    subject        TEXT,
    scopes         TEXT   NOT NULL,
    resources      TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    consumed_at    BIGINT,
    revoked_at     BIGINT,
    -- Code only: the redirect_uri sent at /authorize ('' when it was omitted), the PKCE
    -- S256 challenge and the nonce.
    redirect_uri   TEXT,
    code_challenge TEXT,
    nonce          TEXT,
    -- Access tokens: 'opaque' | 'jwt'; the JWT's jti.
    format         TEXT,
    jti            TEXT
);
CREATE INDEX tokens_by_grant ON tokens (grant_id);
CREATE INDEX tokens_by_expiry ON tokens (expires_at);
