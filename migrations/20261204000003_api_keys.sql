-- Partner API keys. Only an HMAC-SHA256 hash of each key is stored; the
-- prefix finds the row without scanning. `client_ids` NULL means every client
-- assigned to the partner at the time of the request.
CREATE TABLE api_keys (
    id              uuid PRIMARY KEY,
    partner_id      uuid NOT NULL REFERENCES partners (id),
    name            text NOT NULL,
    prefix          text NOT NULL UNIQUE,
    secret_hash     bytea NOT NULL,
    role            text NOT NULL CHECK (role IN ('partner_admin', 'partner_user')),
    client_ids      uuid[],
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz,
    revoked_at      timestamptz,
    revoked_by      text
);
CREATE INDEX api_keys_partner_idx ON api_keys (partner_id, created_at, id);
