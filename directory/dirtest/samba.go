package dirtest

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/latchkeyhq/latchkey/directory"
)

//go:embed testdata/samba-provision.sh
var sambaProvision string

// StartSamba starts a seeded Samba AD DC (realm EXAMPLE.TEST) on
// 127.0.0.1:389/636, stopped and removed at cleanup. A Samba DC's ports are
// fixed, so only one can run per machine: StartSamba holds a machine-wide
// lock (flock on a file in the temp dir) until cleanup, which serialises
// Samba-backed tests across the packages `go test ./...` runs in parallel.
// The first call on a machine provisions a template (about 15 s); later
// calls copy it (well under a second). Needs root.
func StartSamba(t testing.TB) *Server {
	t.Helper()
	return startSamba(t, sambaCertTest)
}

// StartSambaGeneratedCert is StartSamba with the DC serving the TLS
// certificate Samba generates itself at its first start, as a DC
// provisioned without "tls certfile" does: subject CN=DC1.example.test, no
// subjectAltName, signed by Samba's own CA in private/tls/ca.pem, which
// Server.CAFile and CAPEM then are. Go refuses such a certificate for any
// name, so Admin, UserBind and Modify do not work on this server.
//
// Samba 4.17 makes the serial number (of both certificates) from the
// start time's seconds as a little-endian int32, so it is negative for 128
// seconds out of every 256, and Go (since 1.23) refuses to parse such a
// certificate at all: "x509: negative serial number". negativeSerial picks
// which kind the DC serves. The first certificate Samba makes of each kind
// is kept in the temp dir (latchkey-samba-gencert-positive, -negative) and
// given to later DCs; until both exist a DC may wait up to about two
// minutes for the sign to flip and generate again.
func StartSambaGeneratedCert(t testing.TB, negativeSerial bool) *Server {
	t.Helper()
	if negativeSerial {
		return startSamba(t, sambaCertNegative)
	}
	return startSamba(t, sambaCertPositive)
}

// Which certificate a Samba DC serves.
const (
	sambaCertTest     = iota // dirtest's CA and a certificate with SANs
	sambaCertPositive        // Samba's own, with a positive serial
	sambaCertNegative        // Samba's own, with a negative serial
)

