package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/store"
)

const sessionBeforeV4 = "session-before-migration-0123456789"

// v3Data writes what a version 3 store holds: a method, a flow with a
// code, a (registration) session, audit events, an outbox message.
func v3Data(t *testing.T, s store.Store, now time.Time) store.Flow {
	t.Helper()
	ctx := t.Context()
	f := migrationData(t, s, now)
	if err := s.CreateSession(ctx, store.Session{ID: sessionBeforeV4, AccountID: "acct-m", Username: "mia",
		CreatedAt: now, AuthAt: now, LastSeen: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctx, store.AuditEvent{Time: now.Add(time.Second), Type: "reset.started", AccountID: "acct-m", Outcome: "eligible"}); err != nil {
		t.Fatal(err)
	}
	if err := s.EnqueueMessage(ctx, store.OutboxMessage{ID: "msg-before-v4", Kind: store.OutboxNotice, Channel: store.MethodEmail,
		Body: []byte("n"), AccountID: "acct-m", CreatedAt: now, NotBefore: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return f
}

// checkV4Migration: after the migration from version 3 every row of the
// version 3 store reads back (the session as a registration session, the
// audit events with their Seq, through the new filters), no settings are
// stored, and settings and admin sessions work.
func checkV4Migration(t *testing.T, s store.Store, m store.Migration, f store.Flow, now time.Time) {
	t.Helper()
	ctx := t.Context()
	if m.From != 3 || m.To != 4 || store.SchemaVersion() != 4 {
		t.Fatalf("migration %+v, want 3 to 4", m)
	}
	if meth, err := s.GetMethod(ctx, "acct-m", "m1"); err != nil || meth.Address != "m@example.org" {
		t.Fatalf("method after migration: %+v %v", meth, err)
	}
	if got, err := s.GetFlow(ctx, f.ID, now); err != nil || got.Data["k"] != "v" {
		t.Fatalf("flow after migration: %+v %v", got, err)
	}
	if err := s.RedeemCode(ctx, f.ID, "reset", "m1", []byte("h"), 5, now); err != nil {
		t.Fatalf("code after migration: %v", err)
	}
	sess, err := s.GetSession(ctx, sessionBeforeV4, now)
	if err != nil || sess.Kind != "" || sess.Username != "mia" || !sess.AuthAt.Equal(now) {
		t.Fatalf("session after migration: %+v %v", sess, err)
	}
	evs, err := s.ListAudit(ctx, store.AuditQuery{AccountID: "acct-m", TypePrefix: "reset.", Outcome: "eligible"})
	if err != nil || len(evs) != 1 || evs[0].Seq == 0 {
		t.Fatalf("audit after migration: %+v %v", evs, err)
	}
	all, err := s.ListAudit(ctx, store.AuditQuery{})
	if err != nil || len(all) != 2 || all[1].Type != "before.migration" {
		t.Fatalf("audit after migration: %+v %v", all, err)
	}
	if older, err := s.ListAudit(ctx, store.AuditQuery{BeforeSeq: all[0].Seq}); err != nil || len(older) != 1 || older[0].Seq != all[1].Seq {
		t.Fatalf("audit page after migration: %+v %v", older, err)
	}
	if got, err := s.ClaimMessages(ctx, store.MethodEmail, now, time.Minute, 5); err != nil || len(got) != 1 || string(got[0].Body) != "n" {
		t.Fatalf("outbox after migration: %+v %v", got, err)
	}
	if v, err := s.SettingsVersion(ctx); err != nil || v != 0 {
		t.Fatalf("settings version after migration: %d %v", v, err)
	}
	if _, err := s.GetSettings(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("settings after migration: %v", err)
	}
	if st, err := s.SaveSettings(ctx, 0, store.StoredSettings{Body: []byte(`{}`), UpdatedAt: now, UpdatedBy: "acct-admin"}, nil); err != nil || st.Version != 1 {
		t.Fatalf("first settings after migration: %+v %v", st, err)
	}
	admin := store.Session{ID: "admin-session-after-migration-0123", Kind: store.SessionAdmin, AccountID: "acct-admin", Username: "ada",
		CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := s.CreateSession(ctx, admin); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetSession(ctx, admin.ID, now); err != nil || got.Kind != store.SessionAdmin {
		t.Fatalf("admin session after migration: %+v %v", got, err)
	}
}

// TestAdminMigrationKeepsDataSQLite: a version 3 SQLite store holding
// methods, flows, codes, sessions, audit events and messages migrates to
// version 4 (settings, sessions.kind) with its data intact.
func TestAdminMigrationKeepsDataSQLite(t *testing.T) {
	ctx, now := t.Context(), time.Now().UTC().Truncate(time.Microsecond)
	p := t.TempDir() + "/m.db"
	s, err := store.OpenSQLite(ctx, "file:"+p, testKey)
	if err != nil {
		t.Fatal(err)
	}
	f := v3Data(t, s, now)
	s.Close()
	raw, err := store.OpenRawForTest(p)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(sqliteUndo4); err != nil {
		t.Fatal(err)
	}
	if _, err := store.OpenSQLiteWith(ctx, "file:"+p, testKey, store.SQLiteOptions{NoMigrate: true}); !errors.Is(err, store.ErrSchemaBehind) {
		t.Fatalf("version 3 opened without migrating: %v, want schema behind", err)
	}
	s, err = store.OpenSQLite(ctx, "file:"+p, testKey)
	if err != nil {
		t.Fatalf("migrating a version 3 store: %v", err)
	}
	defer s.Close()
	checkV4Migration(t, s, s.Migration(), f, now)
}

// TestAdminMigrationKeepsDataPostgres: the same on PostgreSQL, where the
// migration also rebuilds audit_by_type in byte order.
func TestAdminMigrationKeepsDataPostgres(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	srv, db, dsn := newPostgresDB(t)
	s := openPostgres(t, dsn)
	f := v3Data(t, s, now)
	s.Close()
	srv.Exec(t, db, postgresUndo4)
	if _, err := store.OpenPostgres(t.Context(), dsn, testKey, store.PostgresOptions{NoMigrate: true}); !errors.Is(err, store.ErrSchemaBehind) {
		t.Fatalf("version 3 opened without migrating: %v, want schema behind", err)
	}
	s = openPostgres(t, dsn)
	checkV4Migration(t, s, s.Migration(), f, now)
	srv.Exec(t, db, `DO $$ BEGIN IF (SELECT indexdef FROM pg_indexes WHERE indexname = 'audit_by_type') NOT LIKE '%COLLATE "C"%'
		THEN RAISE EXCEPTION 'audit_by_type not in byte order'; END IF; END $$`)
}
