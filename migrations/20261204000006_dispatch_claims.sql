-- Claims read due contacts in this order (highest priority, never tried or
-- longest due, then file order), so the scan stops after one batch instead of
-- sorting every pending contact of the campaign.
DROP INDEX contacts_due_idx;
CREATE INDEX contacts_claim_idx ON contacts (campaign_id, priority DESC, next_attempt_at NULLS FIRST, row_number)
    WHERE state = 'pending';

-- At most one open attempt per contact. A claim that would open a second one
-- fails instead of dialling the contact twice at once.
CREATE UNIQUE INDEX attempts_one_open_per_contact ON attempts (contact_id)
    WHERE state IN ('handing_over', 'handed_over', 'connected');

-- Active suppressions by number, for the check before every claim and event.
-- Without it, a statement planned while the table is empty looks the number
-- up through suppressions_client_idx, reading every suppression of the client,
-- and a server keeps that plan for the life of its connection.
CREATE INDEX suppressions_active_idx ON suppressions (client_id, phone_index) WHERE removed_at IS NULL;
