package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/store"
)

// startRecorder is st's batched writes of a start (part of store.Store).
func startRecorder(_ *testing.T, st store.Store) store.StartRecorder { return st }

func (s *suite) startHitMany(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	r := startRecorder(t, st)
	hits := []store.CounterHit{{Key: "start:total", Window: time.Hour}, {Key: "start-ip:192.0.2.7", Window: time.Minute}}
	for round := 1; round <= 3; round++ {
		got, err := r.HitMany(ctx, hits, now)
		wantErr(t, "HitMany", err, nil)
		mustEqual(t, "HitMany counts", got, []int{round, round})
	}
	// the same counters as Hit and Count, each in its own window
	n, err := st.Hit(ctx, "start-ip:192.0.2.7", time.Minute, now)
	wantErr(t, "Hit", err, nil)
	mustEqual(t, "Hit after HitMany", n, 4)
	n, err = st.Count(ctx, "start:total", time.Hour, now)
	wantErr(t, "Count", err, nil)
	mustEqual(t, "Count after HitMany", n, 3)
	n, err = st.Count(ctx, "start:total", time.Minute, now)
	wantErr(t, "Count", err, nil)
	mustEqual(t, "Count of another window", n, 0)
	// one invalid hit: none is counted
	_, err = r.HitMany(ctx, []store.CounterHit{{Key: "start:total", Window: time.Hour}, {Key: "x", Window: 0}}, now)
	wantErr(t, "HitMany with a zero window", err, store.ErrInvalid)
	n, err = st.Count(ctx, "start:total", time.Hour, now)
	wantErr(t, "Count", err, nil)
	mustEqual(t, "Count after a refused HitMany", n, 3)
	got, err := r.HitMany(ctx, nil, now)
	wantErr(t, "HitMany of nothing", err, nil)
	mustEqual(t, "HitMany of nothing", len(got), 0)
}

// startHitManyConcurrent: every counter of concurrent batches (in two
// processes' stores, naming the keys in either order) counts 1..N exactly.
func (s *suite) startHitManyConcurrent(t *testing.T) {
	stores := []store.Store{s.open(t), s.open(t)}
	ctx, now := ctxT(t), base()
	a, b := store.CounterHit{Key: "start:total", Window: time.Hour}, store.CounterHit{Key: "start-ip:198.51.100.1", Window: time.Hour}
	var mu sync.Mutex
	var gotA, gotB []int
	errs := race(concurrency, stores, func(st store.Store, i int) error {
		r := startRecorder(t, st)
		hits, ia, ib := []store.CounterHit{a, b}, 0, 1
		if i%2 == 1 {
			hits, ia, ib = []store.CounterHit{b, a}, 1, 0
		}
		got, err := r.HitMany(ctx, hits, now)
		if err != nil {
			return err
		}
		mu.Lock()
		gotA, gotB = append(gotA, got[ia]), append(gotB, got[ib])
		mu.Unlock()
		return nil
	})
	tally(t, errs)
	want := make([]int, concurrency)
	for i := range want {
		want[i] = i + 1
	}
	slices.Sort(gotA)
	slices.Sort(gotB)
	mustEqual(t, "concurrent HitMany counts of the first key", gotA, want)
	mustEqual(t, "concurrent HitMany counts of the second key", gotB, want)
}

