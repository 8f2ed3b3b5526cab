package bench

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/jackc/pgx/v5"

	"github.com/latchkeyhq/latchkey/directory/dirtest"
	"github.com/latchkeyhq/latchkey/notify/notifytest"
	"github.com/latchkeyhq/latchkey/store"
)

const (
	twilioSID   = "AC0123456789abcdef0123456789abcdef"
	twilioToken = "bench-twilio-auth-token-0123456789" // #nosec G101 -- the local fake Twilio's test token
	twilioFrom  = "+15005550006"
	mailDomain  = "bench.example.net"
)

// userName is the uid of bench user i.
func userName(i int) string { return fmt.Sprintf("bench%05d", i) }

// seedPassword is the password bench user i starts with.
func seedPassword(i int) string { return fmt.Sprintf("Bench-Seed-%05d-x", i) }

func userAddr(i int) string { return userName(i) + "@" + mailDomain }

// usersLDIF is n users in nested groups: 100 users per team group
// (cn=bench-team-NNN), ten teams per department (cn=bench-dept-NN), every
// department in cn=bench-users, the group the bench policy makes eligible.
func usersLDIF(n int) string {
	var b strings.Builder
	for i := range n {
		u := userName(i)
		fmt.Fprintf(&b, "dn: uid=%s,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\nuid: %s\ncn: Bench User %d\nsn: User%d\nmail: %s\nuserPassword: %s\n\n",
			u, u, i, i, userAddr(i), seedPassword(i))
	}
	teams := (n + 99) / 100
	depts := (teams + 9) / 10
	for t := range teams {
		fmt.Fprintf(&b, "dn: cn=bench-team-%03d,ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: bench-team-%03d\n", t, t)
		for i := t * 100; i < min(n, (t+1)*100); i++ {
			fmt.Fprintf(&b, "member: uid=%s,ou=people,dc=example,dc=org\n", userName(i))
		}
		b.WriteString("\n")
	}
	for d := range depts {
		fmt.Fprintf(&b, "dn: cn=bench-dept-%02d,ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: bench-dept-%02d\n", d, d)
		for t := d * 10; t < min(teams, (d+1)*10); t++ {
			fmt.Fprintf(&b, "member: cn=bench-team-%03d,ou=groups,dc=example,dc=org\n", t)
		}
		b.WriteString("\n")
	}
	b.WriteString("dn: cn=bench-users,ou=groups,dc=example,dc=org\nobjectClass: groupOfNames\ncn: bench-users\n")
	for d := range depts {
		fmt.Fprintf(&b, "member: cn=bench-dept-%02d,ou=groups,dc=example,dc=org\n", d)
	}
	b.WriteString("\n")
	return b.String()
}

// ldapConn dials the server over LDAPS, verifying the test CA.
func ldapConn(srv *dirtest.Server) (*ldap.Conn, error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(srv.CAPEM)
	return ldap.DialURL(srv.LDAPSURL, ldap.DialWithTLSConfig(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}))
}

// entryUUIDs maps the bench users' uids to their entryUUID (the gateway's
// account id), read as the service account in one paged search.
func entryUUIDs(srv *dirtest.Server) (map[string]string, error) {
	c, err := ldapConn(srv)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Bind(srv.AdminDN, srv.AdminPassword); err != nil {
		return nil, err
	}
	res, err := c.SearchWithPaging(ldap.NewSearchRequest("ou=people,"+srv.BaseDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
		"(uid=bench*)", []string{"uid", "entryUUID"}, nil), 1000)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(res.Entries))
	for _, e := range res.Entries {
		out[e.GetAttributeValue("uid")] = e.GetAttributeValue("entryUUID")
	}
	return out, nil
}

// gateway is one running latchkey serve process.
type gateway struct {
	base    string
	work    string
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
	pprof   string // base URL of net/http/pprof in a bench build, or ""
}

func (g *gateway) pid() int { return g.cmd.Process.Pid }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// newKey is a fresh server.secret_key (also the store's key).
func newKey() string {
	raw := make([]byte, 48)
	_, _ = rand.Read(raw)
	return base64.StdEncoding.EncodeToString(raw)
}

