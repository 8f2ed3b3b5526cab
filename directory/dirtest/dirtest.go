// Package dirtest starts real, throwaway directories for tests: an OpenLDAP
// slapd (memberof, refint, ppolicy) on free loopback ports, and a Samba 4 AD
// DC cloned from a template provisioned once per machine. Both are seeded
// with the same people and groups, so suites can run unchanged on either.
//
// When a server binary is missing the test is skipped, unless the CI
// environment variable is set: then it fails, so CI always runs the
// real-server suites. Recipes and gotchas: shared/notes/directories.md.
package dirtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/internal/demodir"
	"github.com/latchkeyhq/latchkey/internal/testport"
)

// Server is a running test directory.
type Server struct {
	Flavor directory.Flavor
	// URL is ldap://127.0.0.1:port (StartTLS capable); LDAPSURL is ldaps://.
	URL      string
	LDAPSURL string
	CAFile   string
	CAPEM    []byte
	Dir      string

	BaseDN          string
	UserFilter      string
	ServiceDN       string
	ServicePassword string
	AdminDN         string
	AdminPassword   string
	// ReadOnlyDN and ReadOnlyPassword are an account that may read the
	// users but not reset their passwords: OpenLDAP's cn=sspr-readonly
	// (read on everything, no access to userPassword), AD's plain user bob.
	ReadOnlyDN, ReadOnlyPassword string
	// DefaultPolicyDN is the OpenLDAP ppolicy_default entry ("" on AD).
	DefaultPolicyDN string
	// SpecialUser is a seeded username full of filter metacharacters.
	SpecialUser string
	// UnicodeUser is a seeded username with non-ASCII letters ("josé").
	UnicodeUser string
	// Domain is the AD domain for UPNs and DOMAIN\name ("" on OpenLDAP).
	Domain, NetBIOS string
	// Embedded is true for the in-process directory of internal/demodir
	// (StartEmbedded): an OpenLDAP look-alike, not slapd. Suites may skip
	// what only a real slapd does, naming the reason.
	Embedded bool
	embedded *demodir.Server
	// Memory is the in-memory directory of StartMemory (nil otherwise):
	// no LDAP, no URLs; UserBind asks it.
	Memory *Memory
	// proc is the slapd process (OpenLDAP only), for Stop and Restart
	proc *slapdProc
}

// Seeded people (both flavors): alice (staff, sspr-admins; has a mobile),
// bob and carol (engineering, which is nested in staff), erin (no groups),
// frank, grace, heidi (stricter policy), ivan (disabled), judy (cycle-a, in
// a group cycle with cycle-b), twin1 and twin2 (same surname "Twin"), plus
// SpecialUser and UnicodeUser. Every password is Password(name).
var People = []string{"alice", "bob", "carol", "erin", "frank", "grace", "heidi", "ivan", "judy", "twin1", "twin2"}

// Password is the seeded password of a user.
func (s *Server) Password(name string) string {
	switch name {
	case s.SpecialUser:
		return "Dave-Pass1!"
	case s.UnicodeUser:
		return "Jose-Pass1!"
	}
	return strings.ToUpper(name[:1]) + name[1:] + "-Pass1!"
}

// UserDN is the DN of a seeded user.
func (s *Server) UserDN(name string) string {
	if s.Flavor == directory.ActiveDirectory {
		if name == "Administrator" {
			return s.AdminDN
		}
		return "CN=" + ldap.EscapeDN(name) + ",OU=People," + s.BaseDN
	}
	return "uid=" + ldap.EscapeDN(name) + ",ou=people," + s.BaseDN
}

// Group returns the DN of a seeded group by its lower-case name: staff,
// engineering, sspr-admins, cycle-a, cycle-b; on OpenLDAP also unique-staff
// (a groupOfUniqueNames containing staff); on AD also domain-admins.
func (s *Server) Group(name string) string {
	if s.Flavor == directory.ActiveDirectory {
		if name == "domain-admins" {
			return "CN=Domain Admins,CN=Users," + s.BaseDN
		}
		cn := map[string]string{"staff": "Staff", "engineering": "Engineering", "sspr-admins": "SSPR-Admins",
			"cycle-a": "Cycle-A", "cycle-b": "Cycle-B"}[name]
		return "CN=" + cn + ",OU=Groups," + s.BaseDN
	}
	return "cn=" + name + ",ou=groups," + s.BaseDN
}

