-- Latchkey store schema, version 2 (SQLite): notices held back by a budget.
--
-- One row per account at most: the notices a budget held back, to be sent
-- as one later notice once due_at has passed (see Store.HoldNotice).
-- events is a JSON array of event names; data_enc is AES-256-GCM of a JSON
-- object (what the sender needs to reach the user), AAD bound to the account.
CREATE TABLE held_notices (
    account_id TEXT    PRIMARY KEY,
    events     TEXT    NOT NULL,
    data_enc   BLOB,
    sms_only   INTEGER NOT NULL,
    held_at    INTEGER NOT NULL,
    due_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX held_notices_by_due ON held_notices (due_at);
