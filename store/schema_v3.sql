-- Latchkey store schema, version 3 (SQLite): the outbox.
--
-- Mail and SMS waiting to be sent (see Store's Outbox methods). body_enc is
-- AES-256-GCM of the message, AAD bound to the id, NULL once finished.
-- Times are Unix microseconds; lease_until 0 = not leased, done_at 0 = not
-- finished. priority: 0 codes and decoys, 1 notices.
CREATE TABLE outbox (
    id          TEXT    PRIMARY KEY,
    kind        TEXT    NOT NULL,
    channel     TEXT    NOT NULL,
    priority    INTEGER NOT NULL,
    state       TEXT    NOT NULL,
    body_enc    BLOB,
    account_id  TEXT    NOT NULL,
    request_id  TEXT    NOT NULL,
    client_ip   TEXT    NOT NULL,
    purpose     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    not_before  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    lease_until INTEGER NOT NULL DEFAULT 0,
    done_at     INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX outbox_due ON outbox (state, channel, priority, not_before);
CREATE INDEX outbox_by_kind ON outbox (state, kind, not_before);
CREATE INDEX outbox_done ON outbox (state, done_at);
