-- Identical audit events in the same minute (a flood of the same failed client authentication,
-- say) are one row: its id is a digest of the event and its minute, and a repeat adds one to
-- `occurrences` instead of writing a row.
ALTER TABLE audit_events ADD COLUMN occurrences BIGINT NOT NULL DEFAULT 1;
-- Old events are deleted after the retention period, oldest first, in bounded batches.
CREATE INDEX audit_by_age ON audit_events (at);
