package store

import (
	"errors"
	"fmt"
)

// Migration reports what opening a store did to its schema. Both
// constructors (OpenSQLite, OpenPostgres) apply pending migrations before
// they return, unless told not to (SQLiteOptions.NoMigrate,
// PostgresOptions.NoMigrate); `latchkey migrate` prints this.
type Migration struct {
	// From is the schema version found when the store was opened: 0 for a
	// new database. When several instances start at once, only the one
	// that migrated sees the old version; the others see the new one.
	From int
	// To is the schema version after opening: the version this build
	// migrates to (SchemaVersion), or From when opened without migrating.
	To int
}

// Migrated reports whether opening the store changed the schema.
func (m Migration) Migrated() bool { return m.From != m.To }

// Behind reports whether the schema is older than this build's
// (SchemaVersion): `latchkey migrate` would change it.
func (m Migration) Behind() bool { return m.To < SchemaVersion() }

// ErrSchemaBehind: the database's schema is older than the oldest this
// build serves on (MinSchemaVersion), or there is no schema yet; opened
// without migrating, the store refuses it. `latchkey migrate` brings it up.
var ErrSchemaBehind = errors.New("schema behind: run latchkey migrate")

// ErrSchemaNewer: the database's schema was made by a newer build than
// this one; every open refuses it.
var ErrSchemaNewer = errors.New("schema newer than this build")

// SchemaVersion is the schema version this build migrates to. SQLite and
// PostgreSQL are numbered in step.
func SchemaVersion() int { return len(migrations) }

// MinSchemaVersion is the oldest schema version this build serves on
// without migrating: the compatible ones are MinSchemaVersion to
// SchemaVersion. A migration that only adds what this build's queries do
// not use yet keeps it; one whose tables or columns the build needs raises
// it to that migration's version. Version 2 (held_notices, used by every
// notice) raised it to 2; version 3 (outbox, used by every message) to 3;
// version 4 (sessions.kind, read and written by every session query, and
// settings) to 4.
func MinSchemaVersion() int { return minSchema }

// minSchema is MinSchemaVersion (a variable for the store's own tests).
var minSchema = 4

// servable checks a schema version found without migrating.
func servable(v int) error {
	if v > SchemaVersion() {
		return newer(v)
	}
	if v < minSchema {
		return behind(v)
	}
	return nil
}

func behind(v int) error {
	if v == 0 {
		return fmt.Errorf("store: no schema yet (this build: version %d): %w", SchemaVersion(), ErrSchemaBehind)
	}
	return fmt.Errorf("store: database schema version %d is older than this build serves on (%d to %d): %w", v, minSchema, SchemaVersion(), ErrSchemaBehind)
}

func newer(v int) error {
	return fmt.Errorf("store: database schema version %d is newer than this build supports (%d): %w", v, SchemaVersion(), ErrSchemaNewer)
}
