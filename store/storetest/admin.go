package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/store"
)

// noSeq returns evs with Seq cleared (ListAudit sets it, AppendAudit
// ignores it), after checking that every Seq is set and unique.
func noSeq(t *testing.T, evs []store.AuditEvent) []store.AuditEvent {
	t.Helper()
	seen := map[int64]bool{}
	out := make([]store.AuditEvent, len(evs))
	for i, e := range evs {
		if e.Seq <= 0 || seen[e.Seq] {
			t.Fatalf("ListAudit: event %d has Seq %d (zero or repeated)", i, e.Seq)
		}
		seen[e.Seq] = true
		e.Seq = 0
		out[i] = e
	}
	return out
}

// ---- settings ----

// settings: none saved reads as ErrNotFound and version 0; the first save
// is from prev 0 and makes version 1, each later one from the stored
// version makes the next; the body comes back byte for byte; a stale prev
// (or prev 0 once saved, or a version never stored) is ErrConflict and
// writes nothing, its events included; a save's events are in the audit;
// invalid arguments and an invalid event write nothing; another instance
// (and a restart) sees the same.
func (s *suite) settings(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	version := func(want int) {
		t.Helper()
		v, err := st.SettingsVersion(ctx)
		wantErr(t, "SettingsVersion", err, nil)
		mustEqual(t, "SettingsVersion", v, want)
	}
	events := func(typ string) []store.AuditEvent {
		t.Helper()
		evs, err := st.ListAudit(ctx, store.AuditQuery{Type: typ, Limit: store.MaxAuditLimit})
		wantErr(t, "ListAudit", err, nil)
		return noSeq(t, evs)
	}
	_, err := st.GetSettings(ctx)
	wantErr(t, "GetSettings before any save", err, store.ErrNotFound)
	version(0)

	// kept as given: spaces, key order, escapes, non-ASCII
	body1 := []byte("{\"policy\": {\"enabled\":\"selected\",  \"groups\":[\"cn=Help Desk\"]}, \"a\":\"\\u00e9 é\"}\n")
	s1 := store.StoredSettings{Body: body1, UpdatedAt: now, UpdatedBy: "acct-admin-1"}
	ev := func(outcome string) store.AuditEvent {
		return store.AuditEvent{Time: now, Type: "admin.settings_saved", AccountID: "acct-admin-1", Outcome: outcome,
			Details: map[string]string{"outcome": outcome}}
	}
	for _, tc := range []struct {
		name string
		prev int
		s    store.StoredSettings
		evs  []store.AuditEvent
	}{
		{"negative prev", -1, s1, nil},
		{"empty body", 0, store.StoredSettings{UpdatedAt: now, UpdatedBy: "acct-admin-1"}, nil},
		{"body not UTF-8", 0, store.StoredSettings{Body: []byte{'"', 0xff, '"'}, UpdatedAt: now}, nil},
		{"event without type", 0, s1, []store.AuditEvent{ev("invalid-first"), {Time: now}}},
	} {
		_, err := st.SaveSettings(ctx, tc.prev, tc.s, tc.evs)
		wantErr(t, "SaveSettings with "+tc.name, err, store.ErrInvalid)
	}
	_, err = st.SaveSettings(ctx, 1, s1, []store.AuditEvent{ev("conflict-none")})
	wantErr(t, "SaveSettings from version 1 with none stored", err, store.ErrConflict)
	version(0)
	mustEqual(t, "events after refused saves", len(events("admin.settings_saved")), 0)

	got, err := st.SaveSettings(ctx, 0, s1, []store.AuditEvent{ev("first"), {Time: now, Type: "admin.other", Outcome: "x"}})
	wantErr(t, "SaveSettings first", err, nil)
	want1 := store.StoredSettings{Version: 1, Body: body1, UpdatedAt: now, UpdatedBy: "acct-admin-1"}
	mustEqual(t, "SaveSettings first", got, want1)
	read, err := st.GetSettings(ctx)
	wantErr(t, "GetSettings", err, nil)
	mustEqual(t, "GetSettings after the first save", read, want1)
	version(1)
	mustEqual(t, "events of the first save", events("admin.settings_saved"), []store.AuditEvent{ev("first")})
	mustEqual(t, "second event of the first save", len(events("admin.other")), 1)

	body2 := []byte(`{"policy":{"enabled":"all"}}`)
	s2 := store.StoredSettings{Body: body2, UpdatedAt: now.Add(time.Minute), UpdatedBy: "acct-admin-2"}
	for _, prev := range []int{0, 2, 7} {
		_, err := st.SaveSettings(ctx, prev, s2, []store.AuditEvent{ev(fmt.Sprint("stale-", prev))})
		wantErr(t, fmt.Sprintf("SaveSettings from version %d (stored 1)", prev), err, store.ErrConflict)
	}
	got, err = st.SaveSettings(ctx, 1, s2, []store.AuditEvent{ev("second")})
	wantErr(t, "SaveSettings second", err, nil)
	want2 := store.StoredSettings{Version: 2, Body: body2, UpdatedAt: s2.UpdatedAt, UpdatedBy: "acct-admin-2"}
	mustEqual(t, "SaveSettings second", got, want2)
	_, err = st.SaveSettings(ctx, 1, s1, []store.AuditEvent{ev("stale-1")})
	wantErr(t, "SaveSettings from the replaced version 1", err, store.ErrConflict)
	_, err = st.SaveSettings(ctx, 2, s1, []store.AuditEvent{{Time: now}})
	wantErr(t, "SaveSettings with an invalid event", err, store.ErrInvalid)
	read, err = st.GetSettings(ctx)
	wantErr(t, "GetSettings", err, nil)
	mustEqual(t, "GetSettings after refused saves", read, want2)
	version(2)
	mustEqual(t, "events after refused saves", events("admin.settings_saved"), []store.AuditEvent{ev("second"), ev("first")})

	// the saved body is a copy: changing the caller's slice changes nothing
	body2[0] = '['
	other := s.open(t)
	read, err = other.GetSettings(ctx)
	wantErr(t, "GetSettings on another instance", err, nil)
	want2.Body = []byte(`{"policy":{"enabled":"all"}}`)
	mustEqual(t, "GetSettings on another instance", read, want2)
	if v, err := other.SettingsVersion(ctx); err != nil || v != 2 {
		t.Fatalf("SettingsVersion on another instance = %d, %v; want 2", v, err)
	}
}

