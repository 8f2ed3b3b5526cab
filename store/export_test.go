package store

import "database/sql"

// SchemaVersionForTest is the schema version this build migrates to.
func SchemaVersionForTest() int { return len(migrations) }

// OpenRawForTest opens the database file without the store, for tests that
// tamper with it.
func OpenRawForTest(path string) (*sql.DB, error) {
	return sql.Open("sqlite", "file:"+path+"?_busy_timeout=5000")
}