func startSamba(t testing.TB, cert int) *Server {
	t.Helper()
	need(t, "samba", "samba-tool", "ldbsearch", "ldbmodify", "ldapmodify")
	if os.Geteuid() != 0 {
		missing(t, "a Samba AD DC needs root to listen on ports 389 and 636")
	}
	tmp := os.TempDir()
	unlock := flock(t, filepath.Join(tmp, "latchkey-samba.lock"))
	t.Cleanup(unlock)
	runs := filepath.Join(tmp, "latchkey-samba-runs")
	killStale(runs)

	sum := sha256.Sum256([]byte(sambaProvision))
	tpl := filepath.Join(tmp, "latchkey-samba-template-"+hex.EncodeToString(sum[:6]))
	if _, err := os.Stat(filepath.Join(tpl, "ready")); err != nil {
		buildTemplate(t, tpl)
	}
	if err := os.MkdirAll(runs, 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(runs, "dc-")
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(dir)
	if out, err := exec.Command("cp", "-a", tpl, dir).CombinedOutput(); err != nil {
		t.Fatalf("dirtest: copying the Samba template: %v\n%s", err, out)
	}
	conf := filepath.Join(dir, "etc", "smb.conf")
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	generatedCert := cert != sambaCertTest
	smbConf := strings.ReplaceAll(string(b), tpl, dir)
	caFile := filepath.Join(dir, "certs", "ca.crt")
	if generatedCert {
		// without these Samba generates a CA and a certificate in
		// private/tls at its first start (the smb.conf defaults)
		var keep []string
		for _, l := range strings.Split(smbConf, "\n") {
			k := strings.TrimSpace(l)
			if !strings.HasPrefix(k, "tls keyfile") && !strings.HasPrefix(k, "tls certfile") && !strings.HasPrefix(k, "tls cafile") {
				keep = append(keep, l)
			}
		}
		smbConf = strings.Join(keep, "\n")
		caFile = filepath.Join(dir, "private", "tls", "ca.pem")
	}
	if err := os.WriteFile(conf, []byte(smbConf), 0o644); err != nil {
		t.Fatal(err)
	}
	var caPEM []byte
	if !generatedCert {
		if caPEM, err = os.ReadFile(caFile); err != nil {
			t.Fatal(err)
		}
	}
	s := &Server{
		Flavor: directory.ActiveDirectory, Dir: dir,
		URL: "ldap://127.0.0.1:389", LDAPSURL: "ldaps://127.0.0.1:636",
		CAFile: caFile, CAPEM: caPEM,
		BaseDN:           "DC=example,DC=test",
		UserFilter:       "(&(objectCategory=person)(objectClass=user)(sAMAccountName={username}))",
		ServiceDN:        "CN=sspr,OU=Services,DC=example,DC=test",
		ServicePassword:  "Sspr-Svc-Pass1!",
		AdminDN:          "CN=Administrator,CN=Users,DC=example,DC=test",
		AdminPassword:    "Admin-Pass1!",
		ReadOnlyDN:       "CN=bob,OU=People,DC=example,DC=test",
		ReadOnlyPassword: "Bob-Pass1!",
		SpecialUser:      "dave(qa)",
		UnicodeUser:      "josé",
		Domain:           "example.test",
		NetBIOS:          "EXAMPLE",
	}
	start := func() {
		t.Helper()
		if out, err := exec.Command("samba", "-D", "-s", conf).CombinedOutput(); err != nil {
			t.Fatalf("dirtest: starting samba: %v\n%s", err, out)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		var err error
		if generatedCert {
			// Go may not even parse the certificate: wait for a plain
			// RootDSE answer (Samba makes its keys before it listens)
			err = waitLDAPTLS(ctx, s.URL, nil)
		} else {
			err = waitLDAP(ctx, s.LDAPSURL, caPEM)
		}
		if err != nil {
			log, _ := os.ReadFile(filepath.Join(dir, "log", "samba.log"))
			t.Fatalf("dirtest: %v\n%s", err, tail(string(log), 3000))
		}
	}
	if !generatedCert {
		t.Cleanup(func() { stopSamba(dir); os.RemoveAll(dir) })
		start()
		return s
	}
	tlsDir := filepath.Join(dir, "private", "tls")
	want := "positive"
	if cert == sambaCertNegative {
		want = "negative"
	}
	cache := func(sign string) string { return filepath.Join(tmp, "latchkey-samba-gencert-"+sign) }
	useCached := func() bool {
		if _, err := os.Stat(filepath.Join(cache(want), "ready")); err != nil {
			return false
		}
		for _, f := range sambaTLSFiles {
			if out, err := exec.Command("cp", "-a", filepath.Join(cache(want), f), tlsDir).CombinedOutput(); err != nil {
				t.Fatalf("dirtest: %v\n%s", err, out)
			}
		}
		return true
	}
	useCached()
	t.Cleanup(func() { stopSamba(dir); os.RemoveAll(dir) })
	start()
	for {
		got := serialSign(t, filepath.Join(tlsDir, "cert.pem"))
		if _, err := os.Stat(filepath.Join(cache(got), "ready")); err != nil {
			saveGeneratedCert(t, tlsDir, cache(got))
		}
		if got == want {
			break
		}
		stopSamba(dir)
		if !useCached() {
			// Samba's serial is the start time's seconds as a little-endian
			// int32: its sign flips every 128 s; wait for the flip
			now := time.Now().Unix()
			time.Sleep(time.Duration(128-now%128+2) * time.Second)
			for _, f := range sambaTLSFiles {
				os.Remove(filepath.Join(tlsDir, f))
			}
		}
		start()
	}
	if s.CAPEM, err = os.ReadFile(caFile); err != nil {
		t.Fatalf("dirtest: Samba generated no CA: %v", err)
	}
	return s
}

// sambaTLSFiles are what Samba generates in private/tls.
var sambaTLSFiles = []string{"key.pem", "cert.pem", "ca.pem"}

// serialSign is "negative" when Go refuses the certificate in file for its
// negative serial number, else "positive".
func serialSign(t testing.TB, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("dirtest: Samba generated no certificate: %v", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("dirtest: %s holds no PEM block", file)
	}
	_, err = x509.ParseCertificate(blk.Bytes)
	switch {
	case err == nil:
		return "positive"
	case strings.Contains(err.Error(), "negative serial number"):
		return "negative"
	}
	t.Fatalf("dirtest: Samba's certificate: %v", err)
	return ""
}

// saveGeneratedCert keeps the files Samba generated in private/tls for
// later DCs that need a certificate of the same sign (the machine-wide
// lock is held, so nobody else writes the cache).
func saveGeneratedCert(t testing.TB, tlsDir, cache string) {
	t.Helper()
	os.RemoveAll(cache)
	if err := os.MkdirAll(cache, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range sambaTLSFiles {
		if out, err := exec.Command("cp", "-a", filepath.Join(tlsDir, f), cache).CombinedOutput(); err != nil {
			t.Fatalf("dirtest: %v\n%s", err, out)
		}
	}
	if err := os.WriteFile(filepath.Join(cache, "ready"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

func buildTemplate(t testing.TB, tpl string) {
	t.Helper()
	os.RemoveAll(tpl)
	if _, err := WriteCerts(filepath.Join(tpl, "certs"), "dc1.example.test", "example.test"); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(tpl, "provision.sh")
	if err := os.WriteFile(script, []byte(sambaProvision), 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, err := exec.Command("sh", script, tpl).CombinedOutput()
	if err != nil {
		os.RemoveAll(tpl)
		t.Fatalf("dirtest: provisioning the Samba template: %v\n%s", err, tail(string(out), 4000))
	}
	if err := os.WriteFile(filepath.Join(tpl, "ready"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("dirtest: provisioned the Samba AD template in %s", time.Since(start).Round(time.Millisecond))
}

func stopSamba(dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "run", "samba.pid"))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	// The master's children exit with it; the process group catches stragglers.
	syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 100; i++ {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
}

// killStale stops DCs left behind by test processes that died before their
// cleanup ran. Called with the lock held, so any DC under runs is stale.
func killStale(runs string) {
	dirs, _ := filepath.Glob(filepath.Join(runs, "dc-*"))
	for _, d := range dirs {
		stopSamba(d)
		os.RemoveAll(d)
	}
}

// flock takes an exclusive lock on path, waiting as long as it takes.
func flock(t testing.TB, path string) func() {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatal(fmt.Errorf("dirtest: locking %s: %w", path, err))
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
