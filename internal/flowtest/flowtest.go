// Package flowtest holds the test helpers that the tests of package flow
// and of package gateway (its web face) share and that do not need the
// flow package itself: a settable clock, a log buffer, authenticator-app
// codes, the security questions and answers of the tests, and an inbox
// that reads codes from a notifytest.Recorder, a software passkey that fails
// the test on error, and stores on SQLite and PostgreSQL.
//
// The helpers that drive a flow.Service (enroll, addPhone, appFlow, ...)
// stay in each package's tests: flow's tests are in package flow, and a
// package they import cannot import flow (an import cycle).
package flowtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/latchkeyhq/latchkey/internal/webauthntest"
	"github.com/latchkeyhq/latchkey/notify/notifytest"
	"github.com/latchkeyhq/latchkey/store"
	"github.com/latchkeyhq/latchkey/store/pgtest"
)

// Clock is a settable clock for a service (Deps.Now).
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock that reads t until moved.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now is the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Add moves the clock by d.
func (c *Clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// SyncBuffer collects log lines written from several goroutines.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// CodeAt is the authenticator app's code for secret at t.
func CodeAt(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// WrongTOTP is a 6-digit code that none of the accepted steps has.
func WrongTOTP(t testing.TB, secret string, now time.Time) string {
	t.Helper()
	near := map[string]bool{}
	for d := -2; d <= 2; d++ {
		near[CodeAt(t, secret, now.Add(time.Duration(d)*30*time.Second))] = true
	}
	for i := 0; ; i++ {
		c := fmt.Sprintf("%06d", (123457+i*7919)%1000000)
		if !near[c] {
			return c
		}
	}
}

// Questions are the security questions of the tests.
var Questions = []string{
	"What was the name of your first pet?",
	"In what town was your first job?",
	"What was the name of the street you grew up on?",
	"What was the first concert you went to?",
}

// GoodAnswers are three acceptable answers, by question text.
var GoodAnswers = map[string]string{
	Questions[0]: "  Ｆｌｕｆｆｙ   Ｂｕｎｎｙ ",
	Questions[1]: "Zürich",
	Questions[2]: "Acacia Avenue",
}

// TypedAnswers are the same answers as a user types them at reset.
var TypedAnswers = map[string]string{
	Questions[0]: "fluffy bunny",
	Questions[1]: "ZU\u0308RICH", // decomposed Ü, upper case
	Questions[2]: "acacia   avenue",
}

// Digits finds a 6- to 8-digit code in a message.
var Digits = regexp.MustCompile(`\b(\d{6,8})\b`)

// Inbox reads the codes and messages a Recorder got, remembering which
// codes a test has read.
type Inbox struct {
	Rec  *notifytest.Recorder
	mu   sync.Mutex
	read map[string]int
}

// NewInbox reads rec.
func NewInbox(rec *notifytest.Recorder) *Inbox { return &Inbox{Rec: rec, read: map[string]int{}} }

// LastCode waits for the next code sent to `to` (email or SMS) that the
// test has not read yet.
func (in *Inbox) LastCode(t testing.TB, to string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		var codes []string
		for _, e := range in.Rec.Emails() {
			if e.To == to && strings.Contains(e.Subject, "code") {
				codes = append(codes, Digits.FindStringSubmatch(e.Text)[1])
			}
		}
		for _, m := range in.Rec.SMS() {
			if m.To == to && strings.Contains(m.Body, "is your") {
				codes = append(codes, Digits.FindStringSubmatch(m.Body)[1])
			}
		}
		in.mu.Lock()
		if len(codes) > in.read[to] {
			in.read[to] = len(codes)
			in.mu.Unlock()
			return codes[len(codes)-1]
		}
		in.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no code sent to %s", to)
	return ""
}

// Count is how many messages (codes and notices alike) went to `to`.
func (in *Inbox) Count(to string) int {
	n := 0
	for _, e := range in.Rec.Emails() {
		if e.To == to {
			n++
		}
	}
	for _, s := range in.Rec.SMS() {
		if s.To == to {
			n++
		}
	}
	return n
}

// Wait waits for n messages to addr (codes and notices alike).
func (in *Inbox) Wait(t testing.TB, addr string, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); in.Count(addr) < n; { // bounded wait on a positive signal
		if time.Now().After(deadline) {
			t.Fatalf("%d messages to %s, want %d", in.Count(addr), addr, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// SoftKey is the shared software authenticator (internal/webauthntest)
// with test-fatal errors; copying a SoftKey by value shares its key.
type SoftKey struct {
	T testing.TB
	webauthntest.Authenticator
}

// NewSoftKey is a new authenticator for the tests' origin,
// https://sspr.example.org.
func NewSoftKey(t testing.TB) *SoftKey {
	t.Helper()
	a, err := webauthntest.New("https://sspr.example.org")
	if err != nil {
		t.Fatal(err)
	}
	return &SoftKey{T: t, Authenticator: *a}
}

// MustCreate answers creation options as navigator.credentials.create would.
func (k *SoftKey) MustCreate(options json.RawMessage) []byte {
	k.T.Helper()
	b, err := k.Create(options)
	if err != nil {
		k.T.Fatal(err)
	}
	return b
}

// MustGet answers request options as navigator.credentials.get would.
func (k *SoftKey) MustGet(options json.RawMessage) []byte {
	k.T.Helper()
	b, err := k.Get(options)
	if err != nil {
		k.T.Fatal(err)
	}
	return b
}

// onPostgres holds the tests (subtests of OnBothStores) whose stores are
// on a throwaway PostgreSQL instead of SQLite.
var onPostgres sync.Map // *testing.T -> true

// OnBothStores runs test as the subtests SQLite and PostgreSQL, each with
// the stores OpenStore opens for it on that store (PostgreSQL from
// store/pgtest: skipped when it is not installed, failed under CI).
func OnBothStores(t *testing.T, test func(t *testing.T)) {
	t.Run("SQLite", test)
	t.Run("PostgreSQL", func(t *testing.T) {
		onPostgres.Store(t, true)
		t.Cleanup(func() { onPostgres.Delete(t) })
		test(t)
	})
}

// OpenStore opens a fresh store for t: SQLite in a temp dir (and its
// file's path), or a new database on the package's PostgreSQL server under
// OnBothStores (no path).
func OpenStore(t *testing.T) (store.Store, string) {
	t.Helper()
	key := []byte(strings.Repeat("k", 32))
	var st store.Store
	var err error
	dbPath := ""
	if _, pg := onPostgres.Load(t); pg {
		srv := pgtest.Start(t)
		st, err = store.OpenPostgres(context.Background(), srv.DSN(srv.NewDatabase(t)), key, store.PostgresOptions{})
	} else {
		dbPath = filepath.Join(t.TempDir(), "t.db")
		st, err = store.OpenSQLite(context.Background(), "file:"+dbPath, key)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, dbPath
}
