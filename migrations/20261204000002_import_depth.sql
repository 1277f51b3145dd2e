-- Contact imports that run as jobs, the non-personal values of rejected rows,
-- and reference checks on contacts that cost one query per statement instead
-- of one per row.

-- A large import is recorded as `processing` before its data transaction
-- starts, and its progress is written from another connection while that
-- transaction is open.
ALTER TABLE imports DROP CONSTRAINT imports_state_check;
ALTER TABLE imports ADD CONSTRAINT imports_state_check
    CHECK (state IN ('processing', 'completed', 'failed'));
ALTER TABLE imports
    ADD COLUMN rows_processed integer NOT NULL DEFAULT 0,
    ADD COLUMN error_code     text,
    ADD COLUMN error_message  text,
    ADD COLUMN error_line     integer,
    ADD COLUMN finished_at    timestamptz;
UPDATE imports SET rows_processed = rows_total, finished_at = created_at;

-- The values of a rejected row that may be shown again, for the rejected-rows
-- CSV. The phone number and personalisation values are never stored here;
-- the raw file is not kept either.
CREATE TABLE import_rejected_rows (
    import_id           uuid NOT NULL REFERENCES imports (id),
    row_number          integer NOT NULL,
    line                integer NOT NULL,
    contact_ref         text,
    recipient_timezone  text,
    registry_status     text,
    registry_checked_at text,
    registry_evidence   text,
    consent_type        text,
    consent_evidence    text,
    consent_given_at    text,
    consent_expires_at  text,
    exemption           text,
    call_type           text,
    priority            text,
    max_attempts        text,
    PRIMARY KEY (import_id, row_number)
);

-- Contacts arrive a million at a time through COPY. A foreign key runs one
-- lookup per row and per key: on PostgreSQL 15 the three keys below made a
-- bulk COPY into contacts about five times slower than the same COPY without
-- them. The triggers that replace them check the same references once per
-- statement, over the statement's new rows, and also require the import to
-- belong to the campaign and the campaign to the client.
ALTER TABLE contacts
    DROP CONSTRAINT contacts_campaign_id_fkey,
    DROP CONSTRAINT contacts_client_id_fkey,
    DROP CONSTRAINT contacts_import_id_fkey;

CREATE FUNCTION contacts_check_references() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    orphan record;
BEGIN
    SELECT n.campaign_id, n.client_id, n.import_id INTO orphan
      FROM (SELECT DISTINCT campaign_id, client_id, import_id FROM new_contacts) n
     WHERE NOT EXISTS (
               SELECT 1
                 FROM imports i
                 JOIN campaigns c ON c.id = i.campaign_id
                WHERE i.id = n.import_id AND c.id = n.campaign_id AND c.client_id = n.client_id)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'contacts reference campaign %, client % and import %, which do not exist together',
            orphan.campaign_id, orphan.client_id, orphan.import_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER contacts_references_exist
    AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS new_contacts
    FOR EACH STATEMENT EXECUTE FUNCTION contacts_check_references();

-- A contact never moves to another campaign, client or import.
CREATE FUNCTION contacts_reject_move() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a contact cannot move to another campaign, client or import'
        USING ERRCODE = 'foreign_key_violation';
END
$$;

CREATE TRIGGER contacts_stay_put
    BEFORE UPDATE OF campaign_id, client_id, import_id ON contacts
    FOR EACH ROW
    WHEN (OLD.campaign_id IS DISTINCT FROM NEW.campaign_id
          OR OLD.client_id IS DISTINCT FROM NEW.client_id
          OR OLD.import_id IS DISTINCT FROM NEW.import_id)
    EXECUTE FUNCTION contacts_reject_move();

-- Campaigns and imports that contacts refer to cannot be deleted or renumbered.
-- Clients need no trigger: a contact's client is its campaign's client, and
-- the campaigns foreign key already protects it.
CREATE FUNCTION contacts_protect_parent() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    referenced boolean;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.id = OLD.id THEN
        RETURN NEW;
    END IF;
    IF TG_TABLE_NAME = 'campaigns' THEN
        referenced := EXISTS (SELECT 1 FROM contacts WHERE campaign_id = OLD.id);
    ELSE
        referenced := EXISTS (SELECT 1 FROM contacts WHERE campaign_id = OLD.campaign_id AND import_id = OLD.id);
    END IF;
    IF referenced THEN
        RAISE EXCEPTION '% % is still referenced from contacts', TG_TABLE_NAME, OLD.id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF TG_OP = 'UPDATE' THEN
        RETURN NEW;
    END IF;
    RETURN OLD;
END
$$;

CREATE TRIGGER campaigns_keep_contact_parent
    BEFORE DELETE OR UPDATE OF id ON campaigns
    FOR EACH ROW EXECUTE FUNCTION contacts_protect_parent();

CREATE TRIGGER imports_keep_contact_parent
    BEFORE DELETE OR UPDATE OF id ON imports
    FOR EACH ROW EXECUTE FUNCTION contacts_protect_parent();