// startHitManyGuards: a hit with a Limit is a guard; once a guard is over
// its Limit the hits after it are not counted, so a request over its own
// budget spends none of the next ones (issue 17, WB-5).
func (s *suite) startHitManyGuards(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	r := startRecorder(t, st)
	ip := store.CounterHit{Key: "start-ip:2001:db8:1:100::/56", Window: time.Hour, Limit: 2}
	site := store.CounterHit{Key: "start-site:2001:db8:1::/48", Window: time.Hour, Limit: 3}
	total := store.CounterHit{Key: "start:total", Window: time.Hour}
	for round, want := range [][]int{{1, 1, 1}, {2, 2, 2}, {3, 0, 0}, {4, 0, 0}} {
		got, err := r.HitMany(ctx, []store.CounterHit{ip, site, total}, now)
		wantErr(t, "HitMany", err, nil)
		mustEqual(t, fmt.Sprintf("HitMany counts, round %d", round+1), got, want)
	}
	// another address of the site: its own budget is fresh, the site has
	// one left, and only requests within both reach the total
	other := store.CounterHit{Key: "start-ip:2001:db8:1:200::/56", Window: time.Hour, Limit: 2}
	for round, want := range [][]int{{1, 3, 3}, {2, 4, 0}, {3, 0, 0}} {
		got, err := r.HitMany(ctx, []store.CounterHit{other, site, total}, now)
		wantErr(t, "HitMany", err, nil)
		mustEqual(t, fmt.Sprintf("another address, round %d", round+1), got, want)
	}
	for key, want := range map[string]int{"start:total": 3, "start-site:2001:db8:1::/48": 4, "start-ip:2001:db8:1:100::/56": 4} {
		n, err := st.Count(ctx, key, time.Hour, now)
		wantErr(t, "Count", err, nil)
		mustEqual(t, "Count of "+key, n, want)
	}
	// a guard after the other hits spares nothing before it
	got, err := r.HitMany(ctx, []store.CounterHit{total, ip}, now)
	wantErr(t, "HitMany", err, nil)
	mustEqual(t, "a guard named last", got, []int{4, 5})
}

// startHitManyGuardsConcurrent: of concurrent batches on two processes'
// stores guarded by one key with Limit L, exactly L count the key after it.
func (s *suite) startHitManyGuardsConcurrent(t *testing.T) {
	stores := []store.Store{s.open(t), s.open(t)}
	ctx, now := ctxT(t), base()
	const limit = 7
	guard := store.CounterHit{Key: "start-ip:198.51.100.2", Window: time.Hour, Limit: limit}
	total := store.CounterHit{Key: "start:total", Window: time.Hour}
	var mu sync.Mutex
	var counted []int
	errs := race(concurrency, stores, func(st store.Store, i int) error {
		got, err := startRecorder(t, st).HitMany(ctx, []store.CounterHit{guard, total}, now)
		if err != nil {
			return err
		}
		if got[1] > 0 {
			mu.Lock()
			counted = append(counted, got[1])
			mu.Unlock()
		}
		return nil
	})
	tally(t, errs)
	slices.Sort(counted)
	mustEqual(t, "the other key's counts", counted, []int{1, 2, 3, 4, 5, 6, 7})
	n, err := stores[0].Count(ctx, "start-ip:198.51.100.2", time.Hour, now)
	wantErr(t, "Count", err, nil)
	mustEqual(t, "the guard's count", n, concurrency)
}

