package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/config"
	"github.com/latchkeyhq/latchkey/store"
)

// TestSweepDeletesAuditPastRetention: the minute's sweep of latchkey serve
// flushes the audit summaries and, once an hour, deletes the audit events
// older than log.audit_retention (default 400 days), keeping younger ones.
func TestSweepDeletesAuditPastRetention(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, "file:"+filepath.Join(t.TempDir(), "s.db"), []byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	retention := config.Default().Log.AuditRetention
	for _, age := range []time.Duration{retention + time.Hour, retention + 24*time.Hour, retention - time.Hour, time.Hour} {
		if err := st.AppendAudit(ctx, store.AuditEvent{Time: now.Add(-age), Type: "sign_in", Outcome: "failed"}); err != nil {
			t.Fatal(err)
		}
	}
	flushed := 0
	var last time.Time
	log := slog.New(slog.DiscardHandler)
	sweep(ctx, st, func(context.Context) { flushed++ }, retention, now, &last, log)
	evs, err := st.ListAudit(ctx, store.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || flushed != 1 || !last.Equal(now) {
		t.Fatalf("%d events kept (want 2), %d flushes, last sweep %v", len(evs), flushed, last)
	}
	// within the hour the audit is not swept again; the summaries are
	if err := st.AppendAudit(ctx, store.AuditEvent{Time: now.Add(-2 * retention), Type: "sign_in", Outcome: "failed"}); err != nil {
		t.Fatal(err)
	}
	sweep(ctx, st, func(context.Context) { flushed++ }, retention, now.Add(time.Minute), &last, log)
	if evs, _ := st.ListAudit(ctx, store.AuditQuery{}); len(evs) != 3 || flushed != 2 {
		t.Fatalf("%d events, %d flushes after a sweep within the hour", len(evs), flushed)
	}
	sweep(ctx, st, func(context.Context) { flushed++ }, retention, now.Add(time.Hour), &last, log)
	if evs, _ := st.ListAudit(ctx, store.AuditQuery{}); len(evs) != 2 {
		t.Fatalf("%d events after the next hour's sweep, want 2", len(evs))
	}
}
