-- Each campaign's contacts live in a partition of `contacts` of their own.
--
-- The first import into a campaign writes its rows into a new table without
-- indexes, builds the indexes by sorting, and attaches the table as the
-- campaign's partition, all inside the import's transaction. Building an
-- index by sort costs a fraction of updating it once per row, and the build
-- can use a parallel worker, so a million-row import no longer waits on
-- four B-trees updated row by row. Later imports into the campaign insert
-- into its partition as before. A campaign's contacts can also be removed
-- at the end of their retention by dropping one table.
--
-- A unique index of a partitioned table must contain the partition key. The
-- key is the campaign, which is the same for every row of a partition, so it
-- goes last: the leading columns keep their order and their fast sort
-- comparisons, and a contact is still found by id or by blind index alone.

ALTER TABLE attempts DROP CONSTRAINT attempts_contact_id_fkey;
DROP TRIGGER contacts_references_exist ON contacts;
DROP TRIGGER contacts_stay_put ON contacts;

ALTER TABLE contacts RENAME TO contacts_unpartitioned;
ALTER INDEX contacts_pkey RENAME TO contacts_unpartitioned_pkey;
ALTER INDEX contacts_campaign_id_phone_index_key RENAME TO contacts_unpartitioned_phone_key;
ALTER INDEX contacts_campaign_idx RENAME TO contacts_unpartitioned_row_idx;
ALTER INDEX contacts_claim_idx RENAME TO contacts_unpartitioned_claim_idx;

CREATE TABLE contacts (LIKE contacts_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY LIST (campaign_id);
ALTER TABLE contacts
    ADD CONSTRAINT contacts_pkey PRIMARY KEY (id, campaign_id),
    ADD CONSTRAINT contacts_phone_key UNIQUE (phone_index, campaign_id);
-- Claims read due contacts in claim order (highest priority, never tried or
-- longest due, then file order) from one campaign's partition. A contact never
-- tried sorts as due since the beginning of time: an index entry without a
-- NULL is read faster, and with a million entries to sort the build took 0.7 s
-- less than with `next_attempt_at NULLS FIRST`. Listings read contacts in id
-- order, which is import order, then file order, through the primary key.
CREATE INDEX contacts_claim_idx
    ON contacts (priority DESC, (COALESCE(next_attempt_at, '-infinity'::timestamptz)), row_number)
    WHERE state = 'pending';

DO $$
DECLARE
    campaign uuid;
BEGIN
    FOR campaign IN SELECT DISTINCT campaign_id FROM contacts_unpartitioned LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF contacts FOR VALUES IN (%L)',
                       'contacts_' || replace(campaign::text, '-', ''), campaign);
    END LOOP;
END
$$;
INSERT INTO contacts SELECT * FROM contacts_unpartitioned;
DROP TABLE contacts_unpartitioned;

CREATE TRIGGER contacts_references_exist
    AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS new_contacts
    FOR EACH STATEMENT EXECUTE FUNCTION contacts_check_references();

CREATE TRIGGER contacts_stay_put
    BEFORE UPDATE OF campaign_id, client_id, import_id ON contacts
    FOR EACH ROW
    WHEN (OLD.campaign_id IS DISTINCT FROM NEW.campaign_id
          OR OLD.client_id IS DISTINCT FROM NEW.client_id
          OR OLD.import_id IS DISTINCT FROM NEW.import_id)
    EXECUTE FUNCTION contacts_reject_move();

-- Attempts refer to their contact through a trigger, not a foreign key:
-- attaching a partition to a table that a foreign key refers to locks the
-- referring table against writes until the attaching transaction ends, which
-- would hold up every campaign's dialling at the end of each first import.
CREATE FUNCTION attempts_check_contact() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    orphan record;
BEGIN
    SELECT n.id, n.contact_id INTO orphan
      FROM new_attempts n
     WHERE NOT EXISTS (SELECT 1 FROM contacts c WHERE c.id = n.contact_id AND c.campaign_id = n.campaign_id)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'attempt % refers to contact %, which is not in its campaign', orphan.id, orphan.contact_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER attempts_contact_exists
    AFTER INSERT ON attempts
    REFERENCING NEW TABLE AS new_attempts
    FOR EACH STATEMENT EXECUTE FUNCTION attempts_check_contact();

