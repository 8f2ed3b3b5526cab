package store

// Migration reports what opening a store did to its schema. Both
// constructors (OpenSQLite, OpenPostgres) apply pending migrations before
// they return; `latchkey migrate` prints this.
type Migration struct {
	// From is the schema version found when the store was opened: 0 for a
	// new database. When several instances start at once, only the one
	// that migrated sees the old version; the others see the new one.
	From int
	// To is the schema version after opening: the version this build uses.
	To int
}

// Migrated reports whether opening the store changed the schema.
func (m Migration) Migrated() bool { return m.From != m.To }
