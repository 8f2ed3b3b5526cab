package demodir_test

import (
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// These tests pin the protocol behaviour that doc.go names as the reasons
// the LDAP message layer is written here rather than taken from gldap.

// The Password Modify request's value (identity, old and new password) is
// read, and the ppolicy response control rides on the extended response.
func TestPasswordModifyReadsItsValueAndAnswersWithTheControl(t *testing.T) {
	s := start(t)
	c := dial(t, s)
	if err := c.Bind(userDN("carol"), password(t, s, "carol")); err != nil {
		t.Fatal(err)
	}
	// the old password is checked: a wrong one is refused
	wantCode(t, pwModify(c, userDN("carol"), "Not-Her-Pass-1!", "Carol-New-Pass-1!"), ldap.LDAPResultUnwillingToPerform)
	// a too short new password: the ppolicy control travels on the extended response
	err := pwModify(c, userDN("carol"), password(t, s, "carol"), "Sh0rt-ish")
	wantCode(t, err, ldap.LDAPResultConstraintViolation)
	if pp := ppErr(nil, err); pp != 6 {
		t.Fatalf("ppolicy error %d, want passwordTooShort (6)", pp)
	}
	if err := pwModify(c, "", password(t, s, "carol"), "Carol-New-Pass-1!"); err != nil {
		t.Fatalf("change of the bound identity (no userIdentity): %v", err)
	}
	if !s.CheckPassword("carol", "Carol-New-Pass-1!") {
		t.Fatal("the new password from the request value did not take")
	}
}

// WhoAmI answers with a responseValue.
func TestWhoAmIAnswersWithTheBoundDN(t *testing.T) {
	s := start(t)
	c := dial(t, s)
	if err := c.Bind(userDN("alice"), password(t, s, "alice")); err != nil {
		t.Fatal(err)
	}
	r, err := c.WhoAmI(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.EqualFold(r.AuthzID, "dn:"+userDN("alice")) {
		t.Fatalf("WhoAmI = %q, want dn:%s", r.AuthzID, userDN("alice"))
	}
}

// Operations the demo does not serve, SASL binds and unknown critical
// controls get an LDAP result, and the connection stays usable.
func TestUnservedRequestsAnswerAndKeepTheConnection(t *testing.T) {
	s := start(t)
	c := dial(t, s)
	err := c.ExternalBind()
	wantCode(t, err, ldap.LDAPResultAuthMethodNotSupported)
	if err := c.Bind(userDN("alice"), password(t, s, "alice")); err != nil {
		t.Fatalf("bind after a SASL bind: %v", err)
	}
	_, err = c.Compare(userDN("alice"), "uid", "alice")
	wantCode(t, err, ldap.LDAPResultUnwillingToPerform)
	wantCode(t, c.ModifyDN(ldap.NewModifyDNRequest(userDN("alice"), "uid=alice2", true, "")), ldap.LDAPResultUnwillingToPerform)
	req := ldap.NewSearchRequest(userDN("alice"), ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"uid"},
		[]ldap.Control{ldap.NewControlString("1.3.6.1.4.1.99999.1", true, "")})
	_, err = c.Search(req)
	wantCode(t, err, ldap.LDAPResultUnavailableCriticalExtension)
	res, err := c.Search(ldap.NewSearchRequest(userDN("alice"), ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"uid"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("search after the refused requests: %v", err)
	}
}

// Close returns while clients hold idle connections, and ends them.
func TestCloseEndsIdleConnections(t *testing.T) {
	s := start(t)
	c := dial(t, s)
	if err := c.Bind(userDN("alice"), password(t, s, "alice")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close still waiting for an idle client connection after 30 s")
	}
	if err := c.Bind(userDN("alice"), password(t, s, "alice")); err == nil {
		t.Fatal("bind succeeded on a connection the server closed")
	}
}