// Config is a directory configuration for this server over LDAPS with
// verification against the test CA.
func (s *Server) Config() directory.Config {
	return directory.Config{
		Flavor:          s.Flavor,
		URLs:            []string{s.LDAPSURL},
		CAFile:          s.CAFile,
		BindDN:          s.ServiceDN,
		BindPassword:    s.ServicePassword,
		BaseDN:          s.BaseDN,
		UserFilter:      s.UserFilter,
		DefaultPolicyDN: s.DefaultPolicyDN,
		Timeout:         10 * time.Second,
	}
}

// Host is the address the server listens on (the host of URL), the name
// its certificate is checked against.
func (s *Server) Host() string {
	if u, err := url.Parse(s.LDAPSURL); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	return "127.0.0.1"
}

// Admin returns a connection bound as the directory administrator (rootdn
// or Administrator), over TLS, closed at the end of the test.
func (s *Server) Admin(t testing.TB) *ldap.Conn {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CAPEM)
	conn, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(&tls.Config{RootCAs: pool, ServerName: s.Host(), MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatalf("dirtest: admin dial: %v", err)
	}
	if err := conn.Bind(s.AdminDN, s.AdminPassword); err != nil {
		conn.Close()
		t.Fatalf("dirtest: admin bind: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Modify applies an LDIF change set as the administrator with ldapmodify.
func (s *Server) Modify(t testing.TB, ldif string) {
	t.Helper()
	if s.Embedded {
		s.modifyEmbedded(t, ldif)
		return
	}
	cmd := exec.Command("ldapmodify", "-x", "-H", s.LDAPSURL, "-D", s.AdminDN, "-w", s.AdminPassword)
	cmd.Env = append(os.Environ(), "LDAPTLS_CACERT="+s.CAFile)
	cmd.Stdin = strings.NewReader(ldif)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dirtest: ldapmodify: %v\n%s", err, out)
	}
}

// UserBind reports the error of a plain simple bind as a seeded user, for
// tests that check what the directory now accepts.
func (s *Server) UserBind(name, password string) error {
	if s.Memory != nil {
		return s.Memory.UserBind(name, password)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CAPEM)
	conn, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(&tls.Config{RootCAs: pool, ServerName: s.Host(), MinVersion: tls.VersionTLS12}))
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Bind(s.UserDN(name), password)
}

// need fails (CI) or skips (elsewhere) the test when a program is missing.
func need(t testing.TB, progs ...string) {
	t.Helper()
	for _, p := range progs {
		if _, err := exec.LookPath(p); err != nil {
			missing(t, fmt.Sprintf("%s not found on PATH (apt-get install slapd ldap-utils samba samba-ad-provision ldb-tools)", p))
		}
	}
}

func missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("dirtest: %s; CI is set, so this is a failure, not a skip", why)
	}
	t.Skipf("dirtest: %s", why)
}

func freePort() (int, error) { return testport.Free() }

// waitLDAP polls until the server answers a RootDSE search.
func waitLDAP(ctx context.Context, rawURL string, caPEM []byte) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	host := "127.0.0.1"
	if u, err := url.Parse(rawURL); err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	return waitLDAPTLS(ctx, rawURL, &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12})
}

// waitLDAPTLS is waitLDAP with the client's TLS configuration.
func waitLDAPTLS(ctx context.Context, rawURL string, tc *tls.Config) error {
	var last error
	for {
		conn, err := ldap.DialURL(rawURL, ldap.DialWithTLSConfig(tc))
		if err == nil {
			_, err = conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false, "(objectClass=*)", []string{"1.1"}, nil))
			conn.Close()
			if err == nil {
				return nil
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("server did not answer on %s: %v", rawURL, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
