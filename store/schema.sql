-- Latchkey store schema, version 1 (SQLite).
--
-- Conventions: times are INTEGER microseconds since the Unix epoch (UTC),
-- NULL for a zero time.Time. Bearer IDs (flows, sessions) are stored only as
-- SHA-256 hashes; addresses and flow data only encrypted (AES-256-GCM with a
-- key that is not in this database); counter keys only as keyed HMACs.
-- Later schema changes are new, numbered migrations; never edit this file
-- once released.

-- meta holds store-level values such as the key check.
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;

CREATE TABLE methods (
    account_id  TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    type        TEXT    NOT NULL,
    address_enc BLOB    NOT NULL, -- AES-256-GCM, AAD binds account, id, type
    address_idx BLOB    NOT NULL, -- HMAC blind index of the normalized address
    verified    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    verified_at INTEGER,
    PRIMARY KEY (account_id, id)
) STRICT;
CREATE INDEX methods_by_created ON methods (account_id, created_at, id);
CREATE INDEX methods_by_address ON methods (type, address_idx) WHERE verified = 1;

-- Flows and sessions are keyed by the first 8 bytes of SHA-256(ID) as a
-- signed integer (a rowid: the cheapest B-tree search SQLite has, so a
-- lookup costs about the same with 100,000 rows as with none); the full
-- hash is stored too and every lookup matches both. Two IDs sharing a
-- 64-bit prefix make the second create fail with a conflict.
CREATE TABLE flows (
    key        INTEGER PRIMARY KEY, -- first 8 bytes of SHA-256(ID)
    id_hash    BLOB    NOT NULL,    -- SHA-256 of the bearer ID
    kind       TEXT    NOT NULL,
    account_id TEXT    NOT NULL,    -- '' for decoy flows
    required   INTEGER NOT NULL,
    verified   TEXT,                -- JSON array of method ids, NULL when empty
    data_enc   BLOB,                -- AES-256-GCM of a JSON object, NULL when empty
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    version    INTEGER NOT NULL
) STRICT;
CREATE INDEX flows_by_account ON flows (account_id);
CREATE INDEX flows_by_expiry ON flows (expires_at);

-- At most one live code per (flow, purpose, method): the primary key.
CREATE TABLE codes (
    flow_key   INTEGER NOT NULL REFERENCES flows (key) ON DELETE CASCADE,
    purpose    TEXT    NOT NULL,
    method_id  TEXT    NOT NULL,
    account_id TEXT    NOT NULL,
    hash       BLOB    NOT NULL, -- the caller's HMAC of the code
    expires_at INTEGER NOT NULL,
    tries      INTEGER NOT NULL,
    PRIMARY KEY (flow_key, purpose, method_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX codes_by_expiry ON codes (expires_at);
CREATE INDEX codes_by_method ON codes (account_id, method_id);

CREATE TABLE sessions (
    key        INTEGER PRIMARY KEY, -- first 8 bytes of SHA-256(ID)
    id_hash    BLOB    NOT NULL,    -- SHA-256 of the bearer ID
    account_id TEXT    NOT NULL,
    username   TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    auth_at    INTEGER,
    last_seen  INTEGER,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX sessions_by_account ON sessions (account_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

CREATE TABLE counters (
    key_hash     BLOB    NOT NULL, -- HMAC of the caller's key
    window_us    INTEGER NOT NULL, -- window length
    window_start INTEGER NOT NULL,
    window_end   INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    PRIMARY KEY (key_hash, window_us, window_start)
) STRICT, WITHOUT ROWID;
CREATE INDEX counters_by_end ON counters (window_end);

CREATE TABLE audit (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    time       INTEGER NOT NULL,
    type       TEXT    NOT NULL,
    request_id TEXT    NOT NULL,
    client_ip  TEXT    NOT NULL,
    account_id TEXT    NOT NULL,
    outcome    TEXT    NOT NULL,
    details    TEXT              -- JSON object, NULL when empty
) STRICT;
CREATE INDEX audit_by_time ON audit (time, seq);
CREATE INDEX audit_by_account ON audit (account_id, time, seq);
CREATE INDEX audit_by_type ON audit (type, time, seq);
