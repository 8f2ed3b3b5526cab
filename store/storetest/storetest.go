// Package storetest is the conformance suite every store.Store
// implementation must pass (in the manner of dex's storage/conformance).
//
// An implementation's test calls RunConformance with a function that opens
// its store:
//
//	func TestConformance(t *testing.T) {
//		storetest.RunConformance(t, openForTest, storetest.WithRawBytes(rawBytes))
//	}
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/store"
)

// Opener opens the store under test for t.
//
// The first call for a given t must return a store over empty storage that
// belongs to t alone. Every later call with the same t must open the SAME
// storage again, as another gateway instance would: the suite calls it
// after Close to simulate a restart, and while the first store is still
// open to simulate two processes sharing one database. Opener registers the
// cleanup (t.Cleanup) for what it opens; the suite may call Close earlier,
// so Close must tolerate being called twice.
type Opener func(t *testing.T) store.Store

// Option configures RunConformance.
type Option func(*config)

type config struct {
	rawBytes func(t *testing.T, s store.Store) []byte
}

// WithRawBytes enables the "nothing sensitive in plaintext at rest" test.
// f must return every byte the implementation keeps at rest for s (for a
// file database: the database file and any journal, after a checkpoint).
// Without this option that test is skipped.
func WithRawBytes(f func(t *testing.T, s store.Store) []byte) Option {
	return func(c *config) { c.rawBytes = f }
}

// RunConformance runs the whole suite as subtests of t.
func RunConformance(t *testing.T, open Opener, opts ...Option) {
	var c config
	for _, o := range opts {
		o(&c)
	}
	s := &suite{open: open, cfg: c}
	tests := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"Methods/AddGetList", s.methodsAddGetList},
		{"Methods/Secret", s.methodsSecret},
		{"Methods/Duplicate", s.methodsDuplicate},
		{"Methods/Invalid", s.methodsInvalid},
		{"Methods/Verify", s.methodsVerify},
		{"Methods/Delete", s.methodsDelete},
		{"Methods/CountAccountsByAddress", s.countAccountsByAddress},
		{"Methods/Sample", s.methodsSample},
		{"Methods/SwapAddress", s.methodsSwapAddress},
		{"Methods/SwapAddressConcurrent", s.methodsSwapAddressConcurrent},
		{"Methods/SwapAddressAtRest", s.methodsSwapAddressAtRest},
		{"Methods/RecordIndex", s.methodsRecordIndex},
		{"Methods/AddWithin", s.methodsAddWithin},
		{"HeldNotices", s.heldNotices},
		{"Flows/CreateGet", s.flowsCreateGet},
		{"Flows/MissingAndInvalid", s.flowsMissingAndInvalid},
		{"Flows/Expiry", s.flowsExpiry},
		{"Flows/Update", s.flowsUpdate},
		{"Flows/Rotate", s.flowsRotate},
		{"Flows/Delete", s.flowsDelete},
		{"Flows/DeleteForAccount", s.flowsDeleteForAccount},
		{"Flows/Restart", s.flowsRestart},
		{"Flows/ConcurrentUpdate", s.flowsConcurrentUpdate},
		{"Flows/ConcurrentRotate", s.flowsConcurrentRotate},
		{"Codes/Redeem", s.codesRedeem},
		{"Codes/Reissue", s.codesReissue},
		{"Codes/MaxTries", s.codesMaxTries},
		{"Codes/Expiry", s.codesExpiry},
		{"Codes/Binding", s.codesBinding},
		{"Codes/IssueChecks", s.codesIssueChecks},
		{"Codes/ConcurrentRedeem", s.codesConcurrentRedeem},
		{"Codes/ConcurrentWrongTries", s.codesConcurrentWrongTries},
		{"Sessions", s.sessions},
		{"Counters", s.counters},
		{"Counters/Concurrent", s.countersConcurrent},
		{"Counters/Reset", s.countersReset},
		{"Counters/Unhit", s.countersUnhit},
		{"Audit", s.audit},
		{"Audit/Filters", s.auditFilters},
		{"Audit/Paging", s.auditPaging},
		{"Settings", s.settings},
		{"Settings/Concurrent", s.settingsConcurrent},
		{"StartRecorder/HitMany", s.startHitMany},
		{"StartRecorder/HitManyConcurrent", s.startHitManyConcurrent},
		{"StartRecorder/HitManyGuards", s.startHitManyGuards},
		{"StartRecorder/HitManyGuardsConcurrent", s.startHitManyGuardsConcurrent},
		{"StartRecorder/HitCreateFlow", s.startHitCreateFlow},
		{"StartRecorder/HitCreateFlowConcurrent", s.startHitCreateFlowConcurrent},
		{"Purge", s.purge},
		{"PurgeAudit", s.purgeAudit},
		{"Ping", s.ping},
		{"NoPlaintextAtRest", s.noPlaintextAtRest},
		{"Outbox/Claim", s.outboxClaim},
		{"Outbox/NextDue", s.outboxNextDue},
		{"Outbox/FinishAudits", s.outboxFinishAudits},
		{"Outbox/IssueCode", s.outboxIssueCode},
		{"Outbox/AfterPasswordWrite", s.outboxAfterPasswordWrite},
		{"Outbox/ConcurrentClaims", s.outboxConcurrentClaims},
		{"Outbox/AtRest", s.outboxAtRest},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.fn)
	}
}

type suite struct {
	open Opener
	cfg  config
}

// ---- helpers ----

const (
	concurrency = 20 // callers in each concurrency test
	rounds      = 10 // repetitions of the exactly-one-winner tests
)

// newID returns a 128-bit random hex ID, like the gateway makes.
func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// base returns a current time at the store's precision (UTC, microseconds).
func base() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func ctxT(t *testing.T) context.Context { return t.Context() }

// wantErr fails unless errors.Is(err, want) (want nil: err must be nil),
// and fails if the error text contains any of the secrets.
func wantErr(t *testing.T, what string, err, want error, secrets ...string) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("%s: unexpected error: %v", what, err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
	if err != nil {
		for _, sec := range secrets {
			if sec != "" && strings.Contains(err.Error(), sec) {
				t.Fatalf("%s: error text %q contains a secret", what, err.Error())
			}
		}
	}
}

func mustEqual(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got: %+v\nwant: %+v", what, got, want)
	}
}

func newFlow(account string, now time.Time) store.Flow {
	return store.Flow{
		ID:        newID(),
		Kind:      store.FlowReset,
		AccountID: account,
		Required:  1,
		CreatedAt: now,
		ExpiresAt: now.Add(15 * time.Minute),
	}
}

func mustCreateFlow(t *testing.T, s store.Store, f store.Flow) store.Flow {
	t.Helper()
	if err := s.CreateFlow(ctxT(t), f); err != nil {
		t.Fatalf("CreateFlow: %v", err)
	}
	return f
}

func code(f store.Flow, method string, hash string, now time.Time) store.Code {
	return store.Code{
		FlowID:    f.ID,
		Purpose:   "reset",
		MethodID:  method,
		AccountID: f.AccountID,
		Hash:      []byte(hash),
		ExpiresAt: now.Add(10 * time.Minute),
	}
}

func mustIssue(t *testing.T, s store.Store, c store.Code) {
	t.Helper()
	if err := s.IssueCode(ctxT(t), c); err != nil {
		t.Fatalf("IssueCode: %v", err)
	}
}

