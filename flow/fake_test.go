package flow

import (
	"context"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/notify/notifytest"
	"github.com/latchkeyhq/latchkey/policy"
	"github.com/latchkeyhq/latchkey/store"
	"github.com/latchkeyhq/latchkey/store/pgtest"
)

// fakeDir is an in-memory directory for fast unit tests; the e2e suite
// runs the same flows against real servers.
type fakeDir struct {
	mu       sync.Mutex
	users    map[string]*directory.User // by lower-case username
	pw       map[string]string          // by DN
	groups   map[string][]string        // DN -> groups (nested already resolved)
	sids     map[string][]string        // DN -> AD token (nil: OpenLDAP)
	writes   int
	binds    int
	lockout  int
	minLen   int
	history  map[string][]string
	unlocked int
	// writeDown makes a write fail before it reaches the directory;
	// replyLost applies it and then fails as if its answer never came
	writeDown, replyLost bool
	// duringWrite, when set, runs after each successful write and before
	// SetPassword returns: what happens while a slow write is under way
	duringWrite func()
}

func newFakeDir() *fakeDir {
	d := &fakeDir{users: map[string]*directory.User{}, pw: map[string]string{}, groups: map[string][]string{}, history: map[string][]string{}, minLen: 8}
	add := func(name, pw string, groups ...string) {
		u := &directory.User{DN: "uid=" + name + ",ou=people,dc=x", ID: "id-" + name, Username: name, DisplayName: strings.ToUpper(name[:1]) + name[1:] + " Test", Mail: name + "@corp.example"}
		// set once, long ago, in a zone other than UTC (as the directory
		// layer may hand it over)
		u.Status.PasswordChanged = time.Date(2026, 1, 5, 9, 30, 0, 0, time.FixedZone("CET", 3600))
		d.users[name] = u
		d.pw[u.DN] = pw
		d.groups[u.DN] = groups
	}
	add("carol", "Carol-Pass1!", "cn=staff")
	add("alice", "Alice-Pass1!", "cn=staff", "cn=admins")
	add("erin", "Erin-Pass1!")
	add("ivan", "Ivan-Pass1!", "cn=staff")
	d.users["ivan"].Status.Disabled = true
	return d
}

func (d *fakeDir) Lookup(ctx context.Context, name string) (*directory.User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if u, ok := d.users[strings.ToLower(name)]; ok {
		c := *u
		return &c, nil
	}
	return nil, &directory.Error{Op: "lookup", Kind: directory.ErrNotFound}
}

func (d *fakeDir) Refresh(ctx context.Context, u *directory.User) (*directory.User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, x := range d.users {
		if x.DN == u.DN {
			c := *x
			return &c, nil
		}
	}
	return nil, &directory.Error{Op: "refresh", Kind: directory.ErrNotFound}
}

func (d *fakeDir) VerifyPassword(ctx context.Context, u *directory.User, pw string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.binds++
	if pw == "" || d.pw[u.DN] != pw {
		return &directory.Error{Op: "verify", Kind: directory.ErrInvalidCredentials}
	}
	return nil
}

func (d *fakeDir) Membership(ctx context.Context, u *directory.User, groups []string) (directory.Membership, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]bool{}
	for _, g := range groups {
		for _, h := range d.groups[u.DN] {
			if strings.EqualFold(g, h) {
				out[g] = true
			}
		}
		if !out[g] {
			out[g] = false
		}
	}
	return directory.Membership{MemberOf: out, SIDs: d.sids[u.DN]}, nil
}

func (d *fakeDir) SetPassword(ctx context.Context, u *directory.User, pw string, o directory.SetOptions) error {
	err := d.setPassword(u, pw)
	if hook := d.duringWrite; hook != nil && err == nil {
		hook()
	}
	return err
}

func (d *fakeDir) setPassword(u *directory.User, pw string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	time.Sleep(5 * time.Millisecond) // widen race windows
	if d.writeDown {
		return &directory.Error{Op: "set", Kind: directory.ErrUnavailable}
	}
	if len(pw) < d.minLen {
		return &directory.Error{Op: "set", Kind: directory.ErrPolicyRejected, Reason: directory.ReasonTooShort}
	}
	for _, h := range append(d.history[u.DN], d.pw[u.DN]) {
		if h == pw {
			return &directory.Error{Op: "set", Kind: directory.ErrPolicyRejected, Reason: directory.ReasonInHistory}
		}
	}
	d.history[u.DN] = append(d.history[u.DN], d.pw[u.DN])
	d.pw[u.DN] = pw
	d.writes++
	// the directory's own record of when the password was set, as
	// pwdChangedTime and pwdLastSet are
	for _, x := range d.users {
		if x.DN == u.DN {
			x.Status.PasswordChanged = time.Now()
		}
	}
	if d.replyLost {
		return &directory.Error{Op: "set", Kind: directory.ErrUnavailable}
	}
	return nil
}

