-- Latchkey store schema, version 3 (PostgreSQL): the outbox, as in the
-- SQLite schema_v3.sql. lease_until '-infinity' = not leased.
CREATE TABLE outbox (
    id          text        PRIMARY KEY,
    kind        text        NOT NULL,
    channel     text        NOT NULL,
    priority    integer     NOT NULL,
    state       text        NOT NULL,
    body_enc    bytea,
    account_id  text        NOT NULL,
    request_id  text        NOT NULL,
    client_ip   text        NOT NULL,
    purpose     text        NOT NULL,
    created_at  timestamptz NOT NULL,
    not_before  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    attempts    integer     NOT NULL DEFAULT 0,
    lease_until timestamptz NOT NULL DEFAULT '-infinity',
    done_at     timestamptz
);
CREATE INDEX outbox_due ON outbox (state, channel, priority, not_before);
CREATE INDEX outbox_by_kind ON outbox (state, kind, not_before);
CREATE INDEX outbox_done ON outbox (state, done_at);
