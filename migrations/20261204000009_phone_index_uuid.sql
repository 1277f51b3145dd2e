-- Blind indexes are stored as the first 16 bytes of the HMAC-SHA256 output,
-- in a `uuid` column. The unique index on (campaign_id, phone_index) is
-- updated once per imported contact; a fixed 16-byte key compares without a
-- varlena header and makes its entries 40 bytes instead of 64. Two of a
-- million different numbers share 16 bytes with a probability of about
-- 10^-27. The server computes the same prefix, so existing rows keep
-- matching. Both tables are rewritten, and their unique indexes rebuilt,
-- under an exclusive lock.
ALTER TABLE contacts
    ALTER COLUMN phone_index TYPE uuid
    USING encode(substring(phone_index FROM 1 FOR 16), 'hex')::uuid;

ALTER TABLE suppressions
    ALTER COLUMN phone_index TYPE uuid
    USING encode(substring(phone_index FROM 1 FOR 16), 'hex')::uuid;
