package dirtest

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
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

// StartSamba starts a seeded Samba AD DC (realm EXAMPLE.TEST) on ports
// 389/636 of one of a few loopback addresses (a slot: 127.0.0.1, 127.0.0.11,
// 127.0.0.12, ...; Server.URL says which), stopped and removed at cleanup. A
// Samba DC's ports are fixed, so only one DC can run per address: StartSamba
// holds a machine-wide lock on its slot (flock on a file in the temp dir)
// until cleanup, and waits while every slot is taken, so Samba-backed tests
// of all the packages `go test ./...` runs at once share the slots. Slots
// past the first need their address on the loopback interface, which
// StartSamba adds (ip addr add, root); LATCHKEY_SAMBA_SLOTS sets how many
// there are (default 3; 1 keeps every DC on 127.0.0.1). The first call on a
// machine provisions a template (about 15 s); later calls copy it (well
// under a second). Needs root.
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
	ip, runs := takeSambaSlot(t, tmp)
	t.Logf("dirtest: Samba DC on %s", ip)
	killStale(runs, ip)

	sum := sha256.Sum256([]byte(sambaProvision + strings.Join(sambaSlotIPs(), ",")))
	tpl := filepath.Join(tmp, "latchkey-samba-template-"+hex.EncodeToString(sum[:6]))
	if _, err := os.Stat(filepath.Join(tpl, "ready")); err != nil {
		// DCs of other slots may be starting too: one builds, the others
		// wait for it
		unlockTpl := flock(t, tpl+".lock")
		if _, err := os.Stat(filepath.Join(tpl, "ready")); err != nil {
			buildTemplate(t, tpl)
		}
		unlockTpl()
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
	smbConf = strings.ReplaceAll(smbConf, "interfaces = 127.0.0.1", "interfaces = "+ip)
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
		URL: "ldap://" + ip + ":389", LDAPSURL: "ldaps://" + ip + ":636",
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
		t.Cleanup(func() { stopSamba(dir, ip); os.RemoveAll(dir) })
		start()
		return s
	}
	tlsDir := filepath.Join(dir, "private", "tls")
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	want := "positive"
	if cert == sambaCertNegative {
		want = "negative"
	}
	made := sambaLikeCert(t, want)
	for _, f := range sambaTLSFiles {
		if out, err := exec.Command("cp", "-a", filepath.Join(made, f), tlsDir).CombinedOutput(); err != nil {
			t.Fatalf("dirtest: %v\n%s", err, out)
		}
	}
	t.Cleanup(func() { stopSamba(dir, ip); os.RemoveAll(dir) })
	start()
	if got := serialSign(t, filepath.Join(tlsDir, "cert.pem")); got != want {
		t.Fatalf("dirtest: the DC serves a certificate with a %s serial, want %s", got, want)
	}
	if s.CAPEM, err = os.ReadFile(caFile); err != nil {
		t.Fatalf("dirtest: no CA in private/tls: %v", err)
	}
	return s
}

// sambaTLSFiles are what Samba generates in private/tls.
var sambaTLSFiles = []string{"key.pem", "cert.pem", "ca.pem"}

