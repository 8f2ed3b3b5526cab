package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/store"
)

// methodsAddWithin: AddMethodWithin refuses past the limit, counts
// unverified methods too, and under concurrency (one instance or two)
// lets exactly as many through as the limit leaves room for.
func (s *suite) methodsAddWithin(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	m := func(acct, id string) store.Method {
		return store.Method{ID: id, AccountID: acct, Type: store.MethodEmail, Address: id + "@x.example", CreatedAt: now}
	}
	wantErr(t, "AddMethodWithin", st.AddMethodWithin(ctx, m("a", "1"), 2), nil)
	wantErr(t, "AddMethodWithin", st.AddMethodWithin(ctx, m("a", "2"), 2), nil)
	wantErr(t, "AddMethodWithin over the limit", st.AddMethodWithin(ctx, m("a", "3"), 2), store.ErrLimit)
	wantErr(t, "AddMethodWithin another account", st.AddMethodWithin(ctx, m("b", "1"), 2), nil)
	wantErr(t, "AddMethodWithin duplicate id", st.AddMethodWithin(ctx, m("b", "1"), 5), store.ErrConflict)
	wantErr(t, "AddMethodWithin limit 0", st.AddMethodWithin(ctx, m("c", "1"), 0), store.ErrInvalid)
	ms, err := st.ListMethods(ctx, "a")
	wantErr(t, "ListMethods", err, nil)
	if len(ms) != 2 {
		t.Fatalf("%d methods, want 2", len(ms))
	}
	for _, instances := range []int{1, 2} {
		t.Run(fmt.Sprintf("instances=%d", instances), func(t *testing.T) {
			stores := []store.Store{s.open(t)}
			if instances == 2 {
				stores = append(stores, s.open(t))
			}
			const limit = 5
			for round := range rounds {
				acct := fmt.Sprintf("race-%d", round)
				// one already there: room for limit-1 more
				wantErr(t, "AddMethodWithin", stores[0].AddMethodWithin(ctx, m(acct, "first"), limit), nil)
				errs := race(concurrency, stores, func(st store.Store, i int) error {
					return st.AddMethodWithin(ctx, m(acct, fmt.Sprint("m", i)), limit)
				})
				got := tally(t, errs, store.ErrLimit)
				if got[nil] != limit-1 || got[store.ErrLimit] != concurrency-limit+1 {
					t.Fatalf("round %d: %d added, %d refused; want %d and %d", round, got[nil], got[store.ErrLimit], limit-1, concurrency-limit+1)
				}
				ms, err := stores[0].ListMethods(ctx, acct)
				wantErr(t, "ListMethods", err, nil)
				if len(ms) != limit {
					t.Fatalf("round %d: %d methods stored, want %d", round, len(ms), limit)
				}
			}
		})
	}
}

// heldNotices: HoldNotice merges per account; TakeDueNotices returns only
// due notices, each once, and removes them; the data survives a restart.
func (s *suite) heldNotices(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	due := now.Add(time.Hour)
	hold := func(n store.HeldNotice) {
		t.Helper()
		wantErr(t, "HoldNotice", st.HoldNotice(ctx, n), nil)
	}
	wantErr(t, "HoldNotice without events", st.HoldNotice(ctx, store.HeldNotice{AccountID: "a"}), store.ErrInvalid)
	wantErr(t, "HoldNotice without account", st.HoldNotice(ctx, store.HeldNotice{Events: []string{"x"}}), store.ErrInvalid)
	_, err := st.TakeDueNotices(ctx, now, 0)
	wantErr(t, "TakeDueNotices limit 0", err, store.ErrInvalid)

	hold(store.HeldNotice{AccountID: "a", Events: []string{"method_added"}, SMSOnly: true, Data: map[string]string{"dn": "uid=a"},
		HeldAt: now, DueAt: due})
	hold(store.HeldNotice{AccountID: "a", Events: []string{"method_removed", "method_added"}, SMSOnly: false,
		HeldAt: now.Add(time.Minute), DueAt: due.Add(time.Hour)})
	hold(store.HeldNotice{AccountID: "b", Events: []string{"method_added"}, SMSOnly: true, HeldAt: now, DueAt: due.Add(-time.Minute)})
	hold(store.HeldNotice{AccountID: "c", Events: []string{"unlocked"}, HeldAt: now, DueAt: due.Add(2 * time.Hour)})

	got, err := st.TakeDueNotices(ctx, now.Add(30*time.Minute), 10)
	wantErr(t, "TakeDueNotices before due", err, nil)
	if len(got) != 0 {
		t.Fatalf("took %d notices before they were due", len(got))
	}
	// a restart keeps them (and their sealed data)
	st.Close()
	st = s.open(t)
	got, err = st.TakeDueNotices(ctx, due, 10)
	wantErr(t, "TakeDueNotices", err, nil)
	want := []store.HeldNotice{
		{AccountID: "b", Events: []string{"method_added"}, SMSOnly: true, HeldAt: now, DueAt: due.Add(-time.Minute)},
		{AccountID: "a", Events: []string{"method_added", "method_removed"}, Data: map[string]string{"dn": "uid=a"}, HeldAt: now, DueAt: due},
	}
	mustEqual(t, "due notices", got, want)
	got, err = st.TakeDueNotices(ctx, due, 10)
	wantErr(t, "TakeDueNotices again", err, nil)
	if len(got) != 0 {
		t.Fatalf("taken twice: %+v", got)
	}
	// a notice held after the take starts afresh
	hold(store.HeldNotice{AccountID: "a", Events: []string{"partial_failure"}, HeldAt: due, DueAt: due.Add(time.Hour)})
	got, err = st.TakeDueNotices(ctx, due.Add(3*time.Hour), 1)
	wantErr(t, "TakeDueNotices limit 1", err, nil)
	mustEqual(t, "first due", got, []store.HeldNotice{{AccountID: "a", Events: []string{"partial_failure"}, HeldAt: due, DueAt: due.Add(time.Hour)}})

	// concurrent takers (two instances) share the notices out: each once
	stores := []store.Store{st, s.open(t)}
	var accts []string
	for i := range 3 * concurrency {
		a := fmt.Sprint("many-", i)
		accts = append(accts, a)
		hold(store.HeldNotice{AccountID: a, Events: []string{"method_added"}, HeldAt: now, DueAt: due})
	}
	taken := make([][]store.HeldNotice, concurrency)
	errs := race(concurrency, stores, func(st store.Store, i int) error {
		var err error
		taken[i], err = st.TakeDueNotices(ctx, due.Add(3*time.Hour), 4)
		return err
	})
	tally(t, errs)
	var seen []string
	for _, ns := range taken {
		for _, n := range ns {
			seen = append(seen, n.AccountID)
		}
	}
	rest, err := st.TakeDueNotices(ctx, due.Add(3*time.Hour), 1000)
	wantErr(t, "TakeDueNotices rest", err, nil)
	for _, n := range rest {
		seen = append(seen, n.AccountID)
	}
	accts = append(accts, "c")
	slices.Sort(seen)
	slices.Sort(accts)
	mustEqual(t, "accounts taken", seen, accts)
}
