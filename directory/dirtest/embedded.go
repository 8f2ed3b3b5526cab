package dirtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/internal/demodir"
)

// StartEmbedded starts the in-process directory of internal/demodir (the
// one `latchkey demo` runs) seeded with the same LDIF as StartOpenLDAP,
// so suites written for slapd run against it unchanged. It needs no
// binaries and is never skipped. Server.Embedded is set.
func StartEmbedded(t testing.TB) *Server {
	t.Helper()
	s, err := runEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.embedded.Close() })
	return s
}

func runEmbedded(dir string) (*Server, error) {
	s := &Server{
		Flavor: directory.OpenLDAP, Dir: dir, Embedded: true,
		BaseDN:          "dc=example,dc=org",
		UserFilter:      "(&(objectClass=inetOrgPerson)(uid={username}))",
		ServiceDN:       "cn=sspr,ou=services,dc=example,dc=org",
		ServicePassword: "ssprpw-Secret1",
		AdminDN:         "cn=admin,dc=example,dc=org",
		DefaultPolicyDN: "cn=default,ou=policies,dc=example,dc=org",
		SpecialUser:     `d*v(e)\`,
		UnicodeUser:     "josé",
	}
	d, err := demodir.Start(context.Background(), demodir.Options{
		Seed: openldapSeed, BaseDN: s.BaseDN, ServiceDN: s.ServiceDN, ServicePassword: s.ServicePassword,
		DefaultPolicyDN: s.DefaultPolicyDN, AdminDN: s.AdminDN,
	})
	if err != nil {
		return nil, fmt.Errorf("dirtest: embedded directory: %w", err)
	}
	s.embedded = d
	s.AdminPassword = d.AdminPassword()
	s.URL, s.LDAPSURL = d.StartTLSURL(), d.URL()
	s.CAPEM = d.CAPEM()
	s.CAFile = filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(s.CAFile, s.CAPEM, 0o644); err != nil {
		d.Close()
		return nil, err
	}
	return s, nil
}

// modifyEmbedded applies an LDIF change set over an admin LDAPS
// connection (there is no ldapmodify on the embedded path).
func (s *Server) modifyEmbedded(t testing.TB, ldif string) {
	t.Helper()
	changes, err := demodir.ParseLDIF(ldif)
	if err != nil {
		t.Fatalf("dirtest: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CAPEM)
	conn, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(&tls.Config{RootCAs: pool, ServerName: s.Host(), MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatalf("dirtest: admin dial: %v", err)
	}
	defer conn.Close()
	if err := conn.Bind(s.AdminDN, s.AdminPassword); err != nil {
		t.Fatalf("dirtest: admin bind: %v", err)
	}
	for _, c := range changes {
		switch c.Type {
		case "add":
			r := ldap.NewAddRequest(c.DN, nil)
			for _, a := range c.Attrs {
				r.Attribute(a.Name, a.Values)
			}
			err = conn.Add(r)
		case "delete":
			err = conn.Del(ldap.NewDelRequest(c.DN, nil))
		case "modify":
			r := ldap.NewModifyRequest(c.DN, nil)
			for _, m := range c.Mods {
				switch m.Op {
				case "add":
					r.Add(m.Name, m.Values)
				case "delete":
					r.Delete(m.Name, m.Values)
				case "replace":
					r.Replace(m.Name, m.Values)
				}
			}
			err = conn.Modify(r)
		}
		if err != nil {
			t.Fatalf("dirtest: %s %s: %v", c.Type, c.DN, err)
		}
	}
}
