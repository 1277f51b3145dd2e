-- Non-secret fingerprints of the keys this database's data was written with,
-- so a server started with other keys refuses to start instead of silently
-- missing duplicates, wash matches and opt-outs (blind indexes that no longer
-- match) and failing to decrypt stored numbers.
--
-- A fingerprint is HMAC-SHA256 of a fixed label under the key. It does not
-- reveal the key and is no blind index of any number. The server records the
-- fingerprints on its first start against this database and compares them on
-- every later start.

-- One row: the blind-index key's fingerprint.
CREATE TABLE key_fingerprints (
    singleton               boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    blind_index_fingerprint bytea NOT NULL CHECK (octet_length(blind_index_fingerprint) = 32),
    recorded_at             timestamptz NOT NULL DEFAULT now()
);

-- One row per data key id the server has loaded or contacts were sealed
-- under. `fingerprint` is NULL for ids found in contacts written before this
-- migration; the next start checks such a key against a stored contact
-- before recording its fingerprint.
CREATE TABLE data_key_fingerprints (
    key_id      text PRIMARY KEY,
    fingerprint bytea CHECK (octet_length(fingerprint) = 32),
    recorded_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO data_key_fingerprints (key_id)
SELECT DISTINCT key_id FROM contacts;