// gatewayConfig writes a bench configuration (budgets raised to the
// directory's size, mail to mailpit, SMS to the fake Twilio, the store
// block storeYAML) with the secret key key into work and returns its path
// and the port.
func gatewayConfig(work, key, storeYAML string, srv *dirtest.Server, mail *notifytest.Mailpit, sms *notifytest.FakeTwilio, padFloor time.Duration, poolSize int) (cfgPath string, port int, err error) {
	port, err = freePort()
	if err != nil {
		return "", 0, err
	}
	write := func(name, content string) string {
		p := filepath.Join(work, name)
		if werr := os.WriteFile(p, []byte(content), 0o600); werr != nil && err == nil {
			err = werr
		}
		return p
	}
	secret := write("secret.key", key)
	bindpw := write("bind.pw", srv.ServicePassword)
	twtoken := write("twilio.token", twilioToken)
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	pad := ""
	if padFloor > 0 {
		pad = "  pad_floor: " + padFloor.String() + "\n"
	}
	pool := ""
	if poolSize > 0 {
		pool = "  pool_size: " + strconv.Itoa(poolSize) + "\n"
	}
	cfg := fmt.Sprintf(`server:
  listen: "127.0.0.1:%d"
  public_url: "http://127.0.0.1:%d"
  secret_key_file: %q
  shutdown_delay: 0s
directory:
  type: openldap
  urls: [%q]
  ca_file: %q
  bind_dn: %s
  bind_password_file: %q
  base_dn: %s
  user_filter: %s
  default_policy_dn: %s
  timeout: 10s
%spolicy:
  scope: selected
  groups: [%s]
  exclude_groups: [%s]
  methods_required: 1
  methods: [email, sms]
  password:
    min_length: 8
  code_ttl: 10m
  cooling_off: 0s
%slimits:
  starts_per_account: 1000000
  starts_per_ip: 10000000
  starts_total: 10000000
  sign_ins_per_ip: 10000000
  sends_per_account: 1000000
  sends_per_destination: 1000000
  code_failures_per_account: 1000000
  sms_per_hour: 1000000
  sms_per_prefix_per_hour: 1000000
  bind_failures: 1000000
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
%slog:
  level: warn
  format: json
  audit_file: %q
`, port, port, secret, srv.LDAPSURL, srv.CAFile, q(srv.ServiceDN), bindpw, q(srv.BaseDN), q(srv.UserFilter), q(srv.DefaultPolicyDN), pool,
		q("cn=bench-users,ou=groups,"+srv.BaseDN), q(srv.Group("cycle-a")), pad,
		twilioSID, twtoken, twilioFrom, sms.URL, mail.SMTPHost, mail.SMTPPort,
		storeYAML, filepath.Join(work, "audit.log"))
	cfgPath = write("latchkey.yaml", cfg)
	return cfgPath, port, err
}

// sqliteStore is the store block and opener of a SQLite file in work.
func sqliteStore(work string) (yaml string, open storeOpener) {
	dsn := "file:" + filepath.Join(work, "latchkey.db")
	return fmt.Sprintf("store:\n  driver: sqlite\n  dsn: %q\n", dsn),
		func(ctx context.Context, key []byte) (store.Store, error) { return store.OpenSQLite(ctx, dsn, key) }
}

// postgresStore is the store block and opener of database dsn (loopback:
// no TLS needed, no allow_plaintext).
func postgresStore(dsn string) (yaml string, open storeOpener) {
	return fmt.Sprintf("store:\n  driver: postgres\n  dsn: %q\n  migrate: on_start\n", dsn),
		func(ctx context.Context, key []byte) (store.Store, error) {
			return store.OpenPostgres(ctx, dsn, key, store.PostgresOptions{})
		}
}

// serverVersion is a PostgreSQL server's server_version.
func serverVersion(dsn string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	var v string
	err = conn.QueryRow(ctx, "SHOW server_version").Scan(&v)
	return v, err
}

// storeOpener opens a gateway's store with its key.
type storeOpener func(ctx context.Context, key []byte) (store.Store, error)

// seedStore opens the gateways' store before they start (creating its
// schema) and registers a verified email method for each of accounts (uid
// -> entryUUID) and, when outstanding > 0, that many live flows with
// codes.
func seedStore(ctx context.Context, open storeOpener, key string, accounts map[string]string, outstanding int) error {
	st, err := open(ctx, []byte(key))
	if err != nil {
		return err
	}
	defer st.Close()
	at := time.Now().Add(-24 * time.Hour)
	for uid, id := range accounts {
		b := make([]byte, 11)
		_, _ = rand.Read(b)
		m := store.Method{ID: hex.EncodeToString(b), AccountID: id, Type: store.MethodEmail, Address: uid + "@" + mailDomain, CreatedAt: at}
		if err := st.AddMethod(ctx, m); err != nil {
			return err
		}
		if err := st.VerifyMethod(ctx, id, m.ID, at); err != nil {
			return err
		}
	}
	if outstanding > 0 {
		return store.SeedOutstanding(ctx, st, outstanding, time.Now())
	}
	return nil
}