// settingsConcurrent: of concurrent saves from one version, on two
// instances, exactly one succeeds (the others: ErrConflict); the stored
// body is the winner's and only the winner's event is in the audit.
func (s *suite) settingsConcurrent(t *testing.T) {
	stores := []store.Store{s.open(t), s.open(t)}
	ctx, now := ctxT(t), base()
	for round := range rounds {
		prev, err := stores[0].SettingsVersion(ctx)
		wantErr(t, "SettingsVersion", err, nil)
		mustEqual(t, "version before the round", prev, round)
		typ := fmt.Sprintf("admin.settings_saved.%d", round)
		errs := race(concurrency, stores, func(st store.Store, i int) error {
			_, err := st.SaveSettings(ctx, prev, store.StoredSettings{Body: []byte(fmt.Sprintf(`{"by":%d}`, i)), UpdatedAt: now, UpdatedBy: "acct-admin"},
				[]store.AuditEvent{{Time: now, Type: typ, Outcome: fmt.Sprint(i)}})
			return err
		})
		n := tally(t, errs, store.ErrConflict)
		if n[nil] != 1 || n[store.ErrConflict] != concurrency-1 {
			t.Fatalf("round %d: %d saves succeeded and %d conflicted, want 1 and %d", round, n[nil], n[store.ErrConflict], concurrency-1)
		}
		winner := slices.Index(errs, nil)
		got, err := stores[1].GetSettings(ctx)
		wantErr(t, "GetSettings", err, nil)
		mustEqual(t, "settings after the round", got, store.StoredSettings{Version: prev + 1, Body: []byte(fmt.Sprintf(`{"by":%d}`, winner)),
			UpdatedAt: now, UpdatedBy: "acct-admin"})
		evs, err := stores[1].ListAudit(ctx, store.AuditQuery{Type: typ, Limit: store.MaxAuditLimit})
		wantErr(t, "ListAudit", err, nil)
		if len(evs) != 1 || evs[0].Outcome != fmt.Sprint(winner) {
			t.Fatalf("round %d: events %+v, want only the winner's (%d)", round, evs, winner)
		}
	}
}

