package store

import (
	"context"
	"database/sql"
	"time"
)

// SchemaVersionForTest is the schema version this build migrates to.
func SchemaVersionForTest() int { return len(migrations) }

// PostgresSchemaVersionForTest is the PostgreSQL schema version this build
// migrates to.
func PostgresSchemaVersionForTest() int { return len(pgMigrations) }

// OpenRawForTest opens the database file without the store, for tests that
// tamper with it.
func OpenRawForTest(path string) (*sql.DB, error) {
	return sql.Open("sqlite", "file:"+path+"?_busy_timeout=5000")
}

// SeedForBench is SeedOutstanding (kept for the store's own tests).
func SeedForBench(ctx context.Context, s *SQLite, n int, now time.Time) error {
	return SeedOutstanding(ctx, s, n, now)
}

// SetMinSchemaForTest lowers or raises MinSchemaVersion until the test ends.
func SetMinSchemaForTest(t interface{ Cleanup(func()) }, v int) {
	old := minSchema
	minSchema = v
	t.Cleanup(func() { minSchema = old })
}
