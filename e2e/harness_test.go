// Package e2e runs the real latchkey binary against real servers: a slapd
// or a Samba AD DC (directory/dirtest), mailpit for mail and a local server
// that enforces Twilio's Messages API for SMS (notify/notifytest).
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/directory/dirtest"
	flowrules "github.com/latchkeyhq/latchkey/flow"
	"github.com/latchkeyhq/latchkey/internal/testport"
	"github.com/latchkeyhq/latchkey/notify/notifytest"
	"github.com/latchkeyhq/latchkey/store/pgtest"
	"golang.org/x/sync/semaphore"
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
	gate.sem = semaphore.NewWeighted(gate.size)
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
// a slot forever. golang.org/x/sync's semaphore is first come, first
// served, so a timing test waiting for the whole gate is not overtaken.
var gate = struct {
	sem  *semaphore.Weighted
	size int64
}{}

// parallel marks a test parallel and waits for its share of the gate,
// held until the test and its subtests end.
func parallel(t *testing.T) {
	t.Helper()
	t.Parallel()
	if err := gate.sem.Acquire(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gate.sem.Release(1) })
}

// alone marks a test parallel and waits until no other test of the
// package runs, holding the whole gate until it and its subtests end
// (they may run in parallel with each other).
func alone(t *testing.T) {
	t.Helper()
	t.Parallel()
	if err := gate.sem.Acquire(context.Background(), gate.size); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gate.sem.Release(gate.size) })
}

// params tune one gateway's configuration.
type params struct {
	MethodsRequired int
	CodeTTL         time.Duration
	Extra           string // appended to the policy section
	Limits          string // a whole limits: section
	Methods         string // policy.methods (default "email, sms")
	// Store replaces the store: section (default: SQLite in the work
	// directory); see postgresStore.
	Store string
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
}

func (p params) publicHost() string {
	if p.PublicHost != "" {
		return p.PublicHost
	}
	return "127.0.0.1"
}

