package store_test

// Statements that take a store's schema back one version, as the release
// before that version left it (for the migration tests).
const (
	sqliteUndo4 = `DROP TABLE settings; ALTER TABLE sessions DROP COLUMN kind; DELETE FROM schema_version WHERE version = 4;`
	// PostgreSQL's version 4 also rebuilt audit_by_type in byte order.
	postgresUndo4 = `DROP TABLE settings; ALTER TABLE sessions DROP COLUMN kind;
		DROP INDEX audit_by_type; CREATE INDEX audit_by_type ON audit (type, time, seq);
		DELETE FROM schema_version WHERE version = 4;`
	undo3 = `DROP TABLE outbox; DELETE FROM schema_version WHERE version = 3;`
	undo2 = `DROP TABLE held_notices; DELETE FROM schema_version WHERE version = 2;`
)
