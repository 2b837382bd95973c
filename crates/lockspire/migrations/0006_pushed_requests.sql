-- Pushed authorization requests (RFC 9126): the authorization parameters a client pushed, kept
-- until the browser arrives with their request_uri. The request_uri is stored only as a digest;
-- it is used once (consumed_at) and only by the client that pushed it.
CREATE TABLE pushed_requests (
    digest      TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    -- The authorization parameters as a JSON list of [name, value] pairs, client
    -- authentication parameters left out.
    params      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    consumed_at BIGINT
);
CREATE INDEX pushed_requests_expiry ON pushed_requests (expires_at);
