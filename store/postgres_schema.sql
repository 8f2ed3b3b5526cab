-- Latchkey store schema, version 1 (PostgreSQL).
--
-- The same tables as the SQLite schema (schema.sql), in PostgreSQL types:
-- times are timestamptz (microsecond precision, NULL for a zero time.Time),
-- except the rate-limit windows, which are bigint microseconds since the Unix
-- epoch (they are window arithmetic, not instants). Bearer IDs (flows,
-- sessions) are stored only as SHA-256 hashes; addresses and flow data only
-- encrypted (AES-256-GCM with a key that is not in this database); counter
-- keys only as keyed HMACs. Later schema changes are new, numbered
-- migrations; never edit this file once released.

-- meta holds store-level values such as the key check.
CREATE TABLE meta (
    name  text  PRIMARY KEY,
    value bytea NOT NULL
);

CREATE TABLE methods (
    account_id  text        NOT NULL,
    id          text        NOT NULL,
    type        text        NOT NULL,
    address_enc bytea       NOT NULL, -- AES-256-GCM, AAD binds account, id, type
    address_idx bytea       NOT NULL, -- HMAC blind index of the normalized address
    verified    boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL,
    verified_at timestamptz,
    PRIMARY KEY (account_id, id)
);
CREATE INDEX methods_by_created ON methods (account_id, created_at, id);
CREATE INDEX methods_by_address ON methods (type, address_idx) WHERE verified;

-- Flows and sessions are keyed by SHA-256(ID). Rotating a flow updates its
-- key; its codes follow through ON UPDATE CASCADE.
CREATE TABLE flows (
    id_hash    bytea       PRIMARY KEY, -- SHA-256 of the bearer ID
    kind       text        NOT NULL,
    account_id text        NOT NULL,    -- '' for decoy flows
    required   integer     NOT NULL,
    verified   text[],                  -- method ids, NULL when empty
    data_enc   bytea,                   -- AES-256-GCM of a JSON object, NULL when empty
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    version    bigint      NOT NULL
);
CREATE INDEX flows_by_account ON flows (account_id);
CREATE INDEX flows_by_expiry ON flows (expires_at);

-- At most one live code per (flow, purpose, method): the primary key.
CREATE TABLE codes (
    flow_id    bytea       NOT NULL REFERENCES flows (id_hash) ON DELETE CASCADE ON UPDATE CASCADE,
    purpose    text        NOT NULL,
    method_id  text        NOT NULL,
    account_id text        NOT NULL,
    hash       bytea       NOT NULL, -- the caller's HMAC of the code
    expires_at timestamptz NOT NULL,
    tries      integer     NOT NULL,
    PRIMARY KEY (flow_id, purpose, method_id)
);
CREATE INDEX codes_by_expiry ON codes (expires_at);
CREATE INDEX codes_by_method ON codes (account_id, method_id);

CREATE TABLE sessions (
    id_hash    bytea       PRIMARY KEY, -- SHA-256 of the bearer ID
    account_id text        NOT NULL,
    username   text        NOT NULL,
    created_at timestamptz NOT NULL,
    auth_at    timestamptz,
    last_seen  timestamptz,
    expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_by_account ON sessions (account_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

CREATE TABLE counters (
    key_hash     bytea   NOT NULL, -- HMAC of the caller's key
    window_us    bigint  NOT NULL, -- window length
    window_start bigint  NOT NULL,
    window_end   bigint  NOT NULL,
    count        integer NOT NULL,
    PRIMARY KEY (key_hash, window_us, window_start)
);
CREATE INDEX counters_by_end ON counters (window_end);

CREATE TABLE audit (
    seq        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time       timestamptz NOT NULL,
    type       text        NOT NULL,
    request_id text        NOT NULL,
    client_ip  text        NOT NULL,
    account_id text        NOT NULL,
    outcome    text        NOT NULL,
    details    json                  -- JSON object, NULL when empty
);
CREATE INDEX audit_by_time ON audit (time, seq);
CREATE INDEX audit_by_account ON audit (account_id, time, seq);
CREATE INDEX audit_by_type ON audit (type, time, seq);
