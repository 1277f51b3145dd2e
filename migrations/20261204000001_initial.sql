-- Tenancy: partners are assigned clients; clients own projects; a campaign
-- belongs to one client project. Nothing is hard-deleted.
CREATE TABLE partners (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE clients (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE partner_clients (
    partner_id  uuid NOT NULL REFERENCES partners (id),
    client_id   uuid NOT NULL REFERENCES clients (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_id, client_id)
);

CREATE TABLE projects (
    id          uuid PRIMARY KEY,
    client_id   uuid NOT NULL REFERENCES clients (id),
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE campaigns (
    id                      uuid PRIMARY KEY,
    partner_id              uuid NOT NULL REFERENCES partners (id),
    client_id               uuid NOT NULL REFERENCES clients (id),
    project_id              uuid NOT NULL REFERENCES projects (id),
    name                    text NOT NULL,
    call_type               text NOT NULL CHECK (call_type IN ('telemarketing', 'research', 'service')),
    state                   text NOT NULL DEFAULT 'draft'
                            CHECK (state IN ('draft', 'running', 'paused', 'completed', 'cancelled')),
    start_date              date,
    end_date                date,
    calling_window          jsonb NOT NULL,
    retry_policy            jsonb NOT NULL,
    personalisation_keys    text[] NOT NULL DEFAULT '{}',
    capacity                integer NOT NULL,
    default_max_attempts    integer NOT NULL CHECK (default_max_attempts BETWEEN 1 AND 10),
    caller_id               text,
    organisation            text,
    on_behalf_of            text,
    purpose                 text,
    contact_for_questions   text,
    exemption               text,
    exemption_evidence      text,
    allow_non_geographic    boolean NOT NULL DEFAULT false,
    block_state_holidays    boolean NOT NULL DEFAULT true,
    version                 integer NOT NULL DEFAULT 1,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    launched_at             timestamptz,
    finished_at             timestamptz
);
CREATE INDEX campaigns_partner_idx ON campaigns (partner_id, created_at, id);
CREATE INDEX campaigns_running_idx ON campaigns (state) WHERE state = 'running';

CREATE TABLE imports (
    id                  uuid PRIMARY KEY,
    campaign_id         uuid NOT NULL REFERENCES campaigns (id),
    idempotency_key     text,
    file_sha256         text NOT NULL,
    state               text NOT NULL CHECK (state IN ('completed', 'failed')),
    rows_total          integer NOT NULL,
    rows_accepted       integer NOT NULL,
    rows_rejected       integer NOT NULL,
    rows_with_warnings  integer NOT NULL,
    dropped_columns     text[] NOT NULL DEFAULT '{}',
    created_by          text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (campaign_id, idempotency_key)
);

-- Row errors and warnings. Messages never contain phone numbers or
-- personalisation values.
CREATE TABLE import_issues (
    import_id   uuid NOT NULL REFERENCES imports (id),
    seq         integer NOT NULL,
    severity    text NOT NULL CHECK (severity IN ('error', 'warning')),
    row_number  integer NOT NULL,
    line        integer NOT NULL,
    column_name text NOT NULL,
    code        text NOT NULL,
    message     text NOT NULL,
    PRIMARY KEY (import_id, seq)
);

CREATE TABLE wash_results (
    id                  uuid PRIMARY KEY,
    campaign_id         uuid NOT NULL REFERENCES campaigns (id),
    register            text NOT NULL DEFAULT 'AU_DNCR',
    wash_reference      text NOT NULL,
    account             text,
    received_at         timestamptz NOT NULL,
    file_sha256         text NOT NULL,
    rows_total          integer NOT NULL,
    registered          integer NOT NULL,
    not_registered      integer NOT NULL,
    invalid             integer NOT NULL,
    matched             integer NOT NULL,
    unmatched           integer NOT NULL,
    rejected_rows       integer NOT NULL,
    created_by          text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now()
);

-- Contacts. The number and personalisation are AES-256-GCM ciphertexts
-- (nonce || ciphertext || tag) under key `key_id`, with associated data naming
-- the table, the row id and the column. `phone_index` is an HMAC-SHA256 blind
-- index under a separate key, for matching without decryption.
CREATE TABLE contacts (
    id                      uuid PRIMARY KEY,
    campaign_id             uuid NOT NULL REFERENCES campaigns (id),
    client_id               uuid NOT NULL REFERENCES clients (id),
    import_id               uuid NOT NULL REFERENCES imports (id),
    row_number              integer NOT NULL,
    key_id                  text NOT NULL,
    phone_ciphertext        bytea NOT NULL,
    phone_index             bytea NOT NULL,
    phone_masked            text NOT NULL,
    number_type             text NOT NULL,
    personalisation_ciphertext bytea,
    contact_ref             text,
    zone_source             text NOT NULL,
    zone_key                text NOT NULL,
    registry_status         text,
    registry_checked_at     timestamptz,
    registry_evidence       text,
    registry_source         text,
    consent_type            text,
    consent_evidence        text,
    consent_given_on        date,
    consent_expires_on      date,
    consent_withdrawn_at    timestamptz,
    exemption               text,
    priority                integer NOT NULL,
    max_attempts            integer NOT NULL,
    state                   text NOT NULL DEFAULT 'pending'
                            CHECK (state IN ('pending', 'dialing', 'done', 'excluded', 'cancelled')),
    attempts_made           integer NOT NULL DEFAULT 0,
    last_outcome            text,
    final_reason            text,
    excluded_reason         text,
    blocked_reason          text,
    next_attempt_at         timestamptz,
    next_eligible_at        timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE (campaign_id, phone_index)
);
CREATE INDEX contacts_campaign_idx ON contacts (campaign_id, row_number, id);
CREATE INDEX contacts_due_idx ON contacts (campaign_id, priority DESC, next_attempt_at)
    WHERE state = 'pending';

-- One row per call attempt, with what the compliance gate saw when it allowed it.
CREATE TABLE attempts (
    id                  uuid PRIMARY KEY,
    campaign_id         uuid NOT NULL REFERENCES campaigns (id),
    contact_id          uuid NOT NULL REFERENCES contacts (id),
    attempt_number      integer NOT NULL,
    state               text NOT NULL
                        CHECK (state IN ('handing_over', 'handed_over', 'connected', 'ended', 'failed', 'unknown')),
    call_type           text NOT NULL,
    caller_id           text NOT NULL,
    zone_checked        text NOT NULL,
    local_time_checked  text NOT NULL,
    clearance           text NOT NULL,
    clearance_reference text,
    platform_call_id    text,
    outcome             text,
    end_reason          text,
    duration_seconds    integer,
    summary             text,
    started_at          timestamptz NOT NULL,
    handed_over_at      timestamptz,
    answered_at         timestamptz,
    ended_at            timestamptz,
    UNIQUE (contact_id, attempt_number)
);
CREATE INDEX attempts_open_idx ON attempts (campaign_id) WHERE state IN ('handing_over', 'handed_over', 'connected');

CREATE TABLE webhook_events (
    event_id        text PRIMARY KEY,
    attempt_id      uuid NOT NULL,
    event_type      text NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now()
);

-- Numbers a client must never call again, matched by blind index.
CREATE TABLE suppressions (
    id              uuid PRIMARY KEY,
    client_id       uuid NOT NULL REFERENCES clients (id),
    phone_index     bytea NOT NULL,
    source          text NOT NULL,
    attempt_id      uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (client_id, phone_index)
);

-- Every write: who, when, what, the state change and the request id.
-- Entries never contain phone numbers or personalisation.
CREATE TABLE audit_log (
    id              bigserial PRIMARY KEY,
    partner_id      uuid,
    campaign_id     uuid,
    actor           text NOT NULL,
    action          text NOT NULL,
    from_state      text,
    to_state        text,
    details         jsonb NOT NULL DEFAULT '{}',
    request_id      text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_campaign_idx ON audit_log (campaign_id, id);

-- Responses kept for Idempotency-Key replays.
CREATE TABLE idempotency_keys (
    partner_id      uuid NOT NULL,
    key             text NOT NULL,
    request_hash    text NOT NULL,
    status          integer NOT NULL,
    body            jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_id, key)
);