// startGateway runs binary serve with cfgPath and waits until /readyz
// answers 200.
func startGateway(t testing.TB, binary, work, cfgPath string, port int, withPprof bool) (*gateway, error) {
	g := &gateway{base: "http://127.0.0.1:" + strconv.Itoa(port), work: work, logPath: filepath.Join(work, "latchkey.log")}
	logf, err := os.OpenFile(g.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	g.cmd = exec.Command(binary, "serve", "--config", cfgPath) // #nosec G204 -- the operator's or a just-built binary
	g.cmd.Stdout, g.cmd.Stderr = logf, logf
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	g.cmd.Env = os.Environ()
	if withPprof {
		pp, err := freePort()
		if err != nil {
			return nil, err
		}
		g.pprof = "http://127.0.0.1:" + strconv.Itoa(pp)
		g.cmd.Env = append(g.cmd.Env, "LATCHKEY_PPROF_LISTEN=127.0.0.1:"+strconv.Itoa(pp))
	}
	if err := g.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	g.exited = make(chan struct{})
	go func() { _ = g.cmd.Wait(); logf.Close(); close(g.exited) }()
	t.Cleanup(func() {
		select {
		case <-g.exited:
		default:
			_ = g.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-g.exited:
			case <-time.After(30 * time.Second):
				_ = g.cmd.Process.Kill()
				<-g.exited
			}
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(g.base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return g, nil
			}
		}
		select {
		case <-g.exited:
			b, _ := os.ReadFile(g.logPath)
			return nil, fmt.Errorf("latchkey exited: %s", tailStr(string(b), 3000))
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(g.logPath)
			return nil, fmt.Errorf("latchkey not ready: %v\n%s", err, tailStr(string(b), 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tailStr(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// ---------------------------------------------------------------- mail

var codeRE = regexp.MustCompile(`\b(\d{6,8})\b`)

// mailbox polls mailpit, hands out verification codes by recipient and
// counts every message (it deletes what it has read, so that the listing
// stays short while thousands of mails arrive).
type mailbox struct {
	m      *notifytest.Mailpit
	client *http.Client
	mu     sync.Mutex
	codes  map[string][]string
	seen   map[string]bool
	counts map[string]int // by subject
	total  int
	stop   chan struct{}
	done   chan struct{}
	err    error
}

func newMailbox(m *notifytest.Mailpit) *mailbox {
	b := &mailbox{m: m, client: &http.Client{Timeout: 10 * time.Second}, codes: map[string][]string{}, seen: map[string]bool{},
		counts: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	go b.run()
	return b
}

func (b *mailbox) close() { close(b.stop); <-b.done }

func (b *mailbox) run() {
	defer close(b.done)
	for {
		n, err := b.poll()
		if err != nil {
			b.mu.Lock()
			b.err = err
			b.mu.Unlock()
		}
		wait := 20 * time.Millisecond
		if n > 0 {
			wait = 2 * time.Millisecond
		}
		select {
		case <-b.stop:
			return
		case <-time.After(wait):
		}
	}
}

func (b *mailbox) poll() (int, error) {
	res, err := b.client.Get(b.m.APIURL + "/api/v1/messages?limit=500")
	if err != nil {
		return 0, err
	}
	var l struct {
		Messages []notifytest.MessageSummary `json:"messages"`
	}
	err = json.NewDecoder(res.Body).Decode(&l)
	res.Body.Close()
	if err != nil {
		return 0, err
	}
	var ids []string
	b.mu.Lock()
	for i := len(l.Messages) - 1; i >= 0; i-- { // oldest first
		s := l.Messages[i]
		ids = append(ids, s.ID)
		if b.seen[s.ID] {
			continue
		}
		b.seen[s.ID] = true
		b.total++
		b.counts[s.Subject]++
		if strings.Contains(s.Subject, "verification code") && len(s.To) > 0 {
			if c := codeRE.FindStringSubmatch(s.Snippet); c != nil {
				to := strings.ToLower(s.To[0].Address)
				b.codes[to] = append(b.codes[to], c[1])
			}
		}
	}
	b.mu.Unlock()
	if len(ids) > 0 {
		body, _ := json.Marshal(map[string][]string{"IDs": ids})
		req, _ := http.NewRequest(http.MethodDelete, b.m.APIURL+"/api/v1/messages", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		if res, err := b.client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	}
	return len(ids), nil
}

// take returns a code that arrived for addr, if any.
func (b *mailbox) take(addr string) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	addr = strings.ToLower(addr)
	cs := b.codes[addr]
	if len(cs) == 0 {
		return "", false
	}
	c := cs[len(cs)-1]
	delete(b.codes, addr)
	return c, true
}

// wait blocks until a code for addr arrives or timeout passes.
func (b *mailbox) wait(addr string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		if c, ok := b.take(addr); ok {
			return c, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no code mailed to %s within %s", addr, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (b *mailbox) snapshot() (total int, bySubject map[string]int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]int{}
	for k, v := range b.counts {
		out[k] = v
	}
	return b.total, out
}

// ---------------------------------------------------------------- HTTP

type apiClient struct {
	base string
	hc   *http.Client
}

func newAPIClient(base string) *apiClient {
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}
	return &apiClient{base: base, hc: &http.Client{Timeout: 30 * time.Second, Transport: tr}}
}

type answer struct {
	Status int
	Body   []byte
	JSON   map[string]any
}

func (a answer) str(k string) string { s, _ := a.JSON[k].(string); return s }

func (c *apiClient) call(method, path, token string, body any) (answer, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return answer{}, err
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return answer{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return answer{}, err
	}
	a := answer{Status: res.StatusCode, Body: b}
	_ = json.Unmarshal(b, &a.JSON)
	return a, nil
}

func (c *apiClient) must(want int, method, path, token string, body any) (answer, error) {
	a, err := c.call(method, path, token, body)
	if err != nil {
		return a, err
	}
	if a.Status != want {
		return a, fmt.Errorf("%s %s: status %d, want %d: %.300s", method, path, a.Status, want, a.Body)
	}
	return a, nil
}

// get fetches path and returns its status, discarding the body.
func (c *apiClient) get(path string) (int, error) {
	res, err := c.hc.Get(c.base + path)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, nil
}

// caller is one gateway (an apiClient) or several behind a round robin.
type caller interface {
	must(want int, method, path, token string, body any) (answer, error)
	get(path string) (int, error)
}

// roundRobin sends each request to the next gateway in turn, as a load
// balancer without sticky sessions: the requests of one flow or session
// land on different instances.
type roundRobin struct {
	cs []*apiClient
	n  atomic.Uint64
}

func (b *roundRobin) next() *apiClient {
	return b.cs[(b.n.Add(1)-1)%uint64(len(b.cs))]
}

func (b *roundRobin) must(want int, method, path, token string, body any) (answer, error) {
	return b.next().must(want, method, path, token, body)
}

func (b *roundRobin) get(path string) (int, error) { return b.next().get(path) }

// ---------------------------------------------------------------- /proc

// cpuTime is utime+stime of a process.
func cpuTime(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	// fields after the command name in parentheses
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * time.Second / clockTicks
}

// serverCPUTime is utime+stime of process pid and of its live children,
// plus pid's cutime+cstime (the children that exited and were reaped): a
// PostgreSQL server's CPU, the postmaster and its backends (each backend
// calls setsid, so a process group would miss them).
func serverCPUTime(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	parent := strconv.Itoa(pid)
	var ticks int64
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 15 {
			continue
		}
		last := 0
		switch {
		case e.Name() == parent:
			last = 14 // utime, stime, cutime, cstime
		case f[1] == parent: // ppid
			last = 12 // utime, stime
		}
		for k := 11; k <= last; k++ {
			v, _ := strconv.ParseInt(f[k], 10, 64)
			ticks += v
		}
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// clockTicks is USER_HZ, 100 on Linux.
const clockTicks = 100

// peakRSS is VmHWM of a process in KiB (0 if unknown).
func peakRSS(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// profile fetches a CPU profile (kind "profile") or an execution trace
// (kind "trace") of seconds from a bench-built gateway.
func (g *gateway) profile(kind string, seconds int, path string) error {
	if g.pprof == "" {
		return nil
	}
	res, err := http.Get(g.pprof + "/debug/pprof/" + kind + "?seconds=" + url.QueryEscape(strconv.Itoa(seconds)))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	f, err := os.Create(path) // #nosec G304 -- a path the operator gave
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, res.Body)
	return err
}

func numCPU() int { return runtime.NumCPU() }