CREATE FUNCTION attempts_reject_move() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'an attempt cannot move to another contact or campaign'
        USING ERRCODE = 'foreign_key_violation';
END
$$;

CREATE TRIGGER attempts_stay_put
    BEFORE UPDATE OF contact_id, campaign_id ON attempts
    FOR EACH ROW
    WHEN (OLD.contact_id IS DISTINCT FROM NEW.contact_id OR OLD.campaign_id IS DISTINCT FROM NEW.campaign_id)
    EXECUTE FUNCTION attempts_reject_move();

-- A contact with attempts cannot be deleted.
CREATE FUNCTION contacts_keep_attempted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM attempts WHERE contact_id = OLD.id) THEN
        RAISE EXCEPTION 'contact % still has attempts', OLD.id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN OLD;
END
$$;

CREATE TRIGGER contacts_keep_attempted
    BEFORE DELETE ON contacts
    FOR EACH ROW EXECUTE FUNCTION contacts_keep_attempted();

-- A large import also writes a row issue for about one row in four (most of
-- them warnings for a restored trunk zero). The foreign key of import_issues
-- cost one lookup per issue: about 2.6 s of the 3.8 s a COPY of 280,000
-- issues took on PostgreSQL 15. Like the contacts, issues and rejected rows
-- now check their import once per statement.
ALTER TABLE import_issues DROP CONSTRAINT import_issues_import_id_fkey;
ALTER TABLE import_rejected_rows DROP CONSTRAINT import_rejected_rows_import_id_fkey;

CREATE FUNCTION import_rows_check_import() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    orphan uuid;
BEGIN
    SELECT n.import_id INTO orphan
      FROM (SELECT DISTINCT import_id FROM new_rows) n
     WHERE NOT EXISTS (SELECT 1 FROM imports i WHERE i.id = n.import_id)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION '% rows reference import %, which does not exist', TG_TABLE_NAME, orphan
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER import_issues_import_exists
    AFTER INSERT ON import_issues
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION import_rows_check_import();

CREATE TRIGGER import_rejected_rows_import_exists
    AFTER INSERT ON import_rejected_rows
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION import_rows_check_import();

-- A row of either table never moves to another import.
CREATE FUNCTION import_rows_reject_move() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows cannot move to another import', TG_TABLE_NAME
        USING ERRCODE = 'foreign_key_violation';
END
$$;

CREATE TRIGGER import_issues_stay_put
    BEFORE UPDATE OF import_id ON import_issues
    FOR EACH ROW WHEN (OLD.import_id IS DISTINCT FROM NEW.import_id)
    EXECUTE FUNCTION import_rows_reject_move();

CREATE TRIGGER import_rejected_rows_stay_put
    BEFORE UPDATE OF import_id ON import_rejected_rows
    FOR EACH ROW WHEN (OLD.import_id IS DISTINCT FROM NEW.import_id)
    EXECUTE FUNCTION import_rows_reject_move();

-- An import with issues or rejected rows cannot be deleted or renumbered.
CREATE FUNCTION imports_protect_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.id = OLD.id THEN
        RETURN NEW;
    END IF;
    IF EXISTS (SELECT 1 FROM import_issues WHERE import_id = OLD.id)
       OR EXISTS (SELECT 1 FROM import_rejected_rows WHERE import_id = OLD.id) THEN
        RAISE EXCEPTION 'import % still has row issues or rejected rows', OLD.id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF TG_OP = 'UPDATE' THEN
        RETURN NEW;
    END IF;
    RETURN OLD;
END
$$;

CREATE TRIGGER imports_keep_rows
    BEFORE DELETE OR UPDATE OF id ON imports
    FOR EACH ROW EXECUTE FUNCTION imports_protect_rows();
