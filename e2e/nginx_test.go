package e2e

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/directory/dirtest"
	"github.com/latchkeyhq/latchkey/store/pgtest"
)

// startNginx runs nginx with deploy/nginx/latchkey.conf as it ships, but for
// its listener (plain HTTP on a free loopback port instead of 443 with the
// site's certificate) and one server line per gateway, in a main
// configuration of the test's own (error log, pid and temporary files in
// the test's directory). It returns the base URL once nginx answers
// /readyz through a gateway.
func startNginx(t *testing.T, gws []*env) string {
	t.Helper()
	bin := sbinBinary(t, "nginx", "nginx-light")
	b, err := os.ReadFile(filepath.Join("..", "deploy", "nginx", "latchkey.conf"))
	if err != nil {
		t.Fatal(err)
	}
	site := string(b)
	port := freePort(t)
	replace := func(old, new string) {
		t.Helper()
		if !strings.Contains(site, old) {
			t.Fatalf("deploy/nginx/latchkey.conf has no %q any more: update the test's templating", old)
		}
		site = strings.Replace(site, old, new, 1)
	}
	replace("listen 443 ssl;", "listen 127.0.0.1:"+strconv.Itoa(port)+";")
	replace("    ssl_certificate /etc/nginx/tls/sspr.example.org.crt;\n", "")
	replace("    ssl_certificate_key /etc/nginx/tls/sspr.example.org.key;\n", "")
	servers := regexp.MustCompile(`(?m)^    server 127\.0\.0\.1:\d+ (max_fails=\d+ fail_timeout=\d+s);\n`)
	found := servers.FindAllStringSubmatch(site, -1)
	if len(found) != 3 {
		t.Fatalf("deploy/nginx/latchkey.conf has %d server lines, the test expects 3", len(found))
	}
	var lines strings.Builder
	for _, g := range gws {
		u, err := url.Parse(g.base)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&lines, "    server %s %s;\n", u.Host, found[0][1])
	}
	first := true
	site = servers.ReplaceAllStringFunc(site, func(string) string {
		if first {
			first = false
			return lines.String()
		}
		return ""
	})
	dir := t.TempDir()
	for _, d := range []string{"body", "proxy"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o777); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "latchkey.conf"), []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "error.log")
	main := fmt.Sprintf(`daemon off;
master_process on;
worker_processes 1;
error_log %[1]s/error.log info;
pid %[1]s/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    include %[1]s/latchkey.conf;
}
`, dir)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", path)
	out, err := os.Create(filepath.Join(dir, "stderr.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		out.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			e, _ := os.ReadFile(out.Name())
			t.Logf("nginx error log:\n%s%s", tail(string(b), 6000), e)
		}
	})
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			e, _ := os.ReadFile(out.Name())
			t.Fatalf("nginx exited:\n%s%s", b, e)
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
			t.Fatal("nginx did not answer /readyz through a gateway")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// nginxDrain is the instances' shutdown_delay in TestNginxRollingRestart:
// nginx has no health check to see it, so its length does not matter here
// (what does is what follows: the listener closes, then kept connections
// close after their next answer or by nginx's keep-alive timeout).
const nginxDrain = 3 * time.Second

// TestNginxRollingRestart: three instances on PostgreSQL behind nginx with
// the example as it ships (round robin, passive checks, connection errors
// retried on the next instance, a request that reached an instance never
// sent to another) are restarted one by one, as in an upgrade, while a
// burst of reset starts and health checks runs through nginx. nginx has no
// active check to see the drain: what keeps every request answered is the
// instance serving through its drain; then closing its listener, so that
// nginx sends a request that finds it closed to the next instance; then
// closing each kept connection right after its next answer ("Connection:
// close") while nginx closes the idle ones (keepalive_timeout 4s, within
// the instance's 5s wait), so that no connection is closed under a POST,
// which nginx would answer with its 502 and not retry; and finishing what
// it received. Every request of the burst is answered 200 by Latchkey.
func TestNginxRollingRestart(t *testing.T) {
	parallel(t)
	srv := dirtest.StartOpenLDAP(t)
	pg := pgtest.Start(t)
	delay := nginxDrain
	gws := haproxyGateways(t, srv, pg, fmt.Sprintf("  shutdown_delay: %s\n", delay))
	base := startNginx(t, gws)

	finish := startBurst(4, startsAndHealth(base))
	for i, g := range gws {
		g.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-g.exited:
		case <-time.After(delay + 60*time.Second):
			t.Fatalf("instance %d did not exit after SIGTERM", i)
		}
		if code := g.cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("instance %d: exit code %d after SIGTERM", i, code)
		}
		// a second of burst with the instance gone: nginx must route
		// around the closed port
		time.Sleep(time.Second)
		g.launch()
		// back in rotation: it has answered through nginx
		deadline := time.Now().Add(30 * time.Second)
		for resetsServed(t, g) < 5 {
			if time.Now().After(deadline) {
				t.Fatalf("instance %d served nothing through nginx within 30 s of its restart", i)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	answers := finish()
	for _, a := range answers {
		if a.err != nil || a.status != 200 || !a.latchkeys() {
			t.Fatalf("a request was lost during the rolling restart (%d answers in all): %s", len(answers), a)
		}
	}
	if len(answers) < 100 {
		t.Fatalf("only %d answers: the burst did not run", len(answers))
	}
	t.Logf("%d answers through nginx during a rolling restart of three instances, all 200", len(answers))
}

var resetCount = regexp.MustCompile(`latchkey_http_requests_total\{method="POST",route="/api/v1/reset",status="200"\} (\d+)`)

// resetsServed is how many reset starts e has answered 200 since it
// started.
func resetsServed(t *testing.T, e *env) int {
	t.Helper()
	res, err := httpClient.Get(e.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	m := resetCount.FindSubmatch(b)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}
