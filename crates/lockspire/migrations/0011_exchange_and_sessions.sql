-- Token exchange (RFC 8693 §4.1): the `act` claim of a token issued by a delegation, as JSON;
-- NULL for every other token.
ALTER TABLE tokens ADD COLUMN act TEXT;

-- Logout (OpenID Connect Front-Channel and Back-Channel Logout 1.0): the OP browser session a
-- grant was made in (`sid`); NULL for grants made without a browser (device flow, CIBA).
-- Logout finds every grant of a session through the index.
ALTER TABLE grants ADD COLUMN sid TEXT;
CREATE INDEX grants_by_sid ON grants (tenant_id, sid);
