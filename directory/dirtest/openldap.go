package dirtest

import (
	"context"
	_ "embed"
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

//go:embed testdata/slapd.conf.in
var slapdConf string

//go:embed testdata/openldap-seed.ldif
var openldapSeed string

// Option tunes a test slapd.
type Option func(*options)

type options struct {
	referral string
	// certNames, when set, are the only DNS names of the server certificate
	certNames    []string
	certNamesSet bool
}

// WithReferral makes slapd answer every operation outside its naming
// context with a referral to url (slapd's global "referral" directive).
func WithReferral(url string) Option { return func(o *options) { o.referral = url } }

// WithCertNames gives slapd a server certificate valid for exactly these DNS
// names and no IP address (the test CA still signs it; Server.CAFile
// verifies it). With no names the certificate has no subject alternative
// name, only CN=localhost. Admin, UserBind and Modify, which connect to
// 127.0.0.1 over LDAPS, do not work on such a server.
func WithCertNames(dns ...string) Option {
	return func(o *options) { o.certNames, o.certNamesSet = dns, true }
}

// StartOpenLDAP starts a seeded slapd on free loopback ports (ldap:// with
// StartTLS, and ldaps://) in a temporary directory, stopped at cleanup.
// It takes about 0.2 s.
func StartOpenLDAP(t testing.TB, opts ...Option) *Server {
	t.Helper()
	need(t, "slapd", "slaptest", "ldapadd")
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	s, stop, err := runOpenLDAP(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return s
}

// RunOpenLDAP is StartOpenLDAP outside tests (the dev environment): it runs
// a seeded slapd with its files in dir until stop is called.
func RunOpenLDAP(dir string) (s *Server, stop func(), err error) {
	return runOpenLDAP(dir, options{})
}

func runOpenLDAP(dir string, o options) (s *Server, stop func(), err error) {
	var certs *Certs
	if o.certNamesSet {
		certs, err = WriteCertsFor(filepath.Join(dir, "certs"), o.certNames...)
	} else {
		certs, err = WriteCerts(filepath.Join(dir, "certs"))
	}
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, nil, err
	}
	conf := filepath.Join(dir, "slapd.conf")
	text := strings.ReplaceAll(slapdConf, "@DIR@", dir)
	if o.referral != "" {
		text = strings.Replace(text, "\nmodulepath ", "\nreferral "+o.referral+"\n\nmodulepath ", 1)
	}
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return nil, nil, err
	}
	if out, err := exec.Command("slaptest", "-Q", "-u", "-f", conf).CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("dirtest: slaptest: %v\n%s", err, out)
	}
	s = &Server{
		Flavor: directory.OpenLDAP, Dir: dir, CAFile: certs.CAFile, CAPEM: certs.CAPEM,
		BaseDN:           "dc=example,dc=org",
		UserFilter:       "(&(objectClass=inetOrgPerson)(uid={username}))",
		ServiceDN:        "cn=sspr,ou=services,dc=example,dc=org",
		ServicePassword:  "ssprpw-Secret1",
		AdminDN:          "cn=admin,dc=example,dc=org",
		AdminPassword:    "adminpw",
		ReadOnlyDN:       "cn=sspr-readonly,ou=services,dc=example,dc=org",
		ReadOnlyPassword: "ssprpw-Secret1",
		DefaultPolicyDN:  "cn=default,ou=policies,dc=example,dc=org",
		SpecialUser:      `d*v(e)\`,
		UnicodeUser:      "josé",
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		p1, err1 := freePort()
		p2, err2 := freePort()
		if err1 != nil || err2 != nil || p1 == p2 {
			continue
		}
		s.URL = "ldap://127.0.0.1:" + strconv.Itoa(p1)
		s.LDAPSURL = "ldaps://127.0.0.1:" + strconv.Itoa(p2)
		logf, _ := os.Create(filepath.Join(dir, "slapd.log"))
		// -d 0: stay in the foreground, so the caller owns the process.
		cmd := exec.Command("slapd", "-d", "0", "-f", conf, "-h", s.URL+"/ "+s.LDAPSURL+"/")
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return nil, nil, fmt.Errorf("dirtest: starting slapd: %w", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		go func() {
			select {
			case <-exited:
				cancel()
			case <-ctx.Done():
			}
		}()
		lastErr = waitLDAP(ctx, s.URL, certs.CAPEM)
		cancel()
		if lastErr != nil {
			cmd.Process.Kill()
			<-exited
			logf.Close()
			continue // most likely a port taken in between: try others
		}
		stop = func() {
			cmd.Process.Kill() // throwaway data: no need for a clean shutdown
			<-exited
			logf.Close()
		}
		seed := exec.Command("ldapadd", "-x", "-H", s.URL, "-D", s.AdminDN, "-w", s.AdminPassword)
		seed.Stdin = strings.NewReader(openldapSeed)
		if out, err := seed.CombinedOutput(); err != nil {
			stop()
			return nil, nil, fmt.Errorf("dirtest: seeding slapd: %v\n%s", err, out)
		}
		return s, stop, nil
	}
	log, _ := os.ReadFile(filepath.Join(dir, "slapd.log"))
	return nil, nil, fmt.Errorf("dirtest: slapd did not start: %v\n%s", lastErr, log)
}
