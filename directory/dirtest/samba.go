package dirtest

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
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
	return startSamba(t, false)
}

// StartSambaGeneratedCert is StartSamba with the DC serving the TLS
// certificate Samba generates itself at its first start, as a DC
// provisioned without "tls certfile" does: subject CN=DC1.example.test, no
// subjectAltName, signed by Samba's own CA in private/tls/ca.pem, which
// Server.CAFile and CAPEM then are. Go refuses such a certificate for any
// name, so Admin, UserBind and Modify do not work on this server. Starting
// takes a few seconds longer (key generation).
func StartSambaGeneratedCert(t testing.TB) *Server {
	t.Helper()
	return startSamba(t, true)
}

func startSamba(t testing.TB, generatedCert bool) *Server {
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
	if out, err := exec.Command("samba", "-D", "-s", conf).CombinedOutput(); err != nil {
		t.Fatalf("dirtest: starting samba: %v\n%s", err, out)
	}
	t.Cleanup(func() { stopSamba(dir); os.RemoveAll(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tc := &tls.Config{ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if generatedCert {
		// Go refuses a certificate without SAN whatever the name; the CA
		// does not exist before Samba made it: wait for an answer only
		tc.InsecureSkipVerify = true
	} else {
		tc.RootCAs = x509.NewCertPool()
		tc.RootCAs.AppendCertsFromPEM(caPEM)
	}
	if err := waitLDAPTLS(ctx, s.LDAPSURL, tc); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log", "samba.log"))
		t.Fatalf("dirtest: %v\n%s", err, tail(string(log), 3000))
	}
	if generatedCert {
		if s.CAPEM, err = os.ReadFile(caFile); err != nil {
			t.Fatalf("dirtest: Samba generated no CA: %v", err)
		}
	}
	return s
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
