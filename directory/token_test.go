package directory_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/latchkeyhq/latchkey/directory/dirtest"
	"github.com/latchkeyhq/latchkey/policy"
)

// TestADTokenMembership, on a real Samba AD DC: the account's token
// (tokenGroups) decides privilege and group membership, so that a primary
// group, a nested group and every protected built-in group are seen; a
// group that does not exist is unknown, not "no".
func TestADTokenMembership(t *testing.T) {
	srv := dirtest.StartSamba(t)
	ctx := context.Background()
	d := open(t, srv.Config())
	base := srv.BaseDN
	users := srv.Group("staff") // the eligible group
	exclude := "CN=No-SSPR,OU=Groups," + base
	tier := srv.Group("sspr-admins")
	srv.Modify(t, "dn: "+exclude+"\nchangetype: add\nobjectClass: group\nsAMAccountName: No-SSPR\n")
	t.Cleanup(func() { srv.Modify(t, "dn: "+exclude+"\nchangetype: delete\n") })
	// a group nested in Domain Admins
	nested := "CN=Helpdesk-Admins,OU=Groups," + base
	srv.Modify(t, "dn: "+nested+"\nchangetype: add\nobjectClass: group\nsAMAccountName: Helpdesk-Admins\n")
	t.Cleanup(func() { srv.Modify(t, "dn: "+nested+"\nchangetype: delete\n") })
	srv.Modify(t, "dn: CN=Domain Admins,CN=Users,"+base+"\nchangetype: modify\nadd: member\nmember: "+nested+"\n")

	e := policy.Eligibility{Scope: policy.ScopeSelected, Groups: []string{users}, ExcludeGroups: []string{exclude},
		ExcludePrivileged: true, MethodsRequired: 1, Methods: []string{"email", "totp"},
		Tiers: []policy.Tier{{Groups: []string{tier}, MethodsRequired: 2}}}
	decide := func(name string) policy.Decision {
		t.Helper()
		u := lookup(t, d, name)
		m, err := d.Membership(ctx, u, e.AllGroups())
		if err != nil {
			t.Fatalf("Membership(%s): %v", name, err)
		}
		if m.TokenUnread || len(m.SIDs) < 2 {
			t.Fatalf("%s: token not read: %+v", name, m)
		}
		return e.Decide(policy.Subject{MemberOf: m.MemberOf, SIDs: m.SIDs, TokenUnread: m.TokenUnread,
			Privileged: u.Status.Privileged, Disabled: u.Status.Disabled})
	}

	// the control: an ordinary member of the eligible group
	srv.AddADUser(t, "tk-plain", users)
	if dec := decide("tk-plain"); !dec.Eligible || dec.By != users {
		t.Fatalf("tk-plain: %+v", dec)
	}

	// privileged by primary group: Domain Admins with no member link
	pg := srv.AddADUser(t, "tk-pgda", users)
	srv.SetPrimaryGroup(t, pg, "CN=Domain Admins,CN=Users,"+base)
	// by a group nested in Domain Admins
	srv.AddADUser(t, "tk-nested", users, nested)
	want := map[string]string{"tk-pgda": "Domain Admins", "tk-nested": "Domain Admins"}
	// by each protected built-in group
	for i, g := range []string{"Account Operators", "Server Operators", "Print Operators", "Backup Operators", "Replicator", "Administrators"} {
		name := fmt.Sprintf("tk-op%d", i)
		srv.AddADUser(t, name, users, "CN="+g+",CN=Builtin,"+base)
		want[name] = g
	}
	// by other protected domain groups
	for i, g := range []string{"Schema Admins", "Enterprise Admins", "Group Policy Creator Owners", "Domain Controllers"} {
		name := fmt.Sprintf("tk-dom%d", i)
		srv.AddADUser(t, name, users, "CN="+g+",CN=Users,"+base)
		want[name] = g
	}
	for name, group := range want {
		dec := decide(name)
		if dec.Eligible || dec.Reason != policy.ReasonPrivileged || len(dec.By) < len(group) || dec.By[:len(group)] != group {
			t.Errorf("%s (privileged by %s): %+v", name, group, dec)
		}
	}
	// the built-in Administrator by its own SID (RID 500)
	if dec := decide("Administrator"); dec.Eligible || dec.Reason != policy.ReasonPrivileged {
		t.Errorf("Administrator: %+v", dec)
	}

	// excluded by primary group: No-SSPR as the primary group
	ex := srv.AddADUser(t, "tk-pgex", users)
	srv.SetPrimaryGroup(t, ex, exclude)
	if dec := decide("tk-pgex"); dec.Eligible || dec.Reason != policy.ReasonExcluded || dec.By != exclude {
		t.Errorf("tk-pgex (primary group No-SSPR): %+v", dec)
	}
	// eligible by primary group, and in a tier by primary group
	el := srv.AddADUser(t, "tk-pgusers")
	srv.SetPrimaryGroup(t, el, users)
	if dec := decide("tk-pgusers"); !dec.Eligible || dec.By != users {
		t.Errorf("tk-pgusers (primary group Staff): %+v", dec)
	}
	ti := srv.AddADUser(t, "tk-pgtier", users)
	srv.SetPrimaryGroup(t, ti, tier)
	if dec := decide("tk-pgtier"); !dec.Eligible || dec.MethodsRequired != 2 || len(dec.Tiers) != 1 {
		t.Errorf("tk-pgtier (primary group SSPR-Admins, a tier): %+v", dec)
	}

	// a configured group that does not exist: unknown, so an exclusion
	// fails closed
	gone := "CN=Deleted-Group,OU=Groups," + base
	u := lookup(t, d, "tk-plain")
	m, err := d.Membership(ctx, u, []string{users, gone})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.MemberOf[gone]; ok || !m.MemberOf[users] {
		t.Fatalf("a missing group has an answer: %+v", m.MemberOf)
	}
	e2 := e
	e2.ExcludeGroups = []string{gone}
	if dec := e2.Decide(policy.Subject{MemberOf: m.MemberOf, SIDs: m.SIDs}); dec.Reason != policy.ReasonUnresolved || dec.By != gone {
		t.Errorf("a deleted excluded group: %+v", dec)
	}

	// a distribution group (in no token) as the exclusion, reached only
	// through the primary group: the in-chain rule on the primary group
	dist := "CN=No-SSPR-List,OU=Groups," + base
	srv.Modify(t, "dn: "+dist+"\nchangetype: add\nobjectClass: group\nsAMAccountName: No-SSPR-List\ngroupType: 2\nmember: "+exclude+"\n")
	t.Cleanup(func() { srv.Modify(t, "dn: "+dist+"\nchangetype: delete\n") })
	e3 := e
	e3.ExcludeGroups = []string{dist}
	for name, want := range map[string]bool{"tk-pgex": true, "tk-plain": false} {
		u := lookup(t, d, name)
		m, err := d.Membership(ctx, u, []string{dist})
		if err != nil {
			t.Fatal(err)
		}
		if in, ok := m.MemberOf[dist]; !ok || in != want {
			t.Errorf("%s in the distribution group = %v (known %v), want %v", name, in, ok, want)
		}
	}
}
