-- Latchkey store schema, version 4 (PostgreSQL): the admin console, as in
-- the SQLite schema_v4.sql.
CREATE TABLE settings (
    id         integer     PRIMARY KEY CHECK (id = 1),
    version    integer     NOT NULL,
    body       text        NOT NULL,
    updated_at timestamptz NOT NULL,
    updated_by text        NOT NULL
);

ALTER TABLE sessions ADD COLUMN kind text NOT NULL DEFAULT '';

-- The audit's type index in byte order (COLLATE "C"), whatever the
-- database's collation: ListAudit's type prefix filter is a range on it
-- (in a linguistic collation a range is not a prefix), and its type
-- filter compares in the same collation to use it too.
DROP INDEX audit_by_type;
CREATE INDEX audit_by_type ON audit ((type COLLATE "C"), time, seq);
