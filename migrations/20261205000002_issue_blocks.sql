-- Row issues are stored in blocks of consecutive issues, one row per block.
--
-- A spreadsheet that dropped the trunk zero of every number gives every row
-- of the file a warning, so a million-row import wrote a million issue rows,
-- each a heap tuple and a primary key entry: on PostgreSQL 15 copying the
-- 270,000 issues of the import benchmark's file took 1.8 s, a third of the
-- time its 970,000 contacts took. A block holds up to 1,024 issues in
-- parallel arrays, so the same issues are a few hundred rows.
--
-- Issue `seq` numbers stay as they were: the issues of an import are numbered
-- from 0 in file order, and the issue at position `n` (from 1) of a block has
-- `seq = first_seq + n - 1`. Pages of the issues API are still cut by `seq`.

CREATE TABLE import_issue_blocks (
    import_id    uuid NOT NULL REFERENCES imports (id),
    first_seq    integer NOT NULL CHECK (first_seq >= 0),
    last_seq     integer NOT NULL,
    -- Counts by severity, so a reader of one severity skips blocks without it.
    errors       integer NOT NULL CHECK (errors >= 0),
    warnings     integer NOT NULL CHECK (warnings >= 0),
    severities   text[] NOT NULL,
    row_numbers  integer[] NOT NULL,
    lines        integer[] NOT NULL,
    column_names text[] NOT NULL,
    codes        text[] NOT NULL,
    messages     text[] NOT NULL,
    PRIMARY KEY (import_id, first_seq),
    CHECK (last_seq >= first_seq AND errors + warnings = last_seq - first_seq + 1),
    CHECK (array_ndims(severities) = 1 AND array_lower(severities, 1) = 1
           AND cardinality(severities) = last_seq - first_seq + 1
           AND cardinality(row_numbers) = cardinality(severities)
           AND cardinality(lines) = cardinality(severities)
           AND cardinality(column_names) = cardinality(severities)
           AND cardinality(codes) = cardinality(severities)
           AND cardinality(messages) = cardinality(severities)),
    CHECK (severities <@ ARRAY['error', 'warning'])
);

-- The arrays of a block are a few dozen kilobytes, so they are compressed
-- out of line. LZ4 compresses these repetitive messages as small as the
-- default pglz in less time; a server built without LZ4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE import_issue_blocks
        ALTER COLUMN severities SET COMPRESSION lz4,
        ALTER COLUMN row_numbers SET COMPRESSION lz4,
        ALTER COLUMN lines SET COMPRESSION lz4,
        ALTER COLUMN column_names SET COMPRESSION lz4,
        ALTER COLUMN codes SET COMPRESSION lz4,
        ALTER COLUMN messages SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'this server has no LZ4 support; issue blocks are compressed with pglz';
END
$$;

-- Issues were numbered from 0 without gaps; numbering them again here keeps
-- each block's positions and seq numbers in step even if one had a gap.
INSERT INTO import_issue_blocks
SELECT import_id, min(seq), max(seq),
       count(*) FILTER (WHERE severity = 'error'),
       count(*) FILTER (WHERE severity = 'warning'),
       array_agg(severity ORDER BY seq), array_agg(row_number ORDER BY seq),
       array_agg(line ORDER BY seq), array_agg(column_name ORDER BY seq),
       array_agg(code ORDER BY seq), array_agg(message ORDER BY seq)
  FROM (SELECT import_id, (row_number() OVER (PARTITION BY import_id ORDER BY seq) - 1)::integer AS seq,
               severity, row_number, line, column_name, code, message
          FROM import_issues) numbered
 GROUP BY import_id, seq / 1024;

DROP TABLE import_issues;

-- The foreign key of the blocks keeps an import with issues from being
-- deleted; the trigger still guards its rejected rows.
CREATE OR REPLACE FUNCTION imports_protect_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.id = OLD.id THEN
        RETURN NEW;
    END IF;
    IF EXISTS (SELECT 1 FROM import_rejected_rows WHERE import_id = OLD.id) THEN
        RAISE EXCEPTION 'import % still has rejected rows', OLD.id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF TG_OP = 'UPDATE' THEN
        RETURN NEW;
    END IF;
    RETURN OLD;
END
$$;