func (s *suite) startHitCreateFlow(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	r := startRecorder(t, st)
	h := store.CounterHit{Key: "start:acct:a", Window: time.Hour}
	ev := func(typ, outcome string) store.AuditEvent {
		return store.AuditEvent{Time: now, Type: typ, RequestID: "req-1", ClientIP: "192.0.2.7", AccountID: "acct-a", Outcome: outcome}
	}
	f := newFlow("acct-a", now)
	f.Data = map[string]string{"offered": `[{"i":"m1"}]`}
	var seen int
	n, err := r.HitCreateFlow(ctx, h, now, func(c int) (store.Flow, []store.AuditEvent) {
		seen = c
		return f, []store.AuditEvent{ev("blocked", "start_budget"), ev("reset.started", "eligible")}
	})
	wantErr(t, "HitCreateFlow", err, nil)
	mustEqual(t, "HitCreateFlow count", n, 1)
	mustEqual(t, "count given to pick", seen, 1)
	got, err := st.GetFlow(ctx, f.ID, now)
	wantErr(t, "GetFlow", err, nil)
	mustEqual(t, "flow account", got.AccountID, "acct-a")
	mustEqual(t, "flow data", got.Data, f.Data)
	evs, err := st.ListAudit(ctx, store.AuditQuery{AccountID: "acct-a"})
	wantErr(t, "ListAudit", err, nil)
	mustEqual(t, "events, the later appended first", []string{evs[0].Type, evs[1].Type}, []string{"reset.started", "blocked"})
	mustEqual(t, "events", len(evs), 2)

	// a second start: the count goes on
	f2 := newFlow("", now)
	n, err = r.HitCreateFlow(ctx, h, now, func(int) (store.Flow, []store.AuditEvent) { return f2, nil })
	wantErr(t, "HitCreateFlow", err, nil)
	mustEqual(t, "second count", n, 2)

	// a conflicting flow ID or an invalid event: nothing is written
	for _, tc := range []struct {
		name   string
		flow   store.Flow
		events []store.AuditEvent
		want   error
	}{
		{"existing flow ID", f, []store.AuditEvent{ev("reset.started", "eligible")}, store.ErrConflict},
		{"event without type", newFlow("acct-a", now), []store.AuditEvent{{Time: now}}, store.ErrInvalid},
		{"flow without kind", store.Flow{ID: newID(), CreatedAt: now, ExpiresAt: now.Add(time.Minute)}, nil, store.ErrInvalid},
	} {
		_, err := r.HitCreateFlow(ctx, h, now, func(int) (store.Flow, []store.AuditEvent) { return tc.flow, tc.events })
		wantErr(t, "HitCreateFlow with "+tc.name, err, tc.want)
		c, err := st.Count(ctx, h.Key, h.Window, now)
		wantErr(t, "Count", err, nil)
		mustEqual(t, "count after HitCreateFlow with "+tc.name, c, 2)
		if tc.name != "existing flow ID" {
			_, err := st.GetFlow(ctx, tc.flow.ID, now)
			wantErr(t, "GetFlow after HitCreateFlow with "+tc.name, err, store.ErrNotFound)
		}
	}
	evs, err = st.ListAudit(ctx, store.AuditQuery{AccountID: "acct-a"})
	wantErr(t, "ListAudit", err, nil)
	mustEqual(t, "events after refused HitCreateFlow", len(evs), 2)
}

// startHitCreateFlowConcurrent: concurrent starts for one account key see
// the counts 1..N exactly (a budget is exact), and each creates its flow.
func (s *suite) startHitCreateFlowConcurrent(t *testing.T) {
	stores := []store.Store{s.open(t), s.open(t)}
	ctx, now := ctxT(t), base()
	h := store.CounterHit{Key: "start:acct:b", Window: time.Hour}
	var mu sync.Mutex
	var got []int
	ids := make([]string, concurrency)
	errs := race(concurrency, stores, func(st store.Store, i int) error {
		f := newFlow("acct-b", now)
		ids[i] = f.ID
		n, err := startRecorder(t, st).HitCreateFlow(ctx, h, now, func(c int) (store.Flow, []store.AuditEvent) {
			f.Data = map[string]string{"count": fmt.Sprint(c)}
			return f, []store.AuditEvent{{Time: now, Type: "reset.started", AccountID: "acct-b", Outcome: "eligible"}}
		})
		mu.Lock()
		got = append(got, n)
		mu.Unlock()
		return err
	})
	tally(t, errs)
	slices.Sort(got)
	want := make([]int, concurrency)
	for i := range want {
		want[i] = i + 1
	}
	mustEqual(t, "concurrent HitCreateFlow counts", got, want)
	for _, id := range ids {
		if _, err := stores[0].GetFlow(ctx, id, now); err != nil {
			t.Fatalf("GetFlow of a concurrently created flow: %v", err)
		}
	}
	evs, err := stores[1].ListAudit(ctx, store.AuditQuery{AccountID: "acct-b", Limit: 100})
	wantErr(t, "ListAudit", err, nil)
	mustEqual(t, "events of concurrent starts", len(evs), concurrency)
}
