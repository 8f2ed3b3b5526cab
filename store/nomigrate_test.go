package store_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/latchkeyhq/latchkey/store"
)

// TestNoMigrateSQLite: opened without migrating, a missing database is
// "schema behind" and is not created; a current one opens unchanged; an
// older compatible one (MinSchemaVersion lowered, what versions 2 to 4
// added undone) is served as it is and reported behind; below
// MinSchemaVersion it is refused; a newer one is refused; a migrating open
// then brings it up.
func TestNoMigrateSQLite(t *testing.T) {
	ctx := t.Context()
	p := filepath.Join(t.TempDir(), "n.db")
	noMigrate := func() (*store.SQLite, error) {
		return store.OpenSQLiteWith(ctx, "file:"+p, testKey, store.SQLiteOptions{NoMigrate: true})
	}
	if _, err := noMigrate(); !errors.Is(err, store.ErrSchemaBehind) {
		t.Fatalf("no database: %v", err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("opening without migrating created the file: %v", err)
	}
	// an empty file (as a mistaken touch would leave): behind, still empty
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := noMigrate(); !errors.Is(err, store.ErrSchemaBehind) {
		t.Fatalf("empty database: %v", err)
	}
	raw, err := store.OpenRawForTest(p)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var tables int
	if err := raw.QueryRow(`SELECT COUNT(*) FROM sqlite_master`).Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("opening without migrating made %d schema objects (%v)", tables, err)
	}

	s, err := store.OpenSQLite(ctx, "file:"+p, testKey)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = noMigrate()
	if err != nil {
		t.Fatalf("current schema: %v", err)
	}
	if m := s.Migration(); m.Migrated() || m.Behind() || m.To != store.SchemaVersion() {
		t.Fatalf("current schema: %+v", m)
	}
	s.Close()

	// back to version 1
	if _, err := raw.Exec(sqliteUndo4 + undo3 + undo2); err != nil {
		t.Fatal(err)
	}
	if _, err := noMigrate(); !errors.Is(err, store.ErrSchemaBehind) {
		t.Fatalf("version 1 below MinSchemaVersion %d: %v", store.MinSchemaVersion(), err)
	}
	store.SetMinSchemaForTest(t, 1)
	s, err = noMigrate()
	if err != nil {
		t.Fatalf("older compatible schema: %v", err)
	}
	if m := s.Migration(); m.From != 1 || m.To != 1 || !m.Behind() {
		t.Fatalf("older compatible schema: %+v", m)
	}
	s.Close()
	var v int
	if err := raw.QueryRow(`SELECT MAX(version) FROM schema_version`).Scan(&v); err != nil || v != 1 {
		t.Fatalf("schema version %d after opening without migrating (%v)", v, err)
	}
	s, err = store.OpenSQLite(ctx, "file:"+p, testKey)
	if err != nil {
		t.Fatal(err)
	}
	if m := s.Migration(); m.From != 1 || m.To != store.SchemaVersion() {
		t.Fatalf("migrating open: %+v", m)
	}
	s.Close()

	if _, err := raw.Exec(`INSERT INTO schema_version (version, applied_at) VALUES (?, 0)`, store.SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	if _, err := noMigrate(); !errors.Is(err, store.ErrSchemaNewer) {
		t.Fatalf("newer schema: %v", err)
	}
	if _, err := store.OpenSQLiteWith(ctx, ":memory:", testKey, store.SQLiteOptions{NoMigrate: true}); !errors.Is(err, store.ErrSchemaBehind) {
		t.Fatalf("in memory: %v", err)
	}
}

// TestNoMigratePostgres: the same on PostgreSQL: an empty database is
// "schema behind" and stays empty; current, older compatible, below the
// minimum and newer schemas as with SQLite.
func TestNoMigratePostgres(t *testing.T) {
	ctx := t.Context()
	srv, db, dsn := newPostgresDB(t)
	noMigrate := func() (*store.Postgres, error) {
		return store.OpenPostgres(ctx, dsn, testKey, store.PostgresOptions{NoMigrate: true})
	}
	if _, err := noMigrate(); !errors.Is(err, store.ErrSchemaBehind) {
		t.Fatalf("empty database: %v", err)
	}
	srv.Exec(t, db, `DO $$ BEGIN IF (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public') <> 0 THEN RAISE EXCEPTION 'opening without migrating changed the database'; END IF; END $$`)

	openPostgres(t, dsn).Close()
	s, err := noMigrate()
	if err != nil {
		t.Fatalf("current schema: %v", err)
	}
	if m := s.Migration(); m.Migrated() || m.Behind() || m.To != store.SchemaVersion() {
		t.Fatalf("current schema: %+v", m)
	}
	s.Close()

	srv.Exec(t, db, postgresUndo4+undo3+undo2)
	if _, err := noMigrate(); !errors.Is(err, store.ErrSchemaBehind) {
		t.Fatalf("version 1 below MinSchemaVersion %d: %v", store.MinSchemaVersion(), err)
	}
	store.SetMinSchemaForTest(t, 1)
	s, err = noMigrate()
	if err != nil {
		t.Fatalf("older compatible schema: %v", err)
	}
	if m := s.Migration(); m.From != 1 || m.To != 1 || !m.Behind() {
		t.Fatalf("older compatible schema: %+v", m)
	}
	s.Close()
	srv.Exec(t, db, `DO $$ BEGIN IF (SELECT max(version) FROM schema_version) <> 1 OR to_regclass('held_notices') IS NOT NULL
		THEN RAISE EXCEPTION 'opening without migrating changed the schema'; END IF; END $$`)
	if m := openPostgres(t, dsn).Migration(); m.From != 1 || m.To != store.SchemaVersion() {
		t.Fatalf("migrating open: %+v", m)
	}

	srv.Exec(t, db, `INSERT INTO schema_version (version, applied_at) VALUES ($1, now())`, store.SchemaVersion()+1)
	if _, err := noMigrate(); !errors.Is(err, store.ErrSchemaNewer) {
		t.Fatalf("newer schema: %v", err)
	}
}
