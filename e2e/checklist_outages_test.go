package e2e

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/directory/dirtest"
	"github.com/latchkeyhq/latchkey/notify/notifytest"
)

// TestChecklistOutages: outbound TLS and a dead directory (items H5,
// J2-J4, K3): certificates verified, TLS 1.2 at least, failures logged;
// with the directory stopped every step fails fast with the generic
// answer.
func TestChecklistOutages(t *testing.T) {
	parallel(t)
	for _, d := range ckDirectories() {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			checklistOutagesChecks(t, ckSetup(t, d))
		})
	}
}

func checklistOutagesChecks(t *testing.T, r *ckRun) {
	e, srv, pw, stopDirectory := r.e, r.srv, r.pw, r.stopDirectory

	t.Run("J2 J3 J4 outbound TLS is verified, at least 1.2, and its failures are logged", func(t *testing.T) {
		e.t = t
		cfg := filepath.Join(e.work, "latchkey.yaml")
		run := func(cmd string, environ map[string]string) (int, string) {
			t.Helper()
			work := t.TempDir()
			c := exec.Command(binary, cmd, "--config", cfg)
			c.Env = append(os.Environ(), "LATCHKEY_SERVER_LISTEN=127.0.0.1:"+strconv.Itoa(freePort(t)),
				"LATCHKEY_STORE_DSN=file:"+filepath.Join(work, "x.db"), "LATCHKEY_LOG_AUDIT_FILE="+filepath.Join(work, "audit.log"))
			for k, v := range environ {
				c.Env = append(c.Env, k+"="+v)
			}
			var out bytes.Buffer
			c.Stdout, c.Stderr = &out, &out
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- c.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(60 * time.Second):
				c.Process.Kill()
				<-done
				t.Fatalf("latchkey %s still running after 60 s:\n%s", cmd, out.String())
			}
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return ee.ExitCode(), out.String()
			}
			if err != nil {
				t.Fatal(err)
			}
			return 0, out.String()
		}
		// the directory's certificate signed by another CA: no start, and
		// the reason is in the log (without the bind password)
		other, err := dirtest.WriteCerts(filepath.Join(t.TempDir(), "other"))
		if err != nil {
			t.Fatal(err)
		}
		code, out := run("serve", map[string]string{"LATCHKEY_DIRECTORY_CA_FILE": other.CAFile})
		if code != 1 || !strings.Contains(strings.ToLower(out), "certificate") || strings.Contains(out, srv.ServicePassword) || strings.Contains(out, "listening") {
			t.Fatalf("serve with an untrusted directory certificate: exit %d\n%s", code, out)
		}
		// TLS 1.1 servers (LDAPS and SMTP): the handshake fails on the
		// version; the same servers with 1.2 complete it (the control)
		cert := notifytest.NewSelfSignedCert(t)
		kp, err := tls.X509KeyPair(cert.CertPEM, cert.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		tlsServer := func(maxVersion uint16) (port int, handshakes func() []error) {
			ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS10, MaxVersion: maxVersion}) // #nosec G402 -- a deliberately old server
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			var mu sync.Mutex
			var results []error
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func() {
						defer c.Close()
						c.SetDeadline(time.Now().Add(5 * time.Second))
						err := c.(*tls.Conn).Handshake()
						mu.Lock()
						results = append(results, err)
						mu.Unlock()
					}()
				}
			}()
			return ln.Addr().(*net.TCPAddr).Port, func() []error {
				mu.Lock()
				defer mu.Unlock()
				return slices.Clone(results)
			}
		}
		waitHandshake := func(hs func() []error) error {
			deadline := time.Now().Add(10 * time.Second)
			for len(hs()) == 0 {
				if time.Now().After(deadline) {
					t.Fatal("no TLS handshake reached the server")
				}
				time.Sleep(20 * time.Millisecond)
			}
			return hs()[0]
		}
		for _, v := range []struct {
			max uint16
			ok  bool
		}{{tls.VersionTLS11, false}, {tls.VersionTLS12, true}} {
			port, hs := tlsServer(v.max)
			code, out := run("serve", map[string]string{"LATCHKEY_DIRECTORY_URLS": "ldaps://127.0.0.1:" + strconv.Itoa(port), "LATCHKEY_DIRECTORY_CA_FILE": cert.CertFile})
			if code != 1 {
				t.Fatalf("serve against a fake LDAPS server: exit %d\n%s", code, out)
			}
			err := waitHandshake(hs)
			if (err == nil) != v.ok {
				t.Fatalf("LDAPS handshake with a TLS %x server: %v", v.max, err)
			}
			t.Logf("LDAPS client against a TLS %x server: %v", v.max, err)
			port, hs = tlsServer(v.max)
			code, out = run("check", map[string]string{"LATCHKEY_SMTP_HOST": "127.0.0.1", "LATCHKEY_SMTP_PORT": strconv.Itoa(port),
				"LATCHKEY_SMTP_TLS": "implicit", "LATCHKEY_SMTP_CA_FILE": cert.CertFile})
			if code != 1 || !regexp.MustCompile(`(?m)^FAIL\s+smtp`).MatchString(out) || !regexp.MustCompile(`(?m)^OK\s+directory\.bind`).MatchString(out) {
				t.Fatalf("check with a fake SMTP server: exit %d\n%s", code, out)
			}
			err = waitHandshake(hs)
			if (err == nil) != v.ok {
				t.Fatalf("SMTP handshake with a TLS %x server: %v", v.max, err)
			}
			t.Logf("SMTP client against a TLS %x server: %v", v.max, err)
		}
		// SMTP whose certificate the configured CA did not sign
		port, hs := tlsServer(tls.VersionTLS13)
		code, out = run("check", map[string]string{"LATCHKEY_SMTP_HOST": "127.0.0.1", "LATCHKEY_SMTP_PORT": strconv.Itoa(port),
			"LATCHKEY_SMTP_TLS": "implicit", "LATCHKEY_SMTP_CA_FILE": other.CAFile})
		if code != 1 || !regexp.MustCompile(`(?m)^FAIL\s+smtp.*certificate`).MatchString(out) {
			t.Fatalf("check with an untrusted SMTP certificate: exit %d\n%s", code, out)
		}
		if err := waitHandshake(hs); err == nil {
			t.Fatal("the handshake with an untrusted certificate completed")
		} else {
			t.Logf("SMTP client against an untrusted certificate: %v", err)
		}
	})

	t.Run(ckH3H4, func(t *testing.T) { r.auditAndSecrets(t, ckEventsOutages) })

	// K3 stops the directory for good: it stays the last subtest (under a
	// -run filter that selects K3 with others, it still runs last).
	t.Run("K3 H5 a dead directory fails fast with the generic answer", func(t *testing.T) {
		e.t = t
		if err := stopDirectory(); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			method, path, body string
			status             int
		}{
			// readiness: the instance serves (its own 503s below); the
			// dependency shows in the body and in /healthz/deps
			{"GET", "/readyz", "", 200},
			{"GET", "/healthz/deps", "", 503},
			{"POST", "/api/v1/reset", `{"username":"carol"}`, 503},
			{"POST", "/api/v1/session", ckJSON(map[string]string{"username": "carol", "password": pw("carol")}), 503},
			{"POST", "/api/v1/change", ckJSON(map[string]string{"username": "carol", "old_password": pw("carol"), "new_password": "Never-Written-55"}), 503},
		} {
			start := time.Now()
			a := e.call(c.method, c.path, "", c.body)
			took := time.Since(start)
			// a bound of the product's (directory.timeout and the dial
			// timeout), 16-33 times what it takes: not a race
			if a.status != c.status || took > 12*time.Second {
				t.Fatalf("%s %s with the directory down: %s after %v", c.method, c.path, a, took)
			}
			if c.path == "/readyz" || c.path == "/healthz/deps" {
				if a.str("directory") != "unavailable" || a.str("store") != "ok" {
					t.Fatalf("readiness %s", a.body)
				}
				continue
			}
			if a.errCode() != "unavailable" || a.hdr.Get("Retry-After") == "" || strings.Contains(strings.ToLower(string(a.body)), "ldap") || strings.Contains(string(a.body), "connection refused") {
				t.Fatalf("%s: %s", c.path, a)
			}
		}
		if a := e.do("GET", "/healthz", nil, ""); a.status != 200 {
			t.Fatalf("liveness with the directory down: %s", a)
		}
	})
}

// ckEventsOutages is what the run of TestChecklistOutages must leave in its audit (see ckAudit).
var ckEventsOutages = ckAudit{
	events: []string{
		"configuration.loaded", "sign_in/success", "registration.method_added",
		"registration.method_verified/success",
	},
	secrets: 2, notices: 2,
}