// postgresStore is a params.Store for database db of a pgtest server.
func postgresStore(pg *pgtest.Server, db string) string {
	return fmt.Sprintf("store:\n  driver: postgres\n  dsn: %q\n  allow_plaintext: true\n", pg.DSN(db))
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
	cmd   *exec.Cmd
	// cfgPath is the configuration; exited closes when the process ends
	cfgPath string
	exited  chan struct{}
	logf    *os.File
	// secrets the run produced (codes, tokens, flow ids), for log scans
	secrets []string
	// peers are more instances sharing this one's store: api() sends each
	// call to the next instance in turn, so every flow hops between them
	peers []*env
	calls atomic.Int64
	// environ is params.Environ
	environ map[string]string
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

const (
	twilioSID   = "AC0123456789abcdef0123456789abcdef"
	twilioToken = "e2e-twilio-auth-token-0123456789"
	twilioFrom  = "+15005550006"
)

func freePort(t testing.TB) int {
	p, err := testport.Free()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// writeConfig writes a gateway configuration for srv, mail and sms into a
// new work directory (secrets in files next to it) and returns the
// directory, the configuration's path and the port it listens on.
func writeConfig(t testing.TB, srv *dirtest.Server, mail *notifytest.Mailpit, sms *notifytest.FakeTwilio, p params) (work, cfgPath string, port int) {
	t.Helper()
	if p.MethodsRequired == 0 {
		p.MethodsRequired = 1
	}
	if p.CodeTTL == 0 {
		p.CodeTTL = 10 * time.Minute
	}
	if p.Methods == "" {
		p.Methods = "email, sms"
	}
	work = t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(work, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	port = freePort(t)
	base := "http://" + p.publicHost() + ":" + strconv.Itoa(port)
	key := p.SecretKey
	if key == nil {
		key = make([]byte, 48)
		rand.Read(key)
	}
	secret := write("secret.key", base64.StdEncoding.EncodeToString(key))
	bindpw := write("bind.pw", srv.ServicePassword)
	twtoken := write("twilio.token", twilioToken)
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	cfg := fmt.Sprintf(`server:
  listen: "127.0.0.1:%d"
  public_url: %q
  secret_key_file: %q
  helpdesk: "mailto:helpdesk@example.org"
directory:
  type: %s
  urls: [%q]
  ca_file: %q
  bind_dn: %s
  bind_password_file: %q
  base_dn: %s
  user_filter: %s
  timeout: 10s
policy:
  scope: selected
  groups: [%s]
  exclude_groups: [%s]
  methods_required: %d
  methods: [%s]
  tiers:
    - groups: [%s]
      methods_required: 2
%s  password:
    min_length: 8
  code_ttl: %s
  cooling_off: 0s
%s
email:
  enabled: true
sms:
  enabled: true
  provider: twilio
  allowed_countries: [GB, US]
  twilio:
    account_sid: %q
    auth_token_file: %q
    from: %q
    base_url: %q
smtp:
  host: %q
  port: %d
  tls: none
  from: "Latchkey <latchkey@example.org>"
store:
  driver: sqlite
  dsn: %q
log:
  level: debug
  format: json
  audit_file: %q
%s
`, port, base, secret, srv.Flavor, srv.LDAPSURL, srv.CAFile, q(srv.ServiceDN), bindpw, q(srv.BaseDN), q(srv.UserFilter),
		q(srv.Group("staff")), q(srv.Group("cycle-a")), p.MethodsRequired, p.Methods, q(srv.Group("sspr-admins")), p.Tier, p.CodeTTL, p.Extra,
		twilioSID, twtoken, twilioFrom, sms.URL, mail.SMTPHost, mail.SMTPPort,
		"file:"+filepath.Join(work, "latchkey.db"), filepath.Join(work, "audit.log"), p.Limits)
	if p.Store != "" {
		cfg = strings.Replace(cfg, fmt.Sprintf("store:\n  driver: sqlite\n  dsn: %q\n", "file:"+filepath.Join(work, "latchkey.db")), p.Store, 1)
	} else if p.SQLitePath != "" {
		cfg = strings.Replace(cfg, "file:"+filepath.Join(work, "latchkey.db"), "file:"+p.SQLitePath, 1)
	}
	if p.DirURLs != nil {
		urls, _ := json.Marshal(p.DirURLs)
		cfg = strings.Replace(cfg, fmt.Sprintf("  urls: [%q]\n", srv.LDAPSURL), "  urls: "+string(urls)+"\n", 1)
	}
	if p.DirPlaintext {
		cfg = strings.Replace(cfg, "  timeout: 10s\n", "  timeout: 10s\n  allow_plaintext: true\n", 1)
	}
	if p.DirTimeout != 0 {
		cfg = strings.Replace(cfg, "  timeout: 10s\n", "  timeout: "+p.DirTimeout.String()+"\n", 1)
	}
	if srv.DefaultPolicyDN != "" {
		cfg = strings.Replace(cfg, "  timeout: 10s\n", "  timeout: 10s\n  default_policy_dn: "+q(srv.DefaultPolicyDN)+"\n", 1)
	}
	server := p.Server
	if !strings.Contains(server, "shutdown_delay:") {
		// no drain unless a test asks: its default with postgres (15 s)
		// would only slow every stop down
		server += "  shutdown_delay: 0s\n"
	}
	cfg = strings.Replace(cfg, "  helpdesk: \"mailto:helpdesk@example.org\"\n", "  helpdesk: \"mailto:helpdesk@example.org\"\n"+server, 1)
	return work, write("latchkey.yaml", cfg), port
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
	if strings.Contains(p.Store, "driver: postgres") && !strings.Contains(p.Store, "migrate:") {
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
	cmd := exec.Command(binary, "migrate", "--config", e.cfgPath)
	if len(e.environ) > 0 {
		cmd.Env = os.Environ()
		for k, v := range e.environ {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		e.t.Fatalf("latchkey migrate: %v\n%s", err, out)
	}
}

// launch starts latchkey serve with e's configuration (appending to its
// log) and waits until it has logged that it listens and /readyz answers
// 200. Waiting for its own log line first means a /readyz answer is never
// another process's that took the port freePort found free.
func (e *env) launch() {
	t := e.t
	t.Helper()
	listening := func() int {
		b, _ := os.ReadFile(e.log)
		return bytes.Count(b, []byte("latchkey listening"))
	}
	before := listening()
	logf, err := os.OpenFile(e.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	e.logf = logf
	e.cmd = exec.Command(binary, "serve", "--config", e.cfgPath)
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	if len(e.environ) > 0 {
		e.cmd.Env = os.Environ()
		for k, v := range e.environ {
			e.cmd.Env = append(e.cmd.Env, k+"="+v)
		}
	}
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	e.exited = exited
	cmd := e.cmd
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var resp *http.Response
		err := errors.New("not listening yet")
		if listening() > before {
			resp, err = http.Get(e.base + "/readyz")
		}
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(e.log)
			t.Fatalf("latchkey exited: %s", b)
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(e.log)
			t.Fatalf("latchkey not ready: %v\n%s", err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for the process to exit (SIGKILL after
// 30 s); it returns the exit code. Stopping a stopped gateway does nothing.
func (e *env) stop() int {
	if e.cmd == nil {
		return -1
	}
	select {
	case <-e.exited:
	default:
		e.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.exited:
		case <-time.After(30 * time.Second):
			e.cmd.Process.Kill()
			<-e.exited
		}
	}
	e.logf.Close()
	return e.cmd.ProcessState.ExitCode()
}

// kill ends the process with SIGKILL, as a crash or an evicted pod would.
func (e *env) kill() {
	e.cmd.Process.Kill()
	<-e.exited
	e.logf.Close()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func startMail(t testing.TB) (*notifytest.Mailpit, *notifytest.FakeTwilio) {
	mail := notifytest.StartMailpit(t)
	sms := notifytest.StartTwilio(t, notifytest.TwilioCredentials(twilioSID, twilioToken), notifytest.TwilioSenders(twilioFrom))
	return mail, sms
}

// resp is an API answer.
type resp struct {
	Status int
	Body   []byte
	JSON   map[string]any
}

func (r resp) str(key string) string { s, _ := r.JSON[key].(string); return s }

func (r resp) errCode() string {
	if e, ok := r.JSON["error"].(map[string]any); ok {
		s, _ := e["code"].(string)
		return s
	}
	return ""
}

func (e *env) api(method, path, token string, body any) resp {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.target()+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := httpClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := resp{Status: res.StatusCode, Body: b}
	_ = json.Unmarshal(b, &r.JSON)
	return r
}

func (e *env) must(want int, r resp, what string) resp {
	e.t.Helper()
	if r.Status != want {
		e.t.Fatalf("%s: status %d, want %d: %s", what, r.Status, want, r.Body)
	}
	return r
}

var codeRE = regexp.MustCompile(`\b(\d{6,8})\b`)

// mailCode waits for a verification code mailed to addr and deletes the
// mailbox contents afterwards.
func (e *env) mailCode(addr string) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		list, err := e.mail.Search(ctx, `to:"`+addr+`" subject:"verification code"`)
		if err == nil && len(list) > 0 {
			m, err := e.mail.Message(ctx, list[0].ID)
			if err != nil {
				e.t.Fatal(err)
			}
			c := codeRE.FindStringSubmatch(m.Text)
			if c == nil {
				e.t.Fatalf("no code in mail: %q", m.Text)
			}
			if err := e.mail.DeleteAll(ctx); err != nil {
				e.t.Fatal(err)
			}
			e.secrets = append(e.secrets, c[1])
			return c[1]
		}
		select {
		case <-ctx.Done():
			e.t.Fatalf("no code mailed to %s", addr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// noSendWait is how long a check that nothing was sent waits: longer than
// the outbox holds a message before its first try (flow.MaxSendDelay),
// with a second for mailpit to take it in on a busy machine.
const noSendWait = flowrules.MaxSendDelay + time.Second

// mailCount is how many messages mailpit holds once the outbox is quiet
// (settleMail).
func (e *env) mailCount() int {
	e.t.Helper()
	return settleMail(e.t, e.mail)
}

// clearMail deletes every message mailpit holds.
func (e *env) clearMail() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := e.mail.DeleteAll(ctx); err != nil {
		e.t.Fatal(err)
	}
}

// smsCode waits for a code sent by SMS to number.
func (e *env) smsCode(number string) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		msgs := e.sms.Messages()
		for i := len(msgs) - 1; i >= 0; i-- {
			if msgs[i].To == number && strings.Contains(msgs[i].Body, "is your") {
				if c := codeRE.FindStringSubmatch(msgs[i].Body); c != nil {
					e.sms.Reset()
					e.secrets = append(e.secrets, c[1])
					return c[1]
				}
			}
		}
		select {
		case <-ctx.Done():
			e.t.Fatalf("no code sent by SMS to %s", number)
		case <-time.After(50 * time.Millisecond):
		}
	}
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
