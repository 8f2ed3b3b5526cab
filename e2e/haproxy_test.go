package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/config"
	"github.com/latchkeyhq/latchkey/directory/dirtest"
	"github.com/latchkeyhq/latchkey/store"
	"github.com/latchkeyhq/latchkey/store/pgtest"
)

// haproxyBinary is the Debian package's HAProxy (scripts/deps.sh). Under
// CI=true a missing one fails the test.
func haproxyBinary(t *testing.T) string {
	t.Helper()
	return sbinBinary(t, "haproxy", "haproxy")
}

// sbinBinary is the program name of the Debian package pkg, on PATH or in
// /usr/sbin. Under CI=true a missing one fails the test (scripts/deps.sh
// installs it), else the test is skipped.
func sbinBinary(t *testing.T, name, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/" + name); err == nil {
		return "/usr/sbin/" + name
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (scripts/deps.sh installs the Debian package %s)", name, pkg)
	}
	t.Skipf("%s is not installed", name)
	return ""
}

// startHAProxy runs HAProxy with deploy/haproxy/haproxy.cfg as it ships,
// but for its ports (the frontend's and one server line per gateway), its
// log (stderr, kept in the test's directory) and, when noRetries, without
// its retries (retries 0, no redispatch), so that a request sent into a
// closed listener shows. It returns the frontend's base URL once HAProxy
// answers /readyz through a gateway.
func startHAProxy(t *testing.T, gws []*env, noRetries bool) string {
	t.Helper()
	bin := haproxyBinary(t)
	b, err := os.ReadFile(filepath.Join("..", "deploy", "haproxy", "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	port := freePort(t)
	replace := func(old, new string) {
		t.Helper()
		if !strings.Contains(cfg, old) {
			t.Fatalf("deploy/haproxy/haproxy.cfg has no %q any more: update the test's templating", old)
		}
		cfg = strings.Replace(cfg, old, new, 1)
	}
	replace("log /dev/log local0", "log stderr format raw local0 info")
	replace("bind 127.0.0.1:8080", "bind 127.0.0.1:"+strconv.Itoa(port))
	servers := regexp.MustCompile(`(?m)^    server latchkey\d+ 127\.0\.0\.1:\d+ check\n`)
	if n := len(servers.FindAllString(cfg, -1)); n != 3 {
		t.Fatalf("deploy/haproxy/haproxy.cfg has %d server lines, the test expects 3", n)
	}
	var lines strings.Builder
	for i, g := range gws {
		u, err := url.Parse(g.base)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&lines, "    server latchkey%d %s check\n", i+1, u.Host)
	}
	first := true
	cfg = servers.ReplaceAllStringFunc(cfg, func(string) string {
		if first {
			first = false
			return lines.String()
		}
		return ""
	})
	if noRetries {
		replace("    retries 2\n", "    retries 0\n")
		replace("    option redispatch 1\n", "")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "haproxy.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-db", "-f", path)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("haproxy log:\n%s", tail(string(b), 6000))
		}
	})
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("haproxy exited:\n%s", b)
		default:
		}
		if r, err := httpClient.Get(base + "/readyz"); err == nil {
			ok := r.StatusCode == 200
			r.Body.Close()
			if ok {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("haproxy did not answer /readyz through a gateway")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lbAnswer is one answer through the load balancer, or its transport error.
type lbAnswer struct {
	sent, at    time.Time // when the request was sent, when it was answered
	what        string
	status      int
	ctype, body string
	retryAfter  string
	err         error
}

// latchkeys says whether a is Latchkey's own answer: JSON, and for an
// error the envelope with a code (never the load balancer's HTML page);
// a 503 "unavailable" carries Retry-After.
func (a lbAnswer) latchkeys() bool {
	if a.err != nil {
		return false
	}
	if (a.status == 202 || a.status == 204) && strings.TrimSpace(a.body) == "" {
		return true // send, delete: no body
	}
	if !strings.HasPrefix(a.ctype, "application/json") {
		return false
	}
	var m map[string]any
	if json.Unmarshal([]byte(a.body), &m) != nil {
		return false
	}
	if a.status < 400 || a.what == "GET /readyz" {
		return true
	}
	e, _ := m["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code != "" && (code != "unavailable" || a.retryAfter != "")
}

func (a lbAnswer) String() string {
	if a.err != nil {
		return fmt.Sprintf("%s at %s: %v", a.what, a.at.Format("15:04:05.000"), a.err)
	}
	return fmt.Sprintf("%s at %s: %d %s %q", a.what, a.at.Format("15:04:05.000"), a.status, a.ctype, tail(a.body, 200))
}

// lbCall sends one request through the load balancer at base.
func lbCall(base, method, path string, body any) lbAnswer {
	a := lbAnswer{what: method + " " + path, sent: time.Now()}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		a.err = err
		return a
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := httpClient.Do(req)
	a.at = time.Now()
	if err != nil {
		a.err = err
		return a
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	a.status, a.ctype, a.body, a.retryAfter = res.StatusCode, res.Header.Get("Content-Type"), string(b), res.Header.Get("Retry-After")
	return a
}

// burstUsers are the names a burst's reset starts go through: three
// accounts and a name that is none.
var burstUsers = []string{"carol", "bob", "frank", "nobody-at-all"}

// resetStart is worker w's reset start of turn i, through the load
// balancer at base.
func resetStart(base string, w, i int) lbAnswer {
	return lbCall(base, "POST", "/api/v1/reset", map[string]string{"username": burstUsers[(w+i)%len(burstUsers)]})
}

// startsAndHealth is a burst's call: a reset start, and every third call
// GET /healthz.
func startsAndHealth(base string) func(w, i int) lbAnswer {
	return func(w, i int) lbAnswer {
		if i%3 == 0 {
			return lbCall(base, "GET", "/healthz", nil)
		}
		return resetStart(base, w, i)
	}
}

// startBurst runs workers in the background that each call next in a
// loop, at most one call per 10 ms each (the machine is shared); the
// function it returns stops them and returns every answer.
func startBurst(workers int, next func(worker, i int) lbAnswer) (finish func() []lbAnswer) {
	stop := make(chan struct{})
	var mu sync.Mutex
	var all []lbAnswer
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				pace := time.After(10 * time.Millisecond)
				a := next(w, i)
				mu.Lock()
				all = append(all, a)
				mu.Unlock()
				<-pace
			}
		}()
	}
	return func() []lbAnswer {
		close(stop)
		wg.Wait()
		return all
	}
}

// haproxyGateways starts three gateways on one PostgreSQL database
// (migrated once, as an operator does) with budgets a burst from one
// address does not meet, and server.trusted_proxies naming HAProxy. The
// send budgets too: a burst's sends for one flow during a 20 s outage
// reached 1,480 in one CI run (a quarter of 5,920 answers), past the
// 1,000 they had, and the code of the full reset after the outage was
// then (rightly) not sent.
func haproxyGateways(t *testing.T, srv *dirtest.Server, pg *pgtest.Server, server string) []*env {
	t.Helper()
	db := pg.NewDatabase(t)
	mail, sms := startMail(t)
	key := make([]byte, 48)
	rand.Read(key)
	p := params{
		Store: postgresStore(pg, db), SecretKey: key,
		Server: "  trusted_proxies: [\"127.0.0.1/32\"]\n" + server,
		Limits: "limits:\n  starts_per_account: 100000\n  starts_per_ip: 100000\n  starts_total: 1000000\n  sends_per_account: 100000\n  sends_per_destination: 100000\n  sign_ins_per_ip: 100000\n",
	}
	gws := make([]*env, 3)
	for i := range gws {
		gws[i] = startGateway(t, srv, mail, sms, p)
	}
	// stop them at once at the end (each drains for shutdown_delay)
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, g := range gws {
			wg.Add(1)
			go func() { defer wg.Done(); g.stop() }()
		}
		wg.Wait()
	})
	return gws
}

