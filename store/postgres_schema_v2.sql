-- Latchkey store schema, version 2 (PostgreSQL): notices held back by a
-- budget, as in the SQLite schema_v2.sql.
CREATE TABLE held_notices (
    account_id text        PRIMARY KEY,
    events     text[]      NOT NULL,
    data_enc   bytea,
    sms_only   boolean     NOT NULL,
    held_at    timestamptz NOT NULL,
    due_at     timestamptz NOT NULL
);
CREATE INDEX held_notices_by_due ON held_notices (due_at);