// ---- audit filters and paging ----

// auditFilters: Outcome and TypePrefix select alone and with the other
// filters; a prefix is a prefix byte for byte (LIKE's wildcards and a
// collation's ignored punctuation mean nothing), the empty prefix does not
// filter, and one that is not UTF-8 is ErrInvalid.
func (s *suite) auditFilters(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	var all []store.AuditEvent
	add := func(sec int, typ, account, outcome string) store.AuditEvent {
		e := store.AuditEvent{Time: now.Add(time.Duration(sec) * time.Second), Type: typ, AccountID: account, Outcome: outcome}
		wantErr(t, "AppendAudit", st.AppendAudit(ctx, e), nil)
		all = append(all, e)
		return e
	}
	started := add(1, "reset.started", "acct-a", "eligible")
	gateFail := add(2, "reset.gate", "acct-a", "failed")
	gateB := add(3, "reset.gate", "acct-b", "failed")
	completed := add(4, "reset.completed", "acct-a", "success")
	resetx := add(5, "resetx", "acct-a", "failed")     // starts with "reset", not "reset."
	reset := add(6, "reset", "acct-a", "failed")       // shorter than "reset."
	resetDash := add(7, "reset-gate", "acct-a", "ok")  // '-' sorts before '.'
	resetSlash := add(8, "reset/gate", "acct-a", "ok") // '/' right after '.'
	regAdded := add(9, "registration.method_added", "acct-b", "success")
	pct := add(10, "50%.done", "acct-c", "ok")
	pctx := add(11, "50x.done", "acct-c", "ok")
	uni := add(12, "é.x", "acct-c", "ok")
	maxRune := add(13, "z\U0010FFFF.x", "acct-c", "ok")
	after := add(14, "{", "acct-c", "ok")

	list := func(q store.AuditQuery, want ...store.AuditEvent) {
		t.Helper()
		got, err := st.ListAudit(ctx, q)
		wantErr(t, "ListAudit", err, nil)
		if want == nil {
			want = []store.AuditEvent{}
		}
		mustEqual(t, fmt.Sprintf("ListAudit(%+v)", q), noSeq(t, got), want)
	}
	list(store.AuditQuery{TypePrefix: "reset."}, completed, gateB, gateFail, started)
	list(store.AuditQuery{TypePrefix: "reset"}, resetSlash, resetDash, reset, resetx, completed, gateB, gateFail, started)
	list(store.AuditQuery{TypePrefix: "reset.gate"}, gateB, gateFail)
	list(store.AuditQuery{TypePrefix: "reset.gatex"})
	list(store.AuditQuery{TypePrefix: "re_et."})
	list(store.AuditQuery{TypePrefix: "re%"})
	list(store.AuditQuery{TypePrefix: "50%"}, pct)
	list(store.AuditQuery{TypePrefix: "50"}, pctx, pct)
	list(store.AuditQuery{TypePrefix: "é"}, uni)
	list(store.AuditQuery{TypePrefix: "z\U0010FFFF"}, maxRune)
	list(store.AuditQuery{TypePrefix: "z"}, maxRune)
	list(store.AuditQuery{TypePrefix: "{"}, after)
	list(store.AuditQuery{TypePrefix: "reg"}, regAdded)
	list(store.AuditQuery{Outcome: "failed"}, reset, resetx, gateB, gateFail)
	list(store.AuditQuery{Outcome: "failed", AccountID: "acct-a", TypePrefix: "reset."}, gateFail)
	list(store.AuditQuery{Outcome: "failed", TypePrefix: "reset.", Since: gateB.Time, Until: completed.Time}, gateB)
	list(store.AuditQuery{Type: "reset.gate", TypePrefix: "reset.", Outcome: "failed", AccountID: "acct-b"}, gateB)
	list(store.AuditQuery{Type: "reset.gate", TypePrefix: "registration."})
	list(store.AuditQuery{Outcome: "nothing"})
	got, err := st.ListAudit(ctx, store.AuditQuery{TypePrefix: ""})
	wantErr(t, "ListAudit", err, nil)
	mustEqual(t, "events with the empty prefix", len(got), len(all))
	_, err = st.ListAudit(ctx, store.AuditQuery{TypePrefix: "reset\xff"})
	wantErr(t, "ListAudit with a prefix not UTF-8", err, store.ErrInvalid)
}