// TestHAProxyStoreOutage: three instances on PostgreSQL behind HAProxy
// with deploy/haproxy/haproxy.cfg. PostgreSQL is stopped for 20 s during a
// burst of reset starts, sends and readiness probes through HAProxy. Every
// answer is Latchkey's own (JSON, 503 "unavailable" with Retry-After),
// also after the 10 s in which HAProxy's check (inter 5s, fall 2) would
// have taken every instance out when /readyz failed on a shared outage
// (issue 21: 92 HTML answers of HAProxy's in one 20 s outage). Then a full
// reset goes through, on the same gateway processes.
func TestHAProxyStoreOutage(t *testing.T) {
	parallel(t)
	srv := dirtest.StartOpenLDAP(t)
	pg := pgtest.StartPrivate(t)
	haproxyOutage(t, srv, pg, func() { pg.StopServer(t) }, func() { pg.StartAgain(t) })
}

// TestHAProxyDirectoryOutage: the same with slapd stopped for 20 s: every
// answer through HAProxy is Latchkey's own, and the same processes serve
// a full reset once slapd is back.
func TestHAProxyDirectoryOutage(t *testing.T) {
	parallel(t)
	srv := dirtest.StartOpenLDAP(t)
	pg := pgtest.Start(t)
	haproxyOutage(t, srv, pg, func() { srv.Stop(t) }, func() { srv.Restart(t) })
}

