package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/latchkeyhq/latchkey/directory/dirtest"
)

// Benchmarks against the real binary and a real slapd on loopback:
//
//	go test -run '^$' -bench . -benchtime 2000x ./e2e/
//
// BenchmarkRawChange is the ceiling: the same directory work done straight
// with go-ldap on persistent connections (search as the service account,
// bind as the user, Password Modify). Compare ops/s within one run.

func benchEnv(b *testing.B) (*env, *dirtest.Server) {
	srv := dirtest.StartOpenLDAP(b)
	mail, sms := startMail(b)
	e := startGateway(b, srv, mail, sms, params{Limits: highLimits + "  bind_failures: 100000\n"})
	return e, srv
}

// BenchmarkResetStart starts resets for a registered user (the real path)
// and for a name that does not exist (held to the real path's time).
func BenchmarkResetStart(b *testing.B) {
	e, _ := benchEnv(b)
	e.register("carol", "carol.bench@example.net", "")
	for _, name := range []string{"carol", "no-such-user"} {
		b.Run(name, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if r := e.api("POST", "/api/v1/reset", "", map[string]string{"username": name}); r.Status != 200 {
						b.Errorf("status %d", r.Status)
						return
					}
				}
			})
		})
	}
}

func BenchmarkChange(b *testing.B) {
	e, srv := benchEnv(b)
	var n atomic.Int64
	cur := srv.Password("erin")
	b.ResetTimer()
	// changes of one account are serial by nature (old -> new)
	for i := 0; i < b.N; i++ {
		next := fmt.Sprintf("Bench-Passw0rd-%d-x", n.Add(1))
		if r := e.api("POST", "/api/v1/change", "", map[string]string{"username": "erin", "old_password": cur, "new_password": next}); r.Status != 200 {
			b.Fatalf("change %d: %s", r.Status, r.Body)
		}
		cur = next
	}
}

func BenchmarkRawChange(b *testing.B) {
	srv := dirtest.StartOpenLDAP(b)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(srv.CAPEM)
	dial := func() *ldap.Conn {
		c, err := ldap.DialURL(srv.LDAPSURL, ldap.DialWithTLSConfig(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}))
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	svc, usr := dial(), dial()
	defer svc.Close()
	defer usr.Close()
	if err := svc.Bind(srv.ServiceDN, srv.ServicePassword); err != nil {
		b.Fatal(err)
	}
	cur := srv.Password("erin")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := svc.Search(ldap.NewSearchRequest(srv.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2, 0, false,
			"(&(objectClass=inetOrgPerson)(uid=erin))", []string{"entryUUID"}, nil))
		if err != nil || len(res.Entries) != 1 {
			b.Fatal(err)
		}
		dn := res.Entries[0].DN
		if err := usr.Bind(dn, cur); err != nil {
			b.Fatal(err)
		}
		next := fmt.Sprintf("Raw-Passw0rd-%d-x", i)
		if _, err := usr.PasswordModify(ldap.NewPasswordModifyRequest(dn, cur, next)); err != nil {
			b.Fatal(err)
		}
		cur = next
	}
}
