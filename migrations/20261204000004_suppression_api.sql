-- Suppressions managed through the API: a masked number for listing, who
-- added it and why, and removal with a reason (kept, never deleted).
ALTER TABLE suppressions
    ADD COLUMN phone_masked   text,
    ADD COLUMN reason         text,
    ADD COLUMN created_by     text,
    ADD COLUMN removed_at     timestamptz,
    ADD COLUMN removed_by     text,
    ADD COLUMN removed_reason text;
CREATE INDEX suppressions_client_idx ON suppressions (client_id, created_at, id);
