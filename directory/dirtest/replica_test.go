package dirtest_test

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/latchkeyhq/latchkey/directory/dirtest"
)

// TestReplica: a consumer started by StartReplica holds the provider's
// entries (memberOf included), follows changes, refuses writes, and
// catches up after the provider was stopped and restarted.
func TestReplica(t *testing.T) {
	prov := dirtest.StartOpenLDAP(t, dirtest.AsProvider())
	repl := dirtest.StartReplica(t, prov)
	if err := repl.UserBind("carol", repl.Password("carol")); err != nil {
		t.Fatalf("seeded user does not bind on the replica: %v", err)
	}
	admin := repl.Admin(t)
	res, err := admin.Search(ldap.NewSearchRequest(repl.UserDN("carol"), ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"memberOf"}, nil))
	if err != nil || len(res.Entries) != 1 || len(res.Entries[0].GetAttributeValues("memberOf")) == 0 {
		t.Fatalf("carol's memberOf on the replica: %v %v", err, res)
	}
	// a change on the provider arrives
	prov.Modify(t, "dn: "+prov.UserDN("erin")+"\nchangetype: modify\nreplace: userPassword\nuserPassword: Erin-Changed-1!\n")
	if err := repl.WaitReplicated(prov, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := repl.UserBind("erin", "Erin-Changed-1!"); err != nil {
		t.Fatalf("changed password on the replica: %v", err)
	}
	// the replica refuses writes, even the service account's password reset
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(repl.CAPEM)
	conn, err := ldap.DialURL(repl.LDAPSURL, ldap.DialWithTLSConfig(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Bind(repl.ServiceDN, repl.ServicePassword); err != nil {
		t.Fatal(err)
	}
	_, err = conn.PasswordModify(ldap.NewPasswordModifyRequest(repl.UserDN("erin"), "", "Erin-Other-2!"))
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultUnwillingToPerform) {
		t.Fatalf("a write on the replica: %v, want unwilling to perform", err)
	}
	// provider down, then back: changes made after the restart arrive
	prov.Stop(t)
	if err := prov.UserBind("erin", "Erin-Changed-1!"); err == nil {
		t.Fatal("the stopped provider still answers")
	}
	prov.Restart(t)
	prov.Modify(t, "dn: "+prov.UserDN("erin")+"\nchangetype: modify\nreplace: userPassword\nuserPassword: Erin-Changed-3!\n")
	if err := repl.WaitReplicated(prov, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := repl.UserBind("erin", "Erin-Changed-3!"); err != nil {
		t.Fatalf("change after the provider's restart on the replica: %v", err)
	}
}