// sambaLikeCert returns a directory holding private/tls files made the way
// Samba 4.17 makes them at a DC's first start when smb.conf names no
// certificate: a CA and a host certificate signed by it, subject
// CN=DC1.example.test, no subjectAltName, and serial numbers of the given
// sign ("positive" or "negative": Samba takes them from the start time's
// seconds as a little-endian int32, negative for 128 seconds out of every
// 256). Made once per machine with openssl (Go will not sign a negative
// serial) and kept in the temp dir; Samba serves the files it finds there
// instead of making its own, so a DC never waits for the sign it needs.
func sambaLikeCert(t testing.TB, sign string) string {
	t.Helper()
	need(t, "openssl")
	serial := "1"
	if sign == "negative" {
		serial = "-1"
	}
	dir := filepath.Join(os.TempDir(), "latchkey-samba-cert-v1-"+sign)
	if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
		return dir
	}
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ext := filepath.Join(dir, "host.ext")
	if err := os.WriteFile(ext, []byte("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const o = "/O=Samba Administration/OU=Samba - temporary autogenerated "
	for _, args := range [][]string{
		{"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "3650",
			"-subj", o + "CA certificate/CN=DC1.example.test", "-set_serial", serial,
			"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"},
		{"req", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "host.csr",
			"-subj", o + "HOST certificate/CN=DC1.example.test"},
		{"x509", "-req", "-in", "host.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", serial,
			"-days", "3650", "-extfile", ext, "-out", "cert.pem"},
	} {
		cmd := exec.Command("openssl", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			t.Fatalf("dirtest: openssl %s: %v\n%s", args[0], err, out)
		}
	}
	if got := serialSign(t, filepath.Join(dir, "cert.pem")); got != sign {
		os.RemoveAll(dir)
		t.Fatalf("dirtest: openssl made a certificate with a %s serial, want %s", got, sign)
	}
	if err := os.WriteFile(filepath.Join(dir, "ready"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

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

func buildTemplate(t testing.TB, tpl string) {
	t.Helper()
	os.RemoveAll(tpl)
	dns := []string{"localhost", "dc1.example.test", "example.test"}
	if h, err := os.Hostname(); err == nil && h != "" {
		dns = append(dns, h)
	}
	var ips []net.IP
	for _, ip := range sambaSlotIPs() {
		ips = append(ips, net.ParseIP(ip))
	}
	if _, err := writeCerts(filepath.Join(tpl, "certs"), dns, ips); err != nil {
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

// stopSamba stops the DC whose files are in dir: SIGKILL to its process
// group (samba -D starts a session of its own: the master and all its
// children; the DC's data is thrown away, so nothing needs a clean
// shutdown, which takes Samba seconds), then a wait until no process of the
// group is left and ports 389 and 636 refuse connections, so that the next
// DC can bind them and a test never talks to a dying one. ip is the DC's
// address (its slot's).
func stopSamba(dir, ip string) {
	b, err := os.ReadFile(filepath.Join(dir, "run", "samba.pid"))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	group := pid
	if pg, err := syscall.Getpgid(pid); err == nil && pg > 1 && pg != syscall.Getpgrp() {
		group = pg // never our own group (samba -D normally leads its own)
	}
	gone := func() bool { return syscall.Kill(-group, 0) != nil && syscall.Kill(pid, 0) != nil }
	for i := 0; i < 200 && !gone(); i++ {
		syscall.Kill(-group, syscall.SIGKILL)
		syscall.Kill(pid, syscall.SIGKILL)
		time.Sleep(10 * time.Millisecond)
	}
	for i := 0; i < 200; i++ {
		open := false
		for _, port := range []string{"389", "636"} {
			if c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, port), time.Second); err == nil {
				c.Close()
				open = true
			}
		}
		if !open {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// killStale stops DCs left behind by test processes that died before their
// cleanup ran. Called with the slot's lock held, so any DC under the slot's
// runs is stale.
func killStale(runs, ip string) {
	dirs, _ := filepath.Glob(filepath.Join(runs, "dc-*"))
	for _, d := range dirs {
		stopSamba(d, ip)
		os.RemoveAll(d)
	}
}

// tryFlock takes an exclusive lock on path if no one holds it.
func tryFlock(t testing.TB, path string) (unlock func(), ok bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false
		}
		t.Fatal(fmt.Errorf("dirtest: locking %s: %w", path, err))
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, true
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

// RestartSamba stops the DC and starts it again from its smb.conf (in
// Dir/etc), as an administrator does after changing the certificate
// lines, and waits until it answers over LDAPS with a certificate valid
// for its address under caFile, which CAFile and CAPEM then are (Admin,
// Modify and UserBind trust it).
func (s *Server) RestartSamba(t testing.TB, caFile string) {
	t.Helper()
	if s.Flavor != directory.ActiveDirectory || s.Embedded {
		t.Fatal("dirtest: RestartSamba is for a Samba DC")
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	stopSamba(s.Dir, s.Host())
	conf := filepath.Join(s.Dir, "etc", "smb.conf")
	if out, err := exec.Command("samba", "-D", "-s", conf).CombinedOutput(); err != nil {
		t.Fatalf("dirtest: starting samba: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := waitLDAP(ctx, s.LDAPSURL, caPEM); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.Dir, "log", "samba.log"))
		t.Fatalf("dirtest: samba after a restart: %v\n%s", err, tail(string(log), 3000))
	}
	s.CAFile, s.CAPEM = caFile, caPEM
}

// sambaSlotIPs are the loopback addresses Samba DCs may listen on, one DC
// each: 127.0.0.1, then 127.0.0.11, 127.0.0.12, ... (LATCHKEY_SAMBA_SLOTS
// of them, default 3). The template's certificate is valid for all of them.
func sambaSlotIPs() []string {
	n := 3
	if v, err := strconv.Atoi(os.Getenv("LATCHKEY_SAMBA_SLOTS")); err == nil && v >= 1 && v <= 8 {
		n = v
	}
	ips := []string{"127.0.0.1"}
	for i := 1; i < n; i++ {
		ips = append(ips, "127.0.0."+strconv.Itoa(10+i))
	}
	return ips
}

// takeSambaSlot locks a free slot for the rest of the test (released at
// cleanup) and returns its address and the directory its DCs run in,
// waiting while all are taken. The first slot keeps the lock and run
// directory names of the time when there was one, so that an older
// checkout's tests running at the same time still exclude each other on
// 127.0.0.1. A slot whose address cannot be put on the loopback interface
// is not used.
func takeSambaSlot(t testing.TB, tmp string) (ip, runs string) {
	t.Helper()
	ips := sambaSlotIPs()
	unusable := map[string]bool{}
	for {
		for i, ip := range ips {
			if unusable[ip] {
				continue
			}
			lock, runs := "latchkey-samba.lock", "latchkey-samba-runs"
			if i > 0 {
				lock, runs = "latchkey-samba-"+ip+".lock", "latchkey-samba-runs-"+ip
			}
			unlock, ok := tryFlock(t, filepath.Join(tmp, lock))
			if !ok {
				continue
			}
			if i > 0 {
				if err := loopbackAddress(ip); err != nil {
					unlock()
					unusable[ip] = true
					t.Logf("dirtest: Samba slot %s not used: %v", ip, err)
					continue
				}
			}
			t.Cleanup(unlock)
			return ip, filepath.Join(tmp, runs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// loopbackAddress makes sure ip is an address of the loopback interface
// (Samba binds only to addresses an interface has).
func loopbackAddress(ip string) error {
	ifc, err := net.InterfaceByName("lo")
	if err != nil {
		return err
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.String() == ip {
			return nil
		}
	}
	out, err := exec.Command("ip", "addr", "add", ip+"/32", "dev", "lo").CombinedOutput()
	if err != nil && !strings.Contains(string(out), "File exists") {
		return fmt.Errorf("ip addr add %s/32 dev lo: %v: %s", ip, err, strings.TrimSpace(string(out)))
	}
	return nil
}
