-- Latchkey store schema, version 4 (SQLite): the admin console.
--
-- settings holds the admin console's settings: one versioned document (id
-- is always 1), its body JSON text kept exactly as saved, in plaintext
-- (settings never hold secrets). version counts the saves (1 for the
-- first); updated_by is the account id of the admin who saved it.
CREATE TABLE settings (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    version    INTEGER NOT NULL,
    body       TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT    NOT NULL
) STRICT;

-- kind tells an admin console session ('admin') from a registration
-- session (''); sessions made before version 4 are registration sessions.
ALTER TABLE sessions ADD COLUMN kind TEXT NOT NULL DEFAULT '';