func (d *fakeDir) ChangePassword(ctx context.Context, u *directory.User, old, pw string, proven func() error) error {
	if err := d.VerifyPassword(ctx, u, old); err != nil {
		return err
	}
	if proven != nil {
		if err := proven(); err != nil {
			return err
		}
	}
	return d.SetPassword(ctx, u, pw, directory.SetOptions{})
}

func (d *fakeDir) Unlock(ctx context.Context, u *directory.User) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.unlocked++
	return nil
}

func (d *fakeDir) EffectivePolicy(ctx context.Context, u *directory.User) (directory.PasswordPolicy, error) {
	return directory.PasswordPolicy{Known: true, MinLength: d.minLen, HistoryLength: 3, LockoutThreshold: d.lockout}, nil
}
func (d *fakeDir) Info() directory.ServerInfo     { return directory.ServerInfo{} }
func (d *fakeDir) Ping(ctx context.Context) error { return nil }
func (d *fakeDir) Close() error                   { return nil }

func (d *fakeDir) password(name string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pw[d.users[name].DN]
}

// testbed is a Service and Server over the fake directory, a real SQLite
// store in a temp dir and a message recorder.
type testbed struct {
	svc *Service
	dir *fakeDir
	st  store.Store
	rec *notifytest.Recorder
	// read counts the codes a test has read, per recipient
	read map[string]int
	// dbPath is the SQLite store's file
	dbPath string
}

func newTestbed(t *testing.T, tweak func(*Options)) *testbed {
	t.Helper()
	st, dbPath := openTestStore(t)
	pu, _ := url.Parse("https://sspr.example.org")
	o := Options{
		PublicURL: pu,
		SecretKey: []byte("0123456789abcdef0123456789abcdef-test"),
		Helpdesk:  "mailto:help@example.org",
		Eligibility: policy.Eligibility{Scope: policy.ScopeSelected, Groups: []string{"cn=staff"}, ExcludePrivileged: true,
			MethodsRequired: 1, Methods: []string{"email", "sms"},
			Tiers: []policy.Tier{{Groups: []string{"cn=admins"}, MethodsRequired: 2}}},
		Password:         policy.Rules{MinLength: 8},
		AllowedCountries: []string{"GB"},
		// many tests start hundreds of flows from one (empty) address;
		// tests of the per-address budget set their own
		Limits: Limits{StartsPerIP: 100000},
	}
	if tweak != nil {
		tweak(&o)
	}
	rec := &notifytest.Recorder{}
	dir := newFakeDir()
	svc, err := NewService(o, Deps{Directory: dir, Store: st, Mailer: rec, SMS: rec, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	return &testbed{svc: svc, dir: dir, st: st, rec: rec, read: map[string]int{}, dbPath: dbPath}
}

// onPostgres holds the tests (subtests of onBothStores) whose testbed
// runs on a throwaway PostgreSQL instead of SQLite.
var onPostgres sync.Map // *testing.T -> true

// onBothStores runs test as the subtests SQLite and PostgreSQL, each with
// its testbeds on that store (PostgreSQL from store/pgtest: skipped when
// it is not installed, failed under CI).
func onBothStores(t *testing.T, test func(t *testing.T)) {
	t.Run("SQLite", test)
	t.Run("PostgreSQL", func(t *testing.T) {
		onPostgres.Store(t, true)
		t.Cleanup(func() { onPostgres.Delete(t) })
		test(t)
	})
}

// openTestStore opens a fresh store for t: SQLite in a temp dir (and its
// file's path), or a new database on the package's PostgreSQL server under
// onBothStores (no path).
func openTestStore(t *testing.T) (store.Store, string) {
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

func storeQuery(typ string) store.AuditQuery { return store.AuditQuery{Type: typ} }

// codeSendDelay is how long a check that nothing was sent waits: the
// longest a message waits in the outbox before its first try
// (MaxSendDelay), with half a second for a worker to be scheduled on a busy
// machine.
const codeSendDelay = MaxSendDelay + 500*time.Millisecond