// haproxyOutage runs a 20 s outage (down, then up) of a dependency every
// instance shares during a burst through HAProxy, and checks the answers
// and the recovery.
func haproxyOutage(t *testing.T, srv *dirtest.Server, pg *pgtest.Server, down, up func()) {
	gws := haproxyGateways(t, srv, pg, "")
	base := startHAProxy(t, gws, false)
	lb := &env{t: t, dir: srv, mail: gws[0].mail, sms: gws[0].sms, base: base}
	emailID, _ := lb.register("carol", "carol.home@example.net", "")
	f, _ := lb.startReset("carol")
	settleSends(t, lb.mail, lb.sms)
	pids := make([]int, len(gws))
	for i, g := range gws {
		pids[i] = g.cmd.Process.Pid
	}

	const outage = 20 * time.Second
	finish := startBurst(4, func(w, i int) lbAnswer {
		switch i % 4 {
		case 0:
			return lbCall(base, "GET", "/readyz", nil)
		case 1:
			return lbCall(base, "POST", "/api/v1/reset/send", map[string]string{"flow": f.ID, "method": emailID})
		default:
			return resetStart(base, w, i)
		}
	})
	down()
	downAt := time.Now()
	// the fault lasts 20 s: the burst runs on meanwhile
	time.Sleep(outage)
	up()
	upAt := time.Now()
	// back: a reset start through HAProxy succeeds again (a condition,
	// with a generous deadline)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if a := lbCall(base, "POST", "/api/v1/reset", map[string]string{"username": "bob"}); a.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no reset start through HAProxy within 60 s of the dependency's return")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("recovered %v after the dependency was back", time.Since(upAt).Round(10*time.Millisecond))
	answers := finish()

	late, unavailable := 0, 0
	for _, a := range answers {
		if !a.latchkeys() {
			t.Fatalf("not Latchkey's own answer (%d answers in all): %s", len(answers), a)
		}
		if a.status == 503 {
			unavailable++
			if a.at.After(downAt.Add(12 * time.Second)) {
				late++
			}
		}
		if a.what == "GET /readyz" && a.status != 200 {
			t.Fatalf("readiness through HAProxy: %s", a)
		}
	}
	// the burst reached the gateways during the outage, also after the
	// checks would have emptied the pool
	if unavailable == 0 || late == 0 {
		t.Fatalf("%d answers, %d of them 503 unavailable, %d later than 12 s into the outage", len(answers), unavailable, late)
	}
	t.Logf("%d answers during the outage and recovery, all Latchkey's; %d were 503 unavailable (%d after 12 s)", len(answers), unavailable, late)

	// a full reset through HAProxy, on the gateways that never restarted
	// (the codes the burst's sends mailed after the recovery out of the way)
	settleSends(t, lb.mail, lb.sms)
	if err := lb.mail.DeleteAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	g, _ := lb.startReset("carol")
	lb.must(200, lb.verifyByEmail(&g, emailID, "carol.home@example.net"), "verify after the outage")
	lb.must(200, lb.complete(g, "After-The-Outage-21"), "complete after the outage")
	if err := srv.UserBind("carol", "After-The-Outage-21"); err != nil {
		t.Fatal(err)
	}
	for i, g := range gws {
		select {
		case <-g.exited:
			t.Fatalf("gateway %d exited", i)
		default:
		}
		if g.cmd.Process.Pid != pids[i] {
			t.Fatalf("gateway %d restarted", i)
		}
	}
}