// auditPaging: Seq grows with the order of appends; pages of ListAudit
// each from the last Seq of the one before (BeforeSeq) cover every event
// exactly once, in ListAudit's order, also where times do not follow the
// order of appends and when events are appended between pages, with a
// filter or without; a Seq that no event has any more gives no events.
func (s *suite) auditPaging(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	const n = 57
	for i := range n {
		// times in three runs that overlap, with ties: not in append order
		sec := (i*7)%20 + i/20
		acct := []string{"acct-a", "acct-b", "acct-c"}[i%3]
		e := store.AuditEvent{Time: now.Add(time.Duration(sec) * time.Second), Type: "reset.started", AccountID: acct,
			Outcome: "ok", Details: map[string]string{"i": fmt.Sprint(i)}}
		wantErr(t, "AppendAudit", st.AppendAudit(ctx, e), nil)
	}
	full, err := st.ListAudit(ctx, store.AuditQuery{Limit: store.MaxAuditLimit})
	wantErr(t, "ListAudit", err, nil)
	mustEqual(t, "events", len(full), n)
	bySeq := slices.Clone(full)
	slices.SortFunc(bySeq, func(a, b store.AuditEvent) int { return int(a.Seq - b.Seq) })
	for i, e := range bySeq {
		if e.Details["i"] != fmt.Sprint(i) {
			t.Fatalf("events in Seq order: %d-th is event %s, want %d (Seq grows with appends)", i, e.Details["i"], i)
		}
	}
	noSeq(t, full)

	page := func(q store.AuditQuery, size int, between func()) []store.AuditEvent {
		t.Helper()
		var out []store.AuditEvent
		q.Limit = size
		for range n + 2 {
			got, err := st.ListAudit(ctx, q)
			wantErr(t, "ListAudit page", err, nil)
			if len(got) == 0 {
				return out
			}
			if len(got) > size {
				t.Fatalf("page of %d events, limit %d", len(got), size)
			}
			out = append(out, got...)
			q.BeforeSeq = got[len(got)-1].Seq
			if between != nil {
				between()
			}
		}
		t.Fatalf("paging did not end")
		return nil
	}
	for _, size := range []int{1, 4, 10, n, n + 1} {
		mustEqual(t, fmt.Sprintf("pages of %d", size), page(store.AuditQuery{}, size, nil), full)
	}
	var fullB []store.AuditEvent
	for _, e := range full {
		if e.AccountID == "acct-b" {
			fullB = append(fullB, e)
		}
	}
	mustEqual(t, "pages of one account's events", page(store.AuditQuery{AccountID: "acct-b"}, 3, nil), fullB)

	// newer events appended between pages are not in the later pages
	extra := 0
	got := page(store.AuditQuery{TypePrefix: "reset."}, 5, func() {
		extra++
		wantErr(t, "AppendAudit", st.AppendAudit(ctx, store.AuditEvent{Time: now.Add(time.Hour), Type: "reset.completed"}), nil)
	})
	mustEqual(t, "pages with appends between them", got, full)
	if extra == 0 {
		t.Fatal("nothing appended between pages")
	}

	last := full[len(full)-1]
	got, err = st.ListAudit(ctx, store.AuditQuery{BeforeSeq: last.Seq})
	wantErr(t, "ListAudit after the oldest", err, nil)
	mustEqual(t, "events after the oldest", len(got), 0)
	got, err = st.ListAudit(ctx, store.AuditQuery{BeforeSeq: bySeq[n-1].Seq + 1000})
	wantErr(t, "ListAudit after a Seq no event has", err, nil)
	mustEqual(t, "events after a Seq no event has", len(got), 0)
}
