// Package e2e runs the real latchkey binary against real servers: a slapd
// or a Samba AD DC (directory/dirtest), mailpit for mail and a local server
// that enforces Twilio's Messages API for SMS (notify/notifytest).
package e2e

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"math"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/config"
	"github.com/latchkeyhq/latchkey/directory/dirtest"
	flowrules "github.com/latchkeyhq/latchkey/flow"
	"github.com/latchkeyhq/latchkey/internal/blackbox"
	"github.com/latchkeyhq/latchkey/internal/testport"
	"github.com/latchkeyhq/latchkey/notify/notifytest"
	"github.com/latchkeyhq/latchkey/store/pgtest"
)

var binary string

var httpClient = &http.Client{Timeout: 30 * time.Second}

// defaultParallel is how many of the suite's tests run at once unless
// -parallel is given (see gate). The tests spend most of their time waiting on the
// servers they start (a CI run of the package used about 170 s of CPU in
// 570 s), and each has servers of its own (slapd on free ports, a Samba DC
// on a slot of its own, mailpit, a gateway, a browser context), so more of
// them than the default (GOMAXPROCS: 2 here) fit.
const defaultParallel = 6

func TestMain(m *testing.M) {
	flag.Parse()
	gate.size = defaultParallel
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "test.parallel" {
			if n, err := strconv.Atoi(f.Value.String()); err == nil && n > 0 {
				gate.size = int64(n)
			}
		}
	})
	gate.sem = &prioSem{size: gate.size}
	flag.Set("test.parallel", "1000")
	dir, err := os.MkdirTemp("", "latchkey-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "latchkey")
	out, err := exec.Command("go", "build", "-o", binary, "../cmd/latchkey").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building latchkey: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	stopChromium()
	pgtest.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// gate bounds how many of the package's tests run at once (defaultParallel,
// or -parallel when given): every test takes one share of it for its whole
// run (subtests included) and the timing tests take all of it, so that
// their measurements are not disturbed by the package's other tests (the
// CPU those use comes in bursts that move the median of the answers by a
// millisecond or more; other packages of a `go test ./...` may still run
// beside them, as before). The testing package's own limit (-parallel) is
// set far above it: a test waiting for its share must not hold one of
// those slots, or the parallel subtests of a running test could wait for
// a slot forever. The gate (prioSem) is first come, first served among
// tests of one priority (longTests), so a timing test waiting for the
// whole gate is not overtaken.
var gate = struct {
	sem  *prioSem
	size int64
}{}

// longTests are the package's longest tests, with the seconds each took in
// one run (on tmpfs, 2 cores, beside the rest of the package): when shares
// free up, a waiting test of this list goes first, the longest first, so
// that the run does not end with one long test still going on an
// otherwise idle machine (the two browser tests, started last by chance,
// ran alone for the last minute of one run). Tests not listed go in the
// order they asked.
var longTests = map[string]int{
	"TestBrowserActiveDirectory":            71,
	"TestActiveDirectoryDayOne":             62,
	"TestQuestionsBrowser":                  58,
	"TestBrowserOpenLDAP":                   66,
	"TestChecklistOutages":                  37,
	"TestDemo":                              37,
	"TestTOTPBrowserActiveDirectory":        36,
	"TestCheckActiveDirectoryGeneratedCert": 36,
	"TestAttacks":                           35,
	"TestBrowserPasskeyActiveDirectory":     34,
	"TestAPIActiveDirectory":                32,
	"TestPrivilegedActiveDirectory":         31,
	"TestBrowserPasskeyOpenLDAP":            26,
	"TestQuestionsActiveDirectory":          26,
	"TestTOTPOpenLDAP":                      24,
	"TestBlackBox":                          20,
	"TestTOTPActiveDirectory":               20,
	"TestOutboxKilledGatewayLosesNoCode":    58,  // measured alone, beside a CI run
	"TestOutboxSMTPOutage":                  135, // mostly the two-minute outage
	"TestHAProxyRollingUpgrade":             109, // beside a CI run: three drains of 15 s, a build, a crash
}

// prioSem is a weighted semaphore that admits waiters by priority (higher
// first), then in the order they came; a waiter that does not fit yet
// holds back every one behind it, as golang.org/x/sync's semaphore does.
type prioSem struct {
	mu         sync.Mutex
	size, used int64
	waiters    []*semWaiter
}

type semWaiter struct {
	n     int64
	prio  int
	ready chan struct{}
}

// acquire takes n shares, waiting behind every waiter of the same or a
// higher priority.
func (s *prioSem) acquire(n int64, prio int) {
	s.mu.Lock()
	if len(s.waiters) == 0 && s.used+n <= s.size {
		s.used += n
		s.mu.Unlock()
		return
	}
	w := &semWaiter{n: n, prio: prio, ready: make(chan struct{})}
	i := 0
	for i < len(s.waiters) && s.waiters[i].prio >= prio {
		i++
	}
	s.waiters = slices.Insert(s.waiters, i, w)
	s.admit() // it may be first now, and fit
	s.mu.Unlock()
	<-w.ready
}

// release gives back n shares and admits the waiters at the head that fit.
func (s *prioSem) release(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.used -= n
	s.admit()
}

// admit lets in the waiters at the head that fit (s.mu held).
func (s *prioSem) admit() {
	for len(s.waiters) > 0 && s.used+s.waiters[0].n <= s.size {
		w := s.waiters[0]
		s.waiters = s.waiters[1:]
		s.used += w.n
		close(w.ready)
	}
}

// parallel marks a test parallel and waits for its share of the gate,
// held until the test and its subtests end.
func parallel(t *testing.T) {
	t.Helper()
	t.Parallel()
	gate.sem.acquire(1, longTests[t.Name()])
	t.Cleanup(func() { gate.sem.release(1) })
}

// alone marks a test parallel and waits until no other test of the
// package runs but other alone tests, holding the whole gate until it and
// its subtests end (they may run in parallel with each other). The alone
// tests (the timing tests) share one window: the first takes the gate,
// the others join it, the last out gives it back. They measure requests
// that mostly wait on the gateway's hold, so two of them side by side
// cost each other little, while one after the other they kept the rest of
// the package waiting twice; each one's noise falls on every name of the
// other alike (see TestEnumerationTiming).
//
// The window is taken before t.Parallel, while the package's sequential
// tests run and no parallel test holds a share: the alone tests then run
// first, and the others wait for them. Taken later, it waited for every
// running test to end while no new one could start (the semaphore is first
// come, first served), leaving shares idle for as long as the longest of
// them (14 s in one run).
func alone(t *testing.T) {
	t.Helper()
	window.Lock()
	if window.n == 0 {
		gate.sem.acquire(gate.size, math.MaxInt) // before any test of longTests
	}
	window.n++
	window.Unlock()
	// registered before t.Parallel: it runs when the test and its subtests
	// have ended, as any cleanup
	t.Cleanup(func() {
		window.Lock()
		defer window.Unlock()
		window.n--
		if window.n == 0 {
			gate.sem.release(gate.size)
		}
	})
	t.Parallel()
}

// window is the alone tests' shared hold on the whole gate: n of them
// are in it. Its lock is held while the first waits for the gate, so a
// second one arriving then waits for the same window.
var window struct {
	sync.Mutex
	n int
}

// params tune one gateway's configuration, written from config's types
// by blackbox (writeConfig). Extra, Limits, Tier and Server are YAML
// fragments merged over the typed configuration (blackbox.Merge): the
// escape hatch for what a test states as YAML.
type params struct {
	MethodsRequired int
	CodeTTL         time.Duration
	Extra           string // policy keys (indented lines, merged over policy:)
	Limits          string // whole top-level sections, limits: and others (merged over the defaults)
	Methods         string // policy.methods (default "email, sms")
	// Store replaces the store section (default: SQLite in the work
	// directory); see postgresStore.
	Store *config.Store
	// SQLitePath puts the default SQLite database at this path.
	SQLitePath string
	// SecretKey is the server.secret_key (random when nil): instances
	// sharing a store share it.
	SecretKey []byte
	// DirURLs replaces directory.urls (default: the server's LDAPS URL);
	// DirPlaintext sets directory.allow_plaintext; DirTimeout replaces
	// directory.timeout (default 10s).
	DirURLs      []string
	DirPlaintext bool
	DirTimeout   time.Duration
	Tier         string // more keys of the sspr-admins tier (indented lines)
	Server       string // more keys of the server: section (indented lines)
	// PublicHost is the host of server.public_url (default 127.0.0.1;
	// passkeys need a name)
	PublicHost string
	// Environ is set in the gateway process's environment (LATCHKEY_*
	// variables override the configuration file), at every launch.
	Environ map[string]string
	// Admin is admin.groups (the console is off when empty).
	Admin []string
}

func (p params) publicHost() string {
	if p.PublicHost != "" {
		return p.PublicHost
	}
	return "127.0.0.1"
}

// postgresStore is a params.Store for database db of a pgtest server.
func postgresStore(pg *pgtest.Server, db string) *config.Store {
	s := blackbox.PostgresStore(pg.DSN(db), true)
	return &s
}

// env is one running gateway with its servers.
type env struct {
	t     testing.TB
	dir   *dirtest.Server
	mail  *notifytest.Mailpit
	sms   *notifytest.FakeTwilio
	base  string
	work  string
	log   string
	audit string
	// proc is the process (cmd its command); exited closes when it ends
	proc    *blackbox.Process
	cmd     *exec.Cmd
	exited  <-chan struct{}
	cfgPath string // the configuration
	// secrets the run produced (codes, tokens, flow ids), for log scans
	secrets []string
	// peers are more instances sharing this one's store: api() sends each
	// call to the next instance in turn, so every flow hops between them
	peers []*env
	calls atomic.Int64
	// environ is params.Environ
	environ map[string]string
	// bin is the latchkey binary launch starts: the one TestMain built
	// when empty
	bin string
}

// target is the base URL of the instance the next API call goes to.
func (e *env) target() string {
	if len(e.peers) == 0 {
		return e.base
	}
	i := int((e.calls.Add(1) - 1) % int64(len(e.peers)+1))
	if i == 0 {
		return e.base
	}
	return e.peers[i-1].base
}

// The credentials of the SMS server startMail starts.
const (
	twilioSID   = blackbox.TwilioSID
	twilioToken = blackbox.TwilioToken
	twilioFrom  = blackbox.TwilioFrom
)

func freePort(t testing.TB) int {
	p, err := testport.Free()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// configs are the configurations writeConfig wrote, by path (variant
// writes changed copies).
var configs sync.Map

// writeConfig writes a gateway configuration for srv, mail and sms into a
// new work directory (secrets in files next to it) and returns the
// directory, the configuration's path and the port it listens on. It is
// blackbox.Config with an sspr-admins tier of two methods, a helpdesk and
// what p changes.
func writeConfig(t testing.TB, srv *dirtest.Server, mail *notifytest.Mailpit, sms *notifytest.FakeTwilio, p params) (work, cfgPath string, port int) {
	t.Helper()
	work = t.TempDir()
	port = freePort(t)
	key := ""
	if p.SecretKey != nil {
		key = base64.StdEncoding.EncodeToString(p.SecretKey)
	}
	c, err := blackbox.Config(work, port, key, blackbox.Servers{Dir: srv, Mail: mail, SMS: sms})
	if err != nil {
		t.Fatal(err)
	}
	c.Server.PublicURL = "http://" + p.publicHost() + ":" + strconv.Itoa(port)
	c.Server.Helpdesk = "mailto:helpdesk@example.org"
	c.Policy.Tiers = []config.Tier{{Groups: []string{srv.Group("sspr-admins")}, MethodsRequired: 2}}
	if p.MethodsRequired != 0 {
		c.Policy.MethodsRequired = p.MethodsRequired
	}
	if p.CodeTTL != 0 {
		c.Policy.CodeTTL = p.CodeTTL
	}
	if p.Methods != "" {
		c.Policy.Methods = strings.Split(p.Methods, ", ")
	}
	switch {
	case p.Store != nil:
		c.Store = *p.Store
	case p.SQLitePath != "":
		c.Store = blackbox.SQLiteStore(p.SQLitePath)
	}
	if p.DirURLs != nil {
		c.Directory.URLs = p.DirURLs
	}
	c.Directory.AllowPlaintext = p.DirPlaintext
	if p.Admin != nil {
		c.Admin.Groups = p.Admin
	}
	if p.DirTimeout != 0 {
		c.Directory.Timeout = p.DirTimeout
	}
	// no drain unless a test asks (p.Server): the default with postgres
	// (15 s) would only slow every stop down
	c.Server.ShutdownDelay = 0
	for _, f := range []struct {
		dst  any
		yaml string
	}{{&c.Policy, p.Extra}, {&c.Policy.Tiers[0], p.Tier}, {&c.Server, p.Server}, {c, p.Limits}} {
		if err := blackbox.Merge(f.dst, f.yaml); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath = filepath.Join(work, "latchkey.yaml")
	if err := blackbox.WriteConfig(cfgPath, c); err != nil {
		t.Fatal(err)
	}
	configs.Store(cfgPath, c)
	return work, cfgPath, port
}

// variant writes a copy of the configuration at cfg (one writeConfig
// wrote) changed by edit, next to it, and returns its path. edit changes
// a copy: it may set fields, not change the lists it shares with cfg's.
func variant(t *testing.T, cfg string, edit func(c *config.Config)) string {
	t.Helper()
	orig, ok := configs.Load(cfg)
	if !ok {
		t.Fatalf("%s: not written by writeConfig", cfg)
	}
	c := *orig.(*config.Config)
	edit(&c)
	f, err := os.CreateTemp(filepath.Dir(cfg), "variant-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := blackbox.WriteConfig(f.Name(), &c); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// startGateway writes a configuration for srv and starts latchkey serve.
// The mail and SMS servers may be shared between gateways of one test.
func startGateway(t testing.TB, srv *dirtest.Server, mail *notifytest.Mailpit, sms *notifytest.FakeTwilio, p params) *env {
	t.Helper()
	work, cfgPath, port := writeConfig(t, srv, mail, sms, p)
	base := "http://" + p.publicHost() + ":" + strconv.Itoa(port)
	e := &env{t: t, dir: srv, mail: mail, sms: sms, base: base, work: work, cfgPath: cfgPath,
		log: filepath.Join(work, "latchkey.log"), audit: filepath.Join(work, "audit.log"), environ: p.Environ}
	t.Cleanup(func() {
		e.stop()
		if t.Failed() {
			b, _ := os.ReadFile(e.log)
			t.Logf("gateway %s log:\n%s", e.base, tail(string(b), 6000))
		}
	})
	if p.Store != nil && p.Store.Driver == config.StorePostgres && p.Store.Migrate != config.MigrateOnStart {
		// as an operator does: serve does not migrate a PostgreSQL store
		// (store.migrate: manual)
		e.migrate()
	}
	e.launch()
	return e
}

// migrate runs latchkey migrate with e's configuration.
func (e *env) migrate() {
	e.t.Helper()
	if out, err := e.run(binary, "migrate"); err != nil {
		e.t.Fatalf("latchkey migrate: %v\n%s", err, out)
	}
}

// run runs the latchkey binary bin's command with e's configuration and
// environment, for at most a minute, and returns what it printed.
func (e *env) run(bin, command string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, command, "--config", e.cfgPath)
	if len(e.environ) > 0 {
		cmd.Env = os.Environ()
		for k, v := range e.environ {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// launch starts latchkey serve with e's configuration (appending to its
// log) and waits until it has logged that it listens and /readyz answers
// 200 (blackbox.Launch).
func (e *env) launch() {
	e.t.Helper()
	var environ []string
	for k, v := range e.environ {
		environ = append(environ, k+"="+v)
	}
	bin := e.bin
	if bin == "" {
		bin = binary
	}
	p, err := blackbox.Launch(bin, e.cfgPath, e.log, e.base, environ, true)
	if err != nil {
		e.t.Fatal(err)
	}
	e.proc, e.cmd, e.exited = p, p.Cmd, p.Exited
}

// stop sends SIGTERM and waits for the process to exit (SIGKILL after
// 30 s); it returns the exit code. Stopping a stopped gateway does nothing.
func (e *env) stop() int {
	if e.proc == nil {
		return -1
	}
	return e.proc.Stop()
}

// kill ends the process with SIGKILL, as a crash or an evicted pod would.
func (e *env) kill() { e.proc.Kill() }

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func startMail(t testing.TB) (*notifytest.Mailpit, *notifytest.FakeTwilio) {
	return notifytest.StartMailpit(t), blackbox.StartTwilio(t)
}

// resp is an API answer.
type resp struct{ blackbox.Answer }

func (r resp) str(key string) string { return r.Str(key) }

func (r resp) errCode() string { return r.ErrCode() }

// api calls the gateway (the next instance when there are peers).
func (e *env) api(method, path, token string, body any) resp {
	e.t.Helper()
	a, err := (&blackbox.Client{Bases: []string{e.target()}, HTTP: httpClient}).Do(method, path, token, body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp{a}
}

func (e *env) must(want int, r resp, what string) resp {
	e.t.Helper()
	if r.Status != want {
		e.t.Fatalf("%s: status %d, want %d: %s", what, r.Status, want, r.Body)
	}
	return r
}

// waitCtx bounds a wait for a message.
func waitCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 15*time.Second)
}

// mailCode waits for a verification code mailed to addr and deletes the
// mailbox contents afterwards.
func (e *env) mailCode(addr string) string {
	e.t.Helper()
	ctx, cancel := waitCtx()
	defer cancel()
	box := blackbox.Mailbox{Mail: e.mail}
	c, err := box.Code(ctx, addr)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := box.Clear(ctx); err != nil {
		e.t.Fatal(err)
	}
	e.secrets = append(e.secrets, c)
	return c
}

// noSendWait is how long a check that nothing was sent waits: longer than
// the outbox holds a message before its first try (flow.MaxSendDelay),
// with a second for mailpit to take it in on a busy machine.
const noSendWait = flowrules.MaxSendDelay + time.Second

// codesTo is how many mails with a code to addr mailpit holds once the
// outbox is quiet (settleMail): other mail (notices, other addresses) is
// not counted.
func (e *env) codesTo(addr string) int {
	e.t.Helper()
	settleMail(e.t, e.mail)
	ctx, cancel := waitCtx()
	defer cancel()
	l, err := blackbox.Mailbox{Mail: e.mail}.List(ctx, addr, blackbox.CodeSubject)
	if err != nil {
		e.t.Fatal(err)
	}
	return len(l)
}

// mailCount is how many messages mailpit holds once the outbox is quiet
// (settleMail).
func (e *env) mailCount() int {
	e.t.Helper()
	return settleMail(e.t, e.mail)
}

// clearMail deletes every message mailpit holds.
func (e *env) clearMail() {
	e.t.Helper()
	ctx, cancel := waitCtx()
	defer cancel()
	if err := (blackbox.Mailbox{Mail: e.mail}).Clear(ctx); err != nil {
		e.t.Fatal(err)
	}
}

// smsCode waits for a code sent by SMS to number and forgets the SMS
// sent so far.
func (e *env) smsCode(number string) string {
	e.t.Helper()
	ctx, cancel := waitCtx()
	defer cancel()
	c, err := (blackbox.SMS{Twilio: e.sms}).Code(ctx, number)
	if err != nil {
		e.t.Fatal(err)
	}
	e.sms.Reset()
	e.secrets = append(e.secrets, c)
	return c
}

// addToGroup makes a seeded user a direct member of a seeded group.
func addToGroup(t *testing.T, srv *dirtest.Server, user, group string) {
	srv.Modify(t, fmt.Sprintf("dn: %s\nchangetype: modify\nadd: member\nmember: %s\n", srv.Group(group), srv.UserDN(user)))
}

func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}

func newJar() http.CookieJar {
	j, _ := cookiejar.New(nil)
	return j
}

// directory is one kind of real directory a suite runs against.
type directoryKind struct {
	name  string
	start func(testing.TB) *dirtest.Server
}

// directories lists the real directories every black-box suite runs
// against: a throwaway slapd and the shared Samba AD DC.
func directories() []directoryKind {
	return []directoryKind{
		{"OpenLDAP", func(t testing.TB) *dirtest.Server { return dirtest.StartOpenLDAP(t) }},
		{"ActiveDirectory", func(t testing.TB) *dirtest.Server { return dirtest.StartSamba(t) }},
	}
}
