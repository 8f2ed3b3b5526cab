package store_test

import (
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/store"
)

// TestPostgresAuditPrefixAnyCollation: on a database whose collation is
// linguistic (ICU, en-US: punctuation has its own order, not ASCII's), a
// type prefix still selects exactly the types that start with it, byte for
// byte, and the type filter still finds its type.
func TestPostgresAuditPrefixAnyCollation(t *testing.T) {
	srv, _, _ := newPostgresDB(t)
	db := "t_icu_" + time.Now().Format("150405000000")
	srv.Exec(t, "postgres", `CREATE DATABASE `+db+` TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C' LOCALE_PROVIDER icu ICU_LOCALE 'en-US'`)
	t.Cleanup(func() { srv.Exec(t, "postgres", `DROP DATABASE IF EXISTS `+db+` WITH (FORCE)`) })
	s := openPostgres(t, srv.DSN(db))
	ctx, now := t.Context(), time.Now().UTC().Truncate(time.Microsecond)
	types := []string{"reset.gate", "reset", "resetx", "reset-gate", "reset/gate", "reset(gate", "reset'gate", "reset_gate", "Reset.gate", "reset.Gate", "reset:gate"}
	for i, typ := range types {
		if err := s.AppendAudit(ctx, store.AuditEvent{Time: now.Add(time.Duration(i) * time.Second), Type: typ}); err != nil {
			t.Fatal(err)
		}
	}
	list := func(q store.AuditQuery) []string {
		t.Helper()
		evs, err := s.ListAudit(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range evs {
			out = append(out, e.Type)
		}
		return out
	}
	if got := list(store.AuditQuery{TypePrefix: "reset."}); len(got) != 2 || got[0] != "reset.Gate" || got[1] != "reset.gate" {
		t.Fatalf("types with the prefix reset.: %q, want [reset.Gate reset.gate]", got)
	}
	if got := list(store.AuditQuery{TypePrefix: "reset"}); len(got) != 10 {
		t.Fatalf("types with the prefix reset: %q, want 10", got)
	}
	if got := list(store.AuditQuery{Type: "reset.gate"}); len(got) != 1 || got[0] != "reset.gate" {
		t.Fatalf("type reset.gate: %q", got)
	}
}
