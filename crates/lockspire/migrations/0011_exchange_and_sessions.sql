-- Token exchange (RFC 8693 §4.1): the `act` claim of a token issued by a delegation, as JSON;
-- NULL for every other token.
ALTER TABLE tokens ADD COLUMN act TEXT;

-- Logout (OpenID Connect Front-Channel and Back-Channel Logout 1.0). A grant made through an
-- authorization in a browser records the OP session it was made in (`op_session`: the browser,
-- the user and their sign-in, as a keyed hash), by which logout finds every grant of a session,
-- and the session id its client knows (`sid`, different for each client), by which an ID token
-- names it. Both NULL for grants made without a browser (device flow, CIBA) and once the session
-- has ended.
ALTER TABLE grants ADD COLUMN op_session TEXT;
ALTER TABLE grants ADD COLUMN sid TEXT;
CREATE INDEX grants_by_op_session ON grants (tenant_id, op_session);
CREATE INDEX grants_by_sid ON grants (tenant_id, sid);
