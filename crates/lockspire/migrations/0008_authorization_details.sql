-- Rich authorization requests (RFC 9396): the `authorization_details` a code or token was
-- issued for, and those a standing consent covers, as a JSON array; NULL when none.
ALTER TABLE tokens ADD COLUMN authorization_details TEXT;
ALTER TABLE consents ADD COLUMN authorization_details TEXT;
