package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/latchkeyhq/latchkey/config"
)

// drainCovers says whether a drain of delay outlasts a readiness check made
// every period seconds that takes an instance out after fall failures, by
// config.DrainMargin.
func drainCovers(delay time.Duration, period, fall int) bool {
	if period <= 0 || fall <= 0 {
		return false
	}
	return delay >= time.Duration(period*fall)*time.Second+config.DrainMargin
}

// TestDrainCoversProbes: the default server.shutdown_delay of a shared
// store outlasts the readiness check of every example that ships (the
// Kubernetes manifest, deploy/haproxy, the NGINX Plus line of deploy/nginx),
// and each example checks /readyz with the documented numbers
// (config.ProbePeriod, config.ProbeFailureThreshold). A load balancer that
// keeps sending to an instance after its listener closed loses requests
// (issue 21: 12 connection errors per SIGTERM with a 5 s drain and a 10 s
// probe).
func TestDrainCoversProbes(t *testing.T) {
	period, fall := int(config.ProbePeriod/time.Second), config.ProbeFailureThreshold
	if !drainCovers(config.DefaultShutdownDelay, period, fall) {
		t.Fatalf("DefaultShutdownDelay %v does not cover the documented probe", config.DefaultShutdownDelay)
	}
	pg, err := config.Load("", config.WithLookupEnv(func(k string) (string, bool) {
		return "postgres", k == "LATCHKEY_STORE_DRIVER"
	}))
	if err != nil {
		t.Fatal(err)
	}
	if pg.Server.ShutdownDelay != config.DefaultShutdownDelay {
		t.Fatalf("postgres store: shutdown_delay %v, want %v", pg.Server.ShutdownDelay, config.DefaultShutdownDelay)
	}
	type check struct {
		where        string
		path         string
		period, fall int
	}
	var checks []check

	// Kubernetes: the Deployment's readiness probe
	manifest, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "kubernetes", "latchkey.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(manifest))
	for {
		var d k8sDoc
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if d.Kind == "Deployment" {
			rp := d.Spec.Template.Spec.Containers[0].ReadinessProbe
			checks = append(checks, check{"kubernetes readinessProbe", rp.HTTPGet.Path, rp.PeriodSeconds, rp.FailureThreshold})
		}
	}

	// HAProxy: option httpchk GET <path>, default-server inter Ns fall N
	hx := readDeploy(t, "haproxy", "haproxy.cfg")
	hc := check{where: "haproxy"}
	if m := regexp.MustCompile(`(?m)^\s*option httpchk GET (\S+)`).FindSubmatch(hx); m != nil {
		hc.path = string(m[1])
	}
	if m := regexp.MustCompile(`(?m)^\s*default-server .*\binter (\d+)s\b.*\bfall (\d+)\b`).FindSubmatch(hx); m != nil {
		hc.period, _ = strconv.Atoi(string(m[1]))
		hc.fall, _ = strconv.Atoi(string(m[2]))
	}
	if n := len(regexp.MustCompile(`(?m)^\s*server \S+ \S+ check\b`).FindAll(hx, -1)); n < 2 {
		t.Errorf("haproxy: %d checked servers", n)
	}
	checks = append(checks, hc)

	// nginx: open source has no active check (a closed listener is a
	// connection error, retried on the next instance); the NGINX Plus line
	nx := readDeploy(t, "nginx", "latchkey.conf")
	nc := check{where: "nginx (NGINX Plus health_check)"}
	if m := regexp.MustCompile(`health_check uri=(\S+) interval=(\d+) fails=(\d+)`).FindSubmatch(nx); m != nil {
		nc.path = string(m[1])
		nc.period, _ = strconv.Atoi(string(m[2]))
		nc.fall, _ = strconv.Atoi(string(m[3]))
	}
	checks = append(checks, nc)
	if !regexp.MustCompile(`(?m)^\s*proxy_next_upstream error timeout;`).Match(nx) {
		t.Error("nginx: connection errors are not retried on the next instance")
	}
	// nginx must close its idle connections to a draining instance
	// itself, once its listener has closed, before the instance closes
	// them (nginx's default is 60s)
	if m := regexp.MustCompile(`(?m)^\s*keepalive_timeout (\d+)s;`).FindSubmatch(nx); m == nil {
		t.Error("nginx: the upstream's keepalive_timeout is not set (nginx's default, 60s, outlasts the drain)")
	} else if n, _ := strconv.Atoi(string(m[1])); time.Duration(n)*time.Second >= connCloseWait {
		t.Errorf("nginx: keepalive_timeout %ds does not end within the drain's wait for kept connections (%v)", n, connCloseWait)
	}

	for _, c := range checks {
		if c.path != "/readyz" || c.period != period || c.fall != fall {
			t.Errorf("%s: checks %q every %ds, out after %d; docs/deploy.md says /readyz every %ds, out after %d", c.where, c.path, c.period, c.fall, period, fall)
		}
		if !drainCovers(config.DefaultShutdownDelay, c.period, c.fall) {
			t.Errorf("%s: the default shutdown_delay %v does not outlast its check", c.where, config.DefaultShutdownDelay)
		}
	}
}

// TestHAProxyExampleParses: haproxy -c accepts deploy/haproxy/haproxy.cfg
// (logging to stderr instead of /dev/log).
func TestHAProxyExampleParses(t *testing.T) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		bin = "/usr/sbin/haproxy"
		if _, err := os.Stat(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("haproxy is not installed (scripts/deps.sh)")
			}
			t.Skip("haproxy is not installed")
		}
	}
	cfg := bytes.Replace(readDeploy(t, "haproxy", "haproxy.cfg"), []byte("log /dev/log local0"), []byte("log stderr local0"), 1)
	p := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(p, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-c", "-f", p).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
}

func readDeploy(t *testing.T, parts ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{repoRoot, "deploy"}, parts...)...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestNginxExampleParses: nginx -t accepts deploy/nginx/latchkey.conf in an
// http {} block, with a throwaway certificate for its TLS paths.
func TestNginxExampleParses(t *testing.T) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx"
		if _, err := os.Stat(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("nginx is not installed (scripts/deps.sh: nginx-light)")
			}
			t.Skip("nginx is not installed")
		}
	}
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sspr.example.org"},
		DNSNames: []string{"sspr.example.org"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	crt, kpath := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(crt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kpath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := readDeploy(t, "nginx", "latchkey.conf")
	for old, new := range map[string]string{"/etc/nginx/tls/sspr.example.org.crt": crt, "/etc/nginx/tls/sspr.example.org.key": kpath} {
		if !bytes.Contains(conf, []byte(old)) {
			t.Fatalf("deploy/nginx/latchkey.conf has no %s any more: update the test", old)
		}
		conf = bytes.ReplaceAll(conf, []byte(old), []byte(new))
	}
	site := filepath.Join(dir, "latchkey.conf")
	if err := os.WriteFile(site, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	main := fmt.Sprintf("error_log stderr;\npid %s/nginx.pid;\nevents {}\nhttp {\n  access_log off;\n  include %s;\n}\n", dir, site)
	mainPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(mainPath, []byte(main), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-t", "-p", dir, "-c", mainPath).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}