// race runs fn concurrently n times, spread over the stores, starting all
// at once, and returns the errors.
func race(n int, stores []store.Store, fn func(s store.Store, i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn(stores[i%len(stores)], i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// tally counts errors by errors.Is class; unexpected errors fail the test.
func tally(t *testing.T, errs []error, classes ...error) map[error]int {
	t.Helper()
	out := map[error]int{}
	for _, err := range errs {
		if err == nil {
			out[nil]++
			continue
		}
		found := false
		for _, c := range classes {
			if errors.Is(err, c) {
				out[c]++
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("unexpected error under concurrency: %v", err)
		}
	}
	return out
}

// ---- methods ----

func (s *suite) methodsAddGetList(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	m1 := store.Method{ID: "m1", AccountID: "acct-a", Type: store.MethodEmail, Address: "Alice.Person@Example.org",
		CreatedAt: now}
	m2 := store.Method{ID: "m2", AccountID: "acct-a", Type: store.MethodSMS, Address: "+44 7700 900123",
		Verified: true, CreatedAt: now.Add(-time.Hour), VerifiedAt: now.Add(-time.Minute)}
	m3 := store.Method{ID: "m1", AccountID: "acct-b", Type: store.MethodEmail, Address: "bob@example.org",
		CreatedAt: now}
	for _, m := range []store.Method{m1, m2, m3} {
		wantErr(t, "AddMethod", st.AddMethod(ctx, m), nil)
	}

	got, err := st.GetMethod(ctx, "acct-a", "m1")
	wantErr(t, "GetMethod", err, nil)
	mustEqual(t, "GetMethod m1", got, m1)
	got, err = st.GetMethod(ctx, "acct-a", "m2")
	wantErr(t, "GetMethod", err, nil)
	mustEqual(t, "GetMethod m2", got, m2)

	list, err := st.ListMethods(ctx, "acct-a")
	wantErr(t, "ListMethods", err, nil)
	mustEqual(t, "ListMethods ordered by CreatedAt", list, []store.Method{m2, m1})

	list, err = st.ListMethods(ctx, "acct-b")
	wantErr(t, "ListMethods", err, nil)
	mustEqual(t, "ListMethods other account", list, []store.Method{m3})

	list, err = st.ListMethods(ctx, "acct-none")
	wantErr(t, "ListMethods", err, nil)
	if len(list) != 0 {
		t.Fatalf("ListMethods unknown account: got %d methods", len(list))
	}

	_, err = st.GetMethod(ctx, "acct-a", "m3")
	wantErr(t, "GetMethod missing", err, store.ErrNotFound)
	_, err = st.GetMethod(ctx, "acct-c", "m1")
	wantErr(t, "GetMethod of another account", err, store.ErrNotFound)
}

// methodsSecret: a method of a type that is no destination (an
// authenticator app, security questions, a passkey) keeps its Secret and
// reads back with it and an empty Address, in GetMethod, ListMethods and
// SampleMethods; an email or SMS method keeps its Address and no Secret.
// A method with the wrong one of the two, or both, is refused.
func (s *suite) methodsSecret(t *testing.T) {
	const (
		appSeed  = "JBSWY3DPEHPK3PXP"
		pkRecord = `{"index":"cred-s1","n":1}`
	)
	st, ctx, now := s.open(t), ctxT(t), base()
	app := store.Method{ID: "app", AccountID: "acct-a", Type: "totp", Secret: appSeed, CreatedAt: now}
	rec := store.Method{ID: "pk", AccountID: "acct-a", Type: "webauthn", Secret: pkRecord, CreatedAt: now.Add(time.Second)}
	email := store.Method{ID: "e", AccountID: "acct-a", Type: store.MethodEmail, Address: "Secret.Test@Example.org",
		CreatedAt: now.Add(2 * time.Second)}
	sms := store.Method{ID: "s", AccountID: "acct-a", Type: store.MethodSMS, Address: "+447700900321",
		CreatedAt: now.Add(3 * time.Second)}
	wantErr(t, "AddMethod", st.AddMethod(ctx, app), nil)
	wantErr(t, "AddMethodWithin", st.AddMethodWithin(ctx, rec, 10), nil)
	wantErr(t, "AddMethod", st.AddMethod(ctx, email), nil)
	wantErr(t, "AddMethodWithin", st.AddMethodWithin(ctx, sms, 10), nil)
	for _, want := range []store.Method{app, rec, email, sms} {
		got, err := st.GetMethod(ctx, "acct-a", want.ID)
		wantErr(t, "GetMethod", err, nil)
		mustEqual(t, "GetMethod "+want.Type, got, want)
	}
	list, err := st.ListMethods(ctx, "acct-a")
	wantErr(t, "ListMethods", err, nil)
	mustEqual(t, "ListMethods", list, []store.Method{app, rec, email, sms})
	for _, m := range list {
		wantErr(t, "VerifyMethod", st.VerifyMethod(ctx, "acct-a", m.ID, now), nil)
	}
	sample, err := st.SampleMethods(ctx, 10, now.Add(time.Hour))
	wantErr(t, "SampleMethods", err, nil)
	for _, m := range sample {
		if store.HasDestination(m.Type) != (m.Address != "") || store.HasDestination(m.Type) == (m.Secret != "") {
			t.Fatalf("SampleMethods: a %s method with address %q and secret %q", m.Type, m.Address, m.Secret)
		}
	}
	// a secret is swapped and counted like an address
	wantErr(t, "swap", st.SwapMethodAddress(ctx, "acct-a", "pk", rec.Secret, `{"index":"cred-s1","n":2}`), nil)
	if got, _ := st.GetMethod(ctx, "acct-a", "pk"); got.Secret != `{"index":"cred-s1","n":2}` || got.Address != "" {
		t.Fatalf("after a swap: address %q, secret %q", got.Address, got.Secret)
	}
	if n, err := st.CountAccountsByAddress(ctx, "webauthn", "cred-s1"); err != nil || n != 1 {
		t.Fatalf("CountAccountsByAddress of a secret record = %d, %v; want 1", n, err)
	}

	for _, m := range []store.Method{
		{ID: "x1", AccountID: "acct-b", Type: "totp", Address: appSeed, CreatedAt: now},
		{ID: "x2", AccountID: "acct-b", Type: "totp", Address: "x@example.org", Secret: appSeed, CreatedAt: now},
		{ID: "x3", AccountID: "acct-b", Type: "totp", CreatedAt: now},
		{ID: "x4", AccountID: "acct-b", Type: store.MethodEmail, Secret: appSeed, CreatedAt: now},
		{ID: "x5", AccountID: "acct-b", Type: store.MethodSMS, Address: "+447700900321", Secret: appSeed, CreatedAt: now},
	} {
		wantErr(t, "AddMethod "+m.ID, st.AddMethod(ctx, m), store.ErrInvalid, appSeed, "x@example.org", "+447700900321")
		wantErr(t, "AddMethodWithin "+m.ID, st.AddMethodWithin(ctx, m, 10), store.ErrInvalid, appSeed, "x@example.org", "+447700900321")
	}
	if list, _ := st.ListMethods(ctx, "acct-b"); len(list) != 0 {
		t.Fatalf("refused methods were stored: %d", len(list))
	}
}

func (s *suite) methodsDuplicate(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	m := store.Method{ID: "dup", AccountID: "acct-a", Type: store.MethodEmail, Address: "dup.secret@example.org", CreatedAt: now}
	wantErr(t, "AddMethod", st.AddMethod(ctx, m), nil)
	m2 := m
	m2.Address = "other.secret@example.org"
	wantErr(t, "AddMethod duplicate", st.AddMethod(ctx, m2), store.ErrConflict, m.Address, m2.Address)
	got, err := st.GetMethod(ctx, "acct-a", "dup")
	wantErr(t, "GetMethod", err, nil)
	mustEqual(t, "method after refused duplicate", got, m)
	m.AccountID = "acct-b"
	wantErr(t, "AddMethod same id, other account", st.AddMethod(ctx, m), nil)
}

func (s *suite) methodsInvalid(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	for _, m := range []store.Method{
		{ID: "", AccountID: "a", Type: store.MethodEmail, Address: "x@example.org", CreatedAt: now},
		{ID: "m", AccountID: "", Type: store.MethodEmail, Address: "x@example.org", CreatedAt: now},
		{ID: "m", AccountID: "a", Type: "", Address: "x@example.org", CreatedAt: now},
		{ID: "m", AccountID: "a", Type: store.MethodEmail, Address: "", CreatedAt: now},
	} {
		wantErr(t, "AddMethod with an empty field", st.AddMethod(ctx, m), store.ErrInvalid, "x@example.org")
	}
}

func (s *suite) methodsVerify(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	m := store.Method{ID: "m", AccountID: "acct-a", Type: store.MethodSMS, Address: "+447700900001", CreatedAt: now}
	wantErr(t, "AddMethod", st.AddMethod(ctx, m), nil)
	at := now.Add(time.Minute)
	wantErr(t, "VerifyMethod", st.VerifyMethod(ctx, "acct-a", "m", at), nil)
	got, err := st.GetMethod(ctx, "acct-a", "m")
	wantErr(t, "GetMethod", err, nil)
	m.Verified, m.VerifiedAt = true, at
	mustEqual(t, "verified method", got, m)

	// Re-verification (periodic re-confirmation) moves VerifiedAt.
	at2 := now.Add(48 * time.Hour)
	wantErr(t, "VerifyMethod again", st.VerifyMethod(ctx, "acct-a", "m", at2), nil)
	got, _ = st.GetMethod(ctx, "acct-a", "m")
	if !got.VerifiedAt.Equal(at2) {
		t.Fatalf("VerifiedAt after re-verification = %v, want %v", got.VerifiedAt, at2)
	}

	wantErr(t, "VerifyMethod missing", st.VerifyMethod(ctx, "acct-a", "nope", at), store.ErrNotFound)
	wantErr(t, "VerifyMethod other account", st.VerifyMethod(ctx, "acct-b", "m", at), store.ErrNotFound)
}

func (s *suite) methodsDelete(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	for _, id := range []string{"m1", "m2"} {
		wantErr(t, "AddMethod", st.AddMethod(ctx, store.Method{ID: id, AccountID: "acct-a", Type: store.MethodEmail,
			Address: id + "@example.org", CreatedAt: now}), nil)
	}
	f := mustCreateFlow(t, st, newFlow("acct-a", now))
	mustIssue(t, st, code(f, "m1", "h1", now))
	mustIssue(t, st, code(f, "m2", "h2", now))

	wantErr(t, "DeleteMethod other account", st.DeleteMethod(ctx, "acct-b", "m1"), store.ErrNotFound)
	wantErr(t, "DeleteMethod", st.DeleteMethod(ctx, "acct-a", "m1"), nil)
	_, err := st.GetMethod(ctx, "acct-a", "m1")
	wantErr(t, "GetMethod after delete", err, store.ErrNotFound)
	wantErr(t, "DeleteMethod again", st.DeleteMethod(ctx, "acct-a", "m1"), store.ErrNotFound)

	// The deleted method's outstanding code is gone; the other one lives.
	wantErr(t, "RedeemCode for deleted method",
		st.RedeemCode(ctx, f.ID, "reset", "m1", []byte("h1"), 5, now), store.ErrNotFound, f.ID)
	wantErr(t, "RedeemCode for remaining method",
		st.RedeemCode(ctx, f.ID, "reset", "m2", []byte("h2"), 5, now), nil)

	list, _ := st.ListMethods(ctx, "acct-a")
	if len(list) != 1 || list[0].ID != "m2" {
		t.Fatalf("ListMethods after delete: %+v", list)
	}
}

func (s *suite) methodsSample(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	got, err := st.SampleMethods(ctx, 10, now.Add(time.Hour))
	wantErr(t, "SampleMethods on an empty store", err, nil)
	if len(got) != 0 {
		t.Fatalf("SampleMethods on an empty store: %v", got)
	}
	add := func(account, id, typ, addr string, verifiedAt time.Time) {
		t.Helper()
		wantErr(t, "AddMethod", st.AddMethod(ctx, store.Method{ID: id, AccountID: account, Type: typ, Address: addr,
			CreatedAt: now}), nil)
		if !verifiedAt.IsZero() {
			wantErr(t, "VerifyMethod", st.VerifyMethod(ctx, account, id, verifiedAt), nil)
		}
	}
	add("old", "e1", store.MethodEmail, "old@example.org", now.Add(time.Minute))
	add("mid", "e1", store.MethodEmail, "mid@example.org", now.Add(2*time.Minute))
	add("mid", "s1", store.MethodSMS, "+447700900001", now.Add(3*time.Minute))
	add("mid", "x1", store.MethodEmail, "unverified@example.org", time.Time{})
	add("new", "s1", store.MethodSMS, "+447700900002", now.Add(4*time.Minute))
	add("none", "e1", store.MethodEmail, "none@example.org", time.Time{})

	ids := func(ms []store.Method) []string {
		var out []string
		for _, m := range ms {
			if !m.Verified {
				t.Fatalf("SampleMethods returned an unverified method %s/%s", m.AccountID, m.ID)
			}
			out = append(out, m.AccountID+"/"+m.ID+"="+m.Address)
		}
		return out
	}
	got, err = st.SampleMethods(ctx, 2, now.Add(time.Hour))
	wantErr(t, "SampleMethods", err, nil)
	mustEqual(t, "the two most recently verified accounts", ids(got),
		[]string{"mid/e1=mid@example.org", "mid/s1=+447700900001", "new/s1=+447700900002"})
	got, _ = st.SampleMethods(ctx, 100, now.Add(time.Hour))
	if len(got) != 4 {
		t.Fatalf("SampleMethods(100) = %v", ids(got))
	}
	// only what was verified before the given time
	got, _ = st.SampleMethods(ctx, 100, now.Add(3*time.Minute))
	mustEqual(t, "methods verified before a time", ids(got),
		[]string{"mid/e1=mid@example.org", "old/e1=old@example.org"})
	got, _ = st.SampleMethods(ctx, 0, now.Add(time.Hour))
	if len(got) != 0 {
		t.Fatalf("SampleMethods(0) = %v", ids(got))
	}
}

func (s *suite) countAccountsByAddress(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	add := func(account, id, typ, addr string, verified bool) {
		t.Helper()
		wantErr(t, "AddMethod", st.AddMethod(ctx, store.Method{ID: id, AccountID: account, Type: typ, Address: addr,
			CreatedAt: now}), nil)
		if verified {
			wantErr(t, "VerifyMethod", st.VerifyMethod(ctx, account, id, now), nil)
		}
	}
	count := func(typ, addr string, want int) {
		t.Helper()
		n, err := st.CountAccountsByAddress(ctx, typ, addr)
		wantErr(t, "CountAccountsByAddress", err, nil, addr)
		if n != want {
			t.Fatalf("CountAccountsByAddress(%s) = %d, want %d", typ, n, want)
		}
	}
	add("a", "e1", store.MethodEmail, "Shared@Example.org", true)
	add("a", "e2", store.MethodEmail, "shared@example.org", true) // same account twice
	add("b", "e1", store.MethodEmail, "  shared@EXAMPLE.org ", true)
	add("c", "e1", store.MethodEmail, "shared@example.org", false) // unverified
	add("a", "s1", store.MethodSMS, "+44 7700 900123", true)
	add("b", "s1", store.MethodSMS, "+447700900123", true)
	add("c", "s1", store.MethodSMS, "+44 (0)7700-900124", true)

	count(store.MethodEmail, "shared@example.org", 2)
	count(store.MethodEmail, "SHARED@example.ORG", 2)
	count(store.MethodSMS, "+447700900123", 2)
	count(store.MethodSMS, "+44 7700 900 123", 2)
	count(store.MethodSMS, "shared@example.org", 0) // other type
	count(store.MethodEmail, "+447700900123", 0)
	count(store.MethodEmail, "nobody@example.org", 0)

	wantErr(t, "VerifyMethod", st.VerifyMethod(ctx, "c", "e1", now), nil)
	count(store.MethodEmail, "shared@example.org", 3)
	wantErr(t, "DeleteMethod", st.DeleteMethod(ctx, "b", "e1"), nil)
	count(store.MethodEmail, "shared@example.org", 2)
}

// methodsSwapAddress: the compare-and-swap of a method's address succeeds
// only from the address stored, keeps everything else, and moves the
// blind index to the new address.
func (s *suite) methodsSwapAddress(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	m := store.Method{ID: "m1", AccountID: "acct-a", Type: store.MethodEmail, Address: "old@example.org", CreatedAt: now}
	wantErr(t, "AddMethod", st.AddMethod(ctx, m), nil)
	wantErr(t, "VerifyMethod", st.VerifyMethod(ctx, m.AccountID, m.ID, now.Add(time.Second)), nil)
	f := mustCreateFlow(t, st, newFlow("acct-a", now))
	mustIssue(t, st, code(f, "m1", "h", now))

	wantErr(t, "swap", st.SwapMethodAddress(ctx, "acct-a", "m1", "old@example.org", "new@example.org"), nil)
	got, err := st.GetMethod(ctx, "acct-a", "m1")
	wantErr(t, "GetMethod", err, nil)
	want := m
	want.Address, want.Verified, want.VerifiedAt = "new@example.org", true, now.Add(time.Second)
	mustEqual(t, "method after swap", got, want)
	for addr, n := range map[string]int{"old@example.org": 0, "NEW@example.org": 1} {
		if c, err := st.CountAccountsByAddress(ctx, store.MethodEmail, addr); err != nil || c != n {
			t.Fatalf("CountAccountsByAddress(%s) after swap = %d, %v; want %d", addr, c, err, n)
		}
	}
	// the method's codes are kept
	wantErr(t, "RedeemCode after swap", st.RedeemCode(ctx, f.ID, "reset", "m1", []byte("h"), 3, now), nil)

	// a stale read: the address moved on since
	wantErr(t, "stale swap", st.SwapMethodAddress(ctx, "acct-a", "m1", "old@example.org", "other@example.org"),
		store.ErrConflict, "old@example.org", "other@example.org")
	// exact comparison: a differently spelled address is not the one read
	wantErr(t, "respelled swap", st.SwapMethodAddress(ctx, "acct-a", "m1", "NEW@example.org", "other@example.org"),
		store.ErrConflict)
	if got, _ := st.GetMethod(ctx, "acct-a", "m1"); got.Address != "new@example.org" {
		t.Fatalf("a refused swap changed the address to %q", got.Address)
	}
	// another account, a missing method
	wantErr(t, "swap of another account", st.SwapMethodAddress(ctx, "acct-b", "m1", "new@example.org", "x@example.org"),
		store.ErrNotFound)
	wantErr(t, "swap of a missing method", st.SwapMethodAddress(ctx, "acct-a", "nope", "new@example.org", "x@example.org"),
		store.ErrNotFound)
	wantErr(t, "swap to empty", st.SwapMethodAddress(ctx, "acct-a", "m1", "new@example.org", ""), store.ErrInvalid)
	if got, _ := st.GetMethod(ctx, "acct-a", "m1"); got.Address != "new@example.org" {
		t.Fatalf("a refused swap changed the address to %q", got.Address)
	}
}

// methodsSwapAddressConcurrent: callers that read the same address and
// swap it at once, on one instance and on two sharing the storage:
// exactly one wins, the others get ErrConflict.
func (s *suite) methodsSwapAddressConcurrent(t *testing.T) {
	for _, instances := range []int{1, 2} {
		t.Run(fmt.Sprintf("instances=%d", instances), func(t *testing.T) {
			stores := []store.Store{s.open(t)}
			if instances == 2 {
				stores = append(stores, s.open(t))
			}
			ctx, now := ctxT(t), base()
			const first = `{"index":"cred-1","n":0}`
			m := store.Method{ID: "pk", AccountID: "acct-a", Type: "x-record", Secret: first, CreatedAt: now}
			wantErr(t, "AddMethod", stores[0].AddMethod(ctx, m), nil)
			for round := range rounds {
				read, err := stores[0].GetMethod(ctx, "acct-a", "pk")
				wantErr(t, "GetMethod", err, nil)
				errs := race(concurrency, stores, func(st store.Store, i int) error {
					return st.SwapMethodAddress(ctx, "acct-a", "pk", read.Secret,
						fmt.Sprintf(`{"index":"cred-1","n":%d,"by":%d}`, round+1, i))
				})
				got := tally(t, errs, store.ErrConflict)
				if got[nil] != 1 || got[store.ErrConflict] != concurrency-1 {
					t.Fatalf("round %d: concurrent SwapMethodAddress: %d successes, %d conflicts; want 1 and %d",
						round, got[nil], got[store.ErrConflict], concurrency-1)
				}
				final, err := stores[0].GetMethod(ctx, "acct-a", "pk")
				wantErr(t, "GetMethod", err, nil)
				winner := slices.Index(errs, nil)
				if want := fmt.Sprintf(`{"index":"cred-1","n":%d,"by":%d}`, round+1, winner); final.Secret != want {
					t.Fatalf("round %d: secret %q, want the winner's %q", round, final.Secret, want)
				}
			}
		})
	}
}

// methodsSwapAddressAtRest: a swapped-in address is encrypted at rest like
// an added one, and the one swapped out is gone.
func (s *suite) methodsSwapAddressAtRest(t *testing.T) {
	if s.cfg.rawBytes == nil {
		t.Skip("no WithRawBytes option: cannot inspect the bytes at rest")
	}
	st, ctx, now := s.open(t), ctxT(t), base()
	const (
		before = "Before.Swap-Marker@Secret-Domain.example"
		after  = "After.Swap-Marker@Secret-Domain.example"
		rec    = `{"index":"cred-marker-v8w2","counter":"counter-marker-j4n6"}`
		rec2   = `{"index":"cred-marker-v8w2","counter":"counter-marker-x5c1"}`
		mark   = "storetest.swap-audit-marker-r3d8"
	)
	wantErr(t, "AddMethod", st.AddMethod(ctx, store.Method{ID: "e", AccountID: "acct-z", Type: store.MethodEmail, Address: before, CreatedAt: now}), nil)
	wantErr(t, "AddMethod", st.AddMethod(ctx, store.Method{ID: "r", AccountID: "acct-z", Type: "x-record", Secret: rec, CreatedAt: now}), nil)
	wantErr(t, "swap", st.SwapMethodAddress(ctx, "acct-z", "e", before, after), nil)
	wantErr(t, "swap", st.SwapMethodAddress(ctx, "acct-z", "r", rec, rec2), nil)
	wantErr(t, "AppendAudit", st.AppendAudit(ctx, store.AuditEvent{Time: now, Type: mark}), nil)
	raw := s.cfg.rawBytes(t, st)
	if !bytes.Contains(raw, []byte(mark)) {
		t.Fatalf("raw bytes (%d) do not contain the audit marker", len(raw))
	}
	lowerRaw := bytes.ToLower(raw)
	for _, secret := range []string{"after.swap-marker", "cred-marker-v8w2", "counter-marker-x5c1"} {
		if bytes.Contains(lowerRaw, []byte(secret)) {
			t.Errorf("%q found in plaintext in the bytes at rest after a swap", secret)
		}
	}
}

// methodsRecordIndex: an address that is a JSON object with an "index"
// member is found by that member alone (a passkey by its credential id),
// before and after its other members change.
func (s *suite) methodsRecordIndex(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	add := func(account, id, addr string) {
		t.Helper()
		wantErr(t, "AddMethod", st.AddMethod(ctx, store.Method{ID: id, AccountID: account, Type: "x-record", Secret: addr, CreatedAt: now}), nil)
		wantErr(t, "VerifyMethod", st.VerifyMethod(ctx, account, id, now), nil)
	}
	count := func(typ, addr string, want int) {
		t.Helper()
		if n, err := st.CountAccountsByAddress(ctx, typ, addr); err != nil || n != want {
			t.Fatalf("CountAccountsByAddress(%s, %s) = %d, %v; want %d", typ, addr, n, err, want)
		}
	}
	add("a", "p1", `{"label":"Laptop","index":"Y3JlZC0x","key":"aaa","n":1}`)
	add("b", "p1", `{"index":"Y3JlZC0x","key":"bbb","n":7}`) // same credential id, other account
	add("c", "p1", `{"index":"Y3JlZC0y","key":"ccc"}`)
	add("c", "p2", `{"key":"no index member"}`)
	count("x-record", "Y3JlZC0x", 2)
	count("x-record", "Y3JlZC0y", 1)
	count("x-record", "y3jlzc0x", 0) // the index is compared exactly
	count("y-record", "Y3JlZC0x", 0) // other type
	count("x-record", `{"key":"no index member"}`, 1)
	// a record without an index member, or with an empty one, is indexed whole
	wantErr(t, "swap", st.SwapMethodAddress(ctx, "a", "p1", `{"label":"Laptop","index":"Y3JlZC0x","key":"aaa","n":1}`,
		`{"label":"Laptop","index":"Y3JlZC0x","key":"aaa","n":2}`), nil)
	count("x-record", "Y3JlZC0x", 2)
	wantErr(t, "swap", st.SwapMethodAddress(ctx, "b", "p1", `{"index":"Y3JlZC0x","key":"bbb","n":7}`,
		`{"index":"","key":"bbb","n":8}`), nil)
	count("x-record", "Y3JlZC0x", 1)
	count("x-record", `{"index":"","key":"bbb","n":8}`, 1)
	if got, want := store.NormalizeAddress("x-record", ` {"index":"k"} `), "k"; got != want {
		t.Fatalf("NormalizeAddress of a record = %q, want %q", got, want)
	}
	if got, want := store.NormalizeAddress(store.MethodEmail, `{"index":"k"}`), `{"index":"k"}`; got != want {
		t.Fatalf("NormalizeAddress(email) of a record = %q, want %q (emails are never records)", got, want)
	}
}

// ---- flows ----

func (s *suite) flowsCreateGet(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	f := store.Flow{
		ID:        newID(),
		Kind:      store.FlowUnlock,
		AccountID: "acct-a",
		Required:  2,
		Verified:  []string{"m1"},
		Data:      map[string]string{"step": "verify", "username": "alice"},
		CreatedAt: now,
		ExpiresAt: now.Add(15 * time.Minute),
		Version:   0,
	}
	wantErr(t, "CreateFlow", st.CreateFlow(ctx, f), nil)
	got, err := st.GetFlow(ctx, f.ID, now)
	wantErr(t, "GetFlow", err, nil)
	mustEqual(t, "GetFlow", got, f)

	// Decoy flow for an unknown user, with no Verified and no Data.
	d := store.Flow{ID: newID(), Kind: store.FlowReset, Required: 1, CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
	wantErr(t, "CreateFlow decoy", st.CreateFlow(ctx, d), nil)
	got, err = st.GetFlow(ctx, d.ID, now)
	wantErr(t, "GetFlow decoy", err, nil)
	mustEqual(t, "GetFlow decoy", got, d)
	if got.Verified != nil || got.Data != nil {
		t.Fatalf("empty Verified/Data should come back nil: %+v", got)
	}
}

func (s *suite) flowsMissingAndInvalid(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	f := mustCreateFlow(t, st, newFlow("acct-a", now))

	missing := newID()
	_, err := st.GetFlow(ctx, missing, now)
	wantErr(t, "GetFlow missing", err, store.ErrNotFound, missing)
	_, err = st.GetFlow(ctx, f.ID[:len(f.ID)-1], now)
	wantErr(t, "GetFlow prefix of an ID", err, store.ErrNotFound, f.ID)
	_, err = st.GetFlow(ctx, strings.ToUpper(f.ID), now)
	wantErr(t, "GetFlow other case", err, store.ErrNotFound, f.ID)
	_, err = st.GetFlow(ctx, "", now)
	wantErr(t, "GetFlow empty", err, store.ErrNotFound)

	wantErr(t, "CreateFlow duplicate", st.CreateFlow(ctx, f), store.ErrConflict, f.ID)
	short := newFlow("acct-a", now)
	short.ID = "sh0rt-id"
	wantErr(t, "CreateFlow short ID", st.CreateFlow(ctx, short), store.ErrInvalid, short.ID)
	noKind := newFlow("acct-a", now)
	noKind.Kind = ""
	wantErr(t, "CreateFlow without kind", st.CreateFlow(ctx, noKind), store.ErrInvalid, noKind.ID)
}

func (s *suite) flowsExpiry(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	f := newFlow("acct-a", now)
	f.ExpiresAt = now.Add(10 * time.Minute)
	mustCreateFlow(t, st, f)
	_, err := st.GetFlow(ctx, f.ID, f.ExpiresAt.Add(-time.Microsecond))
	wantErr(t, "GetFlow just before expiry", err, nil)
	_, err = st.GetFlow(ctx, f.ID, f.ExpiresAt)
	wantErr(t, "GetFlow at expiry", err, store.ErrNotFound, f.ID)
	_, err = st.GetFlow(ctx, f.ID, f.ExpiresAt.Add(time.Hour))
	wantErr(t, "GetFlow after expiry", err, store.ErrNotFound, f.ID)
}

func (s *suite) flowsUpdate(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	f := mustCreateFlow(t, st, newFlow("acct-a", now))

	got, err := st.GetFlow(ctx, f.ID, now)
	wantErr(t, "GetFlow", err, nil)
	got.Verified = append(got.Verified, "m1")
	got.Data = map[string]string{"k": "v"}
	got.Required = 2
	got.ExpiresAt = now.Add(20 * time.Minute)
	wantErr(t, "UpdateFlow", st.UpdateFlow(ctx, got), nil)

	after, err := st.GetFlow(ctx, f.ID, now)
	wantErr(t, "GetFlow", err, nil)
	want := got
	want.Version = f.Version + 1
	mustEqual(t, "flow after update", after, want)

	// The same (now stale) version again loses.
	got.Data = map[string]string{"k": "stale"}
	wantErr(t, "UpdateFlow stale", st.UpdateFlow(ctx, got), store.ErrConflict, f.ID)
	again, _ := st.GetFlow(ctx, f.ID, now)
	mustEqual(t, "flow after stale update", again, want)

	// Chained update with the incremented version works; data can be cleared.
	next := after
	next.Data = nil
	wantErr(t, "UpdateFlow chained", st.UpdateFlow(ctx, next), nil)
	after2, _ := st.GetFlow(ctx, f.ID, now)
	if after2.Version != f.Version+2 || after2.Data != nil {
		t.Fatalf("flow after chained update: %+v", after2)
	}

	// Owner and kind are fixed.
	moved := after2
	moved.AccountID = "acct-evil"
	wantErr(t, "UpdateFlow changing account", st.UpdateFlow(ctx, moved), store.ErrInvalid, f.ID)
	moved = after2
	moved.Kind = store.FlowRegister
	wantErr(t, "UpdateFlow changing kind", st.UpdateFlow(ctx, moved), store.ErrInvalid, f.ID)
	unchanged, _ := st.GetFlow(ctx, f.ID, now)
	mustEqual(t, "flow after refused updates", unchanged, after2)

	missing := newFlow("acct-a", now)
	wantErr(t, "UpdateFlow missing", st.UpdateFlow(ctx, missing), store.ErrNotFound, missing.ID)

	// A flow that has expired (by the wall clock) cannot be updated/revived.
	old := newFlow("acct-a", now.Add(-time.Hour))
	old.ExpiresAt = now.Add(-time.Minute)
	mustCreateFlow(t, st, old)
	old.ExpiresAt = now.Add(time.Hour)
	wantErr(t, "UpdateFlow expired", st.UpdateFlow(ctx, old), store.ErrNotFound, old.ID)
}

func (s *suite) flowsRotate(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	f := newFlow("acct-a", now)
	f.Data = map[string]string{"k": "v"}
	mustCreateFlow(t, st, f)
	mustIssue(t, st, code(f, "m1", "h1", now))
	mustIssue(t, st, code(f, "m2", "h2", now))

	got, _ := st.GetFlow(ctx, f.ID, now)
	got.Verified = []string{"m1"}
	rotated := newID()
	wantErr(t, "RotateFlow", st.RotateFlow(ctx, got, rotated), nil, f.ID, rotated)

	_, err := st.GetFlow(ctx, f.ID, now)
	wantErr(t, "GetFlow with the old id", err, store.ErrNotFound, f.ID)
	wantErr(t, "RedeemCode with the old id", st.RedeemCode(ctx, f.ID, "reset", "m2", []byte("h2"), 5, now), store.ErrNotFound, f.ID)
	after, err := st.GetFlow(ctx, rotated, now)
	wantErr(t, "GetFlow with the new id", err, nil, rotated)
	want := got
	want.ID, want.Version = rotated, got.Version+1
	mustEqual(t, "flow after rotation", after, want)
	// the live codes follow the flow
	wantErr(t, "RedeemCode with the new id", st.RedeemCode(ctx, rotated, "reset", "m2", []byte("h2"), 5, now), nil, rotated)

	// stale version, taken id, missing flow, bad id
	wantErr(t, "RotateFlow with the old id", st.RotateFlow(ctx, got, newID()), store.ErrNotFound, got.ID)
	stale := after
	stale.Version--
	wantErr(t, "RotateFlow stale", st.RotateFlow(ctx, stale, newID()), store.ErrConflict, stale.ID)
	other := mustCreateFlow(t, st, newFlow("acct-a", now))
	wantErr(t, "RotateFlow onto a taken id", st.RotateFlow(ctx, after, other.ID), store.ErrConflict, other.ID)
	still, err := st.GetFlow(ctx, rotated, now)
	wantErr(t, "GetFlow after a refused rotation", err, nil, rotated)
	mustEqual(t, "flow after a refused rotation", still, after)
	wantErr(t, "RotateFlow short id", st.RotateFlow(ctx, after, "short"), store.ErrInvalid)
	missing := newFlow("acct-a", now)
	wantErr(t, "RotateFlow missing", st.RotateFlow(ctx, missing, newID()), store.ErrNotFound, missing.ID)
	moved := after
	moved.AccountID = "acct-evil"
	wantErr(t, "RotateFlow changing account", st.RotateFlow(ctx, moved, newID()), store.ErrInvalid, after.ID)
}

func (s *suite) flowsDelete(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	f := mustCreateFlow(t, st, newFlow("acct-a", now))
	other := mustCreateFlow(t, st, newFlow("acct-a", now))
	mustIssue(t, st, code(f, "m1", "h", now))
	wantErr(t, "DeleteFlow", st.DeleteFlow(ctx, f.ID), nil)
	_, err := st.GetFlow(ctx, f.ID, now)
	wantErr(t, "GetFlow deleted", err, store.ErrNotFound, f.ID)
	wantErr(t, "RedeemCode of deleted flow", st.RedeemCode(ctx, f.ID, "reset", "m1", []byte("h"), 5, now),
		store.ErrNotFound, f.ID)
	wantErr(t, "DeleteFlow again", st.DeleteFlow(ctx, f.ID), nil)
	_, err = st.GetFlow(ctx, other.ID, now)
	wantErr(t, "GetFlow of another flow", err, nil)
}

func (s *suite) flowsDeleteForAccount(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	a1 := mustCreateFlow(t, st, newFlow("acct-a", now))
	a2 := newFlow("acct-a", now)
	a2.Kind = store.FlowRegister
	mustCreateFlow(t, st, a2)
	b := mustCreateFlow(t, st, newFlow("acct-b", now))
	decoy := mustCreateFlow(t, st, newFlow("", now))
	mustIssue(t, st, code(a1, "m1", "ha", now))
	mustIssue(t, st, code(b, "m1", "hb", now))

	wantErr(t, "DeleteFlowsForAccount", st.DeleteFlowsForAccount(ctx, "acct-a"), nil)
	for _, f := range []store.Flow{a1, a2} {
		_, err := st.GetFlow(ctx, f.ID, now)
		wantErr(t, "GetFlow of the account's flow", err, store.ErrNotFound)
	}
	wantErr(t, "RedeemCode of the account's flow",
		st.RedeemCode(ctx, a1.ID, "reset", "m1", []byte("ha"), 5, now), store.ErrNotFound)
	for _, f := range []store.Flow{b, decoy} {
		_, err := st.GetFlow(ctx, f.ID, now)
		wantErr(t, "GetFlow of another account's flow", err, nil)
	}
	wantErr(t, "RedeemCode of another account's flow",
		st.RedeemCode(ctx, b.ID, "reset", "m1", []byte("hb"), 5, now), nil)
	wantErr(t, "DeleteFlowsForAccount empty", st.DeleteFlowsForAccount(ctx, ""), store.ErrInvalid)
	_, err := st.GetFlow(ctx, decoy.ID, now)
	wantErr(t, "decoy flow survives", err, nil)
}

// flowsRestart: a flow started before a restart (Close + reopen the same
// storage) can be finished after it, and enrollment data still decrypts.
func (s *suite) flowsRestart(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	m := store.Method{ID: "m1", AccountID: "acct-a", Type: store.MethodSMS, Address: "+447700900555", CreatedAt: now}
	wantErr(t, "AddMethod", st.AddMethod(ctx, m), nil)
	wantErr(t, "VerifyMethod", st.VerifyMethod(ctx, "acct-a", "m1", now), nil)
	f := newFlow("acct-a", now)
	f.Data = map[string]string{"username": "alice"}
	mustCreateFlow(t, st, f)
	mustIssue(t, st, code(f, "m1", "hash-1", now))
	sess := store.Session{ID: newID(), AccountID: "acct-a", Username: "alice", CreatedAt: now, AuthAt: now,
		LastSeen: now, ExpiresAt: now.Add(time.Hour)}
	wantErr(t, "CreateSession", st.CreateSession(ctx, sess), nil)
	if _, err := st.Hit(ctx, "ip:192.0.2.1", time.Hour, now); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "Close", st.Close(), nil)

	st2 := s.open(t)
	got, err := st2.GetFlow(ctx, f.ID, now.Add(time.Minute))
	wantErr(t, "GetFlow after restart", err, nil)
	mustEqual(t, "flow after restart", got, f)
	wantErr(t, "RedeemCode after restart", st2.RedeemCode(ctx, f.ID, "reset", "m1", []byte("hash-1"), 5, now.Add(time.Minute)), nil)
	got.Verified = []string{"m1"}
	wantErr(t, "UpdateFlow after restart", st2.UpdateFlow(ctx, got), nil)
	done, err := st2.GetFlow(ctx, f.ID, now.Add(2*time.Minute))
	wantErr(t, "GetFlow", err, nil)
	if done.Version != 1 || !slices.Equal(done.Verified, []string{"m1"}) {
		t.Fatalf("flow finished after restart: %+v", done)
	}
	gm, err := st2.GetMethod(ctx, "acct-a", "m1")
	wantErr(t, "GetMethod after restart", err, nil)
	if gm.Address != m.Address || !gm.Verified {
		t.Fatalf("method after restart: %+v", gm)
	}
	if n, _ := st2.CountAccountsByAddress(ctx, store.MethodSMS, m.Address); n != 1 {
		t.Fatalf("CountAccountsByAddress after restart = %d, want 1", n)
	}
	gs, err := st2.GetSession(ctx, sess.ID, now)
	wantErr(t, "GetSession after restart", err, nil)
	mustEqual(t, "session after restart", gs, sess)
	if n, _ := st2.Count(ctx, "ip:192.0.2.1", time.Hour, now); n != 1 {
		t.Fatalf("Count after restart = %d, want 1", n)
	}
}

// flowsConcurrentUpdate: 20 callers update the same version; exactly one
// wins. Run on one instance and on two instances sharing the storage.
func (s *suite) flowsConcurrentUpdate(t *testing.T) {
	for _, instances := range []int{1, 2} {
		t.Run(fmt.Sprintf("instances=%d", instances), func(t *testing.T) {
			stores := []store.Store{s.open(t)}
			if instances == 2 {
				stores = append(stores, s.open(t))
			}
			ctx, now := ctxT(t), base()
			for round := range rounds {
				f := mustCreateFlow(t, stores[0], newFlow("acct-a", now))
				errs := race(concurrency, stores, func(st store.Store, i int) error {
					g := f
					g.Verified = []string{fmt.Sprintf("m%d", i)}
					return st.UpdateFlow(ctx, g)
				})
				got := tally(t, errs, store.ErrConflict)
				if got[nil] != 1 || got[store.ErrConflict] != concurrency-1 {
					t.Fatalf("round %d: concurrent UpdateFlow: %d successes, %d conflicts; want 1 and %d",
						round, got[nil], got[store.ErrConflict], concurrency-1)
				}
				final, err := stores[0].GetFlow(ctx, f.ID, now)
				wantErr(t, "GetFlow", err, nil)
				if final.Version != f.Version+1 || len(final.Verified) != 1 {
					t.Fatalf("flow after concurrent updates: %+v", final)
				}
			}
		})
	}
}

// flowsConcurrentRotate: 20 callers rotate the same version of a flow,
// each to its own new ID, as concurrent proofs of one method would: exactly
// one wins; the flow and its live code answer to the winner's ID only, and
// none of the losers' IDs exists. On one instance and on two.
func (s *suite) flowsConcurrentRotate(t *testing.T) {
	for _, instances := range []int{1, 2} {
		t.Run(fmt.Sprintf("instances=%d", instances), func(t *testing.T) {
			stores := []store.Store{s.open(t)}
			if instances == 2 {
				stores = append(stores, s.open(t))
			}
			ctx, now := ctxT(t), base()
			for round := range rounds {
				f := mustCreateFlow(t, stores[0], newFlow("acct-a", now))
				mustIssue(t, stores[0], code(f, "m2", "h2", now))
				ids := make([]string, concurrency)
				for i := range ids {
					ids[i] = newID()
				}
				errs := race(concurrency, stores, func(st store.Store, i int) error {
					g := f
					g.Verified = []string{fmt.Sprintf("m%d", i)}
					return st.RotateFlow(ctx, g, ids[i])
				})
				// a loser sees the version moved (conflict) or, once the
				// winner renamed the flow, no flow under the old ID
				got := tally(t, errs, store.ErrConflict, store.ErrNotFound)
				if got[nil] != 1 {
					t.Fatalf("round %d: concurrent RotateFlow: %d successes, %d conflicts, %d not found; want 1 success",
						round, got[nil], got[store.ErrConflict], got[store.ErrNotFound])
				}
				winner := -1
				for i, err := range errs {
					if err == nil {
						winner = i
					}
				}
				_, err := stores[0].GetFlow(ctx, f.ID, now)
				wantErr(t, "GetFlow with the old id", err, store.ErrNotFound, f.ID)
				for i, id := range ids {
					g, err := stores[len(stores)-1].GetFlow(ctx, id, now)
					if i != winner {
						wantErr(t, "GetFlow with a loser's id", err, store.ErrNotFound, id)
						continue
					}
					wantErr(t, "GetFlow with the winner's id", err, nil, id)
					if g.Version != f.Version+1 || len(g.Verified) != 1 || g.Verified[0] != fmt.Sprintf("m%d", winner) {
						t.Fatalf("round %d: flow after the rotation race: %+v (winner %d)", round, g, winner)
					}
				}
				wantErr(t, "RedeemCode with the winner's id", stores[0].RedeemCode(ctx, ids[winner], "reset", "m2", []byte("h2"), 5, now), nil, ids[winner])
			}
		})
	}
}

// ---- codes ----

func (s *suite) codesRedeem(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	f := mustCreateFlow(t, st, newFlow("acct-a", now))
	mustIssue(t, st, code(f, "m1", "right", now))
	wantErr(t, "RedeemCode wrong", st.RedeemCode(ctx, f.ID, "reset", "m1", []byte("bad-hash-7f3a"), 5, now),
		store.ErrCodeMismatch, f.ID, "right", "bad-hash-7f3a")
	wantErr(t, "RedeemCode right", st.RedeemCode(ctx, f.ID, "reset", "m1", []byte("right"), 5, now), nil)
	wantErr(t, "RedeemCode used", st.RedeemCode(ctx, f.ID, "reset", "m1", []byte("right"), 5, now),
		store.ErrNotFound, f.ID, "right")
	wantErr(t, "RedeemCode never issued", st.RedeemCode(ctx, f.ID, "reset", "m2", []byte("right"), 5, now),
		store.ErrNotFound)
	wantErr(t, "RedeemCode maxTries 0", st.RedeemCode(ctx, f.ID, "reset", "m1", []byte("right"), 0, now),
		store.ErrInvalid)
}

func (s *suite) codesReissue(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	f := mustCreateFlow(t, st, newFlow("acct-a", now))
	mustIssue(t, st, code(f, "m1", "first", now))
	mustIssue(t, st, code(f, "m1", "second", now))
	wantErr(t, "RedeemCode replaced code", st.RedeemCode(ctx, f.ID, "reset", "m1", []byte("first"), 5, now),
		store.ErrCodeMismatch)
	wantErr(t, "RedeemCode new code", st.RedeemCode(ctx, f.ID, "reset", "m1", []byte("second"), 5, now), nil)

	// Reissuing resets the tries of the replaced code.
	mustIssue(t, st, code(f, "m1", "third", now))
	for range 4 {
		wantErr(t, "RedeemCode wrong", st.RedeemCode(ctx, f.ID, "reset", "m1", []byte("x"), 5, now), store.ErrCodeMismatch)
	}
	mustIssue(t, st, code(f, "m1", "fourth", now))
	for range 4 {
		wantErr(t, "RedeemCode wrong", st.RedeemCode(ctx, f.ID, "reset", "m1", []byte("x"), 5, now), store.ErrCodeMismatch)
	}
	wantErr(t, "RedeemCode after 4 wrong", st.RedeemCode(ctx, f.ID, "reset", "m1", []byte("fourth"), 5, now), nil)

	// Codes for different methods / purposes of one flow are independent.
	mustIssue(t, st, code(f, "m1", "a", now))
	c2 := code(f, "m2", "b", now)
	mustIssue(t, st, c2)
	c3 := code(f, "m1", "c", now)
	c3.Purpose = "register"
	mustIssue(t, st, c3)
	wantErr(t, "RedeemCode m2", st.RedeemCode(ctx, f.ID, "reset", "m2", []byte("b"), 5, now), nil)
	wantErr(t, "RedeemCode register", st.RedeemCode(ctx, f.ID, "register", "m1", []byte("c"), 5, now), nil)
	wantErr(t, "RedeemCode m1", st.RedeemCode(ctx, f.ID, "reset", "m1", []byte("a"), 5, now), nil)
}

func (s *suite) codesMaxTries(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	f := mustCreateFlow(t, st, newFlow("acct-a", now))
	mustIssue(t, st, code(f, "m1", "right", now))
	for i := range 5 {
		wantErr(t, fmt.Sprintf("wrong try %d", i+1),
			st.RedeemCode(ctx, f.ID, "reset", "m1", []byte("wrong"), 5, now), store.ErrCodeMismatch)
	}
	wantErr(t, "RedeemCode after 5 wrong tries", st.RedeemCode(ctx, f.ID, "reset", "m1", []byte("right"), 5, now),
		store.ErrNotFound)

	// A code issued with Tries already counted dies sooner; a code whose
	// tries reached a lowered maxTries is dead.
	c := code(f, "m1", "right", now)
	c.Tries = 3
	mustIssue(t, st, c)
	wantErr(t, "wrong 4", st.RedeemCode(ctx, f.ID, "reset", "m1", []byte("wrong"), 5, now), store.ErrCodeMismatch)
	wantErr(t, "right with lower maxTries", st.RedeemCode(ctx, f.ID, "reset", "m1", []byte("right"), 3, now),
		store.ErrNotFound)
	wantErr(t, "right after", st.RedeemCode(ctx, f.ID, "reset", "m1", []byte("right"), 5, now), store.ErrNotFound)
}

func (s *suite) codesExpiry(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	f := mustCreateFlow(t, st, newFlow("acct-a", now))
	c := code(f, "m1", "right", now)
	c.ExpiresAt = now.Add(time.Minute)
	mustIssue(t, st, c)
	wantErr(t, "RedeemCode at expiry", st.RedeemCode(ctx, f.ID, "reset", "m1", []byte("right"), 5, c.ExpiresAt),
		store.ErrNotFound)
	wantErr(t, "RedeemCode expired, earlier clock", st.RedeemCode(ctx, f.ID, "reset", "m1", []byte("right"), 5, now),
		store.ErrNotFound) // an expired code found at redeem time is deleted

	// A live code in an expired flow is dead too.
	g := newFlow("acct-a", now)
	g.ExpiresAt = now.Add(time.Minute)
	mustCreateFlow(t, st, g)
	c = code(g, "m1", "right", now)
	c.ExpiresAt = now.Add(10 * time.Minute)
	mustIssue(t, st, c)
	wantErr(t, "RedeemCode in expired flow", st.RedeemCode(ctx, g.ID, "reset", "m1", []byte("right"), 5, now.Add(2*time.Minute)),
		store.ErrNotFound)

	h := mustCreateFlow(t, st, newFlow("acct-a", now))
	c = code(h, "m1", "right", now)
	mustIssue(t, st, c)
	wantErr(t, "RedeemCode just before expiry",
		st.RedeemCode(ctx, h.ID, "reset", "m1", []byte("right"), 5, c.ExpiresAt.Add(-time.Microsecond)), nil)
}

// codesBinding: a code works only for its own flow, purpose and method.
func (s *suite) codesBinding(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	fa := mustCreateFlow(t, st, newFlow("acct-a", now))
	fb := mustCreateFlow(t, st, newFlow("acct-b", now))
	mustIssue(t, st, code(fa, "m1", "code-a", now))
	mustIssue(t, st, code(fb, "m1", "code-b", now))

	wantErr(t, "A's code in B's flow", st.RedeemCode(ctx, fb.ID, "reset", "m1", []byte("code-a"), 5, now), store.ErrCodeMismatch)
	wantErr(t, "other purpose", st.RedeemCode(ctx, fa.ID, "register", "m1", []byte("code-a"), 5, now), store.ErrNotFound)
	wantErr(t, "other method", st.RedeemCode(ctx, fa.ID, "reset", "m2", []byte("code-a"), 5, now), store.ErrNotFound)
	wantErr(t, "unknown flow", st.RedeemCode(ctx, newID(), "reset", "m1", []byte("code-a"), 5, now), store.ErrNotFound)
	wantErr(t, "A's code in A's flow", st.RedeemCode(ctx, fa.ID, "reset", "m1", []byte("code-a"), 5, now), nil)
	wantErr(t, "B's code in B's flow", st.RedeemCode(ctx, fb.ID, "reset", "m1", []byte("code-b"), 5, now), nil)
}

func (s *suite) codesIssueChecks(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	f := mustCreateFlow(t, st, newFlow("acct-a", now))

	c := code(newFlow("acct-a", now), "m1", "h", now)
	wantErr(t, "IssueCode for missing flow", st.IssueCode(ctx, c), store.ErrNotFound, c.FlowID)
	c = code(f, "m1", "h", now)
	c.AccountID = "acct-b"
	wantErr(t, "IssueCode for another account", st.IssueCode(ctx, c), store.ErrInvalid, f.ID)
	c = code(f, "m1", "", now)
	wantErr(t, "IssueCode empty hash", st.IssueCode(ctx, c), store.ErrInvalid, f.ID)
	c = code(f, "", "h", now)
	wantErr(t, "IssueCode empty method", st.IssueCode(ctx, c), store.ErrInvalid, f.ID)

	// Decoy flows (no account) can carry codes, with an empty AccountID.
	d := mustCreateFlow(t, st, newFlow("", now))
	mustIssue(t, st, code(d, "m1", "h", now))
	wantErr(t, "RedeemCode decoy", st.RedeemCode(ctx, d.ID, "reset", "m1", []byte("h"), 5, now), nil)
}

// codesConcurrentRedeem: 20 callers redeem one code with the right hash;
// exactly one succeeds. On one instance and on two sharing storage.
func (s *suite) codesConcurrentRedeem(t *testing.T) {
	for _, instances := range []int{1, 2} {
		t.Run(fmt.Sprintf("instances=%d", instances), func(t *testing.T) {
			stores := []store.Store{s.open(t)}
			if instances == 2 {
				stores = append(stores, s.open(t))
			}
			ctx, now := ctxT(t), base()
			// Several rounds: later rounds run on warm connection pools,
			// where a check-then-act race has its best chance to show.
			for round := range rounds {
				f := mustCreateFlow(t, stores[0], newFlow("acct-a", now))
				mustIssue(t, stores[0], code(f, "m1", "right", now))
				errs := race(concurrency, stores, func(st store.Store, _ int) error {
					return st.RedeemCode(ctx, f.ID, "reset", "m1", []byte("right"), 5, now)
				})
				got := tally(t, errs, store.ErrNotFound)
				if got[nil] != 1 || got[store.ErrNotFound] != concurrency-1 {
					t.Fatalf("round %d: concurrent RedeemCode: %d successes, %d not found; want 1 and %d",
						round, got[nil], got[store.ErrNotFound], concurrency-1)
				}
			}
		})
	}
}

// codesConcurrentWrongTries: 20 concurrent wrong guesses with maxTries 5
// are counted exactly: 5 mismatches, then the code is dead.
func (s *suite) codesConcurrentWrongTries(t *testing.T) {
	stores := []store.Store{s.open(t), s.open(t)}
	ctx, now := ctxT(t), base()
	f := mustCreateFlow(t, stores[0], newFlow("acct-a", now))
	mustIssue(t, stores[0], code(f, "m1", "right", now))
	errs := race(concurrency, stores, func(st store.Store, i int) error {
		return st.RedeemCode(ctx, f.ID, "reset", "m1", []byte(fmt.Sprintf("wrong-%d", i)), 5, now)
	})
	got := tally(t, errs, store.ErrCodeMismatch, store.ErrNotFound)
	if got[store.ErrCodeMismatch] != 5 || got[store.ErrNotFound] != concurrency-5 || got[nil] != 0 {
		t.Fatalf("concurrent wrong tries: %v; want 5 mismatches and %d not found", got, concurrency-5)
	}
	wantErr(t, "right code after the concurrent guesses",
		stores[0].RedeemCode(ctx, f.ID, "reset", "m1", []byte("right"), 5, now), store.ErrNotFound)
}

// ---- sessions ----

func (s *suite) sessions(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	a := store.Session{ID: newID(), AccountID: "acct-a", Username: "alice", CreatedAt: now, AuthAt: now,
		LastSeen: now, ExpiresAt: now.Add(time.Hour)}
	a2 := store.Session{ID: newID(), AccountID: "acct-a", Username: "ALICE", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	b := store.Session{ID: newID(), AccountID: "acct-b", Username: "bob", CreatedAt: now, AuthAt: now,
		LastSeen: now, ExpiresAt: now.Add(time.Hour)}
	adm := store.Session{ID: newID(), Kind: store.SessionAdmin, AccountID: "acct-a", Username: "alice", CreatedAt: now, AuthAt: now,
		LastSeen: now, ExpiresAt: now.Add(time.Hour)}
	for _, x := range []store.Session{a, a2, b, adm} {
		wantErr(t, "CreateSession", st.CreateSession(ctx, x), nil)
	}
	wantErr(t, "CreateSession duplicate", st.CreateSession(ctx, a), store.ErrConflict, a.ID)
	short := a
	short.ID = "short"
	wantErr(t, "CreateSession short ID", st.CreateSession(ctx, short), store.ErrInvalid)

	got, err := st.GetSession(ctx, a.ID, now)
	wantErr(t, "GetSession", err, nil)
	mustEqual(t, "GetSession", got, a)
	got, err = st.GetSession(ctx, a2.ID, now)
	wantErr(t, "GetSession", err, nil)
	mustEqual(t, "GetSession with zero times", got, a2)
	got, err = st.GetSession(ctx, adm.ID, now)
	wantErr(t, "GetSession", err, nil)
	mustEqual(t, "GetSession of an admin session", got, adm)
	wantErr(t, "TouchSession", st.TouchSession(ctx, adm.ID, now.Add(time.Minute)), nil)
	got, _ = st.GetSession(ctx, adm.ID, now)
	mustEqual(t, "admin session's kind after a touch", got.Kind, store.SessionAdmin)

	_, err = st.GetSession(ctx, a.ID, a.ExpiresAt)
	wantErr(t, "GetSession at expiry", err, store.ErrNotFound, a.ID)
	missing := newID()
	_, err = st.GetSession(ctx, missing, now)
	wantErr(t, "GetSession missing", err, store.ErrNotFound, missing)

	seen := now.Add(5 * time.Minute)
	wantErr(t, "TouchSession", st.TouchSession(ctx, a.ID, seen), nil)
	auth := now.Add(6 * time.Minute)
	wantErr(t, "SetSessionAuthTime", st.SetSessionAuthTime(ctx, a.ID, auth), nil)
	got, _ = st.GetSession(ctx, a.ID, now)
	want := a
	want.LastSeen, want.AuthAt = seen, auth
	mustEqual(t, "session after touch", got, want)

	wantErr(t, "TouchSession missing", st.TouchSession(ctx, missing, seen), store.ErrNotFound, missing)
	wantErr(t, "SetSessionAuthTime missing", st.SetSessionAuthTime(ctx, missing, seen), store.ErrNotFound, missing)
	wantErr(t, "TouchSession after expiry", st.TouchSession(ctx, a.ID, a.ExpiresAt), store.ErrNotFound, a.ID)

	wantErr(t, "DeleteSession", st.DeleteSession(ctx, b.ID), nil)
	_, err = st.GetSession(ctx, b.ID, now)
	wantErr(t, "GetSession deleted", err, store.ErrNotFound)
	wantErr(t, "DeleteSession again", st.DeleteSession(ctx, b.ID), nil)

	c := store.Session{ID: newID(), AccountID: "acct-c", Username: "carol", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	wantErr(t, "CreateSession", st.CreateSession(ctx, c), nil)
	wantErr(t, "DeleteSessionsForAccount", st.DeleteSessionsForAccount(ctx, "acct-a"), nil)
	for _, x := range []store.Session{a, a2} {
		_, err = st.GetSession(ctx, x.ID, now)
		wantErr(t, "GetSession of the account", err, store.ErrNotFound)
	}
	_, err = st.GetSession(ctx, c.ID, now)
	wantErr(t, "GetSession of another account", err, nil)
	wantErr(t, "DeleteSessionsForAccount empty", st.DeleteSessionsForAccount(ctx, ""), store.ErrInvalid)
}

// ---- counters ----

func (s *suite) counters(t *testing.T) {
	st, ctx := s.open(t), ctxT(t)
	const w = time.Hour
	start := time.Date(2030, 1, 1, 10, 0, 0, 0, time.UTC) // a window boundary
	hit := func(key string, w time.Duration, at time.Time, want int) {
		t.Helper()
		n, err := st.Hit(ctx, key, w, at)
		wantErr(t, "Hit", err, nil, key)
		if n != want {
			t.Fatalf("Hit(%q, %v, %v) = %d, want %d", key, w, at, n, want)
		}
	}
	count := func(key string, w time.Duration, at time.Time, want int) {
		t.Helper()
		n, err := st.Count(ctx, key, w, at)
		wantErr(t, "Count", err, nil, key)
		if n != want {
			t.Fatalf("Count(%q, %v, %v) = %d, want %d", key, w, at, n, want)
		}
	}
	count("acct:a", w, start, 0)
	hit("acct:a", w, start, 1)
	hit("acct:a", w, start.Add(30*time.Minute), 2)
	hit("acct:a", w, start.Add(w-time.Microsecond), 3)
	count("acct:a", w, start.Add(10*time.Minute), 3)

	// Next window starts again; the previous window keeps its count.
	hit("acct:a", w, start.Add(w), 1)
	count("acct:a", w, start.Add(w+time.Minute), 1)
	count("acct:a", w, start, 3)
	count("acct:a", w, start.Add(-time.Microsecond), 0) // window before

	// Keys and window lengths are independent.
	hit("acct:b", w, start, 1)
	hit("acct:a", time.Minute, start, 1)
	hit("acct:a", 24*time.Hour, start, 1)
	count("acct:a", w, start, 3)

	_, err := st.Hit(ctx, "acct:a", 0, start)
	wantErr(t, "Hit with zero window", err, store.ErrInvalid)
	_, err = st.Count(ctx, "acct:a", -time.Second, start)
	wantErr(t, "Count with negative window", err, store.ErrInvalid)
}

func (s *suite) countersConcurrent(t *testing.T) {
	stores := []store.Store{s.open(t), s.open(t)}
	ctx, now := ctxT(t), base()
	var mu sync.Mutex
	var got []int
	errs := race(concurrency, stores, func(st store.Store, _ int) error {
		n, err := st.Hit(ctx, "dest:+447700900123", time.Hour, now)
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
	mustEqual(t, "concurrent Hit results", got, want)
	n, err := stores[1].Count(ctx, "dest:+447700900123", time.Hour, now)
	wantErr(t, "Count", err, nil)
	if n != concurrency {
		t.Fatalf("Count after concurrent hits = %d, want %d", n, concurrency)
	}
}

// ---- audit ----

func (s *suite) audit(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	ev := func(sec int, typ, account, outcome string, details map[string]string) store.AuditEvent {
		return store.AuditEvent{Time: now.Add(time.Duration(sec) * time.Second), Type: typ, RequestID: fmt.Sprintf("req-%d", sec),
			ClientIP: "192.0.2.7", AccountID: account, Outcome: outcome, Details: details}
	}
	e1 := ev(1, "reset.started", "acct-a", "ok", nil)
	e2 := ev(2, "reset.gate", "acct-a", "failed", map[string]string{"method": "sms"})
	e3 := ev(3, "reset.started", "acct-b", "ok", nil)
	e4 := ev(4, "reset.gate", "acct-a", "passed", map[string]string{"method": "email"})
	e5 := ev(4, "reset.completed", "acct-a", "ok", nil) // same time as e4, appended later
	e0 := ev(-10, "config.loaded", "", "ok", map[string]string{"path": "/etc/latchkey.yaml"})
	for _, e := range []store.AuditEvent{e1, e2, e3, e4, e5, e0} {
		wantErr(t, "AppendAudit", st.AppendAudit(ctx, e), nil)
	}
	wantErr(t, "AppendAudit without type", st.AppendAudit(ctx, store.AuditEvent{Time: now}), store.ErrInvalid)

	list := func(q store.AuditQuery, want ...store.AuditEvent) {
		t.Helper()
		got, err := st.ListAudit(ctx, q)
		wantErr(t, "ListAudit", err, nil)
		if want == nil {
			want = []store.AuditEvent{}
		}
		if got == nil {
			got = []store.AuditEvent{}
		}
		mustEqual(t, fmt.Sprintf("ListAudit(%+v)", q), noSeq(t, got), want)
	}
	list(store.AuditQuery{}, e5, e4, e3, e2, e1, e0)
	list(store.AuditQuery{AccountID: "acct-a"}, e5, e4, e2, e1)
	list(store.AuditQuery{Type: "reset.gate"}, e4, e2)
	list(store.AuditQuery{AccountID: "acct-a", Type: "reset.started"}, e1)
	list(store.AuditQuery{Limit: 2}, e5, e4)
	list(store.AuditQuery{Since: e2.Time, Until: e4.Time}, e3, e2)
	list(store.AuditQuery{Until: e1.Time, Limit: 1}, e0)
	list(store.AuditQuery{AccountID: "acct-nobody"})
}

// purgeAudit: PurgeAudit deletes the events older than the retention's
// end, across batches, and nothing else; Purge never does.
func (s *suite) purgeAudit(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	cut := now.Add(-400 * 24 * time.Hour)
	const old = 2500 // more than one batch on every store
	for i := 0; i < old; i++ {
		wantErr(t, "AppendAudit", st.AppendAudit(ctx, store.AuditEvent{Time: cut.Add(-time.Duration(i+1) * time.Second), Type: "blocked", Outcome: "csrf"}), nil)
	}
	keep := []store.AuditEvent{
		{Time: cut, Type: "reset.completed", AccountID: "acct-a", Outcome: "success"}, // exactly at the end: kept
		{Time: now, Type: "reset.started", AccountID: "acct-a", Outcome: "eligible", Details: map[string]string{"k": "v"}},
	}
	for _, e := range keep {
		wantErr(t, "AppendAudit", st.AppendAudit(ctx, e), nil)
	}
	if n, err := st.Purge(ctx, now); err != nil || n != 0 {
		t.Fatalf("Purge removed %d rows (%v), want none: audit events are PurgeAudit's", n, err)
	}
	_, err := st.PurgeAudit(ctx, time.Time{})
	wantErr(t, "PurgeAudit without a time", err, store.ErrInvalid)
	n, err := st.PurgeAudit(ctx, cut)
	wantErr(t, "PurgeAudit", err, nil)
	mustEqual(t, "events deleted", n, old)
	got, err := st.ListAudit(ctx, store.AuditQuery{Limit: store.MaxAuditLimit})
	wantErr(t, "ListAudit", err, nil)
	mustEqual(t, "events kept", noSeq(t, got), []store.AuditEvent{keep[1], keep[0]})
	n, err = st.PurgeAudit(ctx, cut)
	wantErr(t, "PurgeAudit again", err, nil)
	mustEqual(t, "events deleted the second time", n, 0)
}

// ---- purge ----

func (s *suite) purge(t *testing.T) {
	st, ctx, now := s.open(t), ctxT(t), base()
	expired := newFlow("acct-a", now.Add(-time.Hour))
	expired.ExpiresAt = now.Add(-time.Minute)
	mustCreateFlow(t, st, expired)
	mustIssue(t, st, code(expired, "m1", "h", now)) // live code, dead flow
	live := mustCreateFlow(t, st, newFlow("acct-a", now))
	mustIssue(t, st, code(live, "m1", "h1", now))
	old := code(live, "m2", "h2", now)
	old.ExpiresAt = now.Add(-time.Second)
	mustIssue(t, st, old)
	wantErr(t, "CreateSession", st.CreateSession(ctx, store.Session{ID: newID(), AccountID: "acct-a", CreatedAt: now.Add(-2 * time.Hour),
		ExpiresAt: now.Add(-time.Hour)}), nil)
	liveSess := store.Session{ID: newID(), AccountID: "acct-a", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	wantErr(t, "CreateSession", st.CreateSession(ctx, liveSess), nil)
	if _, err := st.Hit(ctx, "k", time.Minute, now.Add(-2*time.Minute)); err != nil { // ended window
		t.Fatal(err)
	}
	if _, err := st.Hit(ctx, "k", time.Hour, now); err != nil { // current window
		t.Fatal(err)
	}
	// the window before the current one has ended but is kept until the
	// current one ends too: budgets count it with the current one
	if _, err := st.Hit(ctx, "k", time.Hour, now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "AppendAudit", st.AppendAudit(ctx, store.AuditEvent{Time: now.Add(-365 * 24 * time.Hour), Type: "old"}), nil)

	n, err := st.Purge(ctx, now)
	wantErr(t, "Purge", err, nil)
	// expired flow + its code + expired code + expired session + ended window
	if n != 5 {
		t.Fatalf("Purge removed %d rows, want 5", n)
	}
	if n, _ := st.Purge(ctx, now); n != 0 {
		t.Fatalf("second Purge removed %d rows, want 0", n)
	}

	_, err = st.GetFlow(ctx, live.ID, now)
	wantErr(t, "live flow after purge", err, nil)
	_, err = st.GetSession(ctx, liveSess.ID, now)
	wantErr(t, "live session after purge", err, nil)
	if c, _ := st.Count(ctx, "k", time.Hour, now); c != 1 {
		t.Fatalf("current counter after purge = %d, want 1", c)
	}
	if c, _ := st.Count(ctx, "k", time.Minute, now.Add(-2*time.Minute)); c != 0 {
		t.Fatalf("ended counter after purge = %d, want 0", c)
	}
	if c, _ := st.Count(ctx, "k", time.Hour, now.Add(-time.Hour)); c != 1 {
		t.Fatalf("the previous window's counter after purge = %d, want 1 (kept until the current window ends)", c)
	}
	wantErr(t, "live code after purge", st.RedeemCode(ctx, live.ID, "reset", "m1", []byte("h1"), 5, now), nil)
	if ev, _ := st.ListAudit(ctx, store.AuditQuery{Type: "old"}); len(ev) != 1 {
		t.Fatalf("Purge must keep audit events, got %d", len(ev))
	}
}

func (s *suite) ping(t *testing.T) {
	st := s.open(t)
	wantErr(t, "Ping", st.Ping(ctxT(t)), nil)
	wantErr(t, "Close", st.Close(), nil)
	wantErr(t, "Close again", st.Close(), nil)
}

// noPlaintextAtRest: addresses, bearer IDs, flow data and counter keys are
// not in the raw bytes the store keeps at rest.
func (s *suite) noPlaintextAtRest(t *testing.T) {
	if s.cfg.rawBytes == nil {
		t.Skip("no WithRawBytes option: cannot inspect the bytes at rest")
	}
	st, ctx, now := s.open(t), ctxT(t), base()
	const (
		email    = "Zelda.Plaintext-Check@Secret-Domain.example"
		phone    = "+44 7700 900987"
		phoneE   = "+447700900987"
		dataMark = "flow-data-marker-q7t3"
		auditMrk = "storetest.audit-marker-k2p9" // must be found: proves the bytes are real
	)
	for i, m := range []store.Method{
		{ID: "e", AccountID: "acct-z", Type: store.MethodEmail, Address: email, CreatedAt: now},
		{ID: "s", AccountID: "acct-z", Type: store.MethodSMS, Address: phone, CreatedAt: now},
		{ID: "s2", AccountID: "acct-y", Type: store.MethodSMS, Address: phoneE, CreatedAt: now},
	} {
		wantErr(t, "AddMethod", st.AddMethod(ctx, m), nil)
		if i > 0 {
			wantErr(t, "VerifyMethod", st.VerifyMethod(ctx, m.AccountID, m.ID, now), nil)
		}
	}
	f := newFlow("acct-z", now)
	f.Data = map[string]string{"note": dataMark}
	mustCreateFlow(t, st, f)
	mustIssue(t, st, code(f, "s", "code-hash", now))
	sess := store.Session{ID: newID(), AccountID: "acct-z", Username: "zelda", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	wantErr(t, "CreateSession", st.CreateSession(ctx, sess), nil)
	for _, k := range []string{"dest:" + phoneE, "dest:" + strings.ToLower(email)} {
		if _, err := st.Hit(ctx, k, time.Hour, now); err != nil {
			t.Fatal(err)
		}
	}
	wantErr(t, "AppendAudit", st.AppendAudit(ctx, store.AuditEvent{Time: now, Type: auditMrk}), nil)

	raw := s.cfg.rawBytes(t, st)
	if !bytes.Contains(raw, []byte(auditMrk)) {
		t.Fatalf("raw bytes (%d) do not contain the audit marker: the WithRawBytes function does not return the stored data", len(raw))
	}
	lowerRaw := bytes.ToLower(raw)
	for name, secret := range map[string]string{
		"email":            email,
		"email local part": "zelda.plaintext-check",
		"email domain":     "secret-domain.example",
		"phone":            phone,
		"phone E.164":      phoneE,
		"phone digits":     "7700900987",
		"flow data":        dataMark,
		"flow ID":          f.ID,
		"session ID":       sess.ID,
	} {
		if bytes.Contains(lowerRaw, bytes.ToLower([]byte(secret))) {
			t.Errorf("%s found in plaintext in the bytes at rest", name)
		}
	}
}

// countersUnhit: Unhit takes back one hit of the window the hit was made
// in, never below zero, and leaves other keys and windows alone.
func (s *suite) countersUnhit(t *testing.T) {
	st, ctx := s.open(t), ctxT(t)
	now := time.Date(2030, 1, 1, 10, 59, 0, 0, time.UTC)
	later := now.Add(2 * time.Minute) // the next hour's window
	for _, at := range []time.Time{now, now, now, later} {
		if _, err := st.Hit(ctx, "codefail:x", time.Hour, at); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Hit(ctx, "codefail:y", time.Hour, now); err != nil {
		t.Fatal(err)
	}
	// a hit made at now, taken back after the window has moved on
	if err := st.Unhit(ctx, "codefail:x", time.Hour, now); err != nil {
		t.Fatal(err)
	}
	count := func(key string, at time.Time, want int) {
		t.Helper()
		if n, err := st.Count(ctx, key, time.Hour, at); err != nil || n != want {
			t.Fatalf("Count(%s, %s) = %d, %v; want %d", key, at, n, err, want)
		}
	}
	count("codefail:x", now, 2)
	count("codefail:x", later, 1)
	count("codefail:y", now, 1)
	// never below zero, and a key that never counted is fine
	for range 3 {
		if err := st.Unhit(ctx, "codefail:x", time.Hour, later); err != nil {
			t.Fatal(err)
		}
	}
	count("codefail:x", later, 0)
	if err := st.Unhit(ctx, "never", time.Hour, now); err != nil {
		t.Fatal(err)
	}
	count("never", now, 0)
	// the next hit counts from zero again
	if n, err := st.Hit(ctx, "codefail:x", time.Hour, later); err != nil || n != 1 {
		t.Fatalf("Hit after the count was taken back to zero = %d, %v; want 1", n, err)
	}
}

func (s *suite) countersReset(t *testing.T) {
	st, ctx := s.open(t), ctxT(t)
	now := time.Date(2030, 1, 1, 10, 30, 0, 0, time.UTC)
	for _, at := range []time.Time{now.Add(-time.Hour), now, now} {
		if _, err := st.Hit(ctx, "bindfail:x", time.Hour, at); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Hit(ctx, "bindfail:y", time.Hour, now); err != nil {
		t.Fatal(err)
	}
	if err := st.Reset(ctx, "bindfail:x"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key  string
		at   time.Time
		want int
	}{{"bindfail:x", now, 0}, {"bindfail:x", now.Add(-time.Hour), 0}, {"bindfail:y", now, 1}} {
		n, err := st.Count(ctx, c.key, time.Hour, c.at)
		if err != nil || n != c.want {
			t.Fatalf("Count(%s, %s) = %d, %v; want %d", c.key, c.at, n, err, c.want)
		}
	}
	// resetting a key that never counted is fine
	if err := st.Reset(ctx, "never"); err != nil {
		t.Fatal(err)
	}
}
