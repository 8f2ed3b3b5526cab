package store_test

import (
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/store"
)

// migrationData writes one of each kind of row a version 2 store holds.
func migrationData(t *testing.T, s store.Store, now time.Time) store.Flow {
	t.Helper()
	ctx := t.Context()
	if err := s.AddMethod(ctx, store.Method{ID: "m1", AccountID: "acct-m", Type: store.MethodEmail, Address: "m@example.org", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	f := store.Flow{ID: "flow-before-migration-0123456789", Kind: store.FlowReset, AccountID: "acct-m", Required: 1,
		Data: map[string]string{"k": "v"}, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := s.CreateFlow(ctx, f); err != nil {
		t.Fatal(err)
	}
	if err := s.IssueCode(ctx, store.Code{FlowID: f.ID, Purpose: "reset", MethodID: "m1", AccountID: "acct-m", Hash: []byte("h"),
		ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.HoldNotice(ctx, store.HeldNotice{AccountID: "acct-m", Events: []string{"method_added"}, HeldAt: now, DueAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctx, store.AuditEvent{Time: now, Type: "before.migration"}); err != nil {
		t.Fatal(err)
	}
	return f
}

// checkMigratedData: after the migration from version 2 (to version 3 and
// on) every row of the version 2 store reads back, and the outbox works.
func checkMigratedData(t *testing.T, s store.Store, m store.Migration, f store.Flow, now time.Time) {
	t.Helper()
	ctx := t.Context()
	if m.From != 2 || m.To != store.SchemaVersion() {
		t.Fatalf("migration %+v, want 2 to %d", m, store.SchemaVersion())
	}
	if meth, err := s.GetMethod(ctx, "acct-m", "m1"); err != nil || meth.Address != "m@example.org" {
		t.Fatalf("method after migration: %+v %v", meth, err)
	}
	if got, err := s.GetFlow(ctx, f.ID, now); err != nil || got.Data["k"] != "v" {
		t.Fatalf("flow after migration: %+v %v", got, err)
	}
	if ns, err := s.TakeDueNotices(ctx, now, 10); err != nil || len(ns) != 1 {
		t.Fatalf("held notice after migration: %+v %v", ns, err)
	}
	if evs, err := s.ListAudit(ctx, store.AuditQuery{Type: "before.migration"}); err != nil || len(evs) != 1 {
		t.Fatalf("audit after migration: %d %v", len(evs), err)
	}
	msg := store.OutboxMessage{ID: "msg-after-migration", Kind: store.OutboxCode, Channel: store.MethodEmail, Body: []byte("b"),
		AccountID: "acct-m", CreatedAt: now, NotBefore: now, ExpiresAt: now.Add(time.Minute)}
	if err := s.IssueCodeWithMessage(ctx, store.Code{FlowID: f.ID, Purpose: "reset", MethodID: "m1", AccountID: "acct-m",
		Hash: []byte("h2"), ExpiresAt: now.Add(time.Hour)}, msg); err != nil {
		t.Fatalf("IssueCodeWithMessage after migration: %v", err)
	}
	got, err := s.ClaimMessages(ctx, store.MethodEmail, now, time.Minute, 5)
	if err != nil || len(got) != 1 || string(got[0].Body) != "b" {
		t.Fatalf("ClaimMessages after migration: %+v %v", got, err)
	}
	if err := s.RedeemCode(ctx, f.ID, "reset", "m1", []byte("h2"), 5, now); err != nil {
		t.Fatalf("code issued with the message: %v", err)
	}
}

// TestOutboxMigrationKeepsDataSQLite: a version 2 SQLite store holding
// data migrates to version 3 (the outbox), and on, with its data intact.
func TestOutboxMigrationKeepsDataSQLite(t *testing.T) {
	ctx, now := t.Context(), time.Now().UTC().Truncate(time.Microsecond)
	p := t.TempDir() + "/m.db"
	s, err := store.OpenSQLite(ctx, "file:"+p, testKey)
	if err != nil {
		t.Fatal(err)
	}
	f := migrationData(t, s, now)
	s.Close()
	raw, err := store.OpenRawForTest(p)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	// back to a version 2 store as a release before the outbox left it
	if _, err := raw.Exec(sqliteUndo4 + undo3); err != nil {
		t.Fatal(err)
	}
	s, err = store.OpenSQLite(ctx, "file:"+p, testKey)
	if err != nil {
		t.Fatalf("migrating a version 2 store: %v", err)
	}
	defer s.Close()
	checkMigratedData(t, s, s.Migration(), f, now)
}

// TestOutboxMigrationKeepsDataPostgres: the same on PostgreSQL.
func TestOutboxMigrationKeepsDataPostgres(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	srv, db, dsn := newPostgresDB(t)
	s := openPostgres(t, dsn)
	f := migrationData(t, s, now)
	s.Close()
	srv.Exec(t, db, postgresUndo4+undo3)
	s = openPostgres(t, dsn)
	checkMigratedData(t, s, s.Migration(), f, now)
}
