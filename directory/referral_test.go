package directory_test

import (
	"context"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/latchkeyhq/latchkey/directory"
	"github.com/latchkeyhq/latchkey/directory/dirtest"
)

// TestReferralsAreFailuresNotFollowed: a directory that answers with a
// referral (here: slapd, for anything outside its naming context) gets a
// failure, and nothing connects to the server the referral names, where
// credentials could be replayed (security notes G7).
func TestReferralsAreFailuresNotFollowed(t *testing.T) {
	trap := dirtest.StartTrap(t)
	srv := dirtest.StartOpenLDAP(t, dirtest.WithReferral(trap.URL))
	cfg := srv.Config()
	cfg.BaseDN = "dc=elsewhere,dc=net" // outside slapd's naming context
	d := open(t, cfg)
	ctx := context.Background()
	u, err := d.Lookup(ctx, "carol")
	if err == nil || u != nil {
		t.Fatalf("a lookup answered with a referral succeeded: %+v", u)
	}
	if err := d.VerifyPassword(ctx, &directory.User{DN: "uid=carol,ou=people,dc=elsewhere,dc=net"}, srv.Password("carol")); err == nil {
		t.Fatal("a bind outside the naming context succeeded")
	}
	// the referral is real: slapd answers this base with one
	_, err = srv.Admin(t).Search(ldap.NewSearchRequest("dc=elsewhere,dc=net", ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(uid=carol)", nil, nil))
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultReferral) {
		t.Fatalf("slapd answered %v, not a referral", err)
	}
	if n := trap.Dialed(); n != 0 {
		t.Fatalf("%d connections to the referred server", n)
	}
}