// readyzCount is an instance's count of /readyz answered 200 (/metrics).
var readyzCount = regexp.MustCompile(`latchkey_http_requests_total\{method="GET",route="/readyz",status="200"\} (\d+)`)

// readyzChecks is how many /readyz e has answered 200 since it started.
func readyzChecks(t *testing.T, e *env) int {
	t.Helper()
	res, err := httpClient.Get(e.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	m := readyzCount.FindSubmatch(b)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// TestHAProxyDrain: SIGTERM of one of three instances during a burst
// through HAProxy loses no request, with the example's retries turned off:
// the instance answers /readyz 503 for the default shutdown_delay of a
// PostgreSQL store (15 s), HAProxy's check (every 5 s, out after 2) takes
// it out, and only then does its listener close. With a drain shorter
// than the check (5 s, as the manifest had) requests met the closed
// listener (issue 21: 12 connection errors per SIGTERM).
func TestHAProxyDrain(t *testing.T) {
	parallel(t)
	srv := dirtest.StartOpenLDAP(t)
	pg := pgtest.Start(t)
	delay := config.DefaultShutdownDelay
	gws := haproxyGateways(t, srv, pg, fmt.Sprintf("  shutdown_delay: %s\n", delay))
	base := startHAProxy(t, gws, true)
	lb := &env{t: t, dir: srv, mail: gws[0].mail, sms: gws[0].sms, base: base}

	finish := startBurst(4, startsAndHealth(base))
	// the burst is under way before the SIGTERM
	lb.must(200, lb.api("POST", "/api/v1/reset", "", map[string]string{"username": "carol"}), "reset start")
	victim := gws[1]
	// SIGTERM right after one of HAProxy's checks of the victim (its
	// /readyz counter moves): the drain then has to last the whole time
	// the check takes to notice, period × fall, not a lucky part of it
	checks := func() int { return readyzChecks(t, victim) }
	n0 := checks()
	deadline := time.Now().Add(30 * time.Second)
	for checks() == n0 {
		if time.Now().After(deadline) {
			t.Fatal("HAProxy did not check the instance within 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	sent := time.Now()
	victim.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-victim.exited:
	case <-time.After(delay + 60*time.Second):
		t.Fatal("the instance did not exit after SIGTERM")
	}
	took := time.Since(sent)
	// a little more burst after the exit: the closed port must not be used
	after := time.Now()
	for {
		if n := lbCall(base, "GET", "/healthz", nil); n.status != 200 {
			t.Fatalf("after the exit: %s", n)
		}
		if time.Since(after) > 2*time.Second {
			break
		}
	}
	answers := finish()
	if code := victim.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	if took < delay {
		t.Fatalf("the instance exited %v after SIGTERM, before its drain of %v", took, delay)
	}
	for _, a := range answers {
		if a.err != nil || a.status != 200 || !a.latchkeys() {
			t.Fatalf("a request was lost during the drain (%d answers in all): %s", len(answers), a)
		}
	}
	t.Logf("%d answers during a drain of %v (exit after %v), all 200", len(answers), delay, took.Round(10*time.Millisecond))
}

// TestHAProxyRollingUpgrade: the upgrade of docs/store.md ("Upgrading
// several instances"), run on three instances behind HAProxy (the example
// as it ships, retries included) while a burst of reset starts runs
// through it. The next release is this build with one more, additive,
// schema version (nextRelease: the build tag upgradeprobe). The instances
// are replaced one by one (each drains for the default 15 s, exits 0 and
// is back in HAProxy's rotation before the next one goes); between the
// first and the second, the next release migrates the store while two
// instances of this build still serve on it, and an instance of this build
// that restarts then refuses the newer schema. A full reset of carol is
// started before each step and finished after it, through HAProxy, on
// whichever build answers. Nothing is lost: every answer of the burst is
// 200, every reset's password binds, each reset is audited once. Then one
// of the upgraded instances crashes (crash).
func TestHAProxyRollingUpgrade(t *testing.T) {
	parallel(t)
	srv := dirtest.StartOpenLDAP(t)
	pg := pgtest.Start(t)
	next := nextRelease(t)
	gws := haproxyGateways(t, srv, pg, fmt.Sprintf("  shutdown_delay: %s\n", config.DefaultShutdownDelay))
	base := startHAProxy(t, gws, false)
	lb := &env{t: t, dir: srv, mail: gws[0].mail, sms: gws[0].sms, base: base}
	const addr = "carol.home@example.net"
	emailID, _ := lb.register("carol", addr, "")

	finish := startBurst(4, startsAndHealth(base))

	// across each step: a reset started before it is finished after it
	resets := 0
	across := func(what string, step func()) {
		t.Helper()
		f, _ := lb.startReset("carol")
		step()
		lb.must(200, lb.verifyByEmail(&f, emailID, addr), "verify after "+what)
		resets++
		pw := fmt.Sprintf("Rolling-Upgrade-%d-21", resets)
		lb.must(200, lb.complete(f, pw), "complete after "+what)
		if err := srv.UserBind("carol", pw); err != nil {
			t.Fatalf("after %s: %v", what, err)
		}
	}
	// stopped drains g and checks it exits 0
	stopped := func(i int) {
		t.Helper()
		g := gws[i]
		g.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-g.exited:
		case <-time.After(config.DefaultShutdownDelay + 60*time.Second):
			t.Fatalf("instance %d did not exit after SIGTERM", i)
		}
		if code := g.cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("instance %d: exit code %d after SIGTERM", i, code)
		}
	}
	// upgraded starts the next release as instance i, on its port, and
	// waits until HAProxy has checked it (launch's own /readyz is the
	// first one counted)
	upgraded := func(i int) {
		t.Helper()
		g := gws[i]
		g.bin = next
		g.launch()
		deadline := time.Now().Add(30 * time.Second)
		for readyzChecks(t, g) < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("HAProxy did not check instance %d within 30 s of its restart", i)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// 1. check, with the next release: it serves on this schema
	if out, err := gws[0].run(next, "check"); !strings.Contains(out, "schema behind: run latchkey migrate") || strings.Contains(out, "FAIL store") {
		t.Fatalf("the next release's check on this build's schema (%v): want a WARN schema behind:\n%s", err, out)
	}
	across("instance 0 upgraded", func() { stopped(0); upgraded(0) })
	if n := countLog(t, gws[0], "store schema behind this build: serving on it"); n != 1 {
		t.Fatalf("the next release logged %d times that it serves on the older schema, want 1", n)
	}
	// 2. migrate while two instances of this build still serve
	across("the migration", func() {
		out, err := gws[0].run(next, "migrate")
		if err != nil || !strings.Contains(out, fmt.Sprintf("schema migrated from version %d to %d", store.SchemaVersion(), store.SchemaVersion()+1)) {
			t.Fatalf("the next release's migrate: %v\n%s", err, out)
		}
	})
	// 3. an instance of this build that restarts refuses the newer schema;
	// the next release takes its place
	across("instance 1 upgraded", func() {
		stopped(1)
		out, err := gws[1].run(binary, "serve")
		if err == nil || !strings.Contains(out, "newer than this build supports") {
			t.Fatalf("this build's serve on the newer schema: %v, want a refusal:\n%s", err, tail(out, 3000))
		}
		upgraded(1)
	})
	across("instance 2 upgraded", func() { stopped(2); upgraded(2) })
	if out, err := gws[2].run(next, "migrate"); err != nil || !strings.Contains(out, fmt.Sprintf("schema version %d, up to date", store.SchemaVersion()+1)) {
		t.Fatalf("after the upgrade, migrate: %v\n%s", err, out)
	}

	answers := finish()
	for _, a := range answers {
		if a.err != nil || a.status != 200 || !a.latchkeys() {
			t.Fatalf("a request was lost during the rolling upgrade (%d answers in all): %s", len(answers), a)
		}
	}
	crash(t, lb, gws[2], across)

	if n := countAudit(t, gws, `"event":"reset.completed"`, `"outcome":"success"`); n != resets {
		t.Fatalf("%d completed resets audited, want %d (only carol's complete)", n, resets)
	}
	t.Logf("%d answers during a rolling upgrade of three instances, all 200; %d resets across its steps", len(answers), resets)
}

// crash kills victim (SIGKILL, as a crash or an evicted pod) during a
// burst of reset starts through HAProxy at base, across a reset (started
// before, finished after on the instances left), and runs the burst on
// until HAProxy's check has had time to take the victim out (inter 5s,
// fall 2, with a margin). A request the victim was answering when it died
// is lost to HAProxy's 502 or a closed connection (the example retries no
// POST once it was sent: it may have been applied), and so may one sent
// within a second after, on a connection HAProxy kept to the victim; every
// other one is Latchkey's 200: one sent to the dead port before the check
// notices is a connection refused, which HAProxy sends to another
// instance.
func crash(t *testing.T, lb *env, victim *env, across func(string, func())) {
	t.Helper()
	finish := startBurst(4, func(w, i int) lbAnswer { return resetStart(lb.base, w, i) })
	// the crash is the time from the SIGKILL to the process's end (kill
	// waits for it): a request sent in it may have reached the victim
	var killed, dead time.Time
	across("a crash", func() {
		time.Sleep(time.Second) // the burst is under way
		killed = time.Now()
		victim.kill()
		dead = time.Now()
		time.Sleep(12 * time.Second)
	})
	answers := finish()
	// lost at the crash: a transport error or HAProxy's own answer (never
	// Latchkey's own error) to a request sent before the process ended, or
	// within a second after it (a connection HAProxy kept to the victim,
	// closed by the kernel, may still take one), answered after the kill
	lost, after := 0, 0
	for _, a := range answers {
		switch {
		case a.err == nil && a.status == 200 && a.latchkeys():
			if a.sent.After(dead) {
				after++
			}
		case !a.latchkeys() && a.sent.Before(dead.Add(time.Second)) && a.at.After(killed):
			lost++
		default:
			t.Fatalf("a request was lost outside the crash (%s to %s) or answered with an error (%d answers in all): %s",
				killed.Format("15:04:05.000"), dead.Format("15:04:05.000"), len(answers), a)
		}
	}
	if lost > 8 || after == 0 {
		t.Fatalf("%d requests lost at the crash (at most twice the burst's 4 workers), %d answered 200 after it", lost, after)
	}
	t.Logf("crash: %d answers, %d of them 200 after the kill, %d lost at the crash", len(answers), after, lost)
}

// nextRelease builds the latchkey binary with the build tag upgradeprobe
// (store/migration_upgradeprobe.go): this build with one more schema
// version, as the next release would have.
func nextRelease(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "latchkey-next")
	if out, err := exec.Command("go", "build", "-tags", "upgradeprobe", "-o", bin, "../cmd/latchkey").CombinedOutput(); err != nil {
		t.Fatalf("building the next release: %v\n%s", err, out)
	}
	return bin
}
